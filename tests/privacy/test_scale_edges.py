"""P1 and P2 past every page size: export, erasure and purge reach everything however much there
is, and a correction clears a field with ``null``.

Erasure pages a user's notifications by ``BATCH_LIMIT`` (500, Firestore's writes in one commit);
purge reads a page at a time with a cursor (``READ_PAGE``; here a smaller page, the same code) and
deletes in batches of ``BATCH_LIMIT``. Each case holds more than one page of each.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from push365.fanout.model import BATCH_SIZE
from push365.fanout.repository import FirestoreFanoutRepository, Taken
from push365.model import utc_now
from push365.notifications.deliveries import Delivery, decode_records
from push365.notifications.receipts import device_id, new_receipt
from push365.retention.purge import FirestoreRetentionStore, Purger
from push365.retention.rules import retention_rules
from push365.store import BATCH_LIMIT
from push365.subscriptions.model import subscription_id
from push365.users.model import UserBatch
from tests.privacy.conftest import ALICE, BOB, ORG, Services, under
from tests.privacy.test_p01_access_correct_delete import erase_user, organization_of

MANY = BATCH_LIMIT + 7  # one full page and part of another
PURGE_PAGE = 200  # three pages, the last one short


def many_sends(services: Services) -> list[str]:
    """MANY notifications to BOB (and ALICE, who stays), BOB with one device."""
    services.register(ORG)
    services.subscribe(ORG, BOB, "bob-token")
    return [services.send(ORG, [BOB, ALICE]) for _ in range(MANY)]


def test_erasing_a_user_reaches_every_notification_past_a_page(services: Services) -> None:
    sent = many_sends(services)

    erased = services.privacy.erase(organization_of(services), erase_user(BOB))

    assert erased["notifications"] == MANY
    stored = dict(under(services.client, ORG))
    recipients = [stored[f"organizations/{ORG}/notifications/{nid}"]["recipients"] for nid in sent]
    assert recipients == [[ALICE]] * MANY
    assert [p for p, f in stored.items() if BOB in p or BOB in repr(f)] == []


def test_an_export_lists_every_notification_past_a_page(services: Services) -> None:
    sent = many_sends(services)

    of_user = every_page(lambda token: services.privacy.export(ORG, BOB, page_token=token))
    of_organization = every_page(lambda token: services.privacy.export(ORG, page_token=token))

    assert sorted(n["id"] for n in of_user) == sorted(sent)
    assert sorted(n["id"] for n in of_organization) == sorted(sent)


def every_page(export: Callable[[str | None], dict[str, Any]]) -> list[dict[str, Any]]:
    """The notifications of every page of an export, following ``next_page_token``."""
    found: list[dict[str, Any]] = []
    token = None
    while True:
        page = export(token)
        found += page["notifications"]
        token = page["next_page_token"]
        if token is None:
            return found


def test_purge_deletes_every_due_notification_past_a_page_and_a_batch(services: Services) -> None:
    sent = many_sends(services)
    settings = services.settings
    rules = retention_rules(
        settings.notification_retention_days,
        settings.stale_subscription_days,
        settings.unsubscribe_retention_days,
    )
    purger = Purger(FirestoreRetentionStore(services.client, page_size=PURGE_PAGE), rules)
    as_of = utc_now() + timedelta(days=settings.notification_retention_days + 1)

    counted = purger.purge(as_of, dry_run=True)
    deleted = purger.purge(as_of)

    assert counted["notifications"] == deleted["notifications"] == len(sent) == MANY
    assert [p for p, _ in under(services.client, ORG) if "/notifications/" in p] == []


def test_null_clears_a_users_field_and_a_field_not_sent_keeps_its_value(
    services: Services,
) -> None:
    services.register(ORG)
    first = {"id": BOB, "full_name": "Bob Stone", "email": "bob@contoso.example"}
    services.users.upsert(ORG, UserBatch.model_validate({"users": [first]}).users)

    # what POST /register/users validates: README "null clears one"
    correction = UserBatch.model_validate({"users": [{"id": BOB, "full_name": None}]})
    services.users.upsert(ORG, correction.users)

    user = services.privacy.export(ORG, BOB)["user"]
    assert user.get("full_name") is None
    assert user["email"] == "bob@contoso.example"
    assert "Bob Stone" not in repr(under(services.client, ORG))


def delivered_to_many(services: Services, nid: str) -> list[str]:
    """MANY devices of BOB's in two batches of the notification (as deliver plans and finishes
    them), each confirmed by its browser (its receipt, as a confirmation stores it); the device
    ids."""
    fanout = FirestoreFanoutRepository(services.client)
    sids = [subscription_id(f"bob-device-{n}") for n in range(MANY)]
    now = utc_now()
    later, expire = now + timedelta(minutes=5), now + timedelta(days=90)
    lease = fanout.lease_plan(ORG, nid, now, later, expire)
    assert lease is not None
    first = lease.batches
    lease = fanout.add_batch(lease, ORG, nid, sids[:BATCH_SIZE], now, expire, later)
    lease = fanout.add_batch(lease, ORG, nid, sids[BATCH_SIZE:], now, expire, later)
    fanout.end_plan(lease, ORG, nid, now)
    for batch, part in ((first, sids[:BATCH_SIZE]), (first + 1, sids[BATCH_SIZE:])):
        state = fanout.take(ORG, nid, batch, now, later)
        assert not isinstance(state, Taken)
        deliveries = []
        for sid in part:
            _, receipt_hash = new_receipt(ORG, nid, batch, device_id(sid))
            deliveries.append(Delivery(device_id(sid), BOB, "sent", "m", None, now, receipt_hash))
            state.outcomes[sid] = "sent"
        fanout.finish(state, deliveries)
    receipts = services.client.collection("organizations", ORG, "notifications", nid, "receipts")
    devices = [device_id(sid) for sid in sids]
    for start in range(0, MANY, BATCH_LIMIT):
        write = services.client.batch()
        for device in devices[start : start + BATCH_LIMIT]:
            write.set(receipts.document(device), {"device_id": device, "delivered_at": now})
        write.commit()
    return devices


def test_a_users_export_and_erasure_reach_every_delivery_and_receipt_past_a_page(
    services: Services,
) -> None:
    services.register(ORG)
    nid = services.send(ORG, [BOB, ALICE])
    devices = delivered_to_many(services, nid)

    (exported,) = services.privacy.export(ORG, BOB)["notifications"]
    erased = services.privacy.erase(organization_of(services), erase_user(BOB))

    assert sorted(d["id"] for d in exported["deliveries"]) == sorted(devices)
    assert all(d["delivered_at"] is not None for d in exported["deliveries"])
    assert erased["deliveries"] == MANY
    stored = dict(under(services.client, ORG))
    assert [p for p in stored if "/receipts/" in p] == []
    batches = [f for p, f in stored.items() if re.search(r"/batches/[0-9]{5}$", p)]
    assert len(batches) == 2
    assert [decode_records(b["deliveries"]) for b in batches] == [{}, {}]


def test_purge_deletes_every_due_receipt_past_a_page_and_a_batch(services: Services) -> None:
    services.register(ORG)
    nid = services.send(ORG, [BOB])
    delivered_to_many(services, nid)
    settings = services.settings
    rules = retention_rules(
        settings.notification_retention_days,
        settings.stale_subscription_days,
        settings.unsubscribe_retention_days,
    )
    purger = Purger(FirestoreRetentionStore(services.client, page_size=PURGE_PAGE), rules)

    deleted = purger.purge(utc_now() + timedelta(days=settings.notification_retention_days + 1))

    assert (deleted["receipts"], deleted["notifications"]) == (MANY, 1)
    # (but today's daily counts, no one's data, kept 91 days after their day)
    left = [p for p, _ in under(services.client, ORG) if "/daily/" not in p]
    assert left == [f"organizations/{ORG}"]
