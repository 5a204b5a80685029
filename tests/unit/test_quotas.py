"""The quota check over an in-memory counter: fixed windows, shards that admit the whole limit
and no more, a full window remembered until it ends."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from push365.errors import QuotaExceeded
from push365.quotas import QuotaClass, QuotaService, Window
from push365.quotas.repository import CounterKey

START = datetime(2030, 1, 7, 12, 0, 10, tzinfo=UTC)


class MemoryCounter:
    def __init__(self) -> None:
        self.counts: Counter[tuple[str, ...]] = Counter()
        self.writes = 0

    def hit(self, keys: Sequence[CounterKey]) -> list[int]:
        self.writes += 1
        for key in keys:
            self.counts[key.path] += 1
        return [self.counts[key.path] for key in keys]


def service(quota: QuotaClass, seed: int = 0) -> tuple[QuotaService, MemoryCounter, list[datetime]]:
    counter = MemoryCounter()
    now = [START]
    picks = random.Random(seed)
    checks = QuotaService(counter, {quota.name: quota}, clock=lambda: now[0], shard=picks.randrange)
    return checks, counter, now


def admitted(checks: QuotaService, name: str, calls: int, org: str = "org") -> int:
    passed = 0
    for _ in range(calls):
        try:
            checks.check("send_post_root", name, organization_id=org, caller="x")
            passed += 1
        except QuotaExceeded:
            pass
    return passed


@pytest.mark.parametrize("seed", range(20))
def test_a_sharded_window_admits_exactly_its_limit_whatever_the_shards_picked(seed: int) -> None:
    checks, _, _ = service(QuotaClass("send", per_minute=300, per_day=None, shards=10), seed)

    assert admitted(checks, "send", 400) == 300


def test_a_full_window_is_refused_without_a_write_until_it_ends() -> None:
    checks, counter, now = service(QuotaClass("read", per_minute=3, per_day=None))
    admitted(checks, "read", 4)
    writes = counter.writes

    with pytest.raises(QuotaExceeded) as refused:
        checks.check("send_post_root", "read", organization_id="org", caller="x")
    now[0] = START + timedelta(seconds=50)

    assert counter.writes == writes
    assert refused.value.retry_after == 51
    assert admitted(checks, "read", 4) == 3  # the next minute


def test_organizations_callers_and_routes_count_apart() -> None:
    checks, counter, _ = service(QuotaClass("link", per_minute=2, per_day=None, scope="caller"))
    for caller in ("203.0.113.9", "203.0.113.9", "198.51.100.7"):
        checks.check("register_get_confirm_email", "link", organization_id=None, caller=caller)
    checks.check("register_get_rules", "link", organization_id=None, caller="203.0.113.9")

    assert sorted(counter.counts.values()) == [1, 1, 2]
    assert all(path[0] == "throttles" for path in counter.counts)
    assert not any("203.0" in path[1] or "198.51" in path[1] for path in counter.counts)


def test_a_window_ends_where_the_next_begins() -> None:
    window = Window.of(START, 60)

    assert window.ends == datetime(2030, 1, 7, 12, 1, tzinfo=UTC)
    assert Window.of(window.ends, 60).number == window.number + 1
    assert window.retry_after(START) == 51
