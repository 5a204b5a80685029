"""In-memory adapters for the repository ports, for fast unit tests of the use cases.

They keep documents as plain dicts shaped like the Firestore ones, so a test can inspect
exactly what would be stored.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from push365.organizations.model import Organization
from push365.subscriptions.model import (
    Device,
    Status,
    Subscription,
    UnsubscribeReason,
    subscription_id,
)
from push365.subscriptions.repository import tombstone_fields


class InMemoryOrganizationRepository:
    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}

    def get(self, organization_id: str) -> Organization | None:
        document = self.documents.get(organization_id)
        return Organization.model_validate(document) if document else None

    def add(self, organization: Organization) -> bool:
        if organization.id in self.documents:
            return False
        self.documents[organization.id] = organization.model_dump()
        return True

    def update_profile(self, organization_id: str, updates: dict[str, Any], now: datetime) -> None:
        document = self.documents[organization_id]
        for path, value in {**updates, "updated_at": now}.items():
            *parents, leaf = path.split(".")
            target = document
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = copy.deepcopy(value)

    def set_key_hash(self, organization_id: str, key_hash: str, now: datetime) -> None:
        self.documents[organization_id].update(api_key_hash=key_hash, updated_at=now)

    def set_rules(self, organization_id: str, rules: list[dict[str, Any]], now: datetime) -> None:
        self.documents[organization_id].update(rules=copy.deepcopy(rules), updated_at=now)


class InMemoryUserRepository:
    def __init__(self) -> None:
        self.documents: dict[tuple[str, str], dict[str, Any]] = {}

    def upsert_many(
        self, organization_id: str, users: Sequence[dict[str, Any]], now: datetime
    ) -> None:
        for fields in users:
            key = (organization_id, fields["id"])
            self.documents[key] = {**self.documents.get(key, {}), **fields, "updated_at": now}

    def ensure(self, organization_id: str, user_id: str, now: datetime) -> None:
        self.documents.setdefault(
            (organization_id, user_id), {"id": user_id, "created_at": now, "updated_at": now}
        )

    def delete(self, organization_id: str, user_id: str) -> bool:
        return self.documents.pop((organization_id, user_id), None) is not None


class InMemorySubscriptionRepository:
    def __init__(self) -> None:
        self.documents: dict[tuple[str, str], dict[str, Any]] = {}

    def activate(
        self,
        organization_id: str,
        instance_id: str,
        user_id: str,
        footprint: str | None,
        now: datetime,
    ) -> bool:
        key = (organization_id, subscription_id(instance_id))
        stored = self.documents.get(key)
        if stored is not None and stored["status"] == Status.ACTIVE:
            stored.update(user_id=user_id, last_seen_at=now)
            if footprint is not None:
                stored["browser_footprint"] = footprint
            return False
        self.documents[key] = {
            "id": key[1],
            "instance_id": instance_id,
            "user_id": user_id,
            "browser_footprint": footprint,
            "status": Status.ACTIVE.value,
            "created_at": now,
            "last_seen_at": now,
        }
        return True

    def deactivate_token(
        self,
        organization_id: str,
        instance_id: str,
        reason: UnsubscribeReason,
        now: datetime,
        purge_by: datetime,
    ) -> int:
        key = (organization_id, subscription_id(instance_id))
        stored = self.documents.get(key)
        if stored is None or stored["status"] != Status.ACTIVE:
            return 0
        self._tombstone(stored, reason, now, purge_by)
        return 1

    def deactivate_user(
        self,
        organization_id: str,
        user_id: str,
        reason: UnsubscribeReason,
        now: datetime,
        purge_by: datetime,
    ) -> int:
        matches = [
            doc
            for (org, _), doc in self.documents.items()
            if org == organization_id and doc["user_id"] == user_id and doc["status"] == "active"
        ]
        for doc in matches:
            self._tombstone(doc, reason, now, purge_by)
        return len(matches)

    def delete_user(self, organization_id: str, user_id: str) -> int:
        keys = [
            key
            for key, doc in self.documents.items()
            if key[0] == organization_id and doc["user_id"] == user_id
        ]
        for key in keys:
            del self.documents[key]
        return len(keys)

    def get(self, organization_id: str, instance_id: str) -> Subscription | None:
        stored = self.documents.get((organization_id, subscription_id(instance_id)))
        return Subscription.model_validate(stored) if stored else None

    def active_devices(self, organization_id: str, user_ids: Sequence[str]) -> list[Device]:
        wanted = set(user_ids)
        return [
            Device(subscription_id=sid, user_id=doc["user_id"], instance_id=doc["instance_id"])
            for (org, sid), doc in self.documents.items()
            if org == organization_id and doc["status"] == "active" and doc["user_id"] in wanted
        ]

    def retire(
        self,
        organization_id: str,
        subscription_ids: Sequence[str],
        reason: UnsubscribeReason,
        now: datetime,
        purge_by: datetime,
    ) -> int:
        for sid in subscription_ids:
            document = self.documents.setdefault((organization_id, sid), {"id": sid})
            self._tombstone(document, reason, now, purge_by)
        return len(subscription_ids)

    @staticmethod
    def _tombstone(
        document: dict[str, Any], reason: UnsubscribeReason, now: datetime, purge_by: datetime
    ) -> None:
        document.pop("instance_id", None)
        document.pop("browser_footprint", None)
        document.update(tombstone_fields(reason, now, purge_by))
