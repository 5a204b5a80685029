"""Cloud Function ``deliver``: one fan-out message from Pub/Sub (a plan, or a batch of devices).

Triggered by a push subscription on the fan-out topic (and one on its dead-letter topic), as a
CloudEvent (functions-framework converts Pub/Sub's push body). A 2xx acknowledges the message;
503 asks Pub/Sub to deliver it again after the subscription's backoff; after its maximum
attempts the message goes to the dead-letter topic, whose copy this function records as failed.
Every answer but the 2xx is JSON from the error table, functions-framework's own ones included.
A body that is not a Pub/Sub push is refused (400 invalid_message) before functions-framework
reads it, and a message not bound to its notification before anything else reads the store.
"""

import flask
import functions_framework
from cloudevents.http import CloudEvent

from push365 import bootstrap
from push365.fanout.events import ACK, answer, handle_event, screen
from push365.web import json_errors


@functions_framework.cloud_event
def deliver(event: CloudEvent) -> None:
    """Entry point of the ``deliver`` Cloud Function."""
    status = handle_event(event.data, bootstrap.delivery_worker, bootstrap.binding_reader)
    if status != ACK:
        flask.abort(flask.make_response(answer(status), status))


def screen_push() -> flask.Response | None:
    """Refuse a POST whose body is not a Pub/Sub push (functions-framework's conversion would
    answer some of them with a 500)."""
    if flask.request.method != "POST":
        return None
    status = screen(flask.request.get_data(cache=True))
    return None if status is None else flask.make_response(answer(status), status)


json_errors(functions_framework.errorhandler)
if flask.has_app_context():  # loaded by functions-framework, inside its app's context
    flask.current_app.before_request(screen_push)
