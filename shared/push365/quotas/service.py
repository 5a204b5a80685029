"""The quota check: count a call in each of its class's windows; past a limit, refuse it."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Mapping
from datetime import datetime

from push365.errors import QuotaExceeded
from push365.model import utc_now
from push365.quotas.model import QuotaClass, Window
from push365.quotas.repository import CounterKey, QuotaCounter
from push365.store import ORGANIZATIONS, QUOTAS, THROTTLES

_REMEMBERED = 1024
"""Full windows remembered before the ended ones are dropped."""


class QuotaService:
    """Counts calls per organization (or caller, or route) and route in fixed windows.

    A class with several shards counts each window on that many documents, each admitting its
    share of the limit (``ceil(limit / shards)``): a call counts on a random shard and, when that
    one is full, on the next ones in turn, so a call is refused only once every shard is full
    (at most ``shards * share`` calls pass: the limit, rounded up to whole shares). A window
    seen full is remembered by this instance until it ends: its further calls are refused
    without a write.
    """

    def __init__(
        self,
        counter: QuotaCounter,
        classes: Mapping[str, QuotaClass],
        clock: Callable[[], datetime] = utc_now,
        shard: Callable[[int], int] = random.randrange,
    ) -> None:
        self._counter = counter
        self._classes = classes
        self._clock = clock
        self._shard = shard
        self._full: dict[tuple[str, ...], datetime] = {}

    def check(self, route: str, quota: str, *, organization_id: str | None, caller: str) -> None:
        """Count this call of ``route`` (its operation id) against quota class ``quota``.

        A call refused by one window is still counted in the others (a caller that keeps
        calling keeps its windows full).

        Raises:
            QuotaExceeded: over a limit; ``retry_after`` is when the (longest) refusing window
                ends.
            google.api_core.exceptions.GoogleAPICallError, RetryError: the store did not count.
        """
        limits = self._classes[quota]
        now = self._clock()
        if len(self._full) > _REMEMBERED:
            self._full = {name: ends for name, ends in self._full.items() if ends > now}
        windows = [(limit, Window.of(now, seconds)) for period, limit, seconds in limits.periods()]
        keys = [
            [
                self._key(limits, route, period, window, organization_id, caller, n)
                for n in range(limits.shards)
            ]
            for (period, _, _), (_, window) in zip(limits.periods(), windows, strict=True)
        ]
        full = [
            window.retry_after(now)
            for (_, window), shards in zip(windows, keys, strict=True)
            if self._full.get(shards[0].path, now) > now
        ]
        if full:
            raise QuotaExceeded(retry_after=max(full))
        first = self._shard(limits.shards) if limits.shards > 1 else 0
        counts = self._counter.hit([shards[first] for shards in keys])
        refused = []
        for (limit, window), shards, count in zip(windows, keys, counts, strict=True):
            share = math.ceil(limit / len(shards))
            tried = 1
            while count > share and tried < len(shards):
                (count,) = self._counter.hit([shards[(first + tried) % len(shards)]])
                tried += 1
            if count > share:
                self._full[shards[0].path] = window.ends
                refused.append(window.retry_after(now))
        if refused:
            raise QuotaExceeded(retry_after=max(refused))

    @staticmethod
    def _key(
        limits: QuotaClass,
        route: str,
        period: str,
        window: Window,
        organization_id: str | None,
        caller: str,
        shard: int,
    ) -> CounterKey:
        suffix = "" if limits.shards == 1 else f"-{shard}"
        if limits.scope == "organization":
            if organization_id is None:
                raise ValueError("an organization quota needs an authenticated organization")
            name = f"{route}-{period}-{window.number}{suffix}"
            return CounterKey((ORGANIZATIONS, organization_id, QUOTAS, name), window.ends)
        who = caller if limits.scope == "caller" else "*"
        scope = hashlib.sha256(f"quota:{route}:{period}:{who}".encode()).hexdigest()
        return CounterKey((THROTTLES, f"{scope}-{window.number}{suffix}"), window.ends)
