"""P1 by class: export, correction and erasure of a user id two organizations share, acting as
either organization, set up in either order.

Firestore lists a collection group in path order, so a read that reaches past its organization
and takes the first match answers right for the organization whose id sorts first and wrong for
the other: each case below acts as both, and the organization ids are chosen so that each sorts
first in one of the orders.
"""

from __future__ import annotations

import pytest

from push365.users.model import UserBatch
from tests.privacy.conftest import BOB, Services, under
from tests.privacy.test_p01_access_correct_delete import erase_user, organization_of

LOW = "0a0a0a0a-1111-4222-8333-444444444401"  # sorts before every other organization id
HIGH = "fefefefe-1111-4222-8333-444444444402"  # sorts after every other organization id
ORDERS = [pytest.param((LOW, HIGH), id="low-first"), pytest.param((HIGH, LOW), id="high-first")]


def name_of(org: str) -> str:
    return f"Bob of {org[:8]}"


def token_of(org: str, n: int) -> str:
    return f"bob-{org[:8]}-{n}"


def shared_user(services: Services, order: tuple[str, str]) -> dict[str, list[str]]:
    """BOB in both organizations, in ``order``: his own name in each, one more device and one
    more send in the second than in the first (so a count that reads both is wrong for both).
    The notification ids by organization."""
    sent: dict[str, list[str]] = {}
    for index, org in enumerate(order):
        services.register(org)
        for n in range(index + 1):
            services.subscribe(org, BOB, token_of(org, n))
        services.users.upsert(
            org, UserBatch.model_validate({"users": [{"id": BOB, "full_name": name_of(org)}]}).users
        )
        sent[org] = [services.send(org, [BOB]) for _ in range(index + 1)]
    return sent


@pytest.mark.parametrize("order", ORDERS)
def test_a_users_export_is_its_own_organizations_acting_as_either(
    services: Services, order: tuple[str, str]
) -> None:
    sent = shared_user(services, order)

    exported = {org: services.privacy.export(org, BOB) for org in order}

    for org in order:
        (other,) = set(order) - {org}
        mine = exported[org]
        assert mine["user"]["full_name"] == name_of(org)
        tokens = sorted(s["instance_id"] for s in mine["subscriptions"])
        assert tokens == sorted(token_of(org, n) for n in range(order.index(org) + 1))
        assert sorted(n["id"] for n in mine["notifications"]) == sorted(sent[org])
        assert other[:8] not in repr(mine)


@pytest.mark.parametrize("order", ORDERS)
def test_erasing_a_shared_user_acting_as_either_leaves_the_other(
    services: Services, order: tuple[str, str]
) -> None:
    shared_user(services, order)

    for org in order:
        (other,) = set(order) - {org}
        others_before = under(services.client, other)
        erased = services.privacy.erase(organization_of(services, org), erase_user(BOB))

        assert erased["subscriptions"] == erased["notifications"] == order.index(org) + 1
        assert under(services.client, other) == others_before
        assert [p for p, f in under(services.client, org) if BOB in p or BOB in repr(f)] == []
