"""Cloud Function ``reconcile``: sends that cannot finish any more are recorded as such (Cloud
Scheduler, every 5 minutes; ``make dev`` calls it every ``PUSH365_RECONCILE_SECONDS``).

Routes (relative to the function URL):
    POST /  -> counts: sends unfinished, stalled, given up (push365.fanout.reconciler). The same
            callers as purge: in production only the Cloud Scheduler account's OIDC token
            (``Authorization: Bearer``; the function is private too); locally header
            ``X-Push365-Admin-Key``.
"""

import flask
import functions_framework

from push365 import bootstrap
from push365.web import Api, ApiRequest, Operation, Reply, json_errors


def _reconcile(request: ApiRequest) -> Reply:
    report = bootstrap.reconciler().run()
    return 200, report.counts()


api = Api(
    "reconcile",
    {"/": {"POST": _reconcile}},
    operations={
        ("/", "POST"): Operation(
            "Record as lost the sends no fan-out message can come for any more (Cloud "
            "Scheduler, every 5 minutes).",
            auth="purge",
            quota="operator",
            answers={200: "Sends unfinished, stalled, given up; batches given up."},
        )
    },
)


json_errors(functions_framework.errorhandler)


@functions_framework.http
def reconcile(request: flask.Request) -> flask.Response:
    """Entry point of the ``reconcile`` Cloud Function."""
    return api.handle(request)
