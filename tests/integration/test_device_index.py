"""Each user's record lists the user's active subscriptions, written with them, so a send to a
few users finds their devices by key (its cost follows the recipients, not the organization).

Every way a subscription starts or ends keeps the list exact; what reads it checks each listed
device by key, so a list that is ever wider than the truth sends to nobody it should not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from push365.compliance import Limits, check_document
from push365.retention.purge import FirestoreRetentionStore, Purger
from push365.retention.rules import retention_rules
from push365.subscriptions.model import UnsubscribeReason, subscription_id
from push365.subscriptions.repository import FirestoreSubscriptionRepository
from push365.users.repository import FirestoreUserRepository
from tests.integration.conftest import ALICE, BOB, ORG, documents

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
PURGE_BY = NOW + timedelta(days=30)


def listed(store: Any, user_id: str) -> list[str] | None:
    user = documents(store, ORG, "users").get(user_id)
    return None if user is None else user.get("devices")


def subscribe(repository: FirestoreSubscriptionRepository, user_id: str, token: str) -> str:
    repository.activate(ORG, token, user_id, None, NOW)
    return subscription_id(token)


def test_every_start_and_end_of_a_subscription_keeps_its_users_list_exact(store: Any) -> None:
    repository = FirestoreSubscriptionRepository(store)

    laptop = subscribe(repository, BOB, "bob-laptop")
    phone = subscribe(repository, BOB, "bob-phone")
    subscribe(repository, BOB, "bob-phone")  # again: refreshed, listed once
    assert sorted(listed(store, BOB) or []) == sorted([laptop, phone])

    repository.deactivate_token(ORG, "bob-phone", UnsubscribeReason.REQUESTED, NOW, PURGE_BY)
    assert listed(store, BOB) == [laptop]

    subscribe(repository, ALICE, "bob-laptop")  # the laptop changed hands
    assert (listed(store, BOB), listed(store, ALICE)) == ([], [laptop])

    subscribe(repository, BOB, "bob-phone")  # back after unsubscribing
    repository.retire(ORG, [phone], UnsubscribeReason.UNREGISTERED, NOW, PURGE_BY)
    assert listed(store, BOB) == []

    subscribe(repository, ALICE, "alice-tablet")
    repository.deactivate_user(ORG, ALICE, UnsubscribeReason.REQUESTED, NOW, PURGE_BY)
    assert listed(store, ALICE) == []


def test_purge_takes_a_stale_subscription_off_its_users_list(store: Any) -> None:
    repository = FirestoreSubscriptionRepository(store)
    stale = subscribe(repository, BOB, "bob-old-browser")
    repository.activate(ORG, "bob-new-browser", BOB, None, NOW + timedelta(days=59))

    counts = Purger(FirestoreRetentionStore(store), retention_rules(90)).purge(
        NOW + timedelta(days=61)
    )

    assert counts["stale_subscriptions"] == 1
    assert listed(store, BOB) == [subscription_id("bob-new-browser")]
    assert stale not in (listed(store, BOB) or [])


def test_a_few_recipients_are_found_by_their_lists_and_each_device_checked(store: Any) -> None:
    repository = FirestoreSubscriptionRepository(store)
    FirestoreUserRepository(store).ensure(ORG, BOB, NOW)  # as subscribe does first
    FirestoreUserRepository(store).upsert_many(ORG, [{"id": ALICE}], NOW)  # as the users' sync
    laptop = subscribe(repository, BOB, "bob-laptop")
    alice = subscribe(repository, ALICE, "alice-pc")
    users = store.collection("organizations", ORG, "users")
    subscriptions = store.collection("organizations", ORG, "subscriptions")
    # A subscription no list names is not found for a user whose list is complete...
    subscriptions.document("f" * 64).set({"user_id": BOB, "status": "active"})
    # ...and a list wider than the truth finds only active devices of the recipients.
    users.document(BOB).update({"devices": [laptop, alice, "e" * 64]})

    assert repository.active_subscription_ids(ORG, [BOB]) == [laptop]
    assert repository.active_subscription_ids(ORG, [BOB, ALICE]) == sorted([laptop, alice])


def test_users_kept_from_before_the_lists_are_found_by_the_query_whatever_changes(
    store: Any,
) -> None:
    repository = FirestoreSubscriptionRepository(store)
    subscriptions = store.collection("organizations", ORG, "subscriptions")
    store.collection("organizations", ORG, "users").document(BOB).set({"id": BOB})  # no mark
    for sid in ("a" * 64, "b" * 64):  # subscribed before the lists existed: listed nowhere
        subscriptions.document(sid).set({"user_id": BOB, "status": "active"})
    subscriptions.document("c" * 64).set({"user_id": ALICE, "status": "active"})  # no record
    FirestoreUserRepository(store).ensure(ORG, BOB, NOW)  # (a kept record stays unmarked)
    FirestoreUserRepository(store).upsert_many(ORG, [{"id": BOB, "full_name": "Bob"}], NOW)

    # A change to one subscription lists that one alone: the others must still be found.
    new = subscribe(repository, BOB, "bob-new-laptop")
    repository.retire(ORG, ["b" * 64], UnsubscribeReason.UNREGISTERED, NOW, PURGE_BY)

    assert listed(store, BOB) == [new]  # partial, and so not trusted
    assert repository.active_subscription_ids(ORG, [BOB, ALICE]) == sorted(
        ["a" * 64, "c" * 64, new]
    )


def test_the_privacy_check_allows_the_list_and_only_ids_in_it() -> None:
    limits = Limits(now=NOW)
    user = {"id": BOB, "created_at": NOW, "updated_at": NOW}

    good = check_document("o/u", "users", user | {"devices": ["a" * 64]}, limits)
    bad = check_document("o/u", "users", user | {"devices": ["a" * 64, "Bob's laptop"]}, limits)

    assert good == []
    # (free text, too, where the policy keeps none)
    assert sorted((f.kind, f.detail) for f in bad) == [
        ("content_shaped_value", "devices"),
        ("value_not_a_code_or_hash", "devices.1"),
    ]
