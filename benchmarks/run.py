#!/usr/bin/env python
"""faye_sync against the Python WebSocket peers, side by side, in one run.

    python benchmarks/run.py            # the full run (about an hour)
    python benchmarks/run.py --quick    # a short run to check the harness (about 8 minutes)

Every point starts a fresh server pinned to one core (``taskset``), runs the
Node load generator (benchmarks/loadgen/loadgen.js) pinned to another, samples
the server's CPU time at the start and end of the measured window, and stops
the server. Servers are interleaved (their order rotates every repetition) and
each point is the median of the repetitions. Everything is bounded: fixed
durations (at most 10 s per point), servers on 127.0.0.1, killed and reaped at
the end, even on Ctrl-C.

The output is raw numbers per workload and server, the ratio table
faye_sync / each peer, the targets of the performance issue and the
generator-saturation check. ``--json FILE`` keeps every repetition.
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SERVERS_DIR = BENCH / "servers"
LOADGEN = BENCH / "loadgen" / "loadgen.js"
PY = sys.executable
NODE = shutil.which("node") or "node"
HOST = "127.0.0.1"
PAGE = os.sysconf("SC_PAGE_SIZE")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------- servers


@dataclass(frozen=True)
class Server:
    name: str
    label: str
    cmd: tuple[str, ...]  # "{port}" is replaced
    kinds: frozenset[str]  # which workloads it serves: "ws" and/or "sse"
    python_peer: bool = False  # counts as a "Python peer" for the targets
    faye: bool = False
    optional: bool = False  # skipped (with a note) when unavailable
    modes: frozenset[str] | None = None  # the loadgen modes it serves, if not all
    root: Path = ROOT  # where its code is (cwd and first on PYTHONPATH): --baseline

    def command(self, port: int) -> list[str]:
        return [part.replace("{port}", str(port)) for part in self.cmd]


def _script(name: str) -> tuple[str, ...]:
    return (PY, str(SERVERS_DIR / name), "--port", "{port}")


SERVERS: dict[str, Server] = {
    server.name: server
    for server in [
        Server(
            "faye-gevent",
            "faye_sync echo on gevent.pywsgi",
            (PY, "-m", "wsgi_examples.echo", "--port", "{port}", "--server", "gevent"),
            frozenset({"ws"}),
            faye=True,
        ),
        Server(
            "faye-gthread",
            "faye_sync echo on gunicorn gthread",
            # one worker; enough threads for 5,000 idle WebSockets (the pool is lazy)
            (
                PY,
                "-m",
                "gunicorn",
                "-k",
                "gthread",
                "--threads",
                "5100",
                "--worker-connections",
                "10000",
                "-b",
                f"{HOST}:{{port}}",
                "wsgi_examples.echo:app",
            ),
            frozenset({"ws"}),
            faye=True,
        ),
        Server(
            "sw-gevent",
            "simple-websocket + flask-sock on gevent",
            _script("sw_gevent.py"),
            frozenset({"ws"}),
            python_peer=True,
        ),
        Server(
            "sw-gthread",
            "simple-websocket + flask-sock on gunicorn gthread (threads)",
            (
                PY,
                "-m",
                "gunicorn",
                "-k",
                "gthread",
                "--threads",
                "5100",
                "--worker-connections",
                "10000",
                "-b",
                f"{HOST}:{{port}}",
                "sw_gthread:app",
            ),
            frozenset({"ws"}),
            python_peer=True,
        ),
        Server(
            "gevent-websocket",
            "gevent-websocket",
            _script("gevent_websocket_server.py"),
            frozenset({"ws"}),
            python_peer=True,
        ),
        Server(
            "websockets-sync",
            "websockets sync (threads)",
            _script("websockets_sync.py"),
            frozenset({"ws"}),
            python_peer=True,
        ),
        Server(
            "websockets-asyncio",
            "websockets asyncio",
            _script("websockets_asyncio.py"),
            frozenset({"ws"}),
            python_peer=True,
        ),
        Server(
            "websockets-uvloop",
            "websockets asyncio on uvloop",
            _script("websockets_uvloop.py"),
            frozenset({"ws"}),
            python_peer=True,
        ),
        Server(
            "node-ws",
            "Node ws (ceiling)",
            (NODE, str(SERVERS_DIR / "node_ws.js"), "--port", "{port}"),
            frozenset({"ws"}),
            optional=True,
        ),
        Server(
            "floor-node",
            "raw Node echo, no parsing (generator check)",
            (NODE, str(SERVERS_DIR / "floor_node.js"), "--port", "{port}"),
            frozenset({"ws"}),
        ),
        Server(
            "floor-pywsgi",
            "raw upgrade and minimal frame echo on gevent.pywsgi, no library (the floor)",
            _script("floor_pywsgi.py"),
            frozenset({"ws"}),
        ),
        Server(
            "faye-eventsource",
            "faye_sync EventSource on gevent.pywsgi",
            _script("faye_eventsource.py"),
            frozenset({"sse"}),
            faye=True,
        ),
        Server(
            "bare-gevent-sse",
            "bare gevent WSGI generator",
            _script("bare_gevent_sse.py"),
            frozenset({"sse"}),
        ),
    ]
}

WEBSOCKETS_PEERS = ("websockets-sync", "websockets-asyncio", "websockets-uvloop")
THREAD_PEERS = ("websockets-sync", "sw-gthread")  # the peers of faye-gthread
FLOOR = "floor-pywsgi"
GEN_CPU_WARN = 80.0  # % of a core: above it the generator may be what limits a point

# -------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    name: str
    mode: str  # loadgen mode
    kind: str  # "ws" or "sse"
    args: tuple[str, ...] = ()
    unit: str = "msg/s"


def workloads(idle_conns: int) -> dict[str, Workload]:
    items = []
    for conns in (1, 50):
        for size, label in ((32, "32B"), (4096, "4KiB"), (1 << 20, "1MiB")):
            # text frames go through UTF-8 validation, binary ones do not; the old
            # names (echo-50c-32B) still select both, as prefixes
            for payload in ("text", "binary"):
                items.append(
                    Workload(
                        f"echo-{conns}c-{label}-{payload}",
                        "echo",
                        "ws",
                        ("--conns", str(conns), "--size", str(size))
                        + (("--text",) if payload == "text" else ()),
                    )
                )
    items.append(Workload("connect-16c", "connect", "ws", ("--conns", "16"), unit="hs/s"))
    items.append(
        Workload(
            f"idle-{idle_conns // 1000}k" if idle_conns >= 1000 else f"idle-{idle_conns}",
            "idle",
            "ws",
            ("--conns", str(idle_conns)),
            unit="KiB/conn",
        )
    )
    items.append(Workload("sse-100c", "sse", "sse", ("--conns", "100"), unit="events/s"))
    return {w.name: w for w in items}


# ------------------------------------------------------------ processes

_running: list[subprocess.Popen[bytes]] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout} s")


def pinned(cmd: list[str], core: int | None) -> list[str]:
    return cmd if core is None else ["taskset", "-c", str(core), *cmd]


def start_server(
    server: Server, port: int, core: int | None, log_dir: Path
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(server.root), str(SERVERS_DIR)]
        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env["PYTHONUNBUFFERED"] = "1"
    log = open(log_dir / f"{server.name}.log", "ab")
    proc = subprocess.Popen(
        pinned(server.command(port), core),
        cwd=server.root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,  # its own process group: stopped as one, gunicorn workers too
    )
    log.close()
    _running.append(proc)
    try:
        wait_port(port, proc)
    except Exception:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the process group we created, SIGKILL after 3 s, and reap."""
    if proc.poll() is None:
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    else:
        # the leader is gone; a leftover child of its group (gunicorn worker) is not
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()
    if proc in _running:
        _running.remove(proc)


def stop_all() -> None:
    for proc in list(_running):
        stop(proc)


def group_pids(session: int) -> Iterator[tuple[int, list[str]]]:
    """Every process of the session ``session`` (server and workers), with its stat fields."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[3]) == session:  # field 6, the session id
            yield int(entry.name), fields


def group_cpu(session: int) -> float:
    """Seconds of CPU (user + system) used so far by the server's processes."""
    return sum(int(f[11]) + int(f[12]) for _, f in group_pids(session)) / CLK_TCK


def proc_cpu(pid: int) -> float | None:
    """Seconds of CPU (user + system) used so far by one process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def group_rss(session: int) -> int:
    """Resident bytes of the server's processes."""
    return sum(int(f[21]) * PAGE for _, f in group_pids(session))


# ----------------------------------------------------------------- points


def loadgen(
    mode: str, port: int, extra: tuple[str, ...], core: int | None, warmup: float, duration: float
) -> list[str]:
    return pinned(
        [
            NODE,
            str(LOADGEN),
            mode,
            "--port",
            str(port),
            *extra,
            "--warmup",
            str(warmup),
            "--duration",
            str(duration),
        ],
        core,
    )


def run_window(cmd: list[str], session: int, limit: float) -> dict[str, Any]:
    """Run the generator; sample the server's and the generator's CPU at START and END.

    The generator's CPU comes from /proc as well (taskset execs node, so the pid is
    node's), independent of what the generator says of itself.
    """
    gen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _running.append(gen)  # type: ignore[arg-type]
    cpu0 = t0 = cpu1 = t1 = gen0 = gen1 = None
    result: dict[str, Any] | None = None
    deadline = time.monotonic() + limit
    try:
        assert gen.stdout is not None
        for line in gen.stdout:
            if line.startswith("START"):
                cpu0, gen0, t0 = group_cpu(session), proc_cpu(gen.pid), time.monotonic()
            elif line.startswith("END"):
                cpu1, gen1, t1 = group_cpu(session), proc_cpu(gen.pid), time.monotonic()
            elif line.startswith("RESULT "):
                result = json.loads(line[7:])
            if time.monotonic() > deadline:
                break
        gen.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if gen.poll() is None:
            gen.kill()
            gen.wait()
        _running.remove(gen)  # type: ignore[arg-type]
    if result is None or cpu0 is None or cpu1 is None:
        err = gen.stderr.read() if gen.stderr else ""
        raise RuntimeError(f"load generator gave no result: {err.strip()[-500:]}")
    if "error" in result:
        raise RuntimeError(f"load generator: {result['error']}")
    assert t0 is not None and t1 is not None
    cpu = cpu1 - cpu0
    result["server_cpu_pct"] = 100.0 * cpu / (t1 - t0)
    result["server_us_per_op"] = 1e6 * cpu / result["count"] if result["count"] else None
    if gen0 is not None and gen1 is not None:
        result["gen_cpu_proc_pct"] = 100.0 * (gen1 - gen0) / (t1 - t0)
    return result


def gen_busy(point: dict[str, Any]) -> float | None:
    """The generator's CPU % in a point if above GEN_CPU_WARN (the higher of its two readings)."""
    readings = [point.get("gen_cpu_pct"), point.get("gen_cpu_proc_pct")]
    busiest = max((r for r in readings if r is not None), default=None)
    return busiest if busiest is not None and busiest > GEN_CPU_WARN else None


def run_idle(port: int, session: int, conns: int, core: int | None) -> dict[str, Any]:
    # One short echo first, so that lazy imports and first-connection costs are in
    # the baseline, not in the per-connection figure.
    subprocess.run(
        loadgen("echo", port, ("--conns", "1", "--size", "32"), core, 0.05, 0.1),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=30,
    )
    time.sleep(0.5)
    base = group_rss(session)
    cmd = pinned(
        [NODE, str(LOADGEN), "idle", "--port", str(port), "--conns", str(conns), "--hold", "60"],
        core,
    )
    gen = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _running.append(gen)  # type: ignore[arg-type]
    try:
        assert gen.stdout is not None and gen.stdin is not None
        ready: dict[str, Any] | None = None
        for line in gen.stdout:
            if line.startswith("READY "):
                ready = json.loads(line[6:])
                break
        if ready is None:
            raise RuntimeError("idle generator gave no READY line")
        time.sleep(1.0)  # let the server finish setting up the last connections
        rss = group_rss(session)
        gen.stdin.write("stop\n")
        gen.stdin.flush()
        tail = gen.stdout.read()
        gen.wait(timeout=10)
    finally:
        if gen.poll() is None:
            gen.kill()
            gen.wait()
        _running.remove(gen)  # type: ignore[arg-type]
    end = {}
    for line in tail.splitlines():
        if line.startswith("RESULT "):
            end = json.loads(line[7:])
    opened = ready["opened"]
    return {
        "count": opened,
        "failed": ready["failed"],
        "alive_at_end": end.get("alive_at_end"),
        "connect_s": ready["elapsed"],
        "rss_base_mib": base / 2**20,
        "rss_mib": rss / 2**20,
        "rate": (rss - base) / 1024 / opened if opened else None,  # KiB per connection
    }


def run_point(
    server: Server,
    work: Workload,
    opts: argparse.Namespace,
    cores: tuple[int | None, int | None],
    log_dir: Path,
) -> dict[str, Any]:
    srv_core, gen_core = cores
    port = free_port()
    proc = start_server(server, port, srv_core, log_dir)
    try:
        if work.mode == "idle":
            return run_idle(port, proc.pid, int(work.args[1]), gen_core)
        extra = work.args
        if work.mode == "echo" and opts.inflight > 1:
            extra += ("--inflight", str(opts.inflight))
        if work.mode == "echo" and opts.rounds:
            extra += ("--rounds",)
        cmd = loadgen(work.mode, port, extra, gen_core, opts.warmup, opts.duration)
        return run_window(cmd, proc.pid, limit=opts.warmup + opts.duration + 30)
    finally:
        stop(proc)


# ----------------------------------------------------------------- report


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


LOWER_IS_BETTER = {"KiB/conn"}


@dataclass
class Results:
    works: dict[str, Workload]
    servers: list[Server]
    points: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    errors: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def med(self, server: str, work: str, key: str = "rate") -> float | None:
        return median([p.get(key) for p in self.points.get((server, work), [])])

    def spread(self, server: str, work: str, key: str = "rate") -> tuple[float, float] | None:
        """The lowest and highest repetition of a point."""
        values = [p[key] for p in self.points.get((server, work), []) if p.get(key) is not None]
        return (min(values), max(values)) if values else None

    def cell(self, server: str, work: str, key: str = "rate") -> str:
        """The median, and with several repetitions their range: "33,412 (32,001–34,120)"."""
        value, spread = self.med(server, work, key), self.spread(server, work, key)
        if spread is None or len(self.points.get((server, work), [])) < 2:
            return fmt(value)
        return f"{fmt(value)} ({fmt(spread[0])}–{fmt(spread[1])})"

    def busy_generator(self, server: str, work: str) -> list[float]:
        """The generator's CPU % in every repetition where it passed GEN_CPU_WARN."""
        return [b for p in self.points.get((server, work), []) if (b := gen_busy(p)) is not None]

    def summary(self) -> list[dict[str, Any]]:
        """Median, min and max of every figure of every point, for the JSON file."""
        rows = []
        for (server, work), points in self.points.items():
            keys = sorted({k for p in points for k, v in p.items() if type(v) in (int, float)})
            for key in keys:
                if key in ("rep", "conns", "size", "parallel"):
                    continue
                spread = self.spread(server, work, key)
                if spread is None:
                    continue
                rows.append(
                    {
                        "server": server,
                        "workload": work,
                        "figure": key,
                        "median": self.med(server, work, key),
                        "min": spread[0],
                        "max": spread[1],
                        "reps": len(points),
                    }
                )
        return rows

    def served(self, work: Workload) -> list[Server]:
        return [
            s
            for s in self.servers
            if work.kind in s.kinds and (s.modes is None or work.mode in s.modes)
        ]


def report(res: Results, faye: str = "faye-gevent") -> str:
    out: list[str] = []
    for work in res.works.values():
        rows = []
        for s in res.served(work):
            n = len(res.points.get((s.name, work.name), []))
            if not n:
                err = res.errors.get((s.name, work.name))
                rows.append([s.name, "failed: " + (err[-1][:60] if err else "not run")] + ["-"] * 4)
                continue
            if work.mode == "idle":
                rows.append(
                    [
                        s.name,
                        res.cell(s.name, work.name),
                        f"{fmt(res.med(s.name, work.name, 'rss_base_mib'))} → "
                        f"{fmt(res.med(s.name, work.name, 'rss_mib'))} MiB",
                        fmt(res.med(s.name, work.name, "count")),
                        fmt(res.med(s.name, work.name, "connect_s")),
                        str(n),
                    ]
                )
                continue
            extra = ""
            if work.mode == "echo":
                extra = (
                    f"{fmt(res.med(s.name, work.name, 'per_conn_min'))}/"
                    f"{fmt(res.med(s.name, work.name, 'per_conn_max'))}"
                )
            elif work.mode == "sse":
                extra = (
                    f"{fmt(res.med(s.name, work.name, 'per_client_min'))}/"
                    f"{fmt(res.med(s.name, work.name, 'per_client_max'))}"
                )
            elif work.mode == "connect":
                extra = (
                    f"{fmt(res.med(s.name, work.name, 'p50_ms'))}/"
                    f"{fmt(res.med(s.name, work.name, 'p99_ms'))} ms"
                )
            busy = res.busy_generator(s.name, work.name)
            rows.append(
                [
                    s.name,
                    res.cell(s.name, work.name),
                    res.cell(s.name, work.name, "server_us_per_op"),
                    f"{fmt(res.med(s.name, work.name, 'server_cpu_pct'), 2)} / "
                    f"{fmt(res.med(s.name, work.name, 'gen_cpu_pct'), 2)}"
                    + (f" (gen > {GEN_CPU_WARN:.0f} % in {len(busy)}/{n})" if busy else ""),
                    extra,
                    str(n),
                ]
            )
        if work.mode == "idle":
            headers = [
                "server",
                "KiB/conn",
                "RSS before → with conns",
                "conns",
                "connect s",
                "reps",
            ]
        else:
            what = {
                "echo": "min/max msgs per conn",
                "sse": "min/max events per client",
                "connect": "p50/p99 hs latency",
            }[work.mode]
            headers = ["server", work.unit, "server µs/op", "server / gen CPU %", what, "reps"]
        out.append(
            f"### {work.name} ({work.unit}, median (min–max of the repetitions))\n\n"
            + table(headers, rows)
        )

    out.append(headline(res))
    out.append(busy_generator_note(res))
    # The ratio tables: faye_sync / each peer, one column per workload.
    ws_works = [w for w in res.works.values() if w.kind == "ws"]
    for mine, where in ((faye, "gevent.pywsgi"), ("faye-gthread", "gunicorn gthread")):
        if not any(res.points.get((mine, w.name)) for w in ws_works):
            continue
        peers = [
            s
            for s in res.servers
            if "ws" in s.kinds and s.name != mine and not (mine != faye and s.faye)
        ]
        rows = []
        for peer in peers:
            row = [peer.name + ("" if peer.python_peer or peer.faye else " (reference)")]
            for w in ws_works:
                a, b = res.med(mine, w.name), res.med(peer.name, w.name)
                row.append(fmt(a / b, 3) if a and b else "-")
            rows.append(row)
        out.append(
            f"### Ratios faye_sync ({where}) / peer\n\nRates (msg/s, hs/s): higher is better "
            "for faye_sync; idle KiB/conn: lower is better.\n\n"
            + table([f"{mine} / peer"] + [w.name for w in ws_works], rows)
        )
    cpu_works = [w for w in ws_works if w.mode != "idle"]
    rows = []
    for peer in [s for s in res.servers if "ws" in s.kinds and s.name != faye]:
        row = [peer.name + ("" if peer.python_peer or peer.faye else " (reference)")]
        for w in cpu_works:
            a = res.med(faye, w.name, "server_us_per_op")
            b = res.med(peer.name, w.name, "server_us_per_op")
            row.append(fmt(a / b, 3) if a and b else "-")
        rows.append(row)
    out.append(
        "### Server CPU time per message (or handshake), faye_sync (gevent.pywsgi) / peer "
        "(lower is better; the least noise-sensitive figure on a busy machine)\n\n"
        + table(["faye-gevent / peer"] + [w.name for w in cpu_works], rows)
    )
    sse = [w for w in res.works.values() if w.kind == "sse"]
    for w in sse:
        a, b = res.med("faye-eventsource", w.name), res.med("bare-gevent-sse", w.name)
        if a and b:
            out.append(f"EventSource {w.name}: faye_sync / bare gevent generator = {a / b:.3f}")
    out.append(targets(res))
    out.append(saturation(res))
    return "\n\n".join(out)


def best_of(
    res: Results, work: str, names: tuple[str, ...] | None = None, lower: bool = False
) -> tuple[str, float] | None:
    """The best of ``names`` (default: every Python peer) at ``work``, and its median."""
    if names is None:
        names = tuple(s.name for s in res.servers if s.python_peer)
    values = [(n, v) for n in names if (v := res.med(n, work))]
    return (min if lower else max)(values, key=lambda nv: nv[1]) if values else None


def busy_generator_note(res: Results) -> str:
    """Every point where the load generator passed GEN_CPU_WARN: there it may be the limit."""
    lines = [
        f"* {work} {server}: {', '.join(f'{b:.0f} %' for b in busy)}"
        for (server, work) in res.points
        if (busy := res.busy_generator(server, work))
    ]
    if not lines:
        return f"The load generator stayed under {GEN_CPU_WARN:.0f} % CPU in every point."
    return (
        f"**WARNING: the load generator was above {GEN_CPU_WARN:.0f} % of its core** in these "
        "points (repetitions), so it may have limited them: read their rates as lower "
        "bounds.\n\n" + "\n".join(lines)
    )


def headline(res: Results) -> str:
    """The skeptic's table: faye_sync against the best Python peer (uvloop included) and the floor.

    One row per workload, as the performance issue's table: the best peer is
    picked per workload among every Python peer in the run; the floor is
    floor-pywsgi (no library on the same server). On gunicorn gthread, the
    peers are the thread servers (websockets sync, simple-websocket).
    """
    rows = []
    for w in res.works.values():
        if w.kind != "ws":
            continue
        lower = w.unit in LOWER_IS_BETTER
        row = [w.name]
        for mine, names in (("faye-gevent", None), ("faye-gthread", THREAD_PEERS)):
            value = res.med(mine, w.name)
            best = best_of(res, w.name, names, lower)
            cpu = res.med(mine, w.name, "server_us_per_op")
            best_cpu = res.med(best[0], w.name, "server_us_per_op") if best else None
            row += [
                res.cell(mine, w.name),
                f"{best[0]} {res.cell(best[0], w.name)}" if best else "-",
                fmt(value / best[1], 3) if value and best else "-",
                fmt(cpu / best_cpu, 3) if cpu and best_cpu else "-",
            ]
            if mine == "faye-gevent":
                floor = res.med(FLOOR, w.name)
                if value and floor and lower:
                    versus_floor = f"{value - floor:+.1f} KiB"
                else:
                    versus_floor = fmt(value / floor, 3) if value and floor else "-"
                row += [res.cell(FLOOR, w.name), versus_floor]
        rows.append(row)
    return (
        "### faye_sync against the best Python peer and the floor\n\n"
        "Medians (min–max of the repetitions). The best peer is picked per workload among "
        "every Python peer in the run, websockets on uvloop included; the floor is "
        f"{FLOOR} (a raw upgrade and a minimal frame echo on the same server, no library). "
        "Rates: higher is better. Idle KiB/conn: lower is better, and faye / floor is "
        "given as the difference. CPU/op ratio: faye_sync's server CPU time per message "
        "(or handshake) over the same peer's, lower is better; on a shared machine it is "
        "steadier than the rates.\n\n"
        + table(
            [
                "workload",
                "faye-gevent",
                "best Python peer",
                "ratio",
                "CPU/op ratio",
                "floor-pywsgi",
                "faye / floor",
                "faye-gthread",
                "best thread peer",
                "ratio",
                "CPU/op ratio",
            ],
            rows,
        )
    )


def targets(res: Results) -> str:
    """The targets of the performance issue (14), each against the best of its peers."""
    rows = []

    def check(
        work: str,
        goal: float,
        against: str,
        names: tuple[str, ...] | None = None,
        server: str = "faye-gevent",
        over_floor: bool = False,
    ) -> None:
        if work not in res.works or not any(s.name == server for s in res.servers):
            return
        lower = res.works[work].unit in LOWER_IS_BETTER
        best = best_of(res, work, names, lower)
        mine = res.med(server, work)
        label = f"{work} ({server})"
        if not best or not mine:
            rows.append([label, "-", against, "-", "-", "not measured"])
            return
        if over_floor:  # idle memory: at most the floor + goal KiB per connection
            figure, ok, goal_text = mine - best[1], mine - best[1] <= goal, f"<= +{goal} KiB"
        elif lower:
            figure, ok, goal_text = mine / best[1], mine / best[1] <= goal, f"<= {goal}"
        else:
            figure, ok, goal_text = mine / best[1], mine / best[1] >= goal, f">= {goal}"
        shown = f"{figure:+.2f} KiB" if over_floor else f"{figure:.3f}"
        # What the no-library floor (on gevent.pywsgi) scores against the same peer: a goal
        # above it is out of reach of any library on that server and this machine.
        bare = res.med(FLOOR, work)
        floor_text = "-" if over_floor or names == floor or not bare else f"{bare / best[1]:.3f}"
        status = "met" if ok else "NOT met"
        same_server = server == "faye-gevent"
        if not ok and same_server and floor_text != "-" and not lower and float(floor_text) < goal:
            status += " (above the floor's own ratio)"
        rows.append([label, goal_text, f"{against}: {best[0]}", shown, floor_text, status])

    floor = (FLOOR,)
    for work in res.works:
        if work.startswith(("echo-50c-32B", "echo-50c-4KiB")):
            check(work, 1.10, "best Python peer")
            check(work, 0.95, "floor", floor)
        elif "-1MiB" in work:
            check(work, 1.5, "best websockets server", WEBSOCKETS_PEERS)
            check(work, 1.5, "best websockets server", WEBSOCKETS_PEERS, server="faye-gthread")
        if res.works[work].mode in ("echo", "connect"):
            check(work, 1.25, "best thread peer", THREAD_PEERS, server="faye-gthread")
    check("connect-16c", 1.0, "best Python peer")
    check("connect-16c", 0.90, "floor", floor)
    idle = next((w for w in res.works if w.startswith("idle")), None)
    if idle:
        check(idle, 0.5, "floor", floor, over_floor=True)
    check(
        "sse-100c",
        1.0,
        "bare gevent generator",
        ("bare-gevent-sse",),
        server="faye-eventsource",
    )
    return "### Targets (issue 14)\n\n" + table(
        ["target", "goal", "against", "ratio", "floor's ratio", "status"], rows
    )


def saturation(res: Results) -> str:
    """Is the generator the bottleneck? Its capacity (the raw floor) against the fastest peer."""
    rows = []
    for w in res.works.values():
        if w.mode not in ("echo", "connect"):
            continue
        cands = [
            (s.name, res.med(s.name, w.name))
            for s in res.servers
            if "ws" in s.kinds and s.name != "floor-node" and res.med(s.name, w.name)
        ]
        if not cands:
            continue
        name, rate = max(cands, key=lambda nv: nv[1])
        floor = res.med("floor-node", w.name)
        rows.append(
            [
                w.name,
                f"{name} {fmt(rate)}",
                f"{fmt(res.med(name, w.name, 'server_cpu_pct'), 2)} / "
                f"{fmt(res.med(name, w.name, 'gen_cpu_pct'), 2)}",
                fmt(floor),
                fmt(floor / rate, 3) if floor else "-",
                fmt(res.med("floor-node", w.name, "gen_cpu_pct"), 2),
            ]
        )
    return (
        "### Generator saturation check\n\nThe generator is not the bottleneck when the fastest "
        "server keeps its core busy (server CPU near 100 %) while the generator has headroom, "
        "and the raw floor server gets more out of the same generator.\n\n"
        + table(
            [
                "workload",
                "fastest server",
                "its server / gen CPU %",
                "floor-node rate",
                "floor / fastest",
                "gen CPU % at floor",
            ],
            rows,
        )
    )


# ------------------------------------------------------------------- main


def machine() -> str:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    node = subprocess.run([NODE, "--version"], capture_output=True, text=True).stdout.strip()
    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs ({cpu}), "
        f"Python {platform.python_version()}, "
        f"node {node}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for dist in (
        "gevent",
        "greenlet",
        "gunicorn",
        "websockets",
        "simple-websocket",
        "flask-sock",
        "flask",
        "gevent-websocket",
        "uvloop",
    ):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} missing")
    ws = BENCH / "node_modules" / "ws" / "package.json"
    if ws.exists():
        parts.append(f"ws {json.loads(ws.read_text())['version']}")
    return ", ".join(parts)


def code_version() -> str:
    """The faye_sync and wsgi_examples code under test: git HEAD plus a hash of the files on disk.

    The hash changes when the working tree does, so a run whose points saw different
    code (someone editing the package meanwhile) says so.
    """
    import hashlib

    digest = hashlib.sha1()
    for path in sorted([*ROOT.glob("faye_sync/**/*.py"), *ROOT.glob("wsgi_examples/*.py")]):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return f"{head or 'no-git'}+{digest.hexdigest()[:10]}"


def available(server: Server) -> str | None:
    """Why ``server`` cannot run here, or None."""
    if server.name == "node-ws" and not (BENCH / "node_modules" / "ws").exists():
        return "npm install --prefix benchmarks ws"
    if server.name == "faye-eventsource":
        try:
            sys.path.insert(0, str(ROOT))
            from faye_sync.eventsource import EventSource  # noqa: F401
        except ImportError as exc:
            return f"faye_sync.eventsource.EventSource is missing ({exc})"
        finally:
            sys.path.pop(0)
    modules = {
        "sw-gevent": "flask_sock",
        "gevent-websocket": "geventwebsocket",
        "websockets-sync": "websockets",
        "websockets-asyncio": "websockets",
        "websockets-uvloop": "uvloop",
        "sw-gthread": "flask_sock",
        "faye-gthread": "gunicorn",
    }
    if server.name in modules:
        from importlib.util import find_spec

        if find_spec(modules[server.name]) is None:
            return f"pip install {modules[server.name]}"
    return None


def baseline_server(rev: str) -> Server:
    """faye-gevent from an older commit: its faye_sync and wsgi_examples in a temp directory."""
    root = Path(tempfile.mkdtemp(prefix=f"faye-bench-{rev.replace('/', '_')}-"))
    archive = subprocess.run(
        ["git", "archive", rev, "faye_sync", "wsgi_examples"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    echo = SERVERS["faye-gevent"]
    return Server(
        f"faye-gevent@{rev}",
        f"{echo.label}, faye_sync at {rev}",
        echo.cmd,
        echo.kinds,
        faye=True,
        root=root,
    )


def compiled_servers() -> list[Server]:
    """faye-gevent and faye-gthread on mypyc's build of the frame layer (setup.py's COMPILED).

    The working tree's faye_sync, wsgi_examples and build files are copied to a temp
    directory and compiled in place there (tests/compiled.py), so that the pure servers
    and the compiled ones run in the same run, interleaved.
    """
    root = Path(tempfile.mkdtemp(prefix="faye-bench-compiled-"))
    for name in ("faye_sync", "wsgi_examples", "tests"):
        shutil.copytree(
            ROOT / name, root / name, ignore=shutil.ignore_patterns("*.so", "__pycache__")
        )
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.rst"):
        shutil.copy(ROOT / name, root / name)
    build = subprocess.run(
        [PY, "-m", "tests.compiled", "build"], cwd=root, capture_output=True, text=True
    )
    if build.returncode:
        raise SystemExit(f"--compiled: the mypyc build failed:\n{build.stderr[-2000:]}")
    return [
        replace(SERVERS[name], name=f"{name}-compiled", root=root)
        for name in ("faye-gevent", "faye-gthread")
    ]


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        raise SystemExit(f"ulimit -n is {soft} (hard {hard}); {need} are needed for the idle test")


def pick_cores(no_pin: bool) -> tuple[int | None, int | None]:
    if no_pin or not shutil.which("taskset"):
        return None, None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    return cores[-1], cores[0]  # server on the last core, generator on the first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 repetition, 1 s windows, 1,000 idle connections"
    )
    parser.add_argument("--reps", type=int, help="repetitions (full: 5, quick: 1)")
    parser.add_argument("--duration", type=float, help="measured seconds per point (full: 3)")
    parser.add_argument("--warmup", type=float, help="seconds of load before measuring (full: 0.5)")
    parser.add_argument("--idle-conns", type=int, help="connections of the idle test (full: 5000)")
    parser.add_argument("--servers", help="comma-separated subset of: " + ", ".join(SERVERS))
    parser.add_argument(
        "--workloads", help="comma-separated subset (by name or prefix, e.g. echo-50c)"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument(
        "--inflight",
        type=int,
        default=1,
        help="messages in flight per echo connection (default 1: one round trip at a time)",
    )
    parser.add_argument(
        "--rounds",
        action="store_true",
        help="echo in lock-step rounds (every connection sends, then all echoes are awaited)",
    )
    parser.add_argument("--json", type=Path, help="write every repetition's raw results here")
    parser.add_argument(
        "--compiled",
        action="store_true",
        help="also run faye-gevent and faye-gthread on mypyc's build of the frame layer",
    )
    parser.add_argument("--no-micro", action="store_true", help="skip benchmarks/micro.py")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run faye-gevent from git revision REV (server faye-gevent@REV), for A/B",
    )
    opts = parser.parse_args(argv)
    opts.reps = opts.reps or (1 if opts.quick else 5)
    opts.duration = min(opts.duration or (1.0 if opts.quick else 3.0), 10.0)
    opts.warmup = opts.warmup if opts.warmup is not None else (0.3 if opts.quick else 0.5)
    opts.idle_conns = opts.idle_conns or (1000 if opts.quick else 5000)

    raise_fd_limit(opts.idle_conns + 1000)
    works = workloads(opts.idle_conns)
    if opts.workloads:
        wanted = [p.strip() for p in opts.workloads.split(",")]
        works = {n: w for n, w in works.items() if any(n == p or n.startswith(p) for p in wanted)}
    names = [n.strip() for n in opts.servers.split(",")] if opts.servers else list(SERVERS)
    servers = []
    for name in names:
        server = SERVERS[name]
        why = available(server)
        if why:
            print(f"# skipping {name}: {why}", flush=True)
            continue
        servers.append(server)
    if opts.baseline:
        servers.append(baseline_server(opts.baseline))
    if opts.compiled:
        servers += compiled_servers()
    cores = pick_cores(opts.no_pin)

    print(f"# machine: {machine()} (at start)", flush=True)
    print(f"# versions: {versions()}", flush=True)
    print(
        f"# pinning: server on core {cores[0]}, generator on core {cores[1]}; "
        f"{opts.reps} repetition(s), {opts.warmup} s warm-up + {opts.duration} s per point",
        flush=True,
    )

    res = Results(works, servers)
    versions_seen: set[str] = set()
    print(f"# faye_sync code: {code_version()} (git HEAD + hash of the files on disk)", flush=True)
    log_dir = Path(tempfile.mkdtemp(prefix="faye-bench-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    try:
        for rep in range(opts.reps):
            for work in works.values():
                todo = res.served(work)
                shift = rep % len(todo) if todo else 0
                for server in todo[shift:] + todo[:shift]:  # peers interleaved, order rotated
                    try:
                        point = run_point(server, work, opts, cores, log_dir)
                    except Exception as exc:  # a peer that fails does not stop the run
                        res.errors.setdefault((server.name, work.name), []).append(str(exc))
                        print(
                            f"# rep {rep + 1} {work.name} {server.name}: FAILED {exc}", flush=True
                        )
                        continue
                    point["rep"] = rep
                    if server.faye:
                        point["code"] = code_version()
                        versions_seen.add(point["code"].partition("+")[2])
                    res.points.setdefault((server.name, work.name), []).append(point)
                    busy = gen_busy(point)
                    extra = (
                        f"server {point['server_cpu_pct']:.0f}% gen {point['gen_cpu_pct']:.0f}% "
                        f"(/proc {fmt(point.get('gen_cpu_proc_pct'), 2)}%) "
                        f"server {fmt(point['server_us_per_op'])} µs/op"
                        + (f"  WARNING: generator at {busy:.0f} % CPU" if busy else "")
                        if "server_cpu_pct" in point
                        else f"{point['count']} conns, "
                        f"RSS {point['rss_base_mib']:.1f}→{point['rss_mib']:.1f} MiB"
                    )
                    print(
                        f"# rep {rep + 1} {work.name:14} {server.name:18} "
                        f"{fmt(point['rate']):>9} {work.unit:9} {extra}",
                        flush=True,
                    )
    except KeyboardInterrupt:
        print("# interrupted: reporting what was measured", flush=True)
    finally:
        stop_all()

    print(f"\n# {time.monotonic() - started:.0f} s; server logs in {log_dir}")
    if len(versions_seen) > 1:
        print(
            "# WARNING: faye_sync changed on disk during the run (file hashes "
            f"{', '.join(sorted(versions_seen))}): its points measured different code"
        )
    print()
    print(report(res))
    print(
        "\n### Reproduce\n\n"
        f"    python benchmarks/run.py {' '.join(sys.argv[1:] if argv is None else argv)}\n\n"
        f"faye_sync code {code_version()}; {machine()} (at the end)"
    )
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "versions": versions(),
                    "options": {
                        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()
                    },
                    "summary": res.summary(),
                    "points": [
                        {"server": s, "workload": w, **p}
                        for (s, w), ps in res.points.items()
                        for p in ps
                    ],
                    "errors": [
                        {"server": s, "workload": w, "errors": e}
                        for (s, w), e in res.errors.items()
                    ],
                },
                indent=1,
            )
        )
    if not opts.no_micro:
        print("\n## Micro-benchmarks (benchmarks/micro.py)\n", flush=True)
        subprocess.run(
            pinned([PY, str(BENCH / "micro.py")] + (["--quick"] if opts.quick else []), cores[0]),
            cwd=ROOT,
            timeout=600,
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        stop_all()
