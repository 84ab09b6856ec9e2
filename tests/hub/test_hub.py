"""The hub's behaviour on both engines: memory, and a real redis-server."""

from __future__ import annotations

import json
import threading
import time

import pytest

from faye_sync import HubError
from faye_sync.hub import RESET, Hub, HubMessage, Subscription
from faye_sync.hub.message import id_key
from faye_sync.protocol.sse import encode_event
from tests.hub.helpers import WAIT, assert_no_silent_loss, take, until
from tests.redis_server import RedisServer


@pytest.fixture
def small_hub(request: pytest.FixtureRequest, redis_server: RedisServer, prefix: str) -> Hub:
    """A hub keeping 10 messages per channel, on the engine named by the test's param."""
    engine = getattr(request, "param", "memory")
    url = "memory://" if engine == "memory" else redis_server.url
    hub = Hub.from_url(url, max_len=10, prefix=prefix, block=0.2)
    request.addfinalizer(hub.close)
    return hub


def test_one_id_order_across_channels(hub: Hub) -> None:
    sub = hub.subscribe(["a", "b", "c"])
    published = [(hub.publish("abc"[i % 3], str(i)), "abc"[i % 3]) for i in range(300)]
    got = take(sub, 300)
    assert [(m.id, m.channel) for m in got] == published
    assert [m.data for m in got] == [str(i) for i in range(300)]
    keys = [id_key(message_id) for message_id, _ in published]
    assert keys == sorted(keys) and len(set(keys)) == 300
    assert sub.get(0.3) is None  # nothing more, no duplicate


def test_events_and_data_come_through(hub: Hub) -> None:
    sub = hub.subscribe("chat")
    message_id = hub.publish("chat", "line one\nline two é", event="said")
    assert take(sub, 1) == [HubMessage(message_id, "chat", "said", "line one\nline two é")]


def test_a_message_is_one_event_stream_event_encoded_once(hub: Hub) -> None:
    sub = hub.subscribe("chat")
    message_id = hub.publish("chat", "line one\nline two é", event="said")
    [message] = take(sub, 1)
    encoded = message.event_stream_bytes()
    assert encoded == encode_event("line one\nline two é", event="said", id=message_id)
    assert message.event_stream_bytes() is encoded  # kept for the other streams
    assert message == HubMessage(message_id, "chat", "said", "line one\nline two é")


def test_resume_after_an_id_gets_exactly_what_followed(hub: Hub) -> None:
    ids = [hub.publish("chat", str(i)) for i in range(20)]
    sub = hub.subscribe("chat", last_id=ids[9])
    assert [m.data for m in take(sub, 10)] == [str(i) for i in range(10, 20)]
    ids.append(hub.publish("chat", "live"))
    assert [(m.id, m.data) for m in take(sub, 1)] == [(ids[-1], "live")]
    assert sub.get(0.3) is None


def test_zero_replays_what_is_retained_then_live(hub: Hub) -> None:
    for i in range(5):
        hub.publish("chat", str(i))
    sub = hub.subscribe("chat", last_id="0")
    assert [m.data for m in take(sub, 5)] == ["0", "1", "2", "3", "4"]
    hub.publish("chat", "5")
    assert [m.data for m in take(sub, 1)] == ["5"]


def test_zero_on_a_store_with_nothing_published_yet_has_no_reset(hub: Hub) -> None:
    """ "0" asks for everything retained: nothing yet is no gap (the chat page's first load)."""
    sub = hub.subscribe(["chat", "presence"], last_id="0")
    assert sub.get(0.3) is None  # the join has read the (empty) history
    ids = [hub.publish("presence", "join"), hub.publish("chat", "hello")]
    got = take(sub, 2)
    assert [(m.id, m.event, m.data) for m in got] == [
        (ids[0], None, "join"),
        (ids[1], None, "hello"),
    ]
    assert sub.get(0.3) is None


@pytest.mark.parametrize("small_hub", ["memory", "redis"], indirect=True)
def test_zero_has_no_reset_for_what_was_trimmed_or_never_published(small_hub: Hub) -> None:
    hub = small_hub
    early = [hub.publish("early", f"e{i}") for i in range(5)]
    for i in range(40):  # 30 trimmed, after the early ones
        hub.publish("chat", str(i))
    # One page of history, or several (a page is half of max_messages): the first page
    # ends in the early ones, before what was trimmed.
    channels = ["early", "chat", "quiet"]
    subs = [hub.subscribe(channels, last_id="0", max_messages=n) for n in (1000, 6)]
    for sub in subs:
        got = take(sub, 15)
        assert [m.data for m in got] == [*(f"e{i}" for i in range(5)), *map(str, range(30, 40))]
        assert got[0].id == early[0]
        assert sub.get(0.3) is None
    hub.publish("quiet", "q")
    for sub in subs:
        assert [(m.channel, m.data) for m in take(sub, 1)] == [("quiet", "q")]


def test_resume_over_several_channels_from_one_id(hub: Hub) -> None:
    ids = [hub.publish("ab"[i % 2], str(i)) for i in range(10)]
    sub = hub.subscribe(["a", "b"], last_id=ids[3])
    assert [m.data for m in take(sub, 6)] == [str(i) for i in range(4, 10)]


@pytest.mark.parametrize("small_hub", ["memory", "redis"], indirect=True)
def test_reset_when_the_asked_id_was_trimmed(small_hub: Hub) -> None:
    hub = small_hub
    ids = [hub.publish("chat", str(i)) for i in range(40)]
    sub = hub.subscribe("chat", last_id=ids[5])
    got = take(sub, 11)
    reset, rest = got[0], got[1:]
    assert reset.event == RESET and reset.channel == "chat"
    assert json.loads(reset.data) == {"channel": "chat", "reason": "trimmed", "last_id": ids[5]}
    assert reset.id == ids[29]  # the last id deleted: resuming after it misses nothing
    assert [m.data for m in rest] == [str(i) for i in range(30, 40)]
    # From the reset's id on, nothing is missing: no second reset.
    again = hub.subscribe("chat", last_id=reset.id)
    assert [m.data for m in take(again, 10)] == [str(i) for i in range(30, 40)]
    assert again.get(0.3) is None


@pytest.mark.parametrize("small_hub", ["memory", "redis"], indirect=True)
def test_reset_of_one_channel_keeps_the_id_order(small_hub: Hub) -> None:
    hub = small_hub
    first = hub.publish("quiet", "q0")
    for i in range(30):
        hub.publish("busy", str(i))
    later = hub.publish("quiet", "q1")
    sub = hub.subscribe(["busy", "quiet"], last_id=first)
    got = take(sub, 12)
    assert [m.event for m in got].count(RESET) == 1
    assert got[0].event == RESET and got[0].channel == "busy"
    assert [m.data for m in got[1:]] == [*(str(i) for i in range(20, 30)), "q1"]
    assert got[-1].id == later
    keys = [id_key(m.id) for m in got]
    assert keys == sorted(keys)


def test_reset_for_an_id_from_before_the_epoch(hub: Hub) -> None:
    hub.publish("chat", "now")
    sub = hub.subscribe("chat", last_id="42")  # e.g. an old integer id
    reset, message = take(sub, 2)
    assert reset.event == RESET
    assert json.loads(reset.data)["reason"] == "epoch"
    assert message.data == "now"
    assert id_key(reset.id) < id_key(message.id)


def test_reset_for_an_id_from_the_future(hub: Hub) -> None:
    hub.publish("chat", "now")
    sub = hub.subscribe("chat", last_id="99999999999999-0")
    (reset,) = take(sub, 1)
    assert json.loads(reset.data)["reason"] == "epoch"
    hub.publish("chat", "next")
    assert [m.data for m in take(sub, 1)] == ["next"]


def test_join_while_publishing_has_no_gap_and_no_duplicate(hub: Hub) -> None:
    total = 1000
    published: list[str] = []
    done = threading.Event()

    def publish() -> None:
        for i in range(total):
            published.append(hub.publish("chat", str(i)))
            if i % 10 == 0:
                time.sleep(0.002)  # let the joins interleave with publishing
        done.set()

    hub.subscribe("other")  # the reader runs before the first join
    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    joined: list[tuple[str | None, Subscription]] = []
    while not done.is_set() and len(joined) < 12:
        until(lambda: len(published) > 50 * (len(joined) + 1) or done.is_set())
        last = published[-1] if len(joined) % 3 else published[len(published) // 2]
        joined.append((last, hub.subscribe("chat", last_id=last, max_messages=total)))
    thread.join(WAIT * 3)
    assert done.is_set() and len(joined) >= 3
    for last, sub in joined:
        expected = published[published.index(last) + 1 :] if last else published
        got = take(sub, len(expected))
        assert [m.id for m in got] == expected
    # Nothing more, no duplicate: each subscription has had at least 0.2 s since its
    # last message to get one (one wait for all, not 0.2 s each).
    time.sleep(0.2)
    for _, sub in joined:
        assert sub.get(0) is None


def test_a_subscriber_that_never_reads_is_cut_and_costs_bounded_memory(hub: Hub) -> None:
    cut: list[Subscription] = []
    idle = hub.subscribe("chat", max_messages=50, on_overflow=cut.append)
    reader = hub.subscribe("chat", max_messages=1000)
    for i in range(200):
        hub.publish("chat", str(i))
    assert [m.data for m in take(reader, 200)] == [str(i) for i in range(200)]
    until(lambda: idle.overflowed)
    assert cut == [idle]
    assert len(idle._queue) <= 51
    assert idle.ended
    hub.publish("chat", "after")
    assert [m.data for m in take(reader, 1)] == ["after"]
    # What was queued before the cut can still be read; then the iteration ends.
    assert len(list(idle)) <= 51


def test_max_bytes_bounds_the_queue(hub: Hub) -> None:
    idle = hub.subscribe("chat", max_bytes=10_000)
    for _ in range(30):
        hub.publish("chat", "x" * 1000)
    until(lambda: idle.overflowed)
    assert idle._bytes <= 11_000


def test_drop_policy_replaces_the_queue_with_a_reset(hub: Hub) -> None:
    sub = hub.subscribe("chat", max_messages=10, drop=True)
    ids = [hub.publish("chat", str(i)) for i in range(25)]
    until(lambda: id_key(sub._queue[-1].id) == id_key(ids[-1]) if sub._queue else False)
    got = sub.get_batch(100, 1.0)
    assert not sub.overflowed
    resets = [m for m in got if m.event == RESET]
    assert resets and all(json.loads(m.data)["reason"] == "overflow" for m in resets)
    assert got[-1].id == ids[-1]
    assert len(got) <= 11


def test_close_ends_subscriptions_within_its_bound(hub: Hub) -> None:
    sub = hub.subscribe("chat")
    waiting: list[HubMessage | None] = []
    thread = threading.Thread(target=lambda: waiting.append(sub.get()), daemon=True)
    thread.start()
    time.sleep(0.05)
    started = time.monotonic()
    hub.close()
    thread.join(WAIT)
    assert waiting == [None] and sub.ended
    assert time.monotonic() - started < WAIT
    with pytest.raises(HubError, match="closed"):
        hub.subscribe("chat")


def test_closing_a_subscription_stops_reading_its_channel(memory_hub: Hub) -> None:
    sub = memory_hub.subscribe("chat")
    assert "chat" in memory_hub._positions
    sub.close()
    assert "chat" not in memory_hub._positions
    sub.close()  # idempotent


def test_bad_arguments_say_what_to_do(memory_hub: Hub) -> None:
    with pytest.raises(TypeError, match=r"json\.dumps"):
        memory_hub.publish("chat", {"a": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        memory_hub.publish("chat", "x", event="bad\nevent")
    with pytest.raises(ValueError, match="non-empty"):
        memory_hub.publish("", "x")
    with pytest.raises(ValueError, match="not a hub message id"):
        memory_hub.subscribe("chat", last_id="yesterday")
    with pytest.raises(ValueError, match="at least one channel"):
        memory_hub.subscribe([])
    with pytest.raises(HubError, match="unknown hub URL"):
        Hub.from_url("nats://127.0.0.1")
    with pytest.raises(ValueError, match="retention must be bounded"):
        Hub.from_url("memory://", max_len=None)


def test_memory_retention_by_age() -> None:
    hub = Hub.from_url("memory://", max_len=None, max_age=0.2)
    try:
        first = hub.publish("chat", "old")
        second = hub.publish("chat", "older than 0.2 s")
        time.sleep(0.3)
        hub.publish("chat", "new")
        sub = hub.subscribe("chat", last_id=first)
        reset, message = take(sub, 2)
        assert reset.event == RESET and reset.id == second
        assert message.data == "new"
    finally:
        hub.close()


@pytest.mark.parametrize("engine", ["memory", "redis"])
def test_a_reader_that_falls_behind_retention_says_so(
    engine: str, redis_server: RedisServer, prefix: str
) -> None:
    """Published while the reader is held up, kept 50: the gaps are announced."""
    from faye_sync.hub.memory import MemoryEngine
    from faye_sync.hub.redis_streams import RedisEngine

    store = (
        MemoryEngine(max_len=50)
        if engine == "memory"
        else RedisEngine(redis_server.url, prefix=prefix, max_len=50)
    )
    hub = Hub(store, block=0.2, count=100)  # more than is kept: never a full read
    try:
        sub = hub.subscribe("chat", max_messages=10_000)
        with hub._lock:  # the reader cannot dispatch meanwhile: it falls behind
            published = [hub.publish("chat", str(i)) for i in range(2000)]
        received: list[HubMessage] = []
        while not received or received[-1].id != published[-1]:
            batch = sub.get_batch(10_000, WAIT)
            assert batch, f"stalled after {len(received)}"
            received += batch
        delivered = sum(m.event != RESET for m in received)
        resets = assert_no_silent_loss(published, received)
        assert delivered == 2000 or resets > 0
        assert delivered < 2000  # the reader was held up past the retention
    finally:
        hub.close()
