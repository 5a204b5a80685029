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


class QuotaService:
    """Counts calls per organization (or caller, or route) and route in fixed windows."""

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

    def check(
        self, route: str, quota: str, *, organization_id: str | None, caller: str
    ) -> None:
        """Count this call of ``route`` (its operation id) against quota class ``quota``.

        A call over a limit is counted too (a caller that keeps calling keeps its window full).

        Raises:
            QuotaExceeded: over a limit; ``retry_after`` is when the (longest) refusing window
                ends.
            google.api_core.exceptions.GoogleAPICallError, RetryError: the store did not count.
        """
        limits = self._classes[quota]
        now = self._clock()
        shard = self._shard(limits.shards) if limits.shards > 1 else None
        planned: list[tuple[int, Window, list[CounterKey]]] = []
        for period, limit, seconds in limits.periods():
            window = Window.of(now, seconds)
            shards = [None] if shard is None else list(range(limits.shards))
            keys = [
                self._key(limits, route, period, window, organization_id, caller, n)
                for n in shards
            ]
            planned.append((limit, window, keys))
        mine = [keys[0 if shard is None else shard] for _, _, keys in planned]
        counts = self._counter.hit(mine)
        refused = [
            window.retry_after(now)
            for (limit, window, keys), count in zip(planned, counts, strict=True)
            if count > math.ceil(limit / len(keys))
            and (len(keys) == 1 or self._counter.total(keys) > limit)
        ]
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
        shard: int | None,
    ) -> CounterKey:
        suffix = "" if shard is None else f"-{shard}"
        if limits.scope == "organization":
            if organization_id is None:
                raise ValueError("an organization quota needs an authenticated organization")
            name = f"{route}-{period}-{window.number}{suffix}"
            return CounterKey((ORGANIZATIONS, organization_id, QUOTAS, name), window.ends)
        who = caller if limits.scope == "caller" else "*"
        scope = hashlib.sha256(f"quota:{route}:{period}:{who}".encode()).hexdigest()
        return CounterKey((THROTTLES, f"{scope}-{window.number}{suffix}"), window.ends)
