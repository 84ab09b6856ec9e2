"""The README's Flask authentication recipes, run by ``tests/contrib/test_auth_recipes.py``.

A session cookie (Flask's signed ``session``) identifies the user at the
handshake; clients that cannot send cookies get a short-lived signed token from
an ordinary, logged-in request and pass it in the query string.
"""

from __future__ import annotations

from flask import Flask, abort, request, session
from itsdangerous import BadSignature, URLSafeTimedSerializer

from faye_sync.contrib.flask import Sock
from faye_sync.websocket import WebSocket

app = Flask(__name__)
app.secret_key = "change me"
sock = Sock(app)


@app.post("/login")
def login() -> str:
    session["user"] = request.form["user"]  # after checking a password, of course
    return "ok"


@app.before_request
def require_login() -> None:
    if request.path.startswith("/ws/") and "user" not in session:
        abort(403)  # before the handshake: the client gets 403, the view never runs


@sock.route("/ws/whoami")
def whoami(ws: WebSocket) -> None:
    ws.send(f"hello {session['user']}")
    for message in ws:
        ws.send(f"{session['user']}: {message}")


tokens = URLSafeTimedSerializer(app.secret_key, salt="websocket")


@app.get("/token")
def token() -> str:
    if "user" not in session:
        abort(403)
    return tokens.dumps(session["user"])


@app.before_request
def check_token() -> None:
    if request.path == "/socket":
        try:
            request.environ["user"] = tokens.loads(request.args.get("token", ""), max_age=60)
        except BadSignature:
            abort(403)


@sock.route("/socket")
def with_token(ws: WebSocket) -> None:
    ws.send(f"hello {request.environ['user']}")
