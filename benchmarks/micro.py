#!/usr/bin/env python
"""Micro-benchmarks: masking and UTF-8 validation against a plain memory copy, and the frame layer.

    python benchmarks/micro.py [--quick]

Four tables:

* XOR masking: ``faye_sync.protocol.masking.apply_mask`` (websockets' C code when
  installed), ``python_apply_mask`` (the pure-Python fallback) and apply_mask as
  ``HybiProtocol.receive_data`` calls it (a memoryview slice of its buffer plus
  ``bytes()`` of the key), against ``bytes(memoryview(data))`` and
  ``bytearray(data)`` copies.
* UTF-8: ``bytes.decode("utf-8")`` on ASCII and on mixed text (what
  ``_message_done`` does for an unfragmented text message) and the incremental
  decoder (what ``_data_frame`` does for fragments), against the same copies.
* The frame layer alone, no socket: µs per echoed message through
  ``HybiProtocol`` (``receive_data`` of one masked frame, ``events_received``,
  ``send_binary``/``send_text``, ``data_to_send``), the CPU that faye_sync
  spends per message above the socket calls.
* A ``Connection`` echoing a 16-byte message over a socket pair: ns per message,
  best and median of nine measurements (``--connection`` alone). The
  ``faye_sync.stats()`` counters cost four integer adds of it.

MB/s is payload bytes per second; ``×memcpy`` divides by the faster copy at the
same size. Each figure is the best of several timed batches.
"""

from __future__ import annotations

import argparse
import codecs
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faye_sync.blocking.backends import get_backend
from faye_sync.blocking.connection import Connection
from faye_sync.protocol import masking
from faye_sync.protocol.hybi import HybiProtocol

SIZES = [
    (125, "125 B"),
    (4096, "4 KiB"),
    (65536, "64 KiB"),
    (1 << 20, "1 MiB"),
    (16 << 20, "16 MiB"),
]
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def best_time(fn: Callable[[], object], batch_seconds: float, batches: int) -> float:
    """Seconds per call: the best of ``batches`` batches of about ``batch_seconds`` each."""
    n = 1
    while True:  # calibrate the number of calls per batch
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= batch_seconds / 4 or n >= 1 << 22:
            break
        n *= 4
    n = max(1, int(n * batch_seconds / max(dt, 1e-9)))
    best = float("inf")
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def table(
    title: str,
    variants: dict[str, Callable[[bytes], Callable[[], object]]],
    payload: Callable[[int], bytes],
    opts: argparse.Namespace,
) -> None:
    rows = []
    copy_best: dict[int, float] = {}
    for name, make in variants.items():
        row = []
        for size, _ in SIZES:
            data = payload(size)
            try:
                call = make(data)
                call()
            except (UnicodeDecodeError, ValueError):
                row.append(None)
                continue
            seconds = best_time(call, opts.batch, opts.batches)
            rate = size / seconds / 1e6
            row.append(rate)
            if name.startswith("memcpy"):
                copy_best[size] = max(copy_best.get(size, 0.0), rate)
        rows.append((name, row))
    print(f"**{title}** (MB/s of payload; ×memcpy = MB/s / the faster copy at that size)\n")
    sizes = [label for _, label in SIZES]
    print(
        "| variant | "
        + " | ".join(f"{s} MB/s" for s in sizes)
        + " | "
        + " | ".join(f"{s} ×memcpy" for s in sizes)
        + " |"
    )
    print("|---|" + "---:|" * (2 * len(SIZES)))
    for name, row in rows:
        rates = [f"{r:,.0f}" if r is not None else "-" for r in row]
        ratios = [
            f"{r / copy_best[size]:.3g}" if r is not None else "-"
            for r, (size, _) in zip(row, SIZES, strict=True)
        ]
        print(f"| {name} | " + " | ".join(rates) + " | " + " | ".join(ratios) + " |")
    print()


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


def ascii_text(size: int) -> bytes:
    return (b"The quick brown fox jumps over the lazy dog. " * (size // 45 + 1))[:size]


def mixed_text(size: int) -> bytes:
    unit = "ascii, ünïcödé, ελληνικά, 漢字, 🎉 ".encode()
    data = (unit * (size // len(unit) + 1))[:size]
    while True:  # cut at a character boundary
        try:
            data.decode("utf-8")
            return data
        except UnicodeDecodeError:
            data = data[:-1]


def copies() -> dict[str, Callable[[bytes], Callable[[], object]]]:
    return {
        "memcpy: bytes(memoryview(data))": lambda d: lambda: bytes(memoryview(d)),
        "memcpy: bytearray(data)": lambda d: lambda: bytearray(d),
    }


def masking_variants() -> dict[str, Callable[[bytes], Callable[[], object]]]:
    apply_mask, python_apply_mask = masking.apply_mask, masking.python_apply_mask
    accel = "websockets C" if masking.ACCELERATED else "pure Python: websockets not installed"

    def as_hybi(d: bytes) -> Callable[[], object]:
        buf = bytearray(b"\x82\xff" + bytes(8) + MASK) + d
        start, end = 14, 14 + len(d)
        return lambda: apply_mask(memoryview(buf)[start:end], bytes(buf[start - 4 : start]))

    return {
        **copies(),
        f"faye_sync apply_mask ({accel})": lambda d: lambda: apply_mask(d, MASK),
        "faye_sync apply_mask as HybiProtocol calls it": as_hybi,
        "faye_sync python_apply_mask": lambda d: lambda: python_apply_mask(d, MASK),
    }


def utf8_variants(ascii_only: bool) -> dict[str, Callable[[bytes], Callable[[], object]]]:
    decoder_cls = codecs.getincrementaldecoder("utf-8")

    def incremental(d: bytes) -> Callable[[], object]:
        return lambda: decoder_cls().decode(d, True)

    def pieces(d: bytes) -> Callable[[], object]:
        chunks = [d[i : i + 4096] for i in range(0, len(d), 4096)]

        def run() -> str:
            dec = decoder_cls()
            return "".join([dec.decode(c, False) for c in chunks] + [dec.decode(b"", True)])

        return run

    variants = {
        **copies(),
        'bytes.decode("utf-8") (unfragmented text message)': lambda d: lambda: d.decode("utf-8"),
        "incremental decoder, one call": incremental,
        "incremental decoder, 4 KiB fragments + join": pieces,
    }
    if ascii_only:
        variants["bytes.isascii() only (no str)"] = lambda d: lambda: d.isascii()
    return variants


def frame_layer(opts: argparse.Namespace) -> None:
    """µs per echoed message through HybiProtocol alone."""
    print(
        "**Frame layer: one echoed message through HybiProtocol, no socket** "
        "(µs per message; parse one masked frame, events_received, send, data_to_send)\n"
    )
    print("| message | µs/msg | of which apply_mask µs | MB/s |")
    print("|---|---:|---:|---:|")
    for size, label in SIZES[:4]:
        for text in (False, True):
            payload = ascii_text(size) if text else random_bytes(size)
            header = bytes([0x81 if text else 0x82])
            if size <= 125:
                header += bytes([0x80 | size])
            elif size <= 0xFFFF:
                header += bytes([0xFE]) + size.to_bytes(2, "big")
            else:
                header += bytes([0xFF]) + size.to_bytes(8, "big")
            frame = header + MASK + masking.apply_mask(payload, MASK)
            proto = HybiProtocol(is_client=False, max_length=2**26)

            def echo(proto: HybiProtocol = proto, frame: bytes = frame) -> None:
                proto.receive_data(frame)
                for event in proto.events_received():
                    data = event.data
                    if isinstance(data, str):
                        proto.send_text(data)
                    else:
                        proto.send_binary(data)
                proto.data_to_send()

            seconds = best_time(echo, opts.batch, opts.batches)
            mask_s = best_time(
                lambda p=payload: masking.apply_mask(p, MASK), opts.batch, opts.batches
            )
            kind = "text" if text else "binary"
            print(
                f"| {label} {kind} | {seconds * 1e6:.2f} | {mask_s * 1e6:.2f} | "
                f"{size / seconds / 1e6:,.0f} |"
            )
    print()


def connection_echo(opts: argparse.Namespace) -> None:
    """ns per echoed message through a Connection over a socket pair (the counters' cost)."""
    print(
        "**Connection: one echoed 16-byte message over a socket pair** (ns per message; "
        "the peer writes a masked frame, receive(), send(), the peer reads the echo)\n"
    )
    server_end, peer = socket.socketpair()
    server = Connection(server_end, HybiProtocol(is_client=False), backend=get_backend("threads"))
    client = HybiProtocol(is_client=True)
    client.send_binary(b"x" * 16)
    frame = client.data_to_send()

    def echo() -> None:
        peer.sendall(frame)
        server.send(server.receive())
        peer.recv(65536)

    def count(c: Connection = server) -> None:  # the adds one echo makes, as the code does
        c._bytes_in += 18
        c._messages_in += 1
        c._messages_out += True
        c._written += 18

    def call_only(c: Connection = server) -> None:  # what count() costs besides the adds
        pass

    samples = sorted(best_time(echo, opts.batch, opts.batches) for _ in range(opts.rounds))
    adds = min(best_time(count, opts.batch, opts.batches) for _ in range(opts.rounds))
    adds -= min(best_time(call_only, opts.batch, opts.batches) for _ in range(opts.rounds))
    print("| best ns/msg | median ns/msg | of which counters (4 adds) ns | counters / best |")
    print("|---:|---:|---:|---:|")
    print(
        f"| {samples[0] * 1e9:,.0f} | {samples[len(samples) // 2] * 1e9:,.0f} | "
        f"{adds * 1e9:,.0f} | {adds / samples[0]:.2%} |"
    )
    print()
    server_end.close()
    peer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter batches (a noisier check)")
    parser.add_argument(
        "--connection", action="store_true", help="only the Connection echo (the counters' cost)"
    )
    opts = parser.parse_args()
    opts.batch, opts.batches = (0.02, 3) if opts.quick else (0.1, 5)
    opts.rounds = 3 if opts.quick else 9
    if opts.connection:
        connection_echo(opts)
        return
    print(f"Python {sys.version.split()[0]}; masking accelerated: {masking.ACCELERATED}\n")
    table("XOR masking/unmasking", masking_variants(), random_bytes, opts)
    table("UTF-8 validation, ASCII text", utf8_variants(True), ascii_text, opts)
    table("UTF-8 validation, mixed text", utf8_variants(False), mixed_text, opts)
    frame_layer(opts)
    connection_echo(opts)


if __name__ == "__main__":
    main()
