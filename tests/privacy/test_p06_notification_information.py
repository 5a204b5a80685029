"""P6 (Notification Information): recipients, dates and Firebase's ids only: no content, a
caller's Idempotency-Key only as a hash, a delivery receipt only as a hash."""

from __future__ import annotations

import hashlib

from push365.model import recorded_dedup_key
from push365.notifications.receipts import new_receipt, parse_receipt, receipt_hash
from tests.privacy.conftest import BOB, ORG, Services, every_document, listed, under

CALLER_KEY = "order-4711-for-bob.stone@contoso.example"


def test_no_content_is_stored(services: Services) -> None:
    services.register()
    services.subscribe(ORG, BOB, "tok")

    nid = services.send(ORG, [BOB])
    services.deliver(ORG, nid, BOB, "tok")

    stored = repr(every_document(services.client))
    assert "CANARY" not in stored
    notification = dict(under(services.client, ORG))[f"organizations/{ORG}/notifications/{nid}"]
    assert set(notification) <= listed("notifications")


def test_a_callers_idempotency_key_is_stored_only_as_a_hash(services: Services) -> None:
    services.register()

    nid = services.send(ORG, [BOB], dedup_key=f"idempotency-key:{CALLER_KEY}")

    stored = every_document(services.client)
    assert CALLER_KEY not in repr(stored)
    notification = dict(stored)[f"organizations/{ORG}/notifications/{nid}"]
    assert notification["dedup_key"].startswith("sha256:")


def test_a_dataverse_operation_key_is_kept_as_ids_and_anything_else_as_a_hash() -> None:
    dataverse = "dataverse:0dd00000-0000-0000-0000-000000000001:create:40"

    assert recorded_dedup_key(dataverse) == dataverse
    assert recorded_dedup_key(CALLER_KEY) == (
        "sha256:" + hashlib.sha256(CALLER_KEY.encode()).hexdigest()[:16]
    )


def test_a_receipt_is_stored_only_as_its_hash() -> None:
    receipt, stored = new_receipt(ORG, "0" * 32, 3, "1" * 32)
    secret = receipt.rsplit(".", 1)[1]

    parsed = parse_receipt(receipt)

    assert stored == hashlib.sha256(receipt.encode()).hexdigest()
    assert secret not in stored
    assert receipt_hash(receipt) == stored
    assert parsed is not None
    assert parsed.hash == stored


def test_the_receipt_a_message_carries_is_in_no_document(services: Services) -> None:
    services.register()
    services.subscribe(ORG, BOB, "tok")
    nid = services.send(ORG, [BOB])

    receipt = services.deliver(ORG, nid, BOB, "tok")

    assert receipt.rsplit(".", 1)[1] not in repr(every_document(services.client))
    services.notifications.confirm_delivery(receipt)  # the hash still proves it


# What Pub/Sub may log or show about a message (its attributes): ids only. Its data carries the
# content for the one delivery, and expires with the subscription's retention (infra/pubsub.tf).
ATTRIBUTES = {"kind", "organization_id", "notification_id", "batch"}


def test_a_queued_messages_attributes_are_ids_only(services: Services) -> None:
    services.register()
    services.subscribe(ORG, BOB, "tok")

    services.send(ORG, [BOB])

    assert services.published.messages
    for message in services.published.messages:
        _, attributes = message.encode()
        assert set(attributes) <= ATTRIBUTES
        assert "CANARY" not in repr(attributes)
        assert all(len(value) <= 64 and " " not in value for value in attributes.values())
