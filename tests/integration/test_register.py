"""``register``: organizations, keys and system users, over the emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from push365.organizations.keys import hash_key
from tests.integration.conftest import (
    ALICE,
    BOB,
    ORG,
    OTHER_ORG,
    Functions,
    dataverse,
    documents,
    register,
    registration,
    signup,
)

# Exactly the privacy policy's "Organization Information", plus what running the service needs
# (the key's hash, dates, and the event rules the administrator configures).
ORGANIZATION_FIELDS = {
    "id",
    "unique_name",
    "name",
    "language_code",
    "url",
    "business",
    "admins",
    "api_key_hash",
    "created_at",
    "updated_at",
    "rules",
    "last_delivery_alert_at",
    "confirmed_emails",
    "pending_emails",
    "previous_key_hash",
    "previous_key_until",
    "query_key_allowed",
}
BUSINESS_FIELDS = {"name", "phone", "email", "country", "address"}
ADMIN_FIELDS = {"full_name", "email", "mobile_phone"}
USER_FIELDS = {
    "id",
    "domain_name",
    "full_name",
    "email",
    "windows_live_id",
    "mobile_phone",
    "devices_listed",  # a user new to Push365: its (empty) list of devices is complete
    "created_at",
    "updated_at",
}


def organization_document(store: Any, org: str = ORG) -> dict[str, Any]:
    return store.collection("organizations").document(org).get().to_dict()  # type: ignore[no-any-return]


def test_create_answers_the_key_once_and_stores_only_its_hash(api: Functions, store: Any) -> None:
    response = api.post("/register", registration(), headers=signup(api))

    assert response.status_code == 201
    key = response.json["api_key"]
    assert response.json["organization_id"] == ORG
    stored = organization_document(store)
    assert stored["api_key_hash"] == hash_key(key)
    assert key not in repr(stored)


def test_only_policy_fields_are_stored(api: Functions, store: Any) -> None:
    body = registration()
    body["organization"]["tenant_secret"] = "DROP-1"
    body["business"]["vat_number"] = "DROP-2"
    body["admins"][0]["password"] = "DROP-3"
    body["billing"] = {"card": "DROP-4"}

    assert api.post("/register", body, headers=signup(api)).status_code == 201

    stored = organization_document(store)
    assert set(stored) == ORGANIZATION_FIELDS
    assert set(stored["business"]) == BUSINESS_FIELDS
    assert set(stored["admins"][0]) == ADMIN_FIELDS
    assert "DROP" not in repr(stored)


def test_same_id_without_key_conflicts_and_changes_nothing(api: Functions, store: Any) -> None:
    register(api)
    before = organization_document(store)

    response = api.post("/register", registration(business={"name": "Hijacked"}))

    assert response.status_code == 409
    assert response.json["error"]["code"] == "conflict"
    assert organization_document(store) == before


def test_same_id_with_key_updates_without_answering_a_key(api: Functions, store: Any) -> None:
    key = register(api)
    body = registration(business={"phone": "+44 20 0000"}, admins=[{"full_name": "New Admin"}])
    body["organization"]["name"] = "Contoso Europe"

    response = api.post("/register", body, key=key)

    assert response.status_code == 200
    assert response.json == {"organization_id": ORG}
    stored = organization_document(store)
    assert stored["name"] == "Contoso Europe"
    assert stored["business"]["phone"] == "+44 20 0000"
    assert stored["business"]["name"] == "Contoso Ltd"  # not sent, kept
    assert stored["admins"] == [{"full_name": "New Admin", "email": None, "mobile_phone": None}]
    assert stored["api_key_hash"] == hash_key(key)


def test_update_with_another_organizations_key_is_forbidden(api: Functions, store: Any) -> None:
    register(api)
    other_key = register(api, OTHER_ORG)
    before = organization_document(store)

    response = api.post("/register", registration(business={"name": "X"}), key=other_key)

    assert response.status_code == 403
    assert organization_document(store) == before


def test_unknown_organization_and_wrong_key_get_the_same_401(api: Functions) -> None:
    key = register(api)
    unknown = key.replace(ORG, OTHER_ORG)
    wrong = key[:-4] + "AAAA"

    answers = [
        api.post("/register/users", {"users": [{"id": BOB}]}, key=k) for k in (unknown, wrong, None)
    ]

    assert [a.status_code for a in answers] == [401, 401, 401]
    assert answers[0].text == answers[1].text == answers[2].text


def test_key_in_query_parameter_code_works_when_the_organization_accepts_it(
    api: Functions,
) -> None:
    key = api.post("/register", registration(accept_query_key=True), headers=signup(api)).json[
        "api_key"
    ]

    response = api.post("/register/users", {"users": [{"id": BOB}]}, query={"code": key})

    assert response.status_code == 200


def test_a_new_organization_refuses_its_key_in_query_parameter_code(api: Functions) -> None:
    key = register(api)

    refused = api.post("/register/users", {"users": [{"id": BOB}]}, query={"code": key})
    update = api.post("/register", registration(), query={"code": key})
    header = api.post("/register/users", {"users": [{"id": BOB}]}, key=key)

    assert (refused.status_code, update.status_code) == (401, 401)
    assert refused.json["error"]["code"] == "query_key_refused"
    assert key not in refused.text
    assert header.status_code == 200


def test_an_organization_registered_before_the_setting_keeps_accepting_code(
    api: Functions, store: Any
) -> None:
    from google.cloud import firestore

    key = register(api)
    store.collection("organizations").document(ORG).update(
        {"query_key_allowed": firestore.DELETE_FIELD}
    )

    response = api.post("/register/users", {"users": [{"id": BOB}]}, query={"code": key})

    assert response.status_code == 200


def test_after_rotate_key_both_keys_work_until_the_previous_one_is_revoked(
    api: Functions, store: Any, capsys: Any
) -> None:
    old = register(api)
    users = {"users": [{"id": BOB}]}

    rotated = api.post("/register/rotate-key", key=old, content_type=None)
    new = rotated.json["api_key"]
    with_old = api.post("/register/users", users, key=old)
    with_new = api.post("/register/users", users, key=new)
    revoked = api.post("/register/revoke-previous-key", key=new, content_type=None)
    after = api.post("/register/users", users, key=old)

    assert rotated.status_code == 200
    assert new != old
    until = datetime.fromisoformat(rotated.json["previous_key_valid_until"])
    assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(hours=24)
    assert (with_old.status_code, with_new.status_code) == (200, 200)
    assert revoked.status_code == 200
    assert after.status_code == 401
    stored = organization_document(store)
    assert stored["api_key_hash"] == hash_key(new)
    assert (stored["previous_key_hash"], stored["previous_key_until"]) == (None, None)
    records = [line for line in capsys.readouterr().out.splitlines() if '"/users"' in line]
    assert ['"api_key": "previous"' in r for r in records[:2]] == [True, False]
    assert '"api_key": "current"' in records[1]
    assert old not in "".join(records)
    assert new not in "".join(records)


def test_rotate_key_without_overlap_stops_the_old_key_at_once(api: Functions) -> None:
    old = register(api)

    rotated = api.post("/register/rotate-key", {"overlap_hours": 0}, key=old)

    assert rotated.json["previous_key_valid_until"] is None
    assert api.post("/register/users", {"users": [{"id": BOB}]}, key=old).status_code == 401
    new = rotated.json["api_key"]
    assert api.post("/register/users", {"users": [{"id": BOB}]}, key=new).status_code == 200


def test_users_are_upserted_with_only_policy_fields(api: Functions, store: Any) -> None:
    key = register(api)
    users = [
        {
            "id": BOB,
            "domain_name": "bob@contoso.com",
            "full_name": "Bob",
            "email": "bob@c.com",
            "windows_live_id": "bob@live",
            "mobile_phone": "+1",
            "salary": "DROP",
        },
        {"id": ALICE.upper(), "full_name": "Alice"},
    ]

    response = api.post("/register/users", {"users": users}, key=key)

    assert response.status_code == 200
    assert response.json == {"upserted": 2}
    stored = documents(store, ORG, "users")
    assert set(stored) == {BOB, ALICE}  # GUIDs normalised
    assert set(stored[BOB]) == USER_FIELDS - {"created_at"}
    assert "DROP" not in repr(stored)


def test_user_correction_keeps_fields_not_sent(api: Functions, store: Any) -> None:
    key = register(api)
    api.post(
        "/register/users", {"users": [{"id": BOB, "full_name": "Bob", "email": "b@c.com"}]}, key=key
    )

    api.post("/register/users", {"users": [{"id": BOB, "full_name": "Bob Stone"}]}, key=key)

    stored = documents(store, ORG, "users")[BOB]
    assert (stored["full_name"], stored["email"]) == ("Bob Stone", "b@c.com")


def test_dataverse_systemuser_update_upserts_the_touched_columns(
    api: Functions, store: Any
) -> None:
    key = register(api)

    response = api.post("/register/users", dataverse("systemuser-update.json"), key=key)

    assert response.status_code == 200
    assert response.json == {"upserted": 1}
    stored = documents(store, ORG, "users")[BOB]
    assert stored["full_name"] == "Bob Stone"
    assert stored["email"] == "bob@contoso.com"
    assert stored["mobile_phone"] == "+44 20 7946 0018"
    assert set(stored) <= USER_FIELDS  # isdisabled, modifiedby: not stored


def _subscribe(api: Functions, key: str, token: str, user: str = BOB) -> None:
    response = api.post("/subscribe", {"user_id": user, "instance_id": token}, key=key)
    assert response.status_code == 201


def test_dataverse_disable_removes_the_user_and_their_subscriptions(
    api: Functions, store: Any
) -> None:
    key = register(api)
    api.post("/register/users", dataverse("systemuser-update.json"), key=key)
    _subscribe(api, key, "bob-1")
    _subscribe(api, key, "alice-1", ALICE)
    body = dataverse("systemuser-update.json")
    attributes = body["InputParameters"][0]["value"]["Attributes"]
    next(a for a in attributes if a["key"] == "isdisabled")["value"] = True

    response = api.post("/register/users", body, key=key)

    assert response.status_code == 200
    assert response.json == {"removed": 1, "subscriptions_removed": 1}
    assert BOB not in documents(store, ORG, "users")
    assert [s["user_id"] for s in documents(store, ORG, "subscriptions").values()] == [ALICE]


def test_dataverse_delete_removes_the_user(api: Functions, store: Any) -> None:
    key = register(api)
    api.post("/register/users", dataverse("systemuser-update.json"), key=key)
    body = dataverse("systemuser-update.json", MessageName="Delete")
    body["InputParameters"] = [
        {
            "key": "Target",
            "value": {
                "__type": "EntityReference:http://schemas",
                "Id": BOB,
                "LogicalName": "systemuser",
            },
        }
    ]

    response = api.post("/register/users", body, key=key)

    assert response.json == {"removed": 1, "subscriptions_removed": 0}
    assert documents(store, ORG, "users") == {}


def test_dataverse_body_of_another_table_is_answered_not_handled(
    api: Functions, store: Any
) -> None:
    key = register(api)

    response = api.post("/register/users", dataverse("opportunity-update.json"), key=key)

    assert response.status_code == 200
    assert response.json["handled"] is False
    assert "systemuser" in response.json["reason"]
    assert documents(store, ORG, "users") == {}


def test_dataverse_body_at_the_function_root_is_handled_as_users(
    api: Functions, store: Any
) -> None:
    key = register(api)

    unauthenticated = api.post("/register", dataverse("systemuser-update.json"))
    response = api.post("/register", dataverse("systemuser-update.json"), key=key)

    assert unauthenticated.status_code == 401
    assert response.json == {"upserted": 1}
    assert documents(store, ORG, "users")[BOB]["full_name"] == "Bob Stone"
