"""``privacy``: access to everything held, and erasure of a user or an organization, now."""

from __future__ import annotations

from typing import Any

from devstack.fcm_server import LocalFcmServer
from tests.integration.conftest import (
    ALICE,
    BOB,
    ORG,
    OTHER_ORG,
    Functions,
    all_documents,
    deliver_pending,
    documents,
    register,
)


def populate(api: Functions, key: str, tokens: str = "") -> str:
    """Users, subscriptions and a notification to both users; the notification id. (Another
    organization's browsers have other tokens: ``tokens`` is added to each.)"""
    api.post(
        "/register/users",
        {
            "users": [
                {"id": BOB, "full_name": "Bob", "email": "b@c.com"},
                {"id": ALICE, "full_name": "Alice"},
            ]
        },
        key=key,
    )
    api.post(
        "/subscribe",
        {"user_id": BOB, "instance_id": f"bob-laptop{tokens}", "browser_footprint": "fp-b"},
        key=key,
    )
    api.post("/subscribe", {"user_id": ALICE, "instance_id": f"alice-laptop{tokens}"}, key=key)
    sent = api.post("/send", {"recipients": [BOB, ALICE], "title": "t", "body": "b"}, key=key)
    deliver_pending(api)
    return str(sent.json["notification_id"])


def test_export_gives_everything_held_about_the_organization_without_secrets(
    api: Functions,
) -> None:
    key = register(api)
    notification_id = populate(api, key)

    response = api.request("GET", "/privacy/export", key=key)

    assert response.status_code == 200
    export = response.json
    assert export["organization"]["business"]["name"] == "Contoso Ltd"
    assert {u["id"] for u in export["users"]} == {BOB, ALICE}
    assert {s["instance_id"] for s in export["subscriptions"]} == {"bob-laptop", "alice-laptop"}
    assert {s.get("browser_footprint") for s in export["subscriptions"]} == {"fp-b", None}
    (notification,) = export["notifications"]
    assert notification["id"] == notification_id
    assert len(notification["deliveries"]) == 2
    assert "api_key_hash" not in response.text
    assert "receipt_hash" not in response.text


def test_export_answers_a_page_and_where_the_next_one_starts(api: Functions) -> None:
    key = register(api)
    populate(api, key)

    first = api.request("GET", "/privacy/export", key=key)
    again = api.request("GET", "/privacy/export", key=key, query={"page_token": "users."})
    mine = api.request("GET", "/privacy/export", key=key, query={"user_id": BOB})

    assert first.json["next_page_token"] is None  # all of it fits one page
    assert mine.json["next_page_token"] is None
    assert again.status_code == 200
    assert again.json["users"] == first.json["users"]  # from the start of the users again


def test_export_refuses_a_page_token_it_did_not_answer_without_echoing_it(api: Functions) -> None:
    key = register(api)

    answers = [
        api.request("GET", "/privacy/export", key=key, query={"page_token": token})
        for token in ("secret-caller-text", "organizations.abc", "users.'or 1=1")
    ]

    assert [a.status_code for a in answers] == [422, 422, 422]
    assert not any("secret-caller-text" in a.text or "or 1=1" in a.text for a in answers)


def test_export_of_one_user_holds_only_theirs(api: Functions) -> None:
    key = register(api)
    populate(api, key)

    export = api.request("GET", "/privacy/export", key=key, query={"user_id": BOB}).json

    assert export["user"]["full_name"] == "Bob"
    assert [s["instance_id"] for s in export["subscriptions"]] == ["bob-laptop"]
    assert [d["user_id"] for d in export["notifications"][0]["deliveries"]] == [BOB]


def test_export_of_an_unknown_user_is_404_and_a_bad_id_422(api: Functions) -> None:
    key = register(api)

    unknown = api.request("GET", "/privacy/export", key=key, query={"user_id": BOB})
    bad = api.request("GET", "/privacy/export", key=key, query={"user_id": "CANARY-x"})

    assert unknown.status_code == 404
    assert bad.status_code == 422
    assert "CANARY" not in bad.text


def test_erasing_a_user_removes_them_everywhere_now(api: Functions, store: Any) -> None:
    key = register(api)
    notification_id = populate(api, key)

    response = api.post("/privacy/erase", {"user_id": BOB}, key=key)

    assert response.status_code == 200
    assert response.json == {
        "erased": {
            "users": 1,
            "subscriptions": 1,
            "notifications": 1,
            "deliveries": 1,
            "dedup_keys": 0,
        }
    }
    assert set(documents(store, ORG, "users")) == {ALICE}
    assert [s["user_id"] for s in documents(store, ORG, "subscriptions").values()] == [ALICE]
    notification = documents(store, ORG, "notifications")[notification_id]
    assert notification["recipients"] == [ALICE]
    leftovers = [
        path for path, fields in all_documents(store) if BOB in repr(fields) or BOB in path
    ]
    assert leftovers == []


def test_erasing_a_user_keeps_the_receipts_of_the_others_in_their_batches(
    api: Functions, fcm: LocalFcmServer
) -> None:
    # Arrange: Bob's and Alice's devices in one batch
    key = register(api)
    populate(api, key)
    receipts = {m["message"]["token"]: m["message"]["data"]["receipt"] for m in fcm.messages()}

    # Act
    api.post("/privacy/erase", {"user_id": BOB}, key=key)

    # Assert
    assert api.post("/receipt", {"receipt": receipts["alice-laptop"]}).status_code == 204
    assert api.post("/receipt", {"receipt": receipts["bob-laptop"]}).status_code == 404


def test_erasing_the_organization_removes_everything_and_revokes_its_key(
    api: Functions, store: Any
) -> None:
    key, other_key = register(api), register(api, OTHER_ORG)
    populate(api, key)
    populate(api, other_key, tokens="-other")

    response = api.post("/privacy/erase", {"organization": True}, key=key)

    assert response.status_code == 200
    assert response.json["erased"] == {
        "organizations": 1,
        "users": 2,
        "subscriptions": 2,
        "notifications": 1,
        "receipts": 0,  # no browser confirmed
        "batches": 2,  # the batch (with its 2 delivery records) and its plan document
        "dedup_keys": 0,
    }
    assert [p for p, _ in all_documents(store) if ORG in p] == []
    assert api.request("GET", "/privacy/export", key=key).status_code == 401
    assert len(documents(store, OTHER_ORG, "users")) == 2


def test_erase_needs_exactly_one_target(api: Functions) -> None:
    key = register(api)

    answers = [
        api.post("/privacy/erase", body, key=key)
        for body in ({}, {"user_id": BOB, "organization": True}, {"organization": False})
    ]

    assert [a.status_code for a in answers] == [422, 422, 422]
