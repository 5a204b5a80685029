"""The delivery port over HTTP/1.1 keep-alive: FCM HTTP v1 in firebase-admin's wire format, pooled.

firebase-admin's ``send_each`` runs one thread and one blocking ``requests`` POST per message (about
1.5 ms of client CPU each); this sends the same requests (the body from firebase-admin's own
encoder, its headers) concurrently over a small pool of keep-alive connections on one event loop,
and reads the answers with firebase-admin's own error classification.

The connections are asyncio protocols with ``httptools`` (the C binding of llhttp, Node's parser)
reading the answers: 87 to 123 µs of client CPU per message here, where aiohttp's client cost 218
to 240 (``bench/fcm_transport.py``: 16 connections, 20,000 messages). What this port needs of HTTP
is small and fixed: one host, ``POST`` with a length, one request at a time on a connection,
answers framed by length or chunks and possibly gzip- or deflate-coded (it asks as ``requests``
asks). A connection is never reused after anything unexpected (a timeout, a parse error, a close):
an answer can never be read as another request's, and nothing is ever sent twice by this port.

By concern: the loop bridge (``loop.py``), the connection pool (``pool.py``), the HTTP protocol
(``protocol.py``), the request bodies (``body.py``), the answers' classification
(``answers.py``); this module holds the gateway itself: the request head, the credentials, the
loop and pool it starts.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from push365.fcm.body import bodies
from push365.fcm.firebase import PRODUCTION_URL
from push365.fcm.loop import start_loop
from push365.fcm.model import PushMessage, SendResult
from push365.fcm.pool import ConnectionPool
from push365.fcm.protocol import ACCEPT_ENCODING
from push365.seams import firebase_admin as firebase_seam

if TYPE_CHECKING:
    import ssl

FCM_SCOPES = ["https://www.googleapis.com/auth/firebase.messaging"]
_SEND_PATH = "/v1/projects/{project}/messages:send"


class FcmHttpGateway:
    """Sends each message as one FCM v1 request, a batch's requests all at once over a shared pool.

    One event loop (in a daemon thread) and one pool of keep-alive connections per instance, made
    on first use; ``send_batch`` may be called from any thread.

    Args:
        project_id: the Firebase project.
        endpoint: None for the real FCM with Application Default Credentials, or the base URL
            of a server that speaks FCM v1 (``PUSH365_FCM_ENDPOINT``), reached without credentials.
        http_timeout_seconds: the most one request may take, from when it has a connection slot
            (connecting, writing and reading the answer).
        pool_size: keep-alive connections (and so requests in flight) at most.
        tls_context: how an ``https`` endpoint is verified; by default as requests verifies
            it (certifi's roots, the host name).
    """

    def __init__(
        self,
        project_id: str,
        endpoint: str | None,
        http_timeout_seconds: float,
        pool_size: int = 16,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        url = urlsplit(endpoint.rstrip("/") if endpoint else PRODUCTION_URL)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("the FCM endpoint must be an http or https URL")
        self._tls = url.scheme == "https"
        self._host = url.hostname
        default_port = 443 if self._tls else 80
        self._port = url.port or default_port
        host = f"[{self._host}]" if ":" in self._host else self._host  # an IPv6 address
        self._authority = host if self._port == default_port else f"{host}:{self._port}"
        self._path = url.path + _SEND_PATH.format(project=project_id)
        self._local = endpoint is not None
        self._timeout = http_timeout_seconds
        self._pool_size = pool_size
        self._lock = threading.Lock()  # the loop
        self._auth_lock = threading.Lock()  # the credentials
        self._credentials: Any = None
        self._stale_token: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ssl = tls_context
        self._pool: ConnectionPool | None = None  # made on the loop
        self._head = b""

    def send_batch(
        self,
        messages: Sequence[PushMessage],
        deadline: float | None = None,
        before_writing: Callable[[], None] | None = None,
    ) -> list[SendResult]:
        """Send each message once, all concurrently; one result per message, in order.

        ``before_writing`` (a batch no larger than the pool): a slot and an open connection are
        held for every message first, then ``before_writing`` runs (in a worker thread: the
        caller stores its claim there), then every request is written at once. An exception it
        raises is raised here, and nothing was written.

        ``deadline`` (a ``time.monotonic()`` value) bounds the whole batch: a request starts
        only while its whole timeout still fits before the deadline (or, when the deadline is
        nearer than one timeout from the start, while any time is left), so requests in flight
        are not cut short by it; one not started is ``RETRY`` with reason ``deadline`` and was
        never sent. The call returns by the deadline, give or take the loop's scheduling.

        Raises:
            ValueError: firebase-admin's encoder refused a message (as ``send_each`` does).
            google.auth.exceptions.GoogleAuthError: no credentials. Either way nothing was sent.
        """
        if not messages:
            return []
        encoded = bodies(messages)
        credentials = self._auth_headers()  # Authorization, and any other header they set
        authorization = credentials.get("authorization")
        loop = self._start()
        head = self._head + "".join(f"{k}: {v}\r\n" for k, v in credentials.items()).encode()
        requests = [head + b"Content-Length: %d\r\n\r\n" % len(body) + body for body in encoded]
        pool = self._pool
        assert pool is not None
        future: Future[list[SendResult]] = asyncio.run_coroutine_threadsafe(
            pool.send_reserved(requests, authorization, deadline, before_writing)
            if before_writing is not None
            else pool.send_all(requests, authorization, deadline),
            loop,
        )
        return future.result()

    def close(self) -> None:
        """Close the connections and end the loop's thread; a later send starts them again. A
        batch still sending raises ``CancelledError`` in its caller (its messages unknown)."""
        with self._lock:
            loop, self._loop = self._loop, None
            if loop is None:
                return
            pool = self._pool
            assert pool is not None
            asyncio.run_coroutine_threadsafe(pool.shut(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)

    # The loop and its pool.

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                import firebase_admin

                # What firebase-admin's _MessagingService and JsonHttpClient put on every send,
                # and what requests adds (Accept, Accept-Encoding).
                headers = {
                    "Host": self._authority,
                    "Accept": "*/*",
                    "Accept-Encoding": ACCEPT_ENCODING,
                    "X-GOOG-API-FORMAT-VERSION": "2",
                    "X-FIREBASE-CLIENT": f"fire-admin-python/{firebase_admin.__version__}",
                    **firebase_seam.metrics_headers(),
                    "Content-Type": "application/json",
                }
                self._head = (
                    f"POST {self._path} HTTP/1.1\r\n"
                    + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
                ).encode("latin-1")
                if self._tls and self._ssl is None:
                    self._ssl = _tls_context()
                # Fail loudly before sending, not on FCM's first error.
                firebase_seam.error_handling()
                loop = start_loop("fcm-http")
                asyncio.run_coroutine_threadsafe(self._open(), loop).result()
                self._loop = loop
                # Close the pool with the process, before the interpreter tears modules down.
                atexit.register(self.close)
            return self._loop

    async def _open(self) -> None:
        self._pool = ConnectionPool(
            self._host, self._port, self._ssl, self._pool_size, self._timeout, self._rejected
        )

    def _rejected(self, authorization: str | None) -> None:
        self._stale_token = authorization  # refreshed before the next batch

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


def _tls_context() -> ssl.SSLContext:
    """TLS as requests verifies it: certifi's roots."""
    import ssl

    import certifi

    return ssl.create_default_context(cafile=certifi.where())
