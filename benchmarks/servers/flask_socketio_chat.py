"""The peer of the fan-out benchmark: Flask-SocketIO with its Redis message queue.

    SOCKETIO_REDIS=redis://127.0.0.1:6379/0 gunicorn -k gevent -w 4 \\
        benchmarks.servers.flask_socketio_chat:app

Every worker subscribes to the queue (python-socketio's RedisManager); a process with no
web server publishes with ``socketio.RedisManager(url, write_only=True).emit("chat", text)``,
as Flask-SocketIO documents for emitting from a Celery task. Clients connect over a
WebSocket only (``transport=websocket``), so no sticky sessions are needed across workers.
"""

from __future__ import annotations

import os

from flask import Flask
from flask_socketio import SocketIO

app = Flask(__name__)
socketio = SocketIO(
    app,
    message_queue=os.environ["SOCKETIO_REDIS"],
    async_mode="gevent",
    cors_allowed_origins="*",
)
