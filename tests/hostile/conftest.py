"""The hostile-input tests need the emulators (its RESULT line is printed by tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "hostile" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.emulator)
