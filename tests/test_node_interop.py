"""Interop with Node's ``ws`` and ``faye-websocket`` (npm), both ways; tox -e node.

Their clients against our echo server (on gevent), and our client against
their servers: text, binary, a 1 MiB message, permessage-deflate where the peer
offers or accepts it, and a close code that arrives intact.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from faye_sync import PerMessageDeflate, connect
from tests.node import node_modules
from tests.servers import serve

pytestmark = pytest.mark.node

CLIENTS = {
    "ws": """
const WebSocket = require('ws');
const ws = new WebSocket(process.argv[2], {perMessageDeflate: true, maxPayload: 0});
const got = [];
const big = 'x'.repeat(1 << 20);
ws.on('open', () => { ws.send('héllo'); ws.send(Buffer.from([0, 1, 255])); ws.send(big); });
ws.on('message', (data, isBinary) => {
  const text = data.length > 100 ? data.length : data.toString();
  got.push(isBinary ? ['binary', [...data]] : ['text', text]);
  if (got.length === 3) ws.send('close 4000 from node');
});
ws.on('close', (code, reason) => {
  console.log(JSON.stringify({got, code, reason: reason.toString(),
                              extensions: ws.extensions}));
});
""",
    "faye-websocket": """
const WebSocket = require('faye-websocket');
const deflate = require('permessage-deflate');
const ws = new WebSocket.Client(process.argv[2], [], {extensions: [deflate]});
const got = [];
ws.on('open', () => {
  ws.send('héllo'); ws.send(Buffer.from([0, 1, 255])); ws.send('x'.repeat(1 << 20));
});
ws.on('message', (event) => {
  const d = event.data;
  got.push(typeof d === 'string' ? ['text', d.length > 100 ? d.length : d] : ['binary', [...d]]);
  if (got.length === 3) ws.send('close 4000 from node');
});
ws.on('close', (event) => {
  console.log(JSON.stringify({got, code: event.code, reason: event.reason,
                              extensions: ws.headers['sec-websocket-extensions'] || ''}));
});
""",
}

SERVERS = {
    "ws": """
const WebSocket = require('ws');
const server = new WebSocket.Server({host: '127.0.0.1', port: 0, perMessageDeflate: true,
                                    maxPayload: 0});
server.on('connection', (ws) => ws.on('message', (data, isBinary) => {
  if (!isBinary && data.toString() === 'bye') ws.close(4001, 'node says bye');
  else ws.send(data, {binary: isBinary});
}));
server.on('listening', () => console.log('PORT ' + server.address().port));
""",
    "faye-websocket": """
const WebSocket = require('faye-websocket');
const deflate = require('permessage-deflate');
const http = require('http');
const server = http.createServer();
server.on('upgrade', (request, socket, body) => {
  const ws = new WebSocket(request, socket, body, [], {extensions: [deflate]});
  ws.on('message', (event) => {
    if (event.data === 'bye') ws.close(4001, 'node says bye');
    else ws.send(event.data);
  });
});
server.listen(0, '127.0.0.1', () => console.log('PORT ' + server.address().port));
""",
}


def run_node(script: str, *args: str, modules: Path, tmp_path: Path) -> str:
    path = tmp_path / "script.js"
    path.write_text(script)
    result = subprocess.run(
        ["node", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, NODE_PATH=str(modules)),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def modules() -> Path:
    path = node_modules()
    if not (path / "permessage-deflate").is_dir():
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(path.parent),
                "permessage-deflate",
            ],
            capture_output=True,
            timeout=180,
            check=True,
        )
    return path


@pytest.mark.parametrize("peer", sorted(CLIENTS))
def test_node_client_against_our_server(peer: str, modules: Path, tmp_path: Path) -> None:
    with serve("gevent", "tests.apps.ws_app:app") as server:
        out = run_node(
            CLIENTS[peer], f"ws://127.0.0.1:{server.port}/node", modules=modules, tmp_path=tmp_path
        )
        result = json.loads(out.strip().splitlines()[-1])
        assert result["got"] == [["text", "héllo"], ["binary", [0, 1, 255]], ["text", 1 << 20]]
        assert (result["code"], result["reason"]) == (4000, "from node")
        assert "permessage-deflate" in json.dumps(result["extensions"])
        server.wait_for_log(r"^close 4000 from node$", timeout=5)
        assert "Traceback" not in server.log()


@pytest.fixture(params=sorted(SERVERS))
def node_server(request: pytest.FixtureRequest, modules: Path, tmp_path: Path) -> Iterator[int]:
    path = tmp_path / "server.js"
    path.write_text(SERVERS[request.param])
    process = subprocess.Popen(
        ["node", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, NODE_PATH=str(modules)),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # bounded: the server prints its port at once
        assert line.startswith("PORT "), line
        yield int(line.split()[1])
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_our_client_against_node_servers(node_server: int) -> None:
    ws = connect(f"ws://127.0.0.1:{node_server}/", extensions=[PerMessageDeflate()])
    assert ws.extensions.startswith("permessage-deflate")
    closes: list[tuple[int | None, str | None]] = []
    ws.on("close", lambda e: closes.append((e.code, e.reason)))
    ws.send("héllo")
    assert ws.receive(timeout=5) == "héllo"
    ws.send(b"\x00\x01\xff")
    assert ws.receive(timeout=5) == b"\x00\x01\xff"
    big = "y" * (1 << 20)
    ws.send(big)
    assert ws.receive(timeout=10) == big
    ws.send("bye")
    assert list(ws) == []
    assert closes == [(4001, "node says bye")]
