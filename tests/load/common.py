"""What the load and soak scripts share: file limits, process figures, a report."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field


def raise_nofile(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards ``wanted`` (children inherit it).

    Returns:
        The soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def fd_count(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_mib(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Report:
    """Figures collected during a run, printed as aligned ``name: value`` lines."""

    title: str
    started: float = field(default_factory=time.monotonic)
    lines: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, value: object) -> None:
        text = f"{value:.2f}" if isinstance(value, float) else str(value)
        self.lines.append((name, text))

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def render(self) -> str:
        width = max((len(name) for name, _ in self.lines), default=0)
        body = "\n".join(f"  {name.ljust(width)}  {value}" for name, value in self.lines)
        return f"{self.title}\n{body}"
