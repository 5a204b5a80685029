"""Delivery receipts: an unguessable token per device per notification, stored only as a hash.

A receipt reads ``<organization id>.<notification id>.<batch>.<device id>.<secret>``: the ids
say which delivery record to look at (it is kept on the fan-out's batch), the 128-bit secret
proves the caller got that device's message.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from push365.model import normalize_guid

_SHAPE = re.compile(
    r"^([0-9a-f-]{36})\.([0-9a-f]{32})\.([0-9]{5})\.([0-9a-f]{32})\.([A-Za-z0-9_-]{22,64})$"
)
RECEIPT_LENGTH = 36 + 1 + 32 + 1 + 5 + 1 + 32 + 1 + 22


@dataclass(frozen=True)
class ParsedReceipt:
    """Where a presented receipt points, and its hash to compare."""

    organization_id: str
    notification_id: str
    batch: int
    device_id: str
    hash: str


def device_id(subscription_id: str) -> str:
    """A device's id within one notification's deliveries: its subscription id, shortened."""
    return subscription_id[:32]


def new_receipt(
    organization_id: str, notification_id: str, batch: int, device: str
) -> tuple[str, str]:
    """A fresh receipt and the hash to store."""
    secret = secrets.token_urlsafe(16)
    receipt = f"{organization_id}.{notification_id}.{batch:05d}.{device}.{secret}"
    return receipt, receipt_hash(receipt)


def receipt_hash(receipt: str) -> str:
    """The stored form of a receipt."""
    return hashlib.sha256(receipt.encode()).hexdigest()


def parse_receipt(receipt: str) -> ParsedReceipt | None:
    """A receipt's parts, or None when it is not a receipt's shape."""
    match = _SHAPE.match(receipt)
    if match is None:
        return None
    try:
        organization_id = normalize_guid(match.group(1))
    except ValueError:
        return None
    return ParsedReceipt(
        organization_id,
        match.group(2),
        int(match.group(3)),
        match.group(4),
        receipt_hash(receipt),
    )
