"""The send and deliver use cases over fakes: accept and queue, plan, batches, per-device claims,
re-sends after an unknown outcome, retries by redelivery, retirement, replays."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from push365.errors import (
    MessageTooLarge,
    PublishOutcomeUnknown,
    QueueUnavailable,
    UnknownReceipt,
)
from push365.fanout.model import FanoutMessage, Kind, Verdict
from push365.fanout.worker import DeliveryWorker, FanoutPolicy
from push365.fcm.model import Outcome, PushMessage, SendResult
from push365.notifications.model import Accepted, NotificationStatus, SendRequest
from push365.notifications.service import NotificationService, SendPolicy, payload_size
from push365.subscriptions.model import Subscribe, Unsubscribe
from push365.subscriptions.service import SubscriptionService
from tests.fakes import (
    InMemoryFanoutRepository,
    InMemoryNotificationRepository,
    InMemorySubscriptionRepository,
    InMemoryUserRepository,
    RecordingPublisher,
)

ORG = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"
BOB = "b1111111-2222-4333-8444-555555555502"
START = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
POLICY = SendPolicy(retention=timedelta(days=90), dedup_window=timedelta(hours=24))
FANOUT = FanoutPolicy(
    batch_size=500,
    chunk_size=100,
    lease=timedelta(seconds=45),
    retry_horizon=timedelta(hours=1),
    first_backoff=timedelta(seconds=10),
    max_backoff=timedelta(seconds=300),
    retention=timedelta(days=90),
    unsubscribe_retention_days=30,
)


class Killed(BaseException):
    """The worker's process died (nothing after this point runs)."""


class FakeGateway:
    """Answers by token prefix, as the local FCM server does; counts what reached "FCM"."""

    def __init__(self, answer: Callable[[str, int], SendResult]) -> None:
        self._answer = answer
        self.chunks: list[int] = []
        self.calls: dict[str, int] = {}
        self.topics: list[str | None] = []
        self.die_after_sending = False
        self.die_after: int | None = None  # messages sent before the process dies
        self.seconds = 0.0  # the monotonic clock the worker reads
        self.seconds_per_message = 0.0  # FCM's pace, one message after another
        self.deadlines: list[float | None] = []
        self.after_first_chunk: Callable[[], object] | None = None  # happens while it is sent

    def monotonic(self) -> float:
        return self.seconds

    def send_batch(
        self,
        messages: Sequence[PushMessage],
        deadline: float | None = None,
        before_writing: Callable[[], None] | None = None,
    ) -> list[SendResult]:
        self.chunks.append(len(messages))
        self.deadlines.append(deadline)
        if before_writing is not None:
            before_writing()
        results = []
        for message in messages:
            if deadline is not None and self.seconds >= deadline:
                results.append(SendResult(Outcome.RETRY, reason="deadline"))
                continue
            if self.die_after is not None and sum(self.calls.values()) >= self.die_after:
                self.die_after = None
                raise Killed()
            self.seconds += self.seconds_per_message
            self.calls[message.token] = self.calls.get(message.token, 0) + 1
            self.topics.append(message.push.collapse_key)
            results.append(self._answer(message.token, self.calls[message.token]))
        if self.die_after_sending:
            self.die_after_sending = False
            raise Killed()
        happens, self.after_first_chunk = self.after_first_chunk, None
        if happens is not None:
            happens()
        return results


def by_prefix(token: str, attempt: int) -> SendResult:
    if token.startswith("retry-"):
        return SendResult(Outcome.RETRY, reason="unavailable", retry_after_seconds=1)
    if token.startswith("quota-") and attempt == 1:
        return SendResult(Outcome.RETRY, reason="quota_exceeded", retry_after_seconds=120)
    if token.startswith("gone-"):
        return SendResult(Outcome.RETIRE, reason="unregistered")
    if token.startswith("invalid-"):
        return SendResult(Outcome.RETIRE, reason="invalid_token")
    if token.startswith("once-") and attempt == 1:
        return SendResult(Outcome.RETRY, reason="unavailable")
    if token.startswith("timeout-") and attempt == 1:
        return SendResult(Outcome.RETRY, reason="timeout", maybe_delivered=True)
    return SendResult(Outcome.SENT, message_id=f"projects/p/messages/{token}")


class World:
    def __init__(
        self,
        answer: Callable[[str, int], SendResult] = by_prefix,
        policy: FanoutPolicy = FANOUT,
    ) -> None:
        self.now = START
        self.subscription_repo = InMemorySubscriptionRepository()
        self.notification_repo = InMemoryNotificationRepository()
        self.fanout_repo = InMemoryFanoutRepository(self.notification_repo)
        self.queue = RecordingPublisher()
        self.gateway = FakeGateway(answer)
        self.subscriptions = SubscriptionService(
            self.subscription_repo, InMemoryUserRepository(), 30, clock=self.clock
        )
        self.service = NotificationService(
            self.notification_repo,
            self.queue,
            POLICY,
            clock=self.clock,
            devices=self.subscription_repo,
        )
        self.worker = DeliveryWorker(
            self.fanout_repo,
            self.subscription_repo,
            self.gateway,
            self.queue,
            policy,
            clock=self.clock,
            monotonic=self.gateway.monotonic,
        )
        self.verdicts: list[Verdict] = []
        self.delivered: list[FanoutMessage] = []

    def clock(self) -> datetime:
        return self.now

    def subscribe(self, *tokens: str, user: str = BOB) -> None:
        for token in tokens:
            self.subscriptions.subscribe(ORG, Subscribe(user_id=user, instance_id=token))

    def send(self, dedup_key: str | None = None, **fields: object) -> Accepted:
        request = SendRequest.model_validate(
            {"recipients": [BOB], "title": "t", "body": "b"} | fields
        )
        return self.service.send(ORG, request, dedup_key)

    def deliver(self, rounds: int = 50) -> None:
        """Pub/Sub: every message until acknowledged; a retried one after its backoff."""
        for _ in range(rounds):
            if not self.queue.messages:
                return
            message = self.queue.messages.pop(0)
            self.delivered.append(message)
            verdict = self.handle(message)
            if verdict is Verdict.RETRY:
                self.queue.messages.append(message)
                self.now += timedelta(seconds=30)
        assert not self.queue.messages, "the queue did not drain"

    def handle(self, message: FanoutMessage, dead_lettered: bool = False) -> Verdict:
        verdict = self.worker.handle(message, dead_lettered=dead_lettered)
        self.verdicts.append(verdict)
        return verdict

    def status(self, nid: str) -> NotificationStatus:
        return self.service.status(ORG, nid)


def test_send_stores_and_queues_one_plan_and_contacts_no_device() -> None:
    world = World()
    world.subscribe("ok-1", "ok-2")

    accepted = world.send()

    assert accepted.status == "queued"
    assert (accepted.recipients, accepted.devices) == (1, None)
    (plan,) = world.queue.messages
    assert (plan.kind, plan.notification_id, plan.recipients) == (
        Kind.PLAN,
        accepted.notification_id,
        [BOB],
    )
    assert world.gateway.calls == {}


def test_each_device_is_sent_once_in_batches_of_at_most_500() -> None:
    world = World()
    world.subscribe(*(f"ok-{n}" for n in range(1201)))

    nid = world.send().notification_id
    world.deliver()

    status = world.status(nid)
    assert (status.status, status.devices, status.pending) == ("sent", 1201, 0)
    assert (status.counts.batches, status.counts.batches_done, status.counts.sent) == (3, 3, 1201)
    assert set(world.gateway.calls.values()) == {1}
    assert max(world.gateway.chunks) <= FANOUT.chunk_size


def test_the_status_shows_a_completion_time_only_once_every_batch_is_done() -> None:
    world = World()
    world.subscribe(*(f"ok-{n}" for n in range(1001)))
    nid = world.send().notification_id

    for _ in range(2):  # the plan, then the first of its three batches
        assert world.handle(world.queue.messages.pop(0)) is Verdict.ACK
    midway = world.status(nid)
    world.deliver()
    done = world.status(nid)

    assert (midway.status, midway.counts.batches_done, midway.completed_at) == (
        "delivering",
        1,
        None,
    )
    assert done.status == "sent"
    assert done.completed_at is not None


def test_a_long_plan_hands_on_to_a_continuation_and_each_device_is_sent_once() -> None:
    world = World(policy=replace(FANOUT, plan_slice_seconds=0))  # one batch per plan request
    world.subscribe(*(f"ok-{n}" for n in range(1201)))
    nid = world.send().notification_id

    world.deliver()

    plans = [m for m in world.delivered if m.kind is Kind.PLAN]
    assert len(plans) == 3  # the first request and two continuations
    status = world.status(nid)
    assert (status.status, status.counts.batches, status.counts.sent) == ("sent", 3, 1201)
    assert set(world.gateway.calls.values()) == {1}


def test_a_planner_that_died_is_resumed_after_its_cursor() -> None:
    world = World()
    world.subscribe(*(f"ok-{n}" for n in range(1201)))
    nid = world.send().notification_id
    plan = world.queue.messages.pop(0)
    lease = world.fanout_repo.lease_plan(ORG, nid, START, START + FANOUT.lease, START)
    assert lease is not None
    first = world.subscription_repo.active_subscription_ids(ORG, [BOB])[:500]
    world.fanout_repo.add_batch(lease, ORG, nid, first, START, START, START + FANOUT.lease)
    world.now += FANOUT.lease  # it died here, its batch stored but never published

    world.queue.messages.append(plan)
    world.deliver()

    status = world.status(nid)
    assert (status.counts.batches, status.counts.devices, status.counts.sent) == (3, 1201, 1201)
    assert set(world.gateway.calls.values()) == {1}


def test_a_redelivered_batch_sends_nothing_again() -> None:
    world = World()
    world.subscribe("ok-1", "ok-2")
    world.send()
    world.handle(world.queue.messages.pop(0))  # the plan
    batch = world.queue.messages[0]
    world.deliver()

    assert world.handle(batch) is Verdict.ACK

    assert world.gateway.calls == {"ok-1": 1, "ok-2": 1}


def test_a_batch_message_carries_when_its_notification_was_accepted() -> None:
    # Arrange: the plan publishes one batch
    world = World()
    world.subscribe("ok-1")
    nid = world.send().notification_id
    world.handle(world.queue.messages.pop(0))
    (batch,) = world.queue.messages

    # Act: a message from before batches carried it reads the record instead
    older = batch.model_copy(update={"created_at": None})
    verdict = world.handle(older)

    # Assert
    assert batch.created_at == world.notification_repo.records[nid].created_at
    assert verdict is Verdict.ACK
    assert world.gateway.calls == {"ok-1": 1}


def test_a_plan_another_worker_is_making_is_handed_back_until_its_lease_ends() -> None:
    world = World()
    world.subscribe("ok-1")
    nid = world.send().notification_id
    plan = world.queue.messages.pop(0)
    assert world.fanout_repo.lease_plan(ORG, nid, START, START + FANOUT.lease, START) is not None

    assert world.handle(plan) is Verdict.RETRY
    assert world.queue.messages == []
    world.now += FANOUT.lease  # that worker died
    assert world.handle(plan) is Verdict.ACK

    world.deliver()
    assert world.gateway.calls == {"ok-1": 1}


def test_a_batch_held_by_another_worker_is_handed_back() -> None:
    world = World()
    world.subscribe("ok-1")
    world.send()
    world.handle(world.queue.messages.pop(0))
    batch = world.queue.messages.pop(0)
    world.fanout_repo.take(ORG, batch.notification_id, 0, START, START + timedelta(seconds=45))

    assert world.handle(batch) is Verdict.RETRY
    assert world.gateway.calls == {}


def test_a_worker_killed_after_sending_leaves_devices_that_are_re_sent_once_with_its_topic() -> (
    None
):
    world = World()
    world.subscribe("ok-1", "ok-2")
    nid = world.send().notification_id
    world.handle(world.queue.messages.pop(0))
    batch = world.queue.messages.pop(0)
    world.gateway.die_after_sending = True
    with pytest.raises(Killed):
        world.handle(batch)
    world.now += FANOUT.lease  # its lease runs out; Pub/Sub redelivers

    assert world.handle(batch) is Verdict.ACK

    status = world.status(nid)
    assert (status.counts.sent, status.counts.resent) == (2, 2)
    assert world.gateway.calls == {"ok-1": 2, "ok-2": 2}  # once, and once more: shown once
    assert set(world.gateway.topics) == {nid}


def test_messages_fcm_accepted_are_not_sent_again_when_others_fail() -> None:
    world = World()
    world.subscribe("ok-1", "once-1")
    nid = world.send().notification_id

    world.deliver()

    assert world.gateway.calls == {"ok-1": 1, "once-1": 2}
    assert Verdict.RETRY in world.verdicts
    assert world.status(nid).counts.sent == 2


def test_a_long_retry_after_is_waited_for_by_redelivery_not_by_sleeping() -> None:
    world = World()
    world.subscribe("quota-1")
    nid = world.send().notification_id
    world.handle(world.queue.messages.pop(0))
    batch = world.queue.messages.pop(0)

    assert world.handle(batch) is Verdict.RETRY
    world.now += timedelta(seconds=60)
    assert world.handle(batch) is Verdict.RETRY  # too early: nothing sent
    assert world.gateway.calls == {"quota-1": 1}
    world.now += timedelta(seconds=61)
    assert world.handle(batch) is Verdict.ACK

    assert world.gateway.calls == {"quota-1": 2}
    assert world.status(nid).counts.sent == 1


def test_transient_failures_past_the_horizon_are_recorded_as_failed() -> None:
    world = World()
    world.subscribe("retry-1", "ok-1")
    nid = world.send().notification_id
    world.handle(world.queue.messages.pop(0))
    batch = world.queue.messages.pop(0)
    assert world.handle(batch) is Verdict.RETRY
    world.now += FANOUT.retry_horizon

    assert world.handle(batch) is Verdict.ACK

    status = world.status(nid)
    assert (status.status, status.counts.sent, status.counts.failed) == ("sent", 1, 1)
    (failed,) = [
        d for d in world.notification_repo.deliveries[nid].values() if d.status == "failed"
    ]
    assert failed.error == "unavailable"


def test_a_timed_out_device_is_re_sent_once_and_counted_apart() -> None:
    world = World()
    world.subscribe("timeout-1")
    nid = world.send().notification_id

    world.deliver()

    status = world.status(nid)
    assert (status.counts.sent, status.counts.resent) == (1, 1)
    assert world.gateway.calls == {"timeout-1": 2}


def test_dead_tokens_are_retired_and_not_sent_to_again() -> None:
    world = World()
    world.subscribe("ok-1", "ok-2", "gone-1")
    world.send()
    world.deliver()
    world.gateway.calls.clear()

    world.send()
    world.deliver()

    assert world.gateway.calls == {"ok-1": 1, "ok-2": 1}


def test_more_than_half_of_a_batch_invalid_retires_none_of_them_but_still_the_unregistered() -> (
    None
):
    world = World()
    world.subscribe(*(f"invalid-{n}" for n in range(6)), "gone-1", "ok-1", "ok-2", "ok-3")
    nid = world.send().notification_id

    world.deliver()

    counts = world.status(nid).counts
    assert (counts.removed_tokens, counts.retire_suppressed, counts.failed) == (1, 6, 7)
    assert len(world.subscription_repo.active_subscription_ids(ORG, [BOB])) == 9


def test_an_invalid_token_in_a_small_send_is_retired() -> None:
    world = World()
    world.subscribe("invalid-1", "ok-1")
    nid = world.send().notification_id

    world.deliver()

    assert world.status(nid).counts.removed_tokens == 1


def test_a_device_unsubscribed_after_the_plan_is_not_sent_to() -> None:
    world = World()
    world.subscribe("ok-1", "ok-2")
    nid = world.send().notification_id
    world.handle(world.queue.messages.pop(0))
    world.subscriptions.unsubscribe(ORG, Unsubscribe(instance_id="ok-2"))

    world.deliver()

    assert world.gateway.calls == {"ok-1": 1}
    counts = world.status(nid).counts
    assert (counts.sent, counts.skipped) == (1, 1)


def test_a_subscription_gone_stale_is_not_sent_to() -> None:
    world = World(policy=replace(FANOUT, stale_after=timedelta(days=60)))
    world.subscribe("ok-1", "ok-2")
    world.now += timedelta(days=61)
    world.subscribe("ok-2")  # its browser refreshed it; ok-1's did not
    nid = world.send().notification_id

    world.deliver()

    assert world.gateway.calls == {"ok-2": 1}
    assert world.status(nid).counts.skipped == 1


def test_a_dead_lettered_batch_is_counted_as_failed() -> None:
    world = World()
    world.subscribe("ok-1", "ok-2")
    nid = world.send().notification_id
    world.handle(world.queue.messages.pop(0))
    batch = world.queue.messages.pop(0)

    assert world.handle(batch, dead_lettered=True) is Verdict.ACK

    status = world.status(nid)
    assert (status.status, status.counts.failed, status.counts.dead_lettered) == ("sent", 2, 1)
    assert world.gateway.calls == {}


def test_a_replay_answers_the_same_notification_and_makes_no_second_plan() -> None:
    world = World()
    world.subscribe("ok-1")
    first = world.send("case-1")
    world.deliver()

    again = world.send("case-1")

    assert again.notification_id == first.notification_id
    assert (again.status, again.devices) == ("sent", 1)
    assert world.queue.messages == []
    assert world.gateway.calls == {"ok-1": 1}


def test_a_replay_of_a_send_the_queue_refused_queues_it() -> None:
    world = World()
    world.subscribe("ok-1")
    world.queue.fail = True
    with pytest.raises(QueueUnavailable):
        world.send("case-1")
    world.queue.fail = False

    again = world.send("case-1")
    world.deliver()

    assert again.status == "queued"
    assert world.gateway.calls == {"ok-1": 1}


def test_a_send_without_a_key_whose_publish_answer_was_lost_is_accepted_and_sent_once() -> None:
    world = World()
    world.subscribe("ok-1", "ok-2")
    world.queue.lose_answer = True

    accepted = world.send()  # no exception: a retry could only make a second notification
    world.queue.lose_answer = False
    world.deliver()

    assert (accepted.status, accepted.recipients) == ("accepted", 1)
    assert world.gateway.calls == {"ok-1": 1, "ok-2": 1}
    status = world.status(accepted.notification_id)
    assert (status.status, status.counts.sent) == ("sent", 2)


def test_a_send_with_a_key_whose_publish_answer_was_lost_is_503_and_its_replay_queues_it() -> None:
    world = World()
    world.subscribe("ok-1")
    world.queue.lose_answer = True
    with pytest.raises(PublishOutcomeUnknown):
        world.send("case-1")
    world.queue.lose_answer = False

    again = world.send("case-1")

    assert again.status == "queued"
    assert len(world.queue.messages) == 2  # the first plan was stored all the same
    assert world.notification_repo.records[again.notification_id].published_at == START


def test_a_send_without_a_key_the_queue_refused_is_503() -> None:
    world = World()
    world.subscribe("ok-1")
    world.queue.fail = True

    with pytest.raises(QueueUnavailable) as refused:
        world.send()

    assert not isinstance(refused.value, PublishOutcomeUnknown)
    (record,) = world.notification_repo.records.values()
    assert (record.status, record.published_at) == ("accepted", None)  # the reconciler's


def test_too_large_a_message_is_refused_before_anything_happens() -> None:
    world = World()
    world.subscribe("ok-1")

    with pytest.raises(MessageTooLarge):
        world.send(body="x" * 4000)

    assert world.notification_repo.records == {}
    assert world.queue.messages == []


def test_payload_size_counts_content_and_the_receipt() -> None:
    small = SendRequest(recipients=[BOB], title="t", body="b").web_push()
    large = SendRequest(recipients=[BOB], title="t", body="é" * 1000).web_push()

    assert 150 < payload_size(small, None) < 400
    assert payload_size(large, None) - payload_size(small, None) == 1999  # UTF-8 bytes


def test_payload_size_is_what_the_gateway_sends_less_the_token_and_push_headers() -> None:
    import json

    from push365.fcm.body import body
    from push365.notifications.receipts import RECEIPT_LENGTH

    request = SendRequest(
        recipients=[BOB],
        title="Case ✓ escalated",
        body="é" * 100,
        link="https://crm.example/case?id=1",
        data={"entity": "incident"},
        ttl_seconds=3600,
        urgency="high",
        collapse_key="case-1",
    )
    push = request.web_push()
    receipt_url = "https://push.example/receipt"
    largest = {
        "notification_id": "0" * 32,
        "receipt": "0" * RECEIPT_LENGTH,
        "receipt_url": receipt_url,
    }

    # The body the HTTP gateway writes for that device, firebase-admin's own encoding.
    sent = json.loads(body(PushMessage("a-token", push, largest)))["message"]
    del sent["token"]
    del sent["webpush"]["headers"]  # TTL, Urgency, Topic: HTTP headers to the push service
    expected = len(json.dumps(sent, ensure_ascii=False, separators=(",", ":")).encode())

    assert payload_size(push, receipt_url) == expected


def test_receipts_confirm_only_the_device_they_were_made_for() -> None:
    world = World()
    world.subscribe("ok-1")
    nid = world.send().notification_id
    world.deliver()
    (delivery,) = world.notification_repo.deliveries[nid].values()

    with pytest.raises(UnknownReceipt):
        world.service.confirm_delivery(f"{ORG}.{nid}.00000.{delivery.device_id}.{'A' * 22}")
    with pytest.raises(UnknownReceipt):
        world.service.confirm_delivery("garbage")


def test_a_worker_killed_during_a_re_send_never_sends_a_third_copy() -> None:
    world = World()
    world.subscribe("ok-1", "ok-2", "ok-3")
    nid = world.send().notification_id
    world.handle(world.queue.messages.pop(0))
    batch = world.queue.messages.pop(0)
    world.gateway.die_after_sending = True
    with pytest.raises(Killed):
        world.handle(batch)  # all three sent, nothing recorded: their outcomes are unknown
    world.now += FANOUT.lease
    world.gateway.die_after_sending = True  # the re-sends claimed and written, then it dies
    with pytest.raises(Killed):
        world.handle(batch)
    world.now += FANOUT.lease

    assert world.handle(batch) is Verdict.ACK

    assert world.gateway.calls == {"ok-1": 2, "ok-2": 2, "ok-3": 2}
    status = world.status(nid)
    assert status.counts.resent == 3
    assert (status.counts.sent, status.counts.failed) == (0, 3)
    errors = {d.error for d in world.notification_repo.deliveries[nid].values()}
    assert errors == {"unknown_outcome"}


def test_a_re_send_that_surely_never_reached_fcm_is_not_counted_and_may_be_tried_again() -> None:
    calls: dict[str, int] = {}

    def answer(token: str, attempt: int) -> SendResult:
        calls[token] = attempt
        if attempt == 1:
            return SendResult(Outcome.RETRY, reason="timeout", maybe_delivered=True)
        if attempt == 2:
            return SendResult(Outcome.RETRY, reason="connection")  # refused: never written
        return SendResult(Outcome.SENT, message_id="m")

    world = World(answer)
    world.subscribe("dev-1")
    nid = world.send().notification_id

    world.deliver()

    status = world.status(nid)
    assert world.gateway.calls == {"dev-1": 3}  # two copies at most reached FCM
    assert (status.counts.sent, status.counts.resent) == (1, 1)


def test_a_chunk_slower_than_its_budget_stops_sending_and_hands_on_each_device_once() -> None:
    policy = replace(FANOUT, chunk_size=250, chunk_budget_seconds=20.0, handler_seconds=30.0)
    world = World(policy=policy)
    world.subscribe(*(f"ok-{n:03d}" for n in range(500)))
    world.gateway.seconds_per_message = 0.5  # FCM answering slowly: 250 messages take 125 s
    nid = world.send().notification_id

    world.deliver(rounds=200)

    status = world.status(nid)
    assert (status.status, status.counts.sent, status.counts.resent) == ("sent", 500, 0)
    assert set(world.gateway.calls.values()) == {1}
    # No handler ever sent past its budget: at most 20 s of requests per chunk.
    assert max(world.gateway.chunks) == 250
    assert world.gateway.seconds <= 0.5 * 500 + 1
    assert all(v is Verdict.ACK for v in world.verdicts)  # handed on, never a failed attempt


def test_the_send_deadline_is_inside_the_lease_the_chunk_budget_and_the_handler() -> None:
    policy = replace(FANOUT, lease=timedelta(seconds=15), chunk_budget_seconds=20.0)
    world = World(policy=policy)
    world.subscribe("ok-1")
    world.send()
    world.handle(world.queue.messages.pop(0))
    world.gateway.seconds = 100.0

    world.handle(world.queue.messages.pop(0))

    (deadline,) = world.gateway.deadlines
    assert deadline is not None
    assert deadline <= 100.0 + 15 - policy.clock_skew_seconds


def test_a_late_dead_lettered_copy_of_a_finished_plan_changes_nothing() -> None:
    world = World()
    world.subscribe("ok-1", "ok-2")
    nid = world.send().notification_id
    plan = world.queue.messages[0]
    world.deliver()
    assert world.status(nid).status == "sent"

    assert world.handle(plan, dead_lettered=True) is Verdict.ACK

    status = world.status(nid)
    assert (status.status, status.counts.sent, status.counts.failed) == ("sent", 2, 0)


def test_a_late_dead_lettered_copy_of_a_finished_batch_changes_nothing() -> None:
    world = World()
    world.subscribe("ok-1", "ok-2")
    nid = world.send().notification_id
    world.handle(world.queue.messages.pop(0))
    batch = world.queue.messages[0]
    world.deliver()

    assert world.handle(batch, dead_lettered=True) is Verdict.ACK

    status = world.status(nid)
    assert (status.status, status.counts.sent, status.counts.dead_lettered) == ("sent", 2, 0)


def test_a_device_unsubscribed_while_an_earlier_chunk_is_sent_is_not_sent_to() -> None:
    policy = replace(FANOUT, chunk_size=2)
    world = World(policy=policy)
    world.subscribe("ok-1", "ok-2", "ok-3", "ok-4")
    nid = world.send().notification_id
    world.handle(world.queue.messages.pop(0))
    batch = world.queue.messages.pop(0)
    tokens = {"ok-1", "ok-2", "ok-3", "ok-4"}

    def unsubscribe_the_rest() -> None:  # while the first chunk is being sent
        for token in tokens - set(world.gateway.calls):
            world.subscriptions.unsubscribe(ORG, Unsubscribe(instance_id=token))

    world.gateway.after_first_chunk = unsubscribe_the_rest

    world.handle(batch)

    assert len(world.gateway.calls) == 2
    assert world.status(nid).counts.skipped == 2
