"""What the delivery port takes and gives back."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class TokenKind(StrEnum):
    """What identifies a device to FCM, and so which field of the message carries it.

    A web browser's ``getToken()`` answers a registration token (the ``token`` field); the
    Firebase installation id of an app registered with ``register()`` goes in ``fid``. FCM keeps
    registration tokens supported: one sent as an installation id is rejected.
    """

    REGISTRATION_TOKEN = "registration_token"
    INSTALLATION_ID = "installation_id"


@dataclass(frozen=True, repr=False)
class WebPush:
    """A web push notification's content. Kept in memory only: never stored, logged or repr'd."""

    title: str
    body: str
    link: str | None = None
    icon: str | None = None
    data: Mapping[str, str] = field(default_factory=dict)
    ttl_seconds: int | None = None
    urgency: str | None = None
    collapse_key: str | None = None

    def __repr__(self) -> str:
        return "WebPush(<content hidden>)"


@dataclass(frozen=True, repr=False)
class PushMessage:
    """One message to one device: the shared content plus this device's own data entries."""

    token: str
    push: WebPush
    device_data: Mapping[str, str] = field(default_factory=dict)
    token_kind: TokenKind = TokenKind.REGISTRATION_TOKEN

    def __repr__(self) -> str:
        return "PushMessage(<hidden>)"


class Outcome(StrEnum):
    """What became of one message."""

    SENT = "sent"
    RETRY = "retry"  # worth another try (429, 500, 503, timeout)
    RETIRE = "retire"  # the token is dead: unsubscribe it
    FAILED = "failed"  # not worth another try, token kept


@dataclass(frozen=True)
class SendResult:
    """FCM's answer for one message: its id, or why not (a code, never FCM's message text)."""

    outcome: Outcome
    message_id: str | None = None
    reason: str | None = None
    retry_after_seconds: float | None = None
    # The request may have reached FCM but no answer came (it timed out after being written):
    # a re-send may show twice unless the push's Topic/tag collapse it.
    maybe_delivered: bool = False


class Written:
    """What a gateway tells while it sends a batch: which messages have been written to FCM
    (they may reach it whatever happens next), and, once ``finished``, that every message has
    been written or never will be. Set from the gateway's thread; read from the caller's."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._indexes: set[int] = set()

    def mark(self, index: int) -> None:
        """Message ``index`` of the batch has been written."""
        with self._lock:
            self._indexes.add(index)

    def finish(self) -> None:
        """No message of the batch will be written from now on."""
        self._done.set()

    def wait(self, timeout: float) -> bool:
        """True once finished (within ``timeout`` seconds)."""
        return self._done.wait(timeout)

    def indexes(self) -> set[int]:
        """The messages written so far."""
        with self._lock:
            return set(self._indexes)


class PushGateway(Protocol):
    """The port: send up to 500 messages, one result per message in the same order."""

    def send_batch(
        self,
        messages: Sequence[PushMessage],
        deadline: float | None = None,
        written: Written | None = None,
    ) -> list[SendResult]:
        """Send each message once (no retries or sleeps inside), by ``deadline`` (a
        ``time.monotonic()`` value): a message not started by then is answered ``RETRY`` with
        reason ``deadline`` and was never sent; one unanswered then is ``RETRY``, maybe
        delivered. ``written`` is told each message written, then that the writing is over."""
        ...
