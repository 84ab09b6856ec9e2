"""Chat masters on one Redis, and the fault table the tests fill in.

:func:`master` runs the chat demo (``wsgi_examples.chat:app``) on a gunicorn master with
``CHAT_BROKER`` pointing at the shared Redis: two of them are two hosts of one room.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.hub_cluster.clients import Tally
from tests.servers import Server, serve

APP = "wsgi_examples.chat:app"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
TABLE_FILE = ARTIFACTS / "hub-fault-table.md"


@contextlib.contextmanager
def master(kind: str, broker: str, *, workers: int = 2) -> Iterator[Server]:
    """A gunicorn master (``kind`` "gunicorn-gevent" or "gunicorn-gthread") of the chat."""
    # Each chat socket and feed holds a gthread thread.
    threads = 64 if kind == "gunicorn-gthread" else 1
    env = {"CHAT_BROKER": broker}
    with serve(kind, APP, env=env, workers=workers, threads=threads, timeout=30) as server:
        wait_for_workers(server, workers)
        yield server
        assert "Traceback" not in server.log(), server.log()


def worker_pids(server: Server) -> list[int]:
    """The live workers of a gunicorn master, from its log ("Booting worker with pid: N")."""
    pids = [int(p) for p in re.findall(r"Booting worker with pid: (\d+)", server.log())]
    return [pid for pid in pids if _alive(pid)]


def wait_for_workers(server: Server, count: int, timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(pids := worker_pids(server)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} workers not up after {timeout} s:\n{server.log()}")
        time.sleep(0.05)
    return pids


def sigkill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (killed, not yet reaped by its master) is not alive
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# -- the fault table ------------------------------------------------------------------------

HEADER = (
    "| scenario | subscribers | sent | refused | accepted | expected | delivered "
    "| lost | duplicated | reset-announced | resets | notes |"
)
COUNT_DEFINITIONS = """\
* **sent**: publish calls; **refused**: publish raised `HubUnavailable` (Redis down: the
  publisher was told, nothing was accepted, so these are not lost); **accepted**: publish
  returned an id.
* **expected**: accepted × subscribers that should get them (a subscriber cut off on
  purpose is not counted here; see notes); **delivered**: distinct accepted ids that
  reached a subscriber, summed over subscribers.
* **lost**: an accepted id a subscriber never got and no `reset` event announced (must be
  0); **duplicated**: extra copies of an id a subscriber already had; **reset-announced**:
  accepted ids a subscriber did not get, inside a gap it was told about with a `reset`
  event (retention or a Redis that came back empty); **resets**: `reset` events received.
"""


@dataclass
class Row:
    scenario: str
    subscribers: int
    sent: int
    refused: int
    accepted: int
    tallies: list[Tally]
    notes: str = ""

    def line(self) -> str:
        def total(name: str) -> int:
            return sum(getattr(t, name) for t in self.tallies)

        cells = [
            self.scenario,
            self.subscribers,
            self.sent,
            self.refused,
            self.accepted,
            total("expected"),
            total("delivered"),
            total("lost"),
            total("duplicated"),
            total("announced"),
            total("resets"),
            self.notes,
        ]
        return "| " + " | ".join(str(cell) for cell in cells) + " |"

    def lost(self) -> int:
        return sum(t.lost for t in self.tallies)

    def duplicated(self) -> int:
        return sum(t.duplicated for t in self.tallies)


ROWS: list[Row] = []


def table_lines(rows: list[Row]) -> list[str]:
    separator = "|" + "---|" * (HEADER.count("|") - 1)
    return [HEADER, separator, *(row.line() for row in rows)]


def record(row: Row) -> None:
    """Keep the row for the session's summary, print it (``-rP``) and write TABLE_FILE."""
    ROWS.append(row)
    print("\n".join(table_lines([row])))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    TABLE_FILE.write_text("\n".join([*table_lines(ROWS), "", COUNT_DEFINITIONS]))
