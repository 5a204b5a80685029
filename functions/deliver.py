"""Cloud Function ``deliver``: one fan-out message from Pub/Sub (a plan, or a batch of devices).

Triggered by a push subscription on the fan-out topic (and one on its dead-letter topic), as a
CloudEvent (functions-framework converts Pub/Sub's push body). A 2xx acknowledges the message;
503 asks Pub/Sub to deliver it again after the subscription's backoff; after its maximum
attempts the message goes to the dead-letter topic, whose copy this function records as failed.
Every answer but the 2xx is JSON from the error table, functions-framework's own ones included.
"""

import flask
import functions_framework
from cloudevents.http import CloudEvent

from push365 import bootstrap
from push365.fanout.events import ACK, answer, handle_event
from push365.web import json_errors


@functions_framework.cloud_event
def deliver(event: CloudEvent) -> None:
    """Entry point of the ``deliver`` Cloud Function."""
    status = handle_event(event.data, bootstrap.delivery_worker)
    if status != ACK:
        flask.abort(flask.make_response(answer(status), status))


json_errors(functions_framework.errorhandler)
