"""A publish whose outcome is unknown (issue 24, item 5: the stored record is the commitment), on
the real emulators, counted at the local FCM server.

``send``'s publisher reaches the Pub/Sub emulator through a proxy that passes the request on and
holds Pub/Sub's answer back (the message is stored, the answer never comes), or refuses the
connection (nothing is stored). Without a dedup key an unknown outcome answers ``202`` (a retry
could only make a second notification); with one it answers ``503`` and the replay queues it again,
its new seal voiding the first message's; a refused publish answers ``503`` and the reconciler
closes the record once no message for it can come.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from devstack.emulator import PubSubEmulator
from devstack.fcm_server import LocalFcmServer
from push365 import bootstrap
from push365.errors import PublishOutcomeUnknown, QueueUnavailable
from push365.fanout.model import FanoutMessage
from push365.fanout.publisher import PubSubPublisher
from push365.notifications.repository import FirestoreNotificationRepository
from push365.notifications.service import NotificationService
from push365.settings import get_settings
from push365.store import firestore_client
from push365.subscriptions.repository import FirestoreSubscriptionRepository
from tests.conftest import PROJECT
from tests.faults import TcpProxy
from tests.integration.conftest import BOB, ORG, Fanout, Functions, documents, register
from tests.integration.test_fanout import status, subscribe
from tests.integration.test_observability import written
from tests.integration.test_reconciler import reconciler_at

TIMEOUT_SECONDS = 2.0  # the publisher's retry deadline (PUSH365_QUEUE_TIMEOUT_SECONDS)
BODY = {"recipients": [BOB], "title": "t", "body": "b"}
TOKENS = [f"dev-{n}" for n in range(5)]


@pytest.fixture
def proxy(pubsub: PubSubEmulator) -> Iterator[TcpProxy]:
    """Between send's publisher and the Pub/Sub emulator (deliver's publisher goes direct)."""
    proxy = TcpProxy(pubsub.address)
    yield proxy
    proxy.stop()


@pytest.fixture
def publisher(proxy: TcpProxy, queue: Fanout) -> Iterator[PubSubPublisher]:
    """A fresh publisher whose client reaches the emulator through the proxy, connected before
    any fault (the client reads ``PUBSUB_EMULATOR_HOST`` when it is created)."""
    publisher = PubSubPublisher(PROJECT, queue.topology.topic, TIMEOUT_SECONDS)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PUBSUB_EMULATOR_HOST", proxy.address)
        client = publisher._publisher()
    client.get_topic(topic=publisher.topic_path, timeout=10)
    yield publisher
    client.stop()
    client.transport.close()


class Watched:
    """A publisher, with the error each of its publishes raised (None: it returned)."""

    def __init__(self, publisher: PubSubPublisher) -> None:
        self._publisher = publisher
        self.raised: list[type[Exception] | None] = []

    def publish(self, messages: Sequence[FanoutMessage]) -> None:
        try:
            self._publisher.publish(messages)
        except QueueUnavailable as error:
            self.raised.append(type(error))
            raise
        self.raised.append(None)


@pytest.fixture
def watched(publisher: PubSubPublisher) -> Watched:
    return Watched(publisher)


@pytest.fixture
def send(
    api: Functions,
    publisher: PubSubPublisher,
    watched: Watched,
    monkeypatch: pytest.MonkeyPatch,
) -> Functions:
    """The send function, its notifications use cases publishing through ``publisher``."""
    settings = get_settings()
    policy = replace(
        bootstrap.send_policy(settings), in_flight=timedelta(seconds=publisher.wait_seconds)
    )
    service = NotificationService(
        FirestoreNotificationRepository(firestore_client(), settings.store_timeout_seconds),
        watched,
        policy,
        devices=FirestoreSubscriptionRepository(firestore_client()),
    )
    monkeypatch.setattr(bootstrap, "notifications", lambda: service)
    return api


def peek(queue: Fanout) -> list[dict[str, Any]]:
    """The messages on the fan-out subscription, left there (handed back at once)."""
    subscription = f"subscriptions/{queue.topology.subscription}"
    items = queue._call(f"{subscription}:pull", maxMessages=50).get("receivedMessages", [])
    if items:
        acks = [item["ackId"] for item in items]
        queue._call(f"{subscription}:modifyAckDeadline", ackIds=acks, ackDeadlineSeconds=0)
    return [item["message"] for item in items]


def received(fcm: LocalFcmServer) -> dict[str, Counter[str]]:
    """Notification id -> the copies each token's device was sent (FCM answered 200)."""
    found: dict[str, Counter[str]] = {}
    for m in fcm.messages():
        if m["response"] == 200:
            nid = str(m["message"]["data"]["notification_id"])
            found.setdefault(nid, Counter())[m["token"]] += 1
    return found


def plan_of(message: dict[str, Any]) -> dict[str, str]:
    return {k: message["attributes"][k] for k in ("kind", "notification_id")}


def test_an_answer_lost_after_pub_sub_stored_the_plan_is_202_without_a_key_and_sent_once(
    send: Functions,
    queue: Fanout,
    fcm: LocalFcmServer,
    proxy: TcpProxy,
    watched: Watched,
    capsys: Any,
) -> None:
    key = register(send)
    subscribe(send, key, *TOKENS)

    proxy.hold_answers()
    started = time.monotonic()
    first = send.post("/send", BODY, key=key)
    waited = time.monotonic() - started
    proxy.restore()

    assert first.status_code == 202, first.json
    nid = first.json["notification_id"]
    assert first.json["status"] == "accepted"  # stored; whether it is queued is not known
    assert watched.raised == [PublishOutcomeUnknown]
    assert waited >= TIMEOUT_SECONDS  # it did wait for Pub/Sub's answer
    (audit,) = [r for r in written(capsys) if r["function"] == "send" and r["status"] == 202]
    assert audit["counts"]["publish_outcome_unknown"] == 1  # for the operators
    assert [plan_of(m) for m in peek(queue)] == [{"kind": "plan", "notification_id": nid}]
    # A second identical request without a key is a second notification, as any send is.
    second = send.post("/send", BODY, key=key)
    assert (second.status_code, second.json["status"]) == (202, "queued")
    other = second.json["notification_id"]
    assert other != nid

    queue.deliver(until=lambda: {status(send, key, n)["status"] for n in (nid, other)} == {"sent"})

    assert received(fcm)[nid] == Counter({t: 1 for t in TOKENS})
    assert received(fcm)[other] == Counter({t: 1 for t in TOKENS})
    final = status(send, key, nid)
    assert (final["status"], final["devices"], final["pending"]) == ("sent", 5, 0)
    assert (final["counts"]["sent"], final["counts"]["failed"], final["counts"]["resent"]) == (
        5,
        0,
        0,
    )


def test_with_a_key_a_lost_answer_is_503_and_the_replay_sends_each_device_once(
    send: Functions, queue: Fanout, fcm: LocalFcmServer, proxy: TcpProxy, watched: Watched
) -> None:
    key = register(send)
    subscribe(send, key, *TOKENS)
    idempotency = {"Idempotency-Key": "case-CAS-24-5"}

    proxy.hold_answers()
    first = send.post("/send", BODY, key=key, headers=idempotency)
    proxy.restore()

    assert first.status_code == 503
    assert first.json["error"]["code"] == "queue_unavailable"
    assert watched.raised == [PublishOutcomeUnknown]
    (stored,) = peek(queue)  # the first plan was stored all the same
    nid = stored["attributes"]["notification_id"]
    assert status(send, key, nid)["status"] == "accepted"

    replay = send.post("/send", BODY, key=key, headers=idempotency)

    assert replay.status_code == 202, replay.json
    assert (replay.json["notification_id"], replay.json["status"]) == (nid, "queued")
    assert watched.raised == [PublishOutcomeUnknown, None]  # the proxy's connection was dropped
    assert [plan_of(m) for m in peek(queue)] == [{"kind": "plan", "notification_id": nid}] * 2
    queue.deliver(until=lambda: status(send, key, nid)["status"] == "sent")
    queue.deliver(quiet=2.5)  # the first plan: refused until it is dead-lettered
    assert received(fcm) == {nid: Counter({t: 1 for t in TOKENS})}
    final = status(send, key, nid)
    assert (final["status"], final["counts"]["sent"], final["counts"]["resent"]) == ("sent", 5, 0)
    assert queue.pushed.count(400) >= 1  # the first plan, its seal no longer bound to the record


def test_a_refused_publish_is_503_without_a_key_and_the_reconciler_closes_its_record(
    send: Functions,
    queue: Fanout,
    fcm: LocalFcmServer,
    proxy: TcpProxy,
    watched: Watched,
    store: Any,
) -> None:
    key = register(send)
    subscribe(send, key, *TOKENS)

    proxy.cut()  # connections refused: retried until the deadline, then an error
    refused = send.post("/send", BODY, key=key)

    assert watched.raised == [QueueUnavailable]  # a definite failure: nothing was stored
    assert refused.status_code == 503
    assert refused.json["error"]["code"] == "queue_unavailable"
    (nid,) = documents(store, ORG, "notifications")
    assert status(send, key, nid)["status"] == "accepted"
    assert peek(queue) == []

    late = reconciler_at(timedelta(hours=2, minutes=5)).run()

    assert late.given_up == 1
    final = status(send, key, nid)
    assert (final["status"], final["counts"]["dead_lettered"]) == ("failed", 1)
    assert final["completed_at"] is not None
    assert fcm.messages() == []
