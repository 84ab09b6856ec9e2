#!/usr/bin/env python3
"""Run the Autobahn|Testsuite against faye_sync's echo server and echo client.

    python tests/autobahn/run.py                    # both sides, gevent server
    python tests/autobahn/run.py --side server --server gevent --server werkzeug
    python tests/autobahn/run.py --side client --cases '5.*,6.4.*'

Server side: ``python -m wsgi_examples.echo`` on 127.0.0.1 (a free port) is
fuzzed by ``wstest -m fuzzingclient``. Client side: ``wstest -m
fuzzingserver`` listens on 127.0.0.1 and ``python -m wsgi_examples.echo_client
ws://127.0.0.1:PORT/runCase?case=N&agent=faye_sync`` is run once per case, then
``/updateReports?agent=faye_sync``. The JSON reports (index.json) are read back
and summarised; the exit status is 1 if any case FAILED, 2 if the run itself
broke (timeout, a process that died, cases with no result), else 0.

Autobahn|Testsuite is Python 2.7 only: this script makes (or reuses) a 2.7
virtualenv with ``virtualenv<20.22`` and installs requirements-py27.txt into
it. Every subprocess and every wait is bounded; every process started here is
killed, by its own process group id, on the way out.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import glob
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
HOST = "127.0.0.1"
DEFAULT_VENV = ROOT / ".tox" / "autobahn-py27"
DEFAULT_REPORTS = ROOT / "tests" / "artifacts" / "autobahn"
REQUIREMENTS = HERE / "requirements-py27.txt"
VIRTUALENV_PIN = "virtualenv==20.21.1"  # the last release that makes Python 2.7 environments
CLIENT_AGENT = "faye_sync"
BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
SERVERS = ("gevent", "werkzeug", "wsgiref")
# Category 9 sends messages up to 16 MiB: the examples get a limit above that, so the
# run tests conformance rather than the library's default max_length (1 MiB).
MAX_LENGTH = 2**26

_started: list[subprocess.Popen[bytes]] = []


def log(message: str) -> None:
    print(f"[autobahn] {message}", flush=True)


# --------------------------------------------------------------------------- processes


def start(
    argv: Sequence[str | os.PathLike[str]], logfile: Path, **kwargs: Any
) -> subprocess.Popen[bytes]:
    """Start a long-running process in its own session, output to ``logfile``."""
    with open(logfile, "wb") as out:
        proc = subprocess.Popen(
            [os.fspath(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kwargs,
        )
    _started.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group ``proc`` leads, then SIGKILL it after ``grace`` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(grace)
    # the group may outlive its leader (a child the leader spawned): kill what is left
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc in _started:
        _started.remove(proc)


def stop_all() -> None:
    for proc in list(_started):
        stop(proc, grace=5.0)


def run_bounded(
    argv: Sequence[str | os.PathLike[str]], timeout: float, **kwargs: Any
) -> subprocess.CompletedProcess[bytes]:
    """``subprocess.run`` in a new session; on timeout the whole group is killed."""
    proc = subprocess.Popen(
        [os.fspath(a) for a in argv], start_new_session=True, stdin=subprocess.DEVNULL, **kwargs
    )
    _started.append(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc, grace=2.0)
        raise
    finally:
        if proc in _started:
            stop(proc, grace=2.0)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunError(f"{what} exited with status {proc.returncode} before listening")
        with socket.socket() as sock:
            sock.settimeout(1.0)
            if sock.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise RunError(f"{what} did not listen on {HOST}:{port} within {timeout:.0f} s")


class RunError(Exception):
    """The run itself broke (as opposed to a case failing)."""


# --------------------------------------------------------------------------- the 2.7 venv


def find_python2(explicit: str | None) -> str:
    candidates: list[str] = []
    if explicit:
        candidates.append(explicit)
    if os.environ.get("AUTOBAHN_PYTHON2"):
        candidates.append(os.environ["AUTOBAHN_PYTHON2"])
    for name in ("python2.7", "python2"):
        found = shutil.which(name)
        if found and "shims" not in found:
            candidates.append(found)
    pyenv = shutil.which("pyenv")
    pyenv_root = os.environ.get("PYENV_ROOT")
    if not pyenv_root and pyenv:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            pyenv_root = subprocess.run(
                [pyenv, "root"], capture_output=True, text=True, timeout=30, check=True
            ).stdout.strip()
    pyenv_root = pyenv_root or os.path.expanduser("~/.pyenv")
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", "2.7*", "bin", "python")))
    for candidate in candidates:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if out.returncode == 0 and out.stdout.strip() == "2.7":
                return candidate
    raise RunError(
        "no Python 2.7 found: pass --python2 PATH or set AUTOBAHN_PYTHON2 "
        "(e.g. `pyenv install 2.7.18`, then $(pyenv root)/versions/2.7.18/bin/python)"
    )


def ensure_venv(venv: Path, python2: str, *, recreate: bool) -> Path:
    """Make or reuse the Python 2.7 virtualenv holding Autobahn|Testsuite; return its python."""
    py = venv / "bin" / "python"
    stamp = venv / ".faye_sync-autobahn-stamp"
    want = hashlib.sha256(REQUIREMENTS.read_bytes() + python2.encode()).hexdigest()
    if not recreate and stamp.exists() and stamp.read_text().strip() == want and py.exists():
        log(f"reusing {venv}")
        return py
    started = time.monotonic()
    bootstrap = venv.parent / (venv.name + "-bootstrap")
    virtualenv = bootstrap / "bin" / "virtualenv"
    if not virtualenv.exists():
        log(f"making {bootstrap} with {VIRTUALENV_PIN}")
        run_checked([sys.executable, "-m", "venv", "--clear", bootstrap], 300)
        run_checked(
            [bootstrap / "bin" / "python", "-m", "pip", "install", "-q", VIRTUALENV_PIN], 600
        )
    if venv.exists():
        shutil.rmtree(venv)
    log(f"making the Python 2.7 virtualenv {venv} from {python2}")
    run_checked([virtualenv, "-q", "-p", python2, venv], 300)
    log(f"installing {REQUIREMENTS.name} (builds wsaccel and ujson: takes a minute)")
    run_checked([py, "-m", "pip", "install", "-q", "-r", REQUIREMENTS], 1800)
    run_checked([py, "-c", "import autobahntestsuite.wstest"], 120)
    stamp.write_text(want + "\n")
    log(f"virtualenv ready in {time.monotonic() - started:.0f} s")
    return py


def run_checked(argv: Sequence[str | os.PathLike[str]], timeout: float) -> None:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_PYTHON_VERSION_WARNING="1")
    try:
        done = run_bounded(argv, timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    except subprocess.TimeoutExpired:
        raise RunError(f"timed out after {timeout} s: {' '.join(map(str, argv))}") from None
    if done.returncode != 0:
        sys.stdout.write(done.stdout.decode(errors="replace")[-8000:])
        raise RunError(f"exit status {done.returncode}: {' '.join(map(str, argv))}")


def wstest_argv(py27: Path, *args: str | os.PathLike[str]) -> list[str | os.PathLike[str]]:
    return [py27, "-u", HERE / "wstest_local.py", *args]


def py27_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no .pyc next to wstest_local.py
    return env


def py3_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


# --------------------------------------------------------------------------- specs


def split_patterns(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def load_spec(name: str, args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((HERE / name).read_text())
    if args.cases:
        spec["cases"] = split_patterns(args.cases)
    if args.exclude_cases:
        spec["exclude-cases"] = spec.get("exclude-cases", []) + split_patterns(args.exclude_cases)
    return spec


# --------------------------------------------------------------------------- server side


def run_server_side(server: str, py27: Path, args: argparse.Namespace) -> dict[str, Any]:
    agent = f"faye_sync-{server}"
    outdir = args.reports / f"server-{server}"
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    port = free_port()
    started = time.monotonic()
    echo = start(
        [
            args.python,
            "-m",
            "wsgi_examples.echo",
            "--port",
            str(port),
            "--server",
            server,
            "--max-length",
            str(MAX_LENGTH),
        ],
        outdir / "echo-server.log",
        cwd=ROOT,
        env=py3_env(),
    )
    try:
        wait_for_port(port, echo, 30, f"echo server ({server})")
        spec = load_spec("fuzzingclient.json", args)
        spec["outdir"] = str(outdir)
        spec["servers"] = [{"agent": agent, "url": f"ws://{HOST}:{port}"}]
        spec_file = outdir / "fuzzingclient.json"
        spec_file.write_text(json.dumps(spec, indent=2))
        log(
            f"server side: {agent} on ws://{HOST}:{port}, wstest -m fuzzingclient "
            f"(bounded to {args.timeout:.0f} s), log {outdir / 'wstest.log'}"
        )
        wstest = start(
            wstest_argv(py27, "-m", "fuzzingclient", "-s", spec_file),
            outdir / "wstest.log",
            cwd=outdir,
            env=py27_env(),
        )
        progress = Progress(outdir / "wstest.log", "Running test case ID ")
        deadline = started + args.timeout
        while wstest.poll() is None:
            if time.monotonic() > deadline:
                stop(wstest)
                raise RunError(
                    f"wstest fuzzingclient against {server} exceeded {args.timeout:.0f} s"
                )
            if echo.poll() is not None:
                stop(wstest)
                raise RunError(f"the echo server ({server}) died with status {echo.returncode}")
            progress.poll()
            time.sleep(0.5)
        if wstest.returncode != 0:
            raise RunError(f"wstest fuzzingclient exited with status {wstest.returncode}")
    finally:
        stop_all()
    wall = time.monotonic() - started
    tracebacks = (outdir / "echo-server.log").read_text(errors="replace").count("Traceback")
    return summarise(
        f"server ({server})",
        outdir,
        agent,
        wall,
        spec_cases=None,
        notes={"tracebacks in echo-server.log": tracebacks},
    )


class Progress:
    """Print the case wstest is on, every ``every`` cases, from its log."""

    def __init__(self, logfile: Path, marker: str, every: int = 25) -> None:
        self.logfile, self.marker, self.every, self.seen = logfile, marker, every, 0
        self.started = time.monotonic()

    def poll(self) -> None:
        try:
            text = self.logfile.read_text(errors="replace")
        except OSError:
            return
        lines = [line for line in text.splitlines() if line.startswith(self.marker)]
        if len(lines) // self.every > self.seen // self.every:
            case = lines[-1][len(self.marker) :].split()[0]
            log(f"  ... {len(lines)} cases, now {case} ({time.monotonic() - self.started:.0f} s)")
        self.seen = len(lines)


# --------------------------------------------------------------------------- client side


def run_client_side(py27: Path, args: argparse.Namespace) -> dict[str, Any]:
    outdir = args.reports / "client"
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    port = free_port()
    base = f"ws://{HOST}:{port}"
    spec = load_spec("fuzzingserver.json", args)
    spec["url"] = base
    spec["outdir"] = str(outdir)
    spec_file = outdir / "fuzzingserver.json"
    spec_file.write_text(json.dumps(spec, indent=2))
    started = time.monotonic()
    wstest_log = outdir / "wstest.log"
    wstest = start(
        wstest_argv(py27, "-m", "fuzzingserver", "-s", spec_file, "--webport", "0"),
        wstest_log,
        cwd=outdir,
        env=py27_env(),
    )
    problems: list[str] = []
    try:
        wait_for_port(port, wstest, 60, "wstest fuzzingserver")
        cases = read_case_list(wstest_log)
        log(
            f"client side: wstest -m fuzzingserver on {base}, {len(cases)} cases, "
            f"one `python -m wsgi_examples.echo_client` per case (each bounded to "
            f"{case_timeout('1', args):.0f} s, 12.x/13.x to {case_timeout('12', args):.0f} s; "
            f"the run to {args.timeout:.0f} s)"
        )
        deadline = started + args.timeout
        with open(outdir / "echo-client.log", "w") as client_log:
            for index, case in enumerate(cases, 1):
                if time.monotonic() > deadline:
                    raise RunError(f"client side exceeded {args.timeout:.0f} s at case {case}")
                if wstest.poll() is not None:
                    raise RunError(f"wstest fuzzingserver died with status {wstest.returncode}")
                url = f"{base}/runCase?case={index}&agent={CLIENT_AGENT}"
                outcome = run_echo_client(args.python, url, case_timeout(case, args))
                client_log.write(f"=== {case} {url}\n{outcome}\n")
                client_log.flush()
                if outcome.startswith("TIMEOUT") or "Traceback" in outcome:
                    problems.append(f"{case}: {outcome.splitlines()[0]}")
                if index % 25 == 0:
                    log(
                        f"  ... {index}/{len(cases)} cases, last {case} "
                        f"({time.monotonic() - started:.0f} s)"
                    )
            outcome = run_echo_client(
                args.python, f"{base}/updateReports?agent={CLIENT_AGENT}", 120
            )
            client_log.write(f"=== updateReports\n{outcome}\n")
    finally:
        stop_all()
    wall = time.monotonic() - started
    return summarise(
        "client",
        outdir,
        CLIENT_AGENT,
        wall,
        spec_cases=cases,
        notes={"echo_client timeouts or tracebacks": problems},
    )


def read_case_list(wstest_log: Path, timeout: float = 30) -> list[str]:
    """wstest prints ``Cases = ['1.1.1', ...]`` at start-up: the order ``case=N`` indexes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in wstest_log.read_text(errors="replace").splitlines():
            if line.startswith("Cases = "):
                return [str(c) for c in ast.literal_eval(line[len("Cases = ") :])]
        time.sleep(0.1)
    raise RunError(f"no case list in {wstest_log}")


def case_timeout(case: str, args: argparse.Namespace) -> float:
    """Autobahn lets a case run up to 100 s (9.x) or 480 s (12.x, 13.x): add a margin."""
    if args.case_timeout:
        return float(args.case_timeout)
    return 540.0 if case.split(".")[0] in ("12", "13") else 160.0


def run_echo_client(python: str, url: str, timeout: float) -> str:
    try:
        done = run_bounded(
            [python, "-m", "wsgi_examples.echo_client", "--max-length", str(MAX_LENGTH), url],
            timeout,
            cwd=ROOT,
            env=py3_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except subprocess.TimeoutExpired:
        return f"TIMEOUT after {timeout:.0f} s (killed)"
    out = done.stdout.decode(errors="replace").strip()
    err = done.stderr.decode(errors="replace").strip()
    return f"exit {done.returncode}: {out}" + (f"\n{err}" if err else "")


# --------------------------------------------------------------------------- reports


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split("."))


def summarise(
    side: str,
    outdir: Path,
    agent: str,
    wall: float,
    spec_cases: list[str] | None,
    notes: dict[str, Any],
) -> dict[str, Any]:
    index_file = outdir / "index.json"
    if not index_file.exists():
        raise RunError(f"{side}: no report {index_file}")
    results: dict[str, dict[str, Any]] = json.loads(index_file.read_text()).get(agent, {})
    behavior = Counter(r["behavior"] for r in results.values())
    closing = Counter(r["behaviorClose"] for r in results.values())
    details = []
    for case_id in sorted(results, key=case_key):
        r = results[case_id]
        if r["behavior"] == "OK" and r["behaviorClose"] in ("OK", "INFORMATIONAL"):
            continue
        report: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            report = json.loads((outdir / r["reportfile"]).read_text())
        details.append(
            {
                "case": case_id,
                "behavior": r["behavior"],
                "behaviorClose": r["behaviorClose"],
                "remoteCloseCode": r["remoteCloseCode"],
                "duration_ms": r["duration"],
                "description": report.get("description", ""),
                "expectation": report.get("expectation", ""),
                "result": report.get("result", ""),
                "resultClose": report.get("resultClose", ""),
                "reportfile": str(outdir / r["reportfile"]),
            }
        )
    missing = sorted(set(spec_cases or ()) - set(results), key=case_key)
    slowest = sorted(results.items(), key=lambda kv: -kv[1]["duration"])[:5]
    summary = {
        "side": side,
        "agent": agent,
        "wall_seconds": round(wall, 1),
        "cases": len(results),
        "behavior": {b: behavior.get(b, 0) for b in BEHAVIORS}
        | {b: n for b, n in behavior.items() if b not in BEHAVIORS},
        "behaviorClose": dict(sorted(closing.items())),
        "missing": missing,
        "notes": notes,
        "not_ok": details,
        "slowest": [(case_id, r["duration"]) for case_id, r in slowest],
        "report": str(outdir / "index.html"),
    }
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    print()
    print(
        f"=== {summary['side']}: agent {summary['agent']}, {summary['cases']} cases, "
        f"wall {summary['wall_seconds']:.0f} s"
    )
    print("  " + "  ".join(f"{b} {n}" for b, n in summary["behavior"].items()))
    print(
        "  close behaviour: " + "  ".join(f"{b} {n}" for b, n in summary["behaviorClose"].items())
    )
    print("  slowest: " + ", ".join(f"{c} {ms / 1000:.1f} s" for c, ms in summary["slowest"]))
    for case in summary["not_ok"]:
        print(
            f"  {case['case']:<9} {case['behavior']:<13} close {case['behaviorClose']:<16} "
            f"code {case['remoteCloseCode']}: {case['result']} / {case['resultClose']}"
        )
    if summary["missing"]:
        print(f"  NO RESULT for {len(summary['missing'])} cases: {', '.join(summary['missing'])}")
    for note, value in summary["notes"].items():
        if value:
            print(f"  {note}: {value}")
    print(f"  report: {summary['report']}")


def markdown_summary(summaries: Sequence[dict[str, Any]]) -> str:
    """The counts per side, and every case that is not plainly OK, as Markdown."""
    lines = [
        "| side | cases | " + " | ".join(BEHAVIORS) + " | wall |",
        "|---|---:|" + "---:|" * len(BEHAVIORS) + "---:|",
    ]
    for s in summaries:
        counts = " | ".join(str(s["behavior"][b]) for b in BEHAVIORS)
        lines.append(f"| {s['side']} | {s['cases']} | {counts} | {s['wall_seconds']:.0f} s |")
    for s in summaries:
        lines += ["", f"### {s['side']}: not plainly OK", ""]
        closing = ", ".join(f"{b} {n}" for b, n in s["behaviorClose"].items())
        lines.append(f"Closing behaviour: {closing}.")
        if s["missing"]:
            lines.append(f"No result for: {', '.join(s['missing'])}.")
        if not s["not_ok"]:
            lines.append("\nEvery case OK, closing behaviour OK or INFORMATIONAL.")
            continue
        lines += ["", "| case | result | closing | code | Autobahn says |", "|---|---|---|---|---|"]
        for c in s["not_ok"]:
            said = " / ".join(str(x) for x in (c["result"], c["resultClose"]) if x)
            said = said.replace("|", "\\|").replace("\n", " ")
            lines.append(
                f"| {c['case']} | {c['behavior']} | {c['behaviorClose']} | "
                f"{c['remoteCloseCode']} | {said} |"
            )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", choices=("server", "client", "both"), default="both")
    parser.add_argument(
        "--server",
        action="append",
        choices=SERVERS,
        help="WSGI server for the echo example (repeatable; default gevent)",
    )
    parser.add_argument("--cases", help="comma-separated case patterns (default: the spec's '*')")
    parser.add_argument("--exclude-cases", help="comma-separated case patterns to leave out")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="Python 3 that runs the examples (default: this one)",
    )
    parser.add_argument(
        "--python2",
        help="Python 2.7 for the Autobahn virtualenv "
        "(default: $AUTOBAHN_PYTHON2, python2.7 on PATH, pyenv's 2.7.x)",
    )
    parser.add_argument(
        "--venv", type=Path, default=Path(os.environ.get("AUTOBAHN_VENV", DEFAULT_VENV))
    )
    parser.add_argument("--recreate", action="store_true", help="rebuild the 2.7 virtualenv")
    parser.add_argument("--reports", type=Path, default=DEFAULT_REPORTS)
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600,
        help="bound on each side's whole run, seconds (default 3600)",
    )
    parser.add_argument(
        "--case-timeout",
        type=float,
        default=None,
        help="bound on one echo_client run, seconds (default 160, and 540 "
        "for 12.x/13.x: Autobahn itself waits up to 100 s and 480 s)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        help="also write the counts and every case not plainly OK to this Markdown file",
    )
    parser.add_argument(
        "--strict-close",
        action="store_true",
        help="also fail on a FAILED / UNCLEAN / WRONG CODE closing behaviour",
    )
    args = parser.parse_args(argv)
    args.server = args.server or ["gevent"]
    args.reports = args.reports.resolve()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def on_signal(signum: int, frame: object) -> None:
        stop_all()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    summaries = []
    try:
        py27 = ensure_venv(args.venv, find_python2(args.python2), recreate=args.recreate)
        args.reports.mkdir(parents=True, exist_ok=True)
        if args.side in ("server", "both"):
            for server in args.server:
                summaries.append(run_server_side(server, py27, args))
                print_summary(summaries[-1])
        if args.side in ("client", "both"):
            summaries.append(run_client_side(py27, args))
            print_summary(summaries[-1])
    except RunError as exc:
        log(f"ERROR: {exc}")
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        stop_all()
    print()
    print(f"{'side':<20}" + "".join(f"{b:>15}" for b in BEHAVIORS) + f"{'wall':>9}")
    for s in summaries:
        print(
            f"{s['side']:<20}"
            + "".join(f"{s['behavior'][b]:>15}" for b in BEHAVIORS)
            + f"{s['wall_seconds']:>8.0f}s"
        )
    if args.markdown:
        args.markdown.write_text(markdown_summary(summaries))
    failed = sum(s["behavior"]["FAILED"] for s in summaries)
    bad_close = sum(
        1
        for s in summaries
        for c in s["not_ok"]
        if c["behaviorClose"] in ("FAILED", "UNCLEAN", "WRONG CODE")
    )
    broken = any(s["missing"] for s in summaries)
    if broken:
        return 2
    if failed or (args.strict_close and bad_close):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
