"""The delivery report: per-day counts for an organization, from the stored records only.

Subscriptions (active at the end of each day, and new that day), notifications, devices sent,
failures by FCM's reason, devices whose service worker confirmed the notification (its receipt),
and the median time from send to that receipt. Only dates, statuses and error codes are
counted: no token or footprint is read (Firestore ``select``), the user ids in a batch's
delivery records (one text with their statuses) are read but never kept, and no content exists
to read.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from pydantic import BaseModel

from push365.notifications.deliveries import RECORDS, decode_records, sent_at
from push365.store import (
    BATCHES,
    NOTIFICATIONS,
    ORGANIZATIONS,
    RECEIPTS,
    SUBSCRIPTIONS,
    bounded,
)

MAX_DAYS = 90
"""Notification records live 90 days (the retention): a longer report would count nothing."""
DEFAULT_DAYS = 7
_LATE_DELIVERY = timedelta(days=1)
"""A delivery can happen after its notification's day (retries for an hour, receipts later):
notifications are read from a day before the report's first day."""


@dataclass(frozen=True)
class SubscriptionFacts:
    created_at: datetime | None
    unsubscribed_at: datetime | None


@dataclass(frozen=True)
class DeliveryFacts:
    status: str
    error: str | None
    sent_at: datetime | None
    delivered_at: datetime | None


@dataclass(frozen=True)
class Facts:
    """What the report is computed from."""

    notifications: Sequence[datetime]  # each notification's created_at
    deliveries: Sequence[DeliveryFacts]
    subscriptions: Sequence[SubscriptionFacts]


class StatsReader(Protocol):
    def facts(self, organization_id: str, since: datetime) -> Facts:
        """Notifications created since ``since`` with their deliveries, and every subscription."""
        ...


class DayStats(BaseModel):
    date: date
    subscriptions_active: int
    subscriptions_new: int
    notifications: int
    devices_sent: int
    failed: int
    failed_by_reason: dict[str, int]
    delivered: int
    median_seconds_to_delivery: float | None


class Stats(BaseModel):
    days: int
    first_day: date
    last_day: date
    per_day: list[DayStats]


def _day(moment: datetime | None) -> date | None:
    return moment.astimezone(UTC).date() if moment is not None else None


def daily(days: int, today: date, facts: Facts) -> Stats:
    """The report for the ``days`` days ending with ``today`` (UTC)."""
    first = today - timedelta(days=days - 1)
    dates = [first + timedelta(days=n) for n in range(days)]
    notifications = Counter(_day(created) for created in facts.notifications)
    sent: Counter[date | None] = Counter()
    failed: dict[date, Counter[str]] = {day: Counter() for day in dates}
    waits: dict[date, list[float]] = {day: [] for day in dates}
    for delivery in facts.deliveries:
        sent_day = _day(delivery.sent_at)
        if delivery.status == "sent":
            sent[sent_day] += 1
        elif delivery.status == "failed" and sent_day in failed:
            failed[sent_day][delivery.error or "unknown"] += 1
        delivered_day = _day(delivery.delivered_at)
        if delivered_day in waits and delivery.delivered_at and delivery.sent_at:
            wait = (delivery.delivered_at - delivery.sent_at).total_seconds()
            waits[delivered_day].append(max(wait, 0.0))
    per_day = []
    for day in dates:
        end = datetime.combine(day + timedelta(days=1), time(), UTC)
        active = sum(
            1
            for s in facts.subscriptions
            if s.created_at is not None
            and s.created_at < end
            and (s.unsubscribed_at is None or s.unsubscribed_at >= end)
        )
        new = sum(1 for s in facts.subscriptions if _day(s.created_at) == day)
        per_day.append(
            DayStats(
                date=day,
                subscriptions_active=active,
                subscriptions_new=new,
                notifications=notifications[day],
                devices_sent=sent[day],
                failed=sum(failed[day].values()),
                failed_by_reason=dict(sorted(failed[day].items())),
                delivered=len(waits[day]),
                median_seconds_to_delivery=round(statistics.median(waits[day]), 3)
                if waits[day]
                else None,
            )
        )
    return Stats(days=days, first_day=first, last_day=today, per_day=per_day)


def report(reader: StatsReader, organization_id: str, days: int, now: datetime) -> Stats:
    today = now.astimezone(UTC).date()
    since = datetime.combine(today - timedelta(days=days - 1), time(), UTC) - _LATE_DELIVERY
    return daily(days, today, reader.facts(organization_id, since))


class FirestoreStatsReader:
    """Reads only the fields the report counts (``select``), a collection at a time."""

    def __init__(self, client: firestore.Client, timeout_seconds: float = 10.0) -> None:
        self._client = client
        self._bounded = bounded(timeout_seconds)

    def facts(self, organization_id: str, since: datetime) -> Facts:
        notifications = self._client.collection(ORGANIZATIONS, organization_id, NOTIFICATIONS)
        created: list[datetime] = []
        deliveries: list[DeliveryFacts] = []
        recent = notifications.where(filter=FieldFilter("created_at", ">=", since))
        for snapshot in recent.select(["created_at"]).stream(**self._bounded):
            created.append(snapshot.get("created_at"))
            receipts = snapshot.reference.collection(RECEIPTS).select(["delivered_at"])
            delivered = {r.id: _get(r, "delivered_at") for r in receipts.stream(**self._bounded)}
            batches = snapshot.reference.collection(BATCHES).select([RECORDS])
            for batch in batches.stream(**self._bounded):
                records = decode_records(_get(batch, RECORDS))
                deliveries.extend(_deliveries(records, delivered))
        subscriptions = (
            self._client.collection(ORGANIZATIONS, organization_id, SUBSCRIPTIONS)
            .select(["created_at", "unsubscribed_at"])
            .stream(**self._bounded)
        )
        return Facts(
            created,
            deliveries,
            [
                SubscriptionFacts(_get(s, "created_at"), _get(s, "unsubscribed_at"))
                for s in subscriptions
            ],
        )


def _get(snapshot: Any, field: str) -> Any:
    data = snapshot.to_dict() or {}
    return data.get(field)


def _deliveries(
    records: dict[str, dict[str, Any]], delivered: dict[str, Any]
) -> Iterable[DeliveryFacts]:
    for device, record in records.items():
        yield DeliveryFacts(
            str(record.get("status") or ""),
            record.get("error"),
            sent_at(record),
            delivered.get(device),
        )
