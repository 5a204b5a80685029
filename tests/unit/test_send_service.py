"""The send use case over fakes: batching, retries inside the deadline, retirement, replays."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from push365.errors import MessageTooLarge, SendInProgress, UnknownReceipt
from push365.fcm.model import Outcome, PushMessage, SendResult
from push365.notifications.model import SendRequest, Summary
from push365.notifications.service import NotificationService, SendPolicy, payload_size
from push365.subscriptions.model import Subscribe
from push365.subscriptions.service import SubscriptionService
from tests.fakes import (
    InMemoryNotificationRepository,
    InMemorySubscriptionRepository,
    InMemoryUserRepository,
)

ORG = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"
BOB = "b1111111-2222-4333-8444-555555555502"
START = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
POLICY = SendPolicy(
    deadline_seconds=40,
    http_timeout_seconds=10,
    retention=timedelta(days=90),
    dedup_window=timedelta(hours=24),
    unsubscribe_retention_days=30,
)


class FakeTime:
    """A clock that only moves when the service sleeps (or a gateway call takes time)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return START + timedelta(seconds=self.seconds)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.seconds += seconds


class FakeGateway:
    """Answers by token prefix, as the local FCM server does; records batch sizes."""

    def __init__(self, answer: Callable[[str, int], SendResult], time: FakeTime) -> None:
        self._answer = answer
        self._time = time
        self.batches: list[int] = []
        self.calls: dict[str, int] = {}

    def send_batch(self, messages: Sequence[PushMessage]) -> list[SendResult]:
        self.batches.append(len(messages))
        self._time.seconds += 0.1
        results = []
        for message in messages:
            self.calls[message.token] = self.calls.get(message.token, 0) + 1
            results.append(self._answer(message.token, self.calls[message.token]))
        return results


def by_prefix(token: str, attempt: int) -> SendResult:
    if token.startswith("retry-"):
        return SendResult(Outcome.RETRY, reason="unavailable", retry_after_seconds=1)
    if token.startswith("slow-"):
        return SendResult(Outcome.RETRY, reason="quota_exceeded", retry_after_seconds=60)
    if token.startswith("gone-"):
        return SendResult(Outcome.RETIRE, reason="unregistered")
    if token.startswith("once-") and attempt == 1:
        return SendResult(Outcome.RETRY, reason="unavailable")
    return SendResult(Outcome.SENT, message_id=f"projects/p/messages/{token}")


class World:
    def __init__(self, answer: Callable[[str, int], SendResult] = by_prefix) -> None:
        self.time = FakeTime()
        self.subscription_repo = InMemorySubscriptionRepository()
        self.notification_repo = InMemoryNotificationRepository()
        self.gateway = FakeGateway(answer, self.time)
        self.subscriptions = SubscriptionService(
            self.subscription_repo, InMemoryUserRepository(), 30, clock=self.time.now
        )
        self.service = NotificationService(
            self.notification_repo,
            self.subscription_repo,
            self.gateway,
            POLICY,
            clock=self.time.now,
            monotonic=self.time.monotonic,
            sleep=self.time.sleep,
        )

    def subscribe(self, *tokens: str, user: str = BOB) -> None:
        for token in tokens:
            self.subscriptions.subscribe(ORG, Subscribe(user_id=user, instance_id=token))

    def send(self, dedup_key: str | None = None, **fields: object) -> Summary:
        request = SendRequest.model_validate(
            {"recipients": [BOB], "title": "t", "body": "b"} | fields
        )
        return self.service.send(ORG, request, dedup_key)


def test_messages_go_out_in_batches_of_at_most_500() -> None:
    world = World()
    world.subscribe(*(f"t-{n}" for n in range(1200)))

    summary = world.send()

    assert world.gateway.batches == [500, 500, 200]
    assert summary.sent == 1200


def test_retries_back_off_and_stop_inside_the_deadline() -> None:
    world = World()
    world.subscribe("ok-1", "retry-1")

    summary = world.send()

    assert world.time.seconds <= POLICY.deadline_seconds
    assert world.time.sleeps == sorted(world.time.sleeps)  # backoff grows
    assert world.gateway.calls["ok-1"] == 1
    assert world.gateway.calls["retry-1"] >= 3
    assert (summary.sent, summary.failed) == (1, 1)


def test_a_retry_after_past_the_deadline_is_not_slept() -> None:
    world = World()
    world.subscribe("slow-1")

    summary = world.send()

    assert world.time.sleeps == []  # 60 s would break the 40 s deadline
    assert summary.failed == 1
    delivery = next(iter(world.notification_repo.deliveries[summary.notification_id].values()))
    assert delivery.error == "quota_exceeded"


def test_a_transient_failure_is_sent_on_retry() -> None:
    world = World()
    world.subscribe("once-1")

    summary = world.send()

    assert world.gateway.calls["once-1"] == 2
    assert summary.sent == 1


def test_a_gateway_exception_is_a_retryable_failure() -> None:
    def explode(token: str, attempt: int) -> SendResult:
        if attempt == 1:
            raise ConnectionError("boom")
        return SendResult(Outcome.SENT, message_id="m")

    world = World(explode)
    world.subscribe("t-1")

    assert world.send().sent == 1


def test_dead_tokens_are_retired_and_not_sent_to_again() -> None:
    world = World()
    world.subscribe("ok-1", "gone-1")

    first = world.send()
    second = world.send()

    assert first.removed_tokens == 1
    assert second.devices == 1
    assert world.gateway.calls["gone-1"] == 1


def test_a_replay_sends_nothing_and_answers_the_same() -> None:
    world = World()
    world.subscribe("ok-1")

    first = world.send("k")
    again = world.send("k")

    assert again == first
    assert world.gateway.calls["ok-1"] == 1


def test_a_replay_after_the_window_sends_again() -> None:
    world = World()
    world.subscribe("ok-1")
    first = world.send("k")
    world.time.seconds += 25 * 3600

    again = world.send("k")

    assert again.notification_id != first.notification_id
    assert world.gateway.calls["ok-1"] == 2


def test_an_identical_send_in_progress_is_waited_for_then_refused() -> None:
    world = World()
    world.subscribe("ok-1")
    request = SendRequest(recipients=[BOB], title="t", body="b")
    world.notification_repo.claim(
        ORG, "k", [BOB], START, START + timedelta(hours=1), timedelta(hours=24), START
    )

    with pytest.raises(SendInProgress):
        world.service.send(ORG, request, "k")

    assert world.time.seconds <= POLICY.deadline_seconds
    assert "ok-1" not in world.gateway.calls


def test_an_abandoned_send_is_taken_over_after_its_lease() -> None:
    world = World()
    world.subscribe("ok-1")
    world.notification_repo.claim(
        ORG, "k", [BOB], START, START + timedelta(seconds=5), timedelta(hours=24), START
    )

    summary = world.send("k")

    assert summary.sent == 1


def test_too_large_a_message_is_refused_before_anything_happens() -> None:
    world = World()
    world.subscribe("ok-1")

    with pytest.raises(MessageTooLarge):
        world.send(body="x" * 4000)

    assert world.notification_repo.records == {}
    assert world.gateway.batches == []


def test_payload_size_counts_content_and_the_receipt() -> None:
    small = SendRequest(recipients=[BOB], title="t", body="b").web_push()
    large = SendRequest(recipients=[BOB], title="t", body="é" * 1000).web_push()

    assert 150 < payload_size(small, None) < 400
    assert payload_size(large, None) - payload_size(small, None) == 1999  # UTF-8 bytes


def test_receipts_confirm_only_the_device_they_were_made_for() -> None:
    world = World()
    world.subscribe("ok-1")
    summary = world.send()
    (delivery,) = world.notification_repo.deliveries[summary.notification_id].values()

    with pytest.raises(UnknownReceipt):
        world.service.confirm_delivery(
            f"{ORG}.{summary.notification_id}.{delivery.device_id}.{'A' * 22}"
        )
    with pytest.raises(UnknownReceipt):
        world.service.confirm_delivery("garbage")
