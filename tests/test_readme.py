"""Every code block in README.rst runs as written; each test is named by the block's line.

The rule, per kind of block (tests/readme.py finds and classifies them; a block of no
kind fails here, naming its line):

* **Python** runs as a module (a fragment with ``return`` runs as the body of
  ``app(environ, start_response)``, with ``from faye_sync import *`` before it); every
  global name its functions use must be defined (a missing helper fails here, not in
  a user's server). What it defines is then served on real servers and used:

  - a WSGI ``app`` on gevent and gunicorn gthread: a plain GET gets no 5xx; if it
    makes a ``WebSocket``, a message is echoed; if an ``EventSource``, an event
    arrives;
  - a Flask ``app`` on werkzeug and gunicorn gthread: every route, a WebSocket
    route echoing, an event stream sending an event, the others no 5xx;
  - Django views (``contrib.django``), mounted at ``/<name>/`` in a minimal project on
    gunicorn gthread, the same way (with the ``Origin`` their ``allowed_origins`` admit);
  - a client: ``example.com`` URLs point to a local echo server; it must run through.

  One exception, stated in :data:`NOT_RUN`: the proxy example needs an
  authenticating proxy and its CA file, which tests/test_client.py covers.
* **Shell** passes ``bash -n``; every ``faye_sync[extra]`` it installs exists in
  setup.cfg; ``python -m X`` names an importable module; ``gunicorn`` lines run, with
  ``myapp:app`` being the README's first example and the port a free one, and echo a
  WebSocket message. The ``pip install`` lines themselves run in the wheel job
  (tests/wheel_job.py, ``tox -e wheel``), against the built wheel in a fresh venv.
* **nginx** blocks run in front of a server in tests/test_nginx.py.
"""

from __future__ import annotations

import builtins
import configparser
import contextlib
import dis
import importlib.util
import inspect
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.processes import run
from tests.readme import Block, as_function_body, blocks, command_lines
from tests.servers import ROOT, is_available, serve

BLOCKS = blocks()
#: Blocks that do not run here, and why (matched on their text).
NOT_RUN = {
    "proxy={": "needs an authenticating HTTP proxy and its CA file (tests/test_client.py)",
}
SHELL_KNOWN = {"pip", "pip3", "tox", "cd"}


def by_kind(kind: str) -> list[Any]:
    return [pytest.param(b, id=b.where) for b in BLOCKS if b.kind == kind]


@pytest.mark.skipif(not os.environ.get("FAYE_SYNC_WHEEL"), reason="the wheel job only")
def test_faye_sync_is_the_installed_wheel() -> None:
    """In the wheel job, nothing here may import the source tree by mistake."""
    import faye_sync

    assert "site-packages" in Path(faye_sync.__file__).parts, faye_sync.__file__
    assert not (ROOT / "faye_sync").exists()


def test_every_block_has_a_kind() -> None:
    unknown = [block.where for block in BLOCKS if block.kind == "unknown"]
    assert not unknown, (
        f"code blocks no rule covers: {unknown}; add a language to the block "
        "(.. code-block:: python/shell/nginx) or a rule to tests/readme.py"
    )


def test_the_extractor_finds_what_docutils_finds() -> None:
    docutils_core = pytest.importorskip("docutils.core")
    from docutils import nodes

    tree = docutils_core.publish_doctree(
        (ROOT / "README.rst").read_text(encoding="utf-8"),
        settings_overrides={"report_level": 5},
    )
    assert len(list(tree.findall(nodes.literal_block))) == len(BLOCKS)


# ------------------------------------------------------------------ python


def source_of(block: Block) -> str:
    """The module a block runs as (a fragment becomes a WSGI app's body)."""
    try:
        compile(block.text, block.where, "exec")
    except SyntaxError:
        return "from faye_sync import *  # noqa\n\n" + as_function_body(block.text)
    return block.text


def load(block: Block, directory: Path, name: str | None = None) -> types.ModuleType:
    """Write the block as a module in ``directory`` and import it from there."""
    name = name or f"readme_line_{block.line}"
    path = directory / f"{name}.py"
    path.write_text(source_of(block), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise AssertionError(f"{block.where}: the block does not run: {error!r}") from error
    return module


def undefined_globals(module: types.ModuleType) -> set[str]:
    """Global names the module's functions load that neither it nor builtins define."""
    missing: set[str] = set()
    functions = [inspect.unwrap(v) for v in vars(module).values() if callable(v)]
    codes = [
        f.__code__
        for f in functions
        if isinstance(f, types.FunctionType) and f.__module__ == module.__name__
    ]
    while codes:
        code = codes.pop()
        codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
        for instruction in dis.get_instructions(code):
            if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                name = instruction.argval
                if name not in vars(module) and not hasattr(builtins, name):
                    missing.add(name)
    return missing


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Status and what arrives within a few seconds (the first event of a stream)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
            head_done = b"\r\n\r\n" in data
            if head_done and (b"event-stream" not in data or b"\ndata:" in data):
                break
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data


def echoes(url: str, origin: str | None = None) -> None:
    with connect(url, open_timeout=5, close_timeout=5, origin=origin) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"


def streams(port: int, path: str) -> None:
    status, data = http_get(port, path, {"Accept": "text/event-stream"})
    assert status == 200, data
    assert b"\ndata:" in data, data


def exercise_wsgi(block: Block, name: str, directory: Path) -> None:
    text = block.text
    for kind in ("gevent", "gunicorn-gthread"):
        with serve(kind, f"{name}:app", env={"PYTHONPATH": str(directory)}) as server:
            status, data = http_get(server.port, "/")
            assert 0 < status < 500, f"{block.where} on {kind}: a plain GET got {data[:300]!r}"
            if "WebSocket(" in text:
                echoes(f"ws://127.0.0.1:{server.port}/")
            if "EventSource(" in text:
                streams(server.port, "/")
            assert "Traceback" not in server.log(), f"{block.where} on {kind}:\n{server.log()}"


def exercise_flask(block: Block, module: types.ModuleType, name: str, directory: Path) -> None:
    rules = [r for r in module.app.url_map.iter_rules() if r.endpoint != "static"]
    assert rules, f"{block.where}: a Flask app without routes"
    for kind in ("werkzeug", "gunicorn-gthread"):
        with serve(kind, f"{name}:app", env={"PYTHONPATH": str(directory)}) as server:
            for rule in rules:
                if rule.websocket:
                    echoes(f"ws://127.0.0.1:{server.port}{rule.rule}")
                    continue
                status, data = http_get(server.port, rule.rule)
                assert 0 < status < 500, f"{block.where}: GET {rule.rule} got {data[:300]!r}"
                if b"event-stream" in data:
                    streams(server.port, rule.rule)
            assert "Traceback" not in server.log(), f"{block.where} on {kind}:\n{server.log()}"


DJANGO_PROJECT = """
from django.urls import path
import {views}

SECRET_KEY = "README"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = __name__
INSTALLED_APPS = []
urlpatterns = [path(f"{{name}}/", view) for name, view in {routes}]

from django.core.wsgi import get_wsgi_application
"""


def exercise_django(block: Block, module: types.ModuleType, name: str, directory: Path) -> None:
    views = {
        view_name: view
        for view_name, view in vars(module).items()
        if inspect.isfunction(view)
        and view.__module__ == name
        and next(iter(inspect.signature(view).parameters), "") == "request"
    }
    assert views, f"{block.where}: no Django view (a function taking request)"
    routes = "[" + ", ".join(f"({v!r}, {name}.{v})" for v in views) + "]"
    project = directory / "readme_django_project.py"
    project.write_text(DJANGO_PROJECT.format(views=name, routes=routes), encoding="utf-8")
    (directory / "readme_django_wsgi.py").write_text(
        "import django\nfrom django.core.wsgi import get_wsgi_application\n"
        "application = get_wsgi_application()\n",
        encoding="utf-8",
    )
    origins = re.findall(r'allowed_origins=\["([^"]+)"', block.text)
    env = {"PYTHONPATH": str(directory), "DJANGO_SETTINGS_MODULE": "readme_django_project"}
    with serve("gunicorn-gthread", "readme_django_wsgi:application", env=env) as server:
        for view_name, view in views.items():
            if "ws" in inspect.signature(view).parameters:
                url = f"ws://127.0.0.1:{server.port}/{view_name}/"
                echoes(url, origin=origins[0] if origins else None)
                continue
            status, data = http_get(server.port, f"/{view_name}/")
            assert 0 < status < 500, f"{block.where}: GET /{view_name}/ got {data[:300]!r}"
            if b"event-stream" in data:
                streams(server.port, f"/{view_name}/")
        assert "Traceback" not in server.log(), f"{block.where}:\n{server.log()}"


def run_client(block: Block, directory: Path) -> None:
    with serve("gevent", "tests.apps.ws_app:app") as echo_server:
        local = f"ws://127.0.0.1:{echo_server.port}"
        text = re.sub(r"wss?://example\.com", local, block.text)
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            load(Block(block.line, text, block.language), directory)
        assert output.getvalue().strip(), f"{block.where}: the client printed nothing"


@pytest.mark.parametrize("block", by_kind("python"))
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    reason = next((why for key, why in NOT_RUN.items() if key in block.text), None)
    if reason is not None:
        compile(block.text, block.where, "exec")
        pytest.skip(f"{block.where}: {reason}")
    if "example.com" in block.text and ("connect(" in block.text or "Client(" in block.text):
        run_client(block, tmp_path)
        return
    name = f"readme_line_{block.line}"
    module = load(block, tmp_path, name)
    missing = undefined_globals(module)
    assert not missing, f"{block.where}: undefined names {sorted(missing)}"
    app = getattr(module, "app", None)
    if app is not None and type(app).__name__ == "Flask":
        exercise_flask(block, module, name, tmp_path)
    elif inspect.isfunction(app):
        exercise_wsgi(block, name, tmp_path)
    elif "faye_sync.contrib.django" in block.text:
        exercise_django(block, module, name, tmp_path)


# ------------------------------------------------------------------ shell


def first_example() -> Block:
    """The README's first WSGI app: what ``myapp:app`` stands for in its commands."""
    return next(b for b in BLOCKS if b.kind == "python" and "def app(" in b.text)


def extras() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return set(config["options.extras_require"])


@pytest.mark.parametrize("block", by_kind("shell"))
def test_shell_block_runs(block: Block, tmp_path: Path) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    checked = subprocess.run([bash, "-n"], input=block.text.encode(), capture_output=True)
    assert checked.returncode == 0, f"{block.where}: {checked.stderr.decode()}"
    for words in command_lines(block):
        command, arguments = words[0], words[1:]
        if command.startswith("python") and arguments[:1] == ["-m"]:
            module = arguments[1]
            assert importlib.util.find_spec(module) is not None, f"{block.where}: no {module}"
            command, arguments = module, arguments[2:]
        if command == "pip" and arguments[:1] == ["install"]:
            for requirement in arguments[1:]:
                found = re.match(r"^(?:\./)?(?:faye_sync|\.)\[([\w,-]+)\]", requirement)
                if found:
                    unknown = set(found.group(1).split(",")) - extras()
                    assert not unknown, f"{block.where}: no extra {sorted(unknown)} in setup.cfg"
        elif command == "gunicorn":
            run_gunicorn(block, arguments, tmp_path)
        elif command not in SHELL_KNOWN and not command.startswith("wsgi_examples"):
            raise AssertionError(
                f"{block.where}: no rule for the command {command!r} (add one in "
                "tests/test_readme.py, or the name to SHELL_KNOWN if it needs no check)"
            )


def run_gunicorn(block: Block, arguments: list[str], directory: Path) -> None:
    if not is_available("gunicorn-gevent" if "gevent" in arguments else "gunicorn-gthread"):
        pytest.skip("gunicorn or gevent is not installed")
    load(first_example(), directory, "myapp")
    arguments = ["127.0.0.1:0" if a.startswith("127.0.0.1:") else a for a in arguments]
    command = [sys.executable, "-m", "gunicorn", *arguments]
    env = {"PYTHONPATH": f"{directory}:{ROOT}"}
    with run(command, r"Listening at: http://127\.0\.0\.1:(\d+)", env=env) as server:
        echoes(f"ws://127.0.0.1:{server.port}/")
        assert "Traceback" not in server.log(), f"{block.where}:\n{server.log()}"


@contextlib.contextmanager
def no_import_cache() -> Iterator[None]:
    before = set(sys.modules)
    try:
        yield
    finally:
        for name in set(sys.modules) - before:
            if name.startswith("readme_") or name == "myapp":
                del sys.modules[name]


@pytest.fixture(autouse=True)
def _forget_readme_modules() -> Iterator[None]:
    with no_import_cache():
        yield
