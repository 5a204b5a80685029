"""Reading and erasing everything held about an organization or one of its users."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, Protocol

from google.api_core.exceptions import FailedPrecondition
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

from push365.errors import StoreUnavailable, ValidationFailed
from push365.fanout.binding import BINDING_FIELD
from push365.notifications.deliveries import (
    RECEIPT_HASHES,
    RECORDS,
    decode_receipt_hashes,
    decode_records,
    delivery_view,
    encode_receipt_hashes,
    encode_records,
)
from push365.notifications.deliveries import USERS as RECORD_USERS
from push365.store import (
    BATCH_LIMIT,
    BATCHES,
    CONTENDED_ATTEMPTS,
    DEDUP,
    NOTIFICATIONS,
    ORGANIZATIONS,
    RECEIPTS,
    SUBSCRIPTIONS,
    USERS,
    bounded,
    delete_organization_tree,
)
from push365.subscriptions.repository import OWNED_PAGE, owned_entries

# Secrets are never exported: they prove identity, they are not data about anyone. (A delivery's
# receipt hash is not in the export's allow-listed view of a record at all: deliveries.py.) Both
# keys' hashes go, the previous key's too while its overlap lasts.
_KEY_HASHES = frozenset({"api_key_hash", "previous_key_hash"})
_SECRET_FIELDS = _KEY_HASHES | frozenset({"receipt_hash", "receipt_hashes", BINDING_FIELD})
"""(A notification's binding is an HMAC of its content under a key no one keeps: no data about
anyone, and a hash.)"""
_HASHED_DEDUP_KEY = "sha256:"
"""A caller's Idempotency-Key is stored only as a hash (``model.recorded_dedup_key``): not
exported; a Dataverse operation key (ids and codes) is."""
EXPORT_PAGE = 500
"""The most documents one export answer holds (its sections' together)."""
NOTIFICATIONS_PAGE = 50
"""The most notifications one export answer holds: each comes with its deliveries (up to a
batch of records per 500 devices)."""
NEXT_PAGE = "next_page_token"
_TOKEN = re.compile(r"^([a-z_]{1,20})\.([0-9a-f-]{0,64})$")
_PENDING = "pending_emails"
"""Confirmation token hash -> address: exported as the addresses only (a token's hash proves a
confirmation link, as a key's hash proves a key)."""


class PrivacyStore(Protocol):
    """The storage port the privacy use cases need."""

    def export_organization(
        self, organization_id: str, page_token: str | None = None
    ) -> dict[str, Any]:
        """Every document held about the organization, as plain data, a page at a time (from
        where ``page_token`` says; ``next_page_token`` says where the next page starts).

        Raises:
            ValidationFailed: a page token no export answered.
        """
        ...

    def export_user(
        self, organization_id: str, user_id: str, page_token: str | None = None
    ) -> dict[str, Any] | None:
        """Every document held about one user, a page at a time; None when nothing is.

        Raises:
            ValidationFailed: as for :meth:`export_organization`.
        """
        ...

    def erase_user(self, organization_id: str, user_id: str) -> dict[str, int]:
        """Remove the user, their subscriptions, deliveries and dedup keys, and their id from
        notification records."""
        ...

    def erase_organization(self, organization_id: str, now: datetime) -> dict[str, int]:
        """Remove the organization and everything under it; its key stops working first."""
        ...


class FirestorePrivacyStore:
    """The privacy port over the document layout in ``store.py``."""

    def __init__(
        self,
        client: firestore.Client,
        timeout_seconds: float = 10.0,
        page_size: int = EXPORT_PAGE,
        notifications_page: int = NOTIFICATIONS_PAGE,
    ) -> None:
        self._client = client
        self._bounded = bounded(timeout_seconds)
        self._page_size = page_size
        self._notifications_page = notifications_page

    def _organization(self, organization_id: str) -> firestore.DocumentReference:
        return self._client.collection(ORGANIZATIONS).document(organization_id)

    def export_organization(
        self, organization_id: str, page_token: str | None = None
    ) -> dict[str, Any]:
        organization = self._organization(organization_id)
        sources = {
            "users": lambda after, limit: self._page(organization.collection(USERS), after, limit),
            "subscriptions": lambda after, limit: self._page(
                organization.collection(SUBSCRIPTIONS), after, limit
            ),
            "notifications": lambda after, limit: self._page(
                organization.collection(NOTIFICATIONS), after, limit
            ),
            "dedup_keys": lambda after, limit: self._dedup_page(organization, after, limit),
        }
        found, token = self._sections(sources, page_token)
        return {
            "organization": _plain(organization.get(**self._bounded)),
            "users": [_plain(s) for s in found["users"]],
            "subscriptions": [_plain(s) for s in found["subscriptions"]],
            "notifications": [
                {**_plain(n), "deliveries": list(self._deliveries_of(n.reference))}
                for n in found["notifications"]
            ],
            # Each entry's document id is the hash of a caller's key: the entries, without it.
            "dedup_keys": [_without_id(s) for s in found["dedup_keys"]],
            NEXT_PAGE: token,
        }

    def export_user(
        self, organization_id: str, user_id: str, page_token: str | None = None
    ) -> dict[str, Any] | None:
        organization = self._organization(organization_id)
        user = organization.collection(USERS).document(user_id).get(**self._bounded)
        sources = {
            "subscriptions": lambda after, limit: self._page(
                self._subscriptions_query(organization_id, user_id),
                after,
                limit,
                organization.collection(SUBSCRIPTIONS),
            ),
            "notifications": lambda after, limit: self._page(
                self._notifications_query(organization_id, user_id),
                after,
                limit,
                organization.collection(NOTIFICATIONS),
            ),
        }
        found, token = self._sections(sources, page_token)
        subscriptions = [_plain(s) for s in found["subscriptions"]]
        notifications = [
            # Another recipient is no data about this user: the recipients are counted only.
            {
                **_recipients_counted(_plain(n)),
                "deliveries": list(self._deliveries_of(n.reference, user_id)),
            }
            for n in found["notifications"]
        ]
        if page_token is None and not user.exists and not subscriptions and not notifications:
            return None
        return {
            "user": _plain(user) if user.exists else None,
            "subscriptions": subscriptions,
            "notifications": notifications,
            NEXT_PAGE: token,
        }

    def _sections(
        self, sources: dict[str, Any], page_token: str | None
    ) -> tuple[dict[str, list[Any]], str | None]:
        """Up to a page of documents (:data:`EXPORT_PAGE`), from the sections in order (from
        where the token says), and the token of the next page (None after the last)."""
        names = list(sources)
        section, after = parse_page_token(page_token, names)
        found: dict[str, list[Any]] = {name: [] for name in names}
        room = self._page_size
        for name in names[names.index(section) :]:
            if room == 0:
                return found, f"{name}."
            limit = min(room, self._notifications_page if name == "notifications" else room)
            page = sources[name](after if name == section else "", limit)
            found[name] = page
            room -= len(page)
            if len(page) == limit:  # perhaps more: the next page goes on after the last one
                return found, f"{name}.{_cursor(name, page[-1])}"
        return found, None

    def _page(self, query: Any, after: str, limit: int, collection: Any = None) -> list[Any]:
        """Up to ``limit`` documents of ``query`` in id order, after the id ``after``; the
        collection the query reads, when the query is not the collection itself."""
        ordered = query.order_by(FieldPath.document_id())
        if after:
            start = (collection or query).document(after)
            ordered = ordered.start_after({FieldPath.document_id(): start})
        return list(ordered.limit(limit).stream(**self._bounded))

    def _dedup_page(self, organization: Any, after: str, limit: int) -> list[Any]:
        query = organization.collection(DEDUP).order_by("notification_id")
        if after:
            query = query.start_after({"notification_id": after})
        return list(query.limit(limit).stream(**self._bounded))

    def erase_user(self, organization_id: str, user_id: str) -> dict[str, int]:
        counts = {
            "users": 0,
            "subscriptions": 0,
            "notifications": 0,
            "deliveries": 0,
            "dedup_keys": 0,
        }
        subscriptions = self._subscriptions_of(organization_id, user_id, ids_only=True)
        for page in _pages(subscriptions, OWNED_PAGE):
            # (with their tokens' owner entries: the tokens are free again)
            references = [s.reference for s in page]
            batch = self._client.batch()
            for reference in [*references, *owned_entries(self._client, references).values()]:
                batch.delete(reference)
            batch.commit()
            counts["subscriptions"] += len(page)
        # The user's id leaves every notification record, and so does the dedup key (a caller's
        # Idempotency-Key is its own text, kept only as a hash, but about this user's sends).
        remove = {"recipients": firestore.ArrayRemove([user_id]), "dedup_key": None}
        for page in _pages(self._notifications_of(organization_id, user_id, ids_only=True)):
            for notification in page:
                counts["deliveries"] += self._erase_deliveries(notification.reference, user_id)
                dedup = self._dedup_of(organization_id, notification.id)
                for dedup_page in _pages(dedup):
                    counts["dedup_keys"] += self._write(dedup_page, lambda b, r: b.delete(r))
            counts["notifications"] += self._write(page, lambda b, r: b.update(r, remove))
        user = self._organization(organization_id).collection(USERS).document(user_id)
        if user.get(field_paths=["id"]).exists:
            user.delete()
            counts["users"] = 1
        return counts

    def erase_organization(self, organization_id: str, now: datetime) -> dict[str, int]:
        # First the profile and key go (replaced by a marker purge can finish from), then the rest.
        self._organization(organization_id).set({"id": organization_id, "removed_at": now})
        counts = delete_organization_tree(self._client, organization_id)
        # (the daily counts go too, uncounted here: they are counts, about no one)
        kinds = {_KINDS[name]: n for name, n in counts.items() if name in _KINDS}
        return {"organizations": 1, **kinds}

    def _subscriptions_query(self, organization_id: str, user_id: str) -> Any:
        return (
            self._organization(organization_id)
            .collection(SUBSCRIPTIONS)
            .where(filter=FieldFilter("user_id", "==", user_id))
        )

    def _subscriptions_of(
        self, organization_id: str, user_id: str, ids_only: bool = False
    ) -> Iterator[Any]:
        query = self._subscriptions_query(organization_id, user_id)
        stream: Iterator[Any] = (query.select([]) if ids_only else query).stream(**self._bounded)
        return stream

    def _notifications_query(self, organization_id: str, user_id: str) -> Any:
        return (
            self._organization(organization_id)
            .collection(NOTIFICATIONS)
            .where(filter=FieldFilter("recipients", "array_contains", user_id))
        )

    def _notifications_of(
        self, organization_id: str, user_id: str, ids_only: bool = False
    ) -> Iterator[Any]:
        query = self._notifications_query(organization_id, user_id)
        stream: Iterator[Any] = (query.select([]) if ids_only else query).stream(**self._bounded)
        return stream

    def _dedup_of(self, organization_id: str, notification_id: str) -> Iterator[Any]:
        query = (
            self._organization(organization_id)
            .collection(DEDUP)
            .where(filter=FieldFilter("notification_id", "==", notification_id))
        )
        stream: Iterator[Any] = query.select([]).stream(**self._bounded)
        return stream

    def _deliveries_of(
        self, notification: Any, user_id: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """A notification's delivery records (only ``user_id``'s, when given), export-ready."""
        batches = notification.collection(BATCHES)
        if user_id is not None:
            batches = batches.where(filter=FieldFilter(RECORD_USERS, "array_contains", user_id))
        records = [
            (device, record)
            for batch in batches.select([RECORDS]).stream(**self._bounded)
            for device, record in decode_records((batch.to_dict() or {}).get(RECORDS)).items()
            if user_id is None or record.get("user_id") == user_id
        ]
        receipts = notification.collection(RECEIPTS)
        confirmed: Iterable[Any] = []
        if user_id is None:
            confirmed = receipts.select(["delivered_at"]).stream(**self._bounded)
        elif records:  # one user's: their devices' receipts only, by id
            mine = [receipts.document(device) for device, _ in records]
            confirmed = self._client.get_all(mine, field_paths=["delivered_at"])
        delivered = {r.id: (r.to_dict() or {}).get("delivered_at") for r in confirmed if r.exists}
        for device, record in records:
            view = delivery_view(device, record, delivered.get(device))
            yield {"id": device} | {k: _jsonable(v) for k, v in view.items()}

    def _erase_deliveries(self, notification: Any, user_id: str) -> int:
        """Remove the user's records from the notification's batches, and their receipts."""
        erased = 0
        batches = notification.collection(BATCHES).where(
            filter=FieldFilter(RECORD_USERS, "array_contains", user_id)
        )
        for batch in batches.select([]).stream(**self._bounded):
            devices = self._erase_from_batch(batch.reference, user_id)
            for start in range(0, len(devices), BATCH_LIMIT):
                write = self._client.batch()
                for device in devices[start : start + BATCH_LIMIT]:
                    write.delete(notification.collection(RECEIPTS).document(device))
                write.commit()
            erased += len(devices)
        return erased

    def _erase_from_batch(self, batch: Any, user_id: str) -> list[str]:
        """Rewrite one batch's records without the user's (fenced: a worker writing the batch
        meanwhile loses its lease and reads the batch again); the device ids removed."""
        for _ in range(CONTENDED_ATTEMPTS):
            snapshot = batch.get(field_paths=[RECORDS, RECEIPT_HASHES])
            stored = snapshot.to_dict() or {}
            records = decode_records(stored.get(RECORDS))
            removed = [d for d, r in records.items() if r.get("user_id") == user_id]
            try:
                hashes = decode_receipt_hashes(stored.get(RECEIPT_HASHES))
            except ValueError:
                hashes = {}  # not text this service wrote: none of it is kept
            kept_hashes = {d: h for d, h in hashes.items() if d not in removed}
            fields: dict[str, Any] = {
                RECORDS: encode_records({d: r for d, r in records.items() if d not in removed}),
                RECEIPT_HASHES: encode_receipt_hashes(kept_hashes),
                RECORD_USERS: firestore.ArrayRemove([user_id]),
            }
            try:
                batch.update(
                    fields, option=self._client.write_option(last_update_time=snapshot.update_time)
                )
            except FailedPrecondition:
                continue  # the worker wrote it meanwhile: read it again
            return removed
        raise StoreUnavailable()

    def _write(self, page: list[Any], write: Any) -> int:
        batch = self._client.batch()
        for snapshot in page:
            write(batch, snapshot.reference)
        batch.commit()
        return len(page)


_KINDS = {
    USERS: "users",
    SUBSCRIPTIONS: "subscriptions",
    NOTIFICATIONS: "notifications",
    RECEIPTS: "receipts",
    BATCHES: "batches",
    DEDUP: "dedup_keys",
}


def _pages(snapshots: Iterator[Any], size: int = BATCH_LIMIT) -> Iterator[list[Any]]:
    page: list[Any] = []
    for snapshot in snapshots:
        page.append(snapshot)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def parse_page_token(token: str | None, sections: list[str]) -> tuple[str, str]:
    """(section, the last id the previous page held) of a page token; the first section's
    start without one.

    Raises:
        ValidationFailed: not a token an export answered.
    """
    if token is None:
        return sections[0], ""
    match = _TOKEN.fullmatch(token)
    if match is None or match.group(1) not in sections:
        raise ValidationFailed("page_token must be a next_page_token an export answered.")
    return match.group(1), match.group(2)


def _cursor(section: str, snapshot: Any) -> str:
    if section == "dedup_keys":
        return str((snapshot.to_dict() or {}).get("notification_id") or "")
    return str(snapshot.id)


def _without_id(snapshot: Any) -> dict[str, Any]:
    plain = _plain(snapshot)
    plain.pop("id", None)
    return plain


def _recipients_counted(notification: dict[str, Any]) -> dict[str, Any]:
    recipients = notification.pop("recipients", None)
    notification["recipients_count"] = len(recipients) if isinstance(recipients, list) else 0
    return notification


def _plain(snapshot: Any) -> dict[str, Any]:
    """A document as JSON-ready data: its id, its fields (no secrets), times as ISO-8601."""
    fields = snapshot.to_dict() or {}
    if isinstance(fields.get(_PENDING), dict):
        fields[_PENDING] = sorted(str(email) for email in fields[_PENDING].values())
    dedup_key = fields.get("dedup_key")
    if isinstance(dedup_key, str) and dedup_key.startswith(_HASHED_DEDUP_KEY):
        fields["dedup_key"] = None  # a caller's key, kept only as a hash: the hash is not data
    return {"id": snapshot.id} | {
        k: _jsonable(v) for k, v in fields.items() if k not in _SECRET_FIELDS
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value
