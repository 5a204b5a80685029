"""The reconciler on the real emulators: a batch message lost on the way (acknowledged and never
handled, as a recreated subscription loses it) is counted stalled while a message may still come,
then given up once none can: the send ends ``sent`` with its devices failed ``lost``; nothing is
sent. The function answers its counts to its scheduler's caller."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from devstack.fcm_server import LocalFcmServer
from push365 import bootstrap
from push365.fanout.reconciler import LOST, ReconcilePolicy, Reconciler
from push365.fanout.repository import FirestoreFanoutRepository
from push365.model import utc_now
from push365.notifications.deliveries import RECORDS, decode_records
from push365.store import BATCHES, NOTIFICATIONS, ORGANIZATIONS, firestore_client
from tests.conftest import TEST_ADMIN_KEY
from tests.integration.conftest import BOB, ORG, Fanout, Functions, register
from tests.integration.test_fanout import pull_one, push, status, subscribe

POLICY = ReconcilePolicy(
    stall=timedelta(seconds=120),
    message_retention=timedelta(hours=2),
    lookback=timedelta(days=1),
)


def reconciler_at(later: timedelta) -> Reconciler:
    return Reconciler(
        FirestoreFanoutRepository(firestore_client(), 8.0),
        bootstrap.delivery_worker(),
        POLICY,
        clock=lambda: utc_now() + later,
    )


def test_a_lost_batch_message_is_given_up_once_no_message_can_come(
    api: Functions, queue: Fanout, fcm: LocalFcmServer
) -> None:
    key = register(api)
    tokens = [f"dev-{n}" for n in range(5)]
    subscribe(api, key, *tokens)
    nid = api.post("/send", {"recipients": [BOB], "title": "t", "body": "b"}, key=key).json[
        "notification_id"
    ]
    assert push(api, queue, pull_one(queue)) == 200  # the plan
    pull_one(queue)  # its batch message: acknowledged, never handled (lost)

    early = reconciler_at(timedelta(minutes=10)).run()
    assert (early.stalled, early.given_up) == (1, 0)
    assert status(api, key, nid)["status"] == "delivering"

    late = reconciler_at(timedelta(hours=2, minutes=5)).run()

    assert (late.given_up, late.batches_given_up) == (1, 1)
    final: Any = status(api, key, nid)
    assert (final["status"], final["counts"]["failed"], final["pending"]) == ("sent", 5, 0)
    assert final["counts"]["dead_lettered"] == 1
    assert fcm.messages() == []
    batch = (
        firestore_client()
        .collection(ORGANIZATIONS, ORG, NOTIFICATIONS, nid, BATCHES)
        .document("00000")
        .get()
    )
    records = decode_records(batch.get(RECORDS))
    assert {r["error"] for r in records.values()} == {LOST}
    again = reconciler_at(timedelta(hours=2, minutes=10)).run()
    assert again.unfinished == 0


def test_the_function_answers_its_counts_to_the_admin_key_only(api: Functions) -> None:
    refused = api.post("/reconcile", {})
    answered = api.post("/reconcile", {}, headers={"X-Push365-Admin-Key": TEST_ADMIN_KEY})

    assert refused.status_code == 401
    assert answered.status_code == 200
    assert set(answered.json) == {"unfinished", "stalled", "given_up", "batches_given_up"}
