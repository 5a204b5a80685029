"""Transactional mail to administrators, sent through boto3 to a local SES (moto server mode) and
read back through moto's own API."""

from __future__ import annotations

import re
from typing import Any

from devstack.fcm_server import LocalFcmServer
from tests.integration.conftest import (
    BOB,
    ORG,
    Functions,
    LocalSes,
    register,
    registration,
    send_and_deliver,
    signup,
)

CANARY = "CANARY-3fa7"


def mail_to(ses: LocalSes, subject_part: str) -> list[dict[str, Any]]:
    return [m for m in ses.messages() if subject_part in m["subject"]]


def confirm(api: Functions, ses: LocalSes) -> None:
    """Open the link of every confirmation request sent so far, as the administrator does."""
    for mail in mail_to(ses, "confirm your address") + mail_to(ses, "bestätigen"):
        token = re.search(r"token=(p365c\.[A-Za-z0-9._-]+)", mail["body"])
        assert token is not None
        answer = api.get("/register/confirm-email", query={"token": token.group(1)})
        assert answer.status_code == 200, answer.json


def register_confirmed(api: Functions, ses: LocalSes) -> str:
    key = register(api)
    confirm(api, ses)
    return key


def test_no_mail_but_the_confirmation_request_before_an_address_is_confirmed(
    api: Functions, ses: LocalSes
) -> None:
    key = register(api)
    api.post("/register/rotate-key", key=key, content_type=None)

    (request,) = ses.messages()
    assert request["destinations"]["ToAddresses"] == ["ada@contoso.com"]
    assert request["subject"] == "Push365: confirm your address for Contoso"
    assert "/register/confirm-email?token=p365c." in request["body"]
    assert key.split(".")[2] not in request["body"]


def test_a_confirmation_link_works_once(api: Functions, ses: LocalSes) -> None:
    register(api)
    (request,) = ses.messages()
    token = re.search(r"token=(p365c\.[A-Za-z0-9._-]+)", request["body"])
    assert token is not None

    first = api.get("/register/confirm-email", query={"token": token.group(1)})
    again = api.get("/register/confirm-email", query={"token": token.group(1)})

    assert first.status_code == 200
    assert (again.status_code, again.json["error"]["code"]) == (404, "unknown_confirmation")


def test_registration_is_confirmed_to_the_admins_without_the_key(
    api: Functions, ses: LocalSes
) -> None:
    key = register_confirmed(api, ses)

    (mail,) = mail_to(ses, "is registered")

    assert mail["destinations"]["ToAddresses"] == ["ada@contoso.com"]
    assert mail["subject"] == "Push365: Contoso is registered"
    assert "X-Push365-Key" in mail["body"]
    assert "/register/users" in mail["body"]
    assert "/send" in mail["body"]
    assert key not in mail["body"]
    assert key.split(".")[2] not in mail["body"]


def test_the_confirmation_is_in_the_organizations_language(api: Functions, ses: LocalSes) -> None:
    body = registration()
    body["organization"]["language_code"] = 1031

    api.post("/register", body, headers=signup(api))
    confirm(api, ses)

    (mail,) = mail_to(ses, "ist registriert")
    assert mail["subject"] == "Push365: Contoso ist registriert"


def test_an_organization_without_admin_email_gets_no_mail(api: Functions, ses: LocalSes) -> None:
    api.post("/register", registration(admins=[{"full_name": "No Mail"}]), headers=signup(api))

    assert ses.messages() == []


def test_a_key_rotation_is_announced_with_its_overlap(api: Functions, ses: LocalSes) -> None:
    key = register_confirmed(api, ses)

    api.post("/register/rotate-key", key=key, content_type=None)

    (mail,) = mail_to(ses, "new key")
    assert "The previous key keeps working until" in mail["body"]


def test_a_delivery_alert_goes_at_most_once_a_day_and_carries_no_content(
    api: Functions, ses: LocalSes, fcm: LocalFcmServer, store: Any
) -> None:
    key = register_confirmed(api, ses)
    for n in range(3):
        api.post("/subscribe", {"user_id": BOB, "instance_id": f"unregistered-{n}"}, key=key)
        api.post("/subscribe", {"user_id": BOB, "instance_id": f"invalid-{n}"}, key=key)
    body = {"recipients": [BOB], "title": CANARY, "body": CANARY, "data": {"k": CANARY}}

    _, first = send_and_deliver(api, body, key)
    for n in range(3):
        api.post("/subscribe", {"user_id": BOB, "instance_id": f"unregistered-again-{n}"}, key=key)
    _, second = send_and_deliver(api, body, key)

    assert (first["counts"]["failed"], first["counts"]["removed_tokens"]) == (6, 6)
    assert second["counts"]["failed"] == 3
    alerts = mail_to(ses, "delivery problems")
    assert len(alerts) == 1
    assert CANARY not in str(ses.messages())
    organization = store.collection("organizations").document(ORG).get().to_dict()
    assert organization["last_delivery_alert_at"] is not None


def test_an_erasure_is_confirmed_with_counts(api: Functions, ses: LocalSes) -> None:
    key = register_confirmed(api, ses)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=key)

    api.post("/privacy/erase", {"organization": True}, key=key)

    (mail,) = mail_to(ses, "erased")
    assert "The organization and all its data were erased." in mail["body"]
    assert "<th align='left'>subscriptions</th><td>1</td>" in mail["body"]


def test_a_failing_ses_leaves_the_answer_unchanged_and_is_an_audit_fault(
    api: Functions, ses: LocalSes, capsys: Any
) -> None:
    ses.client().delete_email_identity(EmailIdentity="noreply@push365.test")  # SES now refuses

    response = api.post("/register", registration(), headers=signup(api))

    assert response.status_code == 201
    assert response.json["api_key"]
    assert ses.messages() == []
    records = [line for line in capsys.readouterr().out.splitlines() if '"api_call"' in line]
    assert '"fault": {"code": "mail_failed", "message": "MessageRejected"}' in records[-1]
    assert '"status": 201' in records[-1]
