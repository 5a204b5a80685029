"""What purge deletes, as data: one rule per kind of record, each an indexed range query.

Purge, the audit command and the deploy's index definitions all read this one list, so a
query and its index cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from push365.store import (
    BATCHES,
    DEDUP,
    DELIVERIES,
    NOTIFICATIONS,
    ORGANIZATIONS,
    SUBSCRIPTIONS,
)


@dataclass(frozen=True)
class RetentionRule:
    """Documents of ``collection`` (a collection group unless ``top_level``) whose ``field`` is
    at or before the cutoff are due."""

    kind: str
    collection: str
    field: str
    top_level: bool = False
    keep_days: int = 0  # cutoff = as_of - keep_days

    def cutoff(self, as_of: datetime) -> datetime:
        """The latest value of ``field`` that is due at ``as_of``."""
        return as_of - timedelta(days=self.keep_days)


def retention_rules(notification_retention_days: int) -> list[RetentionRule]:
    """Every kind purge deletes, in the order it deletes them."""
    return [
        # Tombstones of unsubscribed browsers (the token itself went at unsubscribe).
        RetentionRule("subscriptions", SUBSCRIPTIONS, "purge_by"),
        # Per-device delivery records and the fan-out's batches, then the notification records.
        RetentionRule("deliveries", DELIVERIES, "sent_at", keep_days=notification_retention_days),
        RetentionRule("batches", BATCHES, "created_at", keep_days=notification_retention_days),
        RetentionRule(
            "notifications", NOTIFICATIONS, "created_at", keep_days=notification_retention_days
        ),
        # Replay protection: 24 hours.
        RetentionRule("dedup_keys", DEDUP, "expires_at"),
        # Organizations removed by an erasure that did not finish.
        RetentionRule("organizations", ORGANIZATIONS, "removed_at", top_level=True),
    ]
