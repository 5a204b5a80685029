"""``GET /send/stats`` after a scripted day: sends through the fan-out to the local FCM server,
failures, receipts and an unsubscribe; its numbers equal counts computed from the stored records
in the same test."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from devstack.fcm_server import LocalFcmServer
from tests.integration.conftest import (
    ALICE,
    BOB,
    ORG,
    Functions,
    delivery_records,
    documents,
    register,
    send_and_deliver,
)

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
