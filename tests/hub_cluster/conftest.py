"""The hub cluster tests print their fault table at the end of the session (``-p no:xdist``)."""

from __future__ import annotations

from typing import Any

from tests.hub_cluster.cluster import COUNT_DEFINITIONS, ROWS, TABLE_FILE, table_lines


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return  # no fault test ran in this process (or xdist ran them elsewhere)
    terminalreporter.section("hub fault table (tests/hub_cluster)")
    for line in table_lines(ROWS):
        terminalreporter.write_line(line)
    terminalreporter.write_line("")
    for line in COUNT_DEFINITIONS.splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(also in {TABLE_FILE})")
