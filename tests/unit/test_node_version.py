"""The Node.js version README (and any page under docs/) states is the one
web/sdk/package-lock.json really needs: the lowest version that every locked package's
``engines.node`` range accepts."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import REPO
from tests.docs import docs_text

LOCKFILE = REPO / "web" / "sdk" / "package-lock.json"

Version = tuple[int, int, int]

_COMPARATOR = re.compile(r"^(\^|~|>=|<=|>|<|=)?v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?$")


def _comparators(part: str) -> list[tuple[str, Version, int]]:
    """One space-separated set of comparators as (operator, version, how many numbers it gave)."""
    part = re.sub(r"(>=|<=|>|<|=)\s+", r"\1", part.strip())  # ">= 10.*" is ">=10.*"
    found = []
    for token in part.split():
        match = _COMPARATOR.match(token)
        if match is None:
            raise ValueError(f"an engines range this test cannot read: {token!r}")
        operator, *numbers = match.groups()
        given = [int(n) for n in numbers if n is not None and n.isdigit()]
        padded = [*given, 0, 0, 0][:3]
        found.append((operator or "=", (padded[0], padded[1], padded[2]), len(given)))
    return found


def _next(version: Version, given: int) -> Version:
    """The first version past a partial one: 6 -> 7.0.0, 6.2 -> 6.3.0."""
    if given <= 1:
        return (version[0] + 1, 0, 0)
    if given == 2:
        return (version[0], version[1] + 1, 0)
    return (version[0], version[1], version[2] + 1)


def satisfies(version: Version, node_range: str) -> bool:
    """npm's semver for the forms engines use: ||, comparators, ^, ~, x-ranges."""
    for alternative in node_range.split("||"):
        if not alternative.strip() or alternative.strip() == "*":
            return True
        if all(_holds(version, *c) for c in _comparators(alternative)):
            return True
    return False


def _holds(version: Version, operator: str, bound: Version, given: int) -> bool:
    if operator == ">=":
        return version >= bound
    if operator == ">":
        return version >= _next(bound, given)
    if operator == "<":
        return version < bound
    if operator == "<=":
        return version < _next(bound, given)
    if operator == "^":
        if bound[0] > 0 or given == 1:
            upper: Version = (bound[0] + 1, 0, 0)
        elif bound[1] > 0 or given == 2:
            upper = (0, bound[1] + 1, 0)
        else:
            upper = (0, 0, bound[2] + 1)
        return bound <= version < upper
    if operator == "~":
        return bound <= version < _next(bound, min(given, 2))
    return bound <= version < _next(bound, given)  # "=" and x-ranges: 6, 6.*, 6.2.x


def engines() -> dict[str, str]:
    """Every locked package's ``engines.node``, by its path in the lockfile."""
    packages = json.loads(LOCKFILE.read_text())["packages"]
    return {
        path: package["engines"]["node"]
        for path, package in packages.items()
        if isinstance(package.get("engines"), dict) and "node" in package["engines"]
    }


def lowest_node(ranges: dict[str, str]) -> Version:
    """The lowest version every range accepts: one of the versions the ranges name."""
    candidates = sorted(
        {
            bound
            for r in ranges.values()
            for alt in r.split("||")
            for _, bound, _ in _comparators(alt)
        }
    )
    for candidate in candidates:
        if all(satisfies(candidate, r) for r in ranges.values()):
            return candidate
    raise AssertionError("no Node.js version satisfies every locked package")


def readme_node(text: str) -> set[Version]:
    """Every version the docs name as "Node.js X.Y+"."""
    stated = set()
    for found in re.findall(r"Node\.js\s+(\d+(?:\.\d+){0,2})\+", text):
        numbers = [*(int(n) for n in found.split(".")), 0, 0]
        stated.add((numbers[0], numbers[1], numbers[2]))
    return stated


def test_the_range_reader_knows_the_forms_engines_use() -> None:
    assert satisfies((18, 19, 0), "^18.19.0 || >=20.6.0")
    assert not satisfies((19, 0, 0), "^18.19.0 || >=20.6.0")
    assert not satisfies((20, 5, 9), "^18.19.0 || >=20.6.0")
    assert satisfies((8, 0, 0), "6.* || 8.* || >= 10.*")
    assert not satisfies((9, 0, 0), "6.* || 8.* || >= 10.*")
    assert satisfies((8, 11, 0), ">=9.3.0 || >=8.10.0 <9.0.0")
    assert not satisfies((8, 9, 0), ">=9.3.0 || >=8.10.0 <9.0.0")
    assert not satisfies((24, 11, 9), ">=24.12.0")
    with pytest.raises(ValueError, match="cannot read"):
        satisfies((1, 0, 0), ">=lts")


def test_readme_states_the_node_version_the_lockfile_needs() -> None:
    ranges = engines()
    needed = lowest_node(ranges)
    stated = readme_node(docs_text())

    assert ranges, f"no engines in {LOCKFILE}"
    strictest = sorted(p for p, r in ranges.items() if not satisfies(_before(needed), r))
    assert stated == {needed}, (
        f"The docs say Node.js {', '.join(_name(v) + '+' for v in sorted(stated)) or 'nothing'}; "
        f"the lockfile needs {_name(needed)}+ (engines of {', '.join(strictest)})"
    )


def _before(version: Version) -> Version:
    """A version just below ``version`` (for naming the packages that need it)."""
    if version[2] > 0:
        return (version[0], version[1], version[2] - 1)
    if version[1] > 0:
        return (version[0], version[1] - 1, 999)
    return (version[0] - 1, 999, 999)


def _name(version: Version) -> str:
    return ".".join(map(str, version))
