"""A loopback server that speaks the FCM HTTP v1 send API, for ``make dev`` and the tests.

``POST /v1/projects/{project}/messages:send`` answers
``{"name": "projects/{project}/messages/{n}"}``.
``GET /_messages`` lists what it answered as ``[{"token", "message", "response"}]``;
``DELETE /_messages`` clears the list.

Tokens with these prefixes get FCM's real error answers (``google.rpc.Status``, FcmError detail):
``unregistered-`` 404 UNREGISTERED, ``invalid-`` 400 INVALID_ARGUMENT, ``quota-`` 429
QUOTA_EXCEEDED with ``Retry-After``, ``unavailable-`` 503, ``internal-`` 500, ``flaky-`` 503 the
first time, then 200.

Each identifier must come in the field of its kind, as FCM requires: a registration token in
``token``, a Firebase installation id in ``fid``. Identifiers are registration tokens unless a
test registers one as an installation id (``register_kind``, or ``POST /_identifiers`` with
``{"identifier", "kind": "installation_id"}``); one in the wrong field gets FCM's 400
INVALID_ARGUMENT for an invalid registration token. Each record says which ``field`` carried it.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_SEND_PATH = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"

# prefix -> (HTTP status, google.rpc status, FcmError errorCode or None, message)
ERRORS: dict[str, tuple[int, str, str | None, str]] = {
    "unregistered-": (404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    "invalid-": (
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
    ),
    "quota-": (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded."),
    "unavailable-": (503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
    "internal-": (500, "INTERNAL", "INTERNAL", "Internal error encountered."),
}
RETRY_AFTER_SECONDS = "1"
FIELD_OF_KIND = {"registration_token": "token", "installation_id": "fid"}


class _Handler(BaseHTTPRequestHandler):
    server: LocalFcmServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the real endpoint

    def do_POST(self) -> None:
        if self.path == "/_identifiers":
            self._register_identifier()
            return
        match = _SEND_PATH.match(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            message = body["message"]
        except (ValueError, KeyError, TypeError):
            self._answer(400, _status(400, "INVALID_ARGUMENT", "Invalid JSON payload received."))
            return
        if match is None:
            self._answer(404, _status(404, "NOT_FOUND", "Unknown path."))
            return
        # A registration token comes in "token", an installation id in "fid" (field_error checks).
        token = str(message.get("token") or message.get("fid") or "")
        field = "fid" if message.get("fid") else "token"
        error = self.server.field_error(token, field) or self.server.error_for(token)
        if error is not None:
            status, rpc_status, error_code, text = error
            self.server.record(
                {"token": token, "field": field, "message": message, "response": status}
            )
            body = _status(status, rpc_status, text)
            if error_code:
                body["error"]["details"] = [{"@type": _FCM_ERROR, "errorCode": error_code}]
            headers = {"Retry-After": RETRY_AFTER_SECONDS} if status in (429, 503) else {}
            self._answer(status, body, headers)
            return
        name = f"projects/{match.group(1)}/messages/{next(self.server.ids)}"
        self.server.record({"token": token, "field": field, "message": message, "response": 200})
        self._answer(200, {"name": name})

    def _register_identifier(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            self.server.register_kind(str(body["identifier"]), str(body["kind"]))
        except (ValueError, KeyError, TypeError):
            self._answer(400, _status(400, "INVALID_ARGUMENT", "Give identifier and kind."))
            return
        self._answer(200, {"registered": True})

    def do_GET(self) -> None:
        if self.path != "/_messages":
            self._answer(404, _status(404, "NOT_FOUND", "Unknown path."))
            return
        self._answer(200, self.server.messages())

    def do_DELETE(self) -> None:
        if self.path != "/_messages":
            self._answer(404, _status(404, "NOT_FOUND", "Unknown path."))
            return
        self.server.clear()
        self._answer(200, {"cleared": True})

    def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # messages carry notification content: never logged


def _status(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


class LocalFcmServer(ThreadingHTTPServer):
    """The server; ``start()`` serves it from a daemon thread, ``stop()`` ends it."""

    daemon_threads = True
    request_queue_size = 1024  # firebase-admin opens up to 100 connections at once

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        super().__init__((host, port), _Handler)
        self.ids = itertools.count(1)
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self._flaky_seen: set[str] = set()
        self._kinds: dict[str, str] = {}
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, what ``PUSH365_FCM_ENDPOINT`` is set to."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def error_for(self, token: str) -> tuple[int, str, str | None, str] | None:
        """The error this token is answered with, if any (``flaky-``: only the first time)."""
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

    def field_error(self, identifier: str, field: str) -> tuple[int, str, str | None, str] | None:
        """FCM's answer when the identifier is not in its kind's field (else None)."""
        with self._lock:
            kind = self._kinds.get(identifier, "registration_token")
        return None if FIELD_OF_KIND[kind] == field else ERRORS["invalid-"]

    def record(self, entry: dict[str, Any]) -> None:
        """Remember one answered request."""
        with self._lock:
            self._messages.append(entry)

    def messages(self) -> list[dict[str, Any]]:
        """Every answered request, oldest first."""
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        """Forget every answered request."""
        with self._lock:
            self._messages.clear()
            self._flaky_seen.clear()
            self._kinds.clear()

    def start(self) -> None:
        """Serve in the background."""
        self._thread = threading.Thread(target=self.serve_forever, name="local-fcm", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()


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
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
