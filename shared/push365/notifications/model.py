"""Notifications: what a send asks for (content, in memory only) and what is recorded (no content).

The privacy policy: Push365 keeps recipients, sent and delivery dates and FCM's message ids,
never a notification's title, body, data, link or icon.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, JsonValue, StrictInt, StringConstraints

from push365.fcm.model import WebPush
from push365.model import BLANK, Guid, InputModel

MAX_RECIPIENTS = 5000
MAX_TTL_SECONDS = 2_419_200  # FCM's limit: 28 days
FCM_PAYLOAD_LIMIT = 4096

Urgency = Literal["very-low", "low", "normal", "high"]

# Keys FCM reserves, and the two Push365 adds to every message.
RESERVED_DATA_KEYS = frozenset(
    {"from", "message_type", "collapse_key", "notification_id", "receipt"}
)
_RESERVED_PREFIXES = ("google.", "gcm.")


def _https(value: str) -> str:
    if not re.match(r"^https://[^\s/]+", value):
        raise ValueError("must be an https:// URL")
    return value


def _data_keys(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        if key in RESERVED_DATA_KEYS or key.startswith(_RESERVED_PREFIXES) or not key:
            raise ValueError(
                "uses a reserved key (from, message_type, collapse_key, google.*, "
                "gcm.*, notification_id, receipt)"
            )
    return value


HttpsUrl = Annotated[
    str,
    StringConstraints(max_length=2048),
    Field(json_schema_extra={"pattern": rf"^https://[^{BLANK}\x1c-\x1f/]+"}),
    AfterValidator(_https),
]
CollapseKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
"""Sent as the RFC 8030 ``Topic`` header: at most 32 URL-safe base64 characters."""


class SendRequest(InputModel):
    """``POST /send``. Its content fields reach FCM and nothing else."""

    recipients: list[Guid] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    title: str = Field(min_length=1, max_length=1024)
    body: str = Field(max_length=4096)
    link: HttpsUrl | None = None
    icon: HttpsUrl | None = None
    data: Annotated[dict[str, str], AfterValidator(_data_keys)] = Field(
        default_factory=dict,
        json_schema_extra={
            "propertyNames": {
                "minLength": 1,
                "not": {
                    "anyOf": [
                        {"enum": list[JsonValue](sorted(RESERVED_DATA_KEYS))},
                        {"pattern": r"^(google|gcm)\."},
                    ]
                },
            }
        },
    )
    ttl_seconds: StrictInt | None = Field(default=None, ge=0, le=MAX_TTL_SECONDS)
    urgency: Urgency | None = None
    collapse_key: CollapseKey | None = None

    def web_push(self) -> WebPush:
        """The content, as the delivery port takes it."""
        return WebPush(
            title=self.title,
            body=self.body,
            link=self.link,
            icon=self.icon,
            data=dict(self.data),
            ttl_seconds=self.ttl_seconds,
            urgency=self.urgency,
            collapse_key=self.collapse_key,
        )

    def __repr__(self) -> str:
        return f"SendRequest(<content hidden>, recipients={len(self.recipients)})"

    __str__ = __repr__


RULE_STAGES = (0, 10, 20, 30, 40)
"""The ``Stage`` values a context carries: 10 pre-validation, 20 pre-operation, 30 main operation
(a custom API's own plug-in), 40 post-operation (synchronous or asynchronous: ``Mode`` tells
them apart), 0 a context started outside a step's pipeline (a workflow's)."""
ANY_STAGE: Literal["any"] = "any"
COMMITTED_STAGE: Literal[40] = 40
UNCOMMITTED_STAGES = (10, 20, 30)
"""Stages inside the operation's transaction: a notification can tell of a save then rolled
back."""
MESSAGE_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,255}$"
"""A Dataverse message: ``Update``, or a custom API's or action's unique name with its publisher
prefix (``devkit_DebugCustomApi``); Dataverse's ``sdkmessage.name`` is at most 256 characters."""
MAX_DEPTH = 8
CONTEXT_RECIPIENTS = ("context.initiatinguserid", "context.userid")
"""Recipients a rule takes from the event itself: who started the operation, and on whose
behalf it ran."""

_RECIPIENT = re.compile(
    r"^(context\.(initiatinguserid|userid)"
    r"|(input|output)\.[a-z0-9_]{1,64}"
    r"|[a-z0-9_]{1,64}"
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)
_HEX = "[0-9A-Fa-f]"
RULE_RECIPIENT_PATTERN = (
    rf"^[{BLANK}]*([Cc][Oo][Nn][Tt][Ee][Xx][Tt]\.([Ii][Nn][Ii][Tt][Ii][Aa][Tt][Ii][Nn][Gg])?"
    r"[Uu][Ss][Ee][Rr][Ii][Dd]"
    r"|([Ii][Nn][Pp][Uu][Tt]|[Oo][Uu][Tt][Pp][Uu][Tt])\.[A-Za-z0-9_]{1,64}"
    r"|[A-Za-z0-9_]{1,64}"
    rf"|{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}})[{BLANK}]*$"
)
""":data:`RuleRecipient` as sent: any case, blanks around (both dropped before the check)."""


def _recipient(value: str) -> str:
    if not _RECIPIENT.match(value):
        raise ValueError(
            "must be a column name, input.<parameter>, output.<parameter>, "
            "context.initiatinguserid, context.userid or a user's GUID"
        )
    return value


RuleRecipient = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, max_length=71),
    Field(json_schema_extra={"pattern": RULE_RECIPIENT_PATTERN}),
    AfterValidator(_recipient),
]
"""A column of the Target or an image (a lookup or activity party to ``systemuser``), a request
parameter (``input.name``, ``output.name``: a custom API's), one of :data:`CONTEXT_RECIPIENTS`, or
a fixed system user id."""


class Rule(InputModel):
    """An event rule: a Dataverse event on ``table`` with ``message`` becomes a notification.

    It applies only to events of its ``stage`` (post-operation by default: the change is
    committed; ``"any"``: whatever stage the event carries) and at most ``max_depth`` deep (1 by
    default: not from a plug-in chain). ``table`` is ``none`` for a message bound to no table.
    """

    table: Annotated[str, StringConstraints(to_lower=True, pattern=r"^[A-Za-z0-9_]{1,64}$")]
    message: Annotated[str, StringConstraints(to_lower=True, pattern=MESSAGE_PATTERN)]
    recipients: list[RuleRecipient] = Field(min_length=1, max_length=10)
    title: str = Field(min_length=1, max_length=1024)
    body: str = Field(default="", max_length=4096)
    link: str | None = Field(default=None, max_length=2048)
    stage: Literal[0, 10, 20, 30, 40, "any"] = COMMITTED_STAGE
    max_depth: StrictInt = Field(default=1, ge=1, le=MAX_DEPTH)


class RuleSet(InputModel):
    """``POST /register/rules``: the organization's rules, replacing any before."""

    rules: list[Rule] = Field(max_length=100)

    def warnings(self) -> list[str]:
        """Fixed texts about rules that are valid but probably not what is meant."""
        return [
            (
                f"Rule {number} runs at any stage, also before the change is committed: "
                if rule.stage == ANY_STAGE
                else f"Rule {number} runs at stage {rule.stage}, before the change is committed: "
            )
            + "it can notify about a save that is then rolled back."
            for number, rule in enumerate(self.rules, start=1)
            if rule.stage == ANY_STAGE or rule.stage in UNCOMMITTED_STAGES
        ]


class RulePreviewEvent(InputModel):
    """``POST /register/rules/preview`` without a Dataverse body: an event described plainly.

    ``target``, ``pre_image`` and ``post_image`` map columns to values as Dataverse sends them (a
    lookup is ``{"Id", "LogicalName", "Name"}``); ``formatted_values`` and
    ``post_formatted_values`` map columns to display text; ``input`` and ``output`` are a custom
    API's or action's parameters (``table`` ``none`` when it is bound to no table).
    """

    table: Annotated[str, StringConstraints(to_lower=True, pattern=r"^[A-Za-z0-9_]{1,64}$")]
    message: Annotated[str, StringConstraints(pattern=MESSAGE_PATTERN)]
    record_id: Guid | None = None
    target: dict[str, Any] = Field(default_factory=dict, max_length=500)
    formatted_values: dict[str, str] = Field(default_factory=dict, max_length=500)
    pre_image: dict[str, Any] = Field(default_factory=dict, max_length=500)
    post_image: dict[str, Any] = Field(default_factory=dict, max_length=500)
    post_formatted_values: dict[str, str] = Field(default_factory=dict, max_length=500)
    input: dict[str, Any] = Field(default_factory=dict, max_length=100)
    output: dict[str, Any] = Field(default_factory=dict, max_length=100)
    stage: StrictInt = COMMITTED_STAGE
    depth: StrictInt = 1
    initiating_user_id: Guid | None = None
    user_id: Guid | None = None


class DeliveryCounts(BaseModel):
    """A notification's device counts, added up as its batches finish."""

    devices: int = 0  # planned
    batches: int = 0
    batches_done: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0  # unsubscribed or erased after the plan was made
    removed_tokens: int = 0
    resent: int = 0  # re-sent once after an unknown outcome (shown once: same Topic and tag)
    dead_lettered: int = 0  # batches Pub/Sub gave up on (their devices count as failed)
    retire_suppressed: int = 0  # invalid-token answers not acted on (over half of a batch)


Status = Literal["accepted", "queued", "delivering", "sent", "failed"]
"""accepted: stored, not yet on the queue; queued: on the queue; delivering: planned, batches
under way; sent: every batch done; failed: the plan itself was given up (dead-lettered)."""


class Accepted(BaseModel):
    """The answer to a send (``202``), also what a replay of it answers."""

    notification_id: str
    status: Status
    recipients: int
    devices: int | None = None  # known once the plan is made


class NotificationStatus(BaseModel):
    """``GET /send/status``: a notification's progress, counts only."""

    notification_id: str
    status: Status
    recipients: int
    devices: int | None
    pending: int | None
    created_at: datetime
    completed_at: datetime | None
    counts: DeliveryCounts


class NotificationRecord(BaseModel):
    """A notification as stored: who and when, never what."""

    id: str
    organization_id: str
    recipients: list[str]
    dedup_key: str | None
    status: Literal["accepted", "delivering", "sent", "failed"]
    created_at: datetime
    published_at: datetime | None = None
    planned_at: datetime | None = None
    completed_at: datetime | None = None
    counts: DeliveryCounts = DeliveryCounts()

    def current_status(self) -> Status:
        """Where the notification is now."""
        if self.status == "failed":
            return "failed"
        if self.planned_at is None:
            if self.status == "delivering":
                return "delivering"  # batches are under way while planning goes on
            return "queued" if self.published_at is not None else "accepted"
        if self.counts.batches_done >= self.counts.batches:
            return "sent"
        return "delivering"

    def accepted(self) -> Accepted:
        """The send's answer from the record."""
        return Accepted(
            notification_id=self.id,
            status=self.current_status(),
            recipients=len(self.recipients),
            devices=self.counts.devices if self.planned_at is not None else None,
        )

    def progress(self) -> NotificationStatus:
        """The status route's answer."""
        planned = self.planned_at is not None
        done = self.counts.sent + self.counts.failed + self.counts.skipped
        status = self.current_status()
        return NotificationStatus(
            notification_id=self.id,
            status=status,
            recipients=len(self.recipients),
            devices=self.counts.devices if planned else None,
            pending=max(self.counts.devices - done, 0) if planned else None,
            created_at=self.created_at,
            # each batch that finishes sets it: it is the completion time once all are done
            completed_at=self.completed_at if status in ("sent", "failed") else None,
            counts=self.counts,
        )


class ReceiptRequest(InputModel):
    """``POST /receipt``."""

    receipt: str = Field(min_length=1, max_length=256)
