"""The fan-out under the faults that broke the old in-request send, end to end: ``send`` in
process, Pub/Sub's real push from the emulator to ``deliver`` running as its own process (killed
when a test says so), Firestore behind a proxy that can cut it off, and the local FCM server
answering slowly, with 429s or not at all. Deliveries are counted at the FCM side.

"Exactly once" as a person sees it: every device gets the notification; a device whose first
attempt's outcome was unknown (its worker died after sending, before recording) may get it a
second time, with the same web push ``Topic`` (so the push service replaces the first), and that
re-send is counted in the notification's ``resent``. Nothing else is ever sent twice.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from devstack import fanout
from devstack.emulator import FirestoreEmulator, PubSubEmulator
from devstack.fcm_server import LocalFcmServer
from push365 import bootstrap
from push365.notifications.deliveries import RECORDS, decode_records
from push365.notifications.receipts import device_id
from push365.settings import Settings, get_settings
from push365.store import BATCHES, NOTIFICATIONS, ORGANIZATIONS, firestore_client
from push365.subscriptions.model import subscription_id
from tests.conftest import PROJECT, RESULT_PROPERTY, fanout_topology, free_port
from tests.faults import DeliverProcess, TcpProxy
from tests.integration import conftest as integration
from tests.integration.conftest import BOB, ORG, OTHER_ORG, Functions, register
from tests.integration.test_reconciler import reconciler_at

# The in-process functions and the local SES, shared with the integration tests.
functions = integration.functions
ses = integration.ses

CHUNK = 10  # devices claimed, sent and recorded together: at most this many re-sent on a kill


@dataclass
class Stack:
    """deliver as a process behind Pub/Sub push, and the knobs a test turns."""

    api: Functions
    fcm: LocalFcmServer
    proxy: TcpProxy
    port: int
    env: dict[str, str]
    log: Path
    workers: list[DeliverProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start_worker(self) -> DeliverProcess:
        worker = DeliverProcess(self.port, self.env, self.log)
        worker.start()
        self.workers.append(worker)
        return worker

    def send(self, key: str, tokens: list[str], org: str = ORG, user: str = BOB) -> str:
        for token in tokens:
            answer = self.api.post("/subscribe", {"user_id": user, "instance_id": token}, key=key)
            assert answer.status_code in (200, 201)
        answer = self.api.post("/send", {"recipients": [user], "title": "t", "body": "b"}, key=key)
        assert answer.status_code == 202, answer.json
        return str(answer.json["notification_id"])

    def status(self, key: str, nid: str) -> Any:
        return self.api.get("/send/status", key=key, query={"notification_id": nid}).json

    def wait_done(self, key: str, nid: str, timeout: float) -> Any:
        return wait_for(lambda: self.status(key, nid)["status"] == "sent", timeout) and (
            self.status(key, nid)
        )

    def received(self, tokens: list[str]) -> Counter[str]:
        """Messages FCM took (answered 200) per token."""
        wanted = set(tokens)
        return Counter(
            m["token"] for m in self.fcm.messages() if m["response"] == 200 and m["token"] in wanted
        )


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return True


# deliver's settings in these tests: the production budget (docs/api/deliver.md, "The time
# budget") scaled down about tenfold so that leases run out in seconds, with its inequalities kept.
SCALED = {
    "PUSH365_FCM_HTTP_TIMEOUT_SECONDS": "2",
    "PUSH365_DELIVER_CHUNK_SIZE": str(CHUNK),
    "PUSH365_DELIVER_LEASE_SECONDS": "4",
    "PUSH365_STORE_TIMEOUT_SECONDS": "3",
    "PUSH365_QUEUE_TIMEOUT_SECONDS": "5",
    "PUSH365_DELIVER_CLOCK_SKEW_SECONDS": "0",
}


@pytest.fixture(autouse=True)
def _uncounted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """These tests subscribe thousands of devices within a minute through the in-process
    functions, past the subscribe route's quota by design: their subject is delivery (the quotas
    have their own tests: tests/integration/test_quotas.py, tests/hostile)."""
    monkeypatch.setenv("PUSH365_QUOTAS_ENABLED", "false")
    get_settings.cache_clear()
    bootstrap.quotas.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
    bootstrap.quotas.cache_clear()


def _stack(
    functions: Functions,
    emulator: FirestoreEmulator,
    pubsub: PubSubEmulator,
    fcm: LocalFcmServer,
    tmp_path: Path,
    settings: dict[str, str],
    ack_deadline_seconds: int,
) -> Iterator[Stack]:
    proxy = TcpProxy(emulator.address)
    port = free_port()
    topology = fanout_topology(f"http://127.0.0.1:{port}/")
    fanout.create(
        pubsub.address,
        fanout.FanoutTopology(
            PROJECT,
            topology.topic,
            topology.push_endpoint,
            max_delivery_attempts=100,  # retried for minutes here, before the dead-letter topic
            minimum_backoff="1s",
            maximum_backoff="5s",
            ack_deadline_seconds=ack_deadline_seconds,
        ),
    )
    env = {
        "FIRESTORE_EMULATOR_HOST": proxy.address,
        "PUBSUB_EMULATOR_HOST": pubsub.address,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "PUSH365_FCM_ENDPOINT": fcm.url,
        "PUSH365_FANOUT_TOPIC": topology.topic,
        "PUSH365_RETRY_FIRST_BACKOFF_SECONDS": "1",
        "PUSH365_RETRY_MAX_BACKOFF_SECONDS": "5",
        "PUSH365_RETRY_HORIZON_SECONDS": "600",
        "PUSH365_MAIL_BACKEND": "none",
        "PYTHONUNBUFFERED": "1",
        **settings,
    }
    running = Stack(functions, fcm, proxy, port, env, tmp_path / "deliver.log")
    with ExitStack() as cleanup:
        cleanup.callback(proxy.stop)
        cleanup.callback(fcm.reset_control)
        cleanup.callback(stop_all, running.workers)
        yield running


@pytest.fixture
def stack(
    functions: Functions,
    emulator: FirestoreEmulator,
    pubsub: PubSubEmulator,
    store: Any,
    fcm: LocalFcmServer,
    ses: Any,
    tmp_path: Path,
) -> Iterator[Stack]:
    yield from _stack(functions, emulator, pubsub, fcm, tmp_path, SCALED, 10)


# The production budget scaled down sixfold (its inequalities kept: docs/api/deliver.md, "The time
# budget"), with production's 250-device chunks: a kill loses the lease in seconds, not minutes.
SCALED_250 = {
    "PUSH365_DELIVER_CHUNK_SIZE": "250",
    "PUSH365_FCM_HTTP_TIMEOUT_SECONDS": "1",
    "PUSH365_DELIVER_CHUNK_BUDGET_SECONDS": "2",
    "PUSH365_DELIVER_LEASE_SECONDS": "6",
    "PUSH365_DELIVER_HANDLER_SECONDS": "4",
    "PUSH365_DELIVER_CLOCK_SKEW_SECONDS": "0.5",
    "PUSH365_STORE_TIMEOUT_SECONDS": "2",
    "PUSH365_QUEUE_TIMEOUT_SECONDS": "2",
}


@pytest.fixture
def scaled_250(
    functions: Functions,
    emulator: FirestoreEmulator,
    pubsub: PubSubEmulator,
    store: Any,
    fcm: LocalFcmServer,
    ses: Any,
    tmp_path: Path,
) -> Iterator[Stack]:
    yield from _stack(functions, emulator, pubsub, fcm, tmp_path, SCALED_250, 12)


@pytest.fixture
def production(
    functions: Functions,
    emulator: FirestoreEmulator,
    pubsub: PubSubEmulator,
    store: Any,
    fcm: LocalFcmServer,
    ses: Any,
    tmp_path: Path,
) -> Iterator[Stack]:
    """deliver with the deployed settings (settings.py's defaults: 250-device chunks, a 45 s
    lease, 10 s requests) and the deployed ack deadline (60 s); the test session's own faster
    timings (tests/conftest.py) are not inherited."""
    deployed = Settings.model_construct()
    settings = {
        f"PUSH365_{name.upper()}": str(getattr(deployed, name))
        for name in Settings.model_fields
        if name.endswith("_seconds") or name in ("deliver_chunk_size", "fcm_connections")
    }
    settings["PUSH365_RETRY_HORIZON_SECONDS"] = "600"  # within the test's patience
    yield from _stack(functions, emulator, pubsub, fcm, tmp_path, settings, 60)


def stop_all(workers: list[DeliverProcess]) -> None:
    for worker in workers:
        worker.stop()


def assert_shown_once(stack: Stack, tokens: list[str], nid: str, final: Any) -> None:
    """Every device got it; any second copy is a counted re-send with the same Topic."""
    counts = stack.received(tokens)
    assert set(counts) == set(tokens), "lost"
    extra = sum(n - 1 for n in counts.values())
    assert max(counts.values()) <= 2
    assert extra == final["counts"]["resent"]
    assert extra <= CHUNK
    topics = {m["message"]["webpush"]["headers"]["Topic"] for m in stack.fcm.messages()}
    assert topics == {nid}


def test_a_worker_killed_mid_batch_loses_nothing_and_resends_at_most_its_claim(
    stack: Stack,
) -> None:
    key = register(stack.api)
    tokens = [f"dev-{n:03d}" for n in range(100)]
    stack.fcm.control(delay_seconds=0.3)
    worker = stack.start_worker()
    nid = stack.send(key, tokens)
    wait_for(lambda: len(stack.fcm.messages()) >= 30, 60)

    worker.kill()
    stack.fcm.reset_control()
    stack.start_worker()  # Pub/Sub redelivers after the ack deadline; the lease has run out
    final = stack.wait_done(key, nid, 90)

    assert_shown_once(stack, tokens, nid, final)
    assert final["counts"]["sent"] == 100


def test_fcm_slower_than_the_lease_and_the_ack_deadline_sends_each_device_once(
    stack: Stack,
) -> None:
    key = register(stack.api)
    tokens = [f"dev-{n:03d}" for n in range(150)]
    stack.fcm.control(delay_seconds=1.0)  # 15 chunks: 15 s, past the 4 s lease and 10 s ack
    stack.start_worker()

    nid = stack.send(key, tokens)
    final = stack.wait_done(key, nid, 120)

    assert stack.received(tokens) == Counter({t: 1 for t in tokens})
    assert (final["counts"]["sent"], final["counts"]["resent"]) == (150, 0)
    # Pub/Sub delivered the batch again while it was being sent: handed back, not sent.
    assert '"route": "/batch", "method": "PUBSUB", "status": 503' in stack.log.read_text()


def test_firestore_unavailable_for_75_seconds_during_a_send(stack: Stack) -> None:
    key = register(stack.api)
    tokens = [f"dev-{n:03d}" for n in range(200)]
    stack.fcm.control(delay_seconds=0.3)
    stack.start_worker()
    nid = stack.send(key, tokens)
    wait_for(lambda: len(stack.fcm.messages()) >= 20, 60)

    stack.proxy.cut()
    time.sleep(75)
    stack.proxy.restore()
    stack.fcm.reset_control()
    final = stack.wait_done(key, nid, 120)

    assert_shown_once(stack, tokens, nid, final)
    assert final["counts"]["sent"] == 200


def pulled_topology(pubsub: PubSubEmulator) -> fanout.FanoutTopology:
    """The fan-out's topics made again with pull subscriptions (a pump pushes), retried for
    minutes before the dead-letter topic."""
    topology = dataclasses.replace(fanout_topology(), max_delivery_attempts=100)
    topology = dataclasses.replace(
        topology, minimum_backoff="1s", maximum_backoff="5s", retry_policy=False
    )
    fanout.create(pubsub.address, topology)
    return topology


def _pump(stack: Stack, pubsub: PubSubEmulator) -> Iterator[fanout.Pump]:
    pump = fanout.Pump(pubsub.address, pulled_topology(pubsub), stack.url).start()
    yield pump
    pump.stop()


@pytest.fixture
def pulled(stack: Stack, pubsub: PubSubEmulator) -> Iterator[fanout.Pump]:
    """Pull subscriptions, each message pushed to the deliver process by ``fanout.Pump`` (with
    the retry policy's backoff), as ``make dev`` does: the emulator's own push loses messages
    that back off for minutes (devstack/fanout.py says how)."""
    yield from _pump(stack, pubsub)


@pytest.fixture
def pulled_250(scaled_250: Stack, pubsub: PubSubEmulator) -> Iterator[fanout.Pump]:
    """As ``pulled``, for ``scaled_250``: a killed deliver's messages back off, and the emulator's
    own push loses those."""
    yield from _pump(scaled_250, pubsub)


def test_a_429_with_retry_after_120_and_fcm_refusing_connections_for_2_minutes(
    stack: Stack, pulled: fanout.Pump
) -> None:
    key_a = register(stack.api)
    key_b = register(stack.api, OTHER_ORG)
    stack.start_worker()
    tokens_a = [f"a-{n}" for n in range(10)]
    tokens_b = [f"b-{n}" for n in range(10)]

    stack.fcm.control(status_override=429, retry_after="120")
    nid_a = stack.send(key_a, tokens_a)
    wait_for(lambda: len(stack.fcm.messages()) >= 10, 60)
    throttled_at = time.monotonic()
    stack.fcm.reset_control()
    stack.fcm.control(refuse_seconds=120)
    refused_at = time.monotonic()
    nid_b = stack.send(key_b, tokens_b, org=OTHER_ORG)
    final_a = stack.wait_done(key_a, nid_a, 420)
    final_b = stack.wait_done(key_b, nid_b, 420)

    assert stack.received(tokens_a) == Counter({t: 1 for t in tokens_a})
    assert stack.received(tokens_b) == Counter({t: 1 for t in tokens_b})
    assert (final_a["counts"]["sent"], final_b["counts"]["sent"]) == (10, 10)
    assert time.monotonic() - throttled_at >= 120  # Retry-After was honoured
    assert time.monotonic() - refused_at >= 120
    assert pulled.answers[503] > 0  # deliver handed the batches back while FCM was unavailable


def assert_accounted(stack: Stack, tokens: list[str], final: Any) -> Counter[str]:
    """At most 2 copies of a device, and only for devices counted ``resent``; a send finished
    with counts that add up to its devices. The copies each token got, for what a test adds."""
    counts = stack.received(tokens)
    assert max(counts.values()) <= 2
    assert sum(1 for n in counts.values() if n == 2) <= final["counts"]["resent"]
    assert (final["status"], final["pending"]) == ("sent", 0)
    done = final["counts"]["sent"] + final["counts"]["failed"] + final["counts"]["skipped"]
    assert done == final["devices"] == len(tokens)
    return counts


def assert_at_most_one_counted_resend(stack: Stack, tokens: list[str], final: Any) -> None:
    """0 lost, and accounted for (``assert_accounted``)."""
    counts = assert_accounted(stack, tokens, final)
    assert set(counts) == set(tokens), f"lost: {len(set(tokens) - set(counts))}"


def test_a_250_device_chunk_with_fcm_answering_in_1_to_10_s_and_5_percent_never_answered(
    production: Stack,
) -> None:
    # Today's 45 s lease against a chunk that takes ~90 s: each takeover used to re-send it.
    key = register(production.api)
    tokens = [f"dev-{n:03d}" for n in range(250)]
    production.fcm.control(delay_seconds=1.0, delay_max_seconds=10.0, unanswered_every=20)
    production.start_worker()

    nid = production.send(key, tokens)
    final = production.wait_done(key, nid, 420)

    assert_at_most_one_counted_resend(production, tokens, final)
    log = production.log.read_text()
    assert '"handed_on": 1' in log  # chunks hit their budget and were handed on, not overrun


def test_sigkill_at_10_random_points_of_a_2000_device_send_in_250_device_chunks(
    scaled_250: Stack, pulled_250: fanout.Pump, record_property: Callable[[str, str], None]
) -> None:
    import random

    stack = scaled_250
    key = register(stack.api)
    tokens = [f"dev-{n:04d}" for n in range(2000)]
    stack.fcm.control(delay_seconds=0.05)
    worker = stack.start_worker()
    nid = stack.send(key, tokens)
    points = sorted(random.Random(24).sample(range(50, 1950), 10))

    for number, point in enumerate(points):
        # Half the kills come at the first message after a restart: the claimed re-sends of the
        # devices the last kill left unknown go first (plan order), so it dies re-sending them.
        at = point if number % 2 == 0 else len(stack.fcm.messages()) + 1
        wait_for(lambda at=at: len(stack.fcm.messages()) >= at, 120)  # type: ignore[misc]
        worker.kill()
        worker = stack.start_worker()
    final = stack.wait_done(key, nid, 300)

    # Never a third copy, and every device accounted for. What a kill can still cost, by
    # construction (docs/api/send.md, "Each device exactly once"): a kill while a window's re-send
    # claim is being stored leaves it claimed and unwritten, and a device whose first attempt was
    # not written either (claimed in a chunk the kill interrupted) is recorded failed,
    # unknown_outcome, without a copy. Counted, never silent; printed for the record.
    counts = assert_accounted(stack, tokens, final)
    twice = sum(1 for n in counts.values() if n == 2)
    unsent = {t for t in tokens if t not in counts}
    errors = failures(ORG, nid)
    assert {errors.get(device_id(subscription_id(t))) for t in unsent} <= {"unknown_outcome"}
    record_property(
        RESULT_PROPERTY,
        f"RESULT sigkill_2000 kills=10 unsent_recorded_failed={len(unsent)} twice={twice}",
    )


def failures(organization_id: str, nid: str) -> dict[str, str]:
    """Device id -> the error its delivery record names, over every batch of the notification."""
    found: dict[str, str] = {}
    batches = firestore_client().collection(
        ORGANIZATIONS, organization_id, NOTIFICATIONS, nid, BATCHES
    )
    for batch in batches.stream():
        for device, record in decode_records((batch.to_dict() or {}).get(RECORDS)).items():
            if record.get("error"):
                found[device] = str(record["error"])
    return found


def test_devices_unsubscribed_while_a_slow_batch_sends_get_nothing_after_it(
    pulled_250: fanout.Pump,
    scaled_250: Stack,
) -> None:
    # One batch of 500 in two 250-device chunks, FCM slow enough that a chunk outlasts its
    # budget: the devices are read again before each chunk (and each handed-on part of one).
    stack = scaled_250
    key = register(stack.api)
    tokens = [f"dev-{n:03d}" for n in range(500)]
    last = sorted(tokens, key=subscription_id)[-40:]  # planned, and so sent, last
    stack.fcm.control(delay_seconds=0.2)
    stack.start_worker()
    nid = stack.send(key, tokens)
    wait_for(lambda: len(stack.fcm.messages()) >= 50, 60)

    for token in last:
        answer = stack.api.post("/unsubscribe", {"instance_id": token}, key=key)
        assert answer.status_code == 200, answer.json
    stack.fcm.reset_control()
    final = stack.wait_done(key, nid, 180)

    counts = assert_accounted(stack, tokens, final)
    assert not set(counts) & set(last)
    assert set(counts) == set(tokens) - set(last)
    assert final["counts"]["skipped"] == 40
    assert final["counts"]["sent"] + final["counts"]["failed"] == 460


class TwinPump(fanout.Pump):
    """Pub/Sub's push, each message to two workers at the same moment."""

    def __init__(self, emulator: str, topology: Any, endpoints: list[str]) -> None:
        super().__init__(emulator, topology, endpoints[0])
        self._endpoints = endpoints

    def _post(self, body: Any) -> int:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(self._endpoints)) as pool:
            statuses = list(pool.map(lambda e: fanout.post(e, body), self._endpoints))
        return min(statuses, key=lambda s: (not 200 <= s < 300, s))


def test_each_message_to_two_workers_at_once_sends_each_device_once(
    scaled_250: Stack, pubsub: PubSubEmulator, tmp_path: Path
) -> None:
    stack = scaled_250
    key = register(stack.api)
    tokens = [f"dev-{n:04d}" for n in range(1000)]
    stack.fcm.control(delay_seconds=0.05)
    stack.start_worker()
    twin = DeliverProcess(free_port(), stack.env, tmp_path / "twin.log")
    twin.start()
    pump = TwinPump(pubsub.address, pulled_topology(pubsub), [stack.url, twin.url]).start()
    try:
        nid = stack.send(key, tokens)
        final = stack.wait_done(key, nid, 180)
    finally:
        pump.stop()
        twin.stop()

    assert stack.received(tokens) == Counter({t: 1 for t in tokens})
    assert (final["counts"]["sent"], final["counts"]["resent"]) == (1000, 0)
    # Both workers took messages, and the second of each pair was turned away, never sent.
    assert '"route": "/batch"' in (tmp_path / "twin.log").read_text()


def test_a_queue_lost_mid_send_ends_recorded_by_the_reconciler_never_stuck(
    scaled_250: Stack,
    pulled_250: fanout.Pump,
    pubsub: PubSubEmulator,
    record_property: Callable[[str, str], None],
) -> None:
    stack = scaled_250
    key = register(stack.api)
    tokens = [f"dev-{n:04d}" for n in range(2000)]
    stack.fcm.control(delay_seconds=0.05)
    stack.start_worker()
    nid = stack.send(key, tokens)
    wait_for(lambda: len(stack.fcm.messages()) >= 300, 120)

    # The subscriptions deleted and made again: every queued message is gone.
    pulled_250.stop()
    fanout.create(pubsub.address, pulled_250.topology)
    pulled_250.start()
    settled = stack.status(key, nid)
    while True:  # until the worker has finished what it held
        time.sleep(3)
        now = stack.status(key, nid)
        if now["counts"] == settled["counts"]:
            break
        settled = now
    assert (settled["status"], settled["pending"] > 0) == ("delivering", True)  # stuck, but:
    report = reconciler_at(timedelta(hours=2, minutes=5)).run()

    final = stack.status(key, nid)
    assert report.given_up == 1
    counts = assert_accounted(stack, tokens, final)
    unsent = {t for t in tokens if t not in counts}
    errors = failures(ORG, nid)
    # Content is kept only in the messages: what they carried is recorded lost, never re-sent.
    assert {errors.get(device_id(subscription_id(t))) for t in unsent} <= {"lost"}
    assert len(unsent) == final["counts"]["failed"] > 0
    record_property(
        RESULT_PROPERTY, f"RESULT queue_lost devices=2000 sent={len(counts)} lost={len(unsent)}"
    )
