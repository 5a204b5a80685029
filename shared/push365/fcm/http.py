"""The delivery port over aiohttp: FCM HTTP v1 in firebase-admin's wire format, pooled.

firebase-admin's ``send_each`` runs one thread and one blocking ``requests`` POST per message (about
1 ms of client CPU each); this sends the same requests (the body from firebase-admin's own encoder,
its headers) concurrently over a small pool of keep-alive connections on one event loop, and reads
the answers with firebase-admin's own error classification.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import json
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from contextvars import ContextVar
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from push365.fcm.firebase import PRODUCTION_URL, _to_message, classify_error, token_field
from push365.fcm.model import Outcome, PushMessage, SendResult, TokenKind

if TYPE_CHECKING:
    import aiohttp

FCM_SCOPES = ["https://www.googleapis.com/auth/firebase.messaging"]
_SEND_PATH = "/v1/projects/{project}/messages:send"
# The request the current task sends: its ``written`` turns True once it has a connection.
_REQUEST: ContextVar[SimpleNamespace] = ContextVar("fcm_request")


class FcmHttpGateway:
    """Sends each message as one FCM v1 request, a batch's requests all at once over a shared pool.

    One event loop (in a daemon thread), one ``aiohttp`` session and one connection pool per
    instance, made on first use; ``send_batch`` may be called from any thread.

    Args:
        project_id: the Firebase project.
        endpoint: None for the real FCM with Application Default Credentials, or the base URL
            of a server that speaks FCM v1 (``PUSH365_FCM_ENDPOINT``), reached without credentials.
        http_timeout_seconds: the most one request may take, from when it has a connection slot
            (connecting, writing and reading the answer).
        pool_size: keep-alive connections (and so requests in flight) at most.
    """

    def __init__(
        self,
        project_id: str,
        endpoint: str | None,
        http_timeout_seconds: float,
        pool_size: int = 16,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        base = endpoint.rstrip("/") if endpoint else PRODUCTION_URL
        self._url = base + _SEND_PATH.format(project=project_id)
        self._local = endpoint is not None
        self._timeout = http_timeout_seconds
        self._pool_size = pool_size
        self._lock = threading.Lock()  # the loop and session
        self._auth_lock = threading.Lock()  # the credentials
        self._credentials: Any = None
        self._stale_token: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._headers: dict[str, str] = {}
        self._client_error: type[Exception] = OSError  # aiohttp.ClientError once loaded

    def send_batch(self, messages: Sequence[PushMessage]) -> list[SendResult]:
        """Send each message once, all concurrently; one result per message, in order.

        Raises:
            ValueError: firebase-admin's encoder refused a message (as ``send_each`` does).
            google.auth.exceptions.GoogleAuthError: no credentials. Either way nothing was sent.
        """
        if not messages:
            return []
        bodies = _bodies(messages)
        headers = self._auth_headers()
        loop = self._start()
        future: Future[list[SendResult]] = asyncio.run_coroutine_threadsafe(
            self._send_all(bodies, headers), loop
        )
        return future.result()

    def close(self) -> None:
        """Close the connections and end the loop's thread; a later send starts them again."""
        with self._lock:
            loop, self._loop = self._loop, None
            session, self._session = self._session, None
            if loop is None:
                return
            if session is not None:
                asyncio.run_coroutine_threadsafe(session.close(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)

    # The loop, its session and its pool.

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                import aiohttp  # only when sending: it costs cold-start time
                import firebase_admin
                from firebase_admin import _http_client

                # What firebase-admin's _MessagingService and JsonHttpClient put on every send.
                self._headers = {
                    "X-GOOG-API-FORMAT-VERSION": "2",
                    "X-FIREBASE-CLIENT": f"fire-admin-python/{firebase_admin.__version__}",
                    **_http_client.METRICS_HEADERS,
                    "Content-Type": "application/json",
                }
                self._client_error = aiohttp.ClientError
                _firebase_error_seam()  # fail loudly before sending, not on FCM's first error
                loop = asyncio.new_event_loop()
                threading.Thread(target=_run, args=(loop,), name="fcm-http", daemon=True).start()
                self._session = asyncio.run_coroutine_threadsafe(self._open(), loop).result()
                self._loop = loop
                # Close the pool with the process, before the interpreter tears modules down.
                atexit.register(self.close)
            return self._loop

    async def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        self._slots = asyncio.Semaphore(self._pool_size)
        connector = _connector_class()(limit=self._pool_size, limit_per_host=self._pool_size)
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),  # per request, below
            headers=self._headers,
            trust_env=False,  # FCM is never reached through a proxy from Cloud Functions
            cookie_jar=aiohttp.DummyCookieJar(),  # FCM sets none; a jar costs every request
        )

    async def _send_all(self, bodies: list[bytes], headers: Mapping[str, str]) -> list[SendResult]:
        # Let the loop first take in what happened while it was idle (or the instance frozen): a
        # keep-alive connection the server closed is then dropped, not written to and lost.
        for _ in range(2):
            await asyncio.sleep(0)
        return list(await asyncio.gather(*(self._send_one(b, headers) for b in bodies)))

    async def _send_one(self, body: bytes, headers: Mapping[str, str]) -> SendResult:
        assert self._session is not None
        assert self._slots is not None
        sent = SimpleNamespace(written=False)
        _REQUEST.set(sent)  # this task's own context: gather runs each send in a task
        async with self._slots:
            try:
                async with asyncio.timeout(self._timeout):
                    async with self._session.post(
                        self._url,
                        data=body,
                        headers=headers,
                        allow_redirects=False,
                    ) as response:
                        raw = await response.read()
                        status = response.status
                        answer_headers = dict(response.headers)
            except TimeoutError:
                # Written but unanswered: FCM may have accepted it (the caller may re-send once).
                return SendResult(
                    Outcome.RETRY,
                    reason="timeout" if sent.written else "connection",
                    maybe_delivered=sent.written,
                )
            except (OSError, self._client_error):
                # Refused or reset: if before the request was written, FCM never saw it.
                return SendResult(Outcome.RETRY, reason="connection", maybe_delivered=sent.written)
            except Exception:  # noqa: BLE001 - one message's surprise must not fail the others
                return SendResult(Outcome.FAILED, reason="error", maybe_delivered=sent.written)
        result = classify_answer(status, answer_headers, raw)
        if status == 401 and result.reason == "error":
            self._stale_token = headers.get("authorization")  # refreshed before the next batch
        return result

    # Credentials.

    def _auth_headers(self) -> dict[str, str]:
        """The Authorization header (none for a local server), refreshed when near expiry."""
        if self._local:
            return {}
        with self._auth_lock:
            import google.auth
            import google.auth.transport.requests

            if self._credentials is None:
                self._credentials, _ = google.auth.default(scopes=FCM_SCOPES)
            credentials = self._credentials
            headers: dict[str, str] = {}
            # valid is False within google-auth's refresh threshold (3 min 45 s) of expiry.
            if not credentials.valid or (
                self._stale_token is not None and f"Bearer {credentials.token}" == self._stale_token
            ):
                credentials.refresh(google.auth.transport.requests.Request())
                self._stale_token = None
            credentials.apply(headers)
            return headers


def _run(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()


@functools.cache
def _connector_class() -> type[aiohttp.TCPConnector]:
    """aiohttp's connector, telling each request when it has its connection.

    aiohttp writes the request as soon as ``connect`` returns, so a failure before that was never
    written (FCM cannot have it) and one after may have been (a trace config says the same, at
    about 10% more CPU per request).
    """
    import aiohttp
    from aiohttp.tracing import Trace

    class Connector(aiohttp.TCPConnector):
        async def connect(
            self, req: aiohttp.ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
        ) -> aiohttp.connector.Connection:
            connection = await super().connect(req, traces, timeout)
            state = _REQUEST.get(None)
            if state is not None:
                state.written = True
            return connection

    return Connector


def _body(message: PushMessage) -> bytes:
    """The request body exactly as firebase-admin's ``send_each`` sends it (``requests``' json=)."""
    return _dumps(_encoded(message))


def _bodies(messages: Sequence[PushMessage]) -> list[bytes]:
    """Each message's body, as :func:`_body` makes it, firebase-admin's encoder run once per
    batch: a batch's messages differ only in their token and their devices' data values (each
    device's receipt), which that encoder passes through as they are once it has checked they
    are strings (the token a non-empty one); here they are checked the same and set into its
    output for the batch.
    ``tests/unit/test_fcm_wire.py`` compares every body with firebase-admin's own."""
    encoded: dict[tuple[int, TokenKind, tuple[str, ...]], dict[str, Any]] = {}
    bodies = []
    for message in messages:
        key = (id(message.push), message.token_kind, tuple(message.device_data))
        template = encoded.get(key)
        if template is None:
            template = encoded[key] = _encoded(message)
        if not (isinstance(message.token, str) and message.token) or not all(
            isinstance(v, str) for v in message.device_data.values()
        ):
            bodies.append(_body(message))  # firebase-admin's encoder says what is wrong
            continue
        body = dict(template)
        body[token_field(message)] = message.token
        if "data" in body:  # (no data at all: the encoder leaves the field out)
            body["data"] = {**message.push.data, **message.device_data}
        bodies.append(_dumps(body))
    return bodies


def _encoded(message: PushMessage) -> dict[str, Any]:
    from firebase_admin import messaging

    encoded: dict[str, Any] = messaging._MessagingService.encode_message(_to_message(message))
    return encoded


def _dumps(encoded: dict[str, Any]) -> bytes:
    return json.dumps({"message": encoded}, allow_nan=False).encode("utf-8")


def classify_answer(status: int, headers: Mapping[str, str], body: bytes) -> SendResult:
    """FCM's HTTP answer as a result, exactly as ``FirebaseGateway`` classifies the same answer.

    The error goes through firebase-admin's own code (FcmError ``errorCode`` in the details, then
    the ``google.rpc`` status, then the HTTP status), then ``classify_error``.
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
    if status < 400:  # 1xx/3xx: requests raises nothing and the body has no message name
        return classify_error(None)
    try:
        error = _firebase_error(status, headers, body)
    except (ValueError, TypeError, AttributeError, KeyError):
        error = None  # a body firebase-admin itself would choke on (send_each would raise)
    return classify_error(error)


def _firebase_error(status: int, headers: Mapping[str, str], body: bytes) -> Exception:
    """The exception firebase-admin 7.x raises for this answer (the one seam into its internals).

    Raises:
        RuntimeError: the SDK changed shape; review this function.
    """
    import requests
    from requests.structures import CaseInsensitiveDict

    handle, build = _firebase_error_seam()
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers = CaseInsensitiveDict(headers)
    response.encoding = requests.utils.get_encoding_from_headers(response.headers) or "utf-8"
    error = requests.exceptions.HTTPError(f"{status}", response=response)
    result: Exception = handle(error, build)
    return result


def _firebase_error_seam() -> tuple[Any, Any]:
    """firebase-admin's own handling of an FCM error answer (private in 7.x: checked here).

    Raises:
        RuntimeError: the SDK changed shape; review ``_firebase_error``.
    """
    from firebase_admin import _utils, messaging

    build = getattr(messaging._MessagingService, "_build_fcm_error_requests", None)
    handle = getattr(_utils, "handle_platform_error_from_requests", None)
    if not callable(build) or not callable(handle):
        raise RuntimeError("firebase-admin's error handling changed: review _firebase_error")
    return handle, build
