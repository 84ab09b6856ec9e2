#!/usr/bin/env python
"""System calls per echoed message, by call, for each server (Linux ``perf``; no PMU needed).

    python benchmarks/syscalls.py --servers faye-gevent,websockets-uvloop,floor-pywsgi
    python benchmarks/syscalls.py --workloads echo-50c-32B-binary --inflight 4

A figure that CPU contention does not move, unlike rates and CPU time: on a shared
machine, where rates swing by 2x between repetitions, it tells what each server
asks of the kernel per message. Each point starts the server as run.py does, runs
the load generator, and counts the server's ``syscalls:sys_enter_*`` tracepoints
with ``perf stat`` from before the first connection to the end of the generator's
window, divided by every message echoed until then (warm-up included; the 50
handshakes' calls are in the figure too, a few hundredths per message). Needs
``perf`` and tracepoint access (root, or perf_event_paranoid <= -1).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import run  # benchmarks/run.py: servers, workloads, start/stop, the load generator

CALLS = re.compile(r"^\s*([\d,]+)\s+syscalls:sys_enter_(\w+)", re.M)


def count_point(server: run.Server, work: run.Workload, opts: argparse.Namespace) -> dict:
    srv_core, gen_core = run.pick_cores(False)
    port = run.free_port()
    proc = run.start_server(server, port, srv_core, Path(tempfile.mkdtemp(prefix="faye-sys-")))
    try:
        extra = work.args + (("--inflight", str(opts.inflight)) if opts.inflight > 1 else ())
        cmd = run.loadgen(work.mode, port, extra, gen_core, opts.warmup, opts.duration)
        pids = ",".join(str(pid) for pid, _ in run.group_pids(proc.pid))
        perf = subprocess.Popen(
            ["perf", "stat", "-x", " ", "-e", "syscalls:sys_enter_*", "-p", pids],
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.5)  # perf attaches to ~300 tracepoints before it counts
        gen = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        result = {}
        assert gen.stdout is not None
        for line in gen.stdout:
            if line.startswith("END"):
                perf.send_signal(signal.SIGINT)
            elif line.startswith("RESULT "):
                result = json.loads(line[7:])
        gen.wait(timeout=30)
        _, err = perf.communicate(timeout=30)
    finally:
        run.stop(proc)
    calls = {}
    for line in err.splitlines():  # -x " ": "<count> <unit> syscalls:sys_enter_<name> ..."
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            name = next((p for p in parts if p.startswith("syscalls:sys_enter_")), None)
            if name and int(parts[0]):
                calls[name.removeprefix("syscalls:sys_enter_")] = int(parts[0])
    count = result.get("total") or 0
    return {"count": count, "calls": calls}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="faye-gevent,websockets-asyncio,floor-pywsgi")
    parser.add_argument("--workloads", default="echo-50c-32B-binary,echo-50c-4KiB-binary")
    parser.add_argument("--inflight", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=0.3)
    parser.add_argument("--duration", type=float, default=1.0)
    opts = parser.parse_args()
    works = run.workloads(1000)
    for wname in opts.workloads.split(","):
        work = works[wname]
        print(f"\n### {wname}: system calls per message (inflight {opts.inflight})\n")
        rows = []
        for name in opts.servers.split(","):
            point = count_point(run.SERVERS[name], work, opts)
            n = point["count"] or 1
            top = sorted(point["calls"].items(), key=lambda kv: -kv[1])[:6]
            rows.append(
                [
                    name,
                    f"{sum(point['calls'].values()) / n:.2f}",
                    ", ".join(f"{k} {v / n:.2f}" for k, v in top),
                    str(point["count"]),
                ]
            )
        print(run.table(["server", "calls/msg", "largest", "messages"], rows))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    finally:
        run.stop_all()
