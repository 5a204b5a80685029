"""Quota classes (what each route may be called, per minute and per day) and fixed windows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

QuotaScope = Literal["organization", "caller", "route"]
"""Who a quota counts for: the authenticated organization; the caller's address (a route
without a key); or the route as a whole (the operator's routes)."""

MINUTE = 60
DAY = 86_400


@dataclass(frozen=True)
class Window:
    """One fixed window of ``seconds``: its number since the epoch and when it ends."""

    number: int
    ends: datetime

    @classmethod
    def of(cls, now: datetime, seconds: int) -> Window:
        number = int(now.timestamp()) // seconds
        return cls(number, datetime.fromtimestamp((number + 1) * seconds, tz=now.tzinfo))

    def retry_after(self, now: datetime) -> int:
        """Whole seconds until the window ends (at least 1): the ``Retry-After`` value."""
        return max(1, int((self.ends - now).total_seconds()) + 1)


@dataclass(frozen=True)
class QuotaClass:
    """The limits a route declares (``Operation(quota=...)``)."""

    name: str
    per_minute: int
    per_day: int | None
    scope: QuotaScope = "organization"
    shards: int = 1
    """Counter documents per window: Firestore sustains about one write a second on one
    document, so a route an organization may call many times a second counts on several,
    each admitting a share of the limit (see ``QuotaService``)."""

    def periods(self) -> list[tuple[str, int, int]]:
        """(period name, limit, window seconds) of each limit."""
        found = [("minute", self.per_minute, MINUTE)]
        if self.per_day is not None:
            found.append(("day", self.per_day, DAY))
        return found


QUOTA_CLASSES: dict[str, QuotaClass] = {
    quota.name: quota
    for quota in (
        # Dataverse's webhooks send (one call per event): bursts of a bulk update or import.
        QuotaClass("send", per_minute=3000, per_day=100_000, shards=10),
        # Dataverse's webhooks keeping users and browsers in step (users, subscribe, ...).
        QuotaClass("webhook", per_minute=1200, per_day=100_000, shards=4),
        # A caller polling a send's progress.
        QuotaClass("status", per_minute=600, per_day=20_000),
        # Reports, exports, rules and previews: read by a person or a page.
        QuotaClass("read", per_minute=60, per_day=2_000),
        # Key rotation, rules changes, erasure: an administrator's occasional change.
        QuotaClass("admin", per_minute=60, per_day=500),
        # A browser's delivery receipt (no key): per address; one office's browsers share one.
        QuotaClass("receipt", per_minute=3000, per_day=None, scope="caller", shards=4),
        # A link Push365 mailed (no key): per address.
        QuotaClass("link", per_minute=30, per_day=500, scope="caller"),
        # The operator's and the scheduler's routes: the route as a whole.
        QuotaClass("operator", per_minute=60, per_day=2_000, scope="route"),
    )
}
"""README "Quotas" states this table."""
