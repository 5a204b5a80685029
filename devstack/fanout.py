"""The fan-out topics and push subscriptions of the local stack, made on the Pub/Sub emulator over
its REST surface, as infra/pubsub.tf makes them in production.

Differences from production, kept small on purpose: the push endpoint is the local gateway
without OIDC, and the retry backoff is shorter (``minimum_backoff``/``maximum_backoff``) so that
a retried batch comes back in seconds, not minutes.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from typing import Any

DEAD_LETTER_SUFFIX = "-dead-letter"


@dataclass(frozen=True)
class FanoutTopology:
    """What to create: the topic, its dead-letter topic and their push subscriptions."""

    project: str
    topic: str
    push_endpoint: str | None  # None: pull subscriptions (the integration tests pull and push)
    max_delivery_attempts: int = 20
    minimum_backoff: str = "1s"
    maximum_backoff: str = "10s"
    ack_deadline_seconds: int = 60
    retention: str = "7200s"

    @property
    def dead_letter_topic(self) -> str:
        return self.topic + DEAD_LETTER_SUFFIX

    @property
    def subscription(self) -> str:
        return self.topic + "-deliver"

    @property
    def dead_letter_subscription(self) -> str:
        return self.dead_letter_topic + "-deliver"


def create(emulator: str, topology: FanoutTopology) -> None:
    """Create (or replace) the topics and subscriptions on the emulator at ``host:port``."""
    base = f"http://{emulator}/v1/projects/{topology.project}"
    project = f"projects/{topology.project}"
    for topic in (topology.topic, topology.dead_letter_topic):
        _call("DELETE", f"{base}/topics/{topic}", missing_ok=True)
        _call("PUT", f"{base}/topics/{topic}", {})
    push = {"pushEndpoint": topology.push_endpoint} if topology.push_endpoint else {}
    common = {
        "pushConfig": push,
        "ackDeadlineSeconds": topology.ack_deadline_seconds,
        "messageRetentionDuration": topology.retention,
        "retryPolicy": {
            "minimumBackoff": topology.minimum_backoff,
            "maximumBackoff": topology.maximum_backoff,
        },
    }
    subscriptions = {
        topology.subscription: common
        | {
            "topic": f"{project}/topics/{topology.topic}",
            "deadLetterPolicy": {
                "deadLetterTopic": f"{project}/topics/{topology.dead_letter_topic}",
                "maxDeliveryAttempts": topology.max_delivery_attempts,
            },
        },
        topology.dead_letter_subscription: common
        | {"topic": f"{project}/topics/{topology.dead_letter_topic}"},
    }
    for name, body in subscriptions.items():
        _call("DELETE", f"{base}/subscriptions/{name}", missing_ok=True)
        _call("PUT", f"{base}/subscriptions/{name}", body)


def _call(method: str, url: str, body: Any = None, *, missing_ok: bool = False) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        if missing_ok and error.code == 404:
            return None
        raise RuntimeError(f"Pub/Sub emulator: {method} {url} answered {error.code}") from None
