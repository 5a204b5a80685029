"""The Pub/Sub publisher tells a definite failure (Pub/Sub answered an error: nothing stored) from
an unknown outcome (no answer in time: the message may be stored). The real client against the
emulator: tests/integration/test_publish_outcome.py."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from google.api_core import exceptions

from push365.errors import PublishOutcomeUnknown, QueueUnavailable
from push365.fanout.model import Content, FanoutMessage, Kind
from push365.fanout.publisher import WAIT_MARGIN_SECONDS, PubSubPublisher

ORG = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"
BOB = "b1111111-2222-4333-8444-555555555502"


class FakeClient:
    """Answers each publish with the next of ``outcomes``: an error, a message id, or None
    (the future never completes)."""

    def __init__(self, *outcomes: BaseException | str | None) -> None:
        self._outcomes = list(outcomes)
        self.futures: list[Future[str]] = []

    def publish(self, topic: str, data: bytes, **attributes: str) -> Future[str]:
        future: Future[str] = Future()
        outcome = self._outcomes.pop(0)
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        elif outcome is not None:
            future.set_result(outcome)
        self.futures.append(future)
        return future


def api_error(kind: type[Exception], *args: Any) -> Exception:
    """An exception of the client library (its constructors carry no type hints)."""
    return kind(*args)


def publisher(client: FakeClient, timeout: float = 10.0) -> PubSubPublisher:
    made = PubSubPublisher("p", "t", timeout)
    made._client = client
    return made


def plan() -> FanoutMessage:
    return FanoutMessage(
        kind=Kind.PLAN,
        organization_id=ORG,
        notification_id="0" * 32,
        content=Content(title="t", body="b"),
        seal="A" * 43,
        recipients=[BOB],
    )


def outcome(*answers: Any, timeout: float = 10.0) -> type[Exception] | None:
    try:
        publisher(FakeClient(*answers), timeout).publish([plan() for _ in answers])
    except QueueUnavailable as error:
        return type(error)
    return None


def test_every_message_stored_is_a_publish_that_returns() -> None:
    assert outcome("1", "2") is None


@pytest.mark.parametrize(
    "error",
    [
        api_error(exceptions.ServiceUnavailable, "connection refused"),
        api_error(
            exceptions.RetryError,
            "Timeout of 10.0s exceeded",
            api_error(exceptions.ServiceUnavailable, "failed to connect to all addresses"),
        ),
        api_error(exceptions.NotFound, "no such topic"),
        api_error(exceptions.PermissionDenied, "no"),
    ],
)
def test_an_error_pub_sub_answered_is_a_definite_failure(error: Exception) -> None:
    assert outcome("1", error) is QueueUnavailable


@pytest.mark.parametrize(
    "error",
    [
        api_error(exceptions.DeadlineExceeded, "no answer"),
        # the connection went after the request may have been written
        api_error(exceptions.ServiceUnavailable, "Socket closed"),
        api_error(exceptions.InternalServerError, "internal error"),
        api_error(
            exceptions.RetryError,
            "Timeout of 10.0s exceeded",
            api_error(exceptions.DeadlineExceeded, "x"),
        ),
    ],
)
def test_no_answer_in_time_is_an_unknown_outcome(error: Exception) -> None:
    assert outcome(error) is PublishOutcomeUnknown
    # One message of several that may be stored makes the whole publish unknown.
    assert outcome(api_error(exceptions.NotFound, "x"), error) is PublishOutcomeUnknown


def test_a_future_not_done_when_the_wait_ends_is_unknown_and_cancelled() -> None:
    client = FakeClient("1", None)
    with pytest.raises(PublishOutcomeUnknown):
        publisher(client, timeout=0.01).publish([plan(), plan()])

    assert client.futures[1].cancelled()


def test_the_wait_outlasts_the_retry_deadline() -> None:
    assert PubSubPublisher("p", "t", 10.0).wait_seconds == 10.0 + WAIT_MARGIN_SECONDS > 10.0
