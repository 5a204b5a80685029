"""Cloud Function ``receipt``: a browser's service worker confirms it showed a notification.

Routes (relative to the function URL):
    POST /  ``{"receipt"}`` (no organization key: the receipt itself is the proof) -> 204 and
            the device's ``delivered_at`` is set; an unknown receipt -> 404.
"""

import flask
import functions_framework

from push365 import bootstrap
from push365.errors import UnknownReceipt
from push365.model import validate
from push365.notifications.model import ReceiptRequest
from push365.web import Api, ApiRequest, Cors, Operation, Reply, json_errors


def _receipt(request: ApiRequest) -> Reply:
    receipt = validate(ReceiptRequest, request.json_object())
    bootstrap.notifications().confirm_delivery(receipt.receipt)
    return 204, {}


api = Api(
    "receipt",
    {"/": {"POST": _receipt}},
    cors={"/": Cors(methods="POST", headers="Content-Type")},
    operations={
        ("/", "POST"): Operation(
            "A service worker confirms it showed a notification.",
            body=ReceiptRequest,
            auth="none",
            quota="receipt",
            answers={204: "Recorded (once)."},
            errors=(UnknownReceipt,),
        )
    },
)


json_errors(functions_framework.errorhandler)


@functions_framework.http
def receipt(request: flask.Request) -> flask.Response:
    """Entry point of the ``receipt`` Cloud Function."""
    return api.handle(request)
