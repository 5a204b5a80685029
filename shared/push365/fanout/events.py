"""Pub/Sub's side of ``deliver``: a CloudEvent's data in, an HTTP status out, one audit record.

functions-framework turns Pub/Sub's push body into a CloudEvent whose data is
``{"message": {"data": <base64>, "attributes": {...}, "messageId", "publishTime"}}``. A copy
from the dead-letter topic carries Pub/Sub's ``CloudPubSubDeadLetterSourceSubscription``
attribute.

What ``deliver`` takes, in order (anything else is ``400 invalid_message``, counted on its audit
record, and changes nothing):

1. the push body (:func:`screen`, before functions-framework reads it): a JSON object of Pub/Sub's
   push shape, at most :data:`MAX_PUSH_BYTES`, no nesting past the parser's limit, no lone
   surrogate;
2. the message's data (:meth:`FanoutMessage.decode`): exactly a fan-out message, its ids of the
   shapes ``send`` makes;
3. its binding (:mod:`push365.fanout.binding`): the notification's record exists (else there is
   nothing to do: acknowledged) and the message's content, seal and recipients are the ones
   ``send`` bound to it.

Only then does the worker read or write a batch, or send anything. A dead-letter copy that fails
2 or 3 is acknowledged (``200``) with the same fault: Pub/Sub would otherwise hand it back for the
whole retention, and nothing else is done with it either.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from google.api_core import exceptions as google_exceptions
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from push365.audit import AuditRecord, begin, emit, end, log_unhandled
from push365.errors import Push365Error, for_status
from push365.fanout.binding import BindingReader, bound
from push365.fanout.model import MAX_MESSAGE_BYTES, FanoutMessage, Verdict
from push365.fanout.worker import DeliveryWorker

DEAD_LETTER_ATTRIBUTE = "CloudPubSubDeadLetterSourceSubscription"
FUNCTION = "deliver"

ACK = 200
RETRY = 503  # redeliver after the subscription's backoff
INVALID = 400  # not a fan-out message: retried, then dead-lettered
MAX_PUSH_BYTES = 1024 * 1024
"""The largest push body ``deliver`` reads: a message of :data:`MAX_MESSAGE_BYTES` in base64, and
Pub/Sub's own fields."""
NOT_A_MESSAGE = "not a fan-out message"
NOT_BOUND = "not bound to its notification"
REDELIVER = "Deliver this message again after the backoff."
_UNAVAILABLE = (
    google_exceptions.ServiceUnavailable,
    google_exceptions.DeadlineExceeded,
    google_exceptions.RetryError,
    google_exceptions.Aborted,
)


def handle_event(
    data: Any,
    worker: Callable[[], DeliveryWorker],
    bindings: Callable[[], BindingReader],
) -> int:
    """Handle one pushed message; the status to answer Pub/Sub with."""
    started = time.perf_counter()
    audit = AuditRecord(function=FUNCTION, route="(unknown)", method="PUBSUB")
    token = begin(audit)
    try:
        status = _handle(data, worker, bindings, audit)
    finally:
        end(token)
    audit.status = status
    audit.duration_ms = (time.perf_counter() - started) * 1000
    emit(audit)
    return status


def screen(body: bytes) -> int | None:
    """None when ``body`` is a Pub/Sub push body; otherwise the status to answer (``INVALID``),
    its audit record written. Run before functions-framework reads the body: its conversion
    fails with a 500 on some bodies (a top-level array or string, deep nesting)."""
    if len(body) <= MAX_PUSH_BYTES:
        try:
            _PushBody.model_validate_json(body)
            return None
        except ValidationError:
            pass
    audit = AuditRecord(function=FUNCTION, route="(unknown)", method="PUBSUB", status=INVALID)
    audit.fault = {"code": "invalid_message", "message": NOT_A_MESSAGE}
    emit(audit)
    return INVALID


def _handle(
    data: Any,
    worker: Callable[[], DeliveryWorker],
    bindings: Callable[[], BindingReader],
    audit: AuditRecord,
) -> int:
    dead_lettered = _dead_lettered(data)
    message = _message(data)
    if message is None:
        # Not ours: retried, then dead-lettered, and the dead-letter copy is acknowledged here
        # with this fault on its record: counted, never silently dropped.
        audit.fault = {"code": "invalid_message", "message": NOT_A_MESSAGE}
        return ACK if dead_lettered else INVALID
    # Ids of the shapes send makes (the message was validated): safe to read and to record.
    audit.route = f"/{message.kind.value}" + ("/dead-letter" if dead_lettered else "")
    audit.organization_id = message.organization_id
    audit.ids["notification_id"] = message.notification_id
    try:
        record = bindings().bound_record(
            message.organization_id, message.notification_id, message.kind
        )
        if record is None:
            return ACK  # erased or purged meanwhile: nothing to send
        if not bound(message, record):
            # Right ids, other content (or recipients, or seal): forged or altered. Nothing is
            # read or written beyond the record's binding, nothing is sent.
            audit.fault = {"code": "invalid_message", "message": NOT_BOUND}
            return ACK if dead_lettered else INVALID
        verdict = worker().handle(message, dead_lettered=dead_lettered)
    except Push365Error as error:
        audit.fault = {"code": error.code, "message": error.message}
        return RETRY
    except _UNAVAILABLE as error:
        audit.fault = {"code": "store_unavailable", "message": type(error).__name__}
        return RETRY
    except Exception as error:  # noqa: BLE001 - a crash is retried, then dead-lettered
        audit.fault = {"code": "internal", "message": type(error).__name__}
        log_unhandled(FUNCTION, error)
        return 500
    if verdict is Verdict.ACK:
        return ACK
    # Not finished yet (FCM asked to wait, a batch not due again): a fault like any other 503's,
    # unless the worker noted one of its own.
    if audit.fault is None:
        audit.fault = {"code": "redeliver", "message": REDELIVER}
    return RETRY


def answer(status: int) -> dict[str, Any]:
    """The JSON body ``deliver`` answers a status other than ACK with (Pub/Sub reads only the
    status; a person reading it sees why)."""
    if status == INVALID:
        code, message = "invalid_message", "Not a fan-out message."
    elif status == RETRY:
        code, message = "redeliver", REDELIVER
    else:
        error = for_status(status)
        code, message = error.code, error.message
    return {"error": {"code": code, "message": message}}


def _message(data: Any) -> FanoutMessage | None:
    pushed = data.get("message") if isinstance(data, Mapping) else None
    if not isinstance(pushed, Mapping) or not isinstance(pushed.get("data"), str):
        return None
    if len(pushed["data"]) > _MAX_DATA_CHARACTERS:
        return None
    try:
        return FanoutMessage.decode(base64.b64decode(pushed["data"], validate=True))
    except (ValueError, binascii.Error):
        return None


def _dead_lettered(data: Any) -> bool:
    pushed = data.get("message") if isinstance(data, Mapping) else None
    attributes = pushed.get("attributes") if isinstance(pushed, Mapping) else None
    return isinstance(attributes, Mapping) and DEAD_LETTER_ATTRIBUTE in attributes


_MAX_DATA_CHARACTERS = 4 * (MAX_MESSAGE_BYTES + 2) // 3
_Text = Annotated[str, StringConstraints(max_length=1024)]


class _PushedMessage(BaseModel):
    """The message of a Pub/Sub push body, as far as deliver and functions-framework read it
    (Pub/Sub's limits: 100 attributes, keys of 256 bytes, values of 1024)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    data: str = Field(max_length=_MAX_DATA_CHARACTERS)
    attributes: dict[Annotated[str, StringConstraints(max_length=256)], _Text] = Field(
        default_factory=dict, max_length=100
    )
    messageId: _Text = Field(min_length=1)  # noqa: N815 - Pub/Sub's name
    publishTime: _Text | None = None  # noqa: N815 - Pub/Sub's name


class _PushBody(BaseModel):
    """A Pub/Sub push body: ``{"message": {...}, "subscription": "projects/.../...",
    "deliveryAttempt": n}`` and nothing else (functions-framework reads a body with other keys,
    ``context`` for one, as another kind of event)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    message: _PushedMessage
    subscription: _Text
    deliveryAttempt: int | None = None  # noqa: N815 - Pub/Sub's name
