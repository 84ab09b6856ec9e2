#!/usr/bin/env python
"""Executed Python bytecodes per WebSocket handshake, by module and function, per server.

    python benchmarks/bytecodes.py                          # faye-gevent and the floor
    python benchmarks/bytecodes.py --n 200 --warmup 20 --top 30 --out report.md

Where a handshake's cost goes, deterministically: each server (run.py's command,
on 127.0.0.1, a free port) runs under ``bytecode_tracer.py``, which counts the
opcodes every Python frame executes between SIGUSR1 and SIGUSR2. This process is
the client: ``--warmup`` handshakes (imports, first-use paths), SIGUSR1, ``--n``
sequential handshakes (upgrade, client close 1000, the server's close and FIN,
each step sent once the server sleeps in its event loop: instructions.py's
client), SIGUSR2, and the server is stopped. The report gives, per handshake,
bytecodes, Python calls and C function calls grouped by module (faye_sync and
the app by file, gevent's pywsgi, socket and the rest, the standard library by
module, other), the top functions by bytecodes and the top C functions by calls,
each server side by side with the first one minus the floor. A proxy for CPU
cost, not instructions: what C code does inside (gevent's compiled modules,
system calls, hashing, allocation) counts nothing, and opcodes differ in cost.
Linux only (``/proc/PID/syscall``); every wait is bounded, the server killed at
the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import instructions  # the deterministic client (and run.py, the servers)
import run

TRACER = run.BENCH / "bytecode_tracer.py"
TIMEOUT = 30.0  # seconds the tracer may take to acknowledge a signal
STDLIB = Path(sysconfig.get_paths()["stdlib"])
SITE = Path(sysconfig.get_paths()["purelib"])
GEVENT_SOCKET = {"_socket3.py", "_socketcommon.py", "socket.py"}
SECTIONS = ("faye_sync", "app", "gevent", "stdlib", "other")

Function = tuple[str, str, int]  # file, qualified name, first line
Counts = Counter[Function]
Key = TypeVar("Key")


@dataclass
class Profile:
    """One server's counts over the counted handshakes."""

    opcodes: Counts  # bytecodes executed, by function
    calls: Counts  # frames entered or resumed, by function
    c_calls: Counter[tuple[Function, str]]  # C functions called, by caller and callee

    @classmethod
    def load(cls, dump: dict[str, list[list[Any]]]) -> Profile:
        opcodes: Counts = Counter()
        calls: Counts = Counter()
        c_calls: Counter[tuple[Function, str]] = Counter()
        # += : code objects can share a name (two dataclasses made by one caller)
        for file, name, line, ops, frames in dump["functions"]:
            opcodes[file, name, line] += ops
            calls[file, name, line] += frames
        for file, name, line, callee, count in dump["c_calls"]:
            c_calls[(file, name, line), callee] += count
        return cls(opcodes, calls, c_calls)

    def c_calls_by(self, side: int) -> Counter[Any]:
        """C calls by caller (``side`` 0) or by C function (1)."""
        out: Counter[Any] = Counter()
        for pair, count in self.c_calls.items():
            out[pair[side]] += count
        return out


def wait_for(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the traced server did not write {path.name} (see its log)")
        time.sleep(0.02)


def profile(server: run.Server, n: int, warmup: int) -> Profile:
    """The server's counts over ``n`` handshakes, after ``warmup`` others."""
    if server.cmd[0] != run.PY:
        raise SystemExit(f"{server.name} is not a Python server")
    with tempfile.TemporaryDirectory(prefix="faye-bytecodes-") as tmp:
        out = Path(tmp) / "counts.json"
        traced = replace(server, cmd=(run.PY, str(TRACER), str(out), *server.cmd[1:]))
        port = run.free_port()
        proc = run.start_server(traced, port, None, Path(tmp))
        try:
            for _ in range(warmup):
                instructions.Client(port, proc.pid).close()
            instructions.idle(proc.pid)
            os.kill(proc.pid, signal.SIGUSR1)
            wait_for(out.with_name(out.name + ".started"), proc)
            for _ in range(n):
                instructions.Client(port, proc.pid).close()
            instructions.idle(proc.pid)  # the last connection's teardown is done
            os.kill(proc.pid, signal.SIGUSR2)
            wait_for(out, proc)
            return Profile.load(json.loads(out.read_text()))
        finally:
            run.stop(proc)


def short(file: str) -> str:
    """The file's path from where Python imports it (``<frozen os>`` as is)."""
    for base in (SITE, run.SERVERS_DIR, run.ROOT, STDLIB):
        if file.startswith(str(base) + os.sep):
            return file[len(str(base)) + 1 :]
    return file


def group(file: str) -> tuple[str, str]:
    """The section (``SECTIONS``) and the group a file's code counts under."""
    path = short(file)
    if path.startswith("faye_sync/"):
        return "faye_sync", path
    if file.startswith(str(run.ROOT) + os.sep):  # the echo example, the floor's script
        return "app", path
    if path.startswith("gevent/"):
        name = path.removeprefix("gevent/")
        kind = "pywsgi" if name == "pywsgi.py" else "socket" if name in GEVENT_SOCKET else "other"
        return "gevent", f"gevent {kind}"
    if path.startswith("<frozen "):
        return "stdlib", path.removeprefix("<frozen ").removesuffix(">")
    if file.startswith(str(STDLIB)) and not file.startswith(str(SITE)):
        module = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        return "stdlib", module
    return "other", path.split("/")[0]


def per_handshake(value: float, n: int) -> str:
    return f"{value / n:,.0f}"


def grouped_table(results: dict[str, Counts], n: int, diff: str | None) -> str:
    """Counts per handshake by section and group, with subtotals, for each server."""
    names = list(results)
    sums: dict[tuple[str, str], Counter[str]] = {}
    for name, counts in results.items():
        for (file, _, _), count in counts.items():
            sums.setdefault(group(file), Counter())[name] += count

    def row(label: str, values: Counter[str]) -> list[str]:
        cells = [label, *(per_handshake(values[name], n) for name in names)]
        if diff:
            cells.append(per_handshake(values[names[0]] - values[diff], n))
        return cells

    total: Counter[str] = Counter({name: sum(counts.values()) for name, counts in results.items()})
    rows = [row("**total**", total)]
    for section in SECTIONS:
        keys = [key for key in sums if key[0] == section]
        subtotal: Counter[str] = sum((sums[key] for key in keys), Counter())
        rows.append(row(f"**{section}**", subtotal))
        keys.sort(key=lambda key: -max(sums[key].values()))
        rows += [row(key[1], sums[key]) for key in keys if max(sums[key].values()) >= n / 2]
    headers = ["group", *names, *([f"{names[0]} − {diff}"] if diff else [])]
    return run.table(headers, rows)


def function_label(function: Function) -> str:
    file, qualname, line = function
    return f"`{short(file)}:{line}` {qualname}"


def top_table(
    results: dict[str, Counter[Key]],
    n: int,
    top: int,
    diff: str | None,
    label: Callable[[Key], str],
) -> str:
    """The ``top`` keys by count per handshake (the most of any server)."""
    names = list(results)
    keys: set[Key] = set().union(*results.values())
    ranked = sorted(keys, key=lambda key: -max(counts[key] for counts in results.values()))
    rows = []
    for key in ranked[:top]:
        cells = [label(key), *(per_handshake(results[name][key], n) for name in names)]
        if diff:
            cells.append(per_handshake(results[names[0]][key] - results[diff][key], n))
        rows.append(cells)
    headers = ["", *names, *([f"{names[0]} − {diff}"] if diff else [])]
    return run.table(headers, rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=f"faye-gevent,{run.FLOOR}")
    parser.add_argument("--n", type=int, default=200, help="handshakes counted")
    parser.add_argument("--warmup", type=int, default=20, help="handshakes before counting")
    parser.add_argument("--top", type=int, default=25, metavar="K", help="functions listed")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    opts = parser.parse_args()
    names = [name for name in opts.servers.split(",") if name]
    res = {name: profile(run.SERVERS[name], opts.n, opts.warmup) for name in names}
    diff = run.FLOOR if run.FLOOR in names[1:] else None
    n, top = opts.n, opts.top
    sections = {
        "Executed bytecodes per handshake, by module": grouped_table(
            {name: p.opcodes for name, p in res.items()}, n, diff
        ),
        "Python calls per handshake (frames entered or generators resumed), by module": (
            grouped_table({name: p.calls for name, p in res.items()}, n, diff)
        ),
        "C function calls per handshake, by the calling module": grouped_table(
            {name: p.c_calls_by(0) for name, p in res.items()}, n, diff
        ),
        f"Top {top} functions by bytecodes per handshake": top_table(
            {name: p.opcodes for name, p in res.items()}, n, top, diff, function_label
        ),
        f"Top {top} C functions by calls per handshake": top_table(
            {name: p.c_calls_by(1) for name, p in res.items()}, n, top, diff, "`{}`".format
        ),
    }
    command = " ".join(["python benchmarks/bytecodes.py", *sys.argv[1:]])
    report = f"`{command}`: N = {n} handshakes counted, after {opts.warmup}\n"
    report += "".join(f"\n{title}:\n\n{table}\n" for title, table in sections.items())
    print(report)
    if opts.out:
        opts.out.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
