"""What purge deletes, as data: one rule per kind of record, each an indexed range query.

Purge, the audit command and the deploy's index definitions all read this one list, so a
query and its index cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from push365.daily.counts import DAY_FIELD, KEEP_DAYS
from push365.retention import (
    DEFAULT_STALE_SUBSCRIPTION_DAYS,
    MAX_UNSUBSCRIBE_RETENTION_DAYS,
)
from push365.store import (
    BATCHES,
    DAILY,
    DEDUP,
    NOTIFICATIONS,
    ORGANIZATIONS,
    RECEIPTS,
    SIGNUP_CODES,
    SUBSCRIPTIONS,
)


@dataclass(frozen=True)
class RetentionRule:
    """Documents of ``collection`` (a collection group unless ``top_level``) whose ``field`` is
    at or before the cutoff (and, when ``status`` is set, whose status is that) are due.

    Due documents are deleted; with ``tombstone_days`` set they are unsubscribed instead (token
    erased), and their tombstone is due that many days later.
    """

    kind: str
    collection: str
    field: str
    top_level: bool = False
    keep_days: int = 0  # cutoff = as_of - keep_days
    status: str | None = None
    tombstone_days: int | None = None

    def cutoff(self, as_of: datetime) -> datetime:
        """The latest value of ``field`` that is due at ``as_of``."""
        return as_of - timedelta(days=self.keep_days)


def retention_rules(
    notification_retention_days: int,
    stale_subscription_days: int = DEFAULT_STALE_SUBSCRIPTION_DAYS,
    unsubscribe_retention_days: int = MAX_UNSUBSCRIBE_RETENTION_DAYS,
) -> list[RetentionRule]:
    """Every kind purge deletes (or unsubscribes), in the order it does them."""
    return [
        # Tombstones of unsubscribed browsers (the token itself went at unsubscribe).
        RetentionRule("subscriptions", SUBSCRIPTIONS, "purge_by"),
        # Active subscriptions their browser stopped refreshing: unsubscribed, never sent to again.
        RetentionRule(
            "stale_subscriptions",
            SUBSCRIPTIONS,
            "last_seen_at",
            keep_days=stale_subscription_days,
            status="active",
            tombstone_days=unsubscribe_retention_days,
        ),
        # Receipts, the fan-out's batches (with the delivery records), then the notifications.
        RetentionRule("receipts", RECEIPTS, "delivered_at", keep_days=notification_retention_days),
        RetentionRule("batches", BATCHES, "created_at", keep_days=notification_retention_days),
        RetentionRule(
            "notifications", NOTIFICATIONS, "created_at", keep_days=notification_retention_days
        ),
        # Replay protection: 24 hours.
        RetentionRule("dedup_keys", DEDUP, "expires_at"),
        # Signup codes once expired (used or not). (Not the throttle counters: Firestore's TTL
        # deletes them a day at most after their window; a query on expire_at, the TTL field,
        # has no index in production: infra/firestore.tf turns its indexes off.)
        RetentionRule("signup_codes", SIGNUP_CODES, "expires_at", top_level=True),
        # An organization's daily counts (no one's data): 91 days after their day ends.
        RetentionRule("daily_counts", DAILY, DAY_FIELD, keep_days=1 + KEEP_DAYS),
        # Organizations removed by an erasure that did not finish.
        RetentionRule("organizations", ORGANIZATIONS, "removed_at", top_level=True),
    ]
