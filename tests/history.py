"""An organization's history written fast (batched commits of 500), as the functions would have
written it: notifications with their batches, receipts and daily counts, and subscriptions. For
the cost of the routes that read it: ``bench/route_cost.py`` (time) and
``tests/integration/test_route_cost.py`` (bytes read)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any

USERS = 50


def commit_all(client: Any, writes: list[tuple[Any, dict[str, Any]]]) -> None:
    for start in range(0, len(writes), 500):
        batch = client.batch()
        for reference, fields in writes[start : start + 500]:
            batch.set(reference, fields)
        batch.commit()


def _user(n: int) -> str:
    return f"{n % USERS:08x}-0000-4000-8000-000000000000"


def seed_stats(
    client: Any,
    organization_id: str,
    notifications: int,
    now: datetime,
    days: int = 7,
    subscriptions: int | None = None,
) -> None:
    """``notifications`` over the last ``days`` days, each with one batch (3 records: 2 sent, 1
    failed) and one receipt, ``subscriptions`` (as many as notifications unless given; created
    over a year, 1 in 20 unsubscribed within the last 30 days), and the daily counts all that
    adds up to. The organization's own document is not written."""
    from push365.daily.counts import add, bucket_of
    from push365.notifications.deliveries import encode_records

    organization = client.collection("organizations").document(organization_id)
    writes: list[tuple[Any, dict[str, Any]]] = []
    per_day: dict[date, Counter[str]] = {}
    waits: dict[date, Counter[int]] = {}
    expire = now + timedelta(days=90)
    first = datetime.combine(now.date() - timedelta(days=days - 1), clock(), UTC)
    span = now - timedelta(minutes=2) - first  # every send and receipt within the days
    for n in range(notifications):
        created = first + span * n / notifications
        nid = f"{n:032x}"
        user = _user(n)
        reference = organization.collection("notifications").document(nid)
        writes.append(
            (
                reference,
                {
                    "id": nid,
                    "organization_id": organization_id,
                    "recipients": [user],
                    "status": "sent",
                    "created_at": created,
                    "expire_at": expire,
                },
            )
        )
        sent = created + timedelta(seconds=1)
        records = {
            f"{n:028x}{d:04x}": {
                "user_id": user,
                "status": "failed" if d == 2 else "sent",
                "message_id": None if d == 2 else f"m{n}-{d}",
                "error": "unregistered" if d == 2 else None,
                "sent_at": sent.isoformat(),
                "resent": False,
            }
            for d in range(3)
        }
        batch = reference.collection("batches").document("00000")
        writes.append(
            (batch, {"done": True, "deliveries": encode_records(records), "created_at": created})
        )
        delivered = sent + timedelta(seconds=0.5 + (n % 40) / 10)
        device = next(iter(records))
        writes.append(
            (
                reference.collection("receipts").document(device),
                {"device_id": device, "delivered_at": delivered, "expire_at": expire},
            )
        )
        day = created.date()
        per_day.setdefault(day, Counter()).update(
            {"notifications": 1, "devices_sent": 2, "failed": 1}
        )
        day = delivered.date()
        per_day.setdefault(day, Counter())["delivered"] += 1
        waits.setdefault(day, Counter())[bucket_of((delivered - sent).total_seconds())] += 1
    held = notifications if subscriptions is None else subscriptions
    for s in range(held):  # subscribed over a year; 1 in 20 unsubscribed
        created = now - timedelta(seconds=s * 365 * 86_400 // held + 60)
        fields = {
            "user_id": _user(s),
            "status": "active",
            "instance_id": f"token-{s}",
            "created_at": created,
        }
        if s % 20 == 0:
            ended = max(created, now - timedelta(days=s % 30, minutes=1))
            fields = {k: v for k, v in fields.items() if k != "instance_id"}
            fields |= {"status": "unsubscribed", "unsubscribed_at": ended}
        writes.append((organization.collection("subscriptions").document(f"{s:064x}"), fields))
    commit_all(client, writes)
    batch = client.batch()
    for day, counts in per_day.items():
        add(
            batch,
            client,
            organization_id,
            day,
            {k: counts[k] for k in ("notifications", "devices_sent", "failed", "delivered")},
            {"unregistered": counts["failed"]},
            waits.get(day),
        )
    batch.commit()


def seed_export(client: Any, organization_id: str, subscriptions: int, now: datetime) -> None:
    """``subscriptions`` active ones, each with a registration token of FCM's length. The
    organization's own document is not written."""
    organization = client.collection("organizations").document(organization_id)
    commit_all(
        client,
        [
            (
                organization.collection("subscriptions").document(f"{s:064x}"),
                {
                    "id": f"{s:064x}",
                    "user_id": _user(s),
                    "status": "active",
                    "instance_id": f"token-{s}-" + "x" * 140,
                    "token_kind": "registration_token",
                    "browser_footprint": "fp",
                    "created_at": now - timedelta(seconds=s),
                    "last_seen_at": now,
                },
            )
            for s in range(subscriptions)
        ],
    )
