"""Run one WSGI app on one real server on 127.0.0.1, port 0, with access logging.

Usage: ``python -m tests.serve KIND MODULE:ATTR [OPTIONS_JSON]``. When the server
accepts connections it prints ``FAYE_SYNC_SERVING port=<port>`` on stdout. Used by
``tests/servers.py``, which starts it in a subprocess; run it by hand to poke at a
server. Server packages are imported here only, after gevent/eventlet patching where
the kind needs it.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

HOST = "127.0.0.1"
READY = "FAYE_SYNC_SERVING port="

WSGIApp = Callable[..., Any]


def announce(port: int) -> None:
    print(f"{READY}{port}", flush=True)


def load_app(spec: str) -> WSGIApp:
    module_name, _, attr = spec.partition(":")
    app: WSGIApp = getattr(importlib.import_module(module_name), attr or "app")
    return app


def run_werkzeug(app: WSGIApp, options: dict[str, Any]) -> None:
    from werkzeug.serving import make_server

    if options.pop("debugger", False):
        from werkzeug.debug import DebuggedApplication

        app = DebuggedApplication(app, evalex=False)
    server = make_server(HOST, 0, app, threaded=True, **options)
    announce(server.server_address[1])
    server.serve_forever()


def run_gevent(app: WSGIApp, options: dict[str, Any]) -> None:
    from gevent.pywsgi import WSGIServer

    server = WSGIServer((HOST, 0), app, **options)  # logs requests to stderr by default
    server.start()
    announce(server.server_port)
    server.serve_forever()


def run_wsgiref(app: WSGIApp, options: dict[str, Any]) -> None:
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIServer, make_server

    class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    # threaded=False: the plain WSGIServer, one connection at a time.
    server_class = ThreadingWSGIServer if options.pop("threaded", True) else WSGIServer
    server = make_server(HOST, 0, app, server_class=server_class, **options)
    announce(server.server_port)
    server.serve_forever()


def run_django(app: WSGIApp, options: dict[str, Any]) -> None:
    import os

    import django
    from django.conf import settings

    if "DJANGO_SETTINGS_MODULE" not in os.environ:
        settings.configure(
            DEBUG=False,
            ALLOWED_HOSTS=["*"],
            SECRET_KEY="faye_sync tests",
            ROOT_URLCONF=__name__,
            INSTALLED_APPS=[],
            **options,
        )
    django.setup()  # configures the "django.server" access log
    from django.core.servers.basehttp import run

    # What `manage.py runserver` calls, minus the autoreloader and system checks.
    run(HOST, 0, app, threading=True, on_bind=announce)


urlpatterns: list[object] = []  # ROOT_URLCONF for the minimal settings above


def run_waitress(app: WSGIApp, options: dict[str, Any]) -> None:
    from waitress import create_server

    server = create_server(app, host=HOST, port=0, **options)
    announce(server.effective_port)
    server.run()


def run_eventlet(app: WSGIApp, options: dict[str, Any]) -> None:
    import eventlet
    import eventlet.wsgi

    listener = eventlet.listen((HOST, 0))
    announce(listener.getsockname()[1])
    eventlet.wsgi.server(listener, app, log_output=True, **options)


def run_gunicorn(worker_class: str, app_spec: str, options: dict[str, Any]) -> None:
    from gunicorn.app.base import BaseApplication

    settings: dict[str, Any] = {
        "bind": f"{HOST}:0",
        "workers": 1,
        "worker_class": worker_class,
        "threads": 8 if worker_class == "gthread" else 1,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": "debug",
        "graceful_timeout": 1,  # a hijacked connection must not hold up the shutdown
        # Announce from the worker once it has initialised: it accepts right after.
        "post_worker_init": lambda worker: announce(worker.sockets[0].getsockname()[1]),
    }
    settings.update(options)

    class Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self) -> WSGIApp:
            return load_app(app_spec)

    Application().run()


def main(argv: list[str]) -> None:
    kind, app_spec = argv[0], argv[1]
    options: dict[str, Any] = json.loads(argv[2]) if len(argv) > 2 else {}
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if kind.startswith("gunicorn-"):
        # The worker imports the app (after gevent's patching in gevent workers).
        run_gunicorn(kind.removeprefix("gunicorn-"), app_spec, options)
        return
    if kind == "gevent":
        from gevent import monkey

        monkey.patch_all()
    elif kind == "eventlet":
        import eventlet

        eventlet.monkey_patch()
    runners: dict[str, Callable[[WSGIApp, dict[str, Any]], None]] = {
        "werkzeug": run_werkzeug,
        "gevent": run_gevent,
        "wsgiref": run_wsgiref,
        "django": run_django,
        "waitress": run_waitress,
        "eventlet": run_eventlet,
    }
    runners[kind](load_app(app_spec), options)


if __name__ == "__main__":
    main(sys.argv[1:])
