"""Notification content never reaches Firestore, an error answer, or a validation detail.

Canary strings ride in every content-bearing field through every way of sending; afterwards
every document in the database is read and none of them carries a canary.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from devstack.fcm_server import LocalFcmServer
from tests.integration.conftest import (
    BOB,
    Functions,
    all_documents,
    dataverse,
    deliver_pending,
    register,
)

CANARY = "CANARY-5ea1"


def canary_fields(n: int) -> dict[str, Any]:
    return {
        "recipients": [BOB],
        "title": f"{CANARY}-title-{n}",
        "body": f"{CANARY}-body-{n}",
        "link": f"https://example.com/{CANARY}-link-{n}",
        "icon": f"https://example.com/{CANARY}-icon-{n}.png",
        "data": {f"{CANARY}-key-{n}": f"{CANARY}-value-{n}"},
        "collapse_key": f"{CANARY}-{n}",
    }


def canary_notification_row() -> dict[str, Any]:
    body = dataverse("notification-create.json")
    for attribute in body["InputParameters"][0]["value"]["Attributes"]:
        if attribute["key"] in ("p365_title", "p365_body"):
            attribute["value"] = f"{CANARY}-{attribute['key']}"
        if attribute["key"] == "p365_link":
            attribute["value"] = f"https://example.com/{CANARY}-row-link"
    return body


def canary_opportunity() -> dict[str, Any]:
    body = dataverse("opportunity-update.json")
    target = body["InputParameters"][0]["value"]
    for attribute in target["Attributes"]:
        if attribute["key"] == "name":
            attribute["value"] = f"{CANARY}-opportunity"
    target["FormattedValues"].append({"key": "statuscode", "value": f"{CANARY}-status"})
    return body


def test_no_content_reaches_any_firestore_document(
    api: Functions, store: Any, fcm: LocalFcmServer
) -> None:
    key = register(api)
    for token in ("bob-laptop", "unregistered-bob", "quota-bob"):
        api.post("/subscribe", {"user_id": BOB, "instance_id": token}, key=key)
    api.post(
        "/register/rules",
        {
            "rules": [
                {
                    "table": "opportunity",
                    "message": "Update",
                    "recipients": ["ownerid"],
                    "title": "{name}",
                    "body": "{statuscode}",
                    "link": "record",
                }
            ]
        },
        key=key,
    )

    answers = [
        api.post("/send", canary_fields(1), key=key),
        api.post("/send", canary_fields(2), key=key, headers={"Idempotency-Key": "k-2"}),
        api.post("/send", canary_fields(2), key=key, headers={"Idempotency-Key": "k-2"}),
        api.post("/send", canary_notification_row(), key=key),
        api.post(
            "/send",
            canary_opportunity(),
            key=key,
            headers={"x-ms-dynamics-organization": "contoso.crm4.dynamics.com"},
        ),
    ]

    deliver_pending(api)

    assert [a.status_code for a in answers] == [202] * 5
    assert all(CANARY not in a.text for a in answers)
    # The content did reach FCM (so the scan below is not vacuous)...
    assert sum(CANARY in str(m["message"]) for m in fcm.messages()) >= 5
    # ...and nothing of it reached the database.
    documents = all_documents(store)
    assert any(fields.get("deliveries") for path, fields in documents if "/batches/" in path)
    leaks = [path for path, fields in documents if CANARY in repr(fields)]
    assert leaks == []


BAD_SENDS: list[tuple[str, dict[str, Any]]] = [
    ("http link", {"link": f"http://example.com/{CANARY}"}),
    ("icon not a url", {"icon": CANARY}),
    ("reserved data key", {"data": {"receipt": CANARY}}),
    ("google data key", {"data": {f"google.{CANARY}": CANARY}}),
    ("data value not a string", {"data": {CANARY: 1}}),
    ("ttl too long", {"ttl_seconds": 2_419_201}),
    ("urgency unknown", {"urgency": CANARY}),
    ("collapse key too long", {"collapse_key": CANARY * 5}),
    ("title empty", {"title": ""}),
    ("title mistyped", {"title": [CANARY]}),
    ("no recipients", {"recipients": []}),
    ("recipient not a guid", {"recipients": [CANARY]}),
]


@pytest.mark.parametrize(("name", "change"), BAD_SENDS, ids=[b[0] for b in BAD_SENDS])
def test_a_bad_send_is_422_without_echo_and_sends_nothing(
    api: Functions, store: Any, fcm: LocalFcmServer, name: str, change: dict[str, Any]
) -> None:
    key = register(api)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "bob-laptop"}, key=key)
    body = copy.deepcopy(canary_fields(0)) | change

    response = api.post("/send", body, key=key)

    assert response.status_code == 422
    assert CANARY not in response.text
    assert fcm.messages() == []
    assert not any("notifications" in path for path, _ in all_documents(store))


def test_a_bad_idempotency_key_is_422(api: Functions) -> None:
    key = register(api)

    response = api.post("/send", canary_fields(0), key=key, headers={"Idempotency-Key": "x" * 300})

    assert response.status_code == 422
    assert CANARY not in response.text
