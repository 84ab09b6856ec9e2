"""The Flask and Django test sites on real servers, each started once for tests/contrib.

``contrib_server(framework, kind)`` starts the framework's test app
(``tests/apps/contrib_flask.py``, ``tests/apps/contrib_django.py``) on a server
kind the first time it is asked for and keeps it until the package's tests end,
so the tests both frameworks share (``test_frameworks.py``) and each
framework's own use the same processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from tests.servers import Server, is_available, serve

APPS = {
    "flask": "tests.apps.contrib_flask:app",
    "django": "tests.apps.contrib_django:application",
}
KINDS = {
    "flask": ["werkzeug", "gunicorn-gthread", "gunicorn-gevent"],
    "django": ["django", "gunicorn-gthread", "gunicorn-gevent"],
}
DJANGO_SETTINGS = {"DJANGO_SETTINGS_MODULE": "tests.apps.contrib_django_settings"}

ContribServer = Callable[[str, str], Server]


@pytest.fixture(scope="package")
def django_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The settings module, and a directory for its SQLite files."""
    database_dir = tmp_path_factory.mktemp("django-db")
    return {**DJANGO_SETTINGS, "FAYE_SYNC_TEST_DB_DIR": str(database_dir)}


@pytest.fixture(scope="package")
def contrib_server(django_env: dict[str, str]) -> Iterator[ContribServer]:
    running: dict[tuple[str, str], Server] = {}
    with contextlib.ExitStack() as stack:

        def server(framework: str, kind: str) -> Server:
            for needed in (framework, kind):
                if not is_available(needed):
                    pytest.skip(f"{needed} is not installed")
            if (framework, kind) not in running:
                options: dict[str, object] = {"timeout": 30} if "gunicorn" in kind else {}
                if kind == "werkzeug":  # as `flask run --debug` serves it
                    options = {"debugger": True}
                env = django_env if framework == "django" else None
                running[framework, kind] = stack.enter_context(
                    serve(kind, APPS[framework], env=env, **options)
                )
            return running[framework, kind]

        yield server
