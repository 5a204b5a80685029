"""The hostile-input run's result line, printed in the terminal summary (visible in CI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

RESULT = "hostile_result"  # the user property the test's report carries (to xdist's controller too)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "hostile" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.emulator)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, line in getattr(report, "user_properties", ()):
                if name == RESULT and getattr(report, "when", "") == "call":
                    terminalreporter.write_line(line)
