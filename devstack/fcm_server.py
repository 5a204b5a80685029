"""A loopback server that speaks the FCM HTTP v1 send API, for ``make dev``, tests and benches.

``POST /v1/projects/{project}/messages:send`` answers
``{"name": "projects/{project}/messages/{n}"}``.
``GET /_messages`` lists what it received as ``[{"token", "message", "response"}]`` (a message is
recorded when it arrives, before any delay: FCM may deliver a message whose answer comes late);
``DELETE /_messages`` clears the list; ``GET /_stats`` counts it (received, accepted, devices
reached, devices sent one notification twice).

Tokens with these prefixes get FCM's real error answers (``google.rpc.Status``, FcmError detail
where FCM sends one):

- ``unregistered-`` 404 UNREGISTERED; ``invalid-`` 400 INVALID_ARGUMENT "The registration token is
  not a valid FCM registration token"; ``badarg-`` 400 INVALID_ARGUMENT about something else;
- ``quota-`` 429 QUOTA_EXCEEDED with ``Retry-After``; ``unavailable-`` 503 with ``Retry-After``;
  ``internal-`` 500; ``flaky-`` 503 the first time, then 200;
- ``mismatch-`` 403 SENDER_ID_MISMATCH; ``thirdparty-`` 401 THIRD_PARTY_AUTH_ERROR;
- ``notfound-`` 404 NOT_FOUND without an FcmError detail; ``exhausted-`` 429 RESOURCE_EXHAUSTED
  without an FcmError detail; ``teapot-`` 418 with no status at all (an unknown 4xx);
- ``slow-`` answers after ``slow_seconds`` (see below; 0 until set).

Server-wide faults, until reset: ``PUT /_control`` with a JSON object of any of

- ``delay_seconds``: every send is answered this late (FCM slow; the client times out);
- ``delay_max_seconds``: with it (above ``delay_seconds``), each send's delay is drawn at random
  between the two (a fixed seed: the same run draws the same delays);
- ``unanswered_every``: every Nth send (counted from the control's setting) is recorded, then
  never answered (FCM took it, the answer is lost; 20 is 5%);
- ``slow_seconds``: the delay for ``slow-`` tokens only;
- ``status_override``: every send is answered with this HTTP status and FCM's error for it (400,
  401, 403, 404, 429, 500, 503; any other status gets a bare ``google.rpc.Status``);
- ``retry_after``: the ``Retry-After`` sent with 429 and 503 (default ``"1"``);
- ``refuse_seconds``: stop listening and drop open connections for this long (connection refused),
  then listen again on the same port;
- ``answer_coding``: how send answers are framed, as other HTTP/1.1 servers (FCM's front ends
  among them) may frame them: ``"gzip"`` or ``"deflate"`` (a ``Content-Encoding``), ``"chunked"``
  (``Transfer-Encoding``, no length), ``"close"`` (``Connection: close``, then the server closes),
  ``"continue"`` (an interim ``100 Continue`` before the answer).

``GET /_control`` shows the current settings, ``DELETE /_control`` resets them. In-process the same
is ``LocalFcmServer.control(...)`` and ``reset_control()``.

Each identifier must come in the field of its kind, as FCM requires: a registration token in
``token``, a Firebase installation id in ``fid``. Identifiers are registration tokens unless a
test registers one as an installation id (``register_kind``, or ``POST /_identifiers`` with
``{"identifier", "kind": "installation_id"}``); one in the wrong field gets FCM's 400
INVALID_ARGUMENT for an invalid registration token. Each record says which ``field`` carried it.

It is an asyncio server (one event loop in one thread): one write per answer and ``TCP_NODELAY``
(asyncio's default), so a keep-alive connection never waits for a delayed ACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import json
import random
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from dataclasses import asdict, dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

_SEND_PATH = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"

# prefix -> (HTTP status, google.rpc status or None, FcmError errorCode or None, message)
ERRORS: dict[str, tuple[int, str | None, str | None, str]] = {
    "unregistered-": (404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    "invalid-": (
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
    ),
    "badarg-": (
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "Request contains an invalid argument.",
    ),
    "quota-": (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded."),
    "unavailable-": (503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
    "internal-": (500, "INTERNAL", "INTERNAL", "Internal error encountered."),
    "mismatch-": (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
    "thirdparty-": (
        401,
        "UNAUTHENTICATED",
        "THIRD_PARTY_AUTH_ERROR",
        "Auth error from APNS or Web Push Service",
    ),
    "notfound-": (404, "NOT_FOUND", None, "Requested entity was not found."),
    "exhausted-": (429, "RESOURCE_EXHAUSTED", None, "Resource has been exhausted."),
    "teapot-": (418, None, None, "I'm a teapot."),
}
# The error a server-wide status_override answers with.
_OVERRIDES: dict[int, str] = {
    400: "badarg-",
    401: "thirdparty-",
    403: "mismatch-",
    404: "unregistered-",
    429: "quota-",
    500: "internal-",
    503: "unavailable-",
}
RETRY_AFTER_SECONDS = "1"
# How late an "unanswered" send is answered: past any client's timeout (FCM's own is 120 s).
UNANSWERED_SECONDS = 180.0
FIELD_OF_KIND = {"registration_token": "token", "installation_id": "fid"}
_MAX_HEAD = 64 * 1024
ANSWER_CODINGS = ("gzip", "deflate", "chunked", "close", "continue")


@dataclass
class Control:
    """Server-wide faults (``PUT /_control``)."""

    delay_seconds: float = 0.0
    delay_max_seconds: float = 0.0
    unanswered_every: int = 0
    slow_seconds: float = 0.0
    status_override: int | None = None
    retry_after: str = RETRY_AFTER_SECONDS
    refuse_seconds: float = 0.0
    answer_coding: str | None = None

    @classmethod
    def parse(cls, data: Any) -> Control:
        """Settings from a JSON object; unknown keys or wrong types raise ``ValueError``."""
        if not isinstance(data, dict) or set(data) - set(cls.__dataclass_fields__):
            raise ValueError("unknown control")
        control = cls()
        for key in ("delay_seconds", "delay_max_seconds", "slow_seconds", "refuse_seconds"):
            if key in data:
                setattr(control, key, max(0.0, float(data[key])))
        if data.get("unanswered_every") is not None:
            control.unanswered_every = max(0, int(data["unanswered_every"]))
        if data.get("status_override") is not None:
            control.status_override = int(data["status_override"])
        if data.get("retry_after") is not None:
            control.retry_after = str(data["retry_after"])
        if data.get("answer_coding") is not None:
            if data["answer_coding"] not in ANSWER_CODINGS:
                raise ValueError("unknown answer coding")
            control.answer_coding = data["answer_coding"]
        return control


def _status(code: int, status: str | None, message: str) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if status is not None:
        error["status"] = status
    return {"error": error}


def _error_body(error: tuple[int, str | None, str | None, str]) -> dict[str, Any]:
    status, rpc_status, error_code, text = error
    body = _status(status, rpc_status, text)
    if error_code:
        body["error"]["details"] = [{"@type": _FCM_ERROR, "errorCode": error_code}]
    return body


def _response(
    status: int,
    body: Any,
    headers: dict[str, str] | None = None,
    close: bool = False,
    coding: str | None = None,
) -> bytes:
    """A whole HTTP/1.1 answer as one buffer: status line, headers and body in a single write
    (``coding``: see ``answer_coding``)."""
    payload = json.dumps(body).encode()
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}", "Content-Type: application/json; charset=UTF-8"]
    if coding == "gzip":
        payload = gzip.compress(payload)
        lines.append("Content-Encoding: gzip")
    elif coding == "deflate":
        payload = zlib.compress(payload)
        lines.append("Content-Encoding: deflate")
    if coding == "chunked":
        half = len(payload) // 2
        lines.append("Transfer-Encoding: chunked")
        payload = b"".join(
            b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in (payload[:half], payload[half:])
        )
        payload += b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(payload)}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if close or coding == "close":
        lines.append("Connection: close")
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" if coding == "continue" else b""
    return interim + ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


class LocalFcmServer:
    """The server; ``start()`` serves it from a daemon thread, ``stop()`` ends it.

    Args:
        port: where it listens (bound at once, so a taken port fails here).
        host: the address it listens on.
        record_wire: also record each send's request headers (``[[name, value], ...]``, as
            received) and raw body (text) under ``"headers"`` and ``"body"``, the number of
            the connection it came on (``"connection"``) and the message name it was answered
            with (``"name"``), for wire tests.
        tls: serve HTTPS with this context (the TLS test) instead of plain HTTP.
    """

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        *,
        record_wire: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.ids = itertools.count(1)
        self._connections = itertools.count(1)
        self.record_wire = record_wire
        self._tls = tls
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self._flaky_seen: set[str] = set()
        self._kinds: dict[str, str] = {}
        self._control = Control()
        self._random = random.Random(365)
        self._sends_since_control = 0
        self._socket = self._listen()
        self._port = self._socket.getsockname()[1]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._resume: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def server_address(self) -> tuple[str, int]:
        """(host, port) it listens on."""
        return self._host, self._port

    @property
    def url(self) -> str:
        """The base URL, what ``PUSH365_FCM_ENDPOINT`` is set to."""
        return f"http://{self._host}:{self._port}"

    # State shared with the tests (thread-safe).

    def error_for(self, token: str) -> tuple[int, str | None, str | None, str] | None:
        """The error this token is answered with, if any (``flaky-``: only the first time)."""
        override = self._control.status_override
        if override is not None:
            prefix = _OVERRIDES.get(override)
            if prefix is not None:
                return ERRORS[prefix]
            return (override, None, None, "Overridden.")
        if token.startswith("flaky-"):
            with self._lock:
                if token in self._flaky_seen:
                    return None
                self._flaky_seen.add(token)
            return ERRORS["unavailable-"]
        return next((e for prefix, e in ERRORS.items() if token.startswith(prefix)), None)

    def register_kind(self, identifier: str, kind: str) -> None:
        """What ``identifier`` is: ``registration_token`` (the default) or ``installation_id``.

        Raises:
            ValueError: an unknown kind.
        """
        if kind not in FIELD_OF_KIND:
            raise ValueError("kind is registration_token or installation_id")
        with self._lock:
            self._kinds[identifier] = kind

    def field_error(
        self, identifier: str, field: str
    ) -> tuple[int, str | None, str | None, str] | None:
        """FCM's answer when the identifier is not in its kind's field (else None)."""
        with self._lock:
            kind = self._kinds.get(identifier, "registration_token")
        return None if FIELD_OF_KIND[kind] == field else ERRORS["invalid-"]

    def record(self, entry: dict[str, Any]) -> None:
        """Remember one received request."""
        with self._lock:
            self._messages.append(entry)

    def stats(self) -> dict[str, int]:
        """Counts for benchmarks: messages received, accepted, devices reached, and devices
        that were sent the same notification more than once."""
        counts: dict[tuple[str, str], int] = {}
        accepted = 0
        for entry in self.messages():
            if entry["response"] != 200:
                continue
            accepted += 1
            nid = str(entry["message"].get("data", {}).get("notification_id", ""))
            counts[(entry["token"], nid)] = counts.get((entry["token"], nid), 0) + 1
        return {
            "received": len(self._messages),
            "accepted": accepted,
            "reached": len(counts),
            "sent_twice": sum(1 for n in counts.values() if n > 1),
        }

    def messages(self) -> list[dict[str, Any]]:
        """Every received request, oldest first."""
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        """Forget every received request (the server-wide faults stay: see ``reset_control``)."""
        with self._lock:
            self._messages.clear()
            self._flaky_seen.clear()
            self._kinds.clear()

    def control(self, **settings: Any) -> None:
        """Set server-wide faults (the fields of ``Control``); unset ones return to defaults."""
        self._apply_control(Control.parse(settings))

    def reset_control(self) -> None:
        """No server-wide fault any more."""
        self._apply_control(Control())

    def _apply_control(self, control: Control) -> None:
        self._control = control
        self._random = random.Random(365)
        self._sends_since_control = 0
        if control.refuse_seconds > 0:
            loop = self._loop
            if loop is None:
                raise RuntimeError("refuse_seconds needs a running server")
            loop.call_soon_threadsafe(self._refuse, control.refuse_seconds)

    # Serving.

    def start(self) -> None:
        """Serve in the background."""
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self.serve_forever, args=(ready,), name="local-fcm", daemon=True
        )
        self._thread.start()
        ready.wait(10)

    def serve_forever(self, ready: threading.Event | None = None) -> None:
        """Serve in this thread until ``shutdown()``."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._stopped.clear()
        try:
            loop.run_until_complete(self._open())
            if ready is not None:
                ready.set()
            loop.run_forever()
        finally:
            loop.run_until_complete(self._close())
            loop.close()
            self._loop = None
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop ``serve_forever`` (from any thread) and wait for it."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            self._stopped.wait(10)

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def server_close(self) -> None:
        """Release the port."""
        if self._socket is not None:
            self._socket.close()

    def _listen(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
            sock.listen(1024)  # firebase-admin opens up to 100 connections at once
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    async def _open(self) -> None:
        if self._socket.fileno() < 0:
            self._socket = self._listen()
        self._server = await asyncio.start_server(
            self._serve, sock=self._socket, limit=_MAX_HEAD, ssl=self._tls
        )

    async def _close(self) -> None:
        if self._resume is not None:
            self._resume.cancel()
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _refuse(self, seconds: float) -> None:
        """Connection refused for ``seconds``: stop listening, drop open connections."""
        assert self._loop is not None
        if self._server is not None:
            self._server.close()  # closes the listening socket too
            self._server = None
        for writer in list(self._writers):
            transport = writer.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()
        if self._resume is not None:
            self._resume.cancel()
        self._resume = self._loop.call_later(seconds, self._relisten)

    def _relisten(self) -> None:
        self._resume = None
        self._control.refuse_seconds = 0.0
        assert self._loop is not None
        self._loop.create_task(self._reopen())

    async def _reopen(self) -> None:
        # The port may be held for a moment: a client that kept dialling a port nobody listened
        # on can end up connected to itself (TCP self-connect). Try until it is free again.
        while True:
            try:
                await self._open()
                return
            except OSError:
                await asyncio.sleep(0.2)

    # HTTP.

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = next(self._connections)
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
                    return
                lines = head[:-4].decode("latin-1").split("\r\n")
                method, path, version = [*lines[0].split(" ", 2), "", ""][:3]
                headers = [line.split(":", 1) for line in lines[1:] if ":" in line]
                fields = {name.strip().lower(): value.strip() for name, value in headers}
                if "chunked" in fields.get("transfer-encoding", "").lower():
                    writer.write(
                        _response(501, _status(501, None, "No chunked bodies."), None, True)
                    )
                    return
                try:
                    body = await reader.readexactly(int(fields.get("content-length") or 0))
                except (asyncio.IncompleteReadError, ValueError, OSError):
                    return
                wire = [[name.strip(), value.strip()] for name, value in headers]
                status, answer, extra = await self._handle(method, path, wire, body, connection)
                close = fields.get("connection", "").lower() == "close" or version == "HTTP/1.0"
                coding = self._control.answer_coding if _SEND_PATH.match(path) else None
                close = close or coding == "close"
                writer.write(_response(status, answer, extra, close, coding))
                if close:
                    await writer.drain()
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _handle(
        self, method: str, path: str, headers: list[list[str]], raw: bytes, connection: int
    ) -> tuple[int, Any, dict[str, str] | None]:
        if path == "/_stats" and method == "GET":
            return 200, self.stats(), None
        if path == "/_messages":
            if method == "GET":
                return 200, self.messages(), None
            if method == "DELETE":
                self.clear()
                return 200, {"cleared": True}, None
        elif path == "/_control":
            if method == "GET":
                return 200, asdict(self._control), None
            if method == "DELETE":
                self.reset_control()
                return 200, asdict(self._control), None
            if method == "PUT":
                try:
                    control = Control.parse(json.loads(raw or b"{}"))
                except (ValueError, TypeError):
                    return 400, _status(400, "INVALID_ARGUMENT", "Invalid control."), None
                # Answer first: refusing drops this connection too.
                assert self._loop is not None
                self._loop.call_soon(self._apply_control, control)
                return 200, asdict(control), None
        elif path == "/_identifiers" and method == "POST":
            try:
                body = json.loads(raw or b"{}")
                self.register_kind(str(body["identifier"]), str(body["kind"]))
            except (ValueError, KeyError, TypeError):
                return 400, _status(400, "INVALID_ARGUMENT", "Give identifier and kind."), None
            return 200, {"registered": True}, None
        elif method == "POST":
            return await self._send(path, headers, raw, connection)
        return 404, _status(404, "NOT_FOUND", "Unknown path."), None

    async def _send(
        self, path: str, headers: list[list[str]], raw: bytes, connection: int
    ) -> tuple[int, Any, dict[str, str] | None]:
        match = _SEND_PATH.match(path)
        try:
            message = json.loads(raw or b"{}")["message"]
            # A registration token comes in "token", an installation id in "fid".
            token = str(message.get("token") or message.get("fid") or "")
            field = "fid" if message.get("fid") else "token"
        except (ValueError, KeyError, TypeError, AttributeError):
            return 400, _status(400, "INVALID_ARGUMENT", "Invalid JSON payload received."), None
        if match is None:
            return 404, _status(404, "NOT_FOUND", "Unknown path."), None
        control = self._control
        error = self.field_error(token, field) or self.error_for(token)
        status = error[0] if error is not None else 200
        entry: dict[str, Any] = {
            "token": token,
            "field": field,
            "message": message,
            "response": status,
        }
        if self.record_wire:
            entry["headers"] = headers
            entry["body"] = raw.decode()
            entry["connection"] = connection
        self.record(entry)
        delay = control.delay_seconds + (control.slow_seconds if token.startswith("slow-") else 0)
        if control.delay_max_seconds > control.delay_seconds:
            delay += self._random.uniform(0, control.delay_max_seconds - control.delay_seconds)
        self._sends_since_control += 1
        if control.unanswered_every and self._sends_since_control % control.unanswered_every == 0:
            delay = max(delay, UNANSWERED_SECONDS)  # taken, its answer never comes in time
        if delay > 0:
            await asyncio.sleep(delay)
        if error is not None:
            extra = {"Retry-After": control.retry_after} if status in (429, 503) else None
            return status, _error_body(error), extra
        name = f"projects/{match.group(1)}/messages/{next(self.ids)}"
        if self.record_wire:
            entry["name"] = name
        return 200, {"name": name}, None


class FcmServerProcess:
    """The server in a process of its own (``make dev``, the benchmark)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.url = f"http://{host}:{port}"
        self._command = [
            sys.executable,
            "-m",
            "devstack.fcm_server",
            "--host",
            host,
            "--port",
            str(port),
        ]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs (for CPU accounting)."""
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float = 15.0) -> None:
        """Start it and wait until it answers.

        Raises:
            RuntimeError: the port is taken or it did not come up.
        """
        if _answers(self.url):
            raise RuntimeError(f"Something already answers on {self.url}; choose another port.")
        root = Path(__file__).resolve().parent.parent
        self._process = subprocess.Popen(self._command, cwd=root, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not _answers(self.url):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"The local FCM server did not start on {self.url}.")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop it; idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_messages", timeout=0.5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def main() -> None:
    """``python -m devstack.fcm_server --port 8090``: serve until SIGINT or SIGTERM."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    arguments = parser.parse_args()
    server = LocalFcmServer(arguments.port, arguments.host)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"local FCM v1 server on {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
