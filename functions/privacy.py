"""Cloud Function ``privacy``: the customer's rights of access and erasure.

Routes (relative to the function URL):
    GET  /export   everything held about the organization; ``?user_id=`` about one user; a page
                   at a time (``?page_token=`` the answer's ``next_page_token``)
    POST /erase    ``{"user_id"}``: that user, their subscriptions and their id in notification
                   records, now; ``{"organization": true}``: the whole organization and its key
"""

import flask
import functions_framework
from pydantic import Field

from push365 import bootstrap
from push365.errors import NotFound
from push365.model import Guid, InputModel, validate
from push365.privacy.service import EraseRequest
from push365.web import Api, ApiRequest, Operation, Reply, json_errors


class ExportQuery(InputModel):
    """``GET /privacy/export``: the organization, or one user; a page at a time."""

    user_id: Guid | None = None
    page_token: str | None = Field(
        default=None,
        pattern=r"^(users|subscriptions|notifications|dedup_keys)\.[0-9a-f-]{0,64}$",
        description=(
            "The next_page_token the previous page answered (none: the first page); a user's "
            "export has only the sections subscriptions and notifications."
        ),
    )


def _export(request: ApiRequest) -> Reply:
    query = request.parsed(ExportQuery)
    if query.user_id is not None:
        request.audit.add_users([query.user_id])
    return 200, bootstrap.privacy().export(request.organization.id, query.user_id, query.page_token)


def _erase(request: ApiRequest) -> Reply:
    organization = request.organization
    erase = validate(EraseRequest, request.json_object())
    if erase.user_id is not None:
        request.audit.add_users([erase.user_id])
    return 200, {"erased": bootstrap.privacy().erase(organization, erase)}


api = Api(
    "privacy",
    {"/export": {"GET": _export}, "/erase": {"POST": _erase}},
    operations={
        ("/export", "GET"): Operation(
            "Everything held about the organization, or one user.",
            query=ExportQuery,
            errors=(NotFound,),
            auth="key",
            quota="read",
        ),
        ("/erase", "POST"): Operation(
            "Erase a user, or the whole organization, now.",
            body=EraseRequest,
            auth="key",
            quota="admin",
        ),
    },
)


json_errors(functions_framework.errorhandler)


@functions_framework.http
def privacy(request: flask.Request) -> flask.Response:
    """Entry point of the ``privacy`` Cloud Function."""
    return api.handle(request)
