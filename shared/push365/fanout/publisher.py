"""The fan-out topic: port and Pub/Sub adapter (google-cloud-pubsub, imported on first use)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from push365.errors import PublishOutcomeUnknown, QueueUnavailable
from push365.fanout.model import FanoutMessage

WAIT_MARGIN_SECONDS = 1.0
"""How much longer a publish waits for its futures than the client library's retry deadline: a
Pub/Sub that refuses connections is retried until the deadline and then ends in an error (a
definite failure) before the wait does."""


class FanoutPublisher(Protocol):
    """The port: publish messages; returns once Pub/Sub has stored every one."""

    def publish(self, messages: Sequence[FanoutMessage]) -> None:
        """Publish all, or raise.

        Raises:
            PublishOutcomeUnknown: Pub/Sub's answer did not come in time (a deadline passed):
                a message may have been stored all the same, and delivered later.
            QueueUnavailable: Pub/Sub answered with an error (unavailable after every retry,
                no such topic, no permission): the messages it refused were not stored.
        """
        ...


class PubSubPublisher:
    """Publishes to one topic (``PUBSUB_EMULATOR_HOST`` is honoured by the client library).

    One client per process, created on first use; every publish waits for Pub/Sub's answer:
    the client library retries within ``timeout_seconds``, and the publish waits
    :data:`WAIT_MARGIN_SECONDS` longer for it (:attr:`wait_seconds`).
    """

    def __init__(self, project_id: str, topic: str, timeout_seconds: float) -> None:
        self._project_id = project_id
        self._topic = topic
        self._timeout = timeout_seconds
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def topic_path(self) -> str:
        """``projects/{project}/topics/{topic}``."""
        return f"projects/{self._project_id}/topics/{self._topic}"

    @property
    def wait_seconds(self) -> float:
        """The longest a publish waits for Pub/Sub's answer."""
        return publish_wait_seconds(self._timeout)

    def _publisher(self) -> Any:
        with self._lock:
            if self._client is None:
                from google.cloud import pubsub_v1  # type: ignore[attr-defined]

                self._client = pubsub_v1.PublisherClient(
                    # Small batches, sent at once: a send waits for its one message.
                    batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.005),
                    publisher_options=pubsub_v1.types.PublisherOptions(
                        retry=_retry(self._timeout), timeout=self._timeout
                    ),
                )
            return self._client

    def publish(self, messages: Sequence[FanoutMessage]) -> None:
        from concurrent import futures

        publisher = self._publisher()
        pending = []
        for message in messages:
            data, attributes = message.encode()
            pending.append(publisher.publish(self.topic_path, data, **attributes))
        done, not_done = futures.wait(pending, timeout=self.wait_seconds)
        for future in not_done:
            future.cancel()
        errors = [error for f in done if (error := f.exception()) is not None]
        if not_done or any(_deadline(error) for error in errors):
            raise PublishOutcomeUnknown()
        if errors:
            raise QueueUnavailable()


def publish_wait_seconds(timeout_seconds: float) -> float:
    """How long a publish with this retry deadline waits for Pub/Sub's answer at most."""
    return timeout_seconds + WAIT_MARGIN_SECONDS


_NOT_SENT = ("failed to connect", "connection refused")
"""What gRPC says of a connection it could not open: no request went out on it."""


def _deadline(error: BaseException) -> bool:
    """Whether ``error`` leaves it open that Pub/Sub stored the message: anything but a refusal
    Pub/Sub answered (no topic, no permission, an invalid request) or a connection that could
    not be opened. A deadline, a reset connection or an internal error after the request may
    have been sent all count as unknown (the last attempt's error is what is seen: an earlier
    attempt cut after sending, then a refused connection, reads as refused)."""
    from google.api_core import exceptions

    if isinstance(error, exceptions.RetryError) and error.cause is not None:
        error = error.cause
    refused = (
        exceptions.NotFound,
        exceptions.PermissionDenied,
        exceptions.InvalidArgument,
        exceptions.Unauthenticated,
        exceptions.FailedPrecondition,
    )
    if isinstance(error, refused):
        return False
    text = str(error).lower()
    return not (
        isinstance(error, exceptions.ServiceUnavailable) and any(s in text for s in _NOT_SENT)
    )


def _retry(deadline: float) -> Any:
    from google.api_core import retry

    return retry.Retry(initial=0.1, maximum=2.0, multiplier=2.0, timeout=deadline)
