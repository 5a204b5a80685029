"""The cost of the routes that read an organization's history, measured as the bytes the store
sends back to the functions (through a counting proxy in front of the Firestore emulator), not
as time (time is bench/route_cost.py's): ``GET /send/stats?days=90`` reads as much at 10,000
notifications as at 100 (it answers from the daily counts, O(days), where it once read every
notification's receipts and batches), and the first page of ``GET /privacy/export`` reads as
much at 10,000 subscriptions as at 1,000 (one page, with the token of the next). (The report
also reads the subscribes and unsubscribes within its days, one date each, by design: the two
organizations here hold as many subscriptions.) Each test's ``RESULT`` line has the bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from devstack.emulator import FirestoreEmulator
from tests.conftest import RESULT_PROPERTY
from tests.faults import TcpProxy
from tests.history import seed_export, seed_stats
from tests.integration.conftest import ORG, OTHER_ORG, Answer, Functions, register
from tests.integration.test_audit_contract import rewire

pytestmark = pytest.mark.emulator

SMALL_STATS, LARGE_STATS = 100, 10_000
SUBSCRIPTIONS = 100  # (the same in both: the report reads the range's subscribes, by design)
SMALL_EXPORT, LARGE_EXPORT = 1_000, 10_000  # (both more than one page's subscriptions)
# What may differ between the two: bigger numbers in the same count documents, another shard of
# a day's counts, a longer page token. Far less than one notification's or subscription's bytes
# per hundred of them.
GROWTH_BOUND = 8_192


@pytest.fixture
def proxy(emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[TcpProxy]:
    """The functions' services built anew to reach the store through a counting proxy (and
    built anew without it after the test); the test's own ``store`` client goes direct."""
    counting = TcpProxy(emulator.address)
    rewire(monkeypatch, FIRESTORE_EMULATOR_HOST=counting.address)
    try:
        yield counting
    finally:
        monkeypatch.undo()
        rewire(monkeypatch)
        counting.stop()


def bytes_read(proxy: TcpProxy, call: Callable[[], Answer]) -> tuple[int, Answer]:
    """The bytes the store sent back during one call, and its answer."""
    before = proxy.bytes_answered
    answer = call()
    return proxy.bytes_answered - before, answer


def test_the_report_of_90_days_reads_as_much_at_10000_notifications_as_at_100(
    api: Functions, store: Any, proxy: TcpProxy, record_property: Any
) -> None:
    small, large = register(api, ORG), register(api, OTHER_ORG)
    now = datetime.now(UTC)
    seed_stats(store, ORG, SMALL_STATS, now, subscriptions=SUBSCRIPTIONS)
    seed_stats(store, OTHER_ORG, LARGE_STATS, now, subscriptions=SUBSCRIPTIONS)

    def stats(key: str) -> Answer:
        return api.get("/send/stats", key=key, query={"days": "90"})

    stats(small)  # (the channel opened and its settings exchanged: not a read)
    small_bytes, small_answer = bytes_read(proxy, lambda: stats(small))
    large_bytes, large_answer = bytes_read(proxy, lambda: stats(large))

    record_property(
        RESULT_PROPERTY,
        f"RESULT route_cost_stats bytes_small={small_bytes} bytes_large={large_bytes}",
    )
    assert small_answer.status_code == large_answer.status_code == 200, large_answer.text
    sent = [
        sum(d["notifications"] for d in a.json["per_day"]) for a in (small_answer, large_answer)
    ]
    assert sent == [SMALL_STATS, LARGE_STATS]
    assert large_bytes - small_bytes <= GROWTH_BOUND, (small_bytes, large_bytes)


def test_the_first_page_of_an_export_reads_as_much_at_10000_subscriptions_as_at_1000(
    api: Functions, store: Any, proxy: TcpProxy, record_property: Any
) -> None:
    small, large = register(api, ORG), register(api, OTHER_ORG)
    now = datetime.now(UTC)
    seed_export(store, ORG, SMALL_EXPORT, now)
    seed_export(store, OTHER_ORG, LARGE_EXPORT, now)

    def export(key: str) -> Answer:
        return api.get("/privacy/export", key=key)

    export(small)  # (the channel opened and its settings exchanged: not a read)
    small_bytes, small_answer = bytes_read(proxy, lambda: export(small))
    large_bytes, large_answer = bytes_read(proxy, lambda: export(large))

    record_property(
        RESULT_PROPERTY,
        f"RESULT route_cost_export bytes_small={small_bytes} bytes_large={large_bytes}",
    )
    assert small_answer.status_code == large_answer.status_code == 200, large_answer.text
    pages = (small_answer.json, large_answer.json)
    assert [len(p["subscriptions"]) for p in pages] == [len(pages[0]["subscriptions"])] * 2
    assert len(pages[1]["subscriptions"]) < SMALL_EXPORT
    assert all(p["next_page_token"] for p in pages)
    assert large_bytes - small_bytes <= GROWTH_BOUND, (small_bytes, large_bytes)
