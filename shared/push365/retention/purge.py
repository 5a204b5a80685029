"""Purge: delete what retention says is due, in bounded pages, idempotently.

Each kind is one indexed range query (``retention/rules.py``), read a page at a time with a
cursor and deleted in batches of 500, so memory stays bounded and the cost follows what is due,
not what is stored. Stopping at any point leaves only documents that are still due: the next run
finishes the job.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from google.api_core.exceptions import FailedPrecondition, NotFound
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from push365.retention import unsubscribed_purge_by
from push365.retention.rules import RetentionRule
from push365.store import (
    BATCH_LIMIT,
    ORGANIZATIONS,
    SUBSCRIPTIONS,
    bounded,
    delete_organization_tree,
)
from push365.subscriptions.model import Status, UnsubscribeReason
from push365.subscriptions.repository import firestore_tombstone, owned_entries, unindex_devices

READ_PAGE = 5000
"""Documents read per query: few round trips, a bounded amount in memory (ids and two fields)."""


class RetentionStore(Protocol):
    """The storage port purge needs."""

    def due_pages(self, rule: RetentionRule, as_of: datetime) -> Iterator[Sequence[Any]]:
        """Due documents, a page at a time."""
        ...

    def delete(self, rule: RetentionRule, page: Sequence[Any]) -> int:
        """Delete a page of due documents; how many were deleted."""
        ...

    def tombstone(self, rule: RetentionRule, page: Sequence[Any], as_of: datetime) -> int:
        """Unsubscribe a page of stale subscriptions at ``as_of``; how many were."""
        ...


class Purger:
    """Runs every retention rule."""

    def __init__(self, store: RetentionStore, rules: Sequence[RetentionRule]) -> None:
        self._store = store
        self._rules = rules

    def purge(self, as_of: datetime, dry_run: bool = False) -> dict[str, int]:
        """Delete (or, on a dry run, count) everything due at ``as_of``; counts per kind."""
        counts: dict[str, int] = {}
        for rule in self._rules:
            count = 0
            for page in self._store.due_pages(rule, as_of):
                if dry_run:
                    count += len(page)
                elif rule.tombstone_days is not None:
                    count += self._store.tombstone(rule, page, as_of)
                else:
                    count += self._store.delete(rule, page)
            counts[rule.kind] = count
        return counts


class FirestoreRetentionStore:
    """Due documents found by collection-group range queries on the retention fields."""

    def __init__(
        self, client: firestore.Client, page_size: int = READ_PAGE, timeout_seconds: float = 10.0
    ) -> None:
        self._client = client
        self._page_size = page_size
        self._bounded = bounded(timeout_seconds)

    def due_pages(self, rule: RetentionRule, as_of: datetime) -> Iterator[Sequence[Any]]:
        source: Any = (
            self._client.collection(rule.collection)
            if rule.top_level
            else self._client.collection_group(rule.collection)
        )
        if rule.status is not None:
            source = source.where(filter=FieldFilter("status", "==", rule.status))
        query = (
            source.where(filter=FieldFilter(rule.field, "<=", rule.cutoff(as_of)))
            .order_by(rule.field)
            # (a subscription's user too: its record's list of devices loses it in the same write)
            .select(
                [rule.field, "status", *(["user_id"] if rule.collection == SUBSCRIPTIONS else [])]
            )
            .limit(self._page_size)
        )
        cursor = None
        while True:
            page = list((query.start_after(cursor) if cursor else query).get(**self._bounded))
            if not page:
                return
            yield page
            if len(page) < self._page_size:
                return
            cursor = page[-1]

    def delete(self, rule: RetentionRule, page: Sequence[Any]) -> int:
        if rule.collection == ORGANIZATIONS:
            for snapshot in page:
                delete_organization_tree(self._client, snapshot.id)
            return len(page)
        deleted = 0
        for start in range(0, len(page), BATCH_LIMIT):
            chunk = page[start : start + BATCH_LIMIT]
            if rule.kind == "subscriptions":
                # Never an active one; and not one that changed since it was read (re-subscribed).
                chunk = [s for s in chunk if s.get("status") == Status.UNSUBSCRIBED.value]
                deleted += self._delete_unchanged(chunk)
                continue
            batch = self._client.batch()
            for snapshot in chunk:
                batch.delete(snapshot.reference)
            batch.commit()
            deleted += len(chunk)
        return deleted

    def tombstone(self, rule: RetentionRule, page: Sequence[Any], as_of: datetime) -> int:
        assert rule.tombstone_days is not None
        purge_by = unsubscribed_purge_by(as_of, rule.tombstone_days)
        fields = firestore_tombstone(UnsubscribeReason.STALE, as_of, purge_by)
        marked = 0
        step = BATCH_LIMIT // 3  # each with its user's list and its token's owner entry
        for start in range(0, len(page), step):
            # Not one its browser refreshed (or unsubscribed) since it was read.
            chunk = [s for s in page[start : start + step] if s.get("status") == rule.status]
            # (their tokens' owner entries go with them: the tokens are free again)
            owned = owned_entries(self._client, [s.reference for s in chunk])
            marked += self._unchanged_each(
                chunk, lambda b, s, owned=owned: self._unsubscribe(b, s, fields, owned)
            )
        return marked

    def _unsubscribe(
        self, batch: Any, snapshot: Any, fields: dict[str, Any], owned: dict[str, Any]
    ) -> None:
        batch.update(snapshot.reference, fields, option=self._unchanged(snapshot))
        user_id = (snapshot.to_dict() or {}).get("user_id")
        if isinstance(user_id, str):
            unindex_devices(batch, [snapshot.reference], user_id)
        entry = owned.get(snapshot.reference.path)
        if entry is not None:
            batch.delete(entry)

    def _delete_unchanged(self, page: Sequence[Any]) -> int:
        return self._unchanged_each(
            page, lambda b, s: b.delete(s.reference, option=self._unchanged(s))
        )

    def _unchanged_each(self, page: Sequence[Any], write: Any) -> int:
        """``write(batch, snapshot)`` for each, preconditioned on it being unchanged: in one batch,
        or, when one changed meanwhile, the others one by one. How many were written."""
        if not page:
            return 0
        batch = self._client.batch()
        for snapshot in page:
            write(batch, snapshot)
        try:
            batch.commit()
            return len(page)
        except (FailedPrecondition, NotFound):
            pass  # one changed meanwhile: the others one by one
        written = 0
        for snapshot in page:
            single = self._client.batch()
            write(single, snapshot)
            try:
                single.commit()
                written += 1
            except (FailedPrecondition, NotFound):
                continue
        return written

    def _unchanged(self, snapshot: Any) -> Any:
        return self._client.write_option(last_update_time=snapshot.update_time)
