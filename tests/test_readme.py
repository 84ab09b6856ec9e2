"""Every code block in README.rst runs as written; each test is named by the block's line.

The rule, per kind of block (tests/readme.py finds and classifies them; a block of no
kind fails here, naming its line):

* **Python** runs as a module (a fragment with ``return`` runs as the body of
  ``app(environ, start_response)``, with ``from faye_sync import *`` before it);
  every global name its functions use must be defined (a missing helper fails
  here, not in a user's server). ``from myapp import app`` imports the README's
  first example, as in the shell lines. ``redis://127.0.0.1:6379/0`` is a real
  redis-server of the test's own (tests/redis_server.py) on a free port.
  Its ``test_*`` functions that take no fixtures are called (``test_whoami`` needs
  the user's Django project and its ``django_user``;
  tests/contrib/test_django_testing.py logs in the same way). What it defines is
  then served on real servers and used:

  - a WSGI ``app`` on gevent and gunicorn gthread: a plain GET gets no 5xx; if it
    makes a ``WebSocket``, one opens and answers (see below); if an
    ``EventSource``, an event arrives (for a hub, the one the test publishes);
  - a Flask ``app`` on werkzeug and gunicorn gthread: every route, a WebSocket
    route answering, an event stream sending an event, the others no 5xx (an app
    without routes, a configuration, only has to build);
  - Django views (``contrib.django``), mounted at ``/<name>/`` in a project with
    Django's sessions and authentication on gunicorn gthread, the same way; a
    ``websocket_view`` that needs more than ``(request, ws)`` is called by another
    view, not mounted;
  - a client: ``example.com`` URLs point to a local echo server; it must run through.
    An ``EventSourceClient`` loop runs for ever, as a browser's: it runs in a
    process of its own against a local clock stream until it has printed three
    events.

  A WebSocket answers: after ``hello``, a block that echoes (``send(message)``)
  sends ``hello`` back; a block on a hub delivers the ``hello`` the test publishes
  on its channels; any other sends something. A Flask block that refuses
  anonymous clients with a 403 of its own (``abort(403)`` in a ``before_request``)
  may refuse the handshake with 403, and only with that (a Django block's 403
  comes from an ordinary view in front, which gets a plain GET). The ``Origin``
  sent is the first string of the block's ``allowed_origins``, else none.

  One exception, stated in :data:`NOT_RUN`: the proxy example needs an
  authenticating proxy and its CA file, which tests/test_client.py covers.
* **doctest** (a ``>>>`` session) runs with ``python -m doctest`` in a fresh process.
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
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from faye_sync.hub import Hub
from tests.processes import Process, run
from tests.readme import Block, as_function_body, blocks, command_lines
from tests.redis_server import RedisServer, redis_server_path
from tests.servers import ROOT, is_available, serve

BLOCKS = blocks()
#: Blocks that do not run here, and why (matched on their text).
NOT_RUN = {
    "proxy={": "needs an authenticating HTTP proxy and its CA file (tests/test_client.py)",
}
SHELL_KNOWN = {"pip", "pip3", "tox", "cd"}
#: The Redis the README's hub blocks name (a redis-server of the test's own stands in).
README_REDIS = "redis://127.0.0.1:6379/0"
#: A handler that sends back what it receives.
ECHO = re.compile(r"\.send\((message|event\.data)\)")
#: A Flask block that refuses anonymous clients a WebSocket route with a 403 of its own.
REFUSES = re.compile(r"abort\(403\)")
#: What publishes the message a hub block's sockets should deliver, if the block has a hub.
Publish = Callable[[], None] | None


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


def http_get(
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
    then: Callable[[], object] | None = None,
) -> tuple[int, bytes]:
    """Status and what arrives within a few seconds (the first event of a stream).

    ``then`` is called once the response's head has arrived (to publish what the
    stream should send).
    """
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
            head_done = b"\r\n\r\n" in data + chunk
            if head_done and b"\r\n\r\n" not in data and then is not None:
                then()
            data += chunk
            if head_done and (b"event-stream" not in data or b"\ndata:" in data):
                break
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data


def echoes(url: str) -> None:
    with connect(url, open_timeout=5, close_timeout=5) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"


def answers(text: str, url: str, origin: Origin | None = None, publish: Publish = None) -> None:
    """A WebSocket at ``url`` opens and answers ``hello`` as the block's ``text`` says.

    An echo sends ``hello`` back; a hub block delivers what ``publish`` publishes;
    anything else sends something. A 403 is taken only from a block that gives one.
    """
    try:
        ws = connect(url, open_timeout=5, close_timeout=5, origin=origin)
    except InvalidStatus as refused:
        status = refused.response.status_code
        assert status == 403 and REFUSES.search(text), f"{url}: refused with {status}"
        return
    with ws:
        ws.send("hello")
        if publish is not None:
            publish()
        answer = ws.recv(timeout=5)
        if publish is not None or ECHO.search(text):
            assert answer == "hello", f"{url}: {answer!r}"


def streams(port: int, path: str, publish: Publish = None) -> None:
    status, data = http_get(port, path, {"Accept": "text/event-stream"}, then=publish)
    assert status == 200, data
    assert b"\ndata:" in data, data
    if publish is not None:
        assert re.search(rb"\ndata: hello\r?\n", data), data


def publisher(module: types.ModuleType, text: str) -> Publish:
    """For a block with a ``hub``: publish ``hello`` on the channels it serves."""
    hub = getattr(module, "hub", None)
    if not isinstance(hub, Hub):
        return None
    found = re.findall(r"hub\.(?:stream|attach)\(\w+, \[([^\]]*)\]", text)
    channels = {name for names in found for name in re.findall(r'"([^"]+)"', names)}
    assert channels, "a hub block serving no channel the test can find"

    def publish() -> None:
        for channel in sorted(channels):
            hub.publish(channel, "hello")

    return publish


def exercise_wsgi(block: Block, module: types.ModuleType, name: str, directory: Path) -> None:
    text = block.text
    publish = publisher(module, text)
    for kind in ("gevent", "gunicorn-gthread"):
        with serve(kind, f"{name}:app", env={"PYTHONPATH": str(directory)}) as server:
            status, data = http_get(server.port, "/")
            assert 0 < status < 500, f"{block.where} on {kind}: a plain GET got {data[:300]!r}"
            if "WebSocket(" in text:
                answers(text, f"ws://127.0.0.1:{server.port}/", publish=publish)
            if "EventSource(" in text:
                streams(server.port, "/", publish)
            assert "Traceback" not in server.log(), f"{block.where} on {kind}:\n{server.log()}"


def exercise_flask(block: Block, module: types.ModuleType, name: str, directory: Path) -> None:
    rules = [r for r in module.app.url_map.iter_rules() if r.endpoint != "static"]
    if not rules:
        return  # a configuration (Sock's options are checked as it is made)
    origin = first_allowed_origin(block.text)
    for kind in ("werkzeug", "gunicorn-gthread"):
        with serve(kind, f"{name}:app", env={"PYTHONPATH": str(directory)}) as server:
            for rule in rules:
                if rule.websocket:
                    answers(block.text, f"ws://127.0.0.1:{server.port}{rule.rule}", origin)
                    continue
                status, data = http_get(server.port, rule.rule)
                assert 0 < status < 500, f"{block.where}: GET {rule.rule} got {data[:300]!r}"
                if b"event-stream" in data:
                    streams(server.port, rule.rule)
            assert "Traceback" not in server.log(), f"{block.where} on {kind}:\n{server.log()}"


def first_allowed_origin(text: str) -> Origin | None:
    origins = re.findall(r'allowed_origins=\["([^"]+)"', text)
    return Origin(origins[0]) if origins else None


DJANGO_PROJECT = """
from django.urls import path
import {views}

SECRET_KEY = "README"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = __name__
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {database!r}}}}}
urlpatterns = [path(f"{{name}}/", view) for name, view in {routes}]

from django.core.wsgi import get_wsgi_application
"""


def exercise_django(block: Block, module: types.ModuleType, name: str, directory: Path) -> None:
    views = {
        view_name: view
        for view_name, view in vars(module).items()
        if inspect.isfunction(view) and view.__module__ == name and is_django_view(view)
    }
    assert views, f"{block.where}: no Django view (a function taking request)"
    routes = "[" + ", ".join(f"({v!r}, {name}.{v})" for v in views) + "]"
    project = directory / "readme_django_project.py"
    database = str(directory / "db.sqlite3")
    project.write_text(
        DJANGO_PROJECT.format(views=name, routes=routes, database=database), encoding="utf-8"
    )
    (directory / "readme_django_wsgi.py").write_text(
        "import django\nfrom django.core.wsgi import get_wsgi_application\n"
        "application = get_wsgi_application()\n",
        encoding="utf-8",
    )
    origin = first_allowed_origin(block.text)
    env = {"PYTHONPATH": str(directory), "DJANGO_SETTINGS_MODULE": "readme_django_project"}
    with serve("gunicorn-gthread", "readme_django_wsgi:application", env=env) as server:
        for view_name, view in views.items():
            if "ws" in inspect.signature(view).parameters:
                answers(block.text, f"ws://127.0.0.1:{server.port}/{view_name}/", origin)
                continue
            status, data = http_get(server.port, f"/{view_name}/")
            assert 0 < status < 500, f"{block.where}: GET /{view_name}/ got {data[:300]!r}"
            if b"event-stream" in data:
                streams(server.port, f"/{view_name}/")
        assert "Traceback" not in server.log(), f"{block.where}:\n{server.log()}"


def is_django_view(function: Callable[..., Any]) -> bool:
    """Takes ``request``; a ``websocket_view`` needing more than ``ws`` is not a URL's view."""
    parameters = list(inspect.signature(function).parameters.values())
    if not parameters or parameters[0].name != "request":
        return False
    if len(parameters) > 1 and parameters[1].name == "ws":
        return all(p.default is not p.empty for p in parameters[2:])
    return True


def follow_event_stream(block: Block, directory: Path) -> None:
    """Run an ``EventSourceClient`` loop against a local clock until three events are printed."""
    with serve("gevent", "tests.apps.eventsource_client_app:app") as clock:
        text = re.sub(r"https?://example\.com", f"http://127.0.0.1:{clock.port}", block.text)
        path = directory / f"readme_line_{block.line}.py"
        path.write_text(text, encoding="utf-8")
        log_path = directory / "client.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, str(path)],
                cwd=directory,
                env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            Process(process, log_path).wait_for(r"tick 1 1\ntick 2 2\ntick 3 3\n")
        finally:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def services(block: Block) -> Iterator[Block]:
    """The block with the services it names provided: its Redis is a real one of our own."""
    if README_REDIS not in block.text:
        yield block
        return
    if redis_server_path() is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing on CI: .ci/run should apt-get install it")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with RedisServer() as redis:
        yield Block(block.line, block.text.replace(README_REDIS, redis.url), block.language)


def run_tests(block: Block, module: types.ModuleType) -> None:
    """Call the block's ``test_*`` functions that need no fixtures."""
    for test_name, test in vars(module).items():
        if (
            test_name.startswith("test_")
            and inspect.isfunction(test)
            and test.__module__ == module.__name__
            and not inspect.signature(test).parameters
        ):
            try:
                test()
            except Exception as error:
                raise AssertionError(f"{block.where}: {test_name} fails: {error!r}") from error


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
    if "example.com" in block.text and "EventSourceClient(" in block.text:
        follow_event_stream(block, tmp_path)
        return
    if "example.com" in block.text and ("connect(" in block.text or "Client(" in block.text):
        run_client(block, tmp_path)
        return
    if "from myapp import" in block.text:
        load(first_example(), tmp_path, "myapp")
    with services(block) as block:
        name = f"readme_line_{block.line}"
        module = load(block, tmp_path, name)
        try:
            missing = undefined_globals(module)
            assert not missing, f"{block.where}: undefined names {sorted(missing)}"
            run_tests(block, module)
            app = getattr(module, "app", None)
            if app is not None and type(app).__name__ == "Flask":
                exercise_flask(block, module, name, tmp_path)
            elif inspect.isfunction(app):
                exercise_wsgi(block, module, name, tmp_path)
            elif "faye_sync.contrib.django" in block.text:
                exercise_django(block, module, name, tmp_path)
        finally:
            if isinstance(getattr(module, "hub", None), Hub):
                module.hub.close()


# ------------------------------------------------------------------ doctest


@pytest.mark.parametrize("block", by_kind("doctest"))
def test_doctest_block_runs(block: Block, tmp_path: Path) -> None:
    """A ``>>>`` session gives what the README shows, in a fresh process."""
    path = tmp_path / f"readme_line_{block.line}.txt"
    path.write_text(block.text, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "doctest", str(path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{block.where}:\n{result.stdout}{result.stderr}"


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
    with services(block) as block:
        for words in command_lines(block):
            run_command_line(block, words, tmp_path)


def run_command_line(block: Block, words: list[str], tmp_path: Path) -> None:
    # Leading NAME=value words are the command's environment, as in the shell.
    env = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    if words:
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
            run_gunicorn(block, arguments, tmp_path, env)
        elif command not in SHELL_KNOWN and not command.startswith("wsgi_examples"):
            raise AssertionError(
                f"{block.where}: no rule for the command {command!r} (add one in "
                "tests/test_readme.py, or the name to SHELL_KNOWN if it needs no check)"
            )


def run_gunicorn(
    block: Block, arguments: list[str], directory: Path, env: dict[str, str] | None = None
) -> None:
    if not is_available("gunicorn-gevent" if "gevent" in arguments else "gunicorn-gthread"):
        pytest.skip("gunicorn or gevent is not installed")
    load(first_example(), directory, "myapp")
    arguments = ["127.0.0.1:0" if a.startswith("127.0.0.1:") else a for a in arguments]
    if "-b" not in arguments and "--bind" not in arguments:
        arguments = ["-b", "127.0.0.1:0", *arguments]  # gunicorn's default port may be taken
    command = [sys.executable, "-m", "gunicorn", *arguments]
    env = {**(env or {}), "PYTHONPATH": f"{directory}:{ROOT}"}
    with run(command, r"Listening at: http://127\.0\.0\.1:(\d+)", env=env) as server:
        if "wsgi_examples.chat:app" in arguments:
            chats(f"ws://127.0.0.1:{server.port}/chat?name=readme")
        else:
            echoes(f"ws://127.0.0.1:{server.port}/")
        assert "Traceback" not in server.log(), f"{block.where}:\n{server.log()}"


def chats(url: str) -> None:
    """The chat demo's room gives a socket back what it said, as JSON with the hub's id."""
    with connect(url, open_timeout=5, close_timeout=5) as ws:
        ws.send("hello")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=10))
            if message.get("text") == "hello":
                assert re.fullmatch(r"\d+-\d+", message["id"]), message
                return
        raise AssertionError(f"{url}: the chat never said 'hello' back")


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
