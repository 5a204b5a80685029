"""Fan-out messages bound to their record (push365.fanout.binding): the binding send stores, what
deliver's check accepts, the shapes a message's data must have, and send's replays."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from push365.errors import PublishOutcomeUnknown, QueueUnavailable
from push365.fanout.binding import BoundRecord, bind, bound, canonical, new_seal
from push365.fanout.model import Content, FanoutMessage, Kind
from push365.notifications.model import SendRequest
from push365.notifications.service import NotificationService, SendPolicy
from tests.fakes import (
    InMemoryNotificationRepository,
    InMemorySubscriptionRepository,
    RecordingPublisher,
)

ORG = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"
BOB = "b1111111-2222-4333-8444-555555555502"
NID = "0123456789abcdef0123456789abcdef"
CREATED = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
CONTENT = Content(title="Yes", body="", data={"b": "2", "a": "1"})


def plan(content: Content = CONTENT, seal: str | None = None, **changes: object) -> FanoutMessage:
    fields = {
        "kind": Kind.PLAN,
        "organization_id": ORG,
        "notification_id": NID,
        "content": content,
        "seal": seal or SEAL,
        "recipients": [BOB],
    }
    return FanoutMessage(**(fields | changes))  # type: ignore[arg-type]


def batch(content: Content = CONTENT, seal: str | None = None, **changes: object) -> FanoutMessage:
    fields = {
        "kind": Kind.BATCH,
        "organization_id": ORG,
        "notification_id": NID,
        "content": content,
        "seal": seal or SEAL,
        "batch": 0,
        "created_at": CREATED,
    }
    return FanoutMessage(**(fields | changes))  # type: ignore[arg-type]


SEAL = new_seal()
RECORD = BoundRecord(binding=bind(SEAL, CONTENT), recipients=[BOB], created_at=CREATED)


def test_a_seal_is_32_random_bytes_in_url_safe_base64() -> None:
    seals = {new_seal() for _ in range(100)}

    assert len(seals) == 100
    assert all(len(s) == 43 and "=" not in s and "+" not in s and "/" not in s for s in seals)


def test_the_binding_depends_on_the_seal_and_reveals_no_plain_hash_of_the_content() -> None:
    other = new_seal()

    assert bind(SEAL, CONTENT) == bind(
        SEAL, Content(title="Yes", body="", data={"a": "1", "b": "2"})
    )
    assert bind(SEAL, CONTENT) != bind(other, CONTENT)
    assert bind(SEAL, CONTENT) != hashlib.sha256(canonical(CONTENT)).hexdigest()
    assert len(bind(SEAL, CONTENT)) == 64


def test_canonical_bytes_survive_the_trip_through_a_message_and_a_lone_surrogate() -> None:
    message = plan()
    data, _ = message.encode()

    assert canonical(FanoutMessage.decode(data).content) == canonical(CONTENT)
    assert b"\\ud800" in canonical(Content(title="\ud800", body=""))


def test_a_message_of_send_is_bound_and_every_altered_one_is_not() -> None:
    assert bound(plan(), RECORD)
    assert bound(batch(), RECORD)
    assert bound(batch(created_at=None), RECORD)  # the worker then reads the record's

    assert not bound(plan(Content(title="No", body="")), RECORD)
    assert not bound(plan(seal=new_seal()), RECORD)
    assert not bound(plan(recipients=["a1111111-2222-4333-8444-555555555501"]), RECORD)
    assert not bound(batch(Content(title="Yes", body="", data={"a": "1"})), RECORD)
    assert not bound(batch(created_at=CREATED - timedelta(days=2)), RECORD)
    assert not bound(plan(), BoundRecord(binding=None, recipients=[BOB], created_at=CREATED))


@pytest.mark.parametrize(
    "changes",
    [
        {"organization_id": ""},
        {"organization_id": "a/b"},
        {"organization_id": ORG.upper()},
        {"notification_id": "__x__"},
        {"notification_id": NID + "0"},
        {"batch": -1},
        {"batch": 100_000},
        {"batch": "0"},
        {"batch": True},
        {"seal": "short"},
        {"recipients": [BOB]},
        {"created_at": "2026-11-29T12:00:00"},
        {"kind": "purge"},
        {"extra": 1},
    ],
    ids=repr,
)
def test_decode_takes_only_the_shapes_send_makes(changes: dict[str, object]) -> None:
    data = json.loads(batch().encode()[0]) | changes

    with pytest.raises(ValueError, match=r"^not a fan-out message$"):
        FanoutMessage.decode(json.dumps(data).encode())


def test_decode_refuses_what_json_alone_would_take() -> None:
    good = batch().encode()[0]

    for data in (
        b"[]",
        b'"batch"',
        b"[" * 10_000 + b"]" * 10_000,
        b"\xff",
        good[:-1] + b', "x": "\\ud800"}',
        good[:-1] + b', "pad": "' + b"x" * 600_000 + b'"}',
    ):
        with pytest.raises(ValueError, match=r"^not a fan-out message$"):
            FanoutMessage.decode(data)
    assert FanoutMessage.decode(good) == batch()


def service() -> tuple[NotificationService, InMemoryNotificationRepository, RecordingPublisher]:
    notifications = InMemoryNotificationRepository()
    queue = RecordingPublisher()
    policy = SendPolicy(retention=timedelta(days=90), dedup_window=timedelta(hours=24))
    service = NotificationService(
        notifications, queue, policy, devices=InMemorySubscriptionRepository()
    )
    return service, notifications, queue


def test_send_stores_the_binding_of_the_plan_it_publishes() -> None:
    send, notifications, queue = service()

    accepted = send.send(ORG, SendRequest(recipients=[BOB], title="t", body="b"), None)

    (message,) = queue.messages
    stored = notifications.records[accepted.notification_id]
    record = BoundRecord(notifications.bindings[accepted.notification_id], stored.recipients, None)
    assert bound(message, record)


def test_a_replay_that_publishes_binds_its_own_seal_and_one_that_only_answers_binds_nothing() -> (
    None
):
    send, notifications, queue = service()
    request = SendRequest(recipients=[BOB], title="t", body="b")
    queue.fail = True
    with pytest.raises(QueueUnavailable):
        send.send(ORG, request, "key-1")  # the queue did not take it: the record stays accepted
    queue.fail = False
    nid = next(iter(notifications.records))
    first = notifications.bindings[nid]

    send.send(ORG, request, "key-1")
    (republished,) = queue.messages
    rebound = notifications.bindings[nid]
    send.send(ORG, request, "key-1")  # published now: answered from the record

    assert rebound != first
    assert bound(republished, BoundRecord(rebound, [BOB], None))
    assert notifications.bindings[nid] == rebound
    assert len(queue.messages) == 1


def test_a_replay_after_a_lost_publish_answer_voids_the_first_plans_seal() -> None:
    send, notifications, queue = service()
    request = SendRequest(recipients=[BOB], title="t", body="b")
    queue.lose_answer = True  # Pub/Sub stored the plan; its answer never came
    with pytest.raises(PublishOutcomeUnknown):
        send.send(ORG, request, "key-1")
    queue.lose_answer = False
    nid = next(iter(notifications.records))

    send.send(ORG, request, "key-1")

    first, replayed = queue.messages
    record = BoundRecord(notifications.bindings[nid], [BOB], None)
    assert not bound(first, record)  # deliver refuses it: at most one plan runs
    assert bound(replayed, record)
