"""The wheel job (``tox -e wheel``): install what we ship as a user would, then run the README.

1. ``python -m build`` makes the sdist and the wheel; ``twine check`` checks both.
2. A fresh venv gets the wheel (never the source tree, never editable) through the
   README's own ``pip install`` lines, with ``faye_sync`` standing for the wheel;
   lines that are about a clone (``-e``) or tooling (``tox``) are left out. With only
   that installed, each README ``gunicorn`` line starts and echoes a message. Then the
   extras the README's other recipes need, and the test runner; under tox the wheel
   must hold mypyc's compiled frame layer (``faye_sync.__compiled__``).
3. The README's blocks run against it (tests/test_readme.py) from a copy of the tests
   without the package beside them, so every ``import faye_sync`` is the wheel's
   (``FAYE_SYNC_WHEEL=1`` makes the tests check that).

Usage: ``python -m tests.wheel_job [--keep]`` from the repository root.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.readme import command_lines, of_kind

ROOT = Path(__file__).resolve().parent.parent
#: What the README's Python blocks import beyond the extras its pip lines name.
RECIPE_EXTRAS = "gevent,flask,django,prometheus,redis"
TEST_TOOLS = ["pytest", "websockets", "hypothesis", "docutils"]
COPIED = ["tests", "wsgi_examples", "README.rst", "setup.cfg", "tox.ini"]


def step(*command: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(map(str, command)), flush=True)
    subprocess.run([str(c) for c in command], cwd=cwd, env=env, check=True, timeout=1800)


def readme_pip_lines(wheel: Path) -> list[list[str]]:
    """The README's ``pip install`` lines for the package, with the wheel for faye_sync."""
    lines = []
    for block in of_kind("shell"):
        for words in command_lines(block):
            if words[:3] == ["python3", "-m", "pip"]:
                words = ["pip", *words[3:]]
            if words[:2] != ["pip", "install"] or "-e" in words:
                continue
            named = [re.sub(r"^faye_sync(?=\[|$)", str(wheel), w) for w in words[2:]]
            if named != words[2:]:
                lines.append(named)
    return lines


CLIENT_CHECK = """
import sys
from faye_sync import connect
ws = connect(sys.argv[1], net={"timeout": 5})
ws.send("hello")
assert ws.receive(timeout=5) == "hello"
ws.close()
"""


def run_gunicorn_lines(python: Path, tree: Path) -> None:
    """Start each README ``gunicorn`` line (``myapp`` is its first example) and echo through it.

    Before the test tools are installed: pytest brings ``packaging``, which gunicorn's
    gevent worker imports without declaring it.
    """
    first = next(b for b in of_kind("python") if "def app(" in b.text)
    (tree / "myapp.py").write_text(first.text, encoding="utf-8")
    for block in of_kind("shell"):
        for words in command_lines(block):
            if words[0] != "gunicorn":
                continue
            arguments = ["127.0.0.1:0" if w.startswith("127.0.0.1:") else w for w in words[1:]]
            print("+ gunicorn", " ".join(arguments), f"({block.where})", flush=True)
            with subprocess.Popen(
                [python, "-m", "gunicorn", *arguments],
                cwd=tree,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            ) as server:
                try:
                    port = _port_of(server, block.where)
                    url = f"ws://127.0.0.1:{port}/"
                    step(python, "-c", CLIENT_CHECK, url, cwd=tree)
                finally:
                    os.killpg(server.pid, signal.SIGQUIT)
                    server.wait(timeout=10)


def _port_of(server: subprocess.Popen[str], where: str) -> int:
    """Read the server's output until it listens and a worker booted; fail on a traceback."""
    assert server.stdout is not None
    output, port = "", 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line:
            break
        output += line
        listening = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
        port = int(listening.group(1)) if listening else port
        if "Traceback" in line or "Worker failed to boot" in line:
            break
        if port and "Booting worker" in line:
            return port
    raise AssertionError(f"{where}: gunicorn did not start:\n{output}")


def check_build(python: Path) -> None:
    """tox (FAYE_SYNC_EXPECT_COMPILED=1): the wheel holds mypyc's frame layer (setup.py)."""
    pure = os.environ.get("FAYE_SYNC_PURE", "") not in ("", "0")
    if os.environ.get("FAYE_SYNC_EXPECT_COMPILED") == "1" and not pure:
        check = "import faye_sync; assert faye_sync.__compiled__, 'the wheel is pure Python'"
        step(python, "-c", check, cwd=python.parent)  # not beside the checkout's package


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="faye_sync-wheel-"))
    try:
        dist = work / "dist"
        step(sys.executable, "-m", "build", "--outdir", dist, ROOT)
        built = sorted(dist.iterdir())
        step(sys.executable, "-m", "twine", "check", "--strict", *built)
        wheel = next(p for p in built if p.suffix == ".whl")

        venv = work / "venv"
        step(sys.executable, "-m", "venv", venv)
        python = venv / "bin" / "python"
        pip_lines = readme_pip_lines(wheel)
        assert pip_lines, "no `pip install faye_sync...` line in the README"
        for words in pip_lines:
            step(python, "-m", "pip", "install", "--quiet", *words)
        tree = work / "tree"
        tree.mkdir()
        run_gunicorn_lines(python, tree)  # before anything but the README's lines is installed
        step(python, "-m", "pip", "install", "--quiet", f"{wheel}[{RECIPE_EXTRAS}]")
        check_build(python)
        step(python, "-m", "pip", "install", "--quiet", *TEST_TOOLS)

        for name in COPIED:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, tree / name)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["FAYE_SYNC_WHEEL"] = "1"
        step(python, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider",
             "tests/test_readme.py", cwd=tree, env=env)  # fmt: skip
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
