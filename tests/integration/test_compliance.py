"""The audit command finds each kind of violation the privacy policy forbids, and passes a store
kept by the functions themselves."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from push365.compliance import audit
from push365.subscriptions.model import subscription_id
from tests.conftest import REPO
from tests.integration.conftest import BOB, ORG, Functions, register


def used_store(api: Functions) -> str:
    """A store after ordinary use of every function; the key."""
    key = register(api)
    api.post("/register/users", {"users": [{"id": BOB, "full_name": "Bob"}]}, key=key)
    api.post(
        "/register/rules",
        {
            "rules": [
                {
                    "table": "opportunity",
                    "message": "Update",
                    "recipients": ["ownerid"],
                    "title": "{name}",
                }
            ]
        },
        key=key,
    )
    api.post(
        "/subscribe", {"user_id": BOB, "instance_id": "tok", "browser_footprint": "fp"}, key=key
    )
    api.post("/subscribe", {"user_id": BOB, "instance_id": "old"}, key=key)
    api.post("/unsubscribe", {"instance_id": "old"}, key=key)
    api.post(
        "/send",
        {"recipients": [BOB], "title": "t", "body": "b", "data": {"k": "v"}},
        key=key,
        headers={"Idempotency-Key": "k"},
    )
    return key


def test_a_store_kept_by_the_functions_has_no_findings(api: Functions, store: Any) -> None:
    used_store(api)

    assert audit(store, datetime.now(UTC), 90) == []


def org(store: Any) -> Any:
    return store.collection("organizations").document(ORG)


PLANTS = {
    "field_outside_policy": lambda s: (
        org(s).collection("users").document(BOB).update({"salary": 1})
    ),
    "nested field outside policy": lambda s: org(s).update({"business.vat": "x"}),
    "notification_content": lambda s: next(
        iter(org(s).collection("notifications").list_documents())
    ).update({"title": "leaked"}),
    "nested content": lambda s: next(
        iter(org(s).collection("notifications").list_documents())
    ).update({"counts.data": {"body": "leaked"}}),
    "token_after_unsubscribe": lambda s: (
        org(s)
        .collection("subscriptions")
        .document(subscription_id("old"))
        .update({"instance_id": "old"})
    ),
    "past_purge_by": lambda s: (
        org(s)
        .collection("subscriptions")
        .document(subscription_id("old"))
        .update({"purge_by": datetime.now(UTC) - timedelta(days=1)})
    ),
    "stale_subscription": lambda s: (
        org(s)
        .collection("subscriptions")
        .document(subscription_id("tok"))
        .update({"last_seen_at": datetime.now(UTC) - timedelta(days=61)})
    ),
    "past_retention": lambda s: next(
        iter(org(s).collection("notifications").list_documents())
    ).update({"created_at": datetime.now(UTC) - timedelta(days=91)}),
    "unknown_collection": lambda s: org(s).collection("logs").document("x").set({"a": 1}),
    "organization_not_erased": lambda s: org(s).update({"removed_at": datetime.now(UTC)}),
    "daily reason not a code": lambda s: next(
        iter(org(s).collection("daily").list_documents())
    ).set({"failed_by_reason": {"Deal lost to Fabrikam": 1}}, merge=True),
    "daily count not a number": lambda s: next(
        iter(org(s).collection("daily").list_documents())
    ).update({"notifications": "Deal lost to Fabrikam"}),
}
EXPECTED_KIND = {
    "nested field outside policy": "field_outside_policy",
    "nested content": "field_outside_policy",
    "daily reason not a code": "value_not_a_code_or_hash",
    "daily count not a number": "value_not_a_count",
}


@pytest.mark.parametrize("plant", list(PLANTS))
def test_each_planted_violation_is_found(api: Functions, store: Any, plant: str) -> None:
    used_store(api)
    PLANTS[plant](store)

    findings = audit(store, datetime.now(UTC), 90)

    assert EXPECTED_KIND.get(plant, plant) in {f.kind for f in findings}, findings


def test_content_nested_in_an_allowed_map_is_named(api: Functions, store: Any) -> None:
    used_store(api)
    PLANTS["nested content"](store)

    found = {(f.kind, f.detail) for f in audit(store, datetime.now(UTC), 90)}

    assert ("notification_content", "counts.data.body") in found
    assert ("field_outside_policy", "counts.data") in found


def run_command(emulator_address: str, project: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "FIRESTORE_EMULATOR_HOST": emulator_address,
        "GOOGLE_CLOUD_PROJECT": project,
    }
    return subprocess.run(
        [sys.executable, "-m", "push365.compliance"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_command_reports_and_exits_non_zero_on_findings(
    api: Functions, store: Any, emulator: Any
) -> None:
    used_store(api)
    clean = run_command(emulator.address, store.project)
    PLANTS["notification_content"](store)

    dirty = run_command(emulator.address, store.project)

    assert clean.returncode == 0, clean.stdout
    assert "0 finding(s)." in clean.stdout
    assert dirty.returncode == 1
    assert "notification_content" in dirty.stdout
    assert "leaked" not in dirty.stdout  # a report names fields, never values
