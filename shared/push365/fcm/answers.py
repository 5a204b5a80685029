"""FCM's HTTP answers read as firebase-admin reads them: the error classification."""

from __future__ import annotations

import json
from collections.abc import Mapping

from push365.fcm.firebase import classify_error
from push365.fcm.model import Outcome, SendResult
from push365.seams import firebase_admin as firebase_seam


def classify_answer(status: int, headers: Mapping[str, str], body: bytes) -> SendResult:
    """FCM's HTTP answer as a result, exactly as ``FirebaseGateway`` classifies the same answer.

    The error goes through firebase-admin's own code (FcmError ``errorCode`` in the details, then
    the ``google.rpc`` status, then the HTTP status: :func:`push365.seams.firebase_admin.
    fcm_error`), then ``classify_error``.
    """
    if 200 <= status < 300:
        try:
            answer = json.loads(body)
        except ValueError:
            return classify_error(None)
        name = answer.get("name") if isinstance(answer, dict) else None
        if isinstance(name, str):
            return SendResult(Outcome.SENT, message_id=name)
        return classify_error(None)
    if status < 400:  # a 3xx (not followed: a redirect would re-send) has no message name
        return classify_error(None)
    try:
        error = firebase_seam.fcm_error(status, headers, body)
    except (ValueError, TypeError, AttributeError, KeyError):
        error = None  # a body firebase-admin itself would choke on (send_each would raise)
    return classify_error(error)
