"""Benchmark ``purge``: 20,000 due subscriptions among 100,000 stored, then among 200,000, against a
bare BulkWriter delete of the same 20,000 documents, in the same run.

Push365 side: ``Purger.purge`` as the ``purge`` function runs it (indexed range queries, pages of
500, batched deletes with a per-document precondition). Baseline: the same 20,000 references,
known in advance, deleted by ``client.bulk_writer()`` with its defaults. Each size seeds the
emulator afresh, times purge, re-seeds the due documents, and times the baseline. Last lines:
``RESULT purge due=<n> stored=<n> seconds=<s> baseline_s=<s> ratio=<r>``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.emulator import FirestoreEmulator  # noqa: E402
from tests.conftest import free_port  # noqa: E402

PROJECT = "demo-push365-bench"
ORGANIZATIONS = 100


def seed(client: Any, stored: int, due: int, now: datetime) -> list[Any]:
    """``stored`` subscriptions over 100 organizations, ``due`` of them unsubscribed and past
    ``purge_by``; the due documents' references."""
    due_refs = []
    batch = client.batch()
    for n in range(stored):
        organization = f"{n % ORGANIZATIONS:08x}-0000-4000-8000-000000000000"
        reference = client.collection("organizations", organization, "subscriptions").document(
            f"s{n:07d}"
        )
        if n % (stored // due) == 0 and len(due_refs) < due:
            fields = {"user_id": "u", "status": "unsubscribed", "purge_by": now - timedelta(days=1)}
            due_refs.append(reference)
        else:
            fields = {"user_id": "u", "status": "active", "instance_id": f"t{n}"}
        batch.set(reference, fields)
        if n % 500 == 499:
            batch.commit()
            batch = client.batch()
    batch.commit()
    return due_refs


def reseed_due(client: Any, references: list[Any], now: datetime) -> None:
    for start in range(0, len(references), 500):
        batch = client.batch()
        for reference in references[start : start + 500]:
            batch.set(
                reference,
                {"user_id": "u", "status": "unsubscribed", "purge_by": now - timedelta(days=1)},
            )
        batch.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--due", type=int, default=20_000)
    parser.add_argument("--stored", type=int, nargs="+", default=[100_000, 200_000])
    arguments = parser.parse_args()

    log = Path(tempfile.gettempdir()) / "bench-purge-firestore.log"
    with FirestoreEmulator(free_port(), log_path=log) as emulator:
        os.environ.update(FIRESTORE_EMULATOR_HOST=emulator.address, GOOGLE_CLOUD_PROJECT=PROJECT)
        from push365.retention.purge import FirestoreRetentionStore, Purger
        from push365.retention.rules import retention_rules
        from push365.store import bounded, firestore_client

        client = firestore_client()
        results = []
        for stored in arguments.stored:
            emulator.reset(PROJECT)
            now = datetime.now(UTC)
            started = time.perf_counter()
            due_refs = seed(client, stored, arguments.due, now)
            print(
                f"seeded {stored} ({len(due_refs)} due) in {time.perf_counter() - started:.1f}s",
                flush=True,
            )

            purger = Purger(FirestoreRetentionStore(client), retention_rules(90))
            started = time.perf_counter()
            counts = purger.purge(now)
            seconds = time.perf_counter() - started
            assert counts["subscriptions"] == len(due_refs), counts

            reseed_due(client, due_refs, now)
            started = time.perf_counter()
            writer = client.bulk_writer()
            for reference in due_refs:
                writer.delete(reference)
            writer.close()
            baseline = time.perf_counter() - started
            everything = client.collection_group("subscriptions").count()
            remaining = everything.get(**bounded(120))[0][0].value
            assert remaining == stored - len(due_refs), remaining
            results.append(
                f"RESULT purge due={len(due_refs)} stored={stored} seconds={seconds:.2f} "
                f"baseline_s={baseline:.2f} ratio={seconds / baseline:.2f}"
            )
            print(results[-1], flush=True)
        for line in results:
            print(line)


if __name__ == "__main__":
    main()
