"""Pub/Sub's side of ``deliver``: a CloudEvent's data in, an HTTP status out, one audit record.

functions-framework turns Pub/Sub's push body into a CloudEvent whose data is
``{"message": {"data": <base64>, "attributes": {...}, "messageId", "publishTime"}}``. A copy
from the dead-letter topic carries Pub/Sub's ``CloudPubSubDeadLetterSourceSubscription``
attribute.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping
from typing import Any

from google.api_core import exceptions as google_exceptions

from push365.audit import AuditRecord, begin, emit, end, log_unhandled
from push365.errors import Push365Error, for_status
from push365.fanout.model import FanoutMessage, Verdict
from push365.fanout.worker import DeliveryWorker

DEAD_LETTER_ATTRIBUTE = "CloudPubSubDeadLetterSourceSubscription"
FUNCTION = "deliver"

ACK = 200
RETRY = 503  # redeliver after the subscription's backoff
INVALID = 400  # not a fan-out message: retried, then dead-lettered
_UNAVAILABLE = (
    google_exceptions.ServiceUnavailable,
    google_exceptions.DeadlineExceeded,
    google_exceptions.RetryError,
    google_exceptions.Aborted,
)


def handle_event(data: Any, worker: Callable[[], DeliveryWorker]) -> int:
    """Handle one pushed message; the status to answer Pub/Sub with."""
    started = time.perf_counter()
    audit = AuditRecord(function=FUNCTION, route="(unknown)", method="PUBSUB")
    token = begin(audit)
    try:
        status = _handle(data, worker, audit)
    finally:
        end(token)
    audit.status = status
    audit.duration_ms = (time.perf_counter() - started) * 1000
    emit(audit)
    return status


def _handle(data: Any, worker: Callable[[], DeliveryWorker], audit: AuditRecord) -> int:
    decoded = _message(data)
    if decoded is None:
        # Not ours: retried, then dead-lettered, and the dead-letter copy is acknowledged here
        # with this fault on its record: counted, never silently dropped.
        audit.fault = {"code": "invalid_message", "message": "not a fan-out message"}
        return ACK if _dead_lettered(data) else INVALID
    message, dead_lettered = decoded
    audit.route = f"/{message.kind.value}" + ("/dead-letter" if dead_lettered else "")
    audit.organization_id = message.organization_id
    audit.ids["notification_id"] = message.notification_id
    try:
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
    return ACK if verdict is Verdict.ACK else RETRY


def answer(status: int) -> dict[str, Any]:
    """The JSON body ``deliver`` answers a status other than ACK with (Pub/Sub reads only the
    status; a person reading it sees why)."""
    if status == INVALID:
        code, message = "invalid_message", "Not a fan-out message."
    elif status == RETRY:
        code, message = "redeliver", "Deliver this message again after the backoff."
    else:
        error = for_status(status)
        code, message = error.code, error.message
    return {"error": {"code": code, "message": message}}


def _message(data: Any) -> tuple[FanoutMessage, bool] | None:
    pushed = data.get("message") if isinstance(data, Mapping) else None
    if not isinstance(pushed, Mapping) or not isinstance(pushed.get("data"), str):
        return None
    try:
        message = FanoutMessage.decode(base64.b64decode(pushed["data"], validate=True))
    except (ValueError, binascii.Error):
        return None
    return message, _dead_lettered(data)


def _dead_lettered(data: Any) -> bool:
    pushed = data.get("message") if isinstance(data, Mapping) else None
    attributes = pushed.get("attributes") if isinstance(pushed, Mapping) else None
    return isinstance(attributes, Mapping) and DEAD_LETTER_ATTRIBUTE in attributes
