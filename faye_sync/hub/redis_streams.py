"""The ``redis://`` and ``rediss://`` engine: one Redis stream per channel, through redis-py.

Keys: ``<prefix>:ch:<channel>`` (a stream; fields ``d`` data, ``e`` event),
``<prefix>:meta`` (a hash: ``last``, the hub's clock; ``epoch``, where the
current epoch starts) and ``<prefix>:wake:<random>`` (a one-entry stream per
process that wakes its reader; it expires). Publishing is one EVALSHA of a small script that stamps
the id ``max(TIME, last + 1)``, XADDs with that explicit id, and trims exactly,
recording the highest id it deleted as the stream's ``max-deleted-entry-id``
(XSETID; Redis's own approximate trimming does not update it). A client that
asks for anything at or below that id, or below the epoch, gets a reset.

Under gevent without monkey-patching, redis-py's stdlib sockets would block every
greenlet; calls made in a greenlet use a client whose connections are gevent
sockets instead (``rediss://`` there: the call runs in gevent's thread pool).
"""

from __future__ import annotations

import secrets
import socket
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ..blocking.backends import detect_backend
from ..exceptions import HubError, HubUnavailable
from .engine import Batches, Engine, State
from .message import HubMessage, id_key

__all__ = ["RedisEngine"]

T = TypeVar("T")

_CLOCK = """
local function clock(meta)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local last = redis.call('HGET', meta, 'last')
  if not last then
    -- A new epoch starts a millisecond ahead: an id the emptied store stamped
    -- in this same millisecond must still be below it (or it is issued again).
    last = string.format('%.0f-0', now + 1)
    redis.call('HSET', meta, 'last', last, 'epoch', last)
  end
  return now, last
end
local function split(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
"""

# KEYS: meta, stream. ARGV: data, has_event ("0"/"1"), event, max_len or "",
# max_age in ms or "", slack (trim max_len only once this many are over), channel.
_PUBLISH = (
    _CLOCK
    + """
local meta, key = KEYS[1], KEYS[2]
local now, last = clock(meta)
local lms, lseq = split(last)
local id
if now > lms then id = string.format('%.0f-0', now)
else id = string.format('%.0f-%.0f', lms, lseq + 1) end
-- A channel that had messages and has no stream was deleted: record what went.
local dropped = nil
if redis.call('EXISTS', key) == 0 then
  dropped = redis.call('HGET', meta, 'c:' .. ARGV[7]) or nil
end
if ARGV[2] == '1' then redis.call('XADD', key, id, 'd', ARGV[1], 'e', ARGV[3])
else redis.call('XADD', key, id, 'd', ARGV[1]) end
local max_len = tonumber(ARGV[4])
if max_len then
  local excess = redis.call('XLEN', key) - max_len
  if excess >= tonumber(ARGV[6]) then
    local head = redis.call('XRANGE', key, '-', '+', 'COUNT', excess + 1)
    dropped = head[excess][1]
    redis.call('XTRIM', key, 'MINID', head[excess + 1][1])
  end
end
local max_age = tonumber(ARGV[5])
if max_age then
  local minid = string.format('%.0f-0', split(id) - max_age)
  local older = redis.call('XREVRANGE', key, '(' .. minid, '-', 'COUNT', 1)
  if older[1] then
    local oms, oseq = split(older[1][1])
    if not dropped then dropped = older[1][1] else
      local dms, dseq = split(dropped)
      if oms > dms or (oms == dms and oseq > dseq) then dropped = older[1][1] end
    end
    redis.call('XTRIM', key, 'MINID', minid)
  end
end
if dropped then redis.call('XSETID', key, id, 'MAXDELETEDID', dropped) end
redis.call('HSET', meta, 'last', id, 'c:' .. ARGV[7], id)
return id
"""
)

# KEYS: meta, then streams; ARGV: their channels. Returns epoch, last, then each
# stream's max-deleted-entry-id (a deleted stream: the last id its channel had).
_STATE = (
    _CLOCK
    + """
local now, last = clock(KEYS[1])
local out = {redis.call('HGET', KEYS[1], 'epoch') or last, last}
for i = 2, #KEYS do
  local deleted = '0-0'
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local info = redis.call('XINFO', 'STREAM', KEYS[i])
    for j = 1, #info, 2 do
      if info[j] == 'max-deleted-entry-id' then deleted = info[j + 1] end
    end
  else
    deleted = redis.call('HGET', KEYS[1], 'c:' .. ARGV[i - 1]) or '0-0'
  end
  out[#out + 1] = deleted
end
return out
"""
)


class RedisEngine(Engine):
    """Redis Streams through redis-py (``pip install faye_sync[redis]``).

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://…``
            (TLS; redis-py's URL options such as ``ssl_cert_reqs`` apply).
        prefix: the start of every key the hub uses.
        max_len: messages kept per channel (None: no count limit).
        max_age: seconds a message is kept (None: no age limit).
        timeout: seconds any command may take (connect, send, reply) before
            :class:`~faye_sync.HubUnavailable`; a blocking read gets its block
            time on top.
        options: more keyword arguments for ``redis.Redis.from_url``.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "faye_sync",
        max_len: int | None = 10_000,
        max_age: float | None = None,
        timeout: float = 5.0,
        **options: Any,
    ) -> None:
        try:
            import redis
        except ImportError:
            raise HubError(
                f"{url.partition(':')[0]}:// needs redis-py: pip install 'faye_sync[redis]'"
            ) from None
        self._redis = redis
        self._url = url
        self._meta = f"{prefix}:meta"
        self._streams = f"{prefix}:ch:"
        # The reader's read also waits on this key, so that a new channel (or
        # close) need not wait out the block time. One per engine, expiring.
        self._wake = f"{prefix}:wake:{secrets.token_hex(8)}"
        self._wake_seen = "0-0"
        self._timeout = timeout
        self._options = options
        self._tls = url.startswith("rediss:")
        self._trim_args = (
            "" if max_len is None else str(max_len),
            "" if max_age is None else str(round(max_age * 1000)),
            str(max(1, min(100, (max_len or 0) // 10))),
        )
        self._clients: dict[tuple[bool, float], Any] = {}
        self._closed = False
        try:
            self._client(False, 0.0)  # a bad URL fails here, not on the first publish
        except ValueError as error:
            raise HubError(f"bad Redis URL {_safe(url)!r}: {error}") from None

    # -- connections --------------------------------------------------------

    def _client(self, green: bool, extra: float) -> Any:
        """The client for this thread or greenlet, with ``extra`` seconds of read time."""
        client = self._clients.get((green, extra))
        if client is None:
            redis = self._redis
            options: dict[str, Any] = {
                "socket_timeout": self._timeout + extra,
                "socket_connect_timeout": self._timeout,
                "socket_keepalive": True,
                "health_check_interval": 30,
                "decode_responses": True,
                # Commands: one retry, only for a connection found dead (Redis
                # restarted); a timeout may have run the command, so it is not
                # retried. The reader (extra > 0): none; it backs off itself, and
                # the state read with each read tells what an outage lost.
                "retry": redis.retry.Retry(
                    redis.backoff.NoBackoff(),
                    0 if extra else 1,
                    supported_errors=(redis.ConnectionError,),
                ),
                **self._options,
            }
            if green and not self._tls:
                options["connection_class"] = _gevent_connection_class(redis)
            client = redis.Redis.from_url(self._url, **options)
            client.faye_publish = client.register_script(_PUBLISH)
            self._clients[green, extra] = client
        return client

    def _call(self, what: str, fn: Callable[[Any], T], extra: float = 0.0) -> T:
        redis = self._redis
        if self._closed:
            raise HubUnavailable(f"the hub on {_safe(self._url)} is closed: {what}")
        green = detect_backend().name == "gevent" and not _socket_patched()
        try:
            if green and self._tls:
                # redis-py's TLS on a stdlib socket would block the whole process:
                # run the call in gevent's thread pool, which the greenlet waits on.
                import gevent

                client = self._client(False, extra)
                result: T = gevent.get_hub().threadpool.apply(fn, (client,))
                return result
            return fn(self._client(green, extra))
        except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
            raise HubUnavailable(f"Redis at {_safe(self._url)} unavailable: {what}: {error}") from (
                error
            )
        except redis.RedisError as error:
            raise HubError(f"Redis at {_safe(self._url)} refused {what}: {error}") from error
        except Exception as error:
            # close() disconnects connections in use; redis-py then fails a read
            # under way with whatever its torn-down parser raises (AttributeError).
            if self._closed:
                raise HubUnavailable(
                    f"the hub on {_safe(self._url)} was closed during {what}"
                ) from error
            raise

    # -- the engine ---------------------------------------------------------

    def publish(self, channel: str, data: str, event: str | None) -> str:
        args = [data, "0" if event is None else "1", event or "", *self._trim_args, channel]
        keys = [self._meta, self._streams + channel]
        message_id: str = self._call("publish", lambda c: c.faye_publish(keys=keys, args=args))
        return message_id

    def read(self, positions: Mapping[str, str], *, count: int, block: float) -> Batches:
        streams = {self._streams + channel: position for channel, position in positions.items()}
        # From the last wake seen, not "$": a wake added between two reads counts.
        streams[self._wake] = self._wake_seen
        keys = self._state_keys(positions)

        def read(client: Any) -> list[Any]:
            # One round trip: the state script runs right after XREAD returns.
            pipeline = client.pipeline(transaction=False)
            pipeline.xread(streams, count=count, block=max(1, round(block * 1000)))
            pipeline.eval(_STATE, len(keys), *keys, *positions)
            return list(pipeline.execute())

        reply, state = self._call("read", read, extra=block)
        found = {}
        for key, entries in reply or ():
            if key == self._wake:
                self._wake_seen = entries[-1][0]
            else:
                found[key[len(self._streams) :]] = self._messages(key, entries)
        return found, self._parse_state(positions, state)

    def history(self, afters: Mapping[str, str], count: int) -> Batches:
        keys = [self._streams + channel for channel in afters]

        def read(client: Any) -> list[Any]:
            transaction = client.pipeline(transaction=True)
            for key, after in zip(keys, afters.values(), strict=True):
                transaction.xrange(key, f"({after}", "+", count=count)
            state_keys = self._state_keys(afters)
            transaction.eval(_STATE, len(state_keys), *state_keys, *afters)
            return list(transaction.execute())

        *replies, state = self._call("history", read)
        found = {
            channel: self._messages(key, entries)
            for channel, key, entries in zip(afters, keys, replies, strict=True)
        }
        return found, self._parse_state(afters, state)

    def state(self, channels: Iterable[str]) -> State:
        names = list(channels)
        keys = self._state_keys(names)
        return self._parse_state(
            names, self._call("state", lambda c: c.eval(_STATE, len(keys), *keys, *names))
        )

    def _state_keys(self, channels: Iterable[str]) -> list[str]:
        return [self._meta, *(self._streams + channel for channel in channels)]

    @staticmethod
    def _parse_state(channels: Iterable[str], reply: list[str]) -> State:
        trimmed = {
            channel: id_key(deleted) for channel, deleted in zip(channels, reply[2:], strict=True)
        }
        return State(id_key(reply[0]), id_key(reply[1]), trimmed)

    def interrupt(self) -> None:
        def wake(client: Any) -> None:
            with client.pipeline(transaction=False) as pipeline:
                pipeline.xadd(self._wake, {"w": "1"}, maxlen=1)
                pipeline.expire(self._wake, 60)
                pipeline.execute()

        try:
            self._call("wake", wake)
        except HubError:
            pass  # the reader is failing too; it reconnects on its own

    def close(self) -> None:
        self._closed = True
        for client in list(self._clients.values()):
            try:
                client.close()
            except Exception:  # closing what may already be broken
                pass
        self._clients.clear()

    def _messages(self, key: str, entries: Iterable[Any]) -> list[HubMessage]:
        channel = key[len(self._streams) :]
        return [
            HubMessage(entry_id, channel, fields.get("e"), fields.get("d", ""))
            for entry_id, fields in entries
        ]


def _socket_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


_gevent_connection: Any = None


def _gevent_connection_class(redis: Any) -> Any:
    """redis-py's TCP connection on a gevent socket: waits yield to the other greenlets."""
    global _gevent_connection
    if _gevent_connection is None:
        import gevent.socket

        class GeventConnection(redis.connection.Connection):  # type: ignore[misc]
            def _connect(self) -> Any:
                sock = gevent.socket.create_connection(
                    (self.host, self.port), timeout=self.socket_connect_timeout
                )
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.socket_keepalive:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                sock.settimeout(self.socket_timeout)
                return sock

        _gevent_connection = GeventConnection
    return _gevent_connection


def _safe(url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = url.partition("://")
    _credentials, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{'***@' if at else ''}{host}"
