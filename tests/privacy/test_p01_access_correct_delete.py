"""P1 (Getting Started): customers can access, correct and delete the information held.

Export and erasure reach everything about an organization or one of its users, and nothing of
another organization, even one with the same user id.
"""

from __future__ import annotations

from typing import Any

import pytest

from push365.errors import ValidationFailed
from push365.notifications.deliveries import decode_receipt_hashes
from push365.notifications.receipts import device_id
from push365.privacy.repository import FirestorePrivacyStore
from push365.privacy.service import PrivacyService
from push365.subscriptions.model import subscription_id
from tests.privacy.conftest import ALICE, BOB, ORG, OTHER_ORG, Services, every_document, under


def two_organizations(services: Services) -> dict[str, str]:
    """BOB in both organizations (one token each), ALICE in ORG; a send in each, delivered to
    BOB and confirmed by his browser (its receipt).
    The notification ids by organization."""
    services.register(ORG)
    services.register(OTHER_ORG)
    services.subscribe(ORG, BOB, "bob-at-org")
    services.subscribe(ORG, ALICE, "alice-at-org")
    services.subscribe(OTHER_ORG, BOB, "bob-at-other")
    sent = {}
    for org, token in ((ORG, "bob-at-org"), (OTHER_ORG, "bob-at-other")):
        sent[org] = services.send(org, [BOB, ALICE], dedup_key=f"idempotency-key:{org}-monday")
        services.notifications.confirm_delivery(services.deliver(org, sent[org], BOB, token))
    return sent


def test_an_export_lists_only_its_own_organizations_tokens(services: Services) -> None:
    two_organizations(services)

    exported = repr(services.privacy.export(ORG))

    assert "bob-at-org" in exported
    assert "bob-at-other" not in exported
    assert OTHER_ORG not in exported


def test_a_users_export_lists_only_that_organizations_data_of_a_shared_user_id(
    services: Services,
) -> None:
    sent = two_organizations(services)

    exported = services.privacy.export(ORG, BOB)

    tokens = [s.get("instance_id") for s in exported["subscriptions"]]
    assert tokens == ["bob-at-org"]
    assert [n["id"] for n in exported["notifications"]] == [sent[ORG]]
    (delivery,) = exported["notifications"][0]["deliveries"]
    assert delivery["delivered_at"] is not None  # his browser's receipt
    assert "bob-at-other" not in repr(exported)


def test_an_export_never_holds_the_keys_or_receipts_hashes(services: Services) -> None:
    two_organizations(services)
    organization = organization_of(services)
    services.organizations.rotate_key(organization)  # the previous key overlaps for 24 h
    stored = services.client.collection("organizations").document(ORG).get().to_dict()
    hashes = [stored["api_key_hash"], stored["previous_key_hash"], *stored["pending_emails"]]

    export = services.privacy.export(ORG)
    exported = repr(export)

    assert "api_key_hash" not in exported
    assert "previous_key_hash" not in exported
    assert "receipt_hash" not in exported
    assert all(h and h not in exported for h in hashes)  # nor a confirmation link's hash
    assert export["organization"]["pending_emails"] == ["ada@contoso.example"]


def test_an_export_holds_no_hash_of_a_key_or_code(services: Services) -> None:
    two_organizations(services)
    services.organizations.rotate_key(organization_of(services))  # the previous key overlaps
    organization = services.client.collection("organizations").document(ORG)
    stored = [organization.get().to_dict()]
    for kind in ("notifications", "dedup"):
        stored += [{"id": s.id, **s.to_dict()} for s in organization.collection(kind).stream()]
    hashes = [
        value
        for fields in stored
        for name, value in fields.items()
        if isinstance(value, str) and (name.endswith("hash") or name == "binding")
    ]
    hashes += [f["id"] for f in stored if "notification_id" in f]  # a dedup entry's id
    hashes += [f["dedup_key"] for f in stored if str(f.get("dedup_key")).startswith("sha256:")]

    exported = repr(services.privacy.export(ORG)) + repr(services.privacy.export(ORG, BOB))

    assert len(hashes) >= 5  # both keys, the binding, the dedup entry and the dedup key
    assert [h for h in hashes if h in exported] == []
    assert "binding" not in exported
    assert "sha256:" not in exported


def test_a_users_export_counts_the_other_recipients_and_names_none(services: Services) -> None:
    two_organizations(services)

    exported = services.privacy.export(ORG, BOB)

    (notification,) = exported["notifications"]
    assert notification["recipients_count"] == 2
    assert "recipients" not in notification
    assert ALICE not in repr(exported)


def test_an_export_comes_in_pages_of_a_bounded_size_in_a_stable_order(
    services: Services,
) -> None:
    two_organizations(services)
    for n in range(5):
        services.subscribe(ORG, ALICE, f"alice-{n}")
    paged = PrivacyService(FirestorePrivacyStore(services.client, page_size=3))
    whole = services.privacy.export(ORG)

    pages = [paged.export(ORG)]
    while pages[-1]["next_page_token"] is not None:
        pages.append(paged.export(ORG, page_token=pages[-1]["next_page_token"]))

    kinds = ("users", "subscriptions", "notifications", "dedup_keys")
    assert whole["next_page_token"] is None
    for page in pages:
        assert sum(len(page[kind]) for kind in kinds) <= 3
    for kind in kinds:
        assert [item for page in pages for item in page[kind]] == whole[kind]
    assert len(whole["subscriptions"]) == 7


@pytest.mark.parametrize("token", ["nonsense", "organizations.", "users.ZZ", "users." + "a" * 65])
def test_an_export_refuses_a_token_it_did_not_answer(services: Services, token: str) -> None:
    services.register(ORG)

    with pytest.raises(ValidationFailed):
        services.privacy.export(ORG, page_token=token)


def test_erasing_a_user_removes_them_everywhere_in_their_organization_only(
    services: Services,
) -> None:
    sent = two_organizations(services)
    other_before = under(services.client, OTHER_ORG)

    services.privacy.erase(organization_of(services), erase_user(BOB))

    mine = under(services.client, ORG)
    assert [p for p, f in mine if BOB in p or BOB in repr(f)] == []
    assert not any("bob-at-org" in repr(f) for _, f in mine)
    notification = dict(mine)[f"organizations/{ORG}/notifications/{sent[ORG]}"]
    assert notification["recipients"] == [ALICE]
    assert under(services.client, OTHER_ORG) == other_before


def test_erasing_a_user_reaches_the_dedup_key_of_their_sends(services: Services) -> None:
    sent = two_organizations(services)

    counts = services.privacy.erase(organization_of(services), erase_user(BOB))

    mine = dict(under(services.client, ORG))
    assert counts["dedup_keys"] == 1
    assert [p for p in mine if "/dedup/" in p] == []
    assert mine[f"organizations/{ORG}/notifications/{sent[ORG]}"]["dedup_key"] is None
    assert [p for p, _ in under(services.client, OTHER_ORG) if "/dedup/" in p] != []


def test_erasing_a_user_removes_their_subscriptions_and_deliveries(services: Services) -> None:
    sent = two_organizations(services)

    counts = services.privacy.erase(organization_of(services), erase_user(BOB))

    stored = dict(under(services.client, ORG))
    device = device_id(subscription_id("bob-at-org"))
    assert (counts["subscriptions"], counts["deliveries"], counts["users"]) == (1, 1, 1)
    assert f"organizations/{ORG}/subscriptions/{subscription_id('bob-at-org')}" not in stored
    assert not [p for p in stored if f"{sent[ORG]}/receipts/" in p]
    (batch,) = [f for p, f in stored.items() if p.endswith(f"{sent[ORG]}/batches/00000")]
    assert device not in batch["deliveries"]  # the batch's records
    assert device not in decode_receipt_hashes(batch["receipt_hashes"])
    assert batch["users"] == []
    assert f"organizations/{ORG}/users/{BOB}" not in stored
    held = {p for p, _ in every_document(services.client) if p.startswith("token_owners/")}
    assert f"token_owners/{subscription_id('bob-at-org')}" not in held  # his token is free
    assert f"token_owners/{subscription_id('alice-at-org')}" in held


def test_erasing_an_organization_removes_everything_of_it_and_nothing_else(
    services: Services,
) -> None:
    two_organizations(services)
    other_before = under(services.client, OTHER_ORG)

    counts = services.privacy.erase(organization_of(services), erase_organization())

    assert counts["dedup_keys"] == 1
    assert under(services.client, ORG) == []
    assert under(services.client, OTHER_ORG) == other_before
    # outside the organizations: only the other organization's token stays held (by it)
    assert [d for d in every_document(services.client) if d not in other_before] == [
        (f"token_owners/{subscription_id('bob-at-other')}", {"organization_id": OTHER_ORG})
    ]


def organization_of(services: Services, org: str = ORG) -> Any:
    from push365.organizations.repository import FirestoreOrganizationRepository

    return FirestoreOrganizationRepository(services.client).get(org)


def erase_user(user: str) -> Any:
    from push365.privacy.service import EraseRequest

    return EraseRequest(user_id=user)


def erase_organization() -> Any:
    from push365.privacy.service import EraseRequest

    return EraseRequest(organization=True)
