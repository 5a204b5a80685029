"""Where quota counters are kept: the port, and its Firestore adapter.

Layout: ``organizations/{id}/quotas/{route}-{period}-{window}[-{shard}]`` for an organization's
quotas; ``throttles/{sha256(scope)}-{window}[-{shard}]`` for a caller's or a route's (the
registration throttles' collection). Each counter carries ``expire_at`` (the end of its window):
Firestore's TTL policy deletes it after that; erasing the organization deletes its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from google.cloud import firestore

from push365.retention import TTL_FIELD
from push365.store import bounded

COUNT = "count"


@dataclass(frozen=True)
class CounterKey:
    """One counter document: its path and when its window ends."""

    path: tuple[str, ...]
    expires_at: datetime


class QuotaCounter(Protocol):
    """The storage port the quotas need."""

    def hit(self, keys: Sequence[CounterKey]) -> list[int]:
        """Count one call on each counter, atomically, in one commit; each one's count now."""
        ...


def count_hits(
    client: firestore.Client, hits: Sequence[tuple[Any, datetime]], seconds: float
) -> list[int]:
    """Increment ``count`` on each document (creating it with its ``expire_at``) in one commit,
    and answer each one's new count: Firestore returns a transform's result in the commit's
    answer, so no read follows and no transaction can be aborted by a burst."""
    batch = client.batch()
    for reference, expires_at in hits:
        batch.set(reference, {COUNT: firestore.Increment(1), TTL_FIELD: expires_at}, merge=True)
    results = batch.commit(**bounded(seconds))
    return [int(result.transform_results[0].integer_value) for result in results]


class FirestoreQuotaCounter:
    """Quota counters in Firestore (see the module's layout)."""

    def __init__(self, client: firestore.Client, timeout_seconds: float) -> None:
        self._client = client
        self._seconds = timeout_seconds

    def _reference(self, key: CounterKey) -> firestore.DocumentReference:
        return self._client.document(*key.path)

    def hit(self, keys: Sequence[CounterKey]) -> list[int]:
        return count_hits(
            self._client, [(self._reference(k), k.expires_at) for k in keys], self._seconds
        )
