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


def unsubscribed_purge_by(unsubscribed_at: datetime, retention_days: int) -> datetime:
    """When an unsubscribed subscription's tombstone must be gone from the live database."""
    if not 0 <= retention_days <= MAX_UNSUBSCRIBE_RETENTION_DAYS:
        raise ValueError("unsubscribe retention must be between 0 and 30 days")
    return unsubscribed_at + timedelta(days=retention_days)
