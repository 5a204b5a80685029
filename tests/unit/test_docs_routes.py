"""docs/api/README.md's tables of who may call what and of the quotas are the route tables' and
``push365.quotas.QUOTA_CLASSES``' own: a route added, or an ``auth=``, ``quota=`` or limit
changed, without its row fails here."""

from __future__ import annotations

import re

from devstack.openapi import function_apis
from push365.quotas import QUOTA_CLASSES
from tests.docs import page

ROUTE = re.compile(r"`(GET|POST) (/[a-z-]+(?:/[a-z-]+)*)`")


def _rows(heading: str) -> list[list[str]]:
    text = page("api/README.md")
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    rows = []
    for line in text[start : end if end > 0 else len(text)].splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _declared() -> dict[tuple[str, str], tuple[str, str]]:
    return {
        (method, f"/{name}" + ("" if path == "/" else path)): (operation.auth, operation.quota)
        for name, api in function_apis().items()
        for (path, method), operation in api.operations.items()
    }


def test_the_route_table_shows_every_routes_auth_and_quota() -> None:
    shown = {}
    for cells in _rows("Who may call what"):
        route = ROUTE.fullmatch(cells[0])
        if route and len(cells) == 5:
            quota = re.match(r"`(\w+)`", cells[4])
            shown[(route[1], route[2])] = (cells[1].strip("`"), quota[1] if quota else cells[4])

    assert shown == _declared()


def test_the_previous_key_column_follows_the_auth() -> None:
    for cells in _rows("Who may call what"):
        if ROUTE.fullmatch(cells[0]) and len(cells) == 5:
            auth, previous = cells[1].strip("`"), cells[3]
            if auth == "key":
                assert previous == "`403`", cells
            if auth == "webhook":
                assert previous == "yes", cells


def _number(cell: str) -> int | None:
    return None if cell == "none" else int(cell.replace(",", ""))


def test_the_quota_table_shows_every_class_with_its_limits_and_routes() -> None:
    declared = _declared()
    shown = {}
    for cells in _rows("Quotas"):
        name = re.fullmatch(r"`(\w+)`", cells[0])
        if not name or len(cells) != 6:
            continue
        quota = QUOTA_CLASSES[name[1]]
        shown[quota.name] = (_number(cells[3]), _number(cells[4]))
        routes = {
            route for route, (_, declared_quota) in declared.items() if declared_quota == quota.name
        }
        assert set(ROUTE.findall(cells[1])) == routes, quota.name

    assert shown == {q.name: (q.per_minute, q.per_day) for q in QUOTA_CLASSES.values()}
