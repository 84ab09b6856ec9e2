#!/usr/bin/env python
"""Profile faye_sync's echo server under the benchmark workloads (py-spy, sampling).

    pip install py-spy
    python benchmarks/hotspots.py [--server faye-gevent|faye-gthread] [--workloads echo-50c-32B,...]
                                 [--duration 5] [--rate 250] [--out DIR]
    python benchmarks/hotspots.py --memory 5000     # tracemalloc of 5,000 idle WebSockets

For each workload: start the server pinned to one core, run the load generator
on the other, record the server with ``py-spy record --format raw`` (collapsed
stacks, GIL-holding and running threads only, so time blocked in epoll is not
counted) and print:

* where the samples end (self time), grouped by file: faye_sync's modules, gevent's
  socket and hub code, pywsgi, the interpreter's C calls;
* the top functions by self time;
* faye_sync's own functions by inclusive time (the share of samples they are on
  the stack), which is what a change in faye_sync can save at most.

On faye-gthread only the thread holding the GIL is sampled (``--gil``): threads
blocked in ``recv`` would otherwise count as busy, and time in system calls made
without the GIL is not counted. py-spy pauses the server for each sample (its
default blocking mode), which costs a little throughput but keeps the stacks
exact. The raw stacks are kept in --out (flamegraph.pl or speedscope read them).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run

DEFAULT_WORKLOADS = "echo-50c-32B,echo-50c-4KiB,echo-1c-1MiB,echo-50c-1MiB,connect-16c"


def group_of(frame: str) -> str:
    """A coarse owner of a frame: ``Connection._write (faye_sync/blocking/connection.py:418)``."""
    where = frame[frame.rfind("(") + 1 :].rstrip(")")
    path = where.rsplit(":", 1)[0]
    if "faye_sync/" in path:
        return "faye_sync/" + path.split("faye_sync/", 1)[1]
    if "gevent/" in path:
        name = path.split("gevent/", 1)[1]
        return "gevent/" + name
    if "gunicorn/" in path:
        return "gunicorn/" + path.split("gunicorn/", 1)[1]
    if "wsgi_examples/" in path:
        return "wsgi_examples"
    if path.endswith(".py"):
        return "stdlib/other: " + os.path.basename(path)
    return "native/other"


def function_of(frame: str) -> str:
    """``Connection._write (faye_sync/blocking/connection.py)``, without the line number."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({short_path(path, 'faye_sync/', 'gevent/', 'gunicorn/', 'wsgi_examples/')})"


def short_path(path: str, *markers: str) -> str:
    """``path`` from the first of ``markers`` in it (``gevent/pywsgi.py``), else its file name."""
    for marker in markers:
        if marker in path:
            return marker + path.split(marker, 1)[1]
    return os.path.basename(path)


def _idle(frames: list[str]) -> bool:
    """Threads that py-spy samples although they only wait (gevent's idle threadpool worker)."""
    return frames[-1].startswith("acquire_with_timeout (") and any(
        f.startswith("_WorkerGreenlet.run (") for f in frames
    )


def analyse(raw: Path, top: int) -> str:
    self_fn: collections.Counter[str] = collections.Counter()
    self_group: collections.Counter[str] = collections.Counter()
    incl_fn: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames or _idle(frames):
            continue
        total += n
        leaf = frames[-1]
        self_fn[function_of(leaf)] += n
        self_group[group_of(leaf)] += n
        for fn in {function_of(f) for f in frames if "faye_sync/" in f}:
            incl_fn[fn] += n
    if not total:
        return "no samples (is py-spy allowed to ptrace? run as the server's user or root)"
    out = [f"{total} samples"]
    faye_self = sum(v for k, v in self_group.items() if k.startswith("faye_sync"))
    out.append(f"self time in faye_sync's own code: {100 * faye_self / total:.1f} %")
    out.append("\nself time by file:")
    for group, n in self_group.most_common(12):
        out.append(f"  {100 * n / total:5.1f} %  {group}")
    out.append(f"\ntop {top} functions by self time:")
    for fn, n in self_fn.most_common(top):
        out.append(f"  {100 * n / total:5.1f} %  {fn}")
    out.append(f"\nfaye_sync functions by inclusive time (top {top}):")
    for fn, n in incl_fn.most_common(top):
        out.append(f"  {100 * n / total:5.1f} %  {fn}")
    return "\n".join(out)


def memory(conns: int, cores: tuple[int | None, int | None], out: Path, top: int) -> None:
    """tracemalloc: what the echo server holds per idle WebSocket, by source line."""
    import tracemalloc

    port = run.free_port()
    snap = out / "idle-snapshot"
    server = run.Server(
        "faye-gevent-tracemalloc",
        "",
        (
            run.PY,
            str(run.BENCH / "faye_gevent_tracemalloc.py"),
            "--port",
            "{port}",
            "--snapshot",
            str(snap),
        ),
        frozenset({"ws"}),
    )
    proc = run.start_server(server, port, cores[0], out)
    gen = None
    try:
        subprocess.run(
            run.loadgen("echo", port, ("--conns", "1", "--size", "32"), cores[1], 0.05, 0.1),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        time.sleep(0.5)
        rss0 = run.group_rss(proc.pid)

        def take(n: int) -> tracemalloc.Snapshot:
            path = Path(f"{snap}.{n}")
            os.kill(proc.pid, signal.SIGUSR1)
            deadline = time.monotonic() + 60
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)  # let the dump finish
            return tracemalloc.Snapshot.load(str(path))

        before = take(0)
        gen = subprocess.Popen(
            run.pinned(
                [
                    run.NODE,
                    str(run.LOADGEN),
                    "idle",
                    "--port",
                    str(port),
                    "--conns",
                    str(conns),
                    "--hold",
                    "120",
                ],
                cores[1],
            ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        run._running.append(gen)  # type: ignore[arg-type]
        assert gen.stdout is not None and gen.stdin is not None
        ready = next((line for line in gen.stdout if line.startswith("READY")), "")
        time.sleep(1.0)
        rss1 = run.group_rss(proc.pid)
        after = take(1)
        gen.stdin.write("stop\n")
        gen.stdin.flush()
        gen.wait(timeout=30)
        run._running.remove(gen)  # type: ignore[arg-type]
    finally:
        run.stop(proc)
    print(f"\n## faye-gevent idle memory, {conns} connections ({ready.strip()})\n")
    print(
        f"RSS {rss0 / 2**20:.1f} -> {rss1 / 2**20:.1f} MiB: "
        f"{(rss1 - rss0) / 1024 / conns:.1f} KiB/conn"
    )
    traced0 = sum(s.size for s in before.statistics("filename"))
    traced1 = sum(s.size for s in after.statistics("filename"))
    print(
        f"traced by tracemalloc: {(traced1 - traced0) / 1024 / conns:.1f} KiB/conn "
        "(the rest: greenlet C stacks, socket buffers, allocator overhead)\n"
    )
    print(f"per connection, by the line that allocated (top {top}):")
    for stat in after.compare_to(before, "lineno")[:top]:
        frame = stat.traceback[0]
        name = short_path(frame.filename, "faye_sync/", "gevent/", "greenlet/", "wsgi_examples/")
        print(
            f"  {stat.size_diff / conns:8.0f} B  {stat.count_diff / conns:5.1f} blocks  "
            f"{name}:{frame.lineno}"
        )
    print(f"\nper connection, by file (top {top}):")
    for stat in after.compare_to(before, "filename")[:top]:
        name = stat.traceback[0].filename
        print(f"  {stat.size_diff / conns:8.0f} B  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--server",
        default="faye-gevent",
        choices=[n for n, s in run.SERVERS.items() if s.cmd[0] == run.PY],
        help="any Python server of run.py (peers too, to compare their profiles)",
    )
    parser.add_argument(
        "--workloads", help=f"default: {DEFAULT_WORKLOADS} (sse-100c for faye-eventsource)"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds recorded (<= 10)")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", type=Path, help="keep the raw stacks here")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument(
        "--memory",
        type=int,
        metavar="CONNS",
        help="instead: tracemalloc of the gevent echo server holding CONNS idle WebSockets",
    )
    opts = parser.parse_args()
    pyspy = shutil.which("py-spy")
    if not pyspy:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    duration = min(opts.duration, 10.0)
    out = opts.out or Path(tempfile.mkdtemp(prefix="faye-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    cores = run.pick_cores(opts.no_pin)
    if opts.memory:
        run.raise_fd_limit(opts.memory + 1000)
        try:
            memory(opts.memory, cores, out, opts.top)
        finally:
            run.stop_all()
        return 0
    works = run.workloads(5000)
    server = run.SERVERS[opts.server]
    try:
        default = "sse-100c" if opts.server == "faye-eventsource" else DEFAULT_WORKLOADS
        for name in (opts.workloads or default).split(","):
            work = works[name.strip()]
            port = run.free_port()
            proc = run.start_server(server, port, cores[0], out)
            raw = out / f"{opts.server}-{work.name}.txt"
            try:
                gen = subprocess.Popen(
                    run.loadgen(work.mode, port, work.args, cores[1], 0.5, duration + 1.0),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
                run._running.append(gen)  # type: ignore[arg-type]
                time.sleep(0.5)
                # py-spy runs on the generator's core: it must not steal the server's
                spy = subprocess.run(
                    run.pinned(
                        [
                            pyspy,
                            "record",
                            "--pid",
                            str(proc.pid),
                            "--duration",
                            str(int(duration)),
                            "--rate",
                            str(opts.rate),
                            "--format",
                            "raw",
                            "--subprocesses",
                            # threads blocked in recv() look busy to py-spy: on a threaded
                            # server sample only the thread holding the GIL
                            *(["--gil"] if opts.server == "faye-gthread" else []),
                            "-o",
                            str(raw),
                        ],
                        cores[1],
                    ),
                    capture_output=True,
                    text=True,
                    timeout=duration + 60,
                )
                gen_out, _ = gen.communicate(timeout=duration + 30)
                run._running.remove(gen)  # type: ignore[arg-type]
            finally:
                run.stop(proc)
            result = next((line for line in gen_out.splitlines() if line.startswith("RESULT")), "")
            print(f"\n## {opts.server} {work.name}\n")
            print(f"loadgen (under py-spy): {result[7:200]}")
            if spy.returncode != 0 or not raw.exists():
                print(f"py-spy failed: {spy.stderr.strip()[-300:]}")
                continue
            print(analyse(raw, opts.top))
    finally:
        run.stop_all()
    print(f"\nraw stacks in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
