"""The store check: check a Firestore database against the privacy policy.

``python -m push365.compliance`` (``make store-check``; ``make audit`` is the same) reads every
document of the database that
``FIRESTORE_EMULATOR_HOST`` / ``GOOGLE_CLOUD_PROJECT`` point at and checks it against the policy's
field lists in ``push365/privacy/policy_fields.json`` (written once, read by the tests too; never
derived from the code's own models, which it is there to check):

- names: a field outside the list (nested maps too), anything under a content name, an unknown
  collection;
- values where content could hide: outcome codes, dedup keys and hashes must have their shape
  (a code, an id or a hash), statuses and reasons must be known ones, no token under any status
  but ``active``;
- every value anywhere (nested maps, lists, the JSON text a batch keeps, map keys, document ids):
  the run's own notification texts (``--content``), free text outside the fields that may hold
  it, a key, confirmation token or signup code in clear, an active subscription's token outside
  its subscription, an email address outside the organization's and the system user's records, a
  document id that must be a hash and is not, a footprint or recipient not of its shape;
- ages, by each record's own dates whatever its ``purge_by`` or TTL field says: anything past its
  retention, a TTL later than the retention allows or missing (on every document of a collection
  with a TTL, within its ``ttl_max_days``), an erasure that did not finish, a
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
from pathlib import Path, PurePosixPath
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
    SIGNUP_CODES,
    SUBSCRIPTIONS,
    THROTTLES,
    TOKEN_OWNERS,
    USERS,
    bounded,
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
    content: tuple[str, ...] = ()
    """Texts known to be notification content (a run's own sends): found in any value, anywhere."""
    tokens: frozenset[str] = frozenset()
    """The active subscriptions' tokens: found in any value but their own, anywhere."""

    @property
    def unsubscribed(self) -> timedelta:
        return timedelta(days=policy_fields()["retention"]["unsubscribed_days"])

    @property
    def dedup(self) -> timedelta:
        return timedelta(hours=policy_fields()["retention"]["dedup_hours"])

    @property
    def throttles(self) -> timedelta:
        return timedelta(hours=policy_fields()["retention"]["throttles_hours"])

    @property
    def notifications(self) -> timedelta:
        return timedelta(days=self.notification_retention_days)

    @property
    def signup_codes(self) -> timedelta:
        return timedelta(days=policy_fields()["retention"]["signup_code_days"])

    @property
    def daily(self) -> timedelta:
        return timedelta(days=policy_fields()["retention"]["daily_days"])


@dataclass
class Report:
    """What the audit read and found."""

    documents: int = 0
    findings: list[Finding] = field(default_factory=list)


def check_store(
    client: Any,
    now: datetime,
    notification_retention_days: int = 90,
    stale_subscription_days: int = DEFAULT_STALE_SUBSCRIPTION_DAYS,
    content: tuple[str, ...] = (),
) -> list[Finding]:
    """Every finding in the database (``content``: texts the run sent, to look for anywhere)."""
    limits = Limits(now, notification_retention_days, stale_subscription_days, content)
    return read(client, limits).findings


audit = check_store  # the name issue 26 and older callers use


READ_SECONDS = 120.0
"""How long the check waits for one stream of the store (it reads whole collections)."""


def active_tokens(client: Any) -> frozenset[str]:
    """Every active subscription's token (read once, to look for anywhere else)."""
    tokens = set()
    for snapshot in (
        client.collection_group(SUBSCRIPTIONS)
        .select(["status", "instance_id"])
        .stream(**bounded(READ_SECONDS))
    ):
        fields = snapshot.to_dict() or {}
        token = fields.get("instance_id")
        if fields.get("status") == "active" and isinstance(token, str) and token:
            tokens.add(token)
    return frozenset(tokens)


def read(client: Any, limits: Limits) -> Report:
    """Every document, checked."""
    if not limits.tokens:
        limits = _with_tokens(limits, active_tokens(client))
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
    found = [
        Finding("field_outside_policy", path, _name(name)) for name in fields if name not in allowed
    ]
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
                    Finding("field_outside_policy", path, f"{_name(name)}.{_name(key)}")
                    for key in item
                    if key not in nested
                ]
    found += [Finding("notification_content", path, name) for name in fields if name in content]
    found += _values(path, collection, fields, limits)
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


WITHHELD = "<id withheld: not a hash>"


def shown_path(path: str, collection: str) -> str:
    """A document's path as a report shows it: the id of a dedup key, signup code, throttle,
    subscription or token owner must be a hash (``ids``); when it is not (a key, code or token in
    clear), it is withheld."""
    parent, _, document_id = path.rpartition("/")
    shape = policy_fields()["ids"].get(collection)
    if "#" not in document_id and shape and not re.fullmatch(shape, document_id):
        return f"{parent}/{WITHHELD}"
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
    if path.endswith(WITHHELD):
        yield Finding("value_not_a_hash", path, "document id")
    checks = {
        (NOTIFICATIONS, "dedup_key"): shapes["notifications.dedup_key"],
        (NOTIFICATIONS, "binding"): shapes["notifications.binding"],
        (DELIVERIES, "error"): shapes["deliveries.error"],
        (DELIVERIES, "receipt_hash"): shapes["receipt_hash"],
        (ORGANIZATIONS, "api_key_hash"): shapes["api_key_hash"],
        (SUBSCRIPTIONS, "browser_footprint"): shapes["subscriptions.browser_footprint"],
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
    if collection == NOTIFICATIONS and isinstance(fields.get("recipients"), list):
        for at, user in enumerate(fields["recipients"]):
            if not (
                isinstance(user, str) and re.fullmatch(shapes["notifications.recipients"], user)
            ):
                yield Finding("value_not_a_code_or_hash", path, f"recipients.{at}")
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
    if collection == THROTTLES:
        yield from _counter_lifetime(path, fields, limits)
        return
    born, keep, ttl_required = _lifetime(collection, fields, limits)
    yield from _ttl_bound(path, collection, fields, limits)
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
        if ttl_required and not ttl_bounded(collection):  # (else _ttl_bound reported it)
            yield Finding("missing_ttl", path, TTL_FIELD)
    elif isinstance(ttl, datetime) and ttl > born + keep:
        yield Finding("retention_too_long", path, f"{TTL_FIELD} past {_days(keep)}")
    purge_by = fields.get("purge_by")
    if isinstance(purge_by, datetime) and purge_by > born + keep:
        yield Finding("retention_too_long", path, f"purge_by past {_days(keep)}")
    elif isinstance(purge_by, datetime) and purge_by <= now:
        yield Finding("past_purge_by", path, "purge_by")


def _counter_lifetime(path: str, fields: Mapping[str, Any], limits: Limits) -> Iterator[Finding]:
    """A throttle or mail-limit counter: Firestore's TTL deletes it at its window's end, at
    most a day ahead (one past that end is only waiting for the TTL's sweep)."""
    ttl = fields.get(TTL_FIELD)
    if not isinstance(ttl, datetime):
        yield Finding("missing_ttl", path, TTL_FIELD)
    elif ttl > limits.now + limits.throttles:
        yield Finding("retention_too_long", path, f"{TTL_FIELD} past {_days(limits.throttles)}")


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
    if collection == SIGNUP_CODES:
        return _date(fields.get("created_at")), limits.signup_codes, True
    return None, None, False


def ttl_bounded(collection: str) -> bool:
    """Whether the policy bounds ``collection``'s documents by the TTL field."""
    retention = (policy_fields()["collections"].get(collection) or {}).get("retention") or {}
    return "ttl" in retention.get("by", ())


def _ttl_bound(
    path: str, collection: str, fields: Mapping[str, Any], limits: Limits
) -> Iterator[Finding]:
    """Every document of a collection the policy bounds by TTL carries one (an active
    subscription excepted: it has none until it ends), reaching no further ahead than the
    collection's ``ttl_max_days`` (the notification retention setting for the 90-day kinds)."""
    if not ttl_bounded(collection):
        return
    retention = policy_fields()["collections"][collection]["retention"]
    if collection == SUBSCRIPTIONS and fields.get("status") == "active":
        return
    ttl = fields.get(TTL_FIELD)
    if not isinstance(ttl, datetime):
        yield Finding("missing_ttl", path, TTL_FIELD)
        return
    days = float(retention["ttl_max_days"])
    if collection in (NOTIFICATIONS, BATCHES, RECEIPTS):  # the retention setting may be longer
        days = max(days, limits.notification_retention_days)
    if ttl > limits.now + timedelta(days=days, minutes=5):
        yield Finding(
            "retention_too_long", path, f"{TTL_FIELD} past {_days(timedelta(days=days))} ahead"
        )


def _with_tokens(limits: Limits, tokens: frozenset[str]) -> Limits:
    return Limits(
        limits.now,
        limits.notification_retention_days,
        limits.stale_subscription_days,
        limits.content,
        tokens,
    )


EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_LEAF_LIMIT = 20000  # values walked per document: a bound on a hostile store's cost


def _leaves(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """(where, text) for every string inside a value: map keys, list items, and what a JSON
    text (a batch's lists, maps and records) holds, as well as the text itself."""
    if isinstance(value, str):
        yield where, value
        if value[:1] in ("{", "["):
            try:
                parsed = json.loads(value)
            except ValueError:
                return
            yield from _leaves(parsed, where)
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            yield f"{where}.<key>", str(key)
            yield from _leaves(inner, f"{where}.{key}")
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _leaves(inner, f"{where}.{index}")


def _values(
    path: str, collection: str, fields: Mapping[str, Any], limits: Limits
) -> Iterator[Finding]:
    """Every value, wherever it is, for what may be in no value: the run's notification texts,
    free text where the policy keeps none, a secret in clear, an active token outside its own
    subscription, an email address outside the records that hold one. At most one finding of a
    kind per field (and never the value)."""
    policy = policy_fields()
    text_fields = frozenset(policy["text_fields"].get(collection, ()))
    email_fields = frozenset(policy["email_fields"].get(collection, ()))
    secret = re.compile(policy["secret_pattern"])
    fcm_token = re.compile(policy["token_pattern"])
    document_id = PurePosixPath(path.partition("#")[0]).name
    found: set[tuple[str, str]] = set()
    leaves = [("document_id", document_id)]
    leaves += [leaf for name, value in fields.items() for leaf in _leaves(value, name)]
    for count, (where, text) in enumerate(leaves):
        if count > _LEAF_LIMIT:
            break
        top = where.split(".", 1)[0]
        if top == "rules" and collection == ORGANIZATIONS:
            continue  # templates, not content (their names are checked above)
        if any(known and known in text for known in limits.content):
            found.add(("notification_content", top))
        elif top not in text_fields and re.search(r"\s", text):
            found.add(("content_shaped_value", top))
        if secret.search(text):
            found.add(("secret_in_clear", top))
        own = collection == SUBSCRIPTIONS and where == "instance_id"
        if not own and (
            fcm_token.search(text)
            or any(token == text or (len(token) >= 16 and token in text) for token in limits.tokens)
        ):
            found.add(("token_outside_subscription", top))
        if top not in email_fields and EMAIL.search(text):
            found.add(("email_outside_records", top))
    for kind, top in sorted(found):
        yield Finding(kind, path, _name(top))


def _name(name: Any) -> str:
    """A field's name as a report shows it: one that is not a name (a key holding text) is
    withheld."""
    text = str(name)
    return text if re.fullmatch(r"[A-Za-z0-9_]{1,64}", text) else "<name withheld>"


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
        "--content",
        action="append",
        default=[],
        metavar="TEXT",
        help="a notification text the run sent (repeatable): reported wherever it is stored",
    )
    parser.add_argument(
        "--content-list",
        default="",
        metavar="TEXTS",
        help="notification texts the run sent, separated by ';' (make store-check CONTENT=...)",
    )
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
            print(f"store check: no Firestore emulator answers at {host}: nothing was checked.")
            return 2
        os.environ["FIRESTORE_EMULATOR_HOST"] = host

    from google.api_core import exceptions

    from push365.settings import get_settings
    from push365.store import firestore_client

    settings = get_settings()
    now = arguments.as_of or utc_now()
    texts = [*arguments.content, *arguments.content_list.split(";")]
    content = tuple(text for text in texts if text.strip())
    limits = Limits(
        now, settings.notification_retention_days, settings.stale_subscription_days, content
    )
    try:
        report = read(firestore_client(), limits)
    except (exceptions.GoogleAPIError, OSError) as error:
        name = type(error).__name__
        print(f"store check: the store did not answer ({name}): nothing was checked.")
        return 2
    print(f"Push365 store check of project {settings.project_id} as of {now.isoformat()}")
    for finding in report.findings:
        print(f"  {finding}")
    print(f"{report.documents} document(s) read, {len(report.findings)} finding(s).")
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
