"""P1 by class: export, correction and erasure of a user id two organizations share, acting as
either organization, set up in either order.

Firestore lists a collection group in path order, so a read that reaches past its organization
and takes the first match answers right for the organization whose id sorts first and wrong for
the other: each case below acts as both, and the organization ids are chosen so that each sorts
first in one of the orders.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from push365.fanout.repository import FirestoreFanoutRepository
from push365.notifications.repository import FirestoreNotificationRepository
from push365.organizations.repository import FirestoreOrganizationRepository
from push365.privacy.repository import FirestorePrivacyStore
from push365.subscriptions.model import subscription_id
from push365.subscriptions.repository import FirestoreSubscriptionRepository
from push365.users.model import UserBatch
from push365.users.repository import FirestoreUserDirectory
from tests.conftest import REPO
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


@dataclass
class Pair:
    """The two organizations' repositories' view: ``me`` reads, ``other`` must stay unseen."""

    services: Services
    me: str
    other: str
    sent: dict[str, list[str]]

    def sids(self, org: str) -> list[str]:
        count = len(self.sent[org])  # as many devices as sends (shared_user)
        return sorted(subscription_id(token_of(org, n)) for n in range(count))


def _notification(pair: Pair) -> Any:
    store = FirestoreNotificationRepository(pair.services.client)
    assert store.get(pair.me, pair.sent[pair.other][0]) is None
    return store.get(pair.me, pair.sent[pair.me][0])


def _organization_get(pair: Pair) -> Any:
    found = FirestoreOrganizationRepository(pair.services.client).get(pair.me)
    assert found is not None
    assert found.id == pair.me
    return found


def _credentials(pair: Pair) -> Any:
    found = FirestoreOrganizationRepository(pair.services.client).credentials(pair.me)
    assert found is not None
    return found


def _export_organization(pair: Pair) -> Any:
    found = FirestorePrivacyStore(pair.services.client).export_organization(pair.me)
    assert [u["full_name"] for u in found["users"]] == [name_of(pair.me)]
    return found


def _export_user(pair: Pair) -> Any:
    found = FirestorePrivacyStore(pair.services.client).export_user(pair.me, BOB)
    assert found is not None
    assert found["user"]["full_name"] == name_of(pair.me)
    return found


def _active_ids(pair: Pair) -> Any:
    found = FirestoreSubscriptionRepository(pair.services.client).active_subscription_ids(
        pair.me, [BOB]
    )
    assert found == pair.sids(pair.me)
    return found


def _active_ids_after(pair: Pair) -> Any:
    store = FirestoreSubscriptionRepository(pair.services.client)
    found = list(store.active_subscription_ids_after(pair.me, [BOB], None))
    assert found == pair.sids(pair.me)
    return found


def _devices(pair: Pair) -> Any:
    store = FirestoreSubscriptionRepository(pair.services.client)
    found = store.active_devices_by_id(pair.me, [*pair.sids(pair.me), *pair.sids(pair.other)])
    assert sorted(found) == pair.sids(pair.me)
    return found


def _full_names(pair: Pair) -> Any:
    found = FirestoreUserDirectory(pair.services.client).full_names(pair.me, [BOB])
    assert found == {BOB: name_of(pair.me)}
    return found


def _plan_record(pair: Pair) -> Any:
    store = FirestoreFanoutRepository(pair.services.client)
    assert store.plan_record(pair.me, pair.sent[pair.other][0]) is None
    found = store.plan_record(pair.me, pair.sent[pair.me][0])
    assert found is not None
    return found


def _open_batches(pair: Pair) -> Any:
    store = FirestoreFanoutRepository(pair.services.client)
    return [store.open_batches(pair.me, nid) for nid in pair.sent[pair.other]]


REPOSITORY_READS: dict[tuple[str, str], Callable[[Pair], Any]] = {
    ("FirestoreNotificationRepository", "get"): _notification,
    ("FirestoreOrganizationRepository", "get"): _organization_get,
    ("FirestoreOrganizationRepository", "credentials"): _credentials,
    ("FirestorePrivacyStore", "export_organization"): _export_organization,
    ("FirestorePrivacyStore", "export_user"): _export_user,
    ("FirestoreSubscriptionRepository", "active_subscription_ids"): _active_ids,
    ("FirestoreSubscriptionRepository", "active_subscription_ids_after"): _active_ids_after,
    ("FirestoreSubscriptionRepository", "active_devices_by_id"): _devices,
    ("FirestoreUserDirectory", "full_names"): _full_names,
    ("FirestoreFanoutRepository", "plan_record"): _plan_record,
    ("FirestoreFanoutRepository", "open_batches"): _open_batches,
}
"""Every public read of a Firestore adapter in ``shared/push365/*/repository.py`` that takes an
organization -> how to call it as ``me`` (asserting what it must find of ``me``'s)."""

NOT_ORGANIZATION_READS = {
    ("FirestoreFanoutRepository", "unfinished"): "every organization's (the reconciler's)",
    ("FirestoreSignupRepository", "count"): "a throttle's count, no organization's data",
}
WRITES = {
    "FirestoreFanoutRepository": {
        "lease_plan", "add_batch", "end_plan", "release_plan", "fail_plan", "take",
        "checkpoint", "finish", "release",
    },
    "FirestoreNotificationRepository": {"claim", "rebind", "mark_published", "mark_delivered"},
    "FirestoreOrganizationRepository": {
        "add", "update_profile", "rotate_key", "revoke_previous", "confirm_email", "set_rules",
        "claim_alert",
    },
    "FirestorePrivacyStore": {"erase_user", "erase_organization"},
    "FirestoreSignupRepository": {"add", "redeem", "hit"},
    "FirestoreSubscriptionRepository": {
        "activate", "deactivate_token", "deactivate_user", "delete_user", "retire", "seen",
    },
    "FirestoreUserRepository": {"upsert_many", "ensure", "delete"},
    "FirestoreQuotaCounter": {"hit"},  # counters: no organization's data is read back
    "FirestoreMailCounters": {"add", "claim"},
}  # fmt: skip
"""The other public methods: writes (what they may touch is the routes' and P1's tests')."""


def repository_methods() -> set[tuple[str, str]]:
    """(class, method) of every public method of every Firestore adapter in the repositories."""
    found = set()
    for path in sorted((REPO / "shared" / "push365").glob("*/repository.py")):
        module = importlib.import_module(f"push365.{path.parent.name}.repository")
        for name, kind in vars(module).items():
            adapter = inspect.isclass(kind) and name.startswith("Firestore")
            if adapter and kind.__module__ == module.__name__:
                found |= {
                    (name, method)
                    for method, _ in inspect.getmembers(kind, inspect.isfunction)
                    if not method.startswith("_")
                }
    return found


def test_every_repository_read_has_a_case_or_is_listed() -> None:
    writes = {(kind, method) for kind, methods in WRITES.items() for method in methods}

    assert repository_methods() == set(REPOSITORY_READS) | set(NOT_ORGANIZATION_READS) | writes


@pytest.mark.parametrize("order", ORDERS)
def test_every_repository_read_finds_only_its_own_organizations(
    services: Services, order: tuple[str, str]
) -> None:
    sent = shared_user(services, order)

    for me in order:
        (other,) = set(order) - {me}
        pair = Pair(services, me, other, sent)
        others = [other, other[:8], *sent[other], *pair.sids(other)]
        found = {kind: repr(read(pair)) for kind, read in REPOSITORY_READS.items()}

        wrong = {kind: [s for s in others if s in text] for kind, text in found.items()}
        assert {kind: seen for kind, seen in wrong.items() if seen} == {}
