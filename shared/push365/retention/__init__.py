"""How long each kind of record may live, and the field Firestore's TTL policy reads.

The privacy policy: an unsubscribed token is gone from the live database within 30 days (Push365
erases the token itself at unsubscribe; the tombstone left, with no token, goes by ``purge_by``).
Notification records (metadata only) live ``notification_retention_days`` (90 by default).
A subscription its browser has not refreshed for ``stale_subscription_days`` (60 by default; the
subscribe page refreshes weekly) is stale: purge unsubscribes it (its token erased, reason
``stale``), and its tombstone goes like any unsubscribed one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

TTL_FIELD = "expire_at"
"""The one field a Firestore TTL policy deletes documents by (a backstop for purge)."""

MAX_UNSUBSCRIBE_RETENTION_DAYS = 30

DEFAULT_STALE_SUBSCRIPTION_DAYS = 60
"""A subscription not seen (subscribed or refreshed by its browser) for this long is stale."""
MAX_STALE_SUBSCRIPTION_DAYS = 269  # under FCM's own expiry of tokens inactive for 270 days


PURGE_INTERVAL = timedelta(days=1)
"""How often purge runs (Cloud Scheduler, daily: ``infra/scheduler.tf``): a record is deleted
by the first run after its ``purge_by``, so up to this long after it."""


def unsubscribed_purge_by(unsubscribed_at: datetime, retention_days: int) -> datetime:
    """When an unsubscribed subscription's tombstone becomes due: a purge interval before the
    ``retention_days`` are up, so that the daily purge has deleted it by then (30 days after
    unsubscribe at the most, the policy's promise)."""
    if not 0 <= retention_days <= MAX_UNSUBSCRIBE_RETENTION_DAYS:
        raise ValueError("unsubscribe retention must be between 0 and 30 days")
    return unsubscribed_at + max(timedelta(days=retention_days) - PURGE_INTERVAL, timedelta(0))
