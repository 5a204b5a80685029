"""Benchmark the cost of two routes that read an organization's history: ``GET /send/stats`` at
10,000 notifications and ``GET /privacy/export`` at 10,000 subscriptions, each against a baseline
in the same run.

Stats: the report of 7 days (``report`` over ``FirestoreStatsReader``, as ``/send/stats`` calls
it) from the daily count documents, against the read-everything reader this one replaced (each
notification's receipts and batches, and every subscription: ``ReadAllStatsReader`` below, the
code as it was) over the same stored data; both answers must be equal but for the median (the
histogram's estimate, within its documented 4.9 %). Export: the first page (``PrivacyService.
export`` as ``/privacy/export`` calls it) against the whole export at once (the same store with
no page bound, which is what every export was). The seed writes what the functions would have
written: each notification with one batch of 3 delivery records (2 sent, 1 failed) and one
receipt, and the days' counts those add up to; as many subscriptions as notifications, created
over a year, 1 in 20 unsubscribed within the last 30 days.

Last line: ``RESULT route_cost stats_seconds=<s> stats_baseline_s=<s> stats_ratio=<r>
export_seconds=<s> export_baseline_s=<s> export_ratio=<r>`` (ratio: baseline over Push365, how
many times faster; a read-all baseline past ``--baseline-timeout`` is reported as ``>N``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "shared"))

from devstack.emulator import FirestoreEmulator  # noqa: E402
from tests import history  # noqa: E402
from tests.conftest import free_port  # noqa: E402

PROJECT = "demo-push365-bench"
STATS_ORG = "5a000000-0000-4000-8000-000000000001"
EXPORT_ORG = "5a000000-0000-4000-8000-000000000002"
DAYS = 7


def seed_stats(client: Any, notifications: int, now: datetime) -> None:
    client.collection("organizations").document(STATS_ORG).set({"id": STATS_ORG})
    history.seed_stats(client, STATS_ORG, notifications, now, DAYS)


def seed_export(client: Any, subscriptions: int, now: datetime) -> None:
    client.collection("organizations").document(EXPORT_ORG).set({"id": EXPORT_ORG})
    history.seed_export(client, EXPORT_ORG, subscriptions, now)


@dataclass(frozen=True)
class _Delivery:
    status: str
    error: str | None
    sent_at: datetime | None
    delivered_at: datetime | None


class ReadAllStatsReader:
    """The baseline: the report as it was computed before the daily counts (each notification's
    receipts and batches read, every subscription read), the same answer's shape."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def report(self, organization_id: str, days: int, now: datetime) -> dict[str, Any]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        from push365.notifications.deliveries import decode_records, sent_at
        from push365.store import bounded

        # (as it was, but with 600 s for each read)
        within = bounded(600)
        today = now.astimezone(UTC).date()
        first = today - timedelta(days=days - 1)
        since = datetime.combine(first, clock(), UTC) - timedelta(days=1)
        notifications = self._client.collection("organizations", organization_id, "notifications")
        created: list[datetime] = []
        deliveries: list[_Delivery] = []
        recent = notifications.where(filter=FieldFilter("created_at", ">=", since))
        # (read whole first: one stream open while each notification's reads run passed even
        # 600 s at 10,000 notifications; the deployed code's 10 s ended it far sooner)
        for snapshot in list(recent.select(["created_at"]).stream(**within)):
            created.append(snapshot.get("created_at"))
            receipts = snapshot.reference.collection("receipts").select(["delivered_at"])
            delivered = {
                r.id: (r.to_dict() or {}).get("delivered_at") for r in receipts.stream(**within)
            }
            batches = snapshot.reference.collection("batches").select(["deliveries"])
            for batch in batches.stream(**within):
                for device, record in decode_records(
                    (batch.to_dict() or {}).get("deliveries")
                ).items():
                    deliveries.append(
                        _Delivery(
                            str(record.get("status") or ""),
                            record.get("error"),
                            sent_at(record),
                            delivered.get(device),
                        )
                    )
        subscriptions = [
            s.to_dict() or {}
            for s in self._client.collection("organizations", organization_id, "subscriptions")
            .select(["created_at", "unsubscribed_at"])
            .stream(**within)
        ]
        per_day = []
        for day in (first + timedelta(days=n) for n in range(days)):
            end = datetime.combine(day + timedelta(days=1), clock(), UTC)
            failed = Counter(
                d.error or "unknown"
                for d in deliveries
                if d.status == "failed" and d.sent_at and d.sent_at.date() == day
            )
            waits = [
                max((d.delivered_at - d.sent_at).total_seconds(), 0.0)
                for d in deliveries
                if d.delivered_at and d.sent_at and d.delivered_at.date() == day
            ]
            per_day.append(
                {
                    "date": day.isoformat(),
                    "subscriptions_active": sum(
                        1
                        for s in subscriptions
                        if s.get("created_at") is not None
                        and s["created_at"] < end
                        and (s.get("unsubscribed_at") is None or s["unsubscribed_at"] >= end)
                    ),
                    "subscriptions_new": sum(
                        1
                        for s in subscriptions
                        if s.get("created_at") and s["created_at"].date() == day
                    ),
                    "notifications": sum(1 for c in created if c.date() == day),
                    "devices_sent": sum(
                        1
                        for d in deliveries
                        if d.status == "sent" and d.sent_at and d.sent_at.date() == day
                    ),
                    "failed": sum(failed.values()),
                    "failed_by_reason": dict(sorted(failed.items())),
                    "delivered": len(waits),
                    "median_seconds_to_delivery": round(statistics.median(waits), 3)
                    if waits
                    else None,
                }
            )
        return {"days": days, "first_day": first.isoformat(), "last_day": today.isoformat(),
                "per_day": per_day}  # fmt: skip


def timed(call: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """The median seconds of ``repeats`` calls, and the last answer."""
    seconds = []
    answer = None
    for _ in range(repeats):
        started = time.perf_counter()
        answer = call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), answer


def _same_but_median(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    for mine, old in zip(ours["per_day"], theirs["per_day"], strict=True):
        mine, old = dict(mine), dict(old)
        estimate, exact = (
            mine.pop("median_seconds_to_delivery"),
            old.pop("median_seconds_to_delivery"),
        )
        assert mine == old, (mine, old)
        assert (estimate is None) == (exact is None), (estimate, exact)
        if exact:
            assert abs(estimate - exact) <= exact * 0.049 + 0.05, (estimate, exact)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=10_000)
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--baseline-timeout",
        type=float,
        default=900.0,
        help="seconds the read-all stats baseline may take; past them it is reported as >N",
    )
    arguments = parser.parse_args()

    log = Path(tempfile.gettempdir()) / "bench-route-cost-firestore.log"
    with FirestoreEmulator(free_port(), log_path=log) as emulator:
        os.environ.update(FIRESTORE_EMULATOR_HOST=emulator.address, GOOGLE_CLOUD_PROJECT=PROJECT)
        from push365.notifications.stats import FirestoreStatsReader, report
        from push365.privacy.repository import FirestorePrivacyStore
        from push365.privacy.service import PrivacyService
        from push365.store import firestore_client

        client = firestore_client()
        emulator.reset(PROJECT)
        now = datetime.now(UTC)
        started = time.perf_counter()
        seed_stats(client, arguments.notifications, now)
        seed_export(client, arguments.subscriptions, now)
        print(
            f"seeded {arguments.notifications} notifications, {arguments.subscriptions} "
            f"subscriptions in {time.perf_counter() - started:.1f}s",
            flush=True,
        )

        reader = FirestoreStatsReader(client, timeout_seconds=120)
        stats_s, ours = timed(
            lambda: report(reader, STATS_ORG, DAYS, now).model_dump(mode="json"),
            arguments.repeats,
        )
        assert sum(d["notifications"] for d in ours["per_day"]) == arguments.notifications
        print(f"stats: {stats_s:.3f}s from daily counts", flush=True)
        baseline = ReadAllStatsReader(client)
        answers: list[Any] = []
        worker = threading.Thread(
            target=lambda: answers.append(timed(lambda: baseline.report(STATS_ORG, DAYS, now), 1)),
            daemon=True,
        )
        worker.start()
        worker.join(arguments.baseline_timeout)
        if answers:
            stats_base_s, theirs = answers[0]
            _same_but_median(ours, theirs)
            base, ratio = f"{stats_base_s:.3f}", f"{stats_base_s / stats_s:.1f}"
        else:  # (it goes on reading until the emulator stops)
            base = f">{arguments.baseline_timeout:.0f}"
            ratio = f">{arguments.baseline_timeout / stats_s:.1f}"
        print(f"stats: {base}s read-all", flush=True)

        paged = PrivacyService(FirestorePrivacyStore(client, timeout_seconds=120))
        export_s, first = timed(lambda: paged.export(EXPORT_ORG), arguments.repeats)
        whole = PrivacyService(
            FirestorePrivacyStore(client, 120, page_size=10**9, notifications_page=10**9)
        )
        export_base_s, everything = timed(lambda: whole.export(EXPORT_ORG), 1)
        assert len(everything["subscriptions"]) == arguments.subscriptions
        assert first["next_page_token"] is not None
        page_bytes = len(json.dumps(first))
        whole_bytes = len(json.dumps(everything))
        print(
            f"export: first page {export_s:.3f}s ({len(first['subscriptions'])} subscriptions, "
            f"{page_bytes} bytes), all at once {export_base_s:.3f}s ({whole_bytes} bytes)",
            flush=True,
        )
        print(
            f"RESULT route_cost notifications={arguments.notifications} "
            f"subscriptions={arguments.subscriptions} stats_seconds={stats_s:.3f} "
            f"stats_baseline_s={base} stats_ratio={ratio} "
            f"export_seconds={export_s:.3f} export_baseline_s={export_base_s:.3f} "
            f"export_ratio={export_base_s / export_s:.1f} "
            f"export_bytes={page_bytes} export_baseline_bytes={whole_bytes}"
        )


if __name__ == "__main__":
    main()
