"""The OpenAPI descriptions are the contract: a property-based run against the local stack
(``python -m devstack``, what ``make dev`` runs), every function behind its gateway.

For every operation of every description the stack serves (``GET /<function>/openapi.json``),
requests are generated from the description alone (hypothesis-jsonschema; derandomized, so
every run sends the same requests):

* requests the description allows (its request body's schema, its query parameters' schemas)
  must not be refused as invalid (``validation_failed``, ``invalid_json``, ``bad_request``): a
  constraint a handler enforces and the schema does not state fails here;
* requests it does not allow (one property or parameter given a value its schema refuses, a
  required one left out, a required body left out) must be refused with a 4xx: a schema that
  states what a handler does not enforce fails here;
* every answer's status must be one the operation lists, and its body must match what the
  operation says for that status: an error's code must be one it lists for it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import jsonschema
import pytest
import requests
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from devstack.emulator import FirestoreEmulator
from tests.stack import RunningStack, call, running_stack, signup

FUNCTIONS = (
    "privacy",
    "purge",
    "receipt",
    "reconcile",
    "register",
    "send",
    "subscribe",
    "unsubscribe",
)
ALLOWED_EXAMPLES = 20
"""Requests the description allows, per operation."""
REFUSED_EXAMPLES = 12
"""Requests it does not allow, per operation with an input."""
MINIMUM_REQUESTS = 500
ORGANIZATION = "5a3c1f0e-7b2d-4c9e-8f1a-2b3c4d5e6f70"
NOT_VALID = {"validation_failed", "invalid_json", "bad_request"}
"""Codes that say a request itself is malformed."""
WRONG_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    10**12,
    1.5,
    "",
    " ",
    "x",
    "X" * 5000,
    [],
    ["x"],
    {},
    {"x": 1},
)
"""What a property or parameter is given when its schema must refuse it."""
WRONG_PARAMETERS = ("", " ", "x", "-1", "0", "1.5", "999999", "\u0663", "t" * 201)


@dataclass
class Operation:
    """One operation of one description, resolved (no ``$ref`` left)."""

    function: str
    path: str
    method: str
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.method.upper()} /{self.function}{self.path.rstrip('/')}"

    @property
    def body(self) -> dict[str, Any] | None:
        content = self.spec.get("requestBody", {}).get("content", {})
        schema: dict[str, Any] | None = content.get("application/json", {}).get("schema")
        return schema

    @property
    def body_required(self) -> bool:
        return bool(self.spec.get("requestBody", {}).get("required"))

    @property
    def parameters(self) -> list[dict[str, Any]]:
        return list(self.spec.get("parameters", []))

    @property
    def auth(self) -> set[str]:
        return {name for scheme in self.spec.get("security", []) for name in scheme}


@dataclass
class Run:
    """What the run sent, and what went wrong."""

    stack: RunningStack
    key: str = ""
    sent: int = 0
    per_operation: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def resolve(node: Any, document: dict[str, Any]) -> Any:
    """``node`` with every ``$ref`` replaced by what it points to in ``document``."""
    if isinstance(node, list):
        return [resolve(item, document) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        resolved = resolve(target, document)
        return {**resolved, **resolve(rest, document)} if rest else resolved
    return {key: resolve(value, document) for key, value in node.items()}


def operations(stack: RunningStack) -> list[Operation]:
    found = []
    for function in FUNCTIONS:
        status, document = call(f"{stack.base}/{function}/openapi.json")
        assert status == 200, document
        for path, methods in document["paths"].items():
            for method, spec in methods.items():
                found.append(Operation(function, path, method, resolve(spec, document)))
    return found


@pytest.fixture
def stack(emulator: FirestoreEmulator, tmp_path: Path) -> Iterator[RunningStack]:
    # Registration is re-run after an erasure of the organization: no throttle in the way.
    with running_stack(tmp_path, PUSH365_SIGNUP_ATTEMPTS="1000") as running:
        yield running


def register(run: Run) -> None:
    """(Re-)create the organization the run's keyed requests use."""
    status, answer = call(
        f"{run.stack.base}/register",
        {
            "organization": {
                "id": ORGANIZATION,
                "unique_name": "contract",
                "name": "Contract",
                "language_code": 1033,
            }
        },
        headers=signup(run.stack.base, ORGANIZATION, run.stack.admin_key),
    )
    assert status == 201, answer
    run.key = answer["api_key"]


FOUND: tuple[tuple[str, str, Any, int], ...] = (
    # What an earlier schemathesis run (817 requests) found, each now stated and kept.
    # schema-valid requests refused: an organization id's GUID forms, a rule recipient's case
    # and blanks
    (
        "POST",
        "/register/signup-codes",
        {"organization_id": "{5A3C1F0E7B2D4C9E8F1A2B3C4D5E6F71}"},
        201,
    ),
    (
        "POST",
        "/register/rules",
        {
            "rules": [
                {"table": "task", "message": "Create", "title": "t", "recipients": [" OwnerId "]}
            ]
        },
        200,
    ),
    # schema-violating requests accepted: depth false as an integer, stats?days= empty
    (
        "POST",
        "/register/rules/preview",
        {"table": "task", "message": "Create", "depth": False},
        422,
    ),
    ("GET", "/send/stats?days=", None, 422),
    # rotate-key without a body: allowed, as its description now says
    ("POST", "/register/rotate-key", None, 200),
    # deliver's 405 names its method
    ("GET", "/deliver", None, 405),
)


def test_every_operation_answers_as_its_description_says(stack: RunningStack) -> None:
    run = Run(stack)
    register(run)
    for method, route, body, expected in FOUND:
        headers = {"X-Push365-Key": run.key, "X-Push365-Admin-Key": stack.admin_key}
        sent = requests.request(method, f"{stack.base}{route}", json=body, headers=headers)
        answer = sent.json()
        assert sent.status_code == expected, (method, route, answer)
        if route == "/register/rotate-key":
            run.key = answer["api_key"]
        if route == "/deliver":
            assert answer["error"]["message"] == "Allowed methods: POST."
    session = requests.Session()
    started = time.monotonic()

    for operation in operations(stack):
        before = run.sent
        for refused in (False, True):
            strategy = _refused(operation) if refused else _allowed(operation)
            if strategy is None:
                continue
            examples = REFUSED_EXAMPLES if refused else ALLOWED_EXAMPLES
            check = _exercise(run, session, operation, refused)
            try:
                _drive(strategy, check, examples)
            except Exception as error:  # noqa: BLE001 - reported with the operation's name
                run.failures.append(f"{operation.name}: {error}")
        run.per_operation[operation.name] = run.sent - before

    elapsed = time.monotonic() - started
    print(
        f"RESULT openapi_contract requests={run.sent} operations={len(run.per_operation)} "
        f"failures={len(run.failures)} seconds={elapsed:.1f}"
    )
    assert not run.failures, "\n".join(run.failures)
    assert run.sent >= MINIMUM_REQUESTS, run.per_operation
    assert all(run.per_operation.values()), run.per_operation


def _drive(strategy: Any, check: Callable[[Any], None], examples: int) -> None:
    @hypothesis.settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
        report_multiple_bugs=False,
    )
    @hypothesis.given(strategy)
    def drive(request: Any) -> None:
        check(request)

    drive()


@dataclass(frozen=True)
class Request:
    query: dict[str, str]
    body: Any = None
    has_body: bool = True
    why: str = ""


def _valid(schema: dict[str, Any]) -> Any:
    """Values ``schema`` allows, as a standard validator reads it (hypothesis-jsonschema can
    miss a pattern deep in a ``oneOf``)."""
    return from_schema(schema).filter(jsonschema.Draft202012Validator(schema).is_valid)


def _query(operation: Operation) -> Any:
    required = {
        p["name"]: _parameter(p["schema"]) for p in operation.parameters if p.get("required")
    }
    optional = {
        p["name"]: _parameter(p["schema"]) for p in operation.parameters if not p.get("required")
    }
    return st.fixed_dictionaries(required, optional=optional)


def _parameter(schema: dict[str, Any]) -> Any:
    """A query parameter's value as the URL carries it."""
    return _valid(schema).filter(lambda value: value is not None).map(_as_text)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _allowed(operation: Operation) -> Any:
    body = operation.body
    bodies = _valid(body) if body is not None else st.none()
    return st.builds(
        Request, query=_query(operation), body=bodies, has_body=st.just(body is not None)
    )


def _refused(operation: Operation) -> Any:
    """Requests with one thing the description does not allow, or None without any input."""
    body, parameters = operation.body, operation.parameters
    if body is None and not parameters:
        return None
    choices = []
    if body is not None:
        valid = _valid(body)
        choices.append(
            st.builds(
                _wrong_property,
                st.just(body),
                valid,
                st.sampled_from(sorted(_properties(body))) if _properties(body) else st.none(),
                st.sampled_from(WRONG_VALUES),
                _query(operation),
            )
        )
        if operation.body_required:
            choices.append(
                st.builds(Request, _query(operation), st.none(), st.just(False), st.just("no body"))
            )
    if parameters:
        choices.append(
            st.builds(
                _wrong_parameter,
                st.just(operation),
                _query(operation),
                st.sampled_from([p["name"] for p in parameters]),
                st.sampled_from((None, *WRONG_PARAMETERS)),
                _valid(body) if body is not None else st.none(),
            )
        )
    return st.one_of(choices).filter(lambda request: request is not None)


def _properties(schema: dict[str, Any]) -> set[str]:
    """The top-level property names a body's schema (or any branch of it) names."""
    names = set(schema.get("properties", {}))
    for branch in schema.get("oneOf", []) + schema.get("anyOf", []):
        names |= set(branch.get("properties", {}))
    return names


def _wrong_property(
    schema: dict[str, Any], body: Any, name: str | None, wrong: Any, query: dict[str, str]
) -> Request | None:
    if not isinstance(body, dict) or name is None:
        return None
    changed = {k: v for k, v in body.items() if k != name}
    if wrong is not None or name not in body or body[name] is not None:
        changed[name] = wrong
    if jsonschema.Draft202012Validator(schema).is_valid(changed):
        # Leaving it out instead (a required property)?
        changed.pop(name, None)
        if jsonschema.Draft202012Validator(schema).is_valid(changed):
            return None
        return Request(query, changed, why=f"without {name}")
    return Request(query, changed, why=f"{name}={json.dumps(wrong)[:20]}")


def _wrong_parameter(
    operation: Operation, query: dict[str, str], name: str, wrong: str | None, body: Any
) -> Request | None:
    spec = next(p for p in operation.parameters if p["name"] == name)
    changed = {k: v for k, v in query.items() if k != name}
    if wrong is None:
        if not spec.get("required"):
            return None
        return Request(changed, body, operation.body is not None, f"without {name}")
    if _parameter_valid(spec["schema"], wrong):
        return None
    if spec["in"] == "header" and (wrong != wrong.strip() or not wrong.isascii()):
        return None  # not what a header can carry as is
    changed[name] = wrong
    return Request(changed, body, operation.body is not None, f"{name}={wrong[:20]!r}")


def _parameter_valid(schema: dict[str, Any], text: str) -> bool:
    validator = jsonschema.Draft202012Validator(schema)
    if validator.is_valid(text):
        return True
    return bool(re.fullmatch(r"-?[0-9]+", text)) and validator.is_valid(int(text))


def _exercise(
    run: Run, session: Any, operation: Operation, refused: bool
) -> Callable[[Request], None]:
    def check(request: Request) -> None:
        located = {p["name"]: p["in"] for p in operation.parameters}
        query = {k: v for k, v in request.query.items() if located[k] == "query"}
        headers = {k: v for k, v in request.query.items() if located[k] == "header"}
        if "headerKey" in operation.auth:
            headers["X-Push365-Key"] = run.key
        if {"adminKey"} & operation.auth:
            headers["X-Push365-Admin-Key"] = run.stack.admin_key
        url = f"{run.stack.base}/{operation.function}{operation.path.rstrip('/')}"
        data = json.dumps(request.body) if request.has_body else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        answer = session.request(
            operation.method.upper(),
            url,
            params=query,
            data=data.encode() if data is not None else None,
            headers={k: v.encode("latin-1") for k, v in headers.items()},
        )
        run.sent += 1
        media = answer.headers.get("Content-Type", "").split(";")[0].strip()
        body = answer.json() if answer.content and media == "application/json" else None
        _after(run, operation, request, answer.status_code, body)
        sent = f"{request.query} {data[:300] if data else '(no body)'}"
        what = f"{request.why or 'allowed'}: {sent} -> {answer.status_code} {answer.text[:300]}"
        responses = operation.spec["responses"]
        assert str(answer.status_code) in responses, f"status not listed: {what}"
        assert answer.status_code < 500, f"server error: {what}"
        content = responses[str(answer.status_code)].get("content")
        if content is not None:
            assert media in content, (
                f"answered {media}, which its description does not list: {what}"
            )
        if content is not None and media == "application/json":
            schema = content["application/json"]["schema"]
            errors = sorted(
                e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(body)
            )
            assert not errors, f"answer does not match its schema ({errors[:2]}): {what}"
        code = (body or {}).get("error", {}).get("code") if isinstance(body, dict) else None
        if refused:
            assert 400 <= answer.status_code < 500, f"accepted a request it does not allow: {what}"
        elif not _across_parameters(operation, request.query):
            assert code not in NOT_VALID, f"refused a request it allows: {what}"

    return check


def _across_parameters(operation: Operation, query: dict[str, Any]) -> bool:
    """Whether a request breaks a rule that ties one parameter to another, which a schema of
    each cannot state (and its description says in words): an export's page token names a
    section of the export that answered it; a user's export has no users or dedup_keys."""
    token = str(query.get("page_token") or "")
    return (
        operation.name == "GET /privacy/export"
        and query.get("user_id") is not None
        and token.split(".")[0] in ("users", "dedup_keys")
    )


def _after(run: Run, operation: Operation, request: Request, status: int, answer: Any) -> None:
    """Keep the organization usable: its new key after a rotation, a new registration after an
    erasure of the whole organization."""
    if status != 200:
        return
    if operation.name == "POST /register/rotate-key":
        run.key = answer["api_key"]
    erased = isinstance(request.body, dict) and request.body.get("organization") is True
    if operation.name == "POST /privacy/erase" and erased:
        register(run)
