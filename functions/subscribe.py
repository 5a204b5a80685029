"""Cloud Function ``subscribe``: a browser opts in to push notifications.

Routes (relative to the function URL):
    POST /  ``{"user_id", "instance_id", "browser_footprint"?, "token_kind"?}`` or a Dataverse
            Create (or Update setting ``p365_instanceid``) of ``p365_subscription``; 201 for a
            new subscription, 200 for a known token (its ``last_seen_at`` refreshed); 409
            ``token_held`` for a token another organization's active subscription holds (a token
            belongs to one organization: which one is never said).
"""

import flask
import functions_framework

from push365 import bootstrap
from push365.dataverse import NotHandled
from push365.errors import TokenHeld
from push365.subscriptions.dataverse import subscribe_from_context
from push365.subscriptions.model import Subscribe
from push365.web import Api, ApiRequest, Operation, Reply, ignored, json_errors


def _subscribe(request: ApiRequest) -> Reply:
    organization = request.organization
    command = request.command(Subscribe, organization, subscribe_from_context)
    if isinstance(command, NotHandled):
        return ignored(command)
    request.audit.add_users([command.user_id])
    outcome = bootstrap.subscriptions().subscribe(organization.id, command)
    return (201 if outcome.created else 200), {"subscription_id": outcome.subscription_id}


api = Api(
    "subscribe",
    {"/": {"POST": _subscribe}},
    operations={
        ("/", "POST"): Operation(
            "Activate a browser's FCM token for a user.",
            body=Subscribe,
            dataverse=True,
            auth="webhook",
            quota="webhook",
            answers={201: "A new subscription.", 200: "Already subscribed (refreshed)."},
            errors=(TokenHeld,),
        )
    },
)


json_errors(functions_framework.errorhandler)


@functions_framework.http
def subscribe(request: flask.Request) -> flask.Response:
    """Entry point of the ``subscribe`` Cloud Function."""
    return api.handle(request)
