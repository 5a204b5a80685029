"""The setup command's HTTP boundary: one request in, one response out.

Everything the setup says to Dataverse and to Push365 goes through a ``Transport``; the tests
give it a fake that answers in the shapes Microsoft documents
(``tests/data/dataverse_webapi.json``).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit


class NetworkError(Exception):
    """A host could not be reached or stopped answering: no HTTP answer at all. Its message is
    one line, ``cannot reach <host>: <reason>``, the reason a fixed class of failure (never the
    URL's path or query, a header or a body)."""

    def __init__(self, host: str, reason: str) -> None:
        self.host = host
        self.reason = reason
        super().__init__(f"cannot reach {host}: {reason}")


_TIMEOUT_NAMES = frozenset(
    {"ConnectTimeout", "ReadTimeout", "Timeout", "ReadTimeoutError", "ConnectTimeoutError"}
)
"""requests' and urllib3's timeouts by name (urllib3's NewConnectionError, a refused connection,
is a subclass of its ConnectTimeoutError, so a subclass test would misname it)."""


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and everything it wraps: ``__cause__``, ``__context__``, urllib's and
    urllib3's ``reason``, and exceptions among its ``args`` (each once)."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        wrapped.extend(current.args)
        pending.extend(item for item in wrapped if isinstance(item, BaseException))


def unreachable_reason(error: BaseException) -> str:
    """What kind of network failure ``error`` is, in a few fixed words: the name could not be
    resolved, the connection was refused or reset, the TLS handshake failed, or it timed out."""
    chain = list(_causes(error))
    checks: tuple[tuple[str, Callable[[BaseException], bool]], ...] = (
        (
            "name not resolved (DNS)",
            lambda e: isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError",
        ),
        ("connection refused", lambda e: isinstance(e, ConnectionRefusedError)),
        (
            "TLS handshake failed",
            lambda e: isinstance(e, ssl.SSLError) or type(e).__name__ == "SSLError",
        ),
        (
            "timed out",
            lambda e: isinstance(e, TimeoutError) or type(e).__name__ in _TIMEOUT_NAMES,
        ),
        (
            "connection closed",
            lambda e: isinstance(e, ConnectionError | http.client.HTTPException),
        ),
    )
    for reason, matches in checks:
        if any(matches(cause) for cause in chain):
            return reason
    return f"network error ({type(error).__name__})"


def host_of(url: str) -> str:
    """``host[:port]`` of a URL: what an error may name of it."""
    return urlsplit(url).netloc.rpartition("@")[2] or url


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    """Header names in lower case."""
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def error_details(self) -> list[str]:
        """``field: problem`` of each ``error.details`` entry (Push365's validation answers:
        field names and fixed problems, never a value)."""
        try:
            answer = self.json()
        except ValueError:
            return []
        error = answer.get("error") if isinstance(answer, dict) else None
        details = error.get("details") if isinstance(error, dict) else None
        if not isinstance(details, list):
            return []
        return [
            f"{detail.get('field', '?')}: {detail.get('problem', '?')}"
            for detail in details
            if isinstance(detail, dict)
        ]

    def error_code(self) -> str:
        """The ``error.code`` of a JSON error body (Dataverse's and Push365's shape), else ``""``:
        only the code, never the message, which may repeat what was sent."""
        try:
            answer = self.json()
        except ValueError:
            return ""
        error = answer.get("error") if isinstance(answer, dict) else None
        return str(error.get("code", "")) if isinstance(error, dict) else ""


class Transport(Protocol):
    def send(self, request: HttpRequest) -> HttpResponse: ...


class UrllibTransport:
    """The real transport: the standard library's urllib, a timeout on every request."""

    def __init__(self, timeout_seconds: float = 60.0) -> None:
        self.timeout_seconds = timeout_seconds

    def send(self, request: HttpRequest) -> HttpResponse:
        outgoing = urllib.request.Request(
            request.url, data=request.body, headers=dict(request.headers), method=request.method
        )
        try:
            with urllib.request.urlopen(outgoing, timeout=self.timeout_seconds) as answer:
                return HttpResponse(
                    answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
                )
        except urllib.error.HTTPError as error:
            return HttpResponse(
                error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()
            )
        except (OSError, http.client.HTTPException) as error:  # URLError is an OSError
            raise NetworkError(host_of(request.url), unreachable_reason(error)) from None


RETRIED = frozenset({429, 502, 503, 504})
"""Throttled (Dataverse's service protection limits answer 429 with ``Retry-After``) or
unavailable: worth the same request again after a pause."""
ATTEMPTS = 4
LONGEST_PAUSE_SECONDS = 60.0


def send_with_retries(
    transport: Transport,
    request: HttpRequest,
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = ATTEMPTS,
) -> HttpResponse:
    """Send, and send again after ``Retry-After`` (else 1, 2, 4 s; at most a minute) while the
    answer is one of ``RETRIED``; the last answer otherwise."""
    for attempt in range(attempts):
        response = transport.send(request)
        if response.status not in RETRIED or attempt == attempts - 1:
            return response
        try:
            pause = float(response.headers.get("retry-after", ""))
        except ValueError:
            pause = float(2**attempt)
        sleep(min(max(pause, 0.0), LONGEST_PAUSE_SECONDS))
    raise AssertionError("unreachable")
