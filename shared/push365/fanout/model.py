"""What travels on the fan-out topic, and what a batch's stored state holds.

A message carries the rendered notification only while it is on its way to FCM (Pub/Sub keeps
it at most the subscription's retention); the stored state carries ids and outcome codes only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from push365.fcm.model import WebPush
from push365.notifications.model import MAX_RECIPIENTS

BATCH_SIZE = 500
"""Devices per batch message (FCM has no batch endpoint; 500 keeps one batch's records in one
Firestore commit and one message well under Pub/Sub's limits)."""


MAX_BATCH = 99_999
"""The largest batch index (a batch's document id is its index in five digits)."""
MAX_MESSAGE_BYTES = 512 * 1024
"""The most a fan-out message's data may hold: a plan to 5,000 recipients with the largest content
FCM takes is under half of it."""

OrganizationId = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
]
"""An organization id as stored: a GUID, lower case, hyphenated, no braces."""
NotificationId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
"""A notification id as ``send`` makes it: 32 lower-case hex digits."""
UserId = OrganizationId
Seal = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}$")]
"""32 random bytes, URL-safe base64 without padding (:mod:`push365.fanout.binding`)."""


class Kind(StrEnum):
    """What a fan-out message asks ``deliver`` to do."""

    PLAN = "plan"  # read the recipients' devices, store the batches, publish one message each
    BATCH = "batch"  # send one stored batch


class Content(BaseModel):
    """A notification's content as it travels in a message. Never stored, logged or repr'd."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str
    body: str
    link: str | None = None
    icon: str | None = None
    data: dict[str, str] = Field(default_factory=dict)
    ttl_seconds: int | None = None
    urgency: str | None = None
    collapse_key: str | None = None

    @classmethod
    def of(cls, push: WebPush) -> Content:
        """The content of a web push."""
        return cls(
            title=push.title,
            body=push.body,
            link=push.link,
            icon=push.icon,
            data=dict(push.data),
            ttl_seconds=push.ttl_seconds,
            urgency=push.urgency,
            collapse_key=push.collapse_key,
        )

    def web_push(self, topic: str) -> WebPush:
        """The web push to send; ``topic`` (RFC 8030 ``Topic``) unless the sender chose a
        collapse key: either way a re-sent message replaces the first at the push service."""
        return WebPush(
            title=self.title,
            body=self.body,
            link=self.link,
            icon=self.icon,
            data=dict(self.data),
            ttl_seconds=self.ttl_seconds,
            urgency=self.urgency,
            collapse_key=self.collapse_key or topic,
        )

    def __repr__(self) -> str:
        return "Content(<hidden>)"

    __str__ = __repr__


class FanoutMessage(BaseModel):
    """One message on the fan-out topic.

    ``seal`` is the key of the notification's binding: ``send`` stores only the HMAC of the
    content under it, and ``deliver`` acts on a message only when its content and seal give that
    HMAC back (:mod:`push365.fanout.binding`). Ids have the shapes ``send`` makes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: Kind
    organization_id: OrganizationId
    notification_id: NotificationId
    content: Content
    seal: Seal
    recipients: list[UserId] = Field(default_factory=list, max_length=MAX_RECIPIENTS)  # PLAN only
    batch: int | None = Field(default=None, ge=0, le=MAX_BATCH)  # BATCH only
    # BATCH only: when the notification was accepted (its retry horizon counts from then)
    created_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> FanoutMessage:
        if self.kind is Kind.PLAN:
            if not self.recipients or self.batch is not None or self.created_at is not None:
                raise ValueError("a plan has recipients, and no batch")
        elif self.batch is None or self.recipients:
            raise ValueError("a batch has its index, and no recipients")
        return self

    def encode(self) -> tuple[bytes, dict[str, str]]:
        """The message's data and attributes (ids only: attributes may be logged by Pub/Sub)."""
        attributes = {
            "kind": self.kind.value,
            "organization_id": self.organization_id,
            "notification_id": self.notification_id,
        }
        if self.batch is not None:
            attributes["batch"] = str(self.batch)
        return self.model_dump_json().encode(), attributes

    @classmethod
    def decode(cls, data: bytes) -> FanoutMessage:
        """A message from its data: JSON of exactly this shape, nothing more (no nesting deeper
        than the parser's limit, no lone surrogate, at most :data:`MAX_MESSAGE_BYTES`).

        Raises:
            ValueError: not a fan-out message (the text of the error names no value).
        """
        if len(data) > MAX_MESSAGE_BYTES:
            raise ValueError("not a fan-out message")
        try:
            return cls.model_validate_json(data)
        except ValueError:
            raise ValueError("not a fan-out message") from None

    def __repr__(self) -> str:
        return f"FanoutMessage({self.kind.value}, batch={self.batch})"

    __str__ = __repr__


class Verdict(StrEnum):
    """What ``deliver`` answers Pub/Sub."""

    ACK = "ack"  # done, or nothing left to do: never redeliver
    RETRY = "retry"  # redeliver later (Pub/Sub's backoff; dead-letter after N attempts)


@dataclass
class BatchCounts:
    """Device counts of one batch, added to the notification record once the batch is done."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0  # unsubscribed or erased after the plan was made
    removed_tokens: int = 0
    # devices whose re-send was claimed (the first attempt's outcome unknown): those that may
    # have had a second copy
    resent: int = 0
    dead_lettered: int = 0  # 1 when Pub/Sub gave up on this batch (its devices count as failed)
    retire_suppressed: int = 0  # invalid-token answers not acted on (over half of a batch)

    def as_dict(self) -> dict[str, int]:
        """Field name -> count."""
        return dict(self.__dict__)


@dataclass
class BatchState:
    """One batch as stored: its devices (subscription ids) and what became of each, no content.

    ``inflight`` holds the devices being sent right now (claimed before sending, cleared when
    their outcomes are recorded); a worker that finds ``inflight`` left by another knows those
    outcomes are unknown.
    """

    organization_id: str
    notification_id: str
    batch: int
    devices: list[str]
    done: bool = False
    outcomes: dict[str, str] = field(default_factory=dict)  # device -> "sent" | "failed" | ...
    inflight: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # outcome unknown: may be re-sent once
    resent: list[str] = field(default_factory=list)
    pending: dict[str, str] = field(default_factory=dict)  # device -> last transient reason
    not_before: datetime | None = None
    attempts: int = 0
    counts: BatchCounts = field(default_factory=BatchCounts)
    # device id -> its delivery record (``notifications.deliveries``), as stored so far
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    # device id -> the hash of its receipt, as stored so far
    receipt_hashes: dict[str, str] = field(default_factory=dict)
    version: Any = None  # the adapter's fencing token (Firestore update time)

    def remaining(self) -> list[str]:
        """Devices with no final outcome yet, in plan order."""
        return [d for d in self.devices if d not in self.outcomes]

    # A device's transitions: the worker changes a batch only through these. Invariants kept:
    # a device has at most one final outcome; it is sent at most twice, the second time only
    # when the first attempt's outcome is unknown and only once that re-send is claimed (in
    # ``resent``, stored with the claim before anything is sent), and a re-send whose outcome is
    # unknown too is never followed by a third; ``counts.resent`` is the size of ``resent``.

    def claim(self, devices: list[str]) -> None:
        """These devices are about to be sent (stored before the first request): a worker that
        finds them still claimed knows their outcome is unknown. A device whose earlier outcome
        is unknown has its re-send claimed here too, so a crash during the re-send can never
        lead to a third copy."""
        for sid in devices:
            if sid in self.outcomes:
                raise ValueError("a device with an outcome is never claimed")
            if sid in self.unknown and sid in self.resent:
                raise ValueError("a device's re-send is claimed once")
            if sid in self.unknown:
                self.resent.append(sid)
        self.inflight = list(devices)
        self.counts.resent = len(self.resent)

    def recover(self) -> None:
        """A worker takes the batch over: what the last holder claimed and never recorded has an
        unknown outcome (a claimed re-send among them stays claimed: never a third copy)."""
        left = [d for d in self.inflight if d not in self.outcomes]
        self.unknown += [d for d in left if d not in self.unknown]
        self.inflight = []

    def may_send(self, sid: str) -> bool:
        """False once a device's re-send outcome is unknown too: it may have been shown twice,
        never a third time."""
        return not (sid in self.unknown and sid in self.resent)

    def skip(self, sid: str) -> None:
        """Unsubscribed or erased after the plan was made: never sent."""
        self._final(sid, "skipped")
        self.counts.skipped += 1

    def settle(self, sid: str, sent: bool) -> None:
        """FCM's final answer for the device: accepted, or refused for good."""
        self._final(sid, "sent" if sent else "failed")
        if sent:
            self.counts.sent += 1
        else:
            self.counts.failed += 1

    def not_delivered(self, sid: str) -> None:
        """This attempt surely did not reach FCM (refused before writing, or FCM answered an
        error): if it was the re-send, its claim is given back (no second copy exists)."""
        if sid in self.resent and sid not in self.outcomes:
            self.resent.remove(sid)
            self.counts.resent = len(self.resent)

    def hold(self, sid: str, reason: str, maybe_delivered: bool) -> None:
        """A transient failure: tried again after a backoff. ``maybe_delivered``: the request
        was written but never answered, so a copy may exist."""
        self.pending[sid] = reason
        if maybe_delivered and sid not in self.unknown:
            self.unknown.append(sid)

    def give_up(self, sid: str, reason: str = "") -> str:
        """Recorded failed without another try; the reason recorded (its last transient one,
        or ``reason``)."""
        last = self.pending.pop(sid, None) or reason
        self._final(sid, "failed")
        self.counts.failed += 1
        return last

    def _final(self, sid: str, outcome: str) -> None:
        if sid in self.outcomes:
            raise ValueError("a device has one final outcome")
        self.outcomes[sid] = outcome
        self.pending.pop(sid, None)
