"""Per-day counts of an organization's deliveries, written in the commit of what they count.

Layout: ``organizations/{org}/daily/{YYYY-MM-DD}.{shard}``, :data:`SHARDS` documents a day (the
receipts of a large send arrive by the thousand at once: one document a day would be written by
every one of them). Each write adds (``firestore.Increment``) to one shard, merged into it, in
the same batch or transaction as the change it counts, under that change's own precondition:

- a notification stored (its ``created_at`` day): ``notifications``;
- a fan-out batch finished (fenced, once: a batch done is never taken again): ``devices_sent``,
  ``failed`` and ``failed_by_reason`` by each record's ``sent_at`` day;
- a receipt confirmed (its document created: a repeated receipt fails the create and counts
  nothing): ``delivered`` and ``waits``, a histogram of the time from send to receipt.

Counts only: no id, token or content; the reasons are FCM's outcome codes (``deliveries.error``'s
shape). A document lives :data:`KEEP_DAYS` after its day ends (``expire_at``, the TTL field;
purge deletes it too, and so does an organization's erasure).

The histogram's buckets are fixed: ``[0, 0.1 s)``, then each bound :data:`RATIO` times the last,
up to a week, and one bucket above. A day's median is estimated from them (:func:`median`): the
geometric middle of the bucket that holds it, at most ``sqrt(RATIO) - 1`` (4.9 %) from the exact
median (0.05 s under 0.1 s; above a week, the week).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from google.cloud import firestore

from push365.retention import TTL_FIELD
from push365.store import DAILY, ORGANIZATIONS

SHARDS = 10
"""Documents per day: writes to one day spread over them (each takes a random one)."""
KEEP_DAYS = 91
"""How long a day's counts live after the day: the longest report (90 days) and a day of late
deliveries."""
FIRST_BOUND = 0.1
"""Seconds: the first histogram bucket's upper bound."""
RATIO = 1.1
"""Each bucket's upper bound over its lower one."""
LAST_BOUND = 7 * 24 * 3600.0
"""Seconds: waits from here on share the last bucket."""
BUCKETS = 2 + math.ceil(math.log(LAST_BOUND / FIRST_BOUND, RATIO))
"""Buckets of the histogram: ``[0, 0.1)``, the ratio's steps up to a week, and above."""
DAY_FIELD = "day"
"""A day's document: its day's first instant (UTC)."""
WAITS = "waits"
"""A day's document: bucket name -> receipts that day whose wait fell in it."""
REASONS = "failed_by_reason"
_REASON = re.compile(r"^[a-z_]{1,40}$")


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def start_of(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def document_id(day: date, shard: int) -> str:
    return f"{day.isoformat()}.{shard}"


def daily(client: firestore.Client, organization_id: str) -> firestore.CollectionReference:
    return client.collection(ORGANIZATIONS, organization_id, DAILY)


def bucket_of(seconds: float) -> int:
    """The histogram bucket of a wait (negative: 0)."""
    if seconds < FIRST_BOUND:
        return 0
    if seconds >= LAST_BOUND:
        return BUCKETS - 1
    step = math.floor(math.log(seconds / FIRST_BOUND, RATIO)) + 1
    # (floating point at a bound: the bucket whose range holds it)
    while step > 1 and seconds < lower_bound(step):
        step -= 1
    while step < BUCKETS - 2 and seconds >= lower_bound(step + 1):
        step += 1
    return step


def lower_bound(bucket: int) -> float:
    return 0.0 if bucket == 0 else FIRST_BOUND * RATIO ** (bucket - 1)


def bucket_name(bucket: int) -> str:
    return f"w{bucket:03d}"


def _estimate(bucket: int) -> float:
    if bucket == 0:
        return FIRST_BOUND / 2
    if bucket >= BUCKETS - 1:
        return LAST_BOUND
    return lower_bound(bucket) * math.sqrt(RATIO)


def median(histogram: Mapping[int, int]) -> float | None:
    """A day's median wait from its histogram (bucket -> count), as ``statistics.median`` takes
    it (the middle one, or the mean of the two middle ones), each from its bucket's geometric
    middle; None without receipts."""
    total = sum(n for n in histogram.values() if n > 0)
    if total == 0:
        return None
    ranks = {(total - 1) // 2, total // 2}
    found: list[float] = []
    seen = 0
    for bucket in sorted(histogram):
        count = max(histogram[bucket], 0)
        found += [_estimate(bucket) for rank in sorted(ranks) if seen <= rank < seen + count]
        seen += count
    return round(sum(found) / len(found), 3)


def parse_histogram(waits: Any) -> dict[int, int]:
    """A stored ``waits`` map as bucket -> count (anything else ignored)."""
    parsed: dict[int, int] = {}
    if isinstance(waits, Mapping):
        for name, count in waits.items():
            if (
                isinstance(name, str)
                and re.fullmatch(r"w[0-9]{3}", name)
                and isinstance(count, int)
            ):
                parsed[int(name[1:])] = count
    return parsed


def reason(error: str | None) -> str:
    """A failure's reason as counted: its outcome code, or ``unknown``."""
    return error if isinstance(error, str) and _REASON.fullmatch(error) else "unknown"


def add(
    writer: Any,
    client: firestore.Client,
    organization_id: str,
    day: date,
    counts: Mapping[str, int],
    reasons: Mapping[str, int] | None = None,
    waits: Mapping[int, int] | None = None,
) -> None:
    """In ``writer`` (a batch or transaction): add these counts to one of the day's shards."""
    fields: dict[str, Any] = {
        DAY_FIELD: start_of(day),
        TTL_FIELD: start_of(day) + timedelta(days=1 + KEEP_DAYS),
    }
    fields |= {name: firestore.Increment(n) for name, n in counts.items() if n}
    if reasons:
        fields[REASONS] = {reason(r): firestore.Increment(n) for r, n in reasons.items() if n}
    if waits:
        fields[WAITS] = {bucket_name(b): firestore.Increment(n) for b, n in waits.items() if n}
    shard = random.randrange(SHARDS)
    writer.set(daily(client, organization_id).document(document_id(day, shard)), fields, merge=True)


def add_notification(
    writer: Any, client: firestore.Client, organization_id: str, created_at: datetime
) -> None:
    """A notification stored (same commit as its record)."""
    add(writer, client, organization_id, day_of(created_at), {"notifications": 1})


def add_deliveries(
    writer: Any,
    client: firestore.Client,
    organization_id: str,
    outcomes: Iterable[tuple[str, str | None, datetime | None]],
    fallback: datetime,
) -> None:
    """A batch's records finished (same fenced commit that marks the batch done): each
    ``(status, error, sent_at)`` counted on its send's day (``fallback``'s without one)."""
    sent: dict[date, int] = {}
    failed: dict[date, dict[str, int]] = {}
    for status, error, sent_at in outcomes:
        day = day_of(sent_at or fallback)
        if status == "sent":
            sent[day] = sent.get(day, 0) + 1
        elif status == "failed":
            by_reason = failed.setdefault(day, {})
            by_reason[reason(error)] = by_reason.get(reason(error), 0) + 1
    for day in sorted(set(sent) | set(failed)):
        reasons = failed.get(day, {})
        counts = {"devices_sent": sent.get(day, 0), "failed": sum(reasons.values())}
        add(writer, client, organization_id, day, counts, reasons)


def add_receipt(
    writer: Any,
    client: firestore.Client,
    organization_id: str,
    delivered_at: datetime,
    sent_at: datetime | None,
) -> None:
    """A receipt confirmed (same commit as its document's create)."""
    waits = {} if sent_at is None else {bucket_of((delivered_at - sent_at).total_seconds()): 1}
    add(writer, client, organization_id, day_of(delivered_at), {"delivered": 1}, waits=waits)
