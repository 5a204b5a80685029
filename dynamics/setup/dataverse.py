"""The few Dataverse Web API (v9.2) calls the setup makes, over a ``Transport``.

Shapes as Microsoft documents them: OData query options on collections, ``value`` arrays,
``@odata.nextLink`` paging asked for with ``Prefer: odata.maxpagesize``, a Create answered
``204`` with the new row's URL in ``OData-EntityId``, an Update as ``PATCH`` with
``If-Match: *`` (so it never creates), a Delete as ``DELETE`` answered ``204``. Errors carry
the status and Dataverse's error code, never a body, a header value or a token.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from dynamics.setup.transport import HttpRequest, Transport, send_with_retries

API_PATH = "/api/data/v9.2/"
_ENTITY_ID = re.compile(r"\(([0-9a-fA-F-]{36})\)\s*$")


class DataverseError(Exception):
    """Dataverse refused or failed a request: what was asked, the status and its error code."""

    def __init__(self, method: str, url: str, status: int, code: str) -> None:
        self.status = status
        self.code = code
        path = urlsplit(url).path
        super().__init__(f"Dataverse answered {status} ({code or 'no code'}) to {method} {path}")


def odata_string(value: str) -> str:
    """A string literal in an OData ``$filter``."""
    return "'" + value.replace("'", "''") + "'"


class WebApi:
    def __init__(
        self,
        transport: Transport,
        environment_url: str,
        token: Callable[[], str],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.transport = transport
        self.sleep = sleep
        self.environment_url = environment_url.rstrip("/")
        self.base = self.environment_url + API_PATH
        self._token = token

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._token()}",
            "Accept": "application/json",
            "OData-MaxVersion": "4.0",
            "OData-Version": "4.0",
        }
        headers.update(extra or {})
        return headers

    def url(self, path: str, params: Mapping[str, str] | None = None) -> str:
        query = urlencode(params, quote_via=quote, safe="$,'()=@:") if params else ""
        return self.base + path + (f"?{query}" if query else "")

    def _send(
        self, method: str, url: str, body: object = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Mapping[str, str], Any]:
        extra = dict(headers or {})
        data = None
        if body is not None:
            extra["Content-Type"] = "application/json; charset=utf-8"
            data = json.dumps(body).encode("utf-8")
        response = send_with_retries(
            self.transport, HttpRequest(method, url, self._headers(extra), data), self.sleep
        )
        if not 200 <= response.status < 300:
            raise DataverseError(method, url, response.status, response.error_code())
        return response.status, response.headers, response.json()

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return self._send("GET", self.url(path, params))[2]

    def rows(self, entity_set: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        answer = self.get(entity_set, params)
        return list(answer.get("value", []))

    def pages(
        self, entity_set: str, params: Mapping[str, str], page_size: int
    ) -> Iterator[list[dict[str, Any]]]:
        url: str | None = self.url(entity_set, params)
        prefer = {"Prefer": f"odata.maxpagesize={page_size}"}
        while url:
            answer = self._send("GET", url, headers=prefer)[2]
            yield list(answer.get("value", []))
            url = answer.get("@odata.nextLink")

    def create(self, entity_set: str, body: Mapping[str, object]) -> str:
        """The new row's id, from ``OData-EntityId``."""
        url = self.url(entity_set)
        _, headers, _ = self._send("POST", url, dict(body))
        match = _ENTITY_ID.search(headers.get("odata-entityid", ""))
        if not match:
            raise DataverseError("POST", url, 204, "no OData-EntityId")
        return match.group(1).lower()

    def update(self, entity_set: str, row_id: str, body: Mapping[str, object]) -> None:
        self._send("PATCH", self.url(f"{entity_set}({row_id})"), dict(body), {"If-Match": "*"})

    def delete(self, entity_set: str, row_id: str) -> None:
        """``DELETE <set>(<id>)``, answered ``204``."""
        self._send("DELETE", self.url(f"{entity_set}({row_id})"))
