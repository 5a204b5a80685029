"""A loopback server that speaks the FCM HTTP v1 send API, for ``make dev`` and the tests.

``POST /v1/projects/{project}/messages:send`` answers
``{"name": "projects/{project}/messages/{n}"}``.
``GET /_messages`` lists what it answered as ``[{"token", "message", "response"}]``;
``DELETE /_messages`` clears the list. (The send issue adds error answers by token prefix.)
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_SEND_PATH = re.compile(r"^/v1/projects/([^/]+)/messages:send$")


class _Handler(BaseHTTPRequestHandler):
    server: LocalFcmServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the real endpoint

    def do_POST(self) -> None:
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
        # firebase-admin 7 sends "token"; newer SDKs may send "fid".
        token = message.get("token") or message.get("fid")
        name = f"projects/{match.group(1)}/messages/{next(self.server.ids)}"
        self.server.record({"token": token, "message": message, "response": 200})
        self._answer(200, {"name": name})

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

    def _answer(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # messages carry notification content: never logged


def _status(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


class LocalFcmServer(ThreadingHTTPServer):
    """The server; ``start()`` serves it from a daemon thread, ``stop()`` ends it."""

    daemon_threads = True

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        super().__init__((host, port), _Handler)
        self.ids = itertools.count(1)
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, what ``PUSH365_FCM_ENDPOINT`` is set to."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

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
