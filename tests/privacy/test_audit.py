"""``make audit`` finds every kind of planted violation, independently of the code's models.

Its allow-list is the policy's field-list data file (which these tests read too); it checks
names, values where content could hide, statuses, and each record's age by its own dates.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from push365.compliance import Limits, audit, check_document, read
from push365.mail.limits import MailQuota
from push365.mail.repository import FirestoreMailCounters
from push365.model import utc_now
from push365.notifications.deliveries import (
    RECEIPT_HASHES,
    RECORDS,
    decode_receipt_hashes,
    decode_records,
    encode_receipt_hashes,
    encode_records,
)
from push365.notifications.model import RuleSet
from push365.subscriptions.model import Unsubscribe, subscription_id
from tests.conftest import REPO, free_port
from tests.privacy.conftest import ALICE, BOB, ORG, Services, listed

SECRET = "CANARY-AUDIT-9d"  # planted values: the report must never print them


def used_store(services: Services) -> dict[str, Any]:
    """A store after ordinary use of every use case; references to plant in."""
    key = services.register()
    organization = services.organizations.authenticate(key)
    rules = RuleSet.model_validate(
        {
            "rules": [
                {
                    "table": "opportunity",
                    "message": "Update",
                    "recipients": ["ownerid"],
                    "title": "{name}",
                    "body": "Owned by {ownerid}",
                }
            ]
        }
    )
    services.organizations.set_rules(organization, rules)
    services.subscribe(ORG, BOB, "tok")
    services.subscribe(ORG, ALICE, "old")
    services.subscriptions.unsubscribe(ORG, Unsubscribe(instance_id="old"))
    nid = services.send(ORG, [BOB], dedup_key="idempotency-key:k")
    services.send(ORG, [BOB], dedup_key="dataverse:0dd00000-0000-0000-0000-000000000001:create:40")
    services.deliver(ORG, nid, BOB, "tok")
    quota = MailQuota(FirestoreMailCounters(services.client))  # the mail limits' counters
    quota.confirmations(ORG, ["ada@contoso.example"])
    quota.notice(ORG)
    org = services.client.collection("organizations").document(ORG)
    notification = org.collection("notifications").document(nid)
    return {
        "org": org,
        "user": org.collection("users").document(BOB),
        "active": org.collection("subscriptions").document(subscription_id("tok")),
        "tombstone": org.collection("subscriptions").document(subscription_id("old")),
        "notification": notification,
        "delivery": DeliveryRecord(notification.collection("batches").document("00000")),
        "dedup": next(iter(org.collection("dedup").list_documents())),
        "counter": next(iter(services.client.collection("throttles").list_documents())),
    }


class DeliveryRecord:
    """The one delivery record of a batch, planted into as the batch stores it: in its records
    text, its receipt hash in the batch's hashes text, its TTL the batch's."""

    def __init__(self, batch: Any) -> None:
        self._batch = batch

    def update(self, fields: dict[str, Any]) -> None:
        stored = self._batch.get().to_dict()
        records = decode_records(stored[RECORDS])
        hashes = decode_receipt_hashes(stored.get(RECEIPT_HASHES))
        ((device, record),) = records.items()
        changes: dict[str, Any] = {}
        for name, value in fields.items():
            if name == "receipt_hash":
                changes[RECEIPT_HASHES] = encode_receipt_hashes(hashes | {device: value})
            elif name == "expire_at":
                changes[name] = value
            else:
                record[name] = value.isoformat() if isinstance(value, datetime) else value
        self._batch.update(changes | {RECORDS: encode_records(records)})


def ago(days: float) -> Any:
    return utc_now() - timedelta(days=days)


def later(days: float) -> Any:
    return utc_now() + timedelta(days=days)


Plant = Callable[[dict[str, Any]], None]
PLANTS: dict[str, tuple[str, Plant]] = {
    "a user field the policy does not list": (
        "field_outside_policy",
        lambda r: r["user"].update({"job_title": SECRET}),
    ),
    "a business field the policy does not list": (
        "field_outside_policy",
        lambda r: r["org"].update({"business.vat": SECRET}),
    ),
    "an administrator field the policy does not list": (
        "field_outside_policy",
        lambda r: r["org"].update({"admins": [{"full_name": "A", "birthday": SECRET}]}),
    ),
    "a title on a notification record": (
        "notification_content",
        lambda r: r["notification"].update({"title": SECRET}),
    ),
    "a body nested in an allowed map": (
        "notification_content",
        lambda r: r["notification"].update({"counts.extra": {"body": SECRET}}),
    ),
    "a link on a delivery record": (
        "notification_content",
        lambda r: r["delivery"].update({"link": SECRET}),
    ),
    "a token kept after unsubscribe": (
        "token_after_unsubscribe",
        lambda r: r["tombstone"].update({"instance_id": SECRET}),
    ),
    "a token under an unknown status": (
        "token_after_unsubscribe",
        lambda r: r["active"].update({"status": "paused"}),
    ),
    "an unknown subscription status": (
        "unknown_status",
        lambda r: r["active"].update({"status": "paused"}),
    ),
    "an unknown notification status": (
        "unknown_status",
        lambda r: r["notification"].update({"status": "archived"}),
    ),
    "an unknown unsubscribe reason": (
        "unknown_code",
        lambda r: r["tombstone"].update({"unsubscribe_reason": SECRET}),
    ),
    "text in a delivery's error code": (
        "value_not_a_code_or_hash",
        lambda r: r["delivery"].update({"error": f"Bob: {SECRET}"}),
    ),
    "a batch's records text that is not records": (
        "value_not_a_code_or_hash",
        lambda r: (
            r["notification"]
            .collection("batches")
            .document("00000")
            .update({"deliveries": f'["{SECRET}"]'})
        ),
    ),
    "a batch's receipt hashes that are neither text nor a map": (
        "value_not_a_code_or_hash",
        lambda r: (
            r["notification"]
            .collection("batches")
            .document("00000")
            .update({"receipt_hashes": [f"Bob: {SECRET}"]})
        ),
    ),
    "a batch's receipt hashes text that is not hashes": (
        "value_not_a_code_or_hash",
        lambda r: (
            r["notification"]
            .collection("batches")
            .document("00000")
            .update({"receipt_hashes": f'{{"0a": "Bob: {SECRET}"}}'})
        ),
    ),
    "a caller's Idempotency-Key in clear": (
        "value_not_a_code_or_hash",
        lambda r: r["notification"].update({"dedup_key": f"idempotency-key:{SECRET}"}),
    ),
    "a dedup key in clear as a document id": (
        "value_not_a_hash",
        lambda r: r["org"].collection("dedup").document(SECRET).set(r["dedup"].get().to_dict()),
    ),
    "a receipt in clear": (
        "value_not_a_code_or_hash",
        lambda r: r["delivery"].update({"receipt_hash": f"{ORG}.{SECRET}"}),
    ),
    "an API key in clear": (
        "value_not_a_code_or_hash",
        lambda r: r["org"].update({"api_key_hash": f"p365.{SECRET}"}),
    ),
    "a tombstone past its purge_by": (
        "past_purge_by",
        lambda r: r["tombstone"].update({"purge_by": ago(1)}),
    ),
    "a tombstone past 30 days whatever its purge_by says": (
        "past_retention",
        lambda r: r["tombstone"].update({"unsubscribed_at": ago(31), "purge_by": later(365)}),
    ),
    "a tombstone whose purge_by is past 30 days": (
        "retention_too_long",
        lambda r: r["tombstone"].update({"purge_by": later(60)}),
    ),
    "a subscription its browser stopped refreshing": (
        "stale_subscription",
        lambda r: r["active"].update({"last_seen_at": ago(61)}),
    ),
    "a notification past 90 days whatever its TTL says": (
        "past_retention",
        lambda r: r["notification"].update({"created_at": ago(91), "expire_at": later(365)}),
    ),
    "a delivery past 90 days": (
        "past_retention",
        lambda r: r["delivery"].update({"sent_at": ago(91)}),
    ),
    "a delivery without the TTL field": (
        "missing_ttl",
        lambda r: r["delivery"].update({"expire_at": None}),
    ),
    "a notification whose TTL is past its retention": (
        "retention_too_long",
        lambda r: r["notification"].update({"expire_at": later(365)}),
    ),
    "a dedup key kept 30 days": (
        "retention_too_long",
        lambda r: r["dedup"].update({"expires_at": later(30)}),
    ),
    "a dedup key past its 24 hours": (
        "past_retention",
        lambda r: r["dedup"].update({"expires_at": ago(0.01)}),
    ),
    "a mail counter without the TTL field": (
        "missing_ttl",
        lambda r: r["counter"].update({"expire_at": None}),
    ),
    "a mail counter kept 30 days": (
        "retention_too_long",
        lambda r: r["counter"].update({"expire_at": later(30)}),
    ),
    "a notification with no date": (
        "missing_date",
        lambda r: r["notification"].update({"created_at": None}),
    ),
    "a collection the policy does not list": (
        "unknown_collection",
        lambda r: r["org"].collection("logs").document("x").set({"a": 1}),
    ),
    "an erasure that did not finish": (
        "organization_not_erased",
        lambda r: r["org"].update({"removed_at": ago(1)}),
    ),
    "a token still held after its subscription ended": (
        "token_held_without_subscription",
        lambda r: (
            r["org"]
            ._client.collection("token_owners")
            .document(r["tombstone"].id)
            .set({"organization_id": ORG})
        ),
    ),
}


def test_a_store_kept_by_the_use_cases_has_no_findings(services: Services) -> None:
    used_store(services)

    assert audit(services.client, utc_now()) == []


@pytest.mark.parametrize("plant", list(PLANTS))
def test_each_planted_violation_is_reported_without_its_value(
    services: Services, plant: str
) -> None:
    kind, act = PLANTS[plant]
    act(used_store(services))

    findings = audit(services.client, utc_now())

    assert kind in {f.kind for f in findings}, findings
    assert SECRET not in "\n".join(str(f) for f in findings)


def test_there_are_at_least_20_kinds_of_planted_violations() -> None:
    assert len(PLANTS) >= 20
    assert len({kind for kind, _ in PLANTS.values()}) >= 15


def test_the_allow_list_is_the_data_file_not_the_models() -> None:
    limits = Limits(utc_now())
    document = dict.fromkeys(listed("users"), None) | {"salary": 1}

    found = check_document(f"organizations/{ORG}/users/{BOB}", "users", document, limits)

    assert [(f.kind, f.detail) for f in found] == [("field_outside_policy", "salary")]


def test_the_models_store_nothing_the_data_file_does_not_list() -> None:
    from push365.notifications.model import NotificationRecord
    from push365.organizations.model import Organization
    from push365.subscriptions.model import Subscription
    from push365.users.model import SystemUser

    for model, collection in (
        (Organization, "organizations"),
        (SystemUser, "users"),
        (Subscription, "subscriptions"),
        (NotificationRecord, "notifications"),
    ):
        assert set(model.model_fields) <= listed(collection), collection


def run_audit(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "FIRESTORE_EMULATOR_HOST"}
    return subprocess.run(
        [sys.executable, "-m", "push365.compliance"],
        cwd=REPO,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_command_follows_push365_firestore_port_and_counts_what_it_read(
    services: Services, firestore_address: str
) -> None:
    used_store(services)
    expected = read(services.client, Limits(utc_now())).documents

    answer = run_audit(
        {
            "PUSH365_FIRESTORE_PORT": firestore_address.rsplit(":", 1)[1],
            "GOOGLE_CLOUD_PROJECT": services.client.project,
        }
    )

    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert f"{expected} document(s) read, 0 finding(s)." in answer.stdout
    assert expected >= 9


def test_the_command_fails_fast_with_one_line_when_no_store_answers() -> None:
    started = time.monotonic()

    answer = run_audit({"PUSH365_FIRESTORE_PORT": str(free_port())})

    assert answer.returncode == 2
    assert len(answer.stdout.strip().splitlines()) == 1
    assert "no Firestore emulator answers" in answer.stdout
    assert answer.stderr == ""
    assert time.monotonic() - started < 15
