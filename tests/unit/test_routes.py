"""The route tables are the one source of truth for how a route is let in, counted and read:
every route of every function has an Operation that declares its auth and its quota class, and
no handler authenticates, checks the operator or the scheduler, or reads its query by hand (the
Api does, from the declaration)."""

from __future__ import annotations

import re

import pytest

from devstack.gateway import FUNCTIONS_DIR
from devstack.openapi import function_apis
from push365.quotas import QUOTA_CLASSES
from push365.web.openapi import AUTHS

APIS = function_apis()
BY_HAND = re.compile(
    r"\.authenticate\(|\.identify\(|check_operator|authorize_purge|request\.query\(|request\.api_key"
)


def test_every_route_declares_its_auth_and_its_quota() -> None:
    routes = {
        (name, path, method): operation
        for name, api in APIS.items()
        for (path, method), operation in api.operations.items()
    }

    assert len(routes) >= 17  # (an Api refuses a route without an Operation: see test_openapi)
    for route, operation in routes.items():
        assert operation.auth in AUTHS, route
        assert operation.quota in QUOTA_CLASSES, route
        if QUOTA_CLASSES[operation.quota].scope == "organization":
            # an organization's quota needs an organization: a route with a key
            assert operation.auth in ("key", "webhook", "optional"), route


@pytest.mark.parametrize("path", sorted(FUNCTIONS_DIR.glob("*.py")), ids=lambda p: p.stem)
def test_no_handler_checks_credentials_or_reads_its_query_by_hand(path: object) -> None:
    source = path.read_text()  # type: ignore[attr-defined]

    assert BY_HAND.findall(source) == []
