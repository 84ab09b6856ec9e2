"""The fault table: the chat on two gunicorn masters and one real redis-server, broken on purpose.

Each test publishes at a steady pace from this process (a process with no web server, as a
Celery task would), breaks something mid-stream, and counts, per subscriber, what it got
against what the publisher was told was accepted (see :data:`COUNT_DEFINITIONS`). The rows
are printed (``-rP``), written to tests/artifacts/hub-fault-table.md and summed up at the
end of the session (``python -m pytest -p no:xdist tests/hub_cluster``).
"""

from __future__ import annotations

import json
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from websockets.sync.client import connect

from tests.hub_cluster.clients import (
    Subscriber,
    drain,
    explain,
    silent_chat_socket,
    stop_all,
    tally,
)
from tests.servers import Server

pytest.importorskip("redis", reason="the Redis engine needs redis-py: pip install redis")
if shutil.which("redis-server") is None:
    pytest.skip("no redis-server: apt-get install -y redis-server", allow_module_level=True)

from faye_sync import HubUnavailable
from faye_sync.hub import Hub
from tests.hub_cluster.cluster import Row, master, record, sigkill, worker_pids
from tests.redis_server import RedisServer
from wsgi_examples.chat import HISTORY, UNAVAILABLE, make_hub, publish_chat

pytestmark = pytest.mark.slow

UNAVAILABLE_TEXT = json.loads(UNAVAILABLE)["error"]

WAIT = 30.0  # seconds for the last message to reach everyone on a loaded machine
INTERVAL = 0.01  # seconds between two publishes of the steady publisher


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def masters(redis: RedisServer) -> Iterator[tuple[Server, Server]]:
    with (
        master("gunicorn-gevent", redis.url) as gevent_master,
        master("gunicorn-gthread", redis.url) as gthread_master,
    ):
        yield gevent_master, gthread_master


@pytest.fixture
def publisher(redis: RedisServer) -> Iterator[Hub]:
    hub = make_hub(redis.url)
    yield hub
    hub.close()


@dataclass
class SteadyPublisher:
    """Publishes ``count`` chat messages, one every INTERVAL, counting what was refused."""

    hub: Hub
    count: int
    accepted: list[str] = field(default_factory=list)
    refused: int = 0

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for n in range(self.count):
            try:
                self.accepted.append(publish_chat(self.hub, "publisher", f"steady {n}"))
            except HubUnavailable:
                self.refused += 1
            time.sleep(INTERVAL)

    def start(self) -> SteadyPublisher:
        self.thread.start()
        return self

    def join(self) -> None:
        self.thread.join(self.count * (INTERVAL + 1) + WAIT)
        assert not self.thread.is_alive(), "the publisher is stuck"


def publish_until_accepted(hub: Hub, text: str, timeout: float = WAIT) -> str:
    """Publish ``text``, retrying while the broker is unavailable (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return publish_chat(hub, "publisher", text)
        except HubUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def subscribers_on(ports: list[int], last_id: str, per_kind: int = 2) -> list[Subscriber]:
    """``per_kind`` chat sockets and feeds per master, each reconnecting to the next master."""
    subscribers = []
    for index, port in enumerate(ports):
        rotation = ports[index:] + ports[:index]
        for kind in ("ws", "sse"):
            for n in range(per_kind):
                name = f"{kind}-{n}-on-{port}"
                subscribers.append(Subscriber(kind, rotation, name=name, last_id=last_id))
    for subscriber in subscribers:
        subscriber.start()
    for subscriber in subscribers:
        subscriber.wait_connected()
    return subscribers


def finish(subscribers: list[Subscriber], hub: Hub) -> str:
    """Publish a last message and wait until every subscriber has it."""
    end = publish_until_accepted(hub, "end")
    for subscriber in subscribers:
        subscriber.wait_for(lambda s: end in s.chat_ids(), WAIT, "given the end")
    return end


def test_redis_stopped_and_restarted_empty_mid_stream(
    redis: RedisServer, masters: tuple[Server, Server], publisher: Hub
) -> None:
    start = publish_chat(publisher, "publisher", "start")
    subscribers = subscribers_on([m.port for m in masters], start)
    try:
        steady = SteadyPublisher(publisher, count=300).start()
        time.sleep(1.0)
        with connect(f"ws://127.0.0.1:{masters[0].port}/chat?name=talker") as talker:
            redis.stop()  # SIGTERM; nothing is saved (--save "")
            # A chat member who speaks meanwhile is told, alone, that it was not sent.
            talker.send("anyone there?")
            while "error" not in (answer := json.loads(talker.recv(timeout=5))):
                assert answer["text"] != "anyone there?"  # the room's messages go on arriving
            assert answer == {"error": UNAVAILABLE_TEXT}
            time.sleep(0.5)
            redis.start()  # same port, empty: a new epoch
        steady.join()
        end = finish(subscribers, publisher)
        tallies = [tally(s, [*steady.accepted, end]) for s in subscribers]
        row = Row(
            "Redis stopped (SIGTERM) mid-stream, restarted empty (--save '')",
            len(subscribers),
            sent=steady.count + 1,
            refused=steady.refused,
            accepted=len(steady.accepted) + 1,
            tallies=tallies,
            notes=(
                "chat sockets and feeds on both masters, each told of the new epoch; "
                "a member speaking meanwhile got an error"
            ),
        )
        record(row)
        assert steady.refused > 0, "Redis was down for a second: some publishes must be refused"
        assert row.lost() == row.duplicated() == 0, explain(subscribers, steady.accepted)
        for subscriber, counts in zip(subscribers, tallies, strict=True):
            assert counts.resets >= 1, f"{subscriber.name} was not told of the new epoch"
    finally:
        stop_all(subscribers)


def test_a_worker_sigkilled_mid_stream(masters: tuple[Server, Server], publisher: Hub) -> None:
    first, second = masters
    start = publish_chat(publisher, "publisher", "start")
    # Everyone starts on the first master; a dropped client goes on to the second.
    subscribers = subscribers_on([first.port, second.port], start, per_kind=3)
    subscribers = [s for s in subscribers if s.ports[0] == first.port] + [
        s for s in subscribers if s.ports[0] != first.port
    ]
    try:
        steady = SteadyPublisher(publisher, count=300).start()
        time.sleep(1.0)
        killed = []
        for pid in worker_pids(first):  # until one of them held a client
            sigkill(pid)
            killed.append(pid)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not any(s.drops for s in subscribers):
                time.sleep(0.05)
            if any(s.drops for s in subscribers):
                break
        steady.join()
        end = finish(subscribers, publisher)
        moved = [s for s in subscribers if s.connects >= 2]
        tallies = [tally(s, [*steady.accepted, end]) for s in subscribers]
        row = Row(
            f"{len(killed)} gevent worker(s) SIGKILLed",
            len(subscribers),
            sent=steady.count + 1,
            refused=steady.refused,
            accepted=len(steady.accepted) + 1,
            tallies=tallies,
            notes=f"{len(moved)} clients reconnected to the other master with their last id",
        )
        record(row)
        assert moved, "no client was on the killed worker"
        assert steady.refused == 0
        assert row.lost() == row.duplicated() == 0, explain(subscribers, steady.accepted)
        assert all(t.resets == 0 for t in tallies)
    finally:
        stop_all(subscribers)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def test_a_subscriber_that_never_reads(redis: RedisServer, publisher: Hub) -> None:
    # One worker: the silent socket and the readers share a process.
    with master("gunicorn-gevent", redis.url, workers=1) as server:
        (worker,) = worker_pids(server)
        start = publish_chat(publisher, "publisher", "start")
        silent = silent_chat_socket(server.port)
        readers = [
            Subscriber(kind, [server.port], name=f"reader-{n}-{kind}", last_id=start)
            for n, kind in enumerate(("ws", "ws", "sse"))
        ]
        try:
            for reader in readers:
                reader.start()
                reader.wait_connected()
            rss_before = _rss_kib(worker)
            count, text = 6000, secrets.token_urlsafe(750)  # 1,000 characters each
            accepted = []
            started = time.monotonic()
            for n in range(count):
                accepted.append(publish_chat(publisher, "publisher", f"{n} {text}"))
                # The readers keep up while the silent one stalls; a pause every 100
                # keeps the burst within the room's retention (see the next test).
                if n % 100 == 99:
                    for reader in readers:
                        reader.wait_for(lambda s: accepted[-1] in s.chat_ids(), WAIT, "prompt")
            for reader in readers:
                reader.wait_for(lambda s: accepted[-1] in s.chat_ids(), WAIT, "given it all")
            seconds = time.monotonic() - started
            rss_growth = _rss_kib(worker) - rss_before
            frames, code, ended = drain(silent, WAIT)
            tallies = [tally(r, accepted) for r in readers]
            row = Row(
                "a chat socket that never reads",
                len(readers),
                sent=count,
                refused=0,
                accepted=len(accepted),
                tallies=tallies,
                notes=(
                    f"the silent socket got {frames} of {count} then close {code}; "
                    f"worker RSS +{rss_growth // 1024} MiB; readers had all in {seconds:.1f} s, "
                    f"reconnecting {sum(r.connects - 1 for r in readers)} times"
                ),
            )
            record(row)
            assert row.lost() == row.duplicated() == 0, explain(readers, accepted)
            assert frames < count // 2, "the silent socket was not cut off"
            assert ended, "the silent socket is still open"
            assert code in (1013, None), code  # no close frame when it cannot be written
            assert rss_growth < 64 * 1024, f"the worker grew by {rss_growth} KiB"
        finally:
            silent.close()
            stop_all(readers)


def test_a_resume_from_a_trimmed_id(masters: tuple[Server, Server], publisher: Hub) -> None:
    first, second = masters
    oldest = publish_chat(publisher, "publisher", "soon trimmed")
    count = 3 * HISTORY  # the room keeps about HISTORY per channel
    accepted = [publish_chat(publisher, "publisher", f"after {n}") for n in range(count)]
    resumers = [
        Subscriber(kind, [port], name=f"{kind}-resumer", last_id=oldest, reconnect=False)
        for kind, port in (("sse", first.port), ("ws", second.port))
    ]
    try:
        for resumer in resumers:
            resumer.start()
        for resumer in resumers:
            resumer.wait_for(lambda s: accepted[-1] in s.chat_ids(), WAIT, "given the last")
        tallies = [tally(r, accepted) for r in resumers]
        row = Row(
            "a resume from a trimmed id",
            len(resumers),
            sent=count,
            refused=0,
            accepted=count,
            tallies=tallies,
            notes=f"retention about {HISTORY} per channel; a feed and a chat socket",
        )
        record(row)
        assert row.lost() == row.duplicated() == 0, explain(resumers, accepted)
        for resumer, counts in zip(resumers, tallies, strict=True):
            assert counts.resets == 1
            reset = resumer.resets()[0]
            assert resumer.deliveries[0] == reset, "the reset comes first"
            assert reset.data["reason"] == "trimmed"
            assert counts.announced > 0
            assert counts.delivered >= HISTORY // 2
    finally:
        stop_all(resumers)


def test_a_burst_beyond_the_retention_is_announced(
    masters: tuple[Server, Server], publisher: Hub
) -> None:
    """Published faster than the workers' readers read, past what Redis keeps: said, not lost."""
    first, second = masters
    start = publish_chat(publisher, "publisher", "start")
    subscribers = subscribers_on([first.port, second.port], start, per_kind=1)
    try:
        count = 10 * HISTORY
        accepted = [publish_chat(publisher, "publisher", f"burst {n}") for n in range(count)]
        end = finish(subscribers, publisher)
        tallies = [tally(s, [*accepted, end]) for s in subscribers]
        row = Row(
            f"a burst of {count} with no pause (retention about {HISTORY})",
            len(subscribers),
            sent=count + 1,
            refused=0,
            accepted=count + 1,
            tallies=tallies,
            notes="a gap the worker's reader could not read in time must come with a reset",
        )
        record(row)
        assert row.lost() == row.duplicated() == 0, explain(subscribers, accepted)
    finally:
        stop_all(subscribers)
