"""Cloud Function ``unsubscribe``: a browser, or every browser of a user, opts out.

Routes (relative to the function URL):
    POST /  ``{"instance_id"}`` or ``{"user_id"}``, or a Dataverse Delete of ``p365_subscription``
            (token from the pre-image); answers how many stopped and when their traces are purged.
"""

import flask
import functions_framework

from push365 import bootstrap
from push365.dataverse import NotHandled
from push365.model import iso_utc
from push365.subscriptions.dataverse import unsubscribe_from_context
from push365.subscriptions.model import Unsubscribe
from push365.web import Api, ApiRequest, Operation, Reply, ignored, json_errors


def _unsubscribe(request: ApiRequest) -> Reply:
    organization = request.organization
    command = request.command(Unsubscribe, organization, unsubscribe_from_context)
    if isinstance(command, NotHandled):
        return ignored(command)
    if command.user_id is not None:
        request.audit.add_users([command.user_id])
    outcome = bootstrap.subscriptions().unsubscribe(organization.id, command)
    return 200, {"unsubscribed": outcome.count, "purge_by": iso_utc(outcome.purge_by)}


api = Api(
    "unsubscribe",
    {"/": {"POST": _unsubscribe}},
    operations={
        ("/", "POST"): Operation(
            "Unsubscribe one browser, or every browser of a user.",
            body=Unsubscribe,
            dataverse=True,
            auth="webhook",
            quota="webhook",
            answers={200: "Unsubscribed; what is left is purged by purge_by."},
        )
    },
)


json_errors(functions_framework.errorhandler)


@functions_framework.http
def unsubscribe(request: flask.Request) -> flask.Response:
    """Entry point of the ``unsubscribe`` Cloud Function."""
    return api.handle(request)
