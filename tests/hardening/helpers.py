"""Shared tools for the hardening tests.

Frames are built and read here by an implementation independent of the library's
(so a masking or length bug in faye_sync cannot hide itself), protocol pairs are
negotiated through the real handshake code, and resources (file descriptors,
threads, greenlets) are counted so fault tests can prove nothing leaked.
"""

from __future__ import annotations

import gc
import os
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from faye_sync import PerMessageDeflate
from faye_sync.extensions.pipeline import Extensions
from faye_sync.protocol.handshake import Acceptance, ClientHandshake, Request, server_handshake
from faye_sync.protocol.hybi import MAX_LENGTH, HybiProtocol

WAIT = 5.0  # the bound on every wait that should end at once

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
ZERO_MASK = b"\x00\x00\x00\x00"

#: Close codes a peer may put on the wire (RFC 6455 §7.4, faye's list).
VALID_CLOSE_CODES = frozenset([*range(1000, 1004), *range(1007, 1015), *range(3000, 5000)])
#: The codes faye_sync documents for failures it detects itself.
FAILURE_CODES = frozenset({1002, 1007, 1009, 1011})  # RFC 6455 §7.4.1 (faye: 1003, 1010)


# --------------------------------------------------------------------- frames


def xor_mask(payload: bytes, key: bytes) -> bytes:
    """RFC 6455 §5.3 masking, written independently of faye_sync.protocol.masking."""
    if not payload:
        return b""
    reps = len(payload) // 4 + 1
    stream = (key * reps)[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")
    return value.to_bytes(len(payload), "big")


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask: bytes | None = ZERO_MASK,
    declared: int | None = None,
) -> bytes:
    """One frame; ``mask=None`` for a server's unmasked frame.

    ``declared`` writes another length in the header than the payload has (to
    announce a huge frame and send only its start).
    """
    length = len(payload) if declared is None else declared
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    bit = 0x80 if mask is not None else 0
    if length <= 125:
        header = struct.pack("!BB", first, bit | length)
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", first, bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, bit | 127, length)
    if mask is None:
        return header + payload
    return header + mask + xor_mask(payload, mask)


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode("utf-8")


@dataclass(frozen=True)
class Frame:
    fin: bool
    rsv: int  # the three RSV bits, RSV1 as 4
    opcode: int
    masked: bool
    payload: bytes  # unmasked

    @property
    def close_code(self) -> int | None:
        if self.opcode != CLOSE:
            return None
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else 1005


@dataclass
class FrameReader:
    """Reads the frames a protocol writes, incrementally (a reference parser)."""

    buffer: bytearray = field(default_factory=bytearray)
    frames: list[Frame] = field(default_factory=list)

    def feed(self, data: bytes) -> list[Frame]:
        self.buffer += data
        new: list[Frame] = []
        while True:
            parsed = _parse_one(self.buffer)
            if parsed is None:
                break
            item, used = parsed
            del self.buffer[:used]
            new.append(item)
        self.frames.extend(new)
        return new


def _parse_one(buf: bytearray) -> tuple[Frame, int] | None:
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    length, pos = b1 & 0x7F, 2
    if length == 126:
        if len(buf) < 4:
            return None
        (length,) = struct.unpack_from("!H", buf, 2)
        pos = 4
    elif length == 127:
        if len(buf) < 10:
            return None
        (length,) = struct.unpack_from("!Q", buf, 2)
        pos = 10
    masked = bool(b1 & 0x80)
    key = b""
    if masked:
        if len(buf) < pos + 4:
            return None
        key = bytes(buf[pos : pos + 4])
        pos += 4
    if len(buf) < pos + length:
        return None
    payload = bytes(buf[pos : pos + length])
    if masked:
        payload = xor_mask(payload, key)
    return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, masked, payload), pos + length


def read_frames(data: bytes) -> list[Frame]:
    """Every whole frame in ``data``; a trailing partial frame is an error."""
    reader = FrameReader()
    frames = reader.feed(data)
    assert not reader.buffer, f"{len(reader.buffer)} bytes of a partial frame left"
    return frames


def feed(protocol: HybiProtocol, data: bytes) -> None:
    """``receive_data``, then go on past pauses as the engine does on its next read.

    The protocol pauses before a close or failure that follows a message in the
    same read, so the message can be answered first; ``receive_data(b"")`` resumes.
    """
    protocol.receive_data(data)
    for _ in range(len(data) + 1):
        if not protocol.paused:
            return
        protocol.receive_data(b"")
    raise AssertionError("receive_data(b'') never got past the pause")


# ------------------------------------------------------------------ handshakes


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status and lower-cased headers of an HTTP response head."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def negotiated_pair(
    *,
    deflate: bool = False,
    max_length: int = MAX_LENGTH,
    server_deflate: PerMessageDeflate | None = None,
    client_deflate: PerMessageDeflate | None = None,
) -> tuple[HybiProtocol, HybiProtocol]:
    """A (server, client) pair of open protocols, negotiated by the real handshake."""
    client_extensions = (
        Extensions([client_deflate or PerMessageDeflate()], max_length=max_length)
        if deflate
        else None
    )
    client = ClientHandshake(
        "ws://example.com/chat", extensions=client_extensions, max_length=max_length
    )
    request_head = client.request_bytes().decode("latin-1").split("\r\n")
    request_headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in request_head[1:] if line)
    }
    server_extensions = (
        Extensions([server_deflate or PerMessageDeflate()], max_length=max_length)
        if deflate
        else None
    )
    accepted = server_handshake(
        Request("GET", "/chat", request_headers),
        extensions=server_extensions,
        max_length=max_length,
    )
    assert isinstance(accepted, Acceptance), accepted
    status, headers = parse_head(accepted.response)
    client_side = client.process_response(status, headers)
    server_protocol, client_protocol = accepted.protocol, client_side.protocol
    assert isinstance(server_protocol, HybiProtocol)
    assert isinstance(client_protocol, HybiProtocol)
    if deflate:
        assert client_side.extensions.startswith("permessage-deflate")
    return server_protocol, client_protocol


# ------------------------------------------------------------------- resources


def open_fds(pid: int | str = "self") -> dict[int, str]:
    """Open file descriptors of a process and what they point to."""
    base = f"/proc/{pid}/fd"
    result: dict[int, str] = {}
    for name in os.listdir(base):
        try:
            result[int(name)] = os.readlink(f"{base}/{name}")
        except OSError:  # closed meanwhile (the listing's own directory fd)
            continue
    return result


def thread_count(pid: int) -> int:
    """Threads of another process (its /proc tasks)."""
    return len(os.listdir(f"/proc/{pid}/task"))


def rss_kib(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")  # pragma: no cover - every Linux has it


def live_greenlets() -> int:
    """Greenlets that have started and not finished (0 when gevent is not loaded)."""
    greenlet = sys.modules.get("greenlet")
    if greenlet is None:
        return 0
    # type(), not isinstance(): isinstance reads __class__, which lazy objects
    # (Django's settings) compute, and may raise.
    kind = greenlet.greenlet
    return sum(
        1 for obj in gc.get_objects() if issubclass(type(obj), kind) and bool(obj) and not obj.dead
    )


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


# The one timer thread of the threads backend lives for the whole process by
# design (a shared service, not a per-connection thread): it is not a leak.
PERSISTENT_THREADS = frozenset({"faye_sync-timers"})


@dataclass
class Snapshot:
    """This process's fds, threads and greenlets at one moment."""

    fds: dict[int, str]
    threads: set[int]
    greenlets: int

    @classmethod
    def take(cls, *, greenlets: bool = False) -> Snapshot:
        return cls(
            open_fds(),
            {t.ident for t in threading.enumerate() if t.ident is not None},
            live_greenlets() if greenlets else 0,
        )

    def leaks(self, *, greenlets: bool = False) -> list[str]:
        """What is open now and was not at the snapshot (empty when nothing leaked)."""
        now = Snapshot.take(greenlets=greenlets)
        problems = [f"fd {fd} -> {now.fds[fd]}" for fd in sorted(set(now.fds) - set(self.fds))]
        problems += [
            f"thread {t.name}"
            for t in threading.enumerate()
            if t.ident not in self.threads and t.name not in PERSISTENT_THREADS and t.is_alive()
        ]
        if greenlets and now.greenlets > self.greenlets:
            problems.append(f"{now.greenlets - self.greenlets} greenlet(s)")
        return problems

    def assert_no_leaks(self, *, greenlets: bool = False, timeout: float = WAIT) -> None:
        """Wait (bounded) for threads to finish, then require nothing new to be open."""
        problems: list[str] = []

        def clean() -> bool:
            nonlocal problems
            problems = self.leaks(greenlets=greenlets)
            return not problems

        if greenlets:  # dead greenlets linger until their last reference goes
            gc.collect()
        assert wait_until(clean, timeout, step=0.05), f"leaked: {problems}"
