"""The fan-out topics and subscriptions of the local stack, made on the Pub/Sub emulator over its
REST surface, as infra/pubsub.tf makes them in production, and ``Pump``: Pub/Sub's push to
``deliver``, done by pulling.

Why pull locally: the emulator's push (0.8.20) stops redelivering messages that back off under a
retry policy once two of them are handed back (reproduced with a bare endpoint answering 503: one
such message comes back every few seconds for minutes, two come back about six times and then
never, neither acknowledged nor dead-lettered), and it pushes at most two messages at a time. The
pump posts each message's exact push body to the endpoint, acknowledges on 2xx, and on anything
else hands it back with the backoff production's retry policy would give (``ack deadline`` of
``minimum_backoff * 2^(attempt-1)``, at most ``maximum_backoff``), up to ``concurrency`` at once.
Other differences from production: no OIDC token, and a shorter backoff, so that a retried batch
comes back in seconds, not minutes.
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import urllib.error
import urllib.request
from collections import Counter
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
    retry_policy: bool = True  # False where a Pump pulls: the emulator's backoff loses messages

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
    common: dict[str, Any] = {
        "pushConfig": push,
        "ackDeadlineSeconds": topology.ack_deadline_seconds,
        "messageRetentionDuration": topology.retention,
    }
    if topology.retry_policy:  # off for a Pump, which backs off itself (see above)
        common["retryPolicy"] = {
            "minimumBackoff": topology.minimum_backoff,
            "maximumBackoff": topology.maximum_backoff,
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


def _seconds(duration: str) -> float:
    return float(duration.rstrip("s"))


class Pump:
    """Pub/Sub's push to ``endpoint`` for both subscriptions of ``topology`` (pull ones), done by
    pulling: long polls, ``concurrency`` posts in flight, 2xx acknowledges, anything else hands
    the message back after the retry policy's backoff."""

    def __init__(
        self, emulator: str, topology: FanoutTopology, endpoint: str, concurrency: int = 16
    ):
        self._base = f"http://{emulator}/v1/projects/{topology.project}/subscriptions"
        self._topology = topology
        self._endpoint = endpoint
        self._concurrency = concurrency
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.answers: Counter[int] = Counter()  # how often deliver answered each status

    @property
    def topology(self) -> FanoutTopology:
        """The topics and subscriptions it pulls from."""
        return self._topology

    def start(self) -> Pump:
        self._stop.clear()
        for name in (self._topology.subscription, self._topology.dead_letter_subscription):
            free = threading.Semaphore(self._concurrency)
            pulled: queue.Queue[dict[str, Any]] = queue.Queue()
            self._threads.append(threading.Thread(target=self._poll, args=(name, free, pulled)))
            self._threads += [
                threading.Thread(target=self._push, args=(name, free, pulled))
                for _ in range(self._concurrency)
            ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()
        return self

    def stop(self) -> None:
        """Stop pulling and pushing; a poll still waiting hands back what it gets."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=0.5)
        self._threads = []

    def _poll(self, name: str, free: threading.Semaphore, pulled: queue.Queue[Any]) -> None:
        while not self._stop.is_set():
            if not free.acquire(timeout=0.2):
                continue
            slots = 1
            while slots < self._concurrency and free.acquire(blocking=False):
                slots += 1
            # A long poll: the emulator answers as soon as there is a message (else in 89 s).
            body = {"maxMessages": slots, "returnImmediately": False}
            try:
                received = self._call(f"{name}:pull", body, 120).get("receivedMessages", [])
            except (OSError, http.client.HTTPException, ValueError):
                received = []
                self._stop.wait(1)
            if self._stop.is_set() and received:
                self._hand_back(name, [m["ackId"] for m in received], 0)
                return
            for item in received:
                pulled.put(item)
            for _ in range(slots - len(received)):
                free.release()

    def _push(self, name: str, free: threading.Semaphore, pulled: queue.Queue[Any]) -> None:
        subscription = f"projects/{self._topology.project}/subscriptions/{name}"
        while not self._stop.is_set():
            try:
                item = pulled.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                status = self._post({"message": item["message"], "subscription": subscription})
                self.answers[status] += 1
                if 200 <= status < 300:
                    self._call(f"{name}:acknowledge", {"ackIds": [item["ackId"]]})
                else:
                    attempt = int(item.get("deliveryAttempt") or 1)
                    backoff = min(
                        _seconds(self._topology.minimum_backoff) * 2 ** (attempt - 1),
                        _seconds(self._topology.maximum_backoff),
                    )
                    self._hand_back(name, [item["ackId"]], round(backoff))
            except (OSError, http.client.HTTPException, ValueError):
                pass  # the ack deadline runs out and the emulator delivers it again
            finally:
                free.release()

    def _hand_back(self, name: str, ack_ids: list[str], seconds: int) -> None:
        self._call(f"{name}:modifyAckDeadline", {"ackIds": ack_ids, "ackDeadlineSeconds": seconds})

    def _post(self, body: Any) -> int:
        return post(self._endpoint, body)

    def _call(self, path: str, body: Any, timeout: float = 30) -> Any:
        request = urllib.request.Request(f"{self._base}/{path}", json.dumps(body).encode())
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"{}")


def post(endpoint: str, body: Any) -> int:
    """A push body to ``endpoint`` as Pub/Sub posts it; the answer's status (503 unanswered)."""
    request = urllib.request.Request(endpoint, json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 503
