"""Which field of the FCM message carries a device's identifier: a registration token (what web
browsers' getToken() gives) in ``token``, a Firebase installation id in ``fid``. The local FCM
server rejects an identifier in the wrong field with FCM's INVALID_ARGUMENT, as FCM does."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from devstack.fcm_server import LocalFcmServer
from push365.fcm.firebase import FirebaseGateway, _to_message
from push365.fcm.model import Outcome, PushMessage, TokenKind, WebPush
from push365.subscriptions.model import subscription_id
from tests.conftest import PROJECT
from tests.integration.conftest import (
    BOB,
    ORG,
    Functions,
    dataverse,
    documents,
    register,
    send_and_deliver,
)

TOKEN = "fcm-registration-token-0001"
FID = "cS4gHnZ9TwqR2xVb8LmN0a"
PUSH = WebPush(title="Case escalated", body="CAS-1 needs you")


def test_a_subscription_records_its_kind_and_a_registration_token_goes_in_token(
    api: Functions, store: Any, fcm: LocalFcmServer
) -> None:
    key = register(api)
    api.post("/subscribe", {"user_id": BOB, "instance_id": TOKEN}, key=key)

    _, final = send_and_deliver(api, {"recipients": [BOB], "title": "t", "body": "b"}, key)
    sent = final["counts"]

    stored = documents(store, ORG, "subscriptions")[subscription_id(TOKEN)]
    assert stored["token_kind"] == "registration_token"  # the default, what browsers have
    assert sent["sent"] == 1
    (recorded,) = fcm.messages()
    assert recorded["field"] == "token"
    assert recorded["message"]["token"] == TOKEN
    assert "fid" not in recorded["message"]


def test_an_installation_id_goes_in_fid(api: Functions, store: Any, fcm: LocalFcmServer) -> None:
    key = register(api)
    fcm.register_kind(FID, "installation_id")
    body = {"user_id": BOB, "instance_id": FID, "token_kind": "installation_id"}
    assert api.post("/subscribe", body, key=key).status_code == 201

    _, final = send_and_deliver(api, {"recipients": [BOB], "title": "t", "body": "b"}, key)
    sent = final["counts"]

    assert sent["sent"] == 1
    (recorded,) = fcm.messages()
    assert recorded["field"] == "fid"
    assert recorded["message"]["fid"] == FID


def test_a_dataverse_row_may_name_its_kind(api: Functions, store: Any, fcm: LocalFcmServer) -> None:
    key = register(api)
    webhook = dataverse("subscription-create.json")
    attributes = webhook["InputParameters"][0]["value"]["Attributes"]
    attributes[1]["value"] = FID
    attributes.append({"key": "p365_tokenkind", "value": "installation_id"})

    assert api.post("/subscribe", webhook, key=key).status_code == 201

    stored = documents(store, ORG, "subscriptions")[subscription_id(FID)]
    assert stored["token_kind"] == "installation_id"


def test_a_registration_token_sent_in_the_wrong_field_fails_at_the_local_fcm_server(
    api: Functions, store: Any, fcm: LocalFcmServer
) -> None:
    """What the send path did before token kinds: every browser token sent as ``fid``. FCM
    answers INVALID_ARGUMENT "not a valid FCM registration token", and the token is retired."""
    key = register(api)
    fcm.register_kind(TOKEN, "registration_token")
    # A registration token stored as if it were an installation id: it is sent in "fid".
    body = {"user_id": BOB, "instance_id": TOKEN, "token_kind": "installation_id"}
    api.post("/subscribe", body, key=key)

    _, final = send_and_deliver(api, {"recipients": [BOB], "title": "t", "body": "b"}, key)
    sent = final["counts"]

    (recorded,) = fcm.messages()
    assert recorded["field"] == "fid"
    assert recorded["response"] == 400
    assert sent["sent"] == 0
    assert sent["removed_tokens"] == 1  # the send path retires it: the regression the issue names
    stored = documents(store, ORG, "subscriptions")[subscription_id(TOKEN)]
    assert stored["unsubscribe_reason"] == "invalid_token"


@pytest.mark.parametrize(
    ("kind", "field", "wrong"),
    [(TokenKind.REGISTRATION_TOKEN, "token", "fid"), (TokenKind.INSTALLATION_ID, "fid", "token")],
)
def test_the_local_fcm_server_answers_fcms_invalid_argument_for_the_wrong_field(
    fcm: LocalFcmServer, kind: TokenKind, field: str, wrong: str
) -> None:
    """Through firebase-admin itself: the right field is sent, the wrong one is FCM's 400."""
    from firebase_admin import messaging

    identifier = f"{kind.value}-0001"
    fcm.register_kind(identifier, kind.value)
    gateway = FirebaseGateway(PROJECT, fcm.url, http_timeout_seconds=5)
    app = gateway._get_app()

    (right,) = gateway.send_batch([PushMessage(identifier, PUSH, token_kind=kind)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        misplaced = messaging.Message(**{wrong: identifier})
    with pytest.raises(messaging.exceptions.InvalidArgumentError) as rejected:
        messaging.send(misplaced, app=app)

    assert right.outcome is Outcome.SENT
    assert [m["field"] for m in fcm.messages()] == [field, wrong]
    error = rejected.value.http_response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == "The registration token is not a valid FCM registration token"
    assert error["details"][0]["errorCode"] == "INVALID_ARGUMENT"


def test_building_a_message_silences_only_the_token_deprecation() -> None:
    from firebase_admin import messaging

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning would fail here
        token = _to_message(PushMessage(TOKEN, PUSH))
        fid = _to_message(PushMessage(FID, PUSH, token_kind=TokenKind.INSTALLATION_ID))
    with pytest.warns(DeprecationWarning, match="Message.token is deprecated"):
        messaging.Message(token=TOKEN)  # outside _to_message the SDK still warns

    assert (token.token, token.fid) == (TOKEN, None)
    assert (fid.fid, fid.token) == (FID, None)
