"""Run a Python server with its executed bytecodes counted between two signals.

    python benchmarks/bytecode_tracer.py OUT -m wsgi_examples.echo --port P --server gevent
    python benchmarks/bytecode_tracer.py OUT benchmarks/servers/floor_pywsgi.py --port P

What ``benchmarks/bytecodes.py`` starts in place of ``python ...``. The trace
function is installed before anything else is imported, so that every greenlet
and thread inherits it; until SIGUSR1 it returns at once on each call and traces
nothing. SIGUSR1 clears the counts, writes ``OUT.started`` and turns counting on:
from then on each new frame (and each resumed generator) counts its opcodes.
SIGUSR2 turns counting off and writes ``OUT``, JSON: ``functions``, [file,
qualified name, first line, opcodes, calls] per code object (a call is a frame
entered or a generator resumed; code compiled from a string, as the methods
dataclasses generate, counts under its first caller's file), and ``c_calls``,
[file, qualified name, first line, C function, calls] per C function a code
object called. A profile function (``sys.setprofile``) sees those: builtin
functions and methods, not types (``bytes(...)``). Frames already running at
SIGUSR1 are not counted. The handlers are gevent's (``gevent.signal_handler``):
the servers run gevent's loop, where a plain ``signal.signal`` handler may wait
for a wake-up.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import threading
from collections import Counter
from types import CodeType, FrameType
from typing import Any

TraceFunction = Any  # sys.settrace's callable; typeshed's alias is private

counts: Counter[CodeType] = Counter()  # opcodes executed
calls: Counter[CodeType] = Counter()  # frames entered or resumed (generators)
c_calls: Counter[tuple[CodeType, str | None, str]] = Counter()  # caller, C module, C name
generated: dict[CodeType, CodeType] = {}  # code compiled from a string (dataclasses): its caller
counting = False


def count_opcodes(frame: FrameType, event: str, arg: object) -> TraceFunction:
    if event == "opcode":
        counts[frame.f_code] += 1
    return count_opcodes


def on_call(frame: FrameType, event: str, arg: object) -> TraceFunction:
    if not counting:
        return None
    calls[frame.f_code] += 1
    if frame.f_code.co_filename == "<string>" and frame.f_back:
        generated.setdefault(frame.f_code, frame.f_back.f_code)
    frame.f_trace_lines = False
    frame.f_trace_opcodes = True
    return count_opcodes


def on_profile(frame: FrameType, event: str, arg: Any) -> None:
    if counting and event == "c_call":
        c_calls[frame.f_code, getattr(arg, "__module__", None), arg.__qualname__] += 1


def start(out: str) -> None:
    global counting
    counts.clear()
    calls.clear()
    c_calls.clear()
    generated.clear()
    with open(out + ".started", "w"):
        pass
    counting = True


def where(code: CodeType) -> list[object]:
    """File, name, first line; a generated method counts in its (first) caller's file."""
    name = getattr(code, "co_qualname", code.co_name)  # Python 3.11+: with the class
    if code in generated:
        caller = where(generated[code])
        return [caller[0], f"{caller[1]} → generated {code.co_name}", caller[2]]
    return [code.co_filename, name, code.co_firstlineno]


def dump(out: str) -> None:
    global counting
    counting = False
    # without this file's own few opcodes and calls (dump's first line)
    codes = [code for code in calls.keys() | counts.keys() if code.co_filename != __file__]
    functions = [[*where(code), counts[code], calls[code]] for code in codes]
    c_rows = [
        [*where(code), f"{module}.{name}" if module else name, n]
        for (code, module, name), n in c_calls.items()
        if code.co_filename != __file__
    ]
    with open(out + ".tmp", "w") as f:
        json.dump({"functions": functions, "c_calls": c_rows}, f)
    os.replace(out + ".tmp", out)  # the reader sees the whole file or none


def main() -> None:
    out, target, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    sys.settrace(on_call)
    threading.settrace(on_call)
    sys.setprofile(on_profile)
    threading.setprofile(on_profile)
    import signal

    import gevent

    gevent.signal_handler(signal.SIGUSR1, start, out)
    gevent.signal_handler(signal.SIGUSR2, dump, out)
    if target == "-m":
        sys.argv = [args[0], *args[1:]]
        runpy.run_module(args[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = [target, *args]
        runpy.run_path(target, run_name="__main__")


if __name__ == "__main__":
    main()
