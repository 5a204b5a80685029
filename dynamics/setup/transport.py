"""The setup command's HTTP boundary: one request in, one response out.

Everything the setup says to Dataverse and to Push365 goes through a ``Transport``; the tests
give it a fake that answers in the shapes Microsoft documents
(``tests/data/dataverse_webapi.json``).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


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
