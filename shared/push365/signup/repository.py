"""Where signup codes and throttle counters are kept: the port, and its Firestore adapter."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from google.cloud import firestore

from push365.quotas.repository import count_hits
from push365.retention import TTL_FIELD
from push365.store import CONTENDED_ATTEMPTS, SIGNUP_CODES, THROTTLES

THROTTLE_SECONDS = 8.0
"""How long counting one attempt may take (the store timeout's default)."""


class SignupRepository(Protocol):
    """The storage port the signup use cases need."""

    def add(
        self, code_hash: str, organization_id: str, expires_at: datetime, now: datetime
    ) -> None:
        """Store a new code (its hash), bound to one organization id."""
        ...

    def redeem(self, code_hash: str, organization_id: str, now: datetime) -> bool:
        """Atomically: mark the code used and True, when it exists, is unused, unexpired and
        bound to ``organization_id``; else False and nothing changes."""
        ...

    def hit(self, scope_hash: str, window: int, expires_at: datetime) -> int:
        """Count one attempt for ``scope_hash`` in ``window``; the attempts so far in it."""
        ...

    def count(self, scope_hash: str, window: int) -> int:
        """The attempts counted for ``scope_hash`` in ``window`` so far (nothing counted)."""
        ...


class FirestoreSignupRepository:
    """Codes in ``signup_codes/{sha256(code)}``, counters in ``throttles/{scope}-{window}``."""

    def __init__(self, client: firestore.Client) -> None:
        self._client = client

    def add(
        self, code_hash: str, organization_id: str, expires_at: datetime, now: datetime
    ) -> None:
        self._client.collection(SIGNUP_CODES).document(code_hash).create(
            {
                "organization_id": organization_id,
                "created_at": now,
                "expires_at": expires_at,
                "used_at": None,
                TTL_FIELD: expires_at,
            }
        )

    def redeem(self, code_hash: str, organization_id: str, now: datetime) -> bool:
        reference = self._client.collection(SIGNUP_CODES).document(code_hash)

        @firestore.transactional
        def redeem_in(transaction: firestore.Transaction) -> bool:
            snapshot = reference.get(transaction=transaction)
            if not snapshot.exists:
                return False
            code = snapshot.to_dict() or {}
            if (
                code.get("used_at") is not None
                or code.get("organization_id") != organization_id
                or code["expires_at"] <= now
            ):
                return False
            transaction.update(reference, {"used_at": now})
            return True

        return bool(redeem_in(self._client.transaction(max_attempts=CONTENDED_ATTEMPTS)))

    def hit(self, scope_hash: str, window: int, expires_at: datetime) -> int:
        # An increment needs no transaction: a burst of attempts never aborts one another.
        reference = self._client.collection(THROTTLES).document(f"{scope_hash}-{window}")
        (count,) = count_hits(self._client, [(reference, expires_at)], THROTTLE_SECONDS)
        return count

    def count(self, scope_hash: str, window: int) -> int:
        reference = self._client.collection(THROTTLES).document(f"{scope_hash}-{window}")
        snapshot = reference.get(field_paths=["count"])
        return int((snapshot.to_dict() or {}).get("count") or 0) if snapshot.exists else 0
