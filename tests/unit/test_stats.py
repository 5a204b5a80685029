"""The delivery report's arithmetic: days in UTC, shards added up, subscriptions from the counts
at each day's bounds, the median from the day's histogram."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from push365.daily.counts import BUCKETS, RATIO, bucket_of, lower_bound, median
from push365.notifications.stats import DayCounts, Facts, daily_stats, report

DAY = date(2026, 11, 28)
YESTERDAY = DAY - timedelta(days=1)
TOMORROW = DAY + timedelta(days=1)


def at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def test_each_day_reports_its_counts_and_subscriptions_from_the_bounds() -> None:
    waits = Counter(bucket_of(s) for s in (2, 4, 10, 20))
    facts = Facts(
        days={
            DAY: DayCounts(2, 4, 3, Counter({"unregistered": 2, "invalid_argument": 1}), 4, waits),
            YESTERDAY: DayCounts(1, 1, 1, Counter({"unknown": 1})),
        },
        # 2 created before yesterday... : 2 yesterday, 2 today
        created_before={YESTERDAY: 0, DAY: 2, TOMORROW: 4},
        ended_before={DAY: 0, TOMORROW: 2},
    )

    stats = daily_stats(2, DAY, facts)

    assert (stats.days, stats.first_day, stats.last_day) == (2, YESTERDAY, DAY)
    before, today = stats.per_day
    reported = today.model_dump()
    assert reported.pop("median_seconds_to_delivery") == pytest.approx(7.0, rel=0.05)
    assert reported == {
        "date": DAY,
        "subscriptions_active": 2,
        "subscriptions_new": 2,
        "notifications": 2,
        "devices_sent": 4,
        "failed": 3,
        "failed_by_reason": {"invalid_argument": 1, "unregistered": 2},
        "delivered": 4,
    }
    assert (before.subscriptions_active, before.subscriptions_new) == (2, 2)
    assert (before.notifications, before.devices_sent) == (1, 1)
    assert before.failed_by_reason == {"unknown": 1}
    assert before.delivered == 0
    assert before.median_seconds_to_delivery is None


class Reader:
    def __init__(self) -> None:
        self.asked: list[tuple[str, date, date]] = []

    def facts(self, organization_id: str, first: date, last: date) -> Facts:
        self.asked.append((organization_id, first, last))
        return Facts({}, {}, {})


def test_the_report_asks_for_its_days_only() -> None:
    reader = Reader()
    stats = report(reader, "org", 7, at(DAY, 15))
    assert reader.asked == [("org", DAY - timedelta(days=6), DAY)]
    assert [day.date for day in stats.per_day] == [
        DAY - timedelta(days=n) for n in range(6, -1, -1)
    ]
    assert all(day.notifications == 0 for day in stats.per_day)


@pytest.mark.parametrize("seconds", [0.1, 0.11, 1.0, 2.5, 59.9, 3600.0, 86_399.0, 6 * 86_400.0])
def test_a_wait_falls_in_the_bucket_whose_bounds_hold_it(seconds: float) -> None:
    bucket = bucket_of(seconds)
    assert lower_bound(bucket) <= seconds < lower_bound(bucket + 1)


def test_the_buckets_cover_0_to_a_week_and_above() -> None:
    assert bucket_of(-1.0) == bucket_of(0.0) == 0
    assert bucket_of(7 * 86_400.0) == bucket_of(10**9) == BUCKETS - 1
    assert lower_bound(BUCKETS - 1) >= 7 * 86_400.0 > lower_bound(BUCKETS - 2)


@pytest.mark.parametrize(
    "waits",
    [
        [3.0],
        [2.0, 4.0, 10.0, 20.0],
        [0.4 * 1.013**n for n in range(501)],
        [0.2, 0.3, 0.5, 1.2, 1.3, 900.0, 3600.0],
        [5.0] * 9 + [86_000.0] * 10,
    ],
)
def test_the_median_from_the_histogram_is_within_the_documented_precision(
    waits: list[float],
) -> None:
    exact = statistics.median(waits)
    estimate = median(Counter(bucket_of(w) for w in waits))
    assert estimate is not None
    # each middle value within its bucket's geometric middle: at most sqrt(RATIO) - 1 off
    assert abs(estimate - exact) <= exact * (RATIO**0.5 - 1) + 0.001


def test_no_receipts_no_median_and_tiny_waits_report_their_bucket() -> None:
    assert median(Counter()) is None
    assert median(Counter({bucket_of(0.01): 3})) == 0.05
