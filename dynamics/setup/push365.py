"""Push365's own API, as the setup uses it: register the organization, read its rules, load users.

Errors carry the status and Push365's fixed error code, never the key or a body.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dynamics.setup.plan import RuleEvent, rule_event
from dynamics.setup.transport import HttpRequest, Transport, send_with_retries

SIGNUP_CODE_HEADER = "X-Push365-Signup-Code"
KEY_HEADER = "X-Push365-Key"
MAX_USERS_PER_REQUEST = 500


class Push365Error(Exception):
    def __init__(
        self, method: str, route: str, status: int, code: str, details: Sequence[str] = ()
    ) -> None:
        self.status = status
        self.code = code
        self.details = list(details)
        """``field: problem`` lines of a validation answer (no values)."""
        super().__init__(f"Push365 answered {status} ({code or 'no code'}) to {method} {route}")


class Push365:
    def __init__(
        self,
        transport: Transport,
        base_url: str,
        function_prefix: str,
        sleep: Callable[[float], None] = time.sleep,
        signup_code: str = "",
    ) -> None:
        self.transport = transport
        self.signup_code = signup_code
        self.sleep = sleep
        self.base_url = base_url.rstrip("/")
        self.function_prefix = function_prefix

    def url(self, function: str, route: str = "") -> str:
        """``<base>/<prefix><function><route>``: Cloud Functions' layout."""
        return f"{self.base_url}/{self.function_prefix}{function}{route}"

    def _call(
        self,
        method: str,
        function: str,
        route: str,
        key: str | None,
        body: object = None,
        accept: Sequence[int] = (200,),
        extra: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json", **(extra or {})}
        if key:
            headers[KEY_HEADER] = key
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode("utf-8")
        response = send_with_retries(
            self.transport,
            HttpRequest(method, self.url(function, route), headers, data),
            self.sleep,
        )
        if response.status not in accept:
            raise Push365Error(
                method,
                f"/{function}{route}",
                response.status,
                response.error_code(),
                response.error_details(),
            )
        return response.status, response.json()

    def register(self, registration: Mapping[str, object], key: str | None) -> str | None:
        """Create the organization (answers its new key) or, with its key, update it (``None``)."""
        code = {SIGNUP_CODE_HEADER: self.signup_code} if self.signup_code and not key else None
        status, answer = self._call(
            "POST", "register", "", key, registration, accept=(200, 201), extra=code
        )
        return str(answer["api_key"]) if status == 201 else None

    def rule_events(self, key: str) -> list[RuleEvent]:
        """Every stored rule's table, message, stage and the columns it references: only what
        its step and the step's images need (never a template's text)."""
        _, answer = self._call("GET", "register", "/rules", key)
        return [rule_event(rule) for rule in answer.get("rules", [])]

    def rules(self, key: str) -> list[dict[str, Any]]:
        """``GET /register/rules``: the organization's rules, every field."""
        _, answer = self._call("GET", "register", "/rules", key)
        return [dict(rule) for rule in answer.get("rules", [])]

    def set_rules(self, key: str, rules: Sequence[object]) -> tuple[int, list[str]]:
        """``POST /register/rules``: replace the organization's rules; how many it holds now and
        Push365's warnings."""
        _, answer = self._call("POST", "register", "/rules", key, {"rules": list(rules)})
        return int(answer.get("rules", 0)), [str(w) for w in answer.get("warnings", [])]

    def upsert_users(self, key: str, users: Sequence[Mapping[str, object]]) -> int:
        _, answer = self._call("POST", "register", "/users", key, {"users": list(users)})
        return int(answer.get("upserted", 0))
