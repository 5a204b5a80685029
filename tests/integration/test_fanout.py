"""Faults of the fan-out through the real Pub/Sub emulator, counted at the local FCM server:
each device receives a notification exactly once."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.fcm_server import LocalFcmServer
from push365 import bootstrap
from push365.errors import StoreUnavailable
from push365.fanout.events import DEAD_LETTER_ATTRIBUTE, RETRY, answer
from push365.fanout.model import FanoutMessage
from push365.fanout.repository import FirestoreFanoutRepository
from push365.store import firestore_client
from tests.integration.conftest import (
    BOB,
    ORG,
    Fanout,
    Functions,
    dataverse,
    register,
    send_and_deliver,
)


def subscribe(api: Functions, key: str, *tokens: str, user: str = BOB) -> None:
    for token in tokens:
        response = api.post("/subscribe", {"user_id": user, "instance_id": token}, key=key)
        assert response.status_code in (200, 201)


def received(fcm: LocalFcmServer) -> Counter[str]:
    """How many messages each token's device was sent (what reached FCM)."""
    return Counter(m["token"] for m in fcm.messages())


def status(api: Functions, key: str, nid: str) -> Any:
    return api.get("/send/status", key=key, query={"notification_id": nid}).json


def pull_one(queue: Fanout) -> dict[str, Any]:
    """Take one message off the fan-out subscription without handling it."""
    answer = queue._call(f"subscriptions/{queue.topology.subscription}:pull", maxMessages=1)
    (item,) = answer["receivedMessages"]
    queue._call(f"subscriptions/{queue.topology.subscription}:acknowledge", ackIds=[item["ackId"]])
    return dict(item["message"])


def push(api: Functions, queue: Fanout, message: dict[str, Any]) -> int:
    subscription = f"projects/{queue.topology.project}/subscriptions/{queue.topology.subscription}"
    return api.push("deliver", {"message": message, "subscription": subscription})


def test_a_redelivered_batch_sends_nothing_twice(
    api: Functions, queue: Fanout, fcm: LocalFcmServer
) -> None:
    key = register(api)
    tokens = [f"dev-{n}" for n in range(20)]
    subscribe(api, key, *tokens)
    accepted = api.post("/send", {"recipients": [BOB], "title": "t", "body": "b"}, key=key)
    assert push(api, queue, pull_one(queue)) == 200  # the plan
    batch = pull_one(queue)

    answers = [push(api, queue, batch) for _ in range(3)]  # Pub/Sub delivers it three times

    assert answers == [200, 200, 200]
    assert received(fcm) == Counter({t: 1 for t in tokens})
    final = status(api, key, accepted.json["notification_id"])
    assert (final["status"], final["counts"]["sent"], final["counts"]["resent"]) == ("sent", 20, 0)


def test_the_status_says_when_the_last_batch_finished(api: Functions, queue: Fanout) -> None:
    key = register(api)
    subscribe(api, key, "dev-1", "dev-2")
    accepted = api.post("/send", {"recipients": [BOB], "title": "t", "body": "b"}, key=key)
    nid = accepted.json["notification_id"]
    assert push(api, queue, pull_one(queue)) == 200  # the plan
    batch = pull_one(queue)
    delivering = status(api, key, nid)

    assert push(api, queue, batch) == 200
    sent = status(api, key, nid)

    assert (delivering["status"], delivering["completed_at"]) == ("delivering", None)
    assert sent["status"] == "sent"
    assert sent["completed_at"] is not None
    created = datetime.fromisoformat(sent["created_at"])
    assert created <= datetime.fromisoformat(sent["completed_at"]) <= datetime.now(UTC)


def test_an_unsubscribe_during_a_send_is_honoured(
    api: Functions, queue: Fanout, fcm: LocalFcmServer
) -> None:
    key = register(api)
    subscribe(api, key, "stays", "leaves")
    accepted = api.post("/send", {"recipients": [BOB], "title": "t", "body": "b"}, key=key)
    assert push(api, queue, pull_one(queue)) == 200  # planned with both devices

    api.post("/unsubscribe", {"instance_id": "leaves"}, key=key)
    queue.deliver()

    assert received(fcm) == Counter({"stays": 1})
    final = status(api, key, accepted.json["notification_id"])
    assert (final["devices"], final["counts"]["sent"], final["counts"]["skipped"]) == (2, 1, 1)
    assert final["pending"] == 0


def test_a_failure_mid_batch_never_resends_what_fcm_accepted(
    api: Functions, fcm: LocalFcmServer
) -> None:
    key = register(api)
    good = [f"dev-{n}" for n in range(30)]
    # A 401, a 500 that comes back, a 503 the first time: none makes FCM get a second copy of
    # the messages it accepted.
    subscribe(api, key, *good[:10], "thirdparty-1", *good[10:20], "flaky-1", *good[20:])

    _, final = send_and_deliver(api, {"recipients": [BOB], "title": "t", "body": "b"}, key)

    counts = received(fcm)
    assert all(counts[t] == 1 for t in good)
    assert counts["thirdparty-1"] == 1  # an auth error is final
    assert counts["flaky-1"] == 2  # 503, then 200
    assert (final["counts"]["sent"], final["counts"]["failed"]) == (31, 1)
    assert final["counts"]["resent"] == 0


def test_a_replay_of_the_dataverse_body_while_delivering_sends_once(
    api: Functions, queue: Fanout, fcm: LocalFcmServer
) -> None:
    key = register(api)
    subscribe(api, key, "alice-laptop", user="a1111111-2222-4333-8444-555555555501")
    subscribe(api, key, "bob-laptop")
    body = dataverse("notification-create.json")
    first = api.post("/send", body, key=key)
    assert push(api, queue, pull_one(queue)) == 200  # planned; the batch is on its way

    again = api.post("/send", body, key=key)  # Dataverse retries the identical body
    queue.deliver()

    assert again.status_code == 202
    assert again.json["notification_id"] == first.json["notification_id"]
    assert received(fcm) == Counter({"alice-laptop": 1, "bob-laptop": 1})


def test_a_message_that_is_not_a_fan_out_message_is_dead_lettered_and_counted(
    api: Functions, queue: Fanout, capsys: Any
) -> None:
    garbage = base64.b64encode(json.dumps({"title": "CANARY-secret"}).encode()).decode()
    queue._call(f"topics/{queue.topology.topic}:publish", messages=[{"data": garbage}])

    queue.deliver(quiet=2.5)

    assert queue.pushed.count(400) == queue.topology.max_delivery_attempts
    assert queue.pushed[-1] == 200  # its dead-letter copy, acknowledged and logged
    logged = capsys.readouterr().out
    records = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    dead = [r for r in records if r.get("function") == "deliver" and r.get("status") == 200]
    assert dead[-1]["fault"]["code"] == "invalid_message"
    assert "CANARY" not in logged
    assert ORG not in logged


def test_what_deliver_does_not_take_is_answered_in_json_without_echoing_it(api: Functions) -> None:
    canary = base64.b64encode(json.dumps({"title": "CANARY-secret"}).encode()).decode()
    subscription = "projects/p/subscriptions/s"

    message = {"data": canary, "messageId": "1", "publishTime": "2026-11-29T00:00:00Z"}
    refused = api.push_answer("deliver", {"message": message, "subscription": subscription})
    unreadable = api.push_answer("deliver", {"message": {"data": canary}})  # not Pub/Sub's
    wrong_method = api.get("/deliver/")

    assert refused.status_code == 400
    assert refused.json == {
        "error": {"code": "invalid_message", "message": "Not a fan-out message."}
    }
    assert "CANARY" not in refused.text
    assert unreadable.status_code == 400  # not a push body: refused before it is read
    assert unreadable.json == refused.json
    assert wrong_method.status_code == 405
    assert wrong_method.json is not None
    assert wrong_method.json["error"] == {
        "code": "method_not_allowed",
        "message": "Allowed methods: POST.",  # names its method
    }
    assert wrong_method.headers["Allow"] == "POST"


def test_every_answer_deliver_gives_but_its_ack_is_an_error_of_the_table() -> None:
    assert answer(RETRY) == {
        "error": {"code": "redeliver", "message": "Deliver this message again after the backoff."}
    }
    assert answer(500)["error"]["code"] == "internal"


class EndOfPlanFailsOnce(FirestoreFanoutRepository):
    """The real fan-out store, whose first end-of-planning write does not go through."""

    failed = False

    def end_plan(self, *args: Any, **kwargs: Any) -> None:
        if not self.failed:
            self.failed = True
            raise StoreUnavailable()
        super().end_plan(*args, **kwargs)


def test_a_failed_end_of_planning_write_and_a_late_dead_letter_copy_leave_the_send_sent(
    api: Functions, queue: Fanout, fcm: LocalFcmServer
) -> None:
    key = register(api)
    tokens = [f"dev-{n:03d}" for n in range(600)]  # two batches
    subscribe(api, key, *tokens)
    nid = api.post("/send", {"recipients": [BOB], "title": "t", "body": "b"}, key=key).json[
        "notification_id"
    ]
    plan = pull_one(queue)
    failing = bootstrap.delivery_worker_over(
        EndOfPlanFailsOnce(firestore_client(), 5.0), lease=timedelta(seconds=1)
    )

    # Both batches stored and published, then the plan's last write fails: deliver answers 503.
    with pytest.raises(StoreUnavailable):
        failing.handle(FanoutMessage.decode(base64.b64decode(plan["data"])))
    time.sleep(1.5)  # its lease runs out before Pub/Sub's redelivery
    assert push(api, queue, plan) == 200  # which ends the plan
    queue.deliver(until=lambda: status(api, key, nid)["status"] == "sent")
    dead = {**plan, "attributes": {**plan.get("attributes", {}), DEAD_LETTER_ATTRIBUTE: "x"}}
    subscription = (
        f"projects/{queue.topology.project}/subscriptions/{queue.topology.dead_letter_subscription}"
    )
    late = api.push("deliver", {"message": dead, "subscription": subscription})

    final = status(api, key, nid)
    assert late == 200
    assert received(fcm) == Counter({t: 1 for t in tokens})
    assert (final["status"], final["devices"], final["pending"]) == ("sent", 600, 0)
    counts = final["counts"]
    assert (counts["sent"], counts["failed"], counts["dead_lettered"]) == (600, 0, 0)
    assert (counts["batches"], counts["batches_done"]) == (2, 2)
    assert final["completed_at"] is not None
