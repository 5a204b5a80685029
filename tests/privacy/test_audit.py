"""The store check (``make store-check``, alias ``make audit``) finds every kind of planted
violation, independently of the code's models.

Its allow-list is the policy's field-list data file (which these tests read too); it checks
names, values (every value anywhere: the run's notification texts, free text, secrets in clear,
tokens outside their subscription, email addresses outside the records that hold them, ids that
must be hashes, footprints and recipients of their shape), statuses, and each record's age by its
own dates and its TTL against the collection's bound. ``tests/privacy/conftest.py`` prints
``RESULT audit_plants found=N total=M`` after a run of the plants.
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

from push365.compliance import Limits, check_document, check_store, read
from push365.errors import SignupCodeInvalid
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
from push365.settings import Settings
from push365.signup.model import code_hash
from push365.signup.repository import FirestoreSignupRepository
from push365.signup.service import SignupPolicy, SignupService
from push365.subscriptions.model import Unsubscribe, subscription_id
from tests.conftest import REPO, free_port
from tests.privacy.conftest import ALICE, BOB, ORG, Services, listed

SECRET = "CANARY-AUDIT-9d"  # planted values: the report must never print them
CONTENT = ("CANARY-TITLE", "CANARY-BODY")  # what used_store's sends say (Services.send)
RAW_CODE = f"p365s.{SECRET}-raw-signup-code"
CALLER = "203.0.113.7"


def audit(client: Any, now: datetime) -> list[Any]:
    """The store check, told the texts the run sent."""
    return check_store(client, now, content=CONTENT)


def signup(client: Any) -> SignupService:
    settings = Settings()
    policy = SignupPolicy(
        required=True,
        code_lifetime=timedelta(hours=settings.signup_code_hours),
        attempts=settings.signup_attempts,
        window=timedelta(seconds=settings.signup_window_seconds),
        admin_key=None,
    )
    return SignupService(FirestoreSignupRepository(client), policy)


def used_store(services: Services) -> dict[str, Any]:
    """A store after ordinary use of every use case; references to plant in."""
    codes = signup(services.client)
    issued = codes.issue(ORG)
    with pytest.raises(SignupCodeInvalid):  # a wrong code, counted against its caller
        codes.admit("p365s.not-a-code-at-all", ORG, CALLER)
    codes.admit(issued.signup_code, ORG, CALLER)
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
        "batch": notification.collection("batches").document("00000"),
        "code": services.client.collection("signup_codes").document(code_hash(issued.signup_code)),
        "throttle": next(iter(services.client.collection("throttles").list_documents())),
        "store": services.client,
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


def json_text(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


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
    # --- values, wherever they are (issue 26) ---
    "the run's notification title as a value in a batch's pending": (
        "notification_content",
        lambda r: r["batch"].update({"pending": json_text({"x": f"{CONTENT[0]} {SECRET}"})}),
    ),
    "the run's notification body as a user's name": (
        "notification_content",
        lambda r: r["user"].update({"full_name": CONTENT[1]}),
    ),
    "the run's notification title as a dedup record's value": (
        "notification_content",
        lambda r: r["dedup"].update({"notification_id": CONTENT[0]}),
    ),
    "free text in a batch's list of unknown outcomes": (
        "content_shaped_value",
        lambda r: r["batch"].update({"unknown": json_text([f"Meeting with Bob {SECRET}"])}),
    ),
    "free text as a map key on a notification": (
        "content_shaped_value",
        lambda r: r["notification"].update({"counts": {f"Quarterly numbers {SECRET}": 1}}),
    ),
    "an API key in clear inside a batch's JSON": (
        "secret_in_clear",
        lambda r: r["batch"].update({"resent": json_text([f"p365.{ORG}.{SECRET}"])}),
    ),
    "a signup code in clear as a value": (
        "secret_in_clear",
        lambda r: r["dedup"].update({"notification_id": RAW_CODE}),
    ),
    "a signup code in clear as a document id, kept 400 days": (
        "value_not_a_hash",
        lambda r: (
            r["store"]
            .collection("signup_codes")
            .document(RAW_CODE)
            .set(
                {
                    "organization_id": ORG,
                    "created_at": utc_now(),
                    "expires_at": later(400),
                    "used_at": None,
                    "expire_at": later(400),
                }
            )
        ),
    ),
    "a signup code kept 400 days": (
        "retention_too_long",
        lambda r: r["code"].update({"expires_at": later(400), "expire_at": later(400)}),
    ),
    "a signup code without the TTL field": (
        "missing_ttl",
        lambda r: r["code"].update({"expire_at": None}),
    ),
    "a throttle counter kept a year": (
        "retention_too_long",
        lambda r: r["throttle"].update({"expire_at": later(365)}),
    ),
    "a throttle counter without the TTL field": (
        "missing_ttl",
        lambda r: r["throttle"].update({"expire_at": None}),
    ),
    "a throttle named by the raw code": (
        "value_not_a_hash",
        lambda r: (
            r["store"]
            .collection("throttles")
            .document(f"code:{RAW_CODE}-1")
            .set({"count": 1, "expire_at": later(0.001)})
        ),
    ),
    "a batch without the TTL field": (
        "missing_ttl",
        lambda r: r["batch"].update({"expire_at": None}),
    ),
    "a fan-out plan without the TTL field": (
        "missing_ttl",
        lambda r: (
            r["notification"].collection("batches").document("plan").update({"expire_at": None})
        ),
    ),
    "a batch whose TTL reaches a year ahead": (
        "retention_too_long",
        lambda r: r["batch"].update({"expire_at": later(365)}),
    ),
    "an active token outside its subscription (in a batch's devices)": (
        "token_outside_subscription",
        lambda r: r["batch"].update({"devices": json_text(["tok"])}),
    ),
    "an FCM registration token (of no active subscription) on a dedup record": (
        "token_outside_subscription",
        lambda r: r["dedup"].update({"notification_id": f"{SECRET}:APA91b{'x' * 40}"}),
    ),
    "an active token on a user record": (
        "token_outside_subscription",
        lambda r: r["user"].update({"devices": ["tok"]}),
    ),
    "a footprint that is a full user agent with an IP and an email": (
        "value_not_a_code_or_hash",
        lambda r: r["active"].update(
            {
                "browser_footprint": (
                    f"Mozilla/5.0 (Windows NT 10.0) Chrome/120 203.0.113.7 bob@contoso.example"
                    f" {SECRET}"
                )
            }
        ),
    ),
    "an email in a notification's recipients": (
        "email_outside_records",
        lambda r: r["notification"].update({"recipients": [f"bob.{SECRET}@contoso.example"]}),
    ),
    "a recipient that is not a user id": (
        "value_not_a_code_or_hash",
        lambda r: r["notification"].update({"recipients": [SECRET]}),
    ),
    "an email in a delivery record": (
        "email_outside_records",
        lambda r: r["delivery"].update({"user_id": f"bob.{SECRET}@contoso.example"}),
    ),
    "an email as a token owner's organization": (
        "email_outside_records",
        lambda r: (
            r["store"]
            .collection("token_owners")
            .document(r["active"].id)
            .update({"organization_id": f"ada.{SECRET}@contoso.example"})
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


def test_there_are_at_least_32_plants_of_every_class() -> None:
    kinds = {kind for kind, _ in PLANTS.values()}

    assert len(PLANTS) >= 32
    assert {
        "notification_content",
        "content_shaped_value",
        "secret_in_clear",
        "token_outside_subscription",
        "email_outside_records",
        "value_not_a_hash",
        "value_not_a_code_or_hash",
        "missing_ttl",
        "retention_too_long",
        "unknown_collection",
    } <= kinds
    assert len(kinds) >= 20


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


def run_audit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "FIRESTORE_EMULATOR_HOST"}
    return subprocess.run(
        [sys.executable, "-m", "push365.compliance", *args],
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


def test_the_command_finds_the_texts_it_is_told_the_run_sent_and_never_prints_them(
    services: Services, firestore_address: str
) -> None:
    references = used_store(services)
    references["user"].update({"full_name": f"Re: {CONTENT[1]}"})
    env = {
        "PUSH365_FIRESTORE_PORT": firestore_address.rsplit(":", 1)[1],
        "GOOGLE_CLOUD_PROJECT": services.client.project,
    }

    told = run_audit(env, "--content-list", ";".join(CONTENT))
    untold = run_audit(env)

    assert told.returncode == 1, told.stdout + told.stderr
    assert "notification_content" in told.stdout
    assert CONTENT[1] not in told.stdout
    assert untold.returncode == 0, untold.stdout + untold.stderr  # a name with a space: allowed
