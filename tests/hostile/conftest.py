"""The hostile-input run's result line, printed in the terminal summary (visible in CI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

RESULTS: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "hostile" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.emulator)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in RESULTS:
        terminalreporter.write_line(line)
