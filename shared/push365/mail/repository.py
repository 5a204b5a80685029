"""Where the mail limits' counters are kept: the Firestore adapter of ``MailCounters``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from google.cloud import firestore

from push365.retention import TTL_FIELD
from push365.store import THROTTLES


class FirestoreMailCounters:
    """Counters in ``throttles/{scope hash}-{window}`` (the registration throttles' shape: a
    count and the TTL field): one batch of increments, then one read of them all."""

    def __init__(self, client: firestore.Client) -> None:
        self._client = client

    def add(self, counts: Mapping[str, int], window: int, expires_at: datetime) -> dict[str, int]:
        collection = self._client.collection(THROTTLES)
        references = {scope: collection.document(f"{scope}-{window}") for scope in counts}
        batch = self._client.batch()
        for scope, count in counts.items():
            # increments, not a transaction: a burst of claims never aborts one another
            batch.set(
                references[scope],
                {"count": firestore.Increment(count), TTL_FIELD: expires_at},
                merge=True,
            )
        batch.commit()
        totals = {scope: 0 for scope in counts}
        by_path = {reference.path: scope for scope, reference in references.items()}
        for snapshot in self._client.get_all(list(references.values()), field_paths=["count"]):
            if snapshot.exists:
                totals[by_path[snapshot.reference.path]] = int(snapshot.get("count") or 0)
        return totals

    def claim(self, scope: str, wanted: int, cap: int, window: int, expires_at: datetime) -> int:
        # One increment, its new count read from the commit's answer (as the quotas count): no
        # transaction, so concurrent claims never wait on one another's lock or abort; the
        # count may pass the cap, and every claim after that is granted nothing.
        reference = self._client.collection(THROTTLES).document(f"{scope}-{window}")
        batch = self._client.batch()
        batch.set(
            reference, {"count": firestore.Increment(wanted), TTL_FIELD: expires_at}, merge=True
        )
        (result,) = batch.commit()
        before = int(result.transform_results[0].integer_value) - wanted
        return max(0, min(wanted, cap - before))
