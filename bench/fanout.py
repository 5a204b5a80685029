"""Benchmark ``fanout``: send answers at once whatever the audience, and deliver drains it.

Everything is the real thing on this machine: the Firestore and Pub/Sub emulators, ``send`` and
``deliver`` served by functions-framework (gunicorn, as Cloud Functions serves them; ``deliver``
with ``WORKERS=W`` processes behind one URL, as instances behind one function), and the local FCM
v1 server in its own process. One difference, on purpose: the Pub/Sub emulator pushes at most two
messages at a time (measured: 40 messages to an endpoint that takes 1 s, peak concurrency 2),
where production push scales out to many; so the bench pulls from the emulator's subscription and
pushes each message's exact push body to ``deliver`` with up to PUSHERS requests in flight, and
acknowledges on 2xx, as Pub/Sub's push does.

Prints, each a ``RESULT`` line:

- ``fanout_answer devices=N answer_p99_s=... answer_median_s=...``: send's answer time over 5 sends
  at 1,000 and at 100,000 devices (20 per recipient; deliver stopped: the answer is measured
  alone).
- ``fanout devices=100000 answer_s=... drained_s=... workers=W msg_s=... peak_rss_mb=...`` for
  W = 1 and 2: one send, until every device has been sent to (checked at the FCM server: each
  device once); peak RSS is the largest of any deliver process (and of send).
- ``deliver_vs_sdk devices=20000 deliver_s=... sdk_s=... ratio=...``: deliver's time for one send
  to 20,000 devices of an organization of their own (W=1, from the send to its last batch, so
  the plan and every record included) against bare firebase-admin
  ``send_each_for_multicast`` of the same tokens to the same server in the same run, at its best:
  batches of 500, the same number of keep-alive connections as deliver's pool, no proxy scan.
- ``small_in_big recipients=10 devices=100000 delivered_s=... idle_s=... ratio=...``: a send to
  10 users (200 devices) of the 100,000-device organization, from its request until its last
  device, made while a send to all the other users drains (W = 2, once a tenth of it is sent;
  checked not finished when the small one is), against the same small send with nothing else
  queued, in the same run (``--only-small`` seeds and measures this alone).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack import fanout  # noqa: E402
from devstack.emulator import FirestoreEmulator, PubSubEmulator  # noqa: E402
from devstack.fcm_server import FcmServerProcess  # noqa: E402
from tests.conftest import free_port  # noqa: E402

PROJECT = "demo-push365-bench"
ORG = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"
COMPARE_ORG = "9e8d7c6b-5a49-4382-9716-05f4e3d2c1b0"
TOPIC = "push365-fanout"
DEVICES_PER_USER = 20  # 100,000 devices are 5,000 recipients, the most one send names
POOL = 16  # deliver's FCM connections (PUSH365_FCM_CONNECTIONS) and the baseline's pool
PUSHERS = 16  # push requests in flight to deliver (gunicorn's 8 threads per worker, W workers)
BODY = {
    "title": "Case escalated",
    "body": "CAS-1 needs you",
    "link": "https://contoso.crm4.dynamics.com/",
    "data": {"case": "CAS-1"},
    "ttl_seconds": 3600,
    "urgency": "high",
}


def seed(users: int, org: str = ORG) -> tuple[str, list[str], list[str]]:
    """An organization with ``users`` users of DEVICES_PER_USER subscriptions each."""
    from push365.organizations.model import Registration
    from push365.organizations.repository import FirestoreOrganizationRepository
    from push365.organizations.service import OrganizationService
    from push365.store import firestore_client
    from push365.subscriptions.model import subscription_id

    client = firestore_client()
    registration = Registration.model_validate(
        {"organization": {"id": org, "unique_name": "bench", "name": "B", "language_code": 1033}}
    )
    key = OrganizationService(FirestoreOrganizationRepository(client)).register(registration, None)
    assert key.api_key
    user_ids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(users)]
    tokens: list[str] = []
    subscriptions = client.collection("organizations", org, "subscriptions")
    from google.cloud.firestore_v1.bulk_writer import BulkWriterOptions

    # The emulator needs no ramp-up (BulkWriter's default starts at 500 writes/s).
    writer = client.bulk_writer(
        options=BulkWriterOptions(initial_ops_per_second=20_000, max_ops_per_second=20_000)
    )
    users = client.collection("organizations", org, "users")
    for user_id in user_ids:
        devices = []
        for device in range(DEVICES_PER_USER):
            token = f"bench-{org[:4]}-{user_id}-{device}-" + "x" * 120  # a real token's length
            tokens.append(token)
            devices.append(subscription_id(token))
            writer.set(
                subscriptions.document(devices[-1]),
                {"instance_id": token, "user_id": user_id, "status": "active"},
            )
        # what subscribe writes with each subscription: the user's list of their devices
        writer.set(
            users.document(user_id), {"id": user_id, "devices": devices, "devices_listed": True}
        )
    writer.close()
    return key.api_key, user_ids, tokens


def serve(name: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "functions-framework"),
            "--source",
            f"functions/{name}.py",
            "--target",
            name,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except urllib.error.HTTPError:
            return process  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not start")


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        process.wait(timeout=30)


def call(url: str, body: Any = None, key: str | None = None, method: str = "GET") -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("X-Push365-Key", key)
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read() or b"null")


def peak_rss_mb(pid: int) -> float:
    """The largest resident size any process under ``pid`` reached (gunicorn's workers)."""
    peaks = []
    for candidate in [pid, *_children(pid)]:
        status = Path(f"/proc/{candidate}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found + [g for c in found for g in _children(c)]


class Bench:
    def __init__(self, pubsub: PubSubEmulator, fcm: FcmServerProcess, env: dict[str, str]):
        self.pubsub = pubsub
        self.fcm = fcm
        self.env = env
        self.send_port = free_port()
        self.deliver_port = free_port()
        self.send: subprocess.Popen[bytes] | None = None
        self.deliver: subprocess.Popen[bytes] | None = None
        self.keys: list[str] = []
        self.pump: fanout.Pump | None = None

    @property
    def send_url(self) -> str:
        return f"http://127.0.0.1:{self.send_port}/"

    def topics(self) -> None:
        """Fresh topics and pull subscriptions (drops whatever is queued)."""
        fanout.create(
            self.pubsub.address,
            fanout.FanoutTopology(
                PROJECT, TOPIC, None, max_delivery_attempts=100, retry_policy=False
            ),
        )

    def start_deliver(self, workers: int) -> None:
        stop(self.deliver)
        self.stop_pushers()
        self.deliver = serve("deliver", self.deliver_port, self.env | {"WORKERS": str(workers)})
        topology = fanout.FanoutTopology(PROJECT, TOPIC, None, retry_policy=False)
        endpoint = f"http://127.0.0.1:{self.deliver_port}/"
        self.pump = fanout.Pump(self.pubsub.address, topology, endpoint, PUSHERS).start()

    def stop_pushers(self) -> None:
        if self.pump is not None:
            self.pump.stop()
            self.pump = None

    def answer_times(self, recipients: list[str], sends: int) -> list[float]:
        times = []
        for _ in range(sends):
            started = time.perf_counter()
            answer = call(self.send_url, BODY | {"recipients": recipients}, self.keys[0], "POST")
            times.append(time.perf_counter() - started)
            assert answer["status"] == "queued", answer
        return times

    def sent(self, notification_id: str, key: str) -> dict[str, Any]:
        """The send's status once it is ``sent`` (half an hour at most)."""
        started = time.perf_counter()
        status_url = f"{self.send_url}status?notification_id={notification_id}"
        while (status := call(status_url, key=key))["status"] != "sent":
            assert time.perf_counter() - started < 1800, status
            time.sleep(0.05)
        return dict(status)

    def small_in_big(self, users: list[str], key: str, small: int) -> tuple[float, float]:
        """(idle, busy): seconds from a send to ``small`` users until its last device, with
        nothing else queued, and while a send to every other user of the organization drains.
        Checked at the FCM server: every device of both once."""
        few, rest = users[-small:], users[:-small]
        call(f"{self.fcm.url}/_messages", method="DELETE")
        started = time.perf_counter()
        answer = call(self.send_url, BODY | {"recipients": few}, key, "POST")
        self.sent(answer["notification_id"], key)
        idle = time.perf_counter() - started
        call(f"{self.fcm.url}/_messages", method="DELETE")
        big = call(self.send_url, BODY | {"recipients": rest}, key, "POST")
        big_url = f"{self.send_url}status?notification_id={big['notification_id']}"
        while call(big_url, key=key)["counts"].get("sent", 0) < len(rest) * DEVICES_PER_USER // 10:
            time.sleep(0.05)  # the big one is delivering (a tenth of it sent)
        started = time.perf_counter()
        answer = call(self.send_url, BODY | {"recipients": few}, key, "POST")
        small_status = self.sent(answer["notification_id"], key)
        busy = time.perf_counter() - started
        meanwhile = call(big_url, key=key)
        assert meanwhile["status"] != "sent", meanwhile  # the small one did not wait for it
        big_status = self.sent(big["notification_id"], key)
        assert big_status["counts"]["sent"] == len(rest) * DEVICES_PER_USER, big_status
        assert small_status["counts"]["sent"] == small * DEVICES_PER_USER, small_status
        stats = call(f"{self.fcm.url}/_stats")
        assert stats["reached"] == len(users) * DEVICES_PER_USER, stats
        assert stats["sent_twice"] == 0, stats
        print(
            f"  small {small_status['counts']['sent']} sent while the big one had "
            f"{meanwhile['counts'].get('sent', 0)} of {len(rest) * DEVICES_PER_USER}",
            flush=True,
        )
        return idle, busy

    def drain(self, recipients: list[str], devices: int, key: str) -> tuple[float, float]:
        """One send until its last device; (answer seconds, drained seconds)."""
        call(f"{self.fcm.url}/_messages", method="DELETE")
        started = time.perf_counter()
        answer = call(self.send_url, BODY | {"recipients": recipients}, key, "POST")
        answered = time.perf_counter() - started
        status_url = f"{self.send_url}status?notification_id={answer['notification_id']}"
        while (status := call(status_url, key=key))["status"] != "sent":
            assert time.perf_counter() - started < 1800, status
            time.sleep(0.2)
        drained = time.perf_counter() - started
        stats = call(f"{self.fcm.url}/_stats")
        counts = status["counts"]
        assert counts["sent"] == devices, counts
        assert stats["reached"] == devices, stats
        assert stats["sent_twice"] == 0, stats
        print(f"  counts {counts}", flush=True)
        return answered, drained


def baseline(fcm_url: str, tokens: list[str]) -> float:
    """firebase-admin at its best: its URL pointed at the local server, a pool of POOL
    keep-alive connections, no proxy-variable scan, batches of 500."""
    import warnings

    import firebase_admin
    import requests.adapters
    from firebase_admin import messaging
    from google.auth.credentials import AnonymousCredentials

    from push365.seams import firebase_admin as firebase_seam

    app = firebase_admin.initialize_app(
        AnonymousCredentials(), {"projectId": PROJECT, "httpTimeout": 30}, name="baseline"
    )
    service = firebase_seam.messaging_service(app)
    firebase_seam.set_service_url(service, f"{fcm_url}/v1/projects/{PROJECT}/messages:send")
    session = firebase_seam.service_session(service)
    assert session is not None
    session.mount(fcm_url, requests.adapters.HTTPAdapter(pool_maxsize=POOL, max_retries=0))
    session.trust_env = False

    def send_all(batch: list[str]) -> int:
        message = messaging.MulticastMessage(
            tokens=batch,  # registration tokens go in "token" (the local server checks)
            data={"case": "CAS-1"},
            webpush=messaging.WebpushConfig(
                headers={"TTL": "3600", "Urgency": "high"},
                notification=messaging.WebpushNotification(
                    title="Case escalated", body="CAS-1 needs you"
                ),
                fcm_options=messaging.WebpushFCMOptions(link="https://contoso.crm4.dynamics.com/"),
            ),
        )
        return int(messaging.send_each_for_multicast(message, app=app).success_count)

    warnings.filterwarnings("ignore", message=".*token.*deprecated.*", category=DeprecationWarning)
    send_all(tokens[:10])  # warm: imports, connections
    call(f"{fcm_url}/_messages", method="DELETE")
    started = time.perf_counter()
    sent = sum(send_all(tokens[start : start + 500]) for start in range(0, len(tokens), 500))
    elapsed = time.perf_counter() - started
    assert sent == len(tokens)
    return elapsed


@contextlib.contextmanager
def running(name: str) -> Iterator[tuple[Bench, FirestoreEmulator]]:
    """The emulators, the local FCM server and ``send`` (``deliver`` once ``start_deliver`` is
    called), on free ports, stopped on the way out."""
    logs = Path(tempfile.gettempdir())
    firestore = FirestoreEmulator(free_port(), log_path=logs / f"{name}-firestore.log")
    pubsub = PubSubEmulator(free_port(), log_path=logs / f"{name}-pubsub.log")
    fcm = FcmServerProcess(free_port())
    bench: Bench | None = None
    firestore.start()
    pubsub.start()
    fcm.start()
    try:
        os.environ.update(
            FIRESTORE_EMULATOR_HOST=firestore.address,
            PUBSUB_EMULATOR_HOST=pubsub.address,
            GOOGLE_CLOUD_PROJECT=PROJECT,
        )
        env = {
            **os.environ,
            "PUSH365_FCM_ENDPOINT": fcm.url,
            "PUSH365_FANOUT_TOPIC": TOPIC,
            "PUSH365_FCM_CONNECTIONS": str(POOL),
        }
        bench = Bench(pubsub, fcm, env)
        bench.topics()
        bench.send = serve("send", bench.send_port, env)
        yield bench, firestore
    finally:
        if bench is not None:
            bench.stop_pushers()
            stop(bench.deliver)
            stop(bench.send)
        fcm.stop()
        pubsub.stop()
        firestore.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--compare", type=int, default=20_000)
    parser.add_argument("--sends", type=int, default=5)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--few", type=int, default=10, help="recipients of the small send")
    parser.add_argument(
        "--only-small", action="store_true", help="seed, then only the small-in-big measurement"
    )
    arguments = parser.parse_args()
    with running("bench") as (bench, _):
        if arguments.only_small:
            key, users, tokens = seed(arguments.devices // DEVICES_PER_USER)
            bench.keys = [key]
            bench.start_deliver(2)
            idle, busy = bench.small_in_big(users, key, arguments.few)
            print(
                f"RESULT small_in_big recipients={arguments.few} devices={len(tokens)} "
                f"delivered_s={busy:.2f} idle_s={idle:.2f} ratio={busy / idle:.2f}",
                flush=True,
            )
            return
        fcm = bench.fcm
        # deliver against firebase-admin first, with only that organization stored (the
        # emulator scans every document for a query: a larger store slows every plan).
        compare_key, compare_users, compare_tokens = seed(
            arguments.compare // DEVICES_PER_USER, COMPARE_ORG
        )
        bench.keys = [compare_key]
        bench.start_deliver(1)
        bench.drain(compare_users[:1], DEVICES_PER_USER, compare_key)  # warm both processes
        _, deliver_s = bench.drain(compare_users, len(compare_tokens), compare_key)
        bench.stop_pushers()  # firebase-admin runs alone too (the pushers are threads of this one)
        sdk_s = baseline(fcm.url, compare_tokens)
        print(
            f"RESULT deliver_vs_sdk devices={len(compare_tokens)} deliver_s={deliver_s:.2f} "
            f"sdk_s={sdk_s:.2f} ratio={deliver_s / sdk_s:.2f}",
            flush=True,
        )

        started = time.perf_counter()
        key, users, tokens = seed(arguments.devices // DEVICES_PER_USER)
        print(f"seeded {len(tokens)} devices in {time.perf_counter() - started:.1f}s", flush=True)
        bench.keys = [key]
        bench.stop_pushers()  # the answers are measured alone: nothing is delivered meanwhile
        bench.topics()
        for devices in (arguments.small, arguments.devices):
            recipients = users[: devices // DEVICES_PER_USER]
            times = bench.answer_times(recipients, arguments.sends)
            print(
                f"RESULT fanout_answer devices={devices} answer_p99_s={max(times):.3f} "
                f"answer_median_s={statistics.median(times):.3f}",
                flush=True,
            )
        bench.topics()  # drop the queued sends unanswered: only their answers were measured

        for workers in [int(w) for w in arguments.workers.split(",")]:
            bench.start_deliver(workers)
            answered, drained = bench.drain(users, len(tokens), key)
            assert bench.deliver is not None
            rss = max(peak_rss_mb(bench.deliver.pid), peak_rss_mb(bench.send.pid))
            print(
                f"RESULT fanout devices={len(tokens)} answer_s={answered:.3f} "
                f"drained_s={drained:.1f} workers={workers} msg_s={len(tokens) / drained:.0f} "
                f"peak_rss_mb={rss:.0f}",
                flush=True,
            )
        # A small send while the big one drains (with the most workers measured above).
        idle, busy = bench.small_in_big(users, key, arguments.few)
        print(
            f"RESULT small_in_big recipients={arguments.few} devices={len(tokens)} "
            f"delivered_s={busy:.2f} idle_s={idle:.2f} ratio={busy / idle:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
