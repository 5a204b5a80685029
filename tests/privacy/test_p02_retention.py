"""P2 (Privacy): information is kept only as long as necessary to provide the service.

Notification records, their batches (which hold the delivery records) and receipts go at their
retention (90 days), dedup keys after their
24 hours, every purgeable record carries the TTL field; purge runs daily and covers every kind;
the API call records' log bucket keeps them 90 days.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from push365 import bootstrap
from push365.errors import SignupCodeInvalid
from push365.indexes import TTL_COLLECTIONS
from push365.model import utc_now
from push365.retention import TTL_FIELD
from push365.settings import Settings
from tests.privacy import infra
from tests.privacy.conftest import BOB, ORG, Services, every_document, policy, under

NOTIFICATION_DAYS = 90
AUDIT_LOG_DAYS = 90


def test_notification_records_live_90_days_by_default() -> None:
    assert Settings().notification_retention_days == NOTIFICATION_DAYS
    assert bootstrap.send_policy(Settings()).retention == timedelta(days=NOTIFICATION_DAYS)
    assert infra.default("notification_retention_days") == NOTIFICATION_DAYS


def test_dedup_keys_live_24_hours() -> None:
    hours = policy()["retention"]["dedup_hours"]

    assert hours == 24
    assert Settings().idempotency_window_hours == hours
    assert bootstrap.send_policy(Settings()).dedup_window == timedelta(hours=hours)


def test_a_stored_dedup_key_expires_and_is_ttl_deleted_within_its_window(
    services: Services,
) -> None:
    services.register()
    sent_at = utc_now()
    services.send(ORG, [BOB], dedup_key="idempotency-key:x")

    (dedup,) = [f for p, f in under(services.client, ORG) if "/dedup/" in p]
    assert dedup["expires_at"] - sent_at <= timedelta(hours=24, seconds=5)
    assert dedup[TTL_FIELD] == dedup["expires_at"]


def test_every_record_purge_deletes_carries_the_ttl_field(services: Services) -> None:
    services.register()
    services.subscribe(ORG, BOB, "tok")
    nid = services.send(ORG, [BOB], dedup_key="idempotency-key:x")
    services.notifications.confirm_delivery(services.deliver(ORG, nid, BOB, "tok"))

    stored = under(services.client, ORG)

    for kind in ("notifications", "batches", "receipts", "dedup"):
        kept = [f for p, f in stored if p.split("/")[-2] == kind]
        assert kept, kind
        assert all(TTL_FIELD in fields for fields in kept), kind
    notification = next(f for p, f in stored if p.split("/")[-2] == "notifications")
    assert notification[TTL_FIELD] - notification["created_at"] <= timedelta(days=90)


def test_firestore_ttl_covers_every_collection_with_the_ttl_field() -> None:
    # A record stored on another collection's documents (a delivery, on its batch) has theirs.
    with_ttl = {
        entry.get("stored_on", name)
        for name, entry in policy()["collections"].items()
        if TTL_FIELD in entry["fields"]
    }

    assert with_ttl <= set(TTL_COLLECTIONS)


def test_purge_deletes_notifications_their_deliveries_and_dedup_keys_when_due(
    services: Services,
) -> None:
    services.register()
    services.subscribe(ORG, BOB, "tok")
    nid = services.send(ORG, [BOB], dedup_key="idempotency-key:x")
    services.notifications.confirm_delivery(services.deliver(ORG, nid, BOB, "tok"))
    created = services.notification_store.get(ORG, nid).created_at  # type: ignore[union-attr]
    purger = services.purger()

    day_later = purger.purge(created + timedelta(hours=24, seconds=1))
    kept = purger.purge(created + timedelta(days=NOTIFICATION_DAYS - 1))
    gone = purger.purge(created + timedelta(days=NOTIFICATION_DAYS, seconds=60))

    assert day_later["dedup_keys"] == 1
    assert (kept["notifications"], kept["batches"], kept["receipts"]) == (0, 0, 0)
    assert (gone["notifications"], gone["batches"], gone["receipts"]) == (1, 2, 1)
    assert [p for p, _ in under(services.client, ORG) if "/notifications/" in p] == []


def test_purge_runs_daily() -> None:
    job = infra.resource("google_cloud_scheduler_job", "purge")

    assert infra.cron_is_daily(infra.value(job["schedule"]))


def test_api_call_records_are_kept_90_days() -> None:
    bucket = infra.resource("google_logging_project_bucket_config", "audit")

    assert infra.value(bucket["retention_days"]) <= AUDIT_LOG_DAYS


def test_purge_deletes_expired_signup_codes(services: Services) -> None:
    from tests.privacy.test_audit import CALLER, signup  # (the signup use cases as wired)

    codes = signup(services.client)
    issued = codes.issue(ORG)
    with pytest.raises(SignupCodeInvalid):
        codes.admit("p365s.not-a-code-at-all", ORG, CALLER)  # throttle counters written
    purger = services.purger()

    now = purger.purge(utc_now())
    expired = purger.purge(issued.expires_at + timedelta(seconds=1))

    assert now["signup_codes"] == 0  # within the code's time
    assert expired["signup_codes"] == 1
    assert [p for p, _ in every_document(services.client) if p.startswith("signup_codes/")] == []
