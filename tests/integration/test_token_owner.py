"""A browser token belongs to one organization.

Every organization's messages go through one FCM project, so a token is a browser anywhere:
organization A subscribing B's token (with A's own key) pushed A's notifications to B's browser.
Subscribing a token another organization's active subscription holds is now ``409 token_held``,
which says nothing of that organization; the token is free again once that subscription ends
(unsubscribe, FCM retiring it, stale, its user removed or erased, its organization erased).

How: ``token_owners/{sha256(token)}`` names the organization, written in the same commit as the
subscription and removed in the same commit as it ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from push365.errors import TokenHeld
from push365.retention.purge import FirestoreRetentionStore, Purger
from push365.retention.rules import retention_rules
from push365.subscriptions.model import UnsubscribeReason, subscription_id
from push365.subscriptions.repository import FirestoreSubscriptionRepository
from tests.integration.conftest import (
    ALICE,
    BOB,
    ORG,
    OTHER_ORG,
    Functions,
    documents,
    register,
    send_and_deliver,
)

TOKEN = "browser-of-b-0001"
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def owners(store: Any) -> dict[str, dict[str, Any]]:
    return {s.id: s.to_dict() for s in store.collection("token_owners").stream()}


def test_a_token_another_organization_holds_is_refused_without_naming_it(
    api: Functions, store: Any
) -> None:
    key_a, key_b = register(api, ORG), register(api, OTHER_ORG)
    assert (
        api.post("/subscribe", {"user_id": BOB, "instance_id": TOKEN}, key=key_b).status_code == 201
    )

    taken = api.post("/subscribe", {"user_id": ALICE, "instance_id": TOKEN}, key=key_a)
    _, pushed = send_and_deliver(api, {"recipients": [ALICE], "title": "A", "body": "x"}, key_a)

    assert (taken.status_code, taken.json["error"]["code"]) == (409, "token_held")
    assert OTHER_ORG not in taken.text
    assert TOKEN not in taken.text
    assert documents(store, ORG, "subscriptions") == {}
    assert pushed is None or pushed["counts"]["devices"] == 0  # A reaches no browser of B's
    assert documents(store, OTHER_ORG, "subscriptions")[subscription_id(TOKEN)]["status"] == (
        "active"
    )
    assert owners(store) == {subscription_id(TOKEN): {"organization_id": OTHER_ORG}}
    # B's own subscribe of its token still refreshes it
    again = api.post("/subscribe", {"user_id": BOB, "instance_id": TOKEN}, key=key_b)
    assert again.status_code == 200


def test_a_token_is_free_again_once_its_subscription_ends(api: Functions, store: Any) -> None:
    key_a, key_b = register(api, ORG), register(api, OTHER_ORG)
    api.post("/subscribe", {"user_id": BOB, "instance_id": TOKEN}, key=key_b)

    api.post("/unsubscribe", {"instance_id": TOKEN}, key=key_b)
    moved = api.post("/subscribe", {"user_id": ALICE, "instance_id": TOKEN}, key=key_a)
    back = api.post("/subscribe", {"user_id": BOB, "instance_id": TOKEN}, key=key_b)

    assert moved.status_code == 201
    assert back.status_code == 409
    assert owners(store) == {subscription_id(TOKEN): {"organization_id": ORG}}


def test_every_end_of_a_subscription_frees_its_token(api: Functions, store: Any) -> None:
    key_a, key_b = register(api, ORG), register(api, OTHER_ORG)
    tokens = {f"{n}-{TOKEN}" for n in range(3)}
    user_ended, removed, erased = sorted(tokens)
    api.post("/subscribe", {"user_id": BOB, "instance_id": user_ended}, key=key_b)
    api.post("/subscribe", {"user_id": ALICE, "instance_id": removed}, key=key_b)
    api.post("/subscribe", {"user_id": BOB, "instance_id": erased}, key=key_a)
    assert set(owners(store)) == {subscription_id(t) for t in tokens}

    api.post("/unsubscribe", {"user_id": BOB}, key=key_b)  # every browser of a user
    api.post("/privacy/erase", {"user_id": ALICE}, key=key_b)
    api.post("/privacy/erase", {"organization": True}, key=key_a)

    assert owners(store) == {}
    for token in tokens:  # each is free for the other organization now
        again = api.post("/subscribe", {"user_id": BOB, "instance_id": token}, key=key_b)
        assert again.status_code == 201


def test_an_entry_left_by_an_ended_subscription_does_not_hold_its_token(
    api: Functions, store: Any
) -> None:
    key_a, key_b = register(api, ORG), register(api, OTHER_ORG)
    api.post("/subscribe", {"user_id": BOB, "instance_id": TOKEN}, key=key_b)
    # B's subscription gone without its entry (as a crash between two writes could leave it)
    store.collection("organizations", OTHER_ORG, "subscriptions").document(
        subscription_id(TOKEN)
    ).delete()

    taken = api.post("/subscribe", {"user_id": ALICE, "instance_id": TOKEN}, key=key_a)

    assert taken.status_code == 201
    assert owners(store) == {subscription_id(TOKEN): {"organization_id": ORG}}


def test_fcm_retiring_purge_and_user_removal_free_their_tokens(store: Any) -> None:
    repository = FirestoreSubscriptionRepository(store)
    repository.activate(ORG, "retired", BOB, None, NOW)
    repository.activate(ORG, "stale", BOB, None, NOW)
    repository.activate(ORG, "removed", ALICE, None, NOW + timedelta(days=59))
    repository.activate(ORG, "kept", ALICE, None, NOW + timedelta(days=59))

    repository.retire(ORG, [subscription_id("retired")], UnsubscribeReason.UNREGISTERED, NOW, NOW)
    counts = Purger(FirestoreRetentionStore(store), retention_rules(90)).purge(
        NOW + timedelta(days=61)
    )
    repository.delete_user(ORG, ALICE)  # (the user removed: every subscription of theirs goes)

    assert counts["stale_subscriptions"] == 1
    assert owners(store) == {}
    later = NOW + timedelta(days=62)
    for token in ("retired", "stale", "removed", "kept"):
        assert repository.activate(OTHER_ORG, token, BOB, None, later) is True
    with pytest.raises(TokenHeld):
        repository.activate(ORG, "kept", ALICE, None, later)
