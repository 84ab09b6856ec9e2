"""Fixtures for the hub: a real redis-server, shared or one's own, and a hub per test."""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterator

import pytest

from faye_sync.hub import Hub
from tests.redis_server import RedisServer, redis_server_path

_prefixes = itertools.count()


def _need_redis_server() -> None:
    if redis_server_path() is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing on CI: .ci/run should apt-get install it")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session; tests keep apart by key prefix."""
    _need_redis_server()
    with RedisServer() as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to stop, restart or flush."""
    _need_redis_server()
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, str]]:
    """A redis-server that also listens with TLS; yields it and a ``rediss://`` URL."""
    _need_redis_server()
    trustme = pytest.importorskip("trustme")
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca_path, cert_path = directory / "ca.pem", directory / "cert.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        tls_port = sock.getsockname()[1]
    tls = ("--tls-port", str(tls_port), "--tls-cert-file", str(cert_path))
    tls += ("--tls-key-file", str(cert_path), "--tls-ca-cert-file", str(ca_path))
    with RedisServer(*tls, "--tls-auth-clients", "no") as server:
        yield server, f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={ca_path}"


@pytest.fixture
def prefix() -> str:
    return f"t{os.getpid()}-{next(_prefixes)}"


@pytest.fixture
def redis_hub(redis_server: RedisServer, prefix: str) -> Iterator[Hub]:
    hub = Hub.from_url(redis_server.url, prefix=prefix, block=0.2)
    yield hub
    hub.close()


@pytest.fixture
def memory_hub() -> Iterator[Hub]:
    hub = Hub.from_url("memory://", block=0.2)
    yield hub
    hub.close()


@pytest.fixture(params=["memory", "redis"])
def hub(request: pytest.FixtureRequest) -> Hub:
    """Each engine in turn, for behaviour both must share."""
    name = "memory_hub" if request.param == "memory" else "redis_hub"
    result: Hub = request.getfixturevalue(name)
    return result
