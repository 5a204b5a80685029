"""Where organizations are kept: the port, and its Firestore adapter."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore

from push365.organizations.model import Organization
from push365.store import ORGANIZATIONS


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

    def set_key_hash(self, organization_id: str, key_hash: str, now: datetime) -> None:
        """Replace the organization's API key hash: the old key stops working at once."""
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

    def set_key_hash(self, organization_id: str, key_hash: str, now: datetime) -> None:
        self._collection.document(organization_id).update(
            {"api_key_hash": key_hash, "updated_at": now}
        )

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
