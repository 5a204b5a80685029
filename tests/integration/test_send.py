"""``send``, ``deliver`` and ``receipt`` over the Firestore and Pub/Sub emulators, to the local FCM
v1 server: send answers 202 at once, the fan-out delivers through Pub/Sub."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from devstack.fcm_server import LocalFcmServer
from push365.subscriptions.model import subscription_id
from tests.integration.conftest import (
    ALICE,
    BOB,
    ORG,
    Answer,
    Functions,
    dataverse,
    deliver_pending,
    delivery_records,
    documents,
    register,
    send_and_deliver,
)

CAROL = "c1111111-2222-4333-8444-555555555503"


def subscribe(api: Functions, key: str, user: str, *tokens: str) -> None:
    for token in tokens:
        response = api.post("/subscribe", {"user_id": user, "instance_id": token}, key=key)
        assert response.status_code in (200, 201)


def send(api: Functions, key: str, **fields: Any) -> Any:
    """Send and deliver; the notification's final status."""
    body = {"recipients": [BOB], "title": "Case escalated", "body": "CAS-1 needs you"} | fields
    answer, status = send_and_deliver(api, body, key)
    assert answer.status_code == 202, answer.json
    return status


def post_and_deliver(api: Functions, body: Any, key: str, **options: Any) -> tuple[Answer, Any]:
    return send_and_deliver(api, body, key, **options)


def deliveries(store: Any, notification_id: str) -> dict[str, dict[str, Any]]:
    return delivery_records(store, ORG, notification_id)


def tokens_sent(fcm: LocalFcmServer) -> list[str]:
    return sorted(m["token"] for m in fcm.messages())


def test_send_reaches_every_active_device_of_the_recipients(
    api: Functions, store: Any, fcm: LocalFcmServer
) -> None:
    key = register(api)
    subscribe(api, key, BOB, "bob-laptop", "bob-phone")
    subscribe(api, key, ALICE, "alice-laptop")
    subscribe(api, key, CAROL, "carol-laptop")  # not a recipient

    answer, summary = post_and_deliver(
        api, {"recipients": [BOB, ALICE, BOB], "title": "t", "body": "b"}, key
    )

    assert answer.status_code == 202
    assert answer.json == {
        "notification_id": summary["notification_id"],
        "status": "queued",
        "recipients": 2,
        "devices": None,
    }
    assert summary["status"] == "sent"
    assert (summary["recipients"], summary["devices"], summary["pending"]) == (2, 3, 0)
    counts = summary["counts"]
    assert (counts["sent"], counts["failed"], counts["removed_tokens"]) == (3, 0, 0)
    assert (counts["batches"], counts["batches_done"], counts["resent"]) == (1, 1, 0)
    assert tokens_sent(fcm) == ["alice-laptop", "bob-laptop", "bob-phone"]
    records = deliveries(store, summary["notification_id"])
    assert len(records) == 3
    assert {r["status"] for r in records.values()} == {"sent"}
    assert all(r["message_id"].startswith("projects/") for r in records.values())


def test_the_message_is_a_web_push_with_headers_link_and_data(
    api: Functions, fcm: LocalFcmServer
) -> None:
    key = register(api)
    subscribe(api, key, BOB, "bob-laptop")

    summary = send(
        api,
        key,
        link="https://contoso.crm4.dynamics.com/main.aspx?etn=incident",
        icon="https://contoso.com/icon.png",
        data={"case": "CAS-1"},
        ttl_seconds=3600,
        urgency="high",
        collapse_key="case-1",
    )

    message = fcm.messages()[0]["message"]
    assert message["token"] == "bob-laptop"  # a registration token, in its own field
    assert message["webpush"]["notification"] == {
        "title": "Case escalated",
        "body": "CAS-1 needs you",
        "icon": "https://contoso.com/icon.png",
    }
    assert message["webpush"]["headers"] == {"TTL": "3600", "Urgency": "high", "Topic": "case-1"}
    assert message["webpush"]["fcm_options"] == {
        "link": "https://contoso.crm4.dynamics.com/main.aspx?etn=incident"
    }
    data = message["data"]
    assert data["case"] == "CAS-1"
    assert data["notification_id"] == summary["notification_id"]
    assert data["receipt"].startswith(f"{ORG}.{summary['notification_id']}.")


def test_only_active_subscriptions_are_sent_to(api: Functions, fcm: LocalFcmServer) -> None:
    key = register(api)
    subscribe(api, key, BOB, "bob-laptop", "bob-old")
    api.post("/unsubscribe", {"instance_id": "bob-old"}, key=key)

    summary = send(api, key)

    assert (summary["devices"], summary["counts"]["sent"]) == (1, 1)
    assert tokens_sent(fcm) == ["bob-laptop"]


def test_a_recipient_without_devices_is_counted_and_nothing_sent(
    api: Functions, fcm: LocalFcmServer
) -> None:
    key = register(api)

    summary = send(api, key)

    assert (summary["recipients"], summary["devices"], summary["counts"]["sent"]) == (1, 0, 0)
    assert summary["status"] == "sent"
    assert fcm.messages() == []


def test_dataverse_notification_row_is_sent_to_its_recipients(
    api: Functions, fcm: LocalFcmServer
) -> None:
    key = register(api)
    subscribe(api, key, ALICE, "alice-laptop")
    subscribe(api, key, BOB, "bob-laptop")

    response, summary = post_and_deliver(api, dataverse("notification-create.json"), key)

    assert response.status_code == 202
    assert summary["counts"]["sent"] == 2
    message = fcm.messages()[0]["message"]
    assert message["webpush"]["notification"]["title"] == "Case escalated"
    # The notification id as the web push Topic: a re-sent message replaces the first.
    nid = response.json["notification_id"]
    assert message["webpush"]["headers"] == {"TTL": "3600", "Urgency": "high", "Topic": nid}
    assert message["webpush"]["fcm_options"]["link"].startswith(
        "https://contoso.crm4.dynamics.com/"
    )


def test_dataverse_notification_row_without_recipients_goes_to_its_owner(
    api: Functions, fcm: LocalFcmServer
) -> None:
    key = register(api)
    subscribe(api, key, ALICE, "alice-laptop")
    subscribe(api, key, BOB, "bob-laptop")
    body = dataverse("notification-create.json")
    attributes = body["InputParameters"][0]["value"]["Attributes"]
    next(a for a in attributes if a["key"] == "p365_recipients")["value"] = ""

    response, _ = post_and_deliver(api, body, key)

    assert response.json["recipients"] == 1
    assert tokens_sent(fcm) == ["alice-laptop"]  # ownerid is Alice


RULES = {
    "rules": [
        {
            "table": "opportunity",
            "message": "Update",
            "recipients": ["ownerid"],
            "title": "{name} is {statuscode}",
            "body": "Worth {estimatedvalue}, owner {ownerid}, changed by {modifiedby}{missing}",
            "link": "record",
        }
    ]
}


def test_rules_turn_any_dataverse_event_into_a_notification(
    api: Functions, fcm: LocalFcmServer
) -> None:
    key = register(api)
    subscribe(api, key, BOB, "bob-laptop")
    assert api.post("/register/rules", RULES, key=key).json == {"rules": 1}

    response, summary = post_and_deliver(
        api,
        dataverse("opportunity-update.json"),
        key,
        headers={"x-ms-dynamics-organization": "contoso.crm4.dynamics.com"},
    )

    assert response.status_code == 202
    assert summary["counts"]["sent"] == 1
    message = fcm.messages()[0]["message"]
    assert message["token"] == "bob-laptop"  # ownerid in the Target: Bob
    assert message["webpush"]["notification"]["title"] == "Fabrikam renewal 2026 is In Progress"
    assert message["webpush"]["notification"]["body"] == (
        "Worth $125,000.00, owner Bob Stone, changed by a1111111-2222-4333-8444-555555555501"
    )
    assert message["webpush"]["fcm_options"]["link"] == (
        "https://contoso.crm4.dynamics.com/main.aspx?etn=opportunity"
        "&id=0dd00000-0000-4000-8000-000000000042&pagetype=entityrecord"
    )


def test_rules_can_be_read_back(api: Functions) -> None:
    key = register(api)
    api.post("/register/rules", RULES, key=key)

    response = api.request("GET", "/register/rules", key=key)

    assert response.json["rules"][0]["table"] == "opportunity"
    assert response.json["rules"][0]["message"] == "update"


def test_an_event_no_rule_matches_sends_nothing(api: Functions, fcm: LocalFcmServer) -> None:
    key = register(api)
    subscribe(api, key, BOB, "bob-laptop")

    response, _ = post_and_deliver(api, dataverse("opportunity-update.json"), key)

    assert response.status_code == 200
    assert response.json == {
        "matched": False,
        "reason": "No rule names this table and message.",
        "reason_code": "no_rule",
    }
    assert fcm.messages() == []


def test_every_fcm_error_class_is_retried_or_recorded_without_sleeping_in_a_request(
    api: Functions, store: Any, fcm: LocalFcmServer
) -> None:
    key = register(api)
    tokens = [
        "ok-1",
        "unregistered-1",
        "invalid-1",
        "quota-1",
        "unavailable-1",
        "internal-1",
        "flaky-1",
    ]
    subscribe(api, key, BOB, *tokens)

    summary = send(api, key)

    assert summary["devices"] == 7
    counts = summary["counts"]
    assert counts["sent"] == 2  # ok-1, and flaky-1 when its batch came back
    assert counts["failed"] == 5  # the transient ones after the retry horizon
    assert counts["removed_tokens"] == 2
    records = deliveries(store, summary["notification_id"])
    by_token = {t: records[subscription_id(t)[:32]] for t in tokens}
    assert {t: r["error"] for t, r in by_token.items()} == {
        "ok-1": None,
        "flaky-1": None,
        "unregistered-1": "unregistered",
        "invalid-1": "invalid_token",
        "quota-1": "quota_exceeded",
        "unavailable-1": "unavailable",
        "internal-1": "internal",
    }
    sent_to = tokens_sent(fcm)
    assert sent_to.count("ok-1") == 1  # never again because another message failed
    assert sent_to.count("flaky-1") == 2  # 503, then 200
    assert sent_to.count("unregistered-1") == 1  # never retried
    assert sent_to.count("quota-1") >= 2  # retried after its Retry-After
    subscriptions = documents(store, ORG, "subscriptions")
    assert subscriptions[subscription_id("unregistered-1")]["unsubscribe_reason"] == "unregistered"
    assert subscriptions[subscription_id("invalid-1")]["unsubscribe_reason"] == "invalid_token"
    assert subscriptions[subscription_id("quota-1")]["status"] == "active"


def test_retired_tokens_are_never_sent_to_again(api: Functions, fcm: LocalFcmServer) -> None:
    key = register(api)
    subscribe(api, key, BOB, "ok-1", "unregistered-1")
    send(api, key)
    fcm.clear()

    summary = send(api, key)

    assert tokens_sent(fcm) == ["ok-1"]
    assert summary["devices"] == 1


def test_a_replay_answers_the_original_summary_and_sends_nothing(
    api: Functions, fcm: LocalFcmServer
) -> None:
    key = register(api)
    subscribe(api, key, BOB, "bob-laptop")
    first, _ = post_and_deliver(
        api,
        {"recipients": [BOB], "title": "t", "body": "b"},
        key,
        headers={"Idempotency-Key": "case-1-escalated"},
    )

    again = api.post(
        "/send",
        {"recipients": [BOB], "title": "t", "body": "b"},
        key=key,
        headers={"Idempotency-Key": "case-1-escalated"},
    )
    other = api.post(
        "/send",
        {"recipients": [BOB], "title": "t", "body": "b"},
        key=key,
        headers={"Idempotency-Key": "case-2-escalated"},
    )

    deliver_pending(api)

    assert again.status_code == 202
    assert again.json["notification_id"] == first.json["notification_id"]
    assert again.json["status"] == "sent"
    assert other.json["notification_id"] != first.json["notification_id"]
    assert tokens_sent(fcm) == ["bob-laptop", "bob-laptop"]  # first and other, not again


def test_the_same_dataverse_operation_is_sent_once(api: Functions, fcm: LocalFcmServer) -> None:
    key = register(api)
    subscribe(api, key, ALICE, "alice-laptop")
    subscribe(api, key, BOB, "bob-laptop")

    first = api.post("/send", dataverse("notification-create.json"), key=key)
    again = api.post("/send", dataverse("notification-create.json"), key=key)
    other_step = dataverse("notification-create.json")
    other_step["OwningExtension"]["Id"] = "11111111-0000-4000-8000-000000000000"
    third = api.post("/send", other_step, key=key)
    deliver_pending(api)

    assert again.json == first.json
    assert third.json["notification_id"] != first.json["notification_id"]
    assert len(fcm.messages()) == 4


def test_a_replay_after_a_partial_failure_answers_the_same_counts_and_sends_nothing(
    api: Functions, store: Any, fcm: LocalFcmServer
) -> None:
    key = register(api)
    subscribe(api, key, BOB, "ok-1", "internal-1", "unregistered-1")
    headers = {"Idempotency-Key": "partial"}
    body = {"recipients": [BOB], "title": "t", "body": "b"}
    first, summary = post_and_deliver(api, body, key, headers=headers)
    assert (summary["counts"]["sent"], summary["counts"]["failed"]) == (1, 2)
    fcm.clear()

    again, replayed = post_and_deliver(api, body, key, headers=headers)

    assert fcm.messages() == []  # the failed devices had their retries; no second plan
    assert again.json["notification_id"] == first.json["notification_id"]
    assert replayed["counts"] == summary["counts"]  # retired tokens do not change the answer


def test_two_identical_requests_at_the_same_moment_send_once(
    api: Functions, fcm: LocalFcmServer
) -> None:
    key = register(api)
    subscribe(api, key, BOB, "bob-laptop", "bob-phone")
    barrier = threading.Barrier(2)
    answers: list[Any] = []

    def post() -> None:
        barrier.wait()
        answers.append(
            api.post(
                "/send",
                {"recipients": [BOB], "title": "t", "body": "b"},
                key=key,
                headers={"Idempotency-Key": "same-moment"},
            ).json
        )

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deliver_pending(api)

    assert answers[0]["notification_id"] == answers[1]["notification_id"]
    assert tokens_sent(fcm) == ["bob-laptop", "bob-phone"]


def test_receipt_sets_delivered_at_once(api: Functions, store: Any, fcm: LocalFcmServer) -> None:
    key = register(api)
    subscribe(api, key, BOB, "bob-laptop")
    summary = send(api, key)
    receipt = fcm.messages()[0]["message"]["data"]["receipt"]

    first = api.post("/receipt", {"receipt": receipt})
    delivered = deliveries(store, summary["notification_id"])[subscription_id("bob-laptop")[:32]]
    again = api.post("/receipt", {"receipt": receipt})

    assert (first.status_code, again.status_code) == (204, 204)
    assert first.headers["Access-Control-Allow-Origin"] == "*"
    assert delivered["delivered_at"] is not None
    later = deliveries(store, summary["notification_id"])[subscription_id("bob-laptop")[:32]]
    assert later["delivered_at"] == delivered["delivered_at"]


@pytest.mark.parametrize("stored_as", ["map", "unreadable"])
def test_a_receipt_of_a_batch_stored_before_the_hashes_were_text(
    api: Functions, store: Any, fcm: LocalFcmServer, stored_as: str
) -> None:
    # Arrange: the batch's receipt hashes as batches stored them before (a map), or garbage
    key = register(api)
    subscribe(api, key, BOB, "bob-laptop")
    summary = send(api, key)
    receipt = fcm.messages()[0]["message"]["data"]["receipt"]
    nid = summary["notification_id"]
    (batch,) = [
        b
        for b in store.collection_group("batches").stream()
        if b.id != "plan" and b.reference.parent.parent.id == nid
    ]
    hashes = json.loads(batch.get("receipt_hashes"))
    batch.reference.update({"receipt_hashes": hashes if stored_as == "map" else [1, 2]})

    # Act
    response = api.post("/receipt", {"receipt": receipt})

    # Assert: the map's hash still matches; what is neither text nor a map matches nothing
    receipts = batch.reference.parent.parent.collection("receipts")
    confirmed = receipts.document(subscription_id("bob-laptop")[:32]).get()
    assert response.status_code == (204 if stored_as == "map" else 404)
    assert confirmed.exists is (stored_as == "map")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: r[:-4] + "AAAA",  # wrong secret
        lambda r: r.replace(r.split(".")[3], "0" * 32),  # another device
        lambda r: r.replace(r.split(".")[2], "00001"),  # another batch
        lambda r: "not-a-receipt",
        lambda r: r.split(".")[0],
    ],
)
def test_an_unknown_receipt_is_404(api: Functions, fcm: LocalFcmServer, tamper: Any) -> None:
    key = register(api)
    subscribe(api, key, BOB, "bob-laptop")
    send(api, key)
    receipt = fcm.messages()[0]["message"]["data"]["receipt"]

    response = api.post("/receipt", {"receipt": tamper(receipt)})

    assert response.status_code == 404
    assert response.json["error"]["code"] == "unknown_receipt"


def test_receipt_answers_a_browser_preflight(api: Functions) -> None:
    response = api.request("OPTIONS", "/receipt", content_type=None)

    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Methods"] == "POST"


def test_a_message_over_fcms_limit_is_refused_before_anything_is_stored_or_sent(
    api: Functions, store: Any, fcm: LocalFcmServer
) -> None:
    key = register(api)
    subscribe(api, key, BOB, "bob-laptop")

    body = {"recipients": [BOB], "title": "t", "body": "x" * 3000, "data": {"more": "y" * 1000}}
    response, _ = post_and_deliver(api, body, key)

    assert response.status_code == 413
    assert response.json["error"]["code"] == "message_too_large"
    assert documents(store, ORG, "notifications") == {}
    assert fcm.messages() == []


def test_sending_to_1100_devices_goes_out_in_batches_of_at_most_500(
    api: Functions, store: Any, fcm: LocalFcmServer
) -> None:
    key = register(api)
    batch = store.batch()
    for n in range(1100):
        token = f"bulk-{n}"
        ref = store.collection("organizations", ORG, "subscriptions").document(
            subscription_id(token)
        )
        batch.set(ref, {"id": ref.id, "instance_id": token, "user_id": BOB, "status": "active"})
        if n % 499 == 498:
            batch.commit()
            batch = store.batch()
    batch.commit()

    summary = send(api, key)

    assert (summary["devices"], summary["counts"]["sent"]) == (1100, 1100), summary["counts"]
    assert (summary["counts"]["batches"], summary["counts"]["batches_done"]) == (3, 3)
    sent_to = tokens_sent(fcm)
    assert len(sent_to) == len(set(sent_to)) == 1100
