"""design.md §2: imports only go down the layers. Parsed from the source, not imported."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "faye_sync"

LAYERS = {
    "exceptions": 0,
    # The context manager the clients and the test client share.
    "closing": 0,
    "protocol": 1,
    "extensions": 1,
    "blocking": 2,
    # How a client gets its socket (the mirror of adapters/), beside the engine.
    "net": 2,
    "adapters": 3,
    "websocket": 4,
    # The upgrade request read from a WSGI environ: the server WebSocket's, split from it.
    "wsgi_request": 3,
    "client": 4,
    "eventsource": 4,
    "eventsource_client": 4,
    # The hub sits beside the façades (design.md §8): it uses the blocking backends
    # and delivers through whatever WebSocket or EventSource it is handed.
    "hub": 4,
    "contrib": 5,
    # A test-support façade over the clients and the adapters: nothing imports it.
    "testing": 5,
    # faye_sync.stats(): reads the façades' connections and the engine's counters.
    "metrics": 5,
}
# The sans-I/O core: computation only, never sockets, threads or clocks.
CORE_STDLIB = {
    "__future__",
    "_sha1",  # CPython's SHA-1, which hashlib wraps (the handshake's accept key)
    "base64",
    "binascii",
    "codecs",
    "collections",
    "dataclasses",
    "enum",
    "hashlib",
    "itertools",
    "re",
    "secrets",
    "struct",
    "types",
    "typing",
    "urllib",
    "zlib",
    "functools",
    "math",
}
# An optional C accelerator for masking, pure computation (protocol/masking.py).
CORE_OPTIONAL = {"websockets"}
# mypyc's class decorators, imported only under TYPE_CHECKING (protocol/_mypyc.py).
CORE_TYPING_ONLY = {"faye_sync.protocol._mypyc": {"mypy_extensions"}}


def layer_of(module: str) -> int:
    parts = module.split(".")
    assert parts[0] == "faye_sync"
    if len(parts) == 1:
        return 6  # the package root re-exports the public API
    return LAYERS[parts[1]]


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts)
        found.append((name.removesuffix(".__init__"), path))
    return found


def imports(name: str, path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    result = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            result += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                if node.module:
                    result.append(".".join([*base, node.module]))
                else:  # "from . import net": the names are the modules imported
                    result += [".".join([*base, alias.name]) for alias in node.names]
            else:
                result.append(node.module or "")
    return result


@pytest.mark.parametrize(("name", "path"), modules(), ids=[m[0] for m in modules()])
def test_imports_only_go_down(name: str, path: Path) -> None:
    own = layer_of(name)
    for target in imports(name, path):
        top = target.split(".")[0]
        if top == "faye_sync":
            assert layer_of(target) <= own, f"{name} (L{own}) imports {target}"
            same_package = target.split(".")[1:2] == name.split(".")[1:2]
            if own == 4 and layer_of(target) == 4 and not same_package:
                pytest.fail(f"façade modules stay independent: {name} imports {target}")
        elif own <= 1:
            allowed = CORE_STDLIB | (CORE_OPTIONAL if name.endswith("masking") else set())
            allowed |= CORE_TYPING_ONLY.get(name, set())
            assert top in allowed, f"the sans-I/O core module {name} imports {target}"


def test_every_module_is_in_a_layer() -> None:
    names = [name for name, _ in modules()]
    assert "faye_sync.protocol.hybi" in names
    for name in names:
        layer_of(name)


def test_core_never_names_io_modules() -> None:
    # Belt and braces: not even a lazy import inside a function.
    for name, path in modules():
        if name.split(".")[1:2] and LAYERS.get(name.split(".")[1], 9) <= 1:
            for target in imports(name, path):
                assert target.split(".")[0] not in {
                    "socket",
                    "threading",
                    "time",
                    "select",
                    "ssl",
                    "gevent",
                }


def test_importing_the_package_pulls_in_no_server_or_gevent() -> None:
    import subprocess

    code = (
        "import sys, faye_sync, faye_sync.websocket;"
        "names = ('gevent', 'werkzeug', 'gunicorn', 'flask', 'django', 'redis',"
        " 'faye_sync.hub');"
        "bad = [m for m in names if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_hub_pulls_in_no_redis_until_a_redis_url() -> None:
    import subprocess

    code = (
        "import sys; from faye_sync.hub import Hub; Hub.from_url('memory://').close();"
        "sys.exit(1 if 'redis' in sys.modules else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
