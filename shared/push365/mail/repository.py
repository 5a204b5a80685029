"""Where the mail limits' counters are kept: the Firestore adapter of ``MailCounters``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from google.cloud import firestore

from push365.retention import TTL_FIELD
from push365.store import CONTENDED_ATTEMPTS, THROTTLES, transact


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
        reference = self._client.collection(THROTTLES).document(f"{scope}-{window}")

        @firestore.transactional
        def claim_in(transaction: firestore.Transaction) -> int:
            snapshot = reference.get(transaction=transaction, field_paths=["count"])
            count = int((snapshot.to_dict() or {}).get("count") or 0) if snapshot.exists else 0
            granted = max(0, min(wanted, cap - count))
            if granted:
                transaction.set(reference, {"count": count + granted, TTL_FIELD: expires_at})
            return granted

        # (transact: a store that does not answer is its own error, a 503, never a 500)
        return int(transact(claim_in, self._client.transaction(max_attempts=CONTENDED_ATTEMPTS)))
