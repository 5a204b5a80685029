"""Where the fan-out keeps its plan and each batch's progress: port and Firestore adapter.

Layout: ``organizations/{org}/notifications/{nid}/batches/{batch:05d}``. Every write a worker
makes to a batch is fenced by the batch's last update time, so a worker that lost its batch to
another (its lease ran out) cannot overwrite what the other recorded: its write fails instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol

from google.api_core import exceptions as google_exceptions
from google.cloud import firestore

from push365.daily.counts import add_deliveries
from push365.fanout.model import BatchCounts, BatchState
from push365.notifications.deliveries import (
    BATCH_DEVICES,
    RECEIPT_HASHES,
    RECORDS,
    USERS,
    Delivery,
    decode_receipt_hashes,
    decode_records,
    encode_receipt_hashes,
    encode_records,
    record_of,
    sent_at,
    users_of,
)
from push365.retention import TTL_FIELD
from push365.store import (
    BATCHES,
    NOTIFICATIONS,
    ORGANIZATIONS,
    add_update,
    bounded,
)

UNINDEXED_FIELDS = (
    BATCH_DEVICES,
    "outcomes",
    "inflight",
    "unknown",
    "resent",
    "pending",
    RECORDS,
    RECEIPT_HASHES,
)
"""A batch's fields no query filters on: JSON text of up to 500 ids, records and receipt
hashes. Deployed without single-field indexes (``push365.indexes``)."""

PLAN_DOCUMENT = "plan"
"""The document beside the batches that holds who plans a notification and how far it got."""


class Taken(Enum):
    """Why a batch could not be taken."""

    GONE = "gone"  # done already, or its notification no longer exists: nothing to do
    BUSY = "busy"  # another worker holds it, or it waits for its backoff: try later


class LeaseLost(Exception):
    """Another worker took the batch over: this worker must stop writing to it."""

    def __init__(self) -> None:
        super().__init__("the batch was taken over by another worker")


@dataclass(frozen=True)
class PlanLease:
    """A worker's hold on planning a notification, and how far planning got (it resumes)."""

    token: Any  # the record's update time: every plan write is fenced by it
    batches: int  # batches stored so far
    cursor: str | None  # the last subscription id planned, in id order


@dataclass(frozen=True)
class PlanRecord:
    """What the worker needs of a notification record."""

    created_at: datetime
    planned: bool
    recipients: list[str]


@dataclass(frozen=True)
class Unfinished:
    """A notification the reconciler looks at: not failed, and not every batch done."""

    organization_id: str
    notification_id: str
    created_at: datetime
    planned: bool
    updated_at: datetime  # the record's last write: a plan step or a batch finishing


class FanoutRepository(Protocol):
    """The storage port of the fan-out."""

    def unfinished(self, since: datetime, before: datetime) -> list[Unfinished]:
        """Every organization's notifications created in ``[since, before]`` that are not
        finished (not failed, and not planned with every batch done)."""
        ...

    def plan_record(self, organization_id: str, notification_id: str) -> PlanRecord | None:
        """The notification's record, or None once it is gone (erased, purged)."""
        ...

    def lease_plan(
        self,
        organization_id: str,
        notification_id: str,
        now: datetime,
        until: datetime,
        expire_at: datetime,
    ) -> PlanLease | None:
        """Hold the planning of a notification until ``until``; None while another worker
        plans it (or once it is planned)."""
        ...

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
        """Store the next batch and how far planning got, at once, fenced; the lease renewed.

        Raises:
            LeaseLost: another worker took the planning over meanwhile.
        """
        ...

    def end_plan(
        self, lease: PlanLease, organization_id: str, notification_id: str, now: datetime
    ) -> None:
        """Every batch is stored: mark the record planned (fenced).

        Raises:
            LeaseLost: as for :meth:`add_batch`.
        """
        ...

    def release_plan(self, lease: PlanLease, organization_id: str, notification_id: str) -> None:
        """Give the planning back (a continuation message resumes it), fenced."""
        ...

    def open_batches(self, organization_id: str, notification_id: str) -> list[int]:
        """The planned batches not done yet."""
        ...

    def fail_plan(self, organization_id: str, notification_id: str, now: datetime) -> None:
        """The plan message was dead-lettered: the notification failed as a whole."""
        ...

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
        """Hold a batch until ``lease_until``; devices another worker left in flight become
        unknown."""
        ...

    def checkpoint(
        self,
        state: BatchState,
        lease_until: datetime,
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        """Write the state (and the final deliveries, onto the batch's records) at once, fenced.

        Raises:
            LeaseLost: another worker wrote the batch since this one read it.
        """
        ...

    def finish(
        self,
        state: BatchState,
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        """Record the last deliveries, mark the batch done and add its counts to the notification
        record, at once, fenced.

        Raises:
            LeaseLost: as for :meth:`checkpoint`.
        """
        ...

    def release(
        self,
        state: BatchState,
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        """Record the deliveries and give the batch back before its lease runs out (its backoff
        stays), fenced."""
        ...


class FirestoreFanoutRepository:
    """The fan-out's state in Firestore."""

    def __init__(self, client: firestore.Client, timeout_seconds: float = 10.0) -> None:
        self._client = client
        # Every call gives up within the timeout, retries included.
        self._bounded = bounded(timeout_seconds)

    def _notification(self, organization_id: str, nid: str) -> firestore.DocumentReference:
        return self._client.collection(ORGANIZATIONS, organization_id, NOTIFICATIONS).document(nid)

    def _batch(self, organization_id: str, nid: str, batch: int) -> firestore.DocumentReference:
        reference: firestore.DocumentReference = (
            self._notification(organization_id, nid).collection(BATCHES).document(f"{batch:05d}")
        )
        return reference

    def unfinished(self, since: datetime, before: datetime) -> list[Unfinished]:
        # Across organizations (the reconciler is the operator's): the range of the retention
        # rule's own collection-group index on created_at; what is finished is told apart here.
        query = (
            self._client.collection_group(NOTIFICATIONS)
            .where(filter=firestore.FieldFilter("created_at", ">=", since))
            .where(filter=firestore.FieldFilter("created_at", "<=", before))
            .select(["created_at", "planned_at", "status", "counts"])
        )
        found = []
        for snapshot in query.stream(**self._bounded):
            fields = snapshot.to_dict() or {}
            counts = fields.get("counts") or {}
            planned = fields.get("planned_at") is not None
            done = planned and int(counts.get("batches_done") or 0) >= int(
                counts.get("batches") or 0
            )
            if fields.get("status") == "failed" or done:
                continue
            organization = snapshot.reference.parent.parent
            found.append(
                Unfinished(
                    organization_id=organization.id if organization is not None else "",
                    notification_id=snapshot.id,
                    created_at=fields["created_at"],
                    planned=planned,
                    updated_at=_as_datetime(snapshot.update_time),
                )
            )
        return found

    def plan_record(self, organization_id: str, notification_id: str) -> PlanRecord | None:
        snapshot = self._notification(organization_id, notification_id).get(
            field_paths=["created_at", "planned_at", "recipients"], **self._bounded
        )
        if not snapshot.exists:
            return None
        fields = snapshot.to_dict() or {}
        return PlanRecord(
            created_at=fields["created_at"],
            planned=fields.get("planned_at") is not None,
            recipients=list(fields.get("recipients") or []),
        )

    def _plan(self, organization_id: str, nid: str) -> firestore.DocumentReference:
        # Beside the batches (purged and erased with them), not on the record: batches finishing
        # write the record all the time, and the plan's fencing must not trip over them.
        reference: firestore.DocumentReference = (
            self._notification(organization_id, nid).collection(BATCHES).document(PLAN_DOCUMENT)
        )
        return reference

    def lease_plan(
        self,
        organization_id: str,
        notification_id: str,
        now: datetime,
        until: datetime,
        expire_at: datetime,
    ) -> PlanLease | None:
        record = self._notification(organization_id, notification_id).get(
            field_paths=["planned_at"], **self._bounded
        )
        if not record.exists or record.get("planned_at") is not None:
            return None
        reference = self._plan(organization_id, notification_id)
        snapshot = reference.get(**self._bounded)
        try:
            if not snapshot.exists:
                first = {
                    "planning_until": until,
                    "cursor": None,
                    "batches": 0,
                    "created_at": now,
                    TTL_FIELD: expire_at,
                }
                result = reference.create(first, **self._bounded)
                return PlanLease(result.update_time, 0, None)
            fields = snapshot.to_dict() or {}
            held = fields.get("planning_until")
            if held is not None and held > now:
                return None
            result = reference.update(
                {"planning_until": until},
                option=self._client.write_option(last_update_time=snapshot.update_time),
                **self._bounded,
            )
        except (
            google_exceptions.FailedPrecondition,
            google_exceptions.NotFound,
            google_exceptions.Conflict,
        ):
            return None  # another worker was quicker
        return PlanLease(result.update_time, int(fields.get("batches") or 0), fields.get("cursor"))

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
        write = self._client.batch()
        write.set(
            self._batch(organization_id, notification_id, lease.batches),
            _new_batch(list(devices), now, expire_at),
        )
        write.update(
            self._notification(organization_id, notification_id),
            {
                "status": "delivering",
                "counts.batches": lease.batches + 1,
                "counts.devices": firestore.Increment(len(devices)),
            },
        )
        progress = {"cursor": devices[-1], "batches": lease.batches + 1, "planning_until": until}
        token = self._fenced_plan(write, organization_id, notification_id, lease, progress)
        return PlanLease(token, lease.batches + 1, devices[-1])

    def end_plan(
        self, lease: PlanLease, organization_id: str, notification_id: str, now: datetime
    ) -> None:
        write = self._client.batch()
        # completed_at is left to the batches (each one finishing sets it) unless there are
        # none: a plan ended after its batches had all finished keeps their completion time.
        ended: dict[str, Any] = {"status": "delivering" if lease.batches else "sent"}
        ended |= {"planned_at": now} if lease.batches else {"planned_at": now, "completed_at": now}
        write.update(self._notification(organization_id, notification_id), ended)
        done = {"planning_until": None, "cursor": None}
        self._fenced_plan(write, organization_id, notification_id, lease, done)

    def release_plan(self, lease: PlanLease, organization_id: str, notification_id: str) -> None:
        write = self._client.batch()
        self._fenced_plan(write, organization_id, notification_id, lease, {"planning_until": None})

    def _fenced_plan(
        self,
        write: Any,
        organization_id: str,
        notification_id: str,
        lease: PlanLease,
        fields: dict[str, Any],
    ) -> Any:
        write.update(
            self._plan(organization_id, notification_id),
            fields,
            option=self._client.write_option(last_update_time=lease.token),
        )
        try:
            results = write.commit(**self._bounded)
        except (google_exceptions.FailedPrecondition, google_exceptions.NotFound):
            raise LeaseLost() from None
        return results[-1].update_time

    def open_batches(self, organization_id: str, notification_id: str) -> list[int]:
        collection = self._notification(organization_id, notification_id).collection(BATCHES)
        query = collection.where(filter=firestore.FieldFilter("done", "==", False)).select([])
        return sorted(int(s.id) for s in query.stream(**self._bounded))

    def fail_plan(self, organization_id: str, notification_id: str, now: datetime) -> None:
        self._notification(organization_id, notification_id).update(
            {
                "status": "failed",
                "completed_at": now,
                "counts.dead_lettered": firestore.Increment(1),
            },
            **self._bounded,
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
        reference = self._batch(organization_id, notification_id, batch)
        snapshot = reference.get(field_paths=_STATE_FIELDS, **self._bounded)
        if not snapshot.exists:
            return Taken.GONE
        fields = snapshot.to_dict() or {}
        if fields.get("done"):
            return Taken.GONE
        lease = fields.get("lease_until")
        not_before = fields.get("not_before")
        if lease is not None and lease > now:
            return Taken.BUSY
        if not ignore_backoff and not_before is not None and not_before > now:
            return Taken.BUSY
        state = _state(organization_id, notification_id, batch, fields)
        # What the last holder claimed but never recorded may have reached FCM.
        state.recover()
        state.attempts += 1
        try:
            result = reference.update(
                {
                    "lease_until": lease_until,
                    "inflight": _text([]),
                    "unknown": _text(state.unknown),
                    "attempts": state.attempts,
                },
                option=self._client.write_option(last_update_time=snapshot.update_time),
                **self._bounded,
            )
        except (google_exceptions.FailedPrecondition, google_exceptions.NotFound):
            return Taken.BUSY  # another worker was quicker
        state.version = result.update_time
        return state

    def checkpoint(
        self,
        state: BatchState,
        lease_until: datetime,
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        self._fenced(self._client.batch(), state, deliveries, {"lease_until": lease_until})

    def finish(
        self,
        state: BatchState,
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        write = self._client.batch()
        totals = {
            f"counts.{name}": firestore.Increment(n) for name, n in state.counts.as_dict().items()
        }
        # completed_at: when the last batch finished, as the last of these writes leaves it (the
        # record's writes are serialized: the latest commit's time stays); shown once all are done.
        write.update(
            self._notification(state.organization_id, state.notification_id),
            totals
            | {
                "counts.batches_done": firestore.Increment(1),
                "completed_at": firestore.SERVER_TIMESTAMP,
            },
        )
        # The day's counts, in this same fenced commit: a batch is counted once, when done.
        records = dict(state.records) | {d.device_id: record_of(d) for d in deliveries}
        add_deliveries(
            write,
            self._client,
            state.organization_id,
            ((str(r.get("status") or ""), r.get("error"), sent_at(r)) for r in records.values()),
            datetime.now(UTC),
        )
        self._fenced(write, state, deliveries, {"done": True, "lease_until": None})

    def release(
        self,
        state: BatchState,
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        self._fenced(self._client.batch(), state, deliveries, {"lease_until": None})

    def _fenced(
        self,
        write: Any,
        state: BatchState,
        deliveries: Sequence[Delivery],
        fields: dict[str, Any],
    ) -> None:
        """Write the batch's progress, ``deliveries`` onto its records, and ``fields``, fenced."""
        hashed = False
        for delivery in deliveries:
            state.records[delivery.device_id] = record_of(delivery)
            if delivery.receipt_hash:
                state.receipt_hashes[delivery.device_id] = delivery.receipt_hash
                hashed = True
        written = {RECORDS: encode_records(state.records)} if deliveries else {}
        if hashed:
            written[RECEIPT_HASHES] = encode_receipt_hashes(state.receipt_hashes)
        users = users_of(state.records[d.device_id] for d in deliveries)
        add_update(
            write,
            self._batch(state.organization_id, state.notification_id, state.batch),
            _progress(state) | written | fields,
            last_update_time=state.version,
            array_union={USERS: users},
        )
        try:
            results = write.commit(**self._bounded)
        except (google_exceptions.FailedPrecondition, google_exceptions.NotFound):
            raise LeaseLost() from None
        state.version = results[-1].update_time


def _as_datetime(value: Any) -> datetime:
    """A document's update time (a protobuf Timestamp from a query, a datetime elsewhere)."""
    if isinstance(value, datetime):
        return value
    converted: datetime = value.ToDatetime(tzinfo=UTC)
    return converted


def _new_batch(devices: list[str], now: datetime, expire_at: datetime) -> dict[str, Any]:
    return {
        BATCH_DEVICES: _text(devices),
        "done": False,
        "outcomes": _text({}),
        "inflight": _text([]),
        "unknown": _text([]),
        "resent": _text([]),
        "pending": _text({}),
        "not_before": None,
        "lease_until": None,
        "attempts": 0,
        "counts": BatchCounts().as_dict(),
        "created_at": now,
        TTL_FIELD: expire_at,
    }


def _progress(state: BatchState) -> dict[str, Any]:
    return {
        "outcomes": _text(state.outcomes),
        "inflight": _text(state.inflight),
        "unknown": _text(state.unknown),
        "resent": _text(state.resent),
        "pending": _text(state.pending),
        "not_before": state.not_before,
        "attempts": state.attempts,
        "counts": state.counts.as_dict(),
    }


def _state(organization_id: str, nid: str, batch: int, fields: dict[str, Any]) -> BatchState:
    return BatchState(
        organization_id=organization_id,
        notification_id=nid,
        batch=batch,
        devices=list(_parsed(fields.get(BATCH_DEVICES), [])),
        outcomes=dict(_parsed(fields.get("outcomes"), {})),
        inflight=list(_parsed(fields.get("inflight"), [])),
        unknown=list(_parsed(fields.get("unknown"), [])),
        resent=list(_parsed(fields.get("resent"), [])),
        pending=dict(_parsed(fields.get("pending"), {})),
        not_before=fields.get("not_before"),
        attempts=int(fields.get("attempts") or 0),
        counts=BatchCounts(**(fields.get("counts") or {})),
        records=decode_records(fields.get(RECORDS)),
        receipt_hashes=decode_receipt_hashes(fields.get(RECEIPT_HASHES)),
    )


def _text(value: Any) -> str:
    """A batch's lists and maps of up to 500 ids are stored as compact JSON text: one opaque
    value the store neither indexes nor encodes entry by entry (as maps and arrays, they were
    most of the store's work of each write to a batch)."""
    return json.dumps(value, separators=(",", ":"))


def _parsed(value: Any, empty: Any) -> Any:
    return json.loads(value) if isinstance(value, str) and value else empty


_STATE_FIELDS = [
    BATCH_DEVICES,
    "done",
    "outcomes",
    "inflight",
    "unknown",
    "resent",
    "pending",
    "not_before",
    "lease_until",
    "attempts",
    "counts",
    RECORDS,
    RECEIPT_HASHES,
]
