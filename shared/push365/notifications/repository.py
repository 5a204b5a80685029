"""Where notification records, receipts and dedup keys are kept: port and adapter."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from google.api_core.exceptions import Conflict
from google.cloud import firestore

from push365.daily.counts import add_notification, add_receipt
from push365.fanout.binding import BINDING_FIELD
from push365.model import recorded_dedup_key
from push365.notifications.deliveries import (
    BATCH_DEVICES,
    RECEIPT_HASHES,
    RECORDS,
    decode_receipt_hashes,
    decode_records,
    sent_at,
)
from push365.notifications.model import NotificationRecord
from push365.notifications.receipts import device_id as device_id_of
from push365.retention import TTL_FIELD
from push365.store import (
    BATCHES,
    CONTENDED_ATTEMPTS,
    DEDUP,
    NOTIFICATIONS,
    ORGANIZATIONS,
    RECEIPTS,
    bounded,
)


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a send: a new notification, or the one a dedup key already has."""

    notification_id: str
    new: bool


class NotificationRepository(Protocol):
    """The storage port the send and receipt use cases need."""

    def claim(
        self,
        organization_id: str,
        dedup_key: str | None,
        recipients: Sequence[str],
        now: datetime,
        dedup_window: timedelta,
        expire_at: datetime,
        *,
        binding: str,
    ) -> Claim:
        """Atomically: a new notification record (status accepted) holding ``binding``, unless
        the dedup key names a notification already, within the window."""
        ...

    def rebind(self, organization_id: str, notification_id: str, binding: str) -> bool:
        """Replace the record's binding, only while nothing has been published or planned for
        it (status accepted, no ``published_at``); False otherwise, or when it is gone."""
        ...

    def get(self, organization_id: str, notification_id: str) -> NotificationRecord | None:
        """A notification record."""
        ...

    def mark_published(self, organization_id: str, notification_id: str, now: datetime) -> None:
        """The notification's plan is on the queue."""
        ...

    def mark_delivered(
        self,
        organization_id: str,
        notification_id: str,
        batch: int,
        device_id: str,
        receipt_hash: str,
        now: datetime,
    ) -> Confirmed | None:
        """Record that the device the receipt belongs to showed the notification (the first
        time only); None when the receipt is unknown."""
        ...


@dataclass(frozen=True)
class Confirmed:
    """A receipt that matched: the subscription of the device that showed the notification
    (None when its batch no longer names it)."""

    subscription_id: str | None


def dedup_document_id(dedup_key: str) -> str:
    """Dedup keys are stored by hash: an Idempotency-Key is the caller's text."""
    return hashlib.sha256(dedup_key.encode()).hexdigest()


class FirestoreNotificationRepository:
    """Records under ``organizations/{org}/notifications``, dedup keys under ``.../dedup``."""

    def __init__(self, client: firestore.Client, timeout_seconds: float = 10.0) -> None:
        self._client = client
        # Every call gives up within the timeout, retries included.
        self._bounded = bounded(timeout_seconds)

    def _organization(self, organization_id: str) -> firestore.DocumentReference:
        return self._client.collection(ORGANIZATIONS).document(organization_id)

    def _notification(self, organization_id: str, nid: str) -> firestore.DocumentReference:
        return self._client.collection(ORGANIZATIONS, organization_id, NOTIFICATIONS).document(nid)

    def claim(
        self,
        organization_id: str,
        dedup_key: str | None,
        recipients: Sequence[str],
        now: datetime,
        dedup_window: timedelta,
        expire_at: datetime,
        *,
        binding: str,
    ) -> Claim:
        notification_id = uuid.uuid4().hex
        record = NotificationRecord(
            id=notification_id,
            organization_id=organization_id,
            recipients=list(recipients),
            dedup_key=None if dedup_key is None else recorded_dedup_key(dedup_key),
            status="accepted",
            created_at=now,
        ).model_dump() | {TTL_FIELD: expire_at}
        record[BINDING_FIELD] = binding  # the content's binding only (fanout.binding)
        reference = self._notification(organization_id, notification_id)
        if dedup_key is None:
            created = self._client.batch()
            created.create(reference, record)
            add_notification(created, self._client, organization_id, now)
            created.commit(**self._bounded)
            return Claim(notification_id, new=True)
        dedup = self._organization(organization_id).collection(DEDUP)
        dedup_ref = dedup.document(dedup_document_id(dedup_key))
        expires_at = now + dedup_window
        dedup_entry = {"notification_id": notification_id, "expires_at": expires_at}
        dedup_entry[TTL_FIELD] = expires_at
        # The common case needs no transaction: the first of any number of identical requests
        # creates the dedup entry and the record together; every other one finds the entry
        # (a transaction per request made 20 at once abort each other past their retries).
        first = self._client.batch()
        first.create(dedup_ref, dedup_entry)
        first.create(reference, record)
        add_notification(first, self._client, organization_id, now)
        try:
            first.commit(**self._bounded)
            return Claim(notification_id, new=True)
        except Conflict:  # AlreadyExists: another request was first
            pass
        snapshot = dedup_ref.get(**self._bounded)
        if snapshot.exists and snapshot.get("expires_at") > now:
            return Claim(snapshot.get("notification_id"), new=False)

        @firestore.transactional
        def replace_expired(transaction: firestore.Transaction) -> Claim:
            snapshot = dedup_ref.get(transaction=transaction)
            if snapshot.exists and snapshot.get("expires_at") > now:
                return Claim(snapshot.get("notification_id"), new=False)
            transaction.set(dedup_ref, dedup_entry)
            transaction.set(reference, record)
            add_notification(transaction, self._client, organization_id, now)
            return Claim(notification_id, new=True)

        transaction = self._client.transaction(max_attempts=CONTENDED_ATTEMPTS)
        return replace_expired(transaction)  # type: ignore[no-any-return]

    def get(self, organization_id: str, notification_id: str) -> NotificationRecord | None:
        snapshot = self._notification(organization_id, notification_id).get(**self._bounded)
        return NotificationRecord.model_validate(snapshot.to_dict()) if snapshot.exists else None

    def rebind(self, organization_id: str, notification_id: str, binding: str) -> bool:
        reference = self._notification(organization_id, notification_id)

        @firestore.transactional
        def replace(transaction: firestore.Transaction) -> bool:
            snapshot = reference.get(
                field_paths=["status", "published_at", "planned_at"], transaction=transaction
            )
            fields = snapshot.to_dict() or {}
            if not snapshot.exists or fields.get("status") != "accepted":
                return False
            if fields.get("published_at") is not None or fields.get("planned_at") is not None:
                return False
            transaction.update(reference, {BINDING_FIELD: binding})
            return True

        transaction = self._client.transaction(max_attempts=CONTENDED_ATTEMPTS)
        return replace(transaction)  # type: ignore[no-any-return]

    def mark_published(self, organization_id: str, notification_id: str, now: datetime) -> None:
        self._notification(organization_id, notification_id).update(
            {"published_at": now}, **self._bounded
        )

    def mark_delivered(
        self,
        organization_id: str,
        notification_id: str,
        batch: int,
        device_id: str,
        receipt_hash: str,
        now: datetime,
    ) -> Confirmed | None:
        notification = self._notification(organization_id, notification_id)
        snapshot = (
            notification.collection(BATCHES)
            .document(f"{batch:05d}")
            .get(field_paths=[RECEIPT_HASHES, TTL_FIELD, BATCH_DEVICES, RECORDS], **self._bounded)
        )
        fields = snapshot.to_dict() or {}
        try:
            stored = decode_receipt_hashes(fields.get(RECEIPT_HASHES)).get(device_id)
        except ValueError:
            stored = None  # not text this service wrote: no receipt matches it
        if not snapshot.exists or not _same(stored, receipt_hash):
            return None
        receipt = {"device_id": device_id, "delivered_at": now, TTL_FIELD: fields.get(TTL_FIELD)}
        # A document of its own: the first confirmation counts, a repeated one changes nothing
        # (its create fails, and with it the day's count written in the same commit).
        try:
            record = decode_records(fields.get(RECORDS)).get(device_id)
        except ValueError:
            record = None  # not text this service wrote: the wait is not counted
        sent = sent_at(record) if isinstance(record, dict) else None
        write = self._client.batch()
        write.create(notification.collection(RECEIPTS).document(device_id), receipt)
        add_receipt(write, self._client, organization_id, now, sent)
        with contextlib.suppress(Conflict):
            write.commit(**self._bounded)
        return Confirmed(_subscription_of(fields.get(BATCH_DEVICES), device_id))


def _subscription_of(devices: Any, device_id: str) -> str | None:
    """The subscription id a batch's device list holds for ``device_id`` (its first half)."""
    import json

    try:
        listed = json.loads(devices) if isinstance(devices, str) else []
    except ValueError:
        return None
    found = [s for s in listed if isinstance(s, str) and device_id_of(s) == device_id]
    return found[0] if len(found) == 1 else None


def _same(stored: Any, presented: str) -> bool:
    import hmac

    return isinstance(stored, str) and hmac.compare_digest(stored, presented)
