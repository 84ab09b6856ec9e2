"""A tiny Django project: a WebSocket chat, an echo and an EventSource feed.

    python -m wsgi_examples.django_chat runserver 127.0.0.1:8001
    gunicorn -k gthread --threads 32 -b 127.0.0.1:8001 wsgi_examples.django_chat.wsgi
    gunicorn -k gevent -b 127.0.0.1:8001 wsgi_examples.django_chat.wsgi

Run from the repository root (or with faye_sync and this package importable),
then open http://127.0.0.1:8001/ in two tabs. ``python -m
wsgi_examples.django_chat`` is ``manage.py`` for this project: every management
command works (``check``, ``runserver --noreload``, …).

* ``/`` is the page; ``/ws/chat`` the chat WebSocket, whose every text message
  goes to every chat socket and every feed; ``/ws/echo`` an echo WebSocket;
  ``/events`` the feed (an event stream of ``chat`` and ``presence`` events).
* Views are :mod:`wsgi_examples.django_chat.views`, made WebSockets by
  :func:`faye_sync.contrib.django.websocket_view`.

Each WebSocket and each feed holds one server thread (or greenlet) while it is
open: runserver starts a thread per connection; give gunicorn's gthread worker
``--threads`` for as many as you expect, or use ``-k gevent``. The room lives
in one process's memory: run one worker.
"""
