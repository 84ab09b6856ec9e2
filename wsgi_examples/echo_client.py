"""Connect to a WebSocket server and echo every message back, then report the close.

    python -m wsgi_examples.echo_client ws://127.0.0.1:8000/

Text comes back as text, binary as binary; permessage-deflate is offered;
messages up to 64 MiB are accepted (the default is 1 MiB). The server's close is
answered, and the program exits when the connection ends,
printing ``close <code> <reason>`` (exit status 0 for 1000, 1 otherwise).
``--max-length BYTES`` sets the largest message accepted (default: the
library's).
"""

from __future__ import annotations

import argparse
import sys

from faye_sync import Client, PerMessageDeflate

MAX_LENGTH = 2**26 - 1  # the Autobahn|Testsuite sends messages of up to 16 MiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="faye_sync WebSocket echo client")
    parser.add_argument("url", help="ws:// or wss:// URL")
    parser.add_argument("--max-length", type=int, metavar="BYTES", help="largest message")
    args = parser.parse_args(argv)
    limit = {"max_length": MAX_LENGTH if args.max_length is None else args.max_length}
    ws = Client(args.url, extensions=[PerMessageDeflate()], **limit)
    closed: list[tuple[int | None, str | None]] = []
    ws.on("close", lambda event: closed.append((event.code, event.reason)))
    for message in ws:
        ws.send(message)
    code, reason = closed[0] if closed else (None, None)
    print(f"close {code} {reason}", flush=True)
    return 0 if code == 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
