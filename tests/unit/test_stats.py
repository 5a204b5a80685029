"""The delivery report's arithmetic: days in UTC, failures by reason, receipts, the median."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from push365.notifications.stats import (
    DeliveryFacts,
    Facts,
    SubscriptionFacts,
    daily,
    report,
)

DAY = date(2026, 11, 28)


def at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


YESTERDAY = DAY - timedelta(days=1)


def test_each_day_counts_what_happened_that_day_in_utc() -> None:
    facts = Facts(
        notifications=[at(YESTERDAY, 23, 59), at(DAY, 0, 0), at(DAY, 12)],
        deliveries=[
            DeliveryFacts("sent", None, at(DAY, 0, 0, 1), at(DAY, 0, 0, 3)),  # 2 s
            DeliveryFacts("sent", None, at(DAY, 12), at(DAY, 12, 0, 10)),  # 10 s
            DeliveryFacts("sent", None, at(DAY, 12), at(DAY, 12, 0, 4)),  # 4 s
            DeliveryFacts("sent", None, at(DAY, 12), None),  # no receipt
            DeliveryFacts("failed", "unregistered", at(DAY, 12), None),
            DeliveryFacts("failed", "unregistered", at(DAY, 12), None),
            DeliveryFacts("failed", "invalid_argument", at(DAY, 12), None),
            DeliveryFacts("failed", None, at(YESTERDAY, 23, 59), None),
            DeliveryFacts("sent", None, at(YESTERDAY, 23, 59, 50), at(DAY, 0, 0, 10)),  # late
        ],
        subscriptions=[
            SubscriptionFacts(at(YESTERDAY, 8), None),
            SubscriptionFacts(at(YESTERDAY, 9), at(DAY, 10)),  # active yesterday, gone today
            SubscriptionFacts(at(DAY, 9), None),
            SubscriptionFacts(at(DAY, 9), at(DAY, 11)),  # new today, not active at its end
            SubscriptionFacts(None, None),  # a tombstone whose dates were purged
        ],
    )

    stats = daily(2, DAY, facts)

    assert (stats.days, stats.first_day, stats.last_day) == (2, YESTERDAY, DAY)
    before, today = stats.per_day
    assert today.model_dump() == {
        "date": DAY,
        "subscriptions_active": 2,
        "subscriptions_new": 2,
        "notifications": 2,
        "devices_sent": 4,
        "failed": 3,
        "failed_by_reason": {"invalid_argument": 1, "unregistered": 2},
        "delivered": 4,  # by receipt on this day, one of them sent the day before
        "median_seconds_to_delivery": 7.0,  # of 2, 4, 10 and 20 s
    }
    assert before.subscriptions_active == 2
    assert before.subscriptions_new == 2
    assert before.notifications == 1
    assert before.devices_sent == 1
    assert before.failed_by_reason == {"unknown": 1}
    assert before.delivered == 0
    assert before.median_seconds_to_delivery is None


class Reader:
    def __init__(self) -> None:
        self.asked: list[tuple[str, datetime]] = []

    def facts(self, organization_id: str, since: datetime) -> Facts:
        self.asked.append((organization_id, since))
        return Facts([], [], [])


def test_the_report_reads_from_a_day_before_its_first_day() -> None:
    reader = Reader()
    stats = report(reader, "org", 7, at(DAY, 15))
    assert reader.asked == [("org", at(DAY - timedelta(days=7), 0))]
    assert [day.date for day in stats.per_day] == [
        DAY - timedelta(days=n) for n in range(6, -1, -1)
    ]
    assert all(day.notifications == 0 for day in stats.per_day)
