"""Every function in ``functions/`` behind one base URL, as Cloud Functions lays them out.

``/register/users`` reaches function ``register`` with path ``/users``, as in production, and
each function is loaded exactly as the platform loads it: ``functions_framework.create_app``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import functions_framework
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from push365.errors import for_status

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"

_log = logging.getLogger("devstack")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def function_names(functions_dir: Path = FUNCTIONS_DIR) -> list[str]:
    """The deployable functions: one module each, the entry point named as the module."""
    return sorted(p.stem for p in functions_dir.glob("*.py") if not p.stem.startswith("_"))


def build_gateway(functions_dir: Path = FUNCTIONS_DIR) -> WSGIApplication:
    """One WSGI app that mounts each function's app at ``/<name>``."""
    names = function_names(functions_dir)
    apps: dict[str, WSGIApplication] = {
        name: functions_framework.create_app(target=name, source=str(functions_dir / f"{name}.py"))
        for name in names
    }
    not_found = _not_found(names)

    def gateway(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        name, _, rest = environ.get("PATH_INFO", "").lstrip("/").partition("/")
        app = apps.get(name)
        if app is None:
            return not_found(environ, start_response)
        # As on Cloud Functions: the function's own URL is its root, "/register" arrives as "/",
        # and the front end appends the peer's address to X-Forwarded-For (what throttles key by).
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + f"/{name}"
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        peer = environ.get("REMOTE_ADDR", "")
        environ["HTTP_X_FORWARDED_FOR"] = f"{forwarded}, {peer}" if forwarded else peer
        environ["PATH_INFO"] = f"/{rest}"
        return app(environ, start_response)

    return _crash_in_json(gateway)


def _not_found(names: list[str]) -> WSGIApplication:
    body = json.dumps(
        {"error": {"code": "not_found", "message": "No such function.", "functions": names}}
    ).encode()

    def app(_environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [body]

    return app


MAX_BODY_BYTES = 1 << 20
"""The largest ``Content-Length`` the gateway passes on (every function refuses more than
``PUSH365_MAX_BODY_BYTES``, 256 KB, itself): a larger one is answered 413 at once, its body
never read."""


def framing_problem(lengths: list[str], encodings: list[str], limit: int = MAX_BODY_BYTES) -> int:
    """The status a request's framing headers earn before anything is read (0: none).

    400 for framing no server can read one way only: a ``Content-Length`` that is not a number,
    two that differ, both ``Content-Length`` and ``Transfer-Encoding``, or a transfer coding
    other than ``chunked``; 413 for a length over ``limit``. No framing at all is a request
    without a body (RFC 9112 6.3), as ``curl -X POST`` sends one."""
    values = {value.strip() for header in lengths for value in header.split(",")}
    if encodings:
        codings = [c.strip().lower() for header in encodings for c in header.split(",")]
        return 400 if lengths or codings != ["chunked"] else 0
    if not values:
        return 0
    if len(values) != 1 or not all(v.isascii() and v.isdigit() for v in values):
        return 400
    (value,) = values
    # (compared as text first: a length of any number of digits is never turned into an int)
    if len(value.lstrip("0")) > len(str(limit)) or int(value) > limit:
        return 413
    return 0


class _QuietRequestHandler(WSGIRequestHandler):
    """Logs method, function and status only: the query string can carry an API key (``?code=``)
    and the rest of a path is the caller's text. The function's audit record says the rest.

    What the server refuses by itself (a request line or headers too long, a malformed request,
    framing it cannot read or a body over ``MAX_BODY_BYTES``) is answered in JSON from the error
    table, as the functions answer, at once and without reading the body, and logged without the
    request's text."""

    server: BaseWSGIServer

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        problem = framing_problem(
            self.headers.get_all("Content-Length") or [],
            self.headers.get_all("Transfer-Encoding") or [],
        )
        if problem:
            self.send_error(problem)
            return False
        return True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        function = getattr(self, "path", "").split("?", 1)[0].lstrip("/").split("/", 1)[0]
        known = getattr(self.server, "function_names", None)
        if not _NAME.fullmatch(function) or (known is not None and function not in known):
            function = "(other)"  # an unknown name is the caller's text, of any length
        _log.info("%s /%s %s", _method(getattr(self, "command", None)), function, code)

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        _log.warning("a request was refused before reaching a function")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        error = for_status(code)
        body = json.dumps({"error": {"code": error.code, "message": error.message}}).encode()
        self.log_error("")
        self.request_version = self.protocol_version  # a status line even for garbage
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if getattr(self, "command", None) != "HEAD":
            self.wfile.write(body)


def _method(method: str | None) -> str:
    return method if method and method.isalpha() and len(method) <= 10 else "(other)"


def _crash_in_json(app: WSGIApplication) -> WSGIApplication:
    """A function's app that raised (it should not: each answers every error itself) still
    answers JSON, and nothing of the request is logged."""

    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            return app(environ, start_response)
        except Exception:  # noqa: BLE001 - the gateway's last line of defence
            _log.error("a function raised; answered 500")
            body = json.dumps({"error": {"code": "internal", "message": "Internal error."}})
            start_response(
                "500 Internal Server Error",
                [("Content-Type", "application/json")],
                sys.exc_info(),
            )
            return [body.encode()]

    return guarded


def serve(app: WSGIApplication, host: str, port: int) -> BaseWSGIServer:
    """A threaded server for the gateway (call ``serve_forever`` / ``shutdown`` on it)."""
    server = make_server(host, port, app, threaded=True, request_handler=_QuietRequestHandler)
    server.function_names = frozenset(function_names())  # type: ignore[attr-defined]
    return server


def main() -> None:
    """Every function behind one port (``python -m devstack.gateway PORT``), over whatever
    store and queue the environment names: what a test runs against a store it can cut off."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = serve(build_gateway(), "127.0.0.1", int(sys.argv[1]))
    print("gateway ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
