"""In-memory adapters for the repository ports, for fast unit tests of the use cases.

They keep documents as plain dicts shaped like the Firestore ones, so a test can inspect
exactly what would be stored.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from push365.notifications.model import DeliveryCounts, NotificationRecord
from push365.notifications.repository import Claim, Delivery
from push365.organizations.model import Organization
from push365.subscriptions.model import (
    Device,
    Status,
    TokenKind,
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

    def claim_alert(self, organization_id: str, now: datetime, interval: timedelta) -> bool:
        document = self.documents.get(organization_id)
        last = document.get("last_delivery_alert_at") if document else None
        if document is None or (last is not None and now - last < interval):
            return False
        document["last_delivery_alert_at"] = now
        return True


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
        token_kind: TokenKind = TokenKind.REGISTRATION_TOKEN,
    ) -> bool:
        key = (organization_id, subscription_id(instance_id))
        stored = self.documents.get(key)
        if stored is not None and stored["status"] == Status.ACTIVE:
            stored.update(user_id=user_id, last_seen_at=now, token_kind=token_kind.value)
            if footprint is not None:
                stored["browser_footprint"] = footprint
            return False
        self.documents[key] = {
            "id": key[1],
            "instance_id": instance_id,
            "token_kind": token_kind.value,
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

    def active_devices(self, organization_id: str, user_ids: Sequence[str]) -> list[Device]:
        wanted = set(user_ids)
        return [
            Device(
                subscription_id=sid,
                user_id=doc["user_id"],
                instance_id=doc["instance_id"],
                token_kind=doc.get("token_kind") or TokenKind.REGISTRATION_TOKEN,
            )
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
        document.pop("token_kind", None)
        document.update(tombstone_fields(reason, now, purge_by))


class InMemoryNotificationRepository:
    def __init__(self) -> None:
        self.records: dict[str, NotificationRecord] = {}
        self.dedup: dict[tuple[str, str], tuple[str, datetime]] = {}
        self.deliveries: dict[str, dict[str, Delivery]] = {}
        self.delivered_at: dict[tuple[str, str], datetime] = {}

    def claim(
        self,
        organization_id: str,
        dedup_key: str | None,
        recipients: Sequence[str],
        now: datetime,
        lease_until: datetime,
        dedup_window: timedelta,
        expire_at: datetime,
    ) -> Claim:
        if dedup_key is not None:
            known = self.dedup.get((organization_id, dedup_key))
            if known is not None and known[1] > now:
                return Claim(known[0], new=False)
        nid = uuid.uuid4().hex
        if dedup_key is not None:
            self.dedup[(organization_id, dedup_key)] = (nid, now + dedup_window)
        self.records[nid] = NotificationRecord(
            id=nid,
            organization_id=organization_id,
            recipients=list(recipients),
            dedup_key=dedup_key,
            status="sending",
            lease_until=lease_until,
            created_at=now,
        )
        return Claim(nid, new=True)

    def get(self, organization_id: str, notification_id: str) -> NotificationRecord | None:
        return self.records.get(notification_id)

    def take_lease(
        self, organization_id: str, notification_id: str, now: datetime, lease_until: datetime
    ) -> bool:
        record = self.records[notification_id]
        if record.status == "sending" and record.lease_until and record.lease_until > now:
            return False
        self.records[notification_id] = record.model_copy(
            update={"status": "sending", "lease_until": lease_until}
        )
        return True

    def sent_device_ids(self, organization_id: str, notification_id: str) -> set[str]:
        found = self.deliveries.get(notification_id, {})
        return {d for d, delivery in found.items() if delivery.status == "sent"}

    def record_deliveries(
        self,
        organization_id: str,
        notification_id: str,
        deliveries: Sequence[Delivery],
        expire_at: datetime,
    ) -> None:
        found = self.deliveries.setdefault(notification_id, {})
        for delivery in deliveries:
            found[delivery.device_id] = delivery

    def complete(
        self, organization_id: str, notification_id: str, counts: DeliveryCounts, now: datetime
    ) -> None:
        self.records[notification_id] = self.records[notification_id].model_copy(
            update={"status": "sent", "lease_until": None, "completed_at": now, "counts": counts}
        )

    def mark_delivered(
        self,
        organization_id: str,
        notification_id: str,
        device_id: str,
        receipt_hash: str,
        now: datetime,
    ) -> bool:
        delivery = self.deliveries.get(notification_id, {}).get(device_id)
        if delivery is None or delivery.receipt_hash != receipt_hash:
            return False
        self.delivered_at.setdefault((notification_id, device_id), now)
        return True
