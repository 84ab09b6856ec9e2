"""The Redis Streams engine against a real redis-server: sharing, trimming, epochs, faults."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from faye_sync import HubUnavailable
from faye_sync.hub import RESET, Hub
from faye_sync.hub.message import id_key
from faye_sync.hub.redis_streams import _PUBLISH
from tests.hub.helpers import WAIT, take, until
from tests.redis_server import RedisServer


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield connection
    connection.close()


def test_publish_from_a_process_with_no_server(redis_hub: Hub, prefix: str) -> None:
    url = redis_hub._engine._url  # type: ignore[attr-defined]
    sub = redis_hub.subscribe("chat")
    code = (
        "from faye_sync.hub import Hub;"
        f"hub = Hub.from_url({url!r}, prefix={prefix!r});"
        "print(hub.publish('chat', 'hello'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    (message,) = take(sub, 1)
    assert (message.id, message.data) == (result.stdout.strip(), "hello")


def test_two_hubs_on_one_redis_see_one_order(redis_server: RedisServer, prefix: str) -> None:
    with (
        Hub.from_url(redis_server.url, prefix=prefix, block=0.2) as one,
        Hub.from_url(redis_server.url, prefix=prefix, block=0.2) as two,
    ):
        subs = [one.subscribe(["a", "b"]), two.subscribe(["a", "b"])]
        ids = [(one, two)[i % 2].publish("ab"[i // 2 % 2], str(i)) for i in range(200)]
        for sub in subs:
            assert [m.id for m in take(sub, 200)] == ids
        keys = [id_key(message_id) for message_id in ids]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_trimming_records_the_last_deleted_id(
    redis_server: RedisServer, prefix: str, client: redis.Redis
) -> None:
    # Redis's own MAXLEN ~ leaves max-deleted-entry-id at 0-0 (measured on 7.0):
    # the hub trims exactly and records it, or a trimmed resume would pass unseen.
    with Hub.from_url(redis_server.url, prefix=prefix, max_len=10) as hub:
        ids = [hub.publish("chat", str(i)) for i in range(40)]
    info = client.xinfo_stream(f"{prefix}:ch:chat")
    assert info["length"] == 10
    assert info["max-deleted-entry-id"] == ids[29]
    assert info["first-entry"][0] == ids[30]


def test_retention_by_age_on_redis(redis_server: RedisServer, prefix: str) -> None:
    with Hub.from_url(redis_server.url, prefix=prefix, max_len=None, max_age=0.2) as hub:
        first = hub.publish("chat", "a")
        second = hub.publish("chat", "b")
        time.sleep(0.3)
        hub.publish("chat", "c")
        reset, message = take(hub.subscribe("chat", last_id=first), 2)
    assert reset.event == RESET and reset.id == second
    assert json.loads(reset.data)["reason"] == "trimmed"
    assert message.data == "c"


def test_an_id_from_before_flushall_gets_an_epoch_reset(own_redis: RedisServer) -> None:
    with Hub.from_url(own_redis.url, block=0.2) as hub:
        hub.publish("chat", "opens the epoch")
        time.sleep(0.002)  # a store is flushed a while after it starts, not in its millisecond
        old = hub.publish("chat", "before")
        redis.Redis.from_url(own_redis.url).flushall()
        new = hub.publish("chat", "after")
        reset, message = take(hub.subscribe("chat", last_id=old), 2)
    assert reset.event == RESET and json.loads(reset.data)["reason"] == "epoch"
    assert id_key(old) < id_key(reset.id) < id_key(new)
    assert (message.id, message.data) == (new, "after")


def test_an_id_stamped_in_the_millisecond_of_a_flushall_is_not_stamped_again(
    own_redis: RedisServer,
) -> None:
    # Publish, FLUSHALL, publish in one MULTI: nearly always one millisecond of
    # Redis's clock, where the new epoch used to restart the old store's ids.
    keys, args = ["faye_sync:meta", "faye_sync:ch:chat"], ["x", "0", "", "", "", "1", "chat"]
    with (
        redis.Redis.from_url(own_redis.url, decode_responses=True) as client,
        Hub.from_url(own_redis.url, block=0.2) as hub,
    ):
        stamp = client.register_script(_PUBLISH)
        for _ in range(20):
            hub.publish("chat", "opens the epoch")
            time.sleep(0.002)  # as in the test above
            transaction = client.pipeline(transaction=True)
            stamp(keys, args, client=transaction)
            transaction.flushall()
            stamp(keys, args, client=transaction)
            old, _, new = transaction.execute()
            assert id_key(old) != id_key(new)
            with hub.subscribe("chat", last_id=old) as sub:
                reset, message = take(sub, 2)
            assert json.loads(reset.data)["reason"] == "epoch" and message.id == new


def test_publish_during_an_outage_raises_promptly_and_recovers(own_redis: RedisServer) -> None:
    with Hub.from_url(own_redis.url, block=0.2, timeout=2.0) as hub:
        hub.publish("chat", "up")
        own_redis.stop()
        started = time.monotonic()
        with pytest.raises(HubUnavailable, match="unavailable: publish"):
            hub.publish("chat", "down")
        assert time.monotonic() - started < WAIT
        own_redis.start()
        assert id_key(hub.publish("chat", "up again")) > (0, 0)


def test_redis_restarted_empty_gives_live_subscribers_a_reset(own_redis: RedisServer) -> None:
    with Hub.from_url(own_redis.url, block=0.2, timeout=2.0) as hub:
        sub = hub.subscribe("chat")
        sent = [hub.publish("chat", str(i)) for i in range(5)]
        assert [m.id for m in take(sub, 5)] == sent
        own_redis.restart()
        until(lambda: _publish_ok(hub, sent))
        got = take(sub, 1 + len(sent) - 5)
    resets = [m for m in got if m.event == RESET]
    assert len(resets) == 1 and json.loads(resets[0].data)["reason"] == "epoch"
    assert got[0] is resets[0]
    assert [m.id for m in got[1:]] == sent[5:]  # nothing after the restart lost or doubled


def _publish_ok(hub: Hub, sent: list[str]) -> bool:
    try:
        sent.append(hub.publish("chat", "after restart"))
    except HubUnavailable:
        return False
    return True


def test_a_frozen_redis_times_out_publish_and_nothing_is_lost(own_redis: RedisServer) -> None:
    with Hub.from_url(own_redis.url, block=0.2, timeout=1.0) as hub:
        sub = hub.subscribe("chat")
        sent = [hub.publish("chat", str(i)) for i in range(10)]
        own_redis.pause()
        try:
            started = time.monotonic()
            with pytest.raises(HubUnavailable):
                hub.publish("chat", "maybe")  # written, unanswered: it may be stored
            assert time.monotonic() - started < WAIT
        finally:
            own_redis.resume()
        until(lambda: _publish_ok(hub, sent))
        sent += [hub.publish("chat", str(i)) for i in range(10, 20)]
        got = [m for m in take(sub, len(sent) + 1, timeout=WAIT) if m.data != "maybe"]
    assert not [m for m in got if m.event == RESET]
    assert [m.id for m in got] == sent


def test_the_reader_reconnects_and_resumes_from_its_last_id(
    redis_hub: Hub, client: redis.Redis
) -> None:
    """Its connection killed three times; what was published meanwhile still comes, once."""
    sub = redis_hub.subscribe("chat", max_messages=10_000)
    sent: list[str] = []
    for _ in range(3):
        sent += [redis_hub.publish("chat", str(len(sent))) for _ in range(100)]
        until(lambda: any(c.get("cmd") == "xread" for c in client.client_list()))
        reader = next(c for c in client.client_list() if c.get("cmd") == "xread")
        client.client_kill_filter(_id=reader["id"])
        # Published while the reader backs off and reconnects.
        sent += [redis_hub.publish("chat", str(len(sent))) for _ in range(100)]
    got = take(sub, 600, timeout=WAIT * 2)
    assert [m.id for m in got] == sent
    assert sub.get(0.3) is None


def test_rediss_url_goes_through_redis_py(redis_server: RedisServer) -> None:
    # No TLS server here: the URL is accepted and the failure is a typed one.
    hub = Hub.from_url(f"rediss://127.0.0.1:{redis_server.port}/0", timeout=1.0)
    try:
        with pytest.raises(HubUnavailable):
            hub.publish("chat", "x")
    finally:
        hub.close()


def test_a_new_channel_does_not_wait_out_the_readers_block(
    redis_server: RedisServer, prefix: str
) -> None:
    with Hub.from_url(redis_server.url, prefix=prefix, block=20) as hub:
        hub.subscribe("first")
        time.sleep(0.2)  # the reader is now blocked for 20 s on "first"
        sub = hub.subscribe("second")
        started = time.monotonic()
        hub.publish("second", "hello")
        assert [m.data for m in take(sub, 1)] == ["hello"]
        assert time.monotonic() - started < 5  # not the 20 s block
        closing = time.monotonic()
    assert time.monotonic() - closing < 5  # close woke the reader too


def test_rediss_with_a_real_tls_server(tls_redis: tuple[RedisServer, str], prefix: str) -> None:
    _, url = tls_redis
    with Hub.from_url(url, prefix=prefix, block=0.2) as hub:
        sub = hub.subscribe("chat")
        message_id = hub.publish("chat", "over TLS")
        assert [(m.id, m.data) for m in take(sub, 1)] == [(message_id, "over TLS")]


def test_a_deleted_stream_gives_a_reset(redis_hub: Hub, prefix: str, client: redis.Redis) -> None:
    ids = [redis_hub.publish("chat", str(i)) for i in range(5)]
    client.delete(f"{prefix}:ch:chat")
    sub = redis_hub.subscribe("chat", last_id=ids[1])
    (reset,) = take(sub, 1)
    assert reset.event == RESET and json.loads(reset.data)["reason"] == "trimmed"
    assert reset.id == ids[-1]
    # Published again: the stream is back, and still knows what was deleted.
    new = redis_hub.publish("chat", "again")
    assert [m.id for m in take(sub, 1)] == [new]
    (reset, message) = take(redis_hub.subscribe("chat", last_id=ids[1]), 2)
    assert reset.event == RESET and reset.id == ids[-1] and message.id == new


def test_closing_the_hub_under_running_reads_raises_only_hub_unavailable(
    redis_server: RedisServer, prefix: str
) -> None:
    """Before: a read that close() cut short raised redis-py's AttributeError.

    An EventSource producer still catching up when its hub closed logged it as a
    crash; what it must see is the hub's own typed error, which ends a stream quietly.
    """
    hub = Hub.from_url(redis_server.url, prefix=prefix, block=0.2)
    for n in range(200):
        hub.publish("chat", "x" * 1000 + str(n))
    engine = hub._engine
    errors: list[BaseException] = []

    def read_until_closed() -> None:
        try:
            while True:
                engine.history({"chat": "0-0"}, 200)
        except HubUnavailable:
            pass
        except BaseException as error:  # anything else is the bug
            errors.append(error)

    readers = [threading.Thread(target=read_until_closed) for _ in range(4)]
    for reader in readers:
        reader.start()
    time.sleep(0.3)
    hub.close()
    for reader in readers:
        reader.join(WAIT)
    assert not any(reader.is_alive() for reader in readers)
    assert errors == []
    with pytest.raises(HubUnavailable, match="closed"):
        hub.publish("chat", "after")
