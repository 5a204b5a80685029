"""What the delivery port takes and gives back."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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


class PushGateway(Protocol):
    """The port: send up to 500 messages, one result per message in the same order."""

    def send_batch(
        self,
        messages: Sequence[PushMessage],
        deadline: float | None = None,
        before_writing: Callable[[], None] | None = None,
    ) -> list[SendResult]:
        """Send each message once (no retries or sleeps inside), by ``deadline`` (a
        ``time.monotonic()`` value): a message not started by then is answered ``RETRY`` with
        reason ``deadline`` and was never sent; one unanswered then is ``RETRY``, maybe
        delivered. ``before_writing`` (at most a pool's worth of messages) runs once everything
        else is ready and just before the first byte is written; what it raises is raised, and
        nothing was sent."""
        ...
