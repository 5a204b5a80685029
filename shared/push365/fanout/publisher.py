"""The fan-out topic: port and Pub/Sub adapter (google-cloud-pubsub, imported on first use)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from push365.errors import QueueUnavailable
from push365.fanout.model import FanoutMessage


class FanoutPublisher(Protocol):
    """The port: publish messages; returns once Pub/Sub has stored every one."""

    def publish(self, messages: Sequence[FanoutMessage]) -> None:
        """Publish all, or raise.

        Raises:
            QueueUnavailable: not every message was accepted within the timeout.
        """
        ...


class PubSubPublisher:
    """Publishes to one topic (``PUBSUB_EMULATOR_HOST`` is honoured by the client library).

    One client per process, created on first use; every publish waits for Pub/Sub's answer, at
    most ``timeout_seconds`` in all.
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
        done, not_done = futures.wait(pending, timeout=self._timeout)
        if not_done or any(f.exception() is not None for f in done):
            for future in not_done:
                future.cancel()
            raise QueueUnavailable()


def _retry(deadline: float) -> Any:
    from google.api_core import retry

    return retry.Retry(initial=0.1, maximum=2.0, multiplier=2.0, timeout=deadline)
