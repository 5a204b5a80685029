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
        answer = api.post(
            "/register/confirm-email", query={"token": token.group(1)}, content_type=None
        )
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
    assert request["subject"] == "Push365: confirm your address"
    assert "/register/confirm-email?token=p365c." in request["body"]
    assert key.split(".")[2] not in request["body"]


def test_a_confirmation_link_works_once(api: Functions, ses: LocalSes) -> None:
    register(api)
    (request,) = ses.messages()
    token = re.search(r"token=(p365c\.[A-Za-z0-9._-]+)", request["body"])
    assert token is not None

    first = api.post("/register/confirm-email", query={"token": token.group(1)}, content_type=None)
    again = api.post("/register/confirm-email", query={"token": token.group(1)}, content_type=None)

    assert first.status_code == 200
    assert (again.status_code, again.json["error"]["code"]) == (404, "unknown_confirmation")


def test_registration_is_confirmed_to_the_admins_without_the_key(
    api: Functions, ses: LocalSes
) -> None:
    key = register_confirmed(api, ses)

    (mail,) = mail_to(ses, "is registered")

    assert mail["destinations"]["ToAddresses"] == ["ada@contoso.com"]
    assert mail["subject"] == "Push365: your organization is registered"
    assert "The organization Contoso is registered with Push365." in mail["body"]
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
    assert mail["subject"] == "Push365: Ihre Organisation ist registriert"


def test_an_organization_without_admin_email_gets_no_mail(api: Functions, ses: LocalSes) -> None:
    api.post("/register", registration(admins=[{"full_name": "No Mail"}]), headers=signup(api))

    assert ses.messages() == []


def test_a_key_rotation_is_announced_with_its_overlap(api: Functions, ses: LocalSes) -> None:
    key = register_confirmed(api, ses)

    api.post("/register/rotate-key", key=key, content_type=None)

    (mail,) = mail_to(ses, "new API key")
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


# Issue 27, item 3: mail that cannot be aimed.

BAIT = "BAIT-9c1e Win a prize"


def tokens_in(mails: list[dict[str, Any]]) -> list[str]:
    found = [re.search(r"token=(p365c\.[A-Za-z0-9._-]+)", mail["body"]) for mail in mails]
    return [token.group(1) for token in found if token is not None]


def admins(*emails: str) -> list[dict[str, str]]:
    return [{"email": email} for email in emails]


def test_a_key_holder_aiming_1000_confirmation_mails_gets_at_most_the_daily_cap(
    api: Functions, ses: LocalSes
) -> None:
    cap = 100  # the documented default (PUSH365_MAIL_CONFIRMATIONS_PER_ORGANIZATION)
    key = register(api)  # ada@contoso.com: the first confirmation request of the day
    body = registration()
    body["organization"]["name"] = BAIT

    answers = [
        api.post(
            "/register",
            body | {"admins": admins(*(f"victim-{u}-{n}@target.test" for n in range(50)))},
            key=key,
        )
        for u in range(20)
    ]

    requests = mail_to(ses, "confirm your address")
    assert len(requests) == cap
    assert [a.status_code for a in answers] == [200] * 20  # the updates themselves succeed
    counts = [a.json["confirmation_mails"] for a in answers]
    assert sum(c["sent"] for c in counts) == cap - 1
    assert sum(c["not_sent"] for c in counts) == 1000 - (cap - 1)
    assert counts[-1] == {"sent": 0, "not_sent": 50}
    assert all("target.test" not in a.text for a in answers)  # counts, no address echoed
    assert all(BAIT not in str(mail) for mail in ses.messages())


def test_opening_the_link_confirms_nothing_and_its_button_does(
    api: Functions, ses: LocalSes, store: Any
) -> None:
    register(api)
    (token,) = tokens_in(ses.messages())
    organization = store.collection("organizations").document(ORG)

    opened = [api.get("/register/confirm-email", query={"token": token}) for _ in range(3)]

    assert [page.status_code for page in opened] == [200] * 3
    assert opened[0].mimetype == "text/html"
    assert "<form method='post'>" in opened[0].text
    assert token not in opened[0].text  # the form posts back to the URL it was opened at
    assert "no-referrer" in opened[0].headers["Referrer-Policy"]
    assert "frame-ancestors 'none'" in opened[0].headers["Content-Security-Policy"]
    assert organization.get().to_dict()["confirmed_emails"] == []
    assert mail_to(ses, "is registered") == []

    pressed = api.post(
        "/register/confirm-email",
        query={"token": token},
        data="",
        content_type="application/x-www-form-urlencoded",
        headers={"Accept-Language": "de-DE,de;q=0.9"},
    )

    assert (pressed.status_code, pressed.mimetype) == (200, "text/html")
    assert "Adresse bestätigt" in pressed.text
    assert organization.get().to_dict()["confirmed_emails"] == ["ada@contoso.com"]
    assert len(mail_to(ses, "is registered")) == 1
    again = api.post(
        "/register/confirm-email",
        query={"token": token},
        data="",
        content_type="application/x-www-form-urlencoded",
    )
    assert (again.status_code, again.mimetype) == (404, "text/html")
    assert token not in again.text


def test_no_subject_carries_text_the_caller_chose(api: Functions, ses: LocalSes) -> None:
    body = registration()
    body["organization"]["name"] = BAIT
    first = api.post("/register", body, headers=signup(api)).json["api_key"]
    confirm(api, ses)  # ada: "is registered"
    key = api.post("/register/rotate-key", key=first, content_type=None).json["api_key"]
    api.post("/register/revoke-previous-key", key=key, content_type=None)
    changed = body | {"admins": admins("ada@contoso.com", "bob@contoso.com")}
    api.post("/register", changed, key=key)  # bob asked; ada told
    api.post("/privacy/erase", {"organization": True}, key=key)

    mails = ses.messages()
    subjects = sorted(mail["subject"] for mail in mails)
    assert subjects == sorted(
        [
            "Push365: confirm your address",
            "Push365: your organization is registered",
            "Push365: new API key",
            "Push365: the previous API key was revoked",
            "Push365: confirm your address",
            "Push365: the administrators were changed",
            "Push365: data erased",
        ]
    )
    asked = mail_to(ses, "confirm your address")
    assert all(BAIT not in mail["body"] and ORG in mail["body"] for mail in asked)
    (registered,) = mail_to(ses, "is registered")
    assert BAIT in registered["body"]  # the opted-in administrators see the name, in the body


def test_an_unconfirmed_address_is_not_mailed_again_the_same_day(
    api: Functions, ses: LocalSes
) -> None:
    key = register(api)  # asks ada@contoso.com
    body = registration()

    removed = api.post("/register", body | {"admins": admins("bob@contoso.com")}, key=key)
    # re-added, in other capitals: the same address
    readded = api.post("/register", body | {"admins": admins("Ada@Contoso.com")}, key=key)
    both = api.post(
        "/register", body | {"admins": admins("ada@contoso.com", "bob@contoso.com")}, key=key
    )
    again = api.post("/register", body, key=key)

    to = [tuple(m["destinations"]["ToAddresses"]) for m in mail_to(ses, "confirm your address")]
    assert sorted(to) == [("ada@contoso.com",), ("bob@contoso.com",)]
    assert removed.json["confirmation_mails"] == {"sent": 1, "not_sent": 0}
    assert readded.json["confirmation_mails"] == {"sent": 0, "not_sent": 1}
    # removing an address ends its waiting confirmation; re-added the same day, it is not asked
    assert both.json["confirmation_mails"] == {"sent": 0, "not_sent": 2}
    assert again.json["confirmation_mails"] == {"sent": 0, "not_sent": 1}
