"""The audit command: check a Firestore database against the privacy policy.

``python -m push365.compliance`` (``make audit``) reads every document of the database that
``FIRESTORE_EMULATOR_HOST`` / ``GOOGLE_CLOUD_PROJECT`` point at and checks it against the policy's
field lists in ``push365/privacy/policy_fields.json`` (written once, read by the tests too; never
derived from the code's own models, which it is there to check):

- names: a field outside the list (nested maps too), anything under a content name, an unknown
  collection;
- values where content could hide: outcome codes, dedup keys and hashes must have their shape
  (a code, an id or a hash), statuses and reasons must be known ones, no token under any status
  but ``active``;
- ages, by each record's own dates whatever its ``purge_by`` or TTL field says: anything past its
  retention, a TTL later than the retention allows or missing, an erasure that did not finish, a
  token's owner entry (``token_owners``) without the active subscription it names.

It names fields, never values, prints how many documents it read, and exits 1 on any finding
(2, with one line, when no store answers).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from push365.model import utc_now
from push365.notifications.deliveries import (
    RECEIPT_HASHES,
    RECORDS,
    decode_receipt_hashes,
    decode_records,
    sent_at,
)
from push365.retention import DEFAULT_STALE_SUBSCRIPTION_DAYS, TTL_FIELD
from push365.store import (
    BATCHES,
    DAILY,
    DEDUP,
    NOTIFICATIONS,
    ORGANIZATIONS,
    OWNER_FIELD,
    RECEIPTS,
    SUBSCRIPTIONS,
    TOKEN_OWNERS,
    USERS,
)

DELIVERIES = "deliveries"
"""The policy's name for one device's delivery record: each is checked as a document of its own,
though a batch's records are stored together, on the batch (``notifications.deliveries``)."""

POLICY_FIELDS = Path(__file__).resolve().parent / "privacy" / "policy_fields.json"


@lru_cache(maxsize=1)
def policy_fields() -> dict[str, Any]:
    """The policy's field lists, codes, value shapes and retention limits (the data file)."""
    return json.loads(POLICY_FIELDS.read_text())  # type: ignore[no-any-return]


def allowed_fields(collection: str) -> frozenset[str] | None:
    """The fields a document of ``collection`` may hold; None for a collection not in the policy."""
    entry = policy_fields()["collections"].get(collection)
    return None if entry is None else frozenset(entry["fields"])


def allowed_nested(collection: str, name: str) -> frozenset[str] | None:
    """The keys a nested map (or list of maps) ``name`` of ``collection`` may hold."""
    entry = policy_fields()["collections"].get(collection) or {}
    nested = entry.get("nested", {}).get(name)
    return None if nested is None else frozenset(nested)


@dataclass(frozen=True)
class Finding:
    """One violation: what kind, where, and which field (never the value)."""

    kind: str
    path: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind:<28} {self.path}  {self.detail}"


@dataclass(frozen=True)
class Limits:
    """How long each kind of record may live, as of ``now``."""

    now: datetime
    notification_retention_days: int = 90
    stale_subscription_days: int = DEFAULT_STALE_SUBSCRIPTION_DAYS

    @property
    def unsubscribed(self) -> timedelta:
        return timedelta(days=policy_fields()["retention"]["unsubscribed_days"])

    @property
    def dedup(self) -> timedelta:
        return timedelta(hours=policy_fields()["retention"]["dedup_hours"])

    @property
    def notifications(self) -> timedelta:
        return timedelta(days=self.notification_retention_days)

    @property
    def daily(self) -> timedelta:
        return timedelta(days=policy_fields()["retention"]["daily_days"])


@dataclass
class Report:
    """What the audit read and found."""

    documents: int = 0
    findings: list[Finding] = field(default_factory=list)


def audit(
    client: Any,
    now: datetime,
    notification_retention_days: int = 90,
    stale_subscription_days: int = DEFAULT_STALE_SUBSCRIPTION_DAYS,
) -> list[Finding]:
    """Every finding in the database."""
    return read(client, Limits(now, notification_retention_days, stale_subscription_days)).findings


def read(client: Any, limits: Limits) -> Report:
    """Every document, checked."""
    report = Report()
    owners: list[tuple[str, Mapping[str, Any]]] = []
    for path, collection, fields in _documents(client.collections()):
        report.documents += 1
        if collection == TOKEN_OWNERS:
            owners.append((path, fields))
        if (policy_fields()["collections"].get(collection) or {}).get("stored_on"):
            # Such records live on another collection's documents, never as documents.
            where = f"{collection!r} records belong on their batch"
            report.findings.append(Finding("unknown_collection", path, where))
            continue
        report.findings += check_document(path, collection, fields, limits)
    report.findings += _held_tokens(client, owners)
    return report


def _held_tokens(client: Any, owners: list[tuple[str, Mapping[str, Any]]]) -> Iterator[Finding]:
    """A token's owner entry lives only as long as the active subscription it names: one whose
    subscription ended (or never was) is kept past its purpose."""
    for path, fields in owners:
        organization = fields.get(OWNER_FIELD)
        held = path.rpartition("/")[2]
        subscription = (
            client.collection(ORGANIZATIONS, organization, SUBSCRIPTIONS).document(held).get()
            if isinstance(organization, str) and organization
            else None
        )
        if subscription is None or (subscription.to_dict() or {}).get("status") != "active":
            yield Finding("token_held_without_subscription", path, OWNER_FIELD)


def check_document(
    path: str, collection: str, fields: Mapping[str, Any], limits: Limits
) -> list[Finding]:
    """Every finding in one document."""
    path = shown_path(path, collection)
    allowed = allowed_fields(collection)
    if allowed is None:
        return [
            Finding("unknown_collection", path, f"collection {collection!r} is not in the policy")
        ]
    found = [Finding("field_outside_policy", path, name) for name in fields if name not in allowed]
    content = frozenset(policy_fields()["content_fields"])
    for name, value in fields.items():
        if (collection, name) != (ORGANIZATIONS, "rules"):  # rules hold templates, not content
            found += [Finding("notification_content", path, at) for at in _content(value, name)]
        nested = allowed_nested(collection, name)
        if nested is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Mapping):
                found += [
                    Finding("field_outside_policy", path, f"{name}.{key}")
                    for key in item
                    if key not in nested
                ]
    found += [Finding("notification_content", path, name) for name in fields if name in content]
    found += _codes(path, collection, fields)
    found += _shapes(path, collection, fields)
    found += _ages(path, collection, fields, limits)
    if collection == BATCHES:
        found += _batch_records(path, fields, limits)
    return found


def _batch_records(path: str, fields: Mapping[str, Any], limits: Limits) -> Iterator[Finding]:
    """A batch's delivery records, each checked as a delivery document (it has the batch's TTL
    and, from the batch's receipt hashes, its own); every receipt hash its shape."""
    try:
        records = decode_records(fields.get(RECORDS))
    except ValueError:
        records = None
    if not isinstance(records, Mapping):  # not JSON, or not an object of records
        yield Finding("value_not_a_code_or_hash", path, RECORDS)
        return
    try:
        hashes = decode_receipt_hashes(fields.get(RECEIPT_HASHES))
    except ValueError:  # not JSON, or not an object of hashes
        hashes = {}
        yield Finding("value_not_a_code_or_hash", path, RECEIPT_HASHES)
    shape = policy_fields()["values"]["receipt_hash"]
    for device in sorted(set(hashes) - set(records)):  # (a record's hash is checked with it)
        if not isinstance(hashes[device], str) or not re.fullmatch(shape, hashes[device]):
            yield Finding("value_not_a_code_or_hash", path, f"{RECEIPT_HASHES}.{device}")
    for device, record in records.items():
        if not isinstance(record, Mapping):
            yield Finding("value_not_a_code_or_hash", path, f"{RECORDS}.{device}")
            continue
        virtual = dict(record) | {TTL_FIELD: fields.get(TTL_FIELD)}
        virtual["sent_at"] = sent_at(record) or record.get("sent_at")
        if device in hashes:
            virtual["receipt_hash"] = hashes[device]
        yield from check_document(f"{path}#{RECORDS}/{device}", DELIVERIES, virtual, limits)


def shown_path(path: str, collection: str) -> str:
    """A document's path as a report shows it: a dedup document's id must be a hash; when it is
    not (a caller's key in clear), it is withheld."""
    parent, _, document_id = path.rpartition("/")
    if collection == DEDUP and not re.fullmatch(policy_fields()["values"]["dedup_id"], document_id):
        return f"{parent}/<id withheld: not a hash>"
    return path


def _codes(path: str, collection: str, fields: Mapping[str, Any]) -> Iterator[Finding]:
    """Statuses and reasons from the policy's lists; a token under no status but active."""
    for key, known in policy_fields()["codes"].items():
        where, name = key.split(".")
        if where == collection and name in fields and fields[name] not in known:
            kind = "unknown_status" if name == "status" else "unknown_code"
            yield Finding(kind, path, name)
    if collection == SUBSCRIPTIONS and fields.get("status") != "active":
        for name in ("instance_id", "browser_footprint", "token_kind"):
            if fields.get(name) is not None:
                yield Finding("token_after_unsubscribe", path, name)


def _shapes(path: str, collection: str, fields: Mapping[str, Any]) -> Iterator[Finding]:
    """Values content could hide in: each must be a code, an id or a hash of its shape."""
    shapes = policy_fields()["values"]
    if collection == DEDUP and path.endswith("<id withheld: not a hash>"):
        yield Finding("value_not_a_hash", path, "document id")
    checks = {
        (NOTIFICATIONS, "dedup_key"): shapes["notifications.dedup_key"],
        (NOTIFICATIONS, "binding"): shapes["notifications.binding"],
        (DELIVERIES, "error"): shapes["deliveries.error"],
        (DELIVERIES, "receipt_hash"): shapes["receipt_hash"],
        (ORGANIZATIONS, "api_key_hash"): shapes["api_key_hash"],
    }
    if collection == DAILY:
        yield from _counts(path, fields, shapes)
    if collection == USERS:
        devices = fields.get("devices")
        for at, device in enumerate(devices if isinstance(devices, list) else [devices]):
            if device is not None and not (
                isinstance(device, str) and re.fullmatch(shapes["users.devices"], device)
            ):
                yield Finding("value_not_a_code_or_hash", path, f"devices.{at}")
    for (where, name), shape in checks.items():
        value = fields.get(name)
        if where != collection or value is None:
            continue
        if not isinstance(value, str) or not re.fullmatch(shape, value):
            yield Finding("value_not_a_code_or_hash", path, name)


def _counts(path: str, fields: Mapping[str, Any], shapes: Mapping[str, str]) -> Iterator[Finding]:
    """A day's counts: numbers, and maps keyed by an outcome code or a histogram bucket."""
    for name, value in fields.items():
        if name in ("failed_by_reason", "waits"):
            keys = value if isinstance(value, Mapping) else {None: value}
            for key, count in keys.items():
                shape = shapes[f"daily.{name}"]
                if not (isinstance(key, str) and re.fullmatch(shape, key)):
                    yield Finding("value_not_a_code_or_hash", path, name)
                elif not isinstance(count, int):
                    yield Finding("value_not_a_count", path, f"{name}.{key}")
        elif name not in ("day", TTL_FIELD) and not isinstance(value, int):
            yield Finding("value_not_a_count", path, name)


def _ages(
    path: str, collection: str, fields: Mapping[str, Any], limits: Limits
) -> Iterator[Finding]:
    """Each record's age by its own dates, whatever ``purge_by`` or the TTL field says."""
    now = limits.now
    if collection == ORGANIZATIONS and "removed_at" in fields:
        yield Finding("organization_not_erased", path, "removed_at")
        return
    born, keep, ttl_required = _lifetime(collection, fields, limits)
    if born is None:
        if keep is not None:
            yield Finding("missing_date", path, "no date to tell its age by")
        return
    assert keep is not None
    if collection == DEDUP and born > now:
        # It expires later than a window from now: it was written to live longer than that.
        yield Finding("retention_too_long", path, f"expires_at past {_days(keep)}")
    active = collection == SUBSCRIPTIONS and fields.get("status") == "active"
    if born + keep <= now:
        kind = "stale_subscription" if active else "past_retention"
        yield Finding(kind, path, f"older than {_days(keep)}")
    if active:
        return  # an active subscription has no TTL; it goes stale (above) by last_seen_at
    ttl = fields.get(TTL_FIELD)
    if ttl is None:
        if ttl_required:
            yield Finding("missing_ttl", path, TTL_FIELD)
    elif isinstance(ttl, datetime) and ttl > born + keep:
        yield Finding("retention_too_long", path, f"{TTL_FIELD} past {_days(keep)}")
    purge_by = fields.get("purge_by")
    if isinstance(purge_by, datetime) and purge_by > born + keep:
        yield Finding("retention_too_long", path, f"purge_by past {_days(keep)}")
    elif isinstance(purge_by, datetime) and purge_by <= now:
        yield Finding("past_purge_by", path, "purge_by")


def _lifetime(
    collection: str, fields: Mapping[str, Any], limits: Limits
) -> tuple[datetime | None, timedelta | None, bool]:
    """(when the record's clock started, how long it may live, whether it needs a TTL field)."""
    if collection == SUBSCRIPTIONS:
        if fields.get("status") == "active":
            return (
                _date(fields.get("last_seen_at")),
                timedelta(days=limits.stale_subscription_days),
                False,
            )
        return _date(fields.get("unsubscribed_at")), limits.unsubscribed, True
    if collection == DELIVERIES:
        return _date(fields.get("sent_at")), limits.notifications, True
    if collection == RECEIPTS:
        return _date(fields.get("delivered_at")), limits.notifications, True
    if collection in (NOTIFICATIONS, BATCHES):
        return _date(fields.get("created_at")), limits.notifications, collection == NOTIFICATIONS
    if collection == DAILY:
        day = _date(fields.get("day"))
        return (day + timedelta(days=1) if day else None), limits.daily, True
    if collection == DEDUP:
        expires = _date(fields.get("expires_at"))
        return (expires - limits.dedup if expires else None), limits.dedup, True
    return None, None, False


def _date(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _days(period: timedelta) -> str:
    hours = period.total_seconds() / 3600
    return f"{hours:g} hours" if hours < 48 else f"{period.days} days"


def _content(value: Any, where: str) -> Iterator[str]:
    """Content-named keys nested anywhere inside a value."""
    content = frozenset(policy_fields()["content_fields"])
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if key in content:
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


def emulator_host() -> str | None:
    """The emulator to read: ``FIRESTORE_EMULATOR_HOST``, else ``PUSH365_FIRESTORE_PORT`` on
    loopback (what ``make dev`` was started with)."""
    host = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if host:
        return host
    port = os.environ.get("PUSH365_FIRESTORE_PORT")
    return f"127.0.0.1:{port}" if port else None


def _answers(host: str, timeout: float = 2.0) -> bool:
    name, _, port = host.rpartition(":")
    try:
        with socket.create_connection((name or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    """Print a report; exit 1 on any finding, 2 when no store answers."""
    parser = argparse.ArgumentParser(description="Check the store against the privacy policy.")
    parser.add_argument(
        "--as-of",
        type=datetime.fromisoformat,
        default=None,
        help="check retention as of this ISO-8601 time (default: now)",
    )
    arguments = parser.parse_args(argv)
    host = emulator_host()
    if host is not None:
        if not _answers(host):
            print(f"make audit: no Firestore emulator answers at {host}: nothing was checked.")
            return 2
        os.environ["FIRESTORE_EMULATOR_HOST"] = host

    from google.api_core import exceptions

    from push365.settings import get_settings
    from push365.store import firestore_client

    settings = get_settings()
    now = arguments.as_of or utc_now()
    limits = Limits(now, settings.notification_retention_days, settings.stale_subscription_days)
    try:
        report = read(firestore_client(), limits)
    except (exceptions.GoogleAPIError, OSError) as error:
        name = type(error).__name__
        print(f"make audit: the store did not answer ({name}): nothing was checked.")
        return 2
    print(f"Push365 privacy audit of project {settings.project_id} as of {now.isoformat()}")
    for finding in report.findings:
        print(f"  {finding}")
    print(f"{report.documents} document(s) read, {len(report.findings)} finding(s).")
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
