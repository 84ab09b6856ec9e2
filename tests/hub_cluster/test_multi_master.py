"""Two gunicorn masters (gevent and gthread, two workers each) on one Redis: one chat room.

Each master is what a second host would run; a message said on any worker of either reaches
every chat socket and feed on all of them, once, in one order, and a client that moves from
one master to the other with its last id gets exactly what it missed.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

from tests.hub_cluster.clients import TIMEOUT, Subscriber, id_key, stop_all
from tests.servers import Server

pytest.importorskip("redis", reason="the Redis engine needs redis-py: pip install redis")
if shutil.which("redis-server") is None:
    pytest.skip("no redis-server: apt-get install -y redis-server", allow_module_level=True)

from faye_sync.hub import Hub
from tests.hub_cluster.cluster import master
from tests.redis_server import RedisServer
from wsgi_examples.chat import make_hub, publish_chat

pytestmark = pytest.mark.slow

SENDERS = 4
MESSAGES = 25  # per sender
WAIT = 30.0  # seconds for everything to arrive on a loaded machine


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def masters(redis: RedisServer) -> Iterator[tuple[Server, Server]]:
    with (
        master("gunicorn-gevent", redis.url) as gevent_master,
        master("gunicorn-gthread", redis.url) as gthread_master,
    ):
        yield gevent_master, gthread_master


@pytest.fixture(scope="module")
def publisher(redis: RedisServer) -> Iterator[Hub]:
    """A process with no web server in it that publishes to the room (the test process)."""
    hub = make_hub(redis.url)
    yield hub
    hub.close()


def say_all(port: int, name: str, texts: list[str]) -> None:
    """Send ``texts`` in order on one chat socket, then leave."""
    # max_queue=None: the talker does not read, and websockets would otherwise stop reading
    # the socket after 16 messages and wait out its close timeout behind them.
    url = f"ws://127.0.0.1:{port}/chat?name={name}"
    with connect(url, open_timeout=TIMEOUT, max_queue=None) as ws:
        for text in texts:
            ws.send(text)


def test_every_message_reaches_every_socket_once_and_in_one_order(
    masters: tuple[Server, Server], publisher: Hub
) -> None:
    ports = [server.port for server in masters]
    start = publish_chat(publisher, "test", "start")  # everyone resumes from here
    subscribers = [
        Subscriber(kind, [port], name=f"{kind}-{n}-{port}", last_id=start, reconnect=False)
        for port in ports
        for n, kind in enumerate(("ws", "ws", "ws", "sse"))
    ]
    try:
        for subscriber in subscribers:
            subscriber.start()
        for subscriber in subscribers:
            subscriber.wait_connected()

        # Four chat users, two on each master, talking at the same time.
        texts = {
            f"sender{s}": [f"sender{s} says {n}" for n in range(MESSAGES)] for s in range(SENDERS)
        }
        talkers = [
            threading.Thread(target=say_all, args=(ports[s % 2], name, said))
            for s, (name, said) in enumerate(texts.items())
        ]
        for talker in talkers:
            talker.start()
        for talker in talkers:
            talker.join(WAIT)
        every_text = {text for said in texts.values() for text in said}
        for subscriber in subscribers:
            subscriber.wait_for(lambda s: every_text <= set(s.texts()), WAIT, "given every message")

        orders = []
        for subscriber in subscribers:
            assert subscriber.connects == 1, subscriber.drops
            said = [t for t in subscriber.texts() if t in every_text]
            assert len(said) == len(every_text), f"{subscriber.name}: a message came twice"
            chats = [d for d in subscriber.deliveries if d.event == "chat"]
            ids = [d.id for d in chats if d.data["text"] in every_text]
            assert ids == sorted(ids, key=id_key), f"{subscriber.name}: not in id order"
            for name, sent in texts.items():  # each sender's messages in the order sent
                assert [t for t in said if t.startswith(f"{name} ")] == sent
            orders.append(ids)
        assert all(order == orders[0] for order in orders), "two sockets saw two orders"
    finally:
        stop_all(subscribers)


@pytest.mark.parametrize("kind", ["sse", "ws"])
def test_a_client_moving_to_the_other_master_gets_exactly_what_it_missed(
    masters: tuple[Server, Server], publisher: Hub, kind: str
) -> None:
    first, second = (server.port for server in masters)
    start = publish_chat(publisher, "test", f"start {kind}")
    steady = Subscriber(kind, [second], name="steady", last_id=start, reconnect=False).start()
    mover = Subscriber(kind, [first], name="mover", last_id=start, reconnect=False).start()
    later: Subscriber | None = None
    try:
        steady.wait_connected()
        mover.wait_connected()
        before = [publish_chat(publisher, "pub", f"{kind} before {n}") for n in range(10)]
        mover.wait_for(lambda s: s.has_ids(before), WAIT, "given the first ten")
        mover.stop()  # the client goes away from the first master...

        # ...and while it is away the room goes on, on both masters.
        missed = [publish_chat(publisher, "pub", f"{kind} missed {n}") for n in range(10)]
        say_all(first, "first-master", [f"{kind} said on the first master"])
        say_all(second, "second-master", [f"{kind} said on the second master"])
        end = publish_chat(publisher, "pub", f"{kind} end")

        later = Subscriber(kind, [second], name="moved", last_id=mover.last_id, reconnect=False)
        later.start()
        for subscriber in (steady, later):
            subscriber.wait_for(lambda s: end in s.chat_ids(), WAIT, "given the end")

        # The moved client's two halves are exactly the steady client's stream.
        def ids(subscriber: Subscriber) -> list[str]:
            return [d.id for d in subscriber.deliveries if id_key(d.id) <= id_key(end)]

        def seen(subscriber: Subscriber) -> str:  # kept for a failure that has come once
            stream = [(d.event, d.id) for d in subscriber.deliveries]
            return f"{subscriber.name}: {stream}, drops {subscriber.drops}"

        assert ids(mover) + ids(later) == ids(steady), "\n".join(
            seen(s) for s in (mover, later, steady)
        )
        assert set(missed) <= set(later.chat_ids())
        assert not set(before) & set(later.chat_ids()), "something it had was sent again"
        texts = later.texts()
        assert f"{kind} said on the first master" in texts
        assert f"{kind} said on the second master" in texts
        if kind == "sse":  # the feed has the joins and leaves too, from both masters
            joined = {"first-master", "second-master"}

            def presence(event: str) -> set[str]:
                return {d.data["name"] for d in later.deliveries if d.event == event} & joined

            later.wait_for(lambda s: presence("leave") == joined, WAIT, "told of both leaves")
            assert presence("join") == joined
    finally:
        stop_all([s for s in (steady, mover, later) if s is not None])
