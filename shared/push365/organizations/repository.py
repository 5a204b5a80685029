"""Where organizations are kept: the port, and its Firestore adapter."""

from __future__ import annotations

from datetime import datetime
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


class FirestoreOrganizationRepository:
    """Organizations in ``organizations/{id}``."""

    def __init__(self, client: firestore.Client) -> None:
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
