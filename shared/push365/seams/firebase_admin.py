"""firebase-admin's private parts that ``push365.fcm`` (and ``bench/``) use.

firebase-admin has no supported way to change the FCM URL or its HTTP retries, to encode a
message without sending it, or to classify an FCM error answer it did not receive itself. Push365
sends firebase-admin's own request bodies over its own connections (``push365.fcm.http``) and
reads the answers with firebase-admin's own error classification, so that both gateways send
and classify exactly alike (``tests/unit/test_fcm_wire.py``).

firebase-admin is imported only inside these functions: it is loaded on a function's first send.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests
    from firebase_admin import App

DISTRIBUTION = "firebase-admin"
CHECKED_AGAINST = "7.7.0"
USES = (
    "messaging._get_messaging_service, _MessagingService._fcm_url/_project_id/_client.session, "
    "_MessagingService.encode_message, _MessagingService._build_fcm_error_requests, "
    "_utils.handle_platform_error_from_requests, _http_client.METRICS_HEADERS"
)


def messaging_service(app: App) -> Any:
    """The app's messaging service, which ``messaging.send_each`` sends through
    (``messaging._get_messaging_service``)."""
    from firebase_admin import messaging

    return messaging._get_messaging_service(app)


def service_project(service: Any) -> str | None:
    """The Firebase project a messaging service sends for (``_project_id``), None if the SDK
    changed shape."""
    project = getattr(service, "_project_id", None)
    return project if isinstance(project, str) else None


def service_session(service: Any) -> requests.Session | None:
    """The ``requests`` session a messaging service sends on (``_client.session``), None if the
    SDK changed shape."""
    return getattr(getattr(service, "_client", None), "session", None)


def set_service_url(service: Any, url: str) -> None:
    """Make a messaging service send to ``url`` (its ``_fcm_url``: there is no option for it).

    Raises:
        RuntimeError: the SDK changed shape; fail loudly rather than send somewhere unexpected.
    """
    if not hasattr(service, "_fcm_url"):
        raise RuntimeError("firebase-admin's messaging service changed: review set_service_url")
    service._fcm_url = url


def encode_message(message: Any) -> dict[str, Any]:
    """A ``messaging.Message`` as the JSON object ``send_each`` puts under ``"message"``
    (``_MessagingService.encode_message``, the SDK's own encoder and checks).

    Raises:
        ValueError: the encoder refused the message (as ``send_each`` does).
    """
    from firebase_admin import messaging

    encoded: dict[str, Any] = messaging._MessagingService.encode_message(message)
    return encoded


def metrics_headers() -> dict[str, str]:
    """The metrics headers firebase-admin's HTTP client puts on every request
    (``_http_client.METRICS_HEADERS``)."""
    from firebase_admin import _http_client

    return dict(_http_client.METRICS_HEADERS)


def error_handling() -> tuple[Any, Any]:
    """firebase-admin's own handling of an FCM error answer:
    ``_utils.handle_platform_error_from_requests`` with the messaging service's
    ``_build_fcm_error_requests`` (FcmError ``errorCode`` in the details, then the
    ``google.rpc`` status, then the HTTP status).

    Raises:
        RuntimeError: the SDK changed shape; review this module.
    """
    from firebase_admin import _utils, messaging

    build = getattr(messaging._MessagingService, "_build_fcm_error_requests", None)
    handle = getattr(_utils, "handle_platform_error_from_requests", None)
    if not callable(build) or not callable(handle):
        raise RuntimeError("firebase-admin's error handling changed: review push365.seams")
    return handle, build


def fcm_error(status: int, headers: Mapping[str, str], body: bytes) -> Exception:
    """The exception firebase-admin raises for this FCM answer (see :func:`error_handling`),
    from a ``requests`` response made of it as ``send_each`` would have received it.

    Raises:
        RuntimeError: the SDK changed shape; review this module.
    """
    import requests
    from requests.structures import CaseInsensitiveDict

    handle, build = error_handling()
    response = requests.Response()
    response.status_code = status
    response.raw = io.BytesIO(body)  # read once into .content, as a received body is
    response.headers = CaseInsensitiveDict(headers)
    response.encoding = requests.utils.get_encoding_from_headers(response.headers) or "utf-8"
    error = requests.exceptions.HTTPError(f"{status}", response=response)
    result: Exception = handle(error, build)
    return result
