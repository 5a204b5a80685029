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
"""

from __future__ import annotations

import asyncio
import atexit
import json
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from push365.fcm.firebase import PRODUCTION_URL, _to_message, classify_error, token_field
from push365.fcm.model import Outcome, PushMessage, SendResult, TokenKind

if TYPE_CHECKING:
    import ssl

FCM_SCOPES = ["https://www.googleapis.com/auth/firebase.messaging"]
_SEND_PATH = "/v1/projects/{project}/messages:send"
# What requests (and so firebase-admin) asks for: the answers this port can decode.
ACCEPT_ENCODING = "gzip, deflate"
# A keep-alive connection idle for longer is not used again (aiohttp's default, what came before).
IDLE_SECONDS = 15.0
# The largest answer body taken, decoded (FCM's are under 1 KB).
MAX_ANSWER_BYTES = 1 << 20


class _Answer(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


class ConnectionLost(Exception):
    """The connection ended, or answered what HTTP/1.1 does not allow, before the whole answer."""


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
        self._slots: asyncio.Semaphore | None = None
        self._reserving: asyncio.Lock | None = None  # one whole-batch reservation at a time
        self._idle: list[_Connection] = []
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
        bodies = _bodies(messages)
        credentials = self._auth_headers()  # Authorization, and any other header they set
        authorization = credentials.get("authorization")
        loop = self._start()
        head = self._head + "".join(f"{k}: {v}\r\n" for k, v in credentials.items()).encode()
        requests = [head + b"Content-Length: %d\r\n\r\n" % len(body) + body for body in bodies]
        future: Future[list[SendResult]] = asyncio.run_coroutine_threadsafe(
            self._send_reserved(requests, authorization, deadline, before_writing)
            if before_writing is not None
            else self._send_all(requests, authorization, deadline),
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
            asyncio.run_coroutine_threadsafe(self._shut(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)

    # The loop and its pool.

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                import firebase_admin
                from firebase_admin import _http_client

                # What firebase-admin's _MessagingService and JsonHttpClient put on every send,
                # and what requests adds (Accept, Accept-Encoding).
                headers = {
                    "Host": self._authority,
                    "Accept": "*/*",
                    "Accept-Encoding": ACCEPT_ENCODING,
                    "X-GOOG-API-FORMAT-VERSION": "2",
                    "X-FIREBASE-CLIENT": f"fire-admin-python/{firebase_admin.__version__}",
                    **_http_client.METRICS_HEADERS,
                    "Content-Type": "application/json",
                }
                self._head = (
                    f"POST {self._path} HTTP/1.1\r\n"
                    + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
                ).encode("latin-1")
                if self._tls and self._ssl is None:
                    self._ssl = _tls_context()
                _firebase_error_seam()  # fail loudly before sending, not on FCM's first error
                loop = asyncio.new_event_loop()
                threading.Thread(target=_run, args=(loop,), name="fcm-http", daemon=True).start()
                asyncio.run_coroutine_threadsafe(self._open(), loop).result()
                self._loop = loop
                # Close the pool with the process, before the interpreter tears modules down.
                atexit.register(self.close)
            return self._loop

    async def _open(self) -> None:
        self._slots = asyncio.Semaphore(self._pool_size)
        self._reserving = asyncio.Lock()
        self._idle = []

    async def _shut(self) -> None:
        # Sends still running end now (their connections closed, never back in a pool), so that
        # no caller waits on a loop that is about to stop.
        sending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in sending:
            task.cancel()
        await asyncio.gather(*sending, return_exceptions=True)
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    async def _send_all(
        self, requests: list[bytes], authorization: str | None, deadline: float | None
    ) -> list[SendResult]:
        # Let the loop first take in what happened while it was idle (or the instance frozen): a
        # keep-alive connection the server closed is then dropped, not written to and lost.
        for _ in range(2):
            await asyncio.sleep(0)
        # One sender per connection the batch can use, each taking the next request in turn.
        results: list[SendResult | None] = [None] * len(requests)
        turns = iter(range(len(requests)))
        # A request starts only with this long left before the deadline.
        needs = 0.0
        if deadline is not None:
            needs = min(self._timeout, deadline - asyncio.get_running_loop().time())

        async def sender() -> None:
            for index in turns:
                results[index] = await self._send_one(
                    requests[index], authorization, deadline, needs
                )

        await asyncio.gather(*(sender() for _ in range(min(self._pool_size, len(requests)))))
        answered = [result for result in results if result is not None]
        assert len(answered) == len(requests)  # _send_one answers whatever happens
        return answered

    async def _send_one(
        self, request: bytes, authorization: str | None, deadline: float | None, needs: float
    ) -> SendResult:
        assert self._slots is not None
        async with self._slots:
            # The loop's clock is time.monotonic(): the deadline is read on it directly.
            budget = self._timeout
            if deadline is not None:
                budget = min(budget, deadline - asyncio.get_running_loop().time())
                if budget <= 0 or budget < needs:
                    return SendResult(Outcome.RETRY, reason="deadline")  # never started
            return await self._exchange(request, authorization, budget, None)

    async def _send_reserved(
        self,
        requests: list[bytes],
        authorization: str | None,
        deadline: float | None,
        before_writing: Callable[[], None],
    ) -> list[SendResult]:
        """Every slot and connection first, then ``before_writing``, then every request at once:
        between the caller's claim and the writes there is no wait on FCM or another batch."""
        assert self._slots is not None
        assert self._reserving is not None
        if len(requests) > self._pool_size:
            raise ValueError("a reserved batch is no larger than the pool")
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0)  # take in connections the server closed while idle
        left = self._timeout if deadline is None else deadline - loop.time()
        needs = min(self._timeout, left)
        not_started = [SendResult(Outcome.RETRY, reason="deadline")] * len(requests)
        held = 0
        connections: list[_Connection] = []
        handed = False
        try:
            try:
                async with asyncio.timeout(max(left - needs, 0.0) if deadline else self._timeout):
                    async with self._reserving:  # two reservations never hold part each
                        for _ in requests:
                            await self._slots.acquire()
                            held += 1
                    for _ in requests:
                        connections.append(self._idle_connection() or await self._connect())
            except (TimeoutError, OSError):
                return not_started
            await asyncio.to_thread(before_writing)  # the caller's claim; raises: nothing sent
            budget = self._timeout
            if deadline is not None:
                budget = min(budget, deadline - loop.time())
                if budget <= 0:
                    return not_started
            handed = True
            sent = await asyncio.gather(
                *(
                    self._exchange(request, authorization, budget, connection)
                    for request, connection in zip(requests, connections, strict=True)
                )
            )
            return list(sent)
        finally:
            if not handed:
                for connection in connections:
                    connection.idle_since = loop.time()
                    self._idle.append(connection)
            for _ in range(held):
                self._slots.release()

    async def _exchange(
        self,
        request: bytes,
        authorization: str | None,
        budget: float,
        held: _Connection | None,
    ) -> SendResult:
        """One request on ``held`` (or a connection of the pool) within ``budget`` seconds."""
        written = False  # once written, the request may have reached FCM
        connection: _Connection | None = held
        answer: _Answer | None = None
        try:
            async with asyncio.timeout(budget):
                if connection is None:
                    connection = self._idle_connection() or await self._connect()
                written = connection.usable  # request() writes at once if it is
                answer = await connection.request(request)
        except TimeoutError:
            # Written but unanswered: FCM may have accepted it (the caller may re-send once).
            return SendResult(
                Outcome.RETRY,
                reason="timeout" if written else "connection",
                maybe_delivered=written,
            )
        except (OSError, ConnectionLost):
            # Refused or reset: if before the request was written, FCM never saw it.
            return SendResult(Outcome.RETRY, reason="connection", maybe_delivered=written)
        except Exception:  # noqa: BLE001 - one message's surprise must not fail the others
            return SendResult(Outcome.FAILED, reason="error", maybe_delivered=written)
        finally:
            if connection is not None:
                if answer is not None and connection.usable:
                    connection.idle_since = asyncio.get_running_loop().time()
                    self._idle.append(connection)
                else:
                    connection.close()  # never read on after anything unexpected
        try:
            result = classify_answer(answer.status, answer.headers, answer.body)
        except Exception:  # noqa: BLE001 - FCM answered: it may have taken the message
            return SendResult(Outcome.FAILED, reason="error", maybe_delivered=True)
        if answer.status == 401 and result.reason == "error":
            self._stale_token = authorization  # refreshed before the next batch
        return result

    def _idle_connection(self) -> _Connection | None:
        """The most recently used idle connection; those idle for longer than IDLE_SECONDS are
        closed instead (a server or a NAT on the way may have dropped them without a word)."""
        oldest = asyncio.get_running_loop().time() - IDLE_SECONDS
        while self._idle:
            connection = self._idle.pop()
            if connection.usable and connection.idle_since >= oldest:
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        # With TLS, asyncio checks the certificate against the host name (SNI too).
        _, connection = await loop.create_connection(
            _Connection, self._host, self._port, ssl=self._ssl
        )
        return connection

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


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time, ``usable`` until anything unexpected:
    a close, an answer nobody asked for, bytes that are not HTTP/1.1."""

    def __init__(self) -> None:
        import httptools

        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[_Answer] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._coding = b""
        self.usable = True
        self.idle_since = 0.0

    async def request(self, data: bytes) -> _Answer:
        if not self.usable or self._transport is None or self._transport.is_closing():
            raise ConnectionLost
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        return await self._waiter

    def close(self) -> None:
        self.usable = False
        if self._transport is not None:
            self._transport.abort()  # nothing of ours is left to write

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            self._lost()  # bytes nobody asked for: nothing on this connection is trusted again
            return
        try:
            self._parser.feed_data(data)
        except Exception:  # noqa: BLE001 - httptools.HttpParserError and its kin
            self._lost()

    def eof_received(self) -> bool:
        self._lost()  # an answer framed by the close is not one FCM sends: never half-read
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()

    # httptools' callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-encoding":
            self._coding = value.strip().lower()
        self._headers[name.decode("latin-1")] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._size += len(body)
        if self._size > MAX_ANSWER_BYTES:
            self._lost()

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        body = _decoded(b"".join(self._body), self._coding)
        headers = self._headers
        self._headers, self._body, self._coding, self._size = {}, [], b"", 0
        if 100 <= status < 200 and status != 101:
            return  # informational: the answer follows (requests never shows these either)
        answer = _Answer(status, headers, body)
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            self._lost()  # an answer nobody asked for
            return
        if not self._parser.should_keep_alive():
            self.close()
        waiter.set_result(answer)

    def _lost(self) -> None:
        self.close()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionLost())


def _decoded(body: bytes, coding: bytes) -> bytes:
    """The body as sent before its ``Content-Encoding`` (gzip or deflate, what is asked for, raw
    deflate too, as urllib3 takes it); one that does not decode, is coded otherwise or decodes to
    more than MAX_ANSWER_BYTES reads as empty (no message name: classified as ``send_each``
    classifies a body it cannot read)."""
    if not coding or coding == b"identity":
        return body
    tries = {
        b"gzip": (16 + zlib.MAX_WBITS,),
        b"x-gzip": (16 + zlib.MAX_WBITS,),
        b"deflate": (zlib.MAX_WBITS, -zlib.MAX_WBITS),
    }.get(coding, ())
    for wbits in tries:
        decoder = zlib.decompressobj(wbits)
        try:
            data = decoder.decompress(body, MAX_ANSWER_BYTES)
        except zlib.error:
            continue
        return b"" if decoder.unconsumed_tail else data
    return b""


def _tls_context() -> ssl.SSLContext:
    """TLS as requests verifies it: certifi's roots."""
    import ssl

    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _run(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()


def _body(message: PushMessage) -> bytes:
    """The request body exactly as firebase-admin's ``send_each`` sends it (``requests``' json=)."""
    return _dumps(_encoded(message))


def _bodies(messages: Sequence[PushMessage]) -> list[bytes]:
    """Each message's body, as :func:`_body` makes it, firebase-admin's encoder run once per
    batch: a batch's messages differ only in their token and their devices' data values (each
    device's receipt), which that encoder passes through as they are once it has checked they
    are strings (the token a non-empty one); here they are checked the same and set into its
    output for the batch, as JSON strings set into its JSON text (:class:`_Template`).
    ``tests/unit/test_fcm_wire.py`` compares every body with firebase-admin's own."""
    templates: dict[tuple[int, TokenKind, tuple[str, ...]], _Template | None] = {}
    bodies = []
    for message in messages:
        if not (isinstance(message.token, str) and message.token) or not all(
            isinstance(v, str) for v in message.device_data.values()
        ):
            bodies.append(_body(message))  # firebase-admin's encoder says what is wrong
            continue
        key = (id(message.push), message.token_kind, tuple(message.device_data))
        if key not in templates:
            templates[key] = _Template.of(message)
        template = templates[key]
        bodies.append(_body(message) if template is None else template.render(message))
    return bodies


class _Template:
    """One encoded message as JSON text with a hole for each value that differs by device: the
    token and the device's own data values. ``json.dumps`` writes a string the same wherever it
    stands, so a body is the text with each hole filled with its value's ``json.dumps``."""

    def __init__(self, parts: list[str], keys: tuple[str, ...], slots: tuple[int, ...]) -> None:
        self._parts = parts  # the text around the holes
        self._keys = keys  # the device data keys, in the message's order
        self._slots = slots  # per hole in text order: 0 the token, k the (k-1)th key's value

    @classmethod
    def of(cls, message: PushMessage) -> _Template | None:
        """The template of messages like this one; None if the text did not split as planned."""
        import uuid

        marker = f"push365-{uuid.uuid4().hex}-"
        encoded = dict(_encoded(message))
        encoded[token_field(message)] = f"{marker}0"
        keys = tuple(message.device_data)
        if "data" in encoded:  # (no data at all: the encoder leaves the field out)
            data = {**message.push.data, **message.device_data}
            for slot, key in enumerate(keys, start=1):
                data[key] = f"{marker}{slot}"
            encoded["data"] = data
        first, *rest = _dumps(encoded).decode("ascii").split(f'"{marker}')
        parts, slots = [first], []
        for piece in rest:  # each starts with its slot's number, then the closing quote
            number, _, after = piece.partition('"')
            if not number.isdigit():
                return None
            slots.append(int(number))
            parts.append(after)
        expected = range(len(keys) + 1) if "data" in encoded else range(1)
        if sorted(slots) != list(expected):
            return None  # the marker stood in the content too: encode each message whole
        return cls(parts, keys, tuple(slots))

    def render(self, message: PushMessage) -> bytes:
        values = [message.token, *(message.device_data[key] for key in self._keys)]
        parts = self._parts
        out = [parts[0]]
        for slot, part in zip(self._slots, parts[1:], strict=True):
            out.append(json.dumps(values[slot]))
            out.append(part)
        return "".join(out).encode("ascii")


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
    if status < 400:  # a 3xx (not followed: a redirect would re-send) has no message name
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
