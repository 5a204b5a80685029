"""Cloud Function ``send``: a notification to users' browsers, each device at most once.

Routes (relative to the function URL):
    POST /  plain JSON (``recipients``, ``title``, ``body``, ...; header ``Idempotency-Key``), a
            Dataverse Create of ``p365_notification``, or any Dataverse event an event rule matches.
"""

import flask
import functions_framework

from push365 import bootstrap
from push365.errors import ValidationFailed
from push365.notifications.dataverse import NothingToSend, dedup_key, send_from_context
from push365.notifications.model import SendRequest
from push365.web import Api, ApiRequest, Reply

DYNAMICS_HOST_HEADER = "x-ms-dynamics-organization"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def _send(request: ApiRequest) -> Reply:
    organization = request.authenticate(bootstrap.organizations().authenticate)
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
        ),
    )
    if isinstance(command, NothingToSend):
        return 200, command.answer()
    dedup = _dedup_key(request)
    if dedup is not None:
        request.audit.note_dedup_key(dedup)
    request.audit.add_users(command.recipients)
    summary = bootstrap.notifications().send(organization.id, command, dedup)
    return 200, summary.model_dump()


def _dedup_key(request: ApiRequest) -> str | None:
    if request.context is not None:
        return dedup_key(request.context)
    key = request.header(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise ValidationFailed("Idempotency-Key must be 1 to 255 printable characters.")
    return f"idempotency-key:{key}"


api = Api("send", {"/": {"POST": _send}})


@functions_framework.http
def send(request: flask.Request) -> flask.Response:
    """Entry point of the ``send`` Cloud Function."""
    return api.handle(request)
