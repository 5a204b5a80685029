"""Cloud Function ``purge``: deletes what the retention rules say is due (Cloud Scheduler, daily).

Routes (relative to the function URL):
    POST /  ``{"as_of"?: ISO-8601, "dry_run"?: bool}`` -> counts per kind. In production only the
            Cloud Scheduler account's OIDC token gets in (``Authorization: Bearer``; the function
            is private too); locally header ``X-Push365-Admin-Key`` (push365.retention.caller).
"""

import flask
import functions_framework

from push365 import bootstrap
from push365.model import iso_utc, validate
from push365.retention.request import PurgeRequest
from push365.web import Api, ApiRequest, Operation, Reply, json_errors


def _purge(request: ApiRequest) -> Reply:
    body = request.json_object() if request.has_body else {}
    purge = validate(PurgeRequest, body)
    as_of = purge.effective_as_of()
    counts = bootstrap.purger().purge(as_of, dry_run=purge.dry_run)
    return 200, {"as_of": iso_utc(as_of), "dry_run": purge.dry_run, "deleted": counts}


api = Api(
    "purge",
    {"/": {"POST": _purge}},
    operations={
        ("/", "POST"): Operation(
            "Delete what the retention rules say is due (Cloud Scheduler, daily).",
            body=PurgeRequest,
            body_required=False,
            auth="purge",
            quota="operator",
            answers={200: "What was (or, dry run, would be) deleted, per kind."},
        )
    },
)


json_errors(functions_framework.errorhandler)


@functions_framework.http
def purge(request: flask.Request) -> flask.Response:
    """Entry point of the ``purge`` Cloud Function."""
    return api.handle(request)
