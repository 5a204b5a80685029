"""The audit command: check a Firestore database against the privacy policy.

``python -m push365.compliance`` (``make audit``) reads the database that
``FIRESTORE_EMULATOR_HOST`` / ``GOOGLE_CLOUD_PROJECT`` point at and reports every document that
holds a field outside the policy's list, anything that looks like notification content, a token
kept after unsubscribe, or a record past its retention. It exits 1 on any finding.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from push365.fanout.model import BatchCounts
from push365.model import utc_now
from push365.notifications.model import DeliveryCounts, NotificationRecord, Rule
from push365.organizations.model import Administrator, Business, Organization
from push365.retention import TTL_FIELD
from push365.retention.purge import FirestoreRetentionStore
from push365.retention.rules import retention_rules
from push365.store import (
    BATCHES,
    DEDUP,
    DELIVERIES,
    NOTIFICATIONS,
    ORGANIZATIONS,
    SIGNUP_CODES,
    SUBSCRIPTIONS,
    THROTTLES,
    USERS,
)
from push365.subscriptions.model import Status, Subscription
from push365.users.model import SystemUser

CONTENT_FIELDS = frozenset({"title", "body", "data", "link", "icon"})
"""Names a notification's content would be stored under. No record may have them."""

_DELIVERY_FIELDS = frozenset(
    {
        "device_id",
        "user_id",
        "status",
        "message_id",
        "error",
        "sent_at",
        "delivered_at",
        "receipt_hash",
        "resent",
        TTL_FIELD,
    }
)
# A fan-out batch: subscription ids and outcome codes (maps keyed by subscription id), no content.
_BATCH_FIELDS = frozenset(
    {
        "devices",
        "done",
        "outcomes",
        "inflight",
        "unknown",
        "resent",
        "pending",
        "not_before",
        "lease_until",
        "attempts",
        "counts",
        "created_at",
        # the plan's own document beside the batches: its holder and how far it got
        "planning_until",
        "cursor",
        "batches",
        TTL_FIELD,
    }
)


def _fields(model: type[BaseModel], *extra: str) -> frozenset[str]:
    return frozenset(model.model_fields) | frozenset(extra)


# The policy's list, per collection: top-level fields, and the fields of nested maps and lists.
ALLOWED: dict[str, frozenset[str]] = {
    ORGANIZATIONS: _fields(Organization, "removed_at"),
    USERS: _fields(SystemUser, "created_at", "updated_at"),
    SUBSCRIPTIONS: _fields(Subscription, TTL_FIELD),
    NOTIFICATIONS: _fields(NotificationRecord, TTL_FIELD),
    DELIVERIES: _DELIVERY_FIELDS,
    BATCHES: _BATCH_FIELDS,
    DEDUP: frozenset({"notification_id", "expires_at", TTL_FIELD}),
    SIGNUP_CODES: frozenset({"organization_id", "created_at", "expires_at", "used_at", TTL_FIELD}),
    THROTTLES: frozenset({"count", TTL_FIELD}),
}
NESTED: dict[tuple[str, str], frozenset[str]] = {
    (ORGANIZATIONS, "business"): _fields(Business),
    (ORGANIZATIONS, "admins"): _fields(Administrator),
    (ORGANIZATIONS, "rules"): _fields(Rule),  # templates an administrator wrote, not content
    (NOTIFICATIONS, "counts"): _fields(DeliveryCounts),
    (BATCHES, "counts"): frozenset(BatchCounts().as_dict()),
}


@dataclass(frozen=True)
class Finding:
    """One violation: what kind, where, and which field (never the value)."""

    kind: str
    path: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind:<28} {self.path}  {self.detail}"


def audit(client: Any, now: datetime, notification_retention_days: int) -> list[Finding]:
    """Every finding in the database."""
    findings: list[Finding] = []
    for path, collection, fields in _documents(client.collections()):
        findings += _check_document(path, collection, fields)
    store = FirestoreRetentionStore(client)
    for rule in retention_rules(notification_retention_days):
        if rule.collection == ORGANIZATIONS:
            kind = "organization_not_erased"
        elif rule.tombstone_days is not None:
            kind = "stale_subscription"  # an active token its browser stopped refreshing
        elif rule.collection == SUBSCRIPTIONS:
            kind = "past_purge_by"
        else:
            kind = "past_retention"
        for page in store.due_pages(rule, now):
            findings += [Finding(kind, s.reference.path, f"{rule.field} is due") for s in page]
    return findings


def _check_document(path: str, collection: str, fields: Mapping[str, Any]) -> list[Finding]:
    allowed = ALLOWED.get(collection)
    if allowed is None:
        return [
            Finding("unknown_collection", path, f"collection {collection!r} is not in the policy")
        ]
    found = [Finding("field_outside_policy", path, name) for name in fields if name not in allowed]
    for name, value in fields.items():
        if (collection, name) != (ORGANIZATIONS, "rules"):  # rules hold templates, not content
            found += [Finding("notification_content", path, at) for at in _content(value, name)]
        nested = NESTED.get((collection, name))
        if nested is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Mapping):
                found += [
                    Finding("field_outside_policy", path, f"{name}.{key}")
                    for key in item
                    if key not in nested
                ]
    found += [
        Finding("notification_content", path, name) for name in fields if name in CONTENT_FIELDS
    ]
    if collection == SUBSCRIPTIONS and fields.get("status") == Status.UNSUBSCRIBED.value:
        found += [
            Finding("token_after_unsubscribe", path, name)
            for name in ("instance_id", "browser_footprint")
            if fields.get(name) is not None
        ]
    return found


def _content(value: Any, where: str) -> Iterator[str]:
    """Content-named keys nested anywhere inside a value."""
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if key in CONTENT_FIELDS:
                yield f"{where}.{key}"
            yield from _content(inner, f"{where}.{key}")
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _content(inner, f"{where}.{index}")


def _documents(collections: Any) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for collection in collections:
        for reference in collection.list_documents():
            snapshot = reference.get()
            if snapshot.exists:
                yield reference.path, collection.id, snapshot.to_dict() or {}
            yield from _documents(reference.collections())


def main(argv: list[str] | None = None) -> int:
    """Print a report; exit 1 on any finding."""
    from push365.settings import get_settings
    from push365.store import firestore_client

    parser = argparse.ArgumentParser(description="Check the store against the privacy policy.")
    parser.add_argument(
        "--as-of",
        type=datetime.fromisoformat,
        default=None,
        help="check retention as of this ISO-8601 time (default: now)",
    )
    arguments = parser.parse_args(argv)
    settings = get_settings()
    now = arguments.as_of or utc_now()
    findings = audit(firestore_client(), now, settings.notification_retention_days)
    print(f"Push365 privacy audit of project {settings.project_id} as of {now.isoformat()}")
    for finding in findings:
        print(f"  {finding}")
    print(f"{len(findings)} finding(s).")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
