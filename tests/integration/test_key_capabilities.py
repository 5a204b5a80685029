"""Keys by capability: only the current key administers; the previous key, during its overlap
after a rotation, only does what a Dataverse webhook does (send, users, subscribe, unsubscribe).

The abuse: k1 leaks, the administrator rotates to k2, and the holder of k1 (still valid for its
overlap) rotates again with ``{"overlap_hours": 0}``: k2 stopped at once and k1's holder held the
organization's only key. It could also replace the administrators and erase the organization.
Each such call with the previous key is now ``403 current_key_required``, and every
administrative change is mailed to the confirmed administrators.
"""

from __future__ import annotations

from typing import Any

from push365.organizations.keys import hash_key
from tests.integration.conftest import BOB, ORG, Functions, LocalSes, registration
from tests.integration.test_mail import mail_to, register_confirmed

REFUSED = (403, "current_key_required")


def refused(answer: Any) -> tuple[int, str | None]:
    error = (answer.json or {}).get("error") or {}
    return answer.status_code, error.get("code")


def rotated(api: Functions, key: str) -> str:
    """Rotate with ``key`` (the default overlap); the new key."""
    answer = api.post("/register/rotate-key", key=key, content_type=None)
    assert answer.status_code == 200, answer.json
    return str(answer.json["api_key"])


def test_a_previous_key_cannot_rotate_revoke_or_take_the_organization_over(
    api: Functions, store: Any, ses: LocalSes
) -> None:
    leaked = register_confirmed(api, ses)
    current = rotated(api, leaked)

    takeover = api.post("/register/rotate-key", {"overlap_hours": 0}, key=leaked)
    revoke = api.post("/register/revoke-previous-key", key=leaked, content_type=None)

    assert refused(takeover) == REFUSED
    assert refused(revoke) == REFUSED
    assert "api_key" not in takeover.text
    stored = store.collection("organizations").document(ORG).get().to_dict()
    assert stored["api_key_hash"] == hash_key(current)  # the current key is still the key
    assert stored["previous_key_hash"] == hash_key(leaked)
    # the current key still administers: it ends the leaked key's overlap
    ended = api.post("/register/revoke-previous-key", key=current, content_type=None)
    assert ended.status_code == 200
    assert api.post("/register/users", {"users": [{"id": BOB}]}, key=leaked).status_code == 401


def test_a_previous_key_cannot_replace_administrators_change_rules_read_or_erase(
    api: Functions, store: Any, ses: LocalSes
) -> None:
    leaked = register_confirmed(api, ses)
    current = rotated(api, leaked)
    takeover = registration(admins=[{"full_name": "Mallory", "email": "mallory@evil.example"}])

    answers = {
        "admins": api.post("/register", takeover, key=leaked),
        "profile": api.post("/register", registration(), key=leaked),
        "rules": api.post("/register/rules", {"rules": []}, key=leaked),
        "get rules": api.get("/register/rules", key=leaked),
        "export": api.get("/privacy/export", key=leaked),
        "erase user": api.post("/privacy/erase", {"user_id": BOB}, key=leaked),
        "erase": api.post("/privacy/erase", {"organization": True}, key=leaked),
        "stats": api.get("/send/stats", key=leaked),
    }

    assert {what: refused(a) for what, a in answers.items()} == {w: REFUSED for w in answers}
    stored = store.collection("organizations").document(ORG).get().to_dict()
    assert [a["email"] for a in stored["admins"]] == ["ada@contoso.com"]
    assert "mallory@evil.example" not in repr(stored)
    assert not mail_to(ses, "administrators")  # nothing changed: nothing to announce
    assert api.get("/privacy/export", key=current).status_code == 200


def test_the_webhook_routes_keep_working_with_the_previous_key_during_its_overlap(
    api: Functions,
) -> None:
    from tests.integration.conftest import register

    previous = register(api)
    rotated(api, previous)
    device = {"user_id": BOB, "instance_id": "overlap-device"}

    users = api.post("/register/users", {"users": [{"id": BOB}]}, key=previous)
    subscribed = api.post("/subscribe", device, key=previous)
    sent = api.post("/send", {"recipients": [BOB], "title": "t", "body": "b"}, key=previous)
    status = api.get(
        "/send/status", key=previous, query={"notification_id": sent.json["notification_id"]}
    )
    unsubscribed = api.post("/unsubscribe", {"instance_id": "overlap-device"}, key=previous)

    assert users.status_code == 200
    assert subscribed.status_code == 201
    assert sent.status_code == 202, sent.json
    assert status.status_code == 200
    assert (unsubscribed.status_code, unsubscribed.json["unsubscribed"]) == (200, 1)


def test_every_administrative_change_is_mailed_to_the_confirmed_administrators(
    api: Functions, ses: LocalSes
) -> None:
    key = register_confirmed(api, ses)
    ada = registration()["admins"]

    key = rotated(api, key)
    api.post("/register/revoke-previous-key", key=key, content_type=None)
    both = [*ada, {"full_name": "Bo Admin", "email": "bo@contoso.com"}]
    replaced = api.post("/register", registration(admins=both), key=key)
    api.post("/privacy/erase", {"organization": True}, key=key)

    assert replaced.status_code == 200
    subjects = ("new API key", "previous API key was revoked", "administrators were", "erased")
    for subject in subjects:
        (mail,) = mail_to(ses, subject)
        assert mail["destinations"]["ToAddresses"] == ["ada@contoso.com"], subject
    # the new address is asked to confirm, and gets nothing else until it does
    to_bo = [m for m in ses.messages() if m["destinations"]["ToAddresses"] == ["bo@contoso.com"]]
    assert ["confirm your address" in m["subject"] for m in to_bo] == [True]
