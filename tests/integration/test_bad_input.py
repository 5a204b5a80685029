"""Bad input, through every function: a clear JSON error with the right 4xx, never a 500, never
an echo of what was sent, and nothing already stored lost or changed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.openapi import function_apis
from tests.integration.conftest import BOB, ORG, Functions, documents, register, registration

CANARY = "CANARY-b5e1"
GOOD_BODIES: dict[str, dict[str, Any]] = {
    "/register": registration(),
    "/register/users": {"users": [{"id": BOB}]},
    "/subscribe": {"user_id": BOB, "instance_id": "tok"},
    "/unsubscribe": {"instance_id": "tok"},
    "/send": {"recipients": [BOB], "title": "t", "body": "b"},
    "/receipt": {"receipt": "r"},
    "/register/rules/preview": {"table": "contact", "message": "Update"},
}
# Every route the route tables say needs a key or the operator's or scheduler's credentials.
AUTHENTICATED = sorted(
    (method, f"/{name}" + ("" if path == "/" else path))
    for name, api in function_apis().items()
    for (path, method), operation in api.operations.items()
    if operation.auth in ("key", "webhook", "admin", "purge")
)
TOO_BIG = json.dumps({"users": [{"id": BOB, "full_name": CANARY * 30_000}]})

# (name, url, request options, expected status, expected code)
CASES: list[tuple[str, str, dict[str, Any], int, str]] = []
for url in [*GOOD_BODIES]:
    CASES += [
        (f"invalid json {url}", url, {"data": "{" + CANARY}, 400, "invalid_json"),
        (f"json array {url}", url, {"data": json.dumps([CANARY])}, 400, "invalid_json"),
        (f"json string {url}", url, {"data": json.dumps(CANARY)}, 400, "invalid_json"),
        (f"NaN {url}", url, {"data": '{"x": NaN}'}, 400, "invalid_json"),
        (f"not utf-8 {url}", url, {"data": b'{"x": "\xff\xfe"}'}, 400, "invalid_json"),
        (f"deep nesting {url}", url, {"data": "[" * 100_000 + "]" * 100_000}, 400, "invalid_json"),
        (
            f"text/plain {url}",
            url,
            {"data": json.dumps(GOOD_BODIES[url]), "content_type": "text/plain"},
            415,
            "unsupported_media_type",
        ),
        (
            f"no content type {url}",
            url,
            {"data": json.dumps(GOOD_BODIES[url]), "content_type": None},
            415,
            "unsupported_media_type",
        ),
        (
            f"form {url}",
            url,
            {"data": f"a={CANARY}", "content_type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
        (f"over 256 KB {url}", url, {"data": TOO_BIG}, 413, "payload_too_large"),
        (f"empty object {url}", url, {"body": {}}, 422, "validation_failed"),
    ]
CASES += [
    (
        "register: org id not a guid",
        "/register",
        {
            "body": registration(
                organization={"id": CANARY, "unique_name": "u", "name": "n", "language_code": 1033}
            )
        },
        422,
        "validation_failed",
    ),
    (
        "register: language code a string",
        "/register",
        {
            "body": registration(
                organization={"id": ORG, "unique_name": "u", "name": "n", "language_code": CANARY}
            )
        },
        422,
        "validation_failed",
    ),
    (
        "register: admins an object",
        "/register",
        {"body": registration(admins={"x": CANARY})},
        422,
        "validation_failed",
    ),
    (
        "register: name too long",
        "/register",
        {
            "body": registration(
                organization={
                    "id": ORG,
                    "unique_name": "u",
                    "name": CANARY * 100,
                    "language_code": 1033,
                }
            )
        },
        422,
        "validation_failed",
    ),
    ("users: empty list", "/register/users", {"body": {"users": []}}, 422, "validation_failed"),
    (
        "users: id mistyped",
        "/register/users",
        {"body": {"users": [{"id": 12}]}},
        422,
        "validation_failed",
    ),
    (
        "users: over 500",
        "/register/users",
        {"body": {"users": [{"id": BOB}] * 501}},
        422,
        "validation_failed",
    ),
    (
        "users: invented key",
        "/register/users",
        {"body": {"users": [{CANARY: 1}]}},
        422,
        "validation_failed",
    ),
    (
        "subscribe: token with spaces",
        "/subscribe",
        {"body": {"user_id": BOB, "instance_id": f"{CANARY} x"}},
        422,
        "validation_failed",
    ),
    (
        "subscribe: token a number",
        "/subscribe",
        {"body": {"user_id": BOB, "instance_id": 7}},
        422,
        "validation_failed",
    ),
    (
        "subscribe: user not a guid",
        "/subscribe",
        {"body": {"user_id": CANARY, "instance_id": "t"}},
        422,
        "validation_failed",
    ),
    (
        "subscribe: token too long",
        "/subscribe",
        {"body": {"user_id": BOB, "instance_id": "t" * 5000}},
        422,
        "validation_failed",
    ),
    (
        "unsubscribe: both selectors",
        "/unsubscribe",
        {"body": {"user_id": BOB, "instance_id": CANARY}},
        422,
        "validation_failed",
    ),
    (
        "unsubscribe: dataverse without org",
        "/unsubscribe",
        {
            "body": {
                "MessageName": "Delete",
                "PrimaryEntityName": "p365_subscription",
                "OrganizationId": CANARY,
            }
        },
        422,
        "validation_failed",
    ),
    (
        "preview: target not an object",
        "/register/rules/preview",
        {"body": {"table": "contact", "message": "Update", "target": [CANARY]}},
        422,
        "validation_failed",
    ),
    (
        "preview: a lookup whose id is not a guid",
        "/register/rules/preview",
        {
            "body": {
                "table": "contact",
                "message": "Update",
                "target": {"ownerid": {"Id": CANARY, "LogicalName": "systemuser"}},
            }
        },
        422,
        "validation_failed",
    ),
    (
        "rules: recipient neither a column, a context user nor a guid",
        "/register/rules",
        {
            "body": {
                "rules": [
                    {
                        "table": "contact",
                        "message": "Update",
                        "recipients": [f"context.{CANARY}"],
                        "title": "t",
                    }
                ]
            }
        },
        422,
        "validation_failed",
    ),
    ("unknown route", "/register/nope", {"body": {}}, 404, "not_found"),
    ("unknown route under subscribe", "/subscribe/" + CANARY, {"body": {}}, 404, "not_found"),
]


@pytest.fixture
def stored_state(api: Functions, store: Any) -> tuple[str, Any]:
    """An organization with a user and a subscription, to see that nothing changes."""
    key = register(api)
    api.post("/register/users", {"users": [{"id": BOB, "full_name": "Bob"}]}, key=key)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=key)
    return key, snapshot(store)


def snapshot(store: Any) -> dict[str, Any]:
    organization = store.collection("organizations").document(ORG).get().to_dict()
    users, subscriptions = documents(store, ORG, "users"), documents(store, ORG, "subscriptions")
    notifications = documents(store, ORG, "notifications")
    return {
        "organization": organization,
        "users": users,
        "subscriptions": subscriptions,
        "notifications": notifications,
    }


@pytest.mark.parametrize(
    ("name", "url", "options", "status", "code"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_is_a_clear_json_4xx_that_echoes_nothing_and_changes_nothing(
    api: Functions,
    store: Any,
    stored_state: tuple[str, Any],
    name: str,
    url: str,
    options: dict[str, Any],
    status: int,
    code: str,
) -> None:
    key, before = stored_state
    options = dict(options)
    body = options.pop("body", None)
    # Register with an existing org and a key would update; use a fresh org id there instead.
    use_key = key if url != "/register" else None

    response = api.post(url, body, key=use_key, **options)

    assert response.status_code == status, response.text
    assert response.mimetype == "application/json"
    error = response.json["error"]
    assert error["code"] == code
    assert error["message"]
    assert CANARY not in response.text
    assert snapshot(store) == before


@pytest.mark.parametrize("url", [*GOOD_BODIES, "/register/rotate-key"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405_with_allow(api: Functions, url: str, method: str) -> None:
    response = api.request(method, url)

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(("method", "url"), AUTHENTICATED)
def test_bad_input_without_a_key_is_401_first(api: Functions, method: str, url: str) -> None:
    response = api.request(method, url, data="{" + CANARY, query={"days": CANARY})

    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert CANARY not in response.text


def test_the_401_test_covers_the_routes_it_always_did() -> None:
    assert len(AUTHENTICATED) >= 15
    assert {("POST", "/send"), ("GET", "/send/stats"), ("POST", "/purge")} <= set(AUTHENTICATED)


def test_validation_errors_name_the_fields(api: Functions, stored_state: tuple[str, Any]) -> None:
    key, _ = stored_state

    response = api.post("/subscribe", {"user_id": CANARY}, key=key)

    fields = {d["field"] for d in response.json["error"]["details"]}
    assert fields == {"user_id", "instance_id"}
