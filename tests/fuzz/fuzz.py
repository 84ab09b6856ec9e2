"""atheris entry point for one target: ``python -m tests.fuzz.fuzz TARGET [libFuzzer args]``.

faye_sync is imported under ``atheris.instrument_imports`` so libFuzzer sees its
branch coverage. libFuzzer's own arguments follow the target name, e.g.
``-max_total_time=15 -rss_limit_mb=2048 corpus_dir``. Run from the repository
root (the runner, ``tests/fuzz/run.py``, does that and bounds the time).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["faye_sync"]):
    from tests.fuzz import targets


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        names = ", ".join(targets.TARGETS)
        sys.exit(f"usage: python -m tests.fuzz.fuzz TARGET [libFuzzer args]; TARGET: {names}")
    target = targets.TARGETS[sys.argv[1]]

    def test_one_input(data: bytes) -> None:
        target(data)

    atheris.Setup([sys.argv[0], *sys.argv[2:]], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
