"""Cloud Function ``send``: a notification to users' browsers, accepted at once, fanned out by
``deliver``.

Routes (relative to the function URL):
    POST /        plain JSON (``recipients``, ``title``, ``body``, ...; header
                  ``Idempotency-Key``), a Dataverse Create of ``p365_notification``, or any
                  Dataverse event an event rule matches -> ``202`` with the notification id.
    GET /status   ``?notification_id=...`` -> the notification's progress and counts.
    GET /stats    ``?days=N`` (1 to 90, default 7) -> the delivery report: per-day counts from
                  the stored records (subscriptions, notifications, sent, failed by reason,
                  delivered by receipt, median time to delivery), never content. Browsers on
                  any origin may call it (CORS): the report page in Dynamics sends the key.
"""

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar

import flask
import functions_framework
from pydantic import Field

from push365 import bootstrap
from push365.errors import (
    MessageTooLarge,
    NotificationNotFound,
    QueueUnavailable,
    ValidationFailed,
)
from push365.model import InputModel
from push365.notifications.dataverse import NothingToSend, dedup_key, send_from_context
from push365.notifications.model import Accepted, NotificationStatus, Rule, SendRequest
from push365.notifications.stats import DEFAULT_DAYS, MAX_DAYS, Stats, report
from push365.web import API_KEY_HEADER, Api, ApiRequest, Cors, Operation, Reply, json_errors

DYNAMICS_HOST_HEADER = "x-ms-dynamics-organization"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_NOTIFICATION_ID = re.compile(r"[0-9a-f]{32}")
_VISIBLE = r"\x21-\x7e\xa1-\xac\xae-\xff"
IDEMPOTENCY_KEY = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    # printable (str.isprintable) as a header carries it (Latin-1 but controls, NBSP and soft
    # hyphen), no blank around (HTTP drops it)
    "pattern": rf"^[{_VISIBLE}]([ {_VISIBLE}]*[{_VISIBLE}])?$",
    "description": "A replay with the same key (within the dedup window) answers the first send.",
}


def _send(request: ApiRequest) -> Reply:
    organization = request.organization
    host = request.header(DYNAMICS_HOST_HEADER)
    command = request.command(
        SendRequest,
        organization,
        lambda context: send_from_context(
            context,
            organization.rules,
            host,
            organization_url=organization.url,
            language_code=organization.language_code,
            receipt_url=bootstrap.receipt_url(),
            user_names=bootstrap.user_names(organization.id),
        ),
    )
    if isinstance(command, NothingToSend):
        return 200, command.answer()
    dedup = _dedup_key(request, organization.rules)
    if dedup is not None:
        request.audit.note_dedup_key(dedup)
    request.audit.add_users(command.recipients)
    accepted = bootstrap.notifications().send(organization.id, command, dedup)
    return 202, accepted.model_dump()


def _status(request: ApiRequest) -> Reply:
    notification_id = request.parsed(StatusQuery).notification_id
    status = bootstrap.notifications().status(request.organization.id, notification_id)
    return 200, status.model_dump(mode="json")


def _stats(request: ApiRequest) -> Reply:
    days = request.parsed(StatsQuery).days
    stats = report(bootstrap.stats_reader(), request.organization.id, days, datetime.now(UTC))
    return 200, stats.model_dump(mode="json")


def _dedup_key(request: ApiRequest, rules: Sequence[Rule]) -> str | None:
    if request.context is not None:
        return dedup_key(request.context, rules)
    key = request.header(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise ValidationFailed("Idempotency-Key must be 1 to 255 printable characters.")
    return f"idempotency-key:{key}"


class StatusQuery(InputModel):
    """``GET /send/status``."""

    INVALID: ClassVar[str] = "notification_id must be the 32 hex characters a send answered."
    notification_id: str = Field(pattern=f"^{_NOTIFICATION_ID.pattern}$")


class StatsQuery(InputModel):
    """``GET /send/stats``."""

    INVALID: ClassVar[str] = f"days must be a whole number from 1 to {MAX_DAYS}."
    days: int = Field(default=DEFAULT_DAYS, ge=1, le=MAX_DAYS)


api = Api(
    "send",
    {"/": {"POST": _send}, "/status": {"GET": _status}, "/stats": {"GET": _stats}},
    # The delivery report page (web/report.html) reads the stats from Dynamics' origin.
    cors={"/stats": Cors(methods="GET", headers=API_KEY_HEADER)},
    operations={
        ("/", "POST"): Operation(
            "Accept one notification for every active browser of the recipients (fanned out).",
            body=SendRequest,
            dataverse=True,
            auth="webhook",
            quota="send",
            answers={
                202: (
                    "Stored and queued; or, status accepted, stored while Pub/Sub's answer did "
                    "not come in time (only without a dedup key: with one that is 503 "
                    "queue_unavailable, to replay): delivered if the message was stored, else "
                    "recorded failed (lost) once the queue's retention has passed."
                ),
                200: "A Dataverse event no rule sends for.",
            },
            answer=Accepted,
            errors=(MessageTooLarge, QueueUnavailable),
            headers={IDEMPOTENCY_HEADER: IDEMPOTENCY_KEY},
        ),
        ("/status", "GET"): Operation(
            "A notification's progress and counts.",
            query=StatusQuery,
            answer=NotificationStatus,
            auth="webhook",
            quota="status",
            errors=(NotificationNotFound,),
        ),
        ("/stats", "GET"): Operation(
            "The delivery report: per-day counts from the stored records, never content.",
            query=StatsQuery,
            answer=Stats,
            auth="key",
            quota="read",
        ),
    },
)


json_errors(functions_framework.errorhandler)


@functions_framework.http
def send(request: flask.Request) -> flask.Response:
    """Entry point of the ``send`` Cloud Function."""
    return api.handle(request)
