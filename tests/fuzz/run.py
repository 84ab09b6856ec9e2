"""Run every fuzz target for a bounded time and report; exit 1 if any crashed.

::

    python -m tests.fuzz.run                  # 60 s in all, split between targets
    python -m tests.fuzz.run --seconds 600 --targets frames,sse --corpus .fuzz-corpus
    python -m tests.fuzz.run --engine hypothesis   # without atheris

With atheris (coverage-guided libFuzzer) each target runs in its own process,
started from a corpus seeded with one valid input per target. Crashing inputs
are written as ``TARGET-crash-*`` files in a temporary directory (printed at the end)
and can be replayed with ``python -m tests.fuzz.fuzz TARGET crash-file``.
Without atheris, Hypothesis generates the inputs instead (not coverage-guided,
but bounded the same way). Every wait is bounded: a target process that
outlives its budget by 60 s is killed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.fuzz import targets  # noqa: E402 - after the path is set


def _seed(corpus: Path, name: str) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(targets.SEEDS.get(name, [])):
        (corpus / f"seed-{index}").write_bytes(seed)


def run_atheris(name: str, seconds: int, corpus: Path, artifacts: Path) -> tuple[bool, str]:
    _seed(corpus, name)
    command = [
        sys.executable,
        "-m",
        "tests.fuzz.fuzz",
        name,
        f"-max_total_time={seconds}",
        "-rss_limit_mb=2048",
        "-timeout=10",  # one input taking 10 s is a bug (a regex blow-up, a hang)
        "-max_len=8192",
        f"-artifact_prefix={artifacts}/{name}-",
        "-print_final_stats=1",
        str(corpus),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        return False, f"did not stop within {seconds + 60} s\n{exc.stderr or ''}"
    log = done.stderr
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
    cov = re.findall(r"cov: (\d+)", log)
    known = sorted(set(re.findall(r"known bug tolerated: (\S+)", log)))
    summary = f"{runs[-1] if runs else '?'} inputs, cov {cov[-1] if cov else '?'}" + (
        f", known bugs hit: {', '.join(known)}" if known else ""
    )
    if done.returncode != 0:
        return False, summary + "\n" + log[-4000:]
    return True, summary


def run_hypothesis(name: str, seconds: float) -> tuple[bool, str]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    target = targets.TARGETS[name]
    count = 0

    @settings(
        max_examples=500,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.one_of(st.binary(max_size=2048), st.sampled_from(targets.SEEDS.get(name, [b""]))))
    def check(data: bytes) -> None:
        nonlocal count
        count += 1
        target(data)

    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            check()
    except Exception as exc:  # the failing (shrunk) input is in the report
        return False, f"{count} inputs; {type(exc).__name__}: {exc}"
    return True, f"{count} inputs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="total budget (default 60)")
    parser.add_argument("--targets", default=",".join(targets.TARGETS))
    parser.add_argument("--corpus", type=Path, help="keep corpora here (default: a temp dir)")
    parser.add_argument("--engine", choices=("atheris", "hypothesis"), default=None)
    options = parser.parse_args(argv)
    names = [n for n in options.targets.split(",") if n]
    unknown = [n for n in names if n not in targets.TARGETS]
    if unknown:
        parser.error(f"unknown targets {unknown}; known: {list(targets.TARGETS)}")
    engine = options.engine or (
        "atheris" if importlib.util.find_spec("atheris") is not None else "hypothesis"
    )
    budget = max(1, options.seconds // len(names))
    print(f"fuzzing {', '.join(names)} with {engine}, {budget} s each", flush=True)
    failed = False
    with tempfile.TemporaryDirectory(prefix="faye_sync-fuzz-") as scratch:
        corpus_root = options.corpus or Path(scratch) / "corpus"
        # Outside the checkout, and kept only when something crashed.
        artifacts = Path(tempfile.mkdtemp(prefix="faye_sync-fuzz-artifacts-"))
        for name in names:
            if engine == "atheris":
                ok, summary = run_atheris(name, budget, corpus_root / name, artifacts)
            else:
                ok, summary = run_hypothesis(name, budget)
            failed |= not ok
            print(f"{name:>10}: {'ok' if ok else 'FAILED'}: {summary}", flush=True)
        if failed:
            print(f"crashing inputs, if any, are in {artifacts}", flush=True)
        elif not any(artifacts.iterdir()):
            artifacts.rmdir()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
