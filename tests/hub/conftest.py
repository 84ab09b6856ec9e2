"""Fixtures for the hub: a real redis-server, shared or one's own, and a hub per test."""

from __future__ import annotations

import itertools
import os
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
