"""What binds a fan-out message to its stored notification, so that ``deliver`` acts on no other.

Content and recipients travel in the message, never in the store, so a message alone cannot be
checked against what was sent. ``send`` therefore draws a random *seal* (32 bytes) per
notification, puts it in the messages, and stores on the notification record only

    binding = HMAC-SHA256(seal, "push365-fanout-v1\\n" + canonical JSON of the content)

``deliver`` acts on a message only when the record it names exists, the message's content and
seal give the stored binding back, and (a plan) its recipients are the record's, (a batch) its
``created_at`` is the record's. A message with the right ids but other content, other
recipients, another seal or no seal is refused and changes nothing.

The seal is never stored: the binding is an HMAC under a key that exists only in the queued
messages (gone with them, within the subscription's retention), so the stored value reveals
nothing of the content, however short; a plain hash of a short text could be guessed back. No
secret of the service's is involved: nothing to rotate, nothing to leak.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from google.cloud import firestore

from push365.fanout.model import Content, FanoutMessage, Kind
from push365.store import NOTIFICATIONS, ORGANIZATIONS, bounded

BINDING_FIELD = "binding"
"""The notification record's field that holds the binding (64 hex digits)."""
_DOMAIN = b"push365-fanout-v1\n"
_SEAL_BYTES = 32


def new_seal() -> str:
    """A fresh seal: 32 random bytes, URL-safe base64 without padding (43 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(_SEAL_BYTES)).rstrip(b"=").decode()


def canonical(content: Content) -> bytes:
    """The content's canonical bytes: sorted keys, no spaces, ASCII only (a lone surrogate is
    escaped, never an encoding error)."""
    fields = content.model_dump(mode="json")
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def bind(seal: str, content: Content) -> str:
    """The binding of ``content`` under ``seal``: what the record stores (64 hex digits)."""
    key = base64.urlsafe_b64decode(seal + "=" * (-len(seal) % 4))
    return hmac.new(key, _DOMAIN + canonical(content), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class BoundRecord:
    """What a message is checked against: the record's binding, recipients and creation time."""

    binding: str | None  # None: a record stored before bindings (never matched)
    recipients: list[str]
    created_at: datetime | None


def bound(message: FanoutMessage, record: BoundRecord) -> bool:
    """Whether ``message`` is one ``send`` or ``deliver`` made for this record."""
    if not isinstance(record.binding, str):
        return False
    if not hmac.compare_digest(bind(message.seal, message.content), record.binding):
        return False
    if message.kind is Kind.PLAN:
        return message.recipients == record.recipients
    return message.created_at is None or message.created_at == record.created_at


class BindingReader(Protocol):
    """The port: read what a message is checked against."""

    def bound_record(
        self, organization_id: str, notification_id: str, kind: Kind
    ) -> BoundRecord | None:
        """The record's binding (with the recipients for a plan); None once it is gone
        (erased, purged)."""
        ...


class FirestoreBindingReader:
    """Reads the binding from ``organizations/{org}/notifications/{nid}`` (one document, only
    the fields the check needs; the recipients only for a plan)."""

    def __init__(self, client: firestore.Client, timeout_seconds: float = 10.0) -> None:
        self._client = client
        self._bounded = bounded(timeout_seconds)

    def bound_record(
        self, organization_id: str, notification_id: str, kind: Kind
    ) -> BoundRecord | None:
        fields = [BINDING_FIELD, "created_at"] + (["recipients"] if kind is Kind.PLAN else [])
        snapshot = (
            self._client.collection(ORGANIZATIONS, organization_id, NOTIFICATIONS)
            .document(notification_id)
            .get(field_paths=fields, **self._bounded)
        )
        if not snapshot.exists:
            return None
        stored = snapshot.to_dict() or {}
        recipients = stored.get("recipients")
        return BoundRecord(
            binding=stored.get(BINDING_FIELD),
            recipients=list(recipients) if isinstance(recipients, list) else [],
            created_at=stored.get("created_at"),
        )
