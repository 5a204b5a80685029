"""In-memory adapters for the repository ports, for fast unit tests of the use cases.

They keep documents as plain dicts shaped like the Firestore ones, so a test can inspect
exactly what would be stored.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from push365.errors import PublishOutcomeUnknown, QueueUnavailable
from push365.fanout.model import BatchState, FanoutMessage
from push365.fanout.repository import LeaseLost, PlanLease, PlanRecord, Taken, Unfinished
from push365.notifications.deliveries import Delivery
from push365.notifications.model import DeliveryCounts, NotificationRecord
from push365.notifications.receipts import device_id
from push365.notifications.repository import Claim, Confirmed
from push365.organizations.model import Organization
from push365.organizations.repository import Credentials
from push365.subscriptions.model import (
    Device,
    Status,
    TokenKind,
    UnsubscribeReason,
    subscription_id,
)
from push365.subscriptions.repository import new_subscription, tombstone_fields


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

    def credentials(self, organization_id: str) -> Credentials | None:
        document = self.documents.get(organization_id)
        if document is None:
            return None
        return Credentials(
            document.get("api_key_hash"),
            document.get("previous_key_hash"),
            document.get("previous_key_until"),
        )

    def rotate_key(self, organization_id: str, keys: Credentials, now: datetime) -> None:
        self.documents[organization_id].update(
            api_key_hash=keys.key_hash,
            previous_key_hash=keys.previous_hash,
            previous_key_until=keys.previous_until,
            updated_at=now,
        )

    def revoke_previous(self, organization_id: str, now: datetime) -> None:
        self.documents[organization_id].update(
            previous_key_hash=None, previous_key_until=None, updated_at=now
        )

    def confirm_email(self, organization_id: str, token_hash: str, now: datetime) -> str | None:
        document = self.documents.get(organization_id)
        email = document.get("pending_emails", {}).pop(token_hash, None) if document else None
        if document is not None and email is not None:
            document["confirmed_emails"] = [*document.get("confirmed_emails", []), email]
        return email

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
        self.documents[key] = new_subscription(
            key[1], instance_id, token_kind, user_id, footprint, now
        )
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

    def active_subscription_ids(self, organization_id: str, user_ids: Sequence[str]) -> list[str]:
        wanted = set(user_ids)
        return sorted(
            sid
            for (org, sid), document in self.documents.items()
            if org == organization_id
            and document["status"] == Status.ACTIVE.value
            and document["user_id"] in wanted
        )

    def active_subscription_ids_after(
        self, organization_id: str, user_ids: Sequence[str], after: str | None
    ) -> Iterator[str]:
        ids = self.active_subscription_ids(organization_id, user_ids)
        return iter([sid for sid in ids if after is None or sid > after])

    def active_devices_by_id(
        self,
        organization_id: str,
        subscription_ids: Sequence[str],
        seen_since: datetime | None = None,
    ) -> dict[str, Device]:
        found: dict[str, Device] = {}
        for sid in subscription_ids:
            document = self.documents.get((organization_id, sid))
            seen = (document or {}).get("last_seen_at")
            if seen_since is not None and seen is not None and seen < seen_since:
                continue
            if document is not None and document["status"] == Status.ACTIVE.value:
                found[sid] = Device(
                    subscription_id=sid,
                    user_id=document["user_id"],
                    instance_id=document["instance_id"],
                    token_kind=document.get("token_kind") or TokenKind.REGISTRATION_TOKEN,
                )
        return found

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

    def seen(self, organization_id: str, subscription_id: str, now: datetime) -> bool:
        document = self.documents.get((organization_id, subscription_id))
        if document is None or document["status"] != Status.ACTIVE:
            return False
        document["last_seen_at"] = now
        return True

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
        # (notification id, device id) -> subscription id, as a batch's device list has it
        self.subscription_of: dict[tuple[str, str], str] = {}
        self.bindings: dict[str, str] = {}  # notification id -> binding (fanout.binding)

    def claim(
        self,
        organization_id: str,
        dedup_key: str | None,
        recipients: Sequence[str],
        now: datetime,
        dedup_window: timedelta,
        expire_at: datetime,
        *,
        binding: str,
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
            status="accepted",
            created_at=now,
        )
        self.bindings[nid] = binding
        return Claim(nid, new=True)

    def rebind(self, organization_id: str, notification_id: str, binding: str) -> bool:
        record = self.records.get(notification_id)
        if record is None or record.status != "accepted" or record.published_at is not None:
            return False
        self.bindings[notification_id] = binding
        return True

    def get(self, organization_id: str, notification_id: str) -> NotificationRecord | None:
        return self.records.get(notification_id)

    def mark_published(self, organization_id: str, notification_id: str, now: datetime) -> None:
        self.records[notification_id] = self.records[notification_id].model_copy(
            update={"published_at": now}
        )

    def mark_delivered(
        self,
        organization_id: str,
        notification_id: str,
        batch: int,
        device_id: str,
        receipt_hash: str,
        now: datetime,
    ) -> Confirmed | None:
        delivery = self.deliveries.get(notification_id, {}).get(device_id)
        if delivery is None or delivery.receipt_hash != receipt_hash:
            return None
        self.delivered_at.setdefault((notification_id, device_id), now)
        return Confirmed(self.subscription_of.get((notification_id, device_id)))


class InMemoryFanoutRepository:
    """Batches as copies of their state, each write fenced by a version number."""

    def __init__(self, notifications: InMemoryNotificationRepository) -> None:
        self._notifications = notifications
        self.batches: dict[tuple[str, int], dict[str, Any]] = {}
        self.deliveries: dict[str, dict[str, Delivery]] = notifications.deliveries
        self.plan_version = 0
        self.plans: dict[str, dict[str, Any]] = {}
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)  # the store's clock
        self.updated: dict[str, datetime] = {}  # notification id -> its record's last write

    def unfinished(self, since: datetime, before: datetime) -> list[Unfinished]:
        found = []
        for nid, record in self._notifications.records.items():
            planned = record.planned_at is not None
            done = planned and record.counts.batches_done >= record.counts.batches
            if not since <= record.created_at <= before or record.status == "failed" or done:
                continue
            found.append(
                Unfinished(
                    organization_id=record.organization_id,
                    notification_id=nid,
                    created_at=record.created_at,
                    planned=planned,
                    updated_at=self.updated.get(nid, record.created_at),
                )
            )
        return found

    def plan_record(self, organization_id: str, notification_id: str) -> PlanRecord | None:
        record = self._notifications.records.get(notification_id)
        if record is None:
            return None
        return PlanRecord(record.created_at, record.planned_at is not None, record.recipients)

    def lease_plan(
        self,
        organization_id: str,
        notification_id: str,
        now: datetime,
        until: datetime,
        expire_at: datetime,
    ) -> PlanLease | None:
        record = self._notifications.records.get(notification_id)
        if record is None or record.planned_at is not None:
            return None
        plan = self.plans.setdefault(notification_id, {"until": None, "cursor": None})
        if plan["until"] is not None and plan["until"] > now:
            return None
        plan["until"] = until
        self.plan_version += 1
        return PlanLease(self.plan_version, record.counts.batches, plan["cursor"])

    def add_batch(
        self,
        lease: PlanLease,
        organization_id: str,
        notification_id: str,
        devices: Sequence[str],
        now: datetime,
        expire_at: datetime,
        until: datetime,
    ) -> PlanLease:
        self._check(lease)
        state = BatchState(organization_id, notification_id, lease.batches, list(devices))
        self.batches[(notification_id, lease.batches)] = {
            "state": state,
            "version": 0,
            "lease": None,
        }
        record = self._notifications.records[notification_id]
        counts = record.counts.model_copy(
            update={"devices": record.counts.devices + len(devices), "batches": lease.batches + 1}
        )
        self.plans[notification_id] = {"until": until, "cursor": devices[-1]}
        self._set(notification_id, status="delivering", counts=counts)
        return PlanLease(self.plan_version, lease.batches + 1, devices[-1])

    def end_plan(
        self, lease: PlanLease, organization_id: str, notification_id: str, now: datetime
    ) -> None:
        self._check(lease)
        self.plans[notification_id] = {"until": None, "cursor": None}
        self._set(
            notification_id,
            planned_at=now,
            status="delivering" if lease.batches else "sent",
        )

    def release_plan(self, lease: PlanLease, organization_id: str, notification_id: str) -> None:
        self._check(lease)
        self.plans[notification_id]["until"] = None
        self.plan_version += 1

    def _check(self, lease: PlanLease) -> None:
        if lease.token != self.plan_version:
            raise LeaseLost()

    def _set(self, notification_id: str, **fields: Any) -> None:
        self.updated[notification_id] = self.now()
        record = self._notifications.records[notification_id]
        self._notifications.records[notification_id] = record.model_copy(update=fields)
        self.plan_version += 1

    def open_batches(self, organization_id: str, notification_id: str) -> list[int]:
        return sorted(
            index
            for (nid, index), stored in self.batches.items()
            if nid == notification_id and not stored["state"].done
        )

    def fail_plan(self, organization_id: str, notification_id: str, now: datetime) -> None:
        self.updated[notification_id] = self.now()
        record = self._notifications.records[notification_id]
        self._notifications.records[notification_id] = record.model_copy(
            update={"status": "failed", "completed_at": now}
        )

    def take(
        self,
        organization_id: str,
        notification_id: str,
        batch: int,
        now: datetime,
        lease_until: datetime,
        *,
        ignore_backoff: bool = False,
    ) -> BatchState | Taken:
        stored = self.batches.get((notification_id, batch))
        if stored is None or stored["state"].done:
            return Taken.GONE
        state: BatchState = copy.deepcopy(stored["state"])
        if stored["lease"] is not None and stored["lease"] > now:
            return Taken.BUSY
        if not ignore_backoff and state.not_before is not None and state.not_before > now:
            return Taken.BUSY
        state.recover()
        state.attempts += 1
        self._write(stored, state, lease_until)
        return copy.deepcopy(state)

    def checkpoint(
        self,
        state: BatchState,
        lease_until: datetime,
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        stored = self._fenced(state)
        self._record(state, deliveries)
        self._write(stored, state, lease_until)

    def finish(
        self,
        state: BatchState,
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        stored = self._fenced(state)
        self._record(state, deliveries)
        state.done = True
        self._write(stored, state, None)
        record = self._notifications.records[state.notification_id]
        totals = record.counts.model_dump()
        for name, count in state.counts.as_dict().items():
            totals[name] += count
        totals["batches_done"] += 1
        self.updated[state.notification_id] = self.now()
        self._notifications.records[state.notification_id] = record.model_copy(
            update={"counts": DeliveryCounts(**totals), "completed_at": datetime.now(UTC)}
        )

    def release(
        self,
        state: BatchState,
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        stored = self._fenced(state)
        self._record(state, deliveries)
        self._write(stored, state, None)

    def _record(self, state: BatchState, deliveries: Sequence[Delivery]) -> None:
        found = self.deliveries.setdefault(state.notification_id, {})
        for delivery in deliveries:
            found[delivery.device_id] = delivery
        for sid in state.devices:
            self._notifications.subscription_of[(state.notification_id, device_id(sid))] = sid

    def _fenced(self, state: BatchState) -> dict[str, Any]:
        stored = self.batches[(state.notification_id, state.batch)]
        if stored["version"] != state.version:
            raise LeaseLost()
        return stored

    @staticmethod
    def _write(stored: dict[str, Any], state: BatchState, lease: datetime | None) -> None:
        stored["version"] += 1
        state.version = stored["version"]
        stored["state"] = copy.deepcopy(state)
        stored["lease"] = lease


class RecordingPublisher:
    """The fan-out topic as a list; ``fail`` makes a publish raise with nothing stored,
    ``lose_answer`` makes it store the messages and raise as if Pub/Sub's answer never came."""

    def __init__(self) -> None:
        self.messages: list[FanoutMessage] = []
        self.fail = False
        self.lose_answer = False

    def publish(self, messages: Sequence[FanoutMessage]) -> None:
        if self.fail:
            raise QueueUnavailable()
        self.messages.extend(messages)
        if self.lose_answer:
            raise PublishOutcomeUnknown()


class InMemorySignupRepository:
    def __init__(self) -> None:
        self.codes: dict[str, dict[str, Any]] = {}
        self.counters: dict[tuple[str, int], int] = {}

    def add(
        self, code_hash: str, organization_id: str, expires_at: datetime, now: datetime
    ) -> None:
        self.codes[code_hash] = {"organization_id": organization_id, "expires_at": expires_at}

    def redeem(self, code_hash: str, organization_id: str, now: datetime) -> bool:
        code = self.codes.get(code_hash)
        if code is None or code.get("used_at") or code["organization_id"] != organization_id:
            return False
        if code["expires_at"] <= now:
            return False
        code["used_at"] = now
        return True

    def hit(self, scope_hash: str, window: int, expires_at: datetime) -> int:
        self.counters[scope_hash, window] = self.counters.get((scope_hash, window), 0) + 1
        return self.counters[scope_hash, window]

    def count(self, scope_hash: str, window: int) -> int:
        return self.counters.get((scope_hash, window), 0)


class InMemoryMailCounters:
    """The mail limits' counters (``FirestoreMailCounters``), in a dict."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, int], int] = {}

    def add(self, counts: Mapping[str, int], window: int, expires_at: datetime) -> dict[str, int]:
        for scope, count in counts.items():
            self.counters[scope, window] = self.counters.get((scope, window), 0) + count
        return {scope: self.counters[scope, window] for scope in counts}

    def claim(self, scope: str, wanted: int, cap: int, window: int, expires_at: datetime) -> int:
        count = self.counters.get((scope, window), 0)
        granted = max(0, min(wanted, cap - count))
        self.counters[scope, window] = count + granted
        return granted
