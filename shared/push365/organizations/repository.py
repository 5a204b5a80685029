"""Where organizations are kept: the port, and its Firestore adapter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore

from push365.organizations.model import Organization
from push365.store import CONTENDED_ATTEMPTS, ORGANIZATIONS, transact

_CREDENTIALS = ["api_key_hash", "previous_key_hash", "previous_key_until"]


@dataclass(frozen=True)
class Credentials:
    """What authentication compares against: the key's hash, and the previous key's while its
    overlap lasts."""

    key_hash: str | None
    previous_hash: str | None = None
    previous_until: datetime | None = None


class OrganizationRepository(Protocol):
    """The storage port the organization use cases need."""

    def get(self, organization_id: str) -> Organization | None:
        """The organization, or None when it is not registered."""
        ...

    def add(self, organization: Organization) -> bool:
        """Store a new organization; False (and nothing written) when the id is taken."""
        ...

    def update_profile(self, organization_id: str, updates: dict[str, Any], now: datetime) -> None:
        """Apply field-path updates to the organization's profile."""
        ...

    def credentials(self, organization_id: str) -> Credentials | None:
        """The key hashes only (a small read, the same for every organization), or None."""
        ...

    def rotate_key(self, organization_id: str, keys: Credentials, now: datetime) -> None:
        """Store new key hashes: the previous one keeps working until ``previous_until``."""
        ...

    def revoke_previous(self, organization_id: str, now: datetime) -> None:
        """The previous key stops working now."""
        ...

    def confirm_email(self, organization_id: str, token_hash: str, now: datetime) -> str | None:
        """Atomically move the address waiting for this token to the confirmed ones; the
        address, or None when no address waits for it."""
        ...

    def set_rules(self, organization_id: str, rules: list[dict[str, Any]], now: datetime) -> None:
        """Replace the organization's event rules."""
        ...

    def claim_alert(self, organization_id: str, now: datetime, interval: timedelta) -> bool:
        """Atomically: True (and remember ``now``) unless an alert went out within ``interval``."""
        ...


class FirestoreOrganizationRepository:
    """Organizations in ``organizations/{id}``."""

    def __init__(self, client: firestore.Client) -> None:
        self._client = client
        self._collection = client.collection(ORGANIZATIONS)

    def get(self, organization_id: str) -> Organization | None:
        snapshot = self._collection.document(organization_id).get()
        return Organization.model_validate(snapshot.to_dict()) if snapshot.exists else None

    def add(self, organization: Organization) -> bool:
        try:
            self._collection.document(organization.id).create(organization.model_dump())
        except AlreadyExists:
            return False
        return True

    def update_profile(self, organization_id: str, updates: dict[str, Any], now: datetime) -> None:
        self._collection.document(organization_id).update({**updates, "updated_at": now})

    def credentials(self, organization_id: str) -> Credentials | None:
        snapshot = self._collection.document(organization_id).get(field_paths=_CREDENTIALS)
        if not snapshot.exists:
            return None
        fields = snapshot.to_dict() or {}
        return Credentials(
            fields.get("api_key_hash"),
            fields.get("previous_key_hash"),
            fields.get("previous_key_until"),
        )

    def rotate_key(self, organization_id: str, keys: Credentials, now: datetime) -> None:
        self._collection.document(organization_id).update(
            {
                "api_key_hash": keys.key_hash,
                "previous_key_hash": keys.previous_hash,
                "previous_key_until": keys.previous_until,
                "updated_at": now,
            }
        )

    def revoke_previous(self, organization_id: str, now: datetime) -> None:
        self._collection.document(organization_id).update(
            {"previous_key_hash": None, "previous_key_until": None, "updated_at": now}
        )

    def confirm_email(self, organization_id: str, token_hash: str, now: datetime) -> str | None:
        reference = self._collection.document(organization_id)

        @firestore.transactional
        def confirm_in(transaction: firestore.Transaction) -> str | None:
            snapshot = reference.get(
                transaction=transaction, field_paths=["pending_emails", "confirmed_emails"]
            )
            fields = (snapshot.to_dict() or {}) if snapshot.exists else {}
            pending = dict(fields.get("pending_emails") or {})
            email = pending.pop(token_hash, None)
            if email is None:
                return None
            confirmed = list(dict.fromkeys([*(fields.get("confirmed_emails") or []), email]))
            transaction.update(
                reference,
                {"pending_emails": pending, "confirmed_emails": confirmed, "updated_at": now},
            )
            return str(email)

        return transact(confirm_in, self._client.transaction(max_attempts=CONTENDED_ATTEMPTS))  # type: ignore[no-any-return]

    def set_rules(self, organization_id: str, rules: list[dict[str, Any]], now: datetime) -> None:
        self._collection.document(organization_id).update({"rules": rules, "updated_at": now})

    def claim_alert(self, organization_id: str, now: datetime, interval: timedelta) -> bool:
        reference = self._collection.document(organization_id)

        @firestore.transactional
        def claim_in(transaction: firestore.Transaction) -> bool:
            snapshot = reference.get(
                transaction=transaction, field_paths=["last_delivery_alert_at"]
            )
            last = snapshot.get("last_delivery_alert_at") if snapshot.exists else None
            if not snapshot.exists or (last is not None and now - last < interval):
                return False
            transaction.update(reference, {"last_delivery_alert_at": now})
            return True

        return bool(claim_in(self._client.transaction()))
