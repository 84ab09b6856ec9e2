"""RSS of a greenlet blocked on an Event, the least a gevent connection holds.

    python benchmarks/greenlet_rss.py [--greenlets 5000] [--depth 0]

Every connection on gevent (faye_sync or a peer on pywsgi) is a greenlet blocked
in ``recv``; this measures that part alone, with no socket and no server.
"""

from __future__ import annotations

import argparse

import gevent
import gevent.event


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--greenlets", type=int, default=5000)
    parser.add_argument("--depth", type=int, default=0, help="Python calls above the wait")
    opts = parser.parse_args()
    release = gevent.event.Event()

    def wait(depth: int) -> None:
        if depth:
            wait(depth - 1)
        else:
            release.wait()

    gevent.sleep(0)
    before = rss_bytes()
    waiting = [gevent.spawn(wait, opts.depth) for _ in range(opts.greenlets)]
    gevent.sleep(0.2)  # every greenlet runs up to its wait
    per_greenlet = (rss_bytes() - before) / opts.greenlets / 1024
    print(
        f"{per_greenlet:.2f} KiB of RSS per blocked greenlet "
        f"({opts.greenlets} greenlets, depth {opts.depth})"
    )
    release.set()
    gevent.joinall(waiting, timeout=10)


if __name__ == "__main__":
    main()
