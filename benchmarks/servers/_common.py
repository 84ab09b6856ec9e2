"""What the peer servers share: ``--port``, 127.0.0.1, the event the SSE servers stream."""

from __future__ import annotations

import argparse

HOST = "127.0.0.1"
MAX_SIZE = 2**26  # the largest message, as in wsgi_examples.echo (64 MiB)

# The EventSource workload: both SSE servers stream this event, and after every
# BATCH events they yield to the gevent hub (see perf-findings.md, "A pitfall
# for EventSource on gevent": a producer that never yields starves the others).
EVENT_DATA = "0123456789abcdef0123456789"
EVENT_BYTES = b"data: " + EVENT_DATA.encode() + b"\r\n\r\n"  # = sse.encode_event(EVENT_DATA)
BATCH = 32


def port_arg(description: str) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    return int(parser.parse_args().port)
