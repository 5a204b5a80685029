"""The mail port and its adapters."""

from __future__ import annotations

import json
import re
import secrets
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Mail:
    """One message: plain text and HTML parts of the same content."""

    to: tuple[str, ...]
    subject: str
    text: str
    html: str

    def __post_init__(self) -> None:
        # Header values never carry a line break or control character (no header injection).
        for value in (self.subject, *self.to):
            if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
                raise ValueError("a mail header value holds a control character")


class Mailer(Protocol):
    """Sends one message, or raises."""

    def send(self, mail: Mail) -> None:
        """Send it."""
        ...


class SesMailer:
    """Amazon SES (API v2) through boto3. The client is made, and boto3 imported, on first use.

    Args:
        sender: a verified SES identity (address or domain) to send from.
        region: the SES region.
        endpoint_url: another endpoint (a local SES in tests); None for AWS itself.
    """

    def __init__(self, sender: str, region: str, endpoint_url: str | None = None) -> None:
        self._sender = sender
        self._region = region
        self._endpoint_url = endpoint_url
        self._client: Any = None
        self._lock = threading.Lock()

    def send(self, mail: Mail) -> None:
        self._get_client().send_email(
            FromEmailAddress=self._sender,
            Destination={"ToAddresses": list(mail.to)},
            Content={
                "Simple": {
                    "Subject": {"Data": mail.subject, "Charset": "UTF-8"},
                    "Body": {
                        "Text": {"Data": mail.text, "Charset": "UTF-8"},
                        "Html": {"Data": mail.html, "Charset": "UTF-8"},
                    },
                }
            },
        )

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3

                self._client = boto3.client(
                    "sesv2", region_name=self._region, endpoint_url=self._endpoint_url
                )
            return self._client


class OutboxMailer:
    """Writes each message as a JSON file under a folder (``.local/outbox`` for ``make dev``)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def send(self, mail: Mail) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        slug = re.sub(r"[^a-z0-9]+", "-", mail.subject.lower()).strip("-")[:40]
        # a random part too: two messages written in the same microsecond are two files
        path = self._directory / f"{stamp}-{secrets.token_hex(4)}-{slug}.json"
        path.write_text(json.dumps(asdict(mail), indent=2, ensure_ascii=False))


class NoMailer:
    """Mail switched off: messages are dropped."""

    def send(self, mail: Mail) -> None:
        return None
