"""Where subscriptions are kept: the port, and its Firestore adapter."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from google.api_core.exceptions import Conflict, FailedPrecondition, NotFound
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from push365.errors import TokenHeld
from push365.retention import TTL_FIELD
from push365.seams import firestore as firestore_seam
from push365.store import (
    BATCH_LIMIT,
    CONTENDED_ATTEMPTS,
    ORGANIZATIONS,
    OWNER_FIELD,
    SUBSCRIPTIONS,
    TOKEN_OWNERS,
    USERS,
    bounded,
    get_rows,
    stream_rows,
)
from push365.subscriptions.model import (
    Device,
    Status,
    TokenKind,
    UnsubscribeReason,
    subscription_id,
)

_IN_LIMIT = 30  # values in one Firestore "in" filter
ACTIVE_DEVICES_QUERY_FIELDS = ("status", "user_id")
"""The fields ``active_subscription_ids`` filters on together (one composite index)."""
PLAN_STREAM_SECONDS = 40.0
"""The most the one query a large send's plan streams may take (deliver has 60 s; the plan
hands on to a continuation after 30, resuming after its cursor)."""
SCAN_ABOVE = 10 * _IN_LIMIT  # recipients above which one scan of active devices is cheaper
SEEN_RESOLUTION = timedelta(days=1)
"""How stale ``last_seen_at`` may be before a sign of life writes it again (staleness is counted
in tens of days: a write per receipt would cost a write per notification shown)."""
DEVICES_FIELD = "devices"
"""On each user's record: the ids of the user's active subscriptions, written in the same commit
as the subscription itself (activated, moved, unsubscribed, retired, gone stale). A send to a few
users finds their devices by key, so its cost follows the recipients, not the organization."""
DEVICES_LISTED = "devices_listed"
"""True on a user record whose ``devices`` lists every active subscription of the user: one
created since the lists exist (by subscribe or by the users' sync), when the user had none. A
record kept from before has no such mark, and its user's devices are found by the query, however
its ``devices`` reads (a change to one subscription lists that one alone)."""


def _user_of(subscription: firestore.DocumentReference, user_id: str) -> Any:
    organization = subscription.parent.parent
    assert organization is not None
    return organization.collection(USERS).document(user_id)


def index_device(writer: Any, subscription: firestore.DocumentReference, user_id: str) -> None:
    """In the same batch or transaction as ``subscription``'s activation: list it on its user."""
    writer.set(
        _user_of(subscription, user_id),
        {DEVICES_FIELD: firestore.ArrayUnion([subscription.id])},
        merge=True,
    )


def unindex_devices(
    writer: Any, subscriptions: Sequence[firestore.DocumentReference], user_id: str
) -> None:
    """In the same batch or transaction as the subscriptions' end: take them off their user.

    (A merge, so that a user record deleted meanwhile does not fail the commit: it comes back
    holding only an empty ``devices``, nothing about the person.)"""
    if subscriptions:
        writer.set(
            _user_of(subscriptions[0], user_id),
            {DEVICES_FIELD: firestore.ArrayRemove([s.id for s in subscriptions])},
            merge=True,
        )


OWNED_PAGE = (BATCH_LIMIT - 1) // 2
"""Subscriptions ended in one commit when each may also free its token's owner entry (and one
user's list of devices is written with them)."""


def owner_entry(subscription: firestore.DocumentReference) -> firestore.DocumentReference:
    """``token_owners/{id}``: which organization's active subscription the token is. One token
    belongs to one organization: all organizations share one FCM project, so a token another
    organization subscribed would let it push to a browser that never opted in to it."""
    client = firestore_seam.client_of(subscription)
    return client.collection(TOKEN_OWNERS).document(subscription.id)


def organization_of(subscription: firestore.DocumentReference) -> str:
    """The organization a subscription is stored under."""
    organization = subscription.parent.parent
    assert organization is not None
    return str(organization.id)


def release_tokens(
    client: firestore.Client,
    writer: Any,
    subscriptions: Sequence[firestore.DocumentReference],
    timeout: float = 10.0,
) -> None:
    """In the same batch as these subscriptions' end (tombstone or delete): their tokens' owner
    entries go, each only if it names the subscription's own organization (never another's)."""
    for entry in owned_entries(client, subscriptions, timeout).values():
        writer.delete(entry)


def owned_entries(
    client: firestore.Client,
    subscriptions: Sequence[firestore.DocumentReference],
    timeout: float = 10.0,
) -> dict[str, firestore.DocumentReference]:
    """Subscription path -> its token's owner entry, for those whose entry names the
    subscription's own organization (one read for all)."""
    if not subscriptions:
        return {}
    entries = [owner_entry(s) for s in subscriptions]
    owners = dict(get_rows(client, entries, [OWNER_FIELD], timeout))
    return {
        subscription.path: entry
        for subscription, entry in zip(subscriptions, entries, strict=True)
        if owners.get(entry.id, {}).get(OWNER_FIELD) == organization_of(subscription)
    }


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
        """Make the token (of this kind) an active subscription of the user, atomically, and
        the organization the token's owner (in the same commit).

        Returns:
            True when the token had no active subscription before (a new one).

        Raises:
            TokenHeld: the token is an active subscription of another organization.
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

    def active_subscription_ids(self, organization_id: str, user_ids: Sequence[str]) -> list[str]:
        """The ids of the users' active subscriptions, sorted (ids only: no token is read)."""
        ...

    def active_subscription_ids_after(
        self, organization_id: str, user_ids: Sequence[str], after: str | None
    ) -> Iterator[str]:
        """The users' active subscription ids after ``after``, in id order, a page at a time
        (so that planning can stop and resume anywhere)."""
        ...

    def active_devices_by_id(
        self,
        organization_id: str,
        subscription_ids: Sequence[str],
        seen_since: datetime | None = None,
    ) -> dict[str, Device]:
        """Of these subscriptions, the ones active right now (and, with ``seen_since``, not
        stale: refreshed by their browser since then), by id."""
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

    def seen(self, organization_id: str, subscription_id: str, now: datetime) -> bool:
        """Its browser showed a notification: an active subscription's ``last_seen_at`` becomes
        ``now`` (written at most once per SEEN_RESOLUTION); whether it was written."""
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


def new_subscription(
    document_id: str,
    instance_id: str,
    token_kind: TokenKind,
    user_id: str,
    footprint: str | None,
    now: datetime,
) -> dict[str, Any]:
    """A subscription as first stored: active, seen now."""
    return {
        "id": document_id,
        "instance_id": instance_id,
        "token_kind": token_kind.value,
        "user_id": user_id,
        "browser_footprint": footprint,
        "status": Status.ACTIVE.value,
        "created_at": now,
        "last_seen_at": now,
    }


class FirestoreSubscriptionRepository:
    """Subscriptions in ``organizations/{org}/subscriptions/{sha256(token)}``."""

    def __init__(self, client: firestore.Client, timeout_seconds: float = 10.0) -> None:
        self._client = client
        # The reads and writes of a send give up within the timeout, retries included.
        self._bounded = bounded(timeout_seconds)
        self._timeout = timeout_seconds

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
        fresh = new_subscription(reference.id, instance_id, token_kind, user_id, footprint, now)
        refresh: dict[str, Any] = {
            "user_id": user_id,
            "token_kind": token_kind.value,
            "last_seen_at": now,
        }
        if footprint is not None:
            refresh["browser_footprint"] = footprint
        owner = owner_entry(reference)
        claim = {OWNER_FIELD: organization_id}
        # Identical subscribes at once (a page opened twice, Dataverse retrying) need no
        # transaction, which they would abort for one another: the first creates; the others
        # refresh it only if nothing wrote it since they read it (else another one just did).
        # Each write lists the subscription on its user's record in the same commit, and a new
        # one claims its token (a token another organization holds fails the create).
        try:
            created = self._client.batch()
            created.create(reference, fresh)
            created.create(owner, claim)
            index_device(created, reference, user_id)
            created.commit()
            return True
        except Conflict:
            pass
        read = {s.reference.path: s for s in self._client.get_all([reference, owner])}
        snapshot = read[reference.path]
        stored = snapshot.to_dict() or {}
        holder = (read[owner.path].to_dict() or {}).get(OWNER_FIELD)
        if (
            holder == organization_id
            and stored.get("status") == Status.ACTIVE.value
            and (stored.get("user_id"), stored.get("token_kind")) == (user_id, token_kind.value)
        ):
            unchanged = self._client.write_option(last_update_time=snapshot.update_time)
            refreshed = self._client.batch()
            refreshed.update(reference, refresh, option=unchanged)
            # (again: a subscription stored before users listed their devices gets listed)
            index_device(refreshed, reference, user_id)
            with contextlib.suppress(FailedPrecondition):
                refreshed.commit()
            return False

        @firestore.transactional
        def activate_in(transaction: firestore.Transaction) -> bool:
            snapshot = reference.get(transaction=transaction)
            stored = snapshot.to_dict() if snapshot.exists else None
            held = owner.get(transaction=transaction)
            holder = (held.to_dict() or {}).get(OWNER_FIELD) if held.exists else None
            if holder not in (None, organization_id) and self._active_in(
                str(holder), reference.id, transaction
            ):
                raise TokenHeld()  # (an entry whose subscription ended is taken over)
            if holder != organization_id:
                transaction.set(owner, claim)
            index_device(transaction, reference, user_id)
            if stored is not None and stored.get("status") == Status.ACTIVE.value:
                if stored.get("user_id") not in (None, user_id):  # moved to another user
                    unindex_devices(transaction, [reference], stored["user_id"])
                transaction.update(reference, refresh)
                return False
            transaction.set(reference, fresh)
            return True

        return bool(activate_in(self._client.transaction(max_attempts=CONTENDED_ATTEMPTS)))

    def _active_in(
        self, organization_id: str, subscription_id: str, transaction: firestore.Transaction
    ) -> bool:
        """Whether the subscription is active in that organization (read in the transaction)."""
        theirs = self._subscriptions(organization_id).document(subscription_id)
        snapshot = theirs.get(transaction=transaction, field_paths=["status"])
        return bool(snapshot.exists and snapshot.get("status") == Status.ACTIVE.value)

    def deactivate_token(
        self,
        organization_id: str,
        instance_id: str,
        reason: UnsubscribeReason,
        now: datetime,
        purge_by: datetime,
    ) -> int:
        reference = self._subscriptions(organization_id).document(subscription_id(instance_id))

        owner = owner_entry(reference)

        @firestore.transactional
        def deactivate_in(transaction: firestore.Transaction) -> int:
            snapshot = reference.get(transaction=transaction, field_paths=["status", "user_id"])
            if not snapshot.exists or snapshot.get("status") != Status.ACTIVE.value:
                return 0
            held = owner.get(transaction=transaction, field_paths=[OWNER_FIELD])
            transaction.update(reference, firestore_tombstone(reason, now, purge_by))
            unindex_devices(transaction, [reference], snapshot.get("user_id"))
            if held.exists and held.get(OWNER_FIELD) == organization_id:
                transaction.delete(owner)  # the token is free for any organization again
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
        count = 0
        for page in _pages(query, self._bounded, OWNED_PAGE):
            batch = self._client.batch()
            for reference in page:
                batch.update(reference, tombstone)
            unindex_devices(batch, page, user_id)
            release_tokens(self._client, batch, page, self._timeout)
            batch.commit()
            count += len(page)
        return count

    def delete_user(self, organization_id: str, user_id: str) -> int:
        query = self._subscriptions(organization_id).where(
            filter=FieldFilter("user_id", "==", user_id)
        )
        count = 0
        for page in _pages(query, self._bounded, OWNED_PAGE):
            batch = self._client.batch()
            for reference in page:
                batch.delete(reference)
            release_tokens(self._client, batch, page, self._timeout)
            batch.commit()
            count += len(page)
        return count

    def active_subscription_ids(self, organization_id: str, user_ids: Sequence[str]) -> list[str]:
        active = self._subscriptions(organization_id).where(
            filter=FieldFilter("status", "==", Status.ACTIVE.value)
        )
        wanted = set(user_ids)
        if len(wanted) > SCAN_ABOVE:
            matches = active.select(["user_id"]).stream(**self._bounded)
            return sorted(m.id for m in matches if m.get("user_id") in wanted)
        # A few users: their records list their devices (read by key), each checked by key.
        listed, unlisted = self._listed_devices(organization_id, sorted(wanted))
        found = [
            sid
            for sid, fields in self._rows(organization_id, sorted(listed), ["status", "user_id"])
            if fields.get("status") == Status.ACTIVE.value and fields.get("user_id") in wanted
        ]
        # Users whose record lists nothing yet (none, or kept from before devices were listed):
        # the indexed query on (status, user_id).
        for start in range(0, len(unlisted), _IN_LIMIT):
            query = active.where(
                filter=FieldFilter("user_id", "in", unlisted[start : start + _IN_LIMIT])
            )
            found += [m.id for m in query.select([]).stream(**self._bounded)]
        return sorted(set(found))

    def _listed_devices(
        self, organization_id: str, user_ids: list[str]
    ) -> tuple[set[str], list[str]]:
        """The subscription ids the users' records list, and the users whose record does not
        list them all (no record, or one kept from before the lists: no DEVICES_LISTED)."""
        users = self._client.collection(ORGANIZATIONS, organization_id, USERS)
        references = [users.document(u) for u in user_ids]
        listed: set[str] = set()
        unlisted = set(user_ids)
        for user_id, fields in get_rows(
            self._client, references, [DEVICES_FIELD, DEVICES_LISTED], self._timeout
        ):
            if fields.get(DEVICES_LISTED) is True:
                unlisted.discard(user_id)
                devices = fields.get(DEVICES_FIELD) or []
                listed.update(d for d in devices if isinstance(d, str))
        return listed, sorted(unlisted)

    def _rows(
        self, organization_id: str, subscription_ids: Sequence[str], fields: list[str]
    ) -> list[tuple[str, dict[str, Any]]]:
        collection = self._subscriptions(organization_id)
        references = [collection.document(sid) for sid in subscription_ids]
        return get_rows(self._client, references, fields, self._timeout)

    def active_subscription_ids_after(
        self, organization_id: str, user_ids: Sequence[str], after: str | None
    ) -> Iterator[str]:
        wanted = set(user_ids)
        if len(wanted) <= SCAN_ABOVE:
            # A few "in" queries: all at once, then resumed in memory.
            yield from (
                s
                for s in self.active_subscription_ids(organization_id, user_ids)
                if after is None or s > after
            )
            return
        collection = self._subscriptions(organization_id)
        active = collection.where(filter=FieldFilter("status", "==", Status.ACTIVE.value))
        # One query, read as it streams (pages of it cost the emulator a scan each).
        query = active.order_by("__name__").select(["user_id"])
        if after is not None:
            query = query.start_after({"__name__": collection.document(after)})
        # Closing this generator (the plan's time is up) closes the stream: gRPC cancels it.
        with contextlib.closing(stream_rows(query, PLAN_STREAM_SECONDS)) as rows:
            yield from (sid for sid, fields in rows if fields.get("user_id") in wanted)

    def active_devices_by_id(
        self,
        organization_id: str,
        subscription_ids: Sequence[str],
        seen_since: datetime | None = None,
    ) -> dict[str, Device]:
        found: dict[str, Device] = {}
        fields_read = [*_DEVICE_FIELDS, "status", "last_seen_at"]
        for sid, fields in self._rows(organization_id, subscription_ids, fields_read):
            if fields.get("status") != Status.ACTIVE.value:
                continue
            seen = fields.get("last_seen_at")
            if seen_since is not None and seen is not None and seen < seen_since:
                continue  # stale: purge unsubscribes it; never sent to meanwhile
            found[sid] = _device(sid, fields)
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
        owners = dict(self._rows(organization_id, subscription_ids, ["user_id"]))
        step = BATCH_LIMIT // 3  # with its user's list and its owner entry: at most BATCH_LIMIT
        for start in range(0, len(subscription_ids), step):
            batch = self._client.batch()
            by_user: dict[str, list[firestore.DocumentReference]] = {}
            for sid in subscription_ids[start : start + step]:
                # merge: a subscription deleted meanwhile (its user removed) must not fail the batch
                batch.set(collection.document(sid), tombstone, merge=True)
                user_id = owners.get(sid, {}).get("user_id")
                if isinstance(user_id, str):
                    by_user.setdefault(user_id, []).append(collection.document(sid))
            for user_id, references in by_user.items():
                unindex_devices(batch, references, user_id)
            chunk = [collection.document(sid) for sid in subscription_ids[start : start + step]]
            release_tokens(self._client, batch, chunk, self._timeout)
            batch.commit(**self._bounded)
        return len(subscription_ids)

    def seen(self, organization_id: str, subscription_id: str, now: datetime) -> bool:
        reference = self._subscriptions(organization_id).document(subscription_id)
        snapshot = reference.get(field_paths=["status", "last_seen_at"], **self._bounded)
        fields = snapshot.to_dict() or {}
        last = fields.get("last_seen_at")
        if fields.get("status") != Status.ACTIVE.value:
            return False  # gone, or unsubscribed: a receipt never brings it back
        if isinstance(last, datetime) and last > now - SEEN_RESOLUTION:
            return False
        # Not if it changed since it was read (unsubscribed meanwhile, or refreshed).
        unchanged = self._client.write_option(last_update_time=snapshot.update_time)
        try:
            reference.update({"last_seen_at": now}, option=unchanged, **self._bounded)
        except (FailedPrecondition, NotFound):
            return False
        return True


_DEVICE_FIELDS = ("user_id", "instance_id", "token_kind")


def _device(subscription_id: str, fields: dict[str, Any]) -> Device:
    return Device(
        subscription_id=subscription_id,
        user_id=fields["user_id"],
        instance_id=fields["instance_id"],
        token_kind=fields.get("token_kind") or TokenKind.REGISTRATION_TOKEN,
    )


def _pages(
    query: firestore.Query, bounded: dict[str, Any], size: int = BATCH_LIMIT
) -> Iterator[list[firestore.DocumentReference]]:
    # Only ids are read (select no fields), a page at a time, so memory stays bounded.
    page: list[firestore.DocumentReference] = []
    for snapshot in query.select([]).stream(**bounded):
        page.append(snapshot.reference)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page
