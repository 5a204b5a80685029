"""``GET /send/stats`` after a scripted day: sends through the fan-out to the local FCM server,
failures, receipts and an unsubscribe; its numbers equal counts computed from the stored records
in the same test."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.fcm_server import LocalFcmServer
from push365.fanout.model import BatchState
from push365.fanout.repository import FirestoreFanoutRepository, LeaseLost
from push365.notifications.deliveries import Delivery
from push365.notifications.receipts import device_id
from tests.integration.conftest import (
    ALICE,
    BOB,
    ORG,
    OTHER_ORG,
    Fanout,
    Functions,
    delivery_records,
    documents,
    register,
    send_and_deliver,
)
from tests.integration.test_fanout import pull_one, push

pytestmark = pytest.mark.emulator

CAROL = "c1111111-2222-4333-8444-555555555503"


def _subscribe(api: Functions, key: str, user: str, token: str) -> None:
    answer = api.post("/subscribe", {"user_id": user, "instance_id": token}, key=key)
    assert answer.status_code in (200, 201)


def _counted_from_records(store: Any) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    notifications = documents(store, ORG, "notifications")
    deliveries = [
        record for nid in notifications for record in delivery_records(store, ORG, nid).values()
    ]
    subscriptions = documents(store, ORG, "subscriptions").values()
    delivered = [d for d in deliveries if d["delivered_at"] is not None]
    return {
        "date": today.isoformat(),
        "subscriptions_active": sum(1 for s in subscriptions if s["status"] == "active"),
        "subscriptions_new": sum(1 for s in subscriptions if s["created_at"].date() == today),
        "notifications": len(notifications),
        "devices_sent": sum(1 for d in deliveries if d["status"] == "sent"),
        "failed": sum(1 for d in deliveries if d["status"] == "failed"),
        "failed_by_reason": dict(
            Counter(d["error"] for d in deliveries if d["status"] == "failed")
        ),
        "delivered": len(delivered),
        "median_seconds_to_delivery": round(
            statistics.median(
                (d["delivered_at"] - d["sent_at"]).total_seconds() for d in delivered
            ),
            3,
        ),
    }


def test_the_report_counts_a_day_of_sends_failures_and_receipts(
    api: Functions, store: Any, fcm: LocalFcmServer
) -> None:
    key = register(api)
    _subscribe(api, key, BOB, "bob-laptop")
    _subscribe(api, key, BOB, "bob-phone")
    _subscribe(api, key, ALICE, "alice-laptop")
    _subscribe(api, key, ALICE, "alice-tablet")
    _subscribe(api, key, CAROL, "unregistered-carol-old-browser")  # FCM: 404 UNREGISTERED
    _subscribe(api, key, CAROL, "carol-laptop")
    assert api.post("/unsubscribe", {"instance_id": "alice-tablet"}, key=key).status_code == 200

    for title in ("Case escalated", "Quote approved", "Meeting moved"):
        answer, status = send_and_deliver(
            api, {"recipients": [BOB, ALICE, CAROL], "title": title, "body": "b"}, key
        )
        assert answer.status_code == 202
        assert status["status"] == "sent"
    receipts = [
        m["message"]["data"]["receipt"] for m in fcm.messages() if "receipt" in m["message"]["data"]
    ]
    for receipt in receipts[::2]:  # every other browser showed its notification
        assert api.post("/receipt", {"receipt": receipt}).status_code == 204

    answer = api.get("/send/stats", key=key, query={"days": "1"})

    assert answer.status_code == 200, answer.json
    (today,) = answer.json["per_day"]
    counted = _counted_from_records(store)
    # the median from the day's histogram: within its documented precision (push365.daily)
    exact = counted.pop("median_seconds_to_delivery")
    assert today.pop("median_seconds_to_delivery") == pytest.approx(exact, rel=0.05, abs=0.05)
    assert today == counted
    assert today["failed_by_reason"] == {"unregistered": 1}  # then retired: sent to once
    assert today["notifications"] == 3
    assert today["devices_sent"] == 3 * 4
    assert today["delivered"] == len(receipts[::2])
    assert answer.json["days"] == 1
    text = answer.text
    for secret in ("Case escalated", "bob-laptop", BOB, "receipt"):
        assert secret not in text  # counts only: no content, token or user


@pytest.mark.parametrize("days", ["0", "91", "seven", "-1"])
def test_days_outside_1_to_90_are_422(api: Functions, days: str) -> None:
    key = register(api)
    answer = api.get("/send/stats", key=key, query={"days": days})
    assert answer.status_code == 422
    assert days not in answer.text or days == "0"


def test_the_report_needs_the_organizations_key(api: Functions) -> None:
    register(api)
    assert api.get("/send/stats", query={"days": "7"}).status_code == 401


def test_browsers_on_dynamics_origin_may_read_the_report_with_the_key(api: Functions) -> None:
    key = register(api)
    preflight = api.request("OPTIONS", "/send/stats", content_type=None)
    answer = api.get("/send/stats", key=key, query={"days": "1"})
    refused = api.get("/send/stats", query={"days": "1"})
    send_preflight = api.request("OPTIONS", "/send", content_type=None)

    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET"
    assert preflight.headers["Access-Control-Allow-Headers"] == "X-Push365-Key"
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == "*"  # the page can say why
    assert "Access-Control-Allow-Origin" not in send_preflight.headers  # only the report


def _today(api: Functions, key: str) -> dict[str, Any]:
    answer = api.get("/send/stats", key=key, query={"days": "1"})
    assert answer.status_code == 200, answer.json
    (today,) = answer.json["per_day"]
    return dict(today)


def test_a_redelivered_batch_and_a_repeated_receipt_are_counted_once(
    api: Functions, queue: Fanout, fcm: LocalFcmServer
) -> None:
    key = register(api)
    for token in ("bob-1", "bob-2", "bob-3"):
        _subscribe(api, key, BOB, token)
    api.post("/send", {"recipients": [BOB], "title": "t", "body": "b"}, key=key)
    assert push(api, queue, pull_one(queue)) == 200  # the plan
    batch = pull_one(queue)

    answers = [push(api, queue, batch) for _ in range(3)]  # Pub/Sub delivers it three times
    (receipt, *_) = [m["message"]["data"]["receipt"] for m in fcm.messages()]
    confirmations = [api.post("/receipt", {"receipt": receipt}).status_code for _ in range(3)]

    assert answers == [200, 200, 200]
    assert confirmations == [204, 204, 204]
    today = _today(api, key)
    assert (today["notifications"], today["devices_sent"], today["delivered"]) == (1, 3, 1)


def _taken(fanout: FirestoreFanoutRepository, nid: str, now: datetime) -> BatchState:
    state = fanout.take(ORG, nid, 0, now, now + timedelta(seconds=30))
    assert isinstance(state, BatchState)
    return state


def _all_sent(state: BatchState, now: datetime) -> list[Delivery]:
    return [Delivery(device_id(s), BOB, "sent", f"m-{s[:8]}", None, now, "") for s in state.devices]


def test_a_worker_that_lost_its_batch_counts_nothing(
    api: Functions, queue: Fanout, store: Any
) -> None:
    key = register(api)
    for token in ("bob-1", "bob-2"):
        _subscribe(api, key, BOB, token)
    nid = api.post("/send", {"recipients": [BOB], "title": "t", "body": "b"}, key=key).json[
        "notification_id"
    ]
    assert push(api, queue, pull_one(queue)) == 200  # the plan; the batch message stays queued
    fanout = FirestoreFanoutRepository(store)
    now = datetime.now(UTC)
    first = _taken(fanout, nid, now)
    second = _taken(fanout, nid, now + timedelta(minutes=1))  # the first's lease ran out

    with pytest.raises(LeaseLost):
        fanout.finish(first, _all_sent(first, now))
    after_lost = _today(api, key)["devices_sent"]
    fanout.finish(second, _all_sent(second, now))

    assert after_lost == 0
    assert _today(api, key)["devices_sent"] == 2


def test_the_report_counts_its_own_organization_only(api: Functions, fcm: LocalFcmServer) -> None:
    key = register(api)
    other = register(api, OTHER_ORG)
    _subscribe(api, key, BOB, "bob-at-org")
    _subscribe(api, other, BOB, "bob-at-other")
    _subscribe(api, other, ALICE, "alice-at-other")
    send_and_deliver(api, {"recipients": [BOB], "title": "t", "body": "b"}, key)
    for _ in range(2):
        send_and_deliver(api, {"recipients": [BOB, ALICE], "title": "t", "body": "b"}, other)

    mine, theirs = _today(api, key), _today(api, other)

    assert (mine["notifications"], mine["devices_sent"], mine["subscriptions_active"]) == (1, 1, 1)
    assert (theirs["notifications"], theirs["devices_sent"]) == (2, 4)
    assert (theirs["subscriptions_active"], theirs["subscriptions_new"]) == (2, 2)
