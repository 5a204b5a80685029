"""A notification's per-device delivery records: kept a batch at a time, on the fan-out's batch.

A document per device per notification was the store's largest cost of a send (a write, and
its index entries, for every device). The records of a batch of up to 500 devices now live on
that batch's document (``organizations/{org}/notifications/{nid}/batches/{batch:05d}``):

- ``deliveries``: device id -> its record, as compact JSON text. One opaque string: never
  indexed, written whole with the batch's progress (the same fenced write).
- ``receipt_hashes``: device id -> the hash of the device's receipt, as compact JSON text too.
  As a map, each write set its new entries by field path and the store parsed every path (most
  of the emulator's work of a write to a batch); as text, a receipt reads and parses the whole
  field (about 50 KB for 500 devices) to find its own entry.
- ``users``: the user ids the records name: a user's export and erasure find their batches by
  it (``array_contains``).

A confirmed receipt is a small document of its own, ``.../notifications/{nid}/receipts/
{device_id}``: thousands of browsers confirming at once never write the same document.

Every record is built from :data:`RECORD_FIELDS` (an allow-list; the privacy audit checks the
stored text against it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

RECORDS = "deliveries"
"""The batch document's field holding its records (JSON text)."""
RECEIPT_HASHES = "receipt_hashes"
"""The batch document's field of device id -> receipt hash (JSON text)."""
USERS = "users"
"""The batch document's array of the user ids its records name."""
BATCH_DEVICES = "devices"
"""The batch document's field of the subscription ids it sends to, in order (JSON text)."""
RECORD_FIELDS = ("user_id", "status", "message_id", "error", "sent_at", "resent")
"""What one device's record holds: who, when, FCM's id or why not. No content, no token."""


@dataclass(frozen=True)
class Delivery:
    """One device's delivery, as recorded: who, when, FCM's id or why not. No content."""

    device_id: str
    user_id: str
    status: str  # "sent" | "failed"
    message_id: str | None
    error: str | None
    sent_at: datetime
    receipt_hash: str
    resent: bool = False  # a second attempt after an unknown outcome


def encode_receipt_hashes(hashes: Mapping[str, str]) -> str:
    """The stored text of a batch's receipt hashes."""
    return json.dumps(hashes, separators=(",", ":"))


def decode_receipt_hashes(value: Any) -> dict[str, str]:
    """A batch's receipt hashes from their stored text (or the map batches stored before);
    none when the field is missing or empty.

    Raises:
        ValueError: neither text nor a map, or text that is not a JSON object.
    """
    if isinstance(value, Mapping):
        return dict(value)
    if value is None or value == "":
        return {}
    if not isinstance(value, str):
        raise ValueError("not text")
    hashes = json.loads(value)
    if not isinstance(hashes, dict):
        raise ValueError("not an object")
    return hashes


def record_of(delivery: Delivery) -> dict[str, Any]:
    """A delivery as its batch stores it (``RECORD_FIELDS`` only; the receipt hash apart)."""
    return {
        "user_id": delivery.user_id,
        "status": delivery.status,
        "message_id": delivery.message_id,
        "error": delivery.error,
        "sent_at": delivery.sent_at.isoformat(),
        "resent": delivery.resent,
    }


def encode_records(records: Mapping[str, Mapping[str, Any]]) -> str:
    """The stored text of a batch's records."""
    return json.dumps(records, separators=(",", ":"))


def decode_records(text: Any) -> dict[str, dict[str, Any]]:
    """A batch's records from their stored text (none when there is no text yet)."""
    if not isinstance(text, str) or not text:
        return {}
    records: dict[str, dict[str, Any]] = json.loads(text)
    return records


def users_of(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The distinct user ids some records name, sorted."""
    return sorted({str(r["user_id"]) for r in records if r.get("user_id")})


def delivery_view(
    device_id: str, record: Mapping[str, Any], delivered_at: datetime | None
) -> dict[str, Any]:
    """One device's delivery as an export shows it: its record (allow-listed), and whether and
    when its browser confirmed it."""
    return {
        "device_id": device_id,
        **{name: record.get(name) for name in RECORD_FIELDS},
        "sent_at": sent_at(record),
        "delivered_at": delivered_at,
    }


def sent_at(record: Mapping[str, Any]) -> datetime | None:
    """When a record's device was sent to."""
    value = record.get("sent_at")
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
