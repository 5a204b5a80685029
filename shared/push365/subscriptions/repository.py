"""Where subscriptions are kept: the port, and its Firestore adapter."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from push365.retention import TTL_FIELD
from push365.store import BATCH_LIMIT, ORGANIZATIONS, SUBSCRIPTIONS
from push365.subscriptions.model import (
    Device,
    Status,
    TokenKind,
    UnsubscribeReason,
    subscription_id,
)

_IN_LIMIT = 30  # values in one Firestore "in" filter
ACTIVE_DEVICES_QUERY_FIELDS = ("status", "user_id")
"""The fields ``active_devices`` filters on together (one composite index, ``push365.indexes``)."""
_SCAN_ABOVE = 10 * _IN_LIMIT  # recipients above which one scan of active devices is cheaper


class SubscriptionRepository(Protocol):
    """The storage port the subscription use cases need."""

    def activate(
        self,
        organization_id: str,
        instance_id: str,
        user_id: str,
        footprint: str | None,
        now: datetime,
        token_kind: TokenKind = TokenKind.REGISTRATION_TOKEN,
    ) -> bool:
        """Make the token (of this kind) an active subscription of the user, atomically.

        Returns:
            True when the token had no active subscription before (a new one).
        """
        ...

    def deactivate_token(
        self,
        organization_id: str,
        instance_id: str,
        reason: UnsubscribeReason,
        now: datetime,
        purge_by: datetime,
    ) -> int:
        """Turn the token's active subscription into a tombstone; how many were (0 or 1)."""
        ...

    def deactivate_user(
        self,
        organization_id: str,
        user_id: str,
        reason: UnsubscribeReason,
        now: datetime,
        purge_by: datetime,
    ) -> int:
        """Turn every active subscription of a user into a tombstone; how many."""
        ...

    def delete_user(self, organization_id: str, user_id: str) -> int:
        """Delete every subscription (active or not) of a user; how many."""
        ...

    def active_devices(self, organization_id: str, user_ids: Sequence[str]) -> list[Device]:
        """Every active subscription of these users."""
        ...

    def retire(
        self,
        organization_id: str,
        subscription_ids: Sequence[str],
        reason: UnsubscribeReason,
        now: datetime,
        purge_by: datetime,
    ) -> int:
        """Turn these subscriptions into tombstones (FCM said their tokens are dead); how many."""
        ...


def tombstone_fields(
    reason: UnsubscribeReason, now: datetime, purge_by: datetime
) -> dict[str, Any]:
    """What an unsubscribed subscription keeps besides user id and dates: the token goes now."""
    return {
        "status": Status.UNSUBSCRIBED.value,
        "unsubscribed_at": now,
        "unsubscribe_reason": reason.value,
        "purge_by": purge_by,
        TTL_FIELD: purge_by,
    }


def firestore_tombstone(
    reason: UnsubscribeReason, now: datetime, purge_by: datetime
) -> dict[str, Any]:
    """The Firestore update that turns a subscription into a tombstone: the token goes now."""
    return {
        **tombstone_fields(reason, now, purge_by),
        "instance_id": firestore.DELETE_FIELD,
        "browser_footprint": firestore.DELETE_FIELD,
        "token_kind": firestore.DELETE_FIELD,
    }


class FirestoreSubscriptionRepository:
    """Subscriptions in ``organizations/{org}/subscriptions/{sha256(token)}``."""

    def __init__(self, client: firestore.Client) -> None:
        self._client = client

    def _subscriptions(self, organization_id: str) -> firestore.CollectionReference:
        return self._client.collection(ORGANIZATIONS, organization_id, SUBSCRIPTIONS)

    def activate(
        self,
        organization_id: str,
        instance_id: str,
        user_id: str,
        footprint: str | None,
        now: datetime,
        token_kind: TokenKind = TokenKind.REGISTRATION_TOKEN,
    ) -> bool:
        reference = self._subscriptions(organization_id).document(subscription_id(instance_id))

        @firestore.transactional
        def activate_in(transaction: firestore.Transaction) -> bool:
            snapshot = reference.get(transaction=transaction)
            stored = snapshot.to_dict() if snapshot.exists else None
            if stored is not None and stored.get("status") == Status.ACTIVE.value:
                refresh: dict[str, Any] = {
                    "user_id": user_id,
                    "token_kind": token_kind.value,
                    "last_seen_at": now,
                }
                if footprint is not None:
                    refresh["browser_footprint"] = footprint
                transaction.update(reference, refresh)
                return False
            transaction.set(
                reference,
                {
                    "id": reference.id,
                    "instance_id": instance_id,
                    "token_kind": token_kind.value,
                    "user_id": user_id,
                    "browser_footprint": footprint,
                    "status": Status.ACTIVE.value,
                    "created_at": now,
                    "last_seen_at": now,
                },
            )
            return True

        return bool(activate_in(self._client.transaction()))

    def deactivate_token(
        self,
        organization_id: str,
        instance_id: str,
        reason: UnsubscribeReason,
        now: datetime,
        purge_by: datetime,
    ) -> int:
        reference = self._subscriptions(organization_id).document(subscription_id(instance_id))

        @firestore.transactional
        def deactivate_in(transaction: firestore.Transaction) -> int:
            snapshot = reference.get(transaction=transaction, field_paths=["status"])
            if not snapshot.exists or snapshot.get("status") != Status.ACTIVE.value:
                return 0
            transaction.update(reference, firestore_tombstone(reason, now, purge_by))
            return 1

        return int(deactivate_in(self._client.transaction()))

    def deactivate_user(
        self,
        organization_id: str,
        user_id: str,
        reason: UnsubscribeReason,
        now: datetime,
        purge_by: datetime,
    ) -> int:
        query = (
            self._subscriptions(organization_id)
            .where(filter=FieldFilter("user_id", "==", user_id))
            .where(filter=FieldFilter("status", "==", Status.ACTIVE.value))
        )
        tombstone = firestore_tombstone(reason, now, purge_by)
        return self._write_each(query, lambda batch, ref: batch.update(ref, tombstone))

    def delete_user(self, organization_id: str, user_id: str) -> int:
        query = self._subscriptions(organization_id).where(
            filter=FieldFilter("user_id", "==", user_id)
        )
        return self._write_each(query, lambda batch, ref: batch.delete(ref))

    def active_devices(self, organization_id: str, user_ids: Sequence[str]) -> list[Device]:
        active = self._subscriptions(organization_id).where(
            filter=FieldFilter("status", "==", Status.ACTIVE.value)
        )
        wanted = set(user_ids)
        if len(wanted) > _SCAN_ABOVE:
            # One pass over the organization's active devices beats hundreds of "in" queries
            # (30 values each): measured on the emulator, 0.7 s for 5,000 devices against 0.35 s
            # per "in" query. Reads stay bounded by the organization's own active devices.
            matches = active.select(list(_DEVICE_FIELDS)).stream()
            return [_device(m) for m in matches if m.get("user_id") in wanted]
        found: list[Device] = []
        ordered = sorted(wanted)
        for start in range(0, len(ordered), _IN_LIMIT):
            chunk = ordered[start : start + _IN_LIMIT]
            query = active.where(filter=FieldFilter("user_id", "in", chunk))
            found += [_device(m) for m in query.select(list(_DEVICE_FIELDS)).stream()]
        return found

    def retire(
        self,
        organization_id: str,
        subscription_ids: Sequence[str],
        reason: UnsubscribeReason,
        now: datetime,
        purge_by: datetime,
    ) -> int:
        collection = self._subscriptions(organization_id)
        tombstone = firestore_tombstone(reason, now, purge_by)
        for start in range(0, len(subscription_ids), BATCH_LIMIT):
            batch = self._client.batch()
            for sid in subscription_ids[start : start + BATCH_LIMIT]:
                # merge: a subscription deleted meanwhile (its user removed) must not fail the batch
                batch.set(collection.document(sid), tombstone, merge=True)
            batch.commit()
        return len(subscription_ids)

    def _write_each(self, query: firestore.Query, write: Any) -> int:
        """Apply ``write(batch, reference)`` to every match, a batch per BATCH_LIMIT documents."""
        count = 0
        for page in _pages(query):
            batch = self._client.batch()
            for reference in page:
                write(batch, reference)
            batch.commit()
            count += len(page)
        return count


_DEVICE_FIELDS = ("user_id", "instance_id", "token_kind")


def _device(snapshot: Any) -> Device:
    fields = snapshot.to_dict()
    return Device(
        subscription_id=snapshot.id,
        user_id=fields["user_id"],
        instance_id=fields["instance_id"],
        token_kind=fields.get("token_kind") or TokenKind.REGISTRATION_TOKEN,
    )


def _pages(query: firestore.Query) -> Iterator[list[firestore.DocumentReference]]:
    # Only ids are read (select no fields), a page at a time, so memory stays bounded.
    page: list[firestore.DocumentReference] = []
    for snapshot in query.select([]).stream():
        page.append(snapshot.reference)
        if len(page) == BATCH_LIMIT:
            yield page
            page = []
    if page:
        yield page
