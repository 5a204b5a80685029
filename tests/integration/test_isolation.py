"""Two organizations: neither key reaches the other's data."""

from __future__ import annotations

from typing import Any

from push365.subscriptions.model import subscription_id
from tests.integration.conftest import (
    BOB,
    ORG,
    OTHER_ORG,
    Functions,
    dataverse,
    documents,
    register,
)


def test_a_dataverse_body_of_another_organization_is_forbidden_and_stores_nothing(
    api: Functions, store: Any
) -> None:
    register(api)
    other_key = register(api, OTHER_ORG)
    calls = [
        ("/subscribe", "subscription-create.json"),
        ("/unsubscribe", "subscription-delete.json"),
        ("/register/users", "systemuser-update.json"),
    ]

    answers = [api.post(url, dataverse(name, ORG), key=other_key) for url, name in calls]

    assert [a.status_code for a in answers] == [403, 403, 403]
    for org in (ORG, OTHER_ORG):
        assert documents(store, org, "users") == {}
        assert documents(store, org, "subscriptions") == {}


def test_a_token_one_organization_holds_is_neither_taken_nor_ended_by_another(
    api: Functions, store: Any
) -> None:
    key, other_key = register(api), register(api, OTHER_ORG)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=key)
    refused = api.post("/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=other_key)

    by_user = api.post("/unsubscribe", {"user_id": BOB}, key=other_key)
    by_token = api.post("/unsubscribe", {"instance_id": "tok"}, key=other_key)

    assert (refused.status_code, refused.json["error"]["code"]) == (409, "token_held")
    assert (by_user.json["unsubscribed"], by_token.json["unsubscribed"]) == (0, 0)
    mine = documents(store, ORG, "subscriptions")[subscription_id("tok")]
    assert mine["status"] == "active"
    assert documents(store, OTHER_ORG, "subscriptions") == {}


def test_removing_a_user_in_one_organization_leaves_the_other(api: Functions, store: Any) -> None:
    key, other_key = register(api), register(api, OTHER_ORG)
    for n, k in enumerate((key, other_key)):
        api.post("/register/users", {"users": [{"id": BOB, "full_name": "Bob"}]}, key=k)
        api.post("/subscribe", {"user_id": BOB, "instance_id": f"tok-{n}"}, key=k)
    body = dataverse("systemuser-update.json", OTHER_ORG, MessageName="Delete")

    api.post("/register/users", body, key=other_key)

    assert BOB in documents(store, ORG, "users")
    assert len(documents(store, ORG, "subscriptions")) == 1
    assert documents(store, OTHER_ORG, "users") == {}
