"""The privacy promises that need the whole path (send -> Pub/Sub -> deliver -> FCM, and mail):
P3 (sharing: Firebase gets tokens and content, no user id; Amazon SES gets administrators'
addresses, never a key) and P11 (two organizations sharing a user id: a send reaches only its
own organization's devices). The fast proofs of every promise are in ``tests/privacy/``."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import (
    BOB,
    OTHER_ORG,
    Functions,
    LocalSes,
    register,
    send_and_deliver,
)


def test_a_send_reaches_only_its_own_organizations_devices_of_a_shared_user_id(
    api: Functions, fcm: Any
) -> None:
    key, other_key = register(api), register(api, OTHER_ORG)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "bob-at-org"}, key=key)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "bob-at-other"}, key=other_key)

    _, status = send_and_deliver(api, {"recipients": [BOB], "title": "t", "body": "b"}, key)

    assert status["counts"]["sent"] == 1
    assert [m["token"] for m in fcm.messages()] == ["bob-at-org"]


def test_fcm_is_sent_no_user_id_in_the_message_data(api: Functions, fcm: Any) -> None:
    key = register(api)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=key)

    send_and_deliver(api, {"recipients": [BOB], "title": "t", "body": "b", "data": {}}, key)

    (message,) = fcm.messages()
    data = message["message"].get("data", {})
    assert set(data) <= {"notification_id", "receipt", "receipt_url"}
    assert BOB not in repr(data)


def test_amazon_ses_is_given_only_the_administrators_addresses_and_never_the_key(
    api: Functions, ses: LocalSes
) -> None:
    key = register(api)

    mails = ses.messages()

    assert mails
    for mail in mails:
        assert mail["destinations"]["ToAddresses"] == ["ada@contoso.com"]
        assert key not in repr(mail)
        assert key.rsplit(".", 1)[-1] not in repr(mail)
