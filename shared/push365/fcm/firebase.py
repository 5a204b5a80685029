"""The delivery port over firebase-admin, to FCM HTTP v1 or a local server that speaks it."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from push365.fcm.model import Outcome, PushMessage, SendResult, TokenKind

if TYPE_CHECKING:
    from firebase_admin import App

APP_NAME = "push365"
PRODUCTION_URL = "https://fcm.googleapis.com"
_SEND_PATH = "/v1/projects/{project}/messages:send"
# firebase-admin 7.x warns on every Message(token=...); registration tokens still go there.
_TOKEN_DEPRECATION = r"Message\.token is deprecated"


class FirebaseGateway:
    """Sends through ``firebase_admin.messaging.send_each``; the app is made on first use.

    Args:
        project_id: the Firebase project.
        endpoint: None for the real FCM with Application Default Credentials, or the base URL
            of a server that speaks FCM v1 (``PUSH365_FCM_ENDPOINT``), reached without credentials.
        http_timeout_seconds: the most one FCM request may take.
    """

    def __init__(self, project_id: str, endpoint: str | None, http_timeout_seconds: float) -> None:
        self._project_id = project_id
        self._endpoint = endpoint.rstrip("/") if endpoint else None
        self._timeout = http_timeout_seconds
        self._app: App | None = None
        self._lock = threading.Lock()

    def send_batch(
        self,
        messages: Sequence[PushMessage],
        deadline: float | None = None,
        before_writing: Callable[[], None] | None = None,
    ) -> list[SendResult]:
        """As the port says, but ``send_each`` cannot be stopped once started: the deadline is
        checked before it starts (each request is bounded by ``http_timeout_seconds``), and
        ``before_writing`` runs just before it."""
        from firebase_admin import messaging

        if deadline is not None and time.monotonic() >= deadline:
            return [SendResult(Outcome.RETRY, reason="deadline")] * len(messages)
        if before_writing is not None:
            before_writing()

        app = self._get_app()
        batch = messaging.send_each([_to_message(m) for m in messages], app=app)
        return [
            SendResult(Outcome.SENT, message_id=r.message_id)
            if r.success
            else classify_error(r.exception)
            for r in batch.responses
        ]

    def _get_app(self) -> App:
        with self._lock:
            if self._app is None:
                self._app = self._make_app()
            return self._app

    def _make_app(self) -> App:
        import firebase_admin

        from push365.seams import firebase_admin as firebase_seam

        options = {"projectId": self._project_id, "httpTimeout": self._timeout}
        credential: Any = None
        if self._endpoint is not None:
            from google.auth.credentials import AnonymousCredentials

            credential = AnonymousCredentials()
        try:
            app = firebase_admin.get_app(APP_NAME)
        except ValueError:
            app = firebase_admin.initialize_app(credential, options, name=APP_NAME)
        point_messaging_at(firebase_seam.messaging_service(app), self._endpoint or PRODUCTION_URL)
        return app


def point_messaging_at(service: Any, base_url: str) -> None:
    """Where firebase-admin's messaging service sends, and how it retries (its private state:
    :mod:`push365.seams.firebase_admin`).

    firebase-admin has no supported way to change the FCM URL, and its HTTP adapter retries 500
    and 503 four times and sleeps a 429/503's Retry-After in full, which could outlast Dynamics'
    60 s webhook timeout. Here the URL is set, SDK retries are switched off (the send service
    retries within its own deadline) and proxy-variable scanning is skipped (about a third of
    the client's CPU per request; FCM is never reached through a proxy from Cloud Functions).

    Raises:
        RuntimeError: the SDK changed shape; fail loudly rather than send somewhere unexpected.
    """
    import requests.adapters

    from push365.seams import firebase_admin as firebase_seam

    project = firebase_seam.service_project(service)
    session = firebase_seam.service_session(service)
    if project is None or session is None:
        raise RuntimeError("firebase-admin's messaging service changed: review point_messaging_at")
    firebase_seam.set_service_url(service, base_url + _SEND_PATH.format(project=project))
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=100, max_retries=0)
    session.mount(base_url, adapter)
    session.trust_env = False


def token_field(message: PushMessage) -> str:
    """The field of an FCM message that carries this device's identifier (see
    :func:`_to_message`)."""
    return "fid" if message.token_kind is TokenKind.INSTALLATION_ID else "token"


def _to_message(message: PushMessage) -> Any:
    """The firebase-admin Message for one device: the one place its identifier's field is chosen.

    A registration token (what web browsers have) goes in ``token``, an installation id in
    ``fid``; FCM rejects a registration token sent as ``fid`` as an invalid registration token,
    which would retire the subscription. firebase-admin deprecates ``token`` while FCM keeps it
    supported: only that warning is silenced, here.
    """
    from firebase_admin import messaging

    push = message.push
    headers: dict[str, str] = {}
    if push.ttl_seconds is not None:
        headers["TTL"] = str(push.ttl_seconds)
    if push.urgency is not None:
        headers["Urgency"] = push.urgency
    if push.collapse_key is not None:
        headers["Topic"] = push.collapse_key
    field = token_field(message)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _TOKEN_DEPRECATION, DeprecationWarning)
        return messaging.Message(
            **{field: message.token},
            data={**push.data, **message.device_data},
            webpush=messaging.WebpushConfig(
                headers=headers or None,
                notification=messaging.WebpushNotification(
                    title=push.title, body=push.body, icon=push.icon
                ),
                fcm_options=messaging.WebpushFCMOptions(link=push.link) if push.link else None,
            ),
        )


# FCM's answers, by firebase-admin exception class name -> (outcome, reason code).
_ERRORS: dict[str, tuple[Outcome, str]] = {
    "UnregisteredError": (Outcome.RETIRE, "unregistered"),
    "QuotaExceededError": (Outcome.RETRY, "quota_exceeded"),
    "UnavailableError": (Outcome.RETRY, "unavailable"),
    "InternalError": (Outcome.RETRY, "internal"),
    "DeadlineExceededError": (Outcome.RETRY, "timeout"),
    "SenderIdMismatchError": (Outcome.FAILED, "sender_id_mismatch"),
    "ThirdPartyAuthError": (Outcome.FAILED, "third_party_auth"),
}


def classify_error(error: Exception | None) -> SendResult:
    """A firebase-admin error as a result: a reason code only, never the error's text."""
    name = type(error).__name__
    response = getattr(error, "http_response", None)
    if name == "InvalidArgumentError":
        # A stale token comes back as INVALID_ARGUMENT too; any other invalid argument is ours.
        text = getattr(response, "text", "") or ""
        if "registration token" in text:
            return SendResult(Outcome.RETIRE, reason="invalid_token")
        return SendResult(Outcome.FAILED, reason="invalid_argument")
    outcome, reason = _ERRORS.get(name, (Outcome.FAILED, "error"))
    retry_after = None
    if response is not None and outcome is Outcome.RETRY:
        retry_after = _seconds(response.headers.get("Retry-After"))
    return SendResult(outcome, reason=reason, retry_after_seconds=retry_after)


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date; the caller's backoff applies
