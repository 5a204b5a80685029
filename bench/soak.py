"""Benchmark ``soak``: a function's memory under thousands of requests, as shipped, against the
same soak with the store's stream fix taken out, in the same run.

Everything is the real thing on this machine, as in ``bench/fanout.py``: the Firestore and
Pub/Sub emulators, the local FCM server in its own process, and each function served by
functions-framework (gunicorn, one worker, its default threads) in a process of its own. The
function's resident size (``VmRSS`` of the gunicorn worker, ``/proc``) is read after a warm-up and
again after ``--requests`` more requests; the growth per request is the difference over the
requests.

- ``send``: ``GET /send/status`` polls of one stored notification, ``--clients`` at a time (what
  a caller waiting for a send does, and what grew the process by 20-60 KB a request).
- ``deliver``: one-recipient sends (3 devices each) made through ``send``, their plan and batch
  messages pushed to ``deliver`` by ``fanout.Pump`` exactly as Pub/Sub pushes them (as in ``make
  dev``); each batch goes to the local FCM server. The requests are deliver's, counted at the
  pump (a plan and a batch per send).

Each function is soaked in three variants, each a fresh process: ``fixed`` (the code as it is),
``unfixed`` (``push365.store.finishing_streams`` made a no-op: the code before the fix, the
channel still ``SingleThreadedUnaryStream``) and ``default_channel`` (the fix in place, the
channel without that option, gRPC's default). Last lines, one per function:
``RESULT soak function=<f> requests=<n> rss_growth_kb_per_request=<fixed>
baseline_kb_per_request=<unfixed> ratio=<fixed/unfixed> default_channel_kb_per_request=<...>``;
then what the fix costs (the option is there for CPU: ``bench/deliver_cpu.py``), in this
process, the three variants' clients alternating: ``RESULT soak_read_cost read=get`` (a
``DocumentReference.get``) and ``read=streamed_document`` (a document of ``stream_rows``),
``fixed_cpu_us=... baseline_us=<unfixed> ratio=... default_channel_us=...``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fanout import _children, stop  # noqa: E402
from devstack import fanout  # noqa: E402
from devstack.emulator import FirestoreEmulator, PubSubEmulator  # noqa: E402
from devstack.fcm_server import FcmServerProcess  # noqa: E402
from tests.conftest import free_port  # noqa: E402

PROJECT = "demo-push365-soak"
ORG = "5e0a1c2d-3b4f-4a61-8c7d-9e0f1a2b3c4d"
TOPIC = "push365-fanout"
USERS = 20
DEVICES_PER_USER = 3
VARIANTS = ("fixed", "unfixed", "default_channel")
BODY = {"title": "Case escalated", "body": "CAS-1 needs you", "ttl_seconds": 3600}


@contextlib.contextmanager
def patched(variant: str) -> Iterator[None]:
    """The store's channel as ``variant`` has it, while this lasts (for the channels made
    meanwhile): the fix taken out, or the option."""
    from push365 import store

    finishing, options = store.finishing_streams, store._stream_options
    if variant == "unfixed":
        store.finishing_streams = lambda channel: channel
    elif variant == "default_channel":
        store._stream_options = lambda: []
    elif variant != "fixed":
        raise SystemExit(f"unknown variant {variant}")
    try:
        yield
    finally:
        store.finishing_streams, store._stream_options = finishing, options


def serve_variant(arguments: list[str]) -> None:
    """``soak.py --serve VARIANT <functions-framework arguments>``: functions-framework's own
    command, in this process, after ``apply_variant``."""
    from importlib.metadata import entry_points

    (command,) = entry_points(group="console_scripts", name="functions-framework")
    with patched(arguments[0]):  # the function's client is made on its first request
        command.load().main(args=arguments[1:], prog_name="functions-framework")


def serve(name: str, variant: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve",
            variant,
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
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{name} ({variant}) exited"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except urllib.error.HTTPError:
            return process  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not start")


def rss_kb(pid: int) -> int:
    """The resident size of the process that serves: gunicorn's worker (the largest process
    under ``pid``; one worker)."""
    sizes = []
    for candidate in [pid, *_children(pid)]:
        with contextlib.suppress(FileNotFoundError):
            status = Path(f"/proc/{candidate}/status").read_text()
            line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
            sizes.append(int(line.split()[1]))
    return max(sizes)


def request(url: str, body: Any = None, key: str | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    message = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    message.add_header("Content-Type", "application/json")
    if key is not None:
        message.add_header("X-Push365-Key", key)
    with urllib.request.urlopen(message, timeout=60) as response:
        return json.loads(response.read() or b"null")


def seed() -> tuple[str, list[str]]:
    """A registered organization (its key) with USERS users of DEVICES_PER_USER devices."""
    from push365.organizations.model import Registration
    from push365.organizations.repository import FirestoreOrganizationRepository
    from push365.organizations.service import OrganizationService
    from push365.store import firestore_client
    from push365.subscriptions.model import subscription_id

    client = firestore_client()
    registration = Registration.model_validate(
        {"organization": {"id": ORG, "unique_name": "soak", "name": "S", "language_code": 1033}}
    )
    key = OrganizationService(FirestoreOrganizationRepository(client)).register(registration, None)
    assert key.api_key
    users = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(USERS)]
    batch = client.batch()
    for user in users:
        for device in range(DEVICES_PER_USER):
            token = f"soak-{user}-{device}-" + "x" * 120
            batch.set(
                client.collection("organizations", ORG, "subscriptions").document(
                    subscription_id(token)
                ),
                {"instance_id": token, "user_id": user, "status": "active"},
            )
    batch.commit()
    return key.api_key, users


class Soak:
    def __init__(self, pubsub: PubSubEmulator, fcm: FcmServerProcess, env: dict[str, str]):
        self.pubsub = pubsub
        self.fcm = fcm
        self.env = env
        self.key, self.users = seed()

    def measure(
        self, pid: int, warmup: int, requests: int, run: Callable[[int], int], label: str
    ) -> float:
        """``run(n)`` makes ``n`` requests and returns how many it made; KB per request."""
        run(warmup)
        time.sleep(1)  # the last answers' buffers settle
        before = rss_kb(pid)
        made, step = 0, max(requests // 5, 1)
        started = time.perf_counter()
        while made < requests:
            made += run(min(step, requests - made))
            print(
                f"  {label}: {made} requests, rss {rss_kb(pid) / 1024:.0f} MB "
                f"({time.perf_counter() - started:.0f}s)",
                flush=True,
            )
        time.sleep(1)
        after = rss_kb(pid)
        growth = (after - before) / made
        print(
            f"  {label}: rss {before / 1024:.0f} -> {after / 1024:.0f} MB over {made} requests: "
            f"{growth:.2f} KB a request",
            flush=True,
        )
        return growth

    def send(self, variant: str, warmup: int, requests: int, clients: int) -> float:
        port = free_port()
        process = serve("send", variant, port, self.env)
        try:
            base = f"http://127.0.0.1:{port}/"
            accepted = request(base, BODY | {"recipients": self.users[:1]}, self.key)
            url = f"{base}status?notification_id={accepted['notification_id']}"

            def poll(_: int) -> None:
                answer = request(url, key=self.key)
                assert answer["notification_id"] == accepted["notification_id"], answer

            def run(count: int) -> int:
                with ThreadPoolExecutor(clients) as pool:
                    list(pool.map(poll, range(count)))
                return count

            return self.measure(process.pid, warmup, requests, run, f"send {variant}")
        finally:
            stop(process)

    def deliver(self, variant: str, warmup: int, requests: int, clients: int) -> float:
        fanout.create(
            self.pubsub.address,
            fanout.FanoutTopology(PROJECT, TOPIC, None, retry_policy=False),
        )
        send_port, deliver_port = free_port(), free_port()
        sender = serve("send", "fixed", send_port, self.env)
        process = serve("deliver", variant, deliver_port, self.env)
        topology = fanout.FanoutTopology(PROJECT, TOPIC, None, retry_policy=False)
        pump = fanout.Pump(
            self.pubsub.address, topology, f"http://127.0.0.1:{deliver_port}/", clients
        ).start()
        sent = iter(range(10**9))
        lock = threading.Lock()
        try:
            base = f"http://127.0.0.1:{send_port}/"

            def one_send(_: int) -> None:
                with lock:
                    user = self.users[next(sent) % len(self.users)]
                answer = request(base, BODY | {"recipients": [user]}, self.key)
                assert answer["status"] == "queued", answer

            def run(count: int) -> int:
                """Sends until deliver has answered ``count`` more requests (two a send)."""
                target = sum(pump.answers.values()) + count
                with ThreadPoolExecutor(clients) as pool:
                    list(pool.map(one_send, range((count + 1) // 2)))
                deadline = time.monotonic() + 300
                while sum(pump.answers.values()) < target:
                    assert time.monotonic() < deadline, pump.answers
                    time.sleep(0.05)
                time.sleep(0.5)  # a straggler (a retried batch) is counted too
                failed = {s: n for s, n in pump.answers.items() if not 200 <= s < 300}
                assert not failed, pump.answers
                _clear(self.fcm.url)
                return sum(pump.answers.values()) - (target - count)

            return self.measure(process.pid, warmup, requests, run, f"deliver {variant}")
        finally:
            pump.stop()
            stop(process)
            stop(sender)


def read_cost(documents: int = 500, rounds: int = 30) -> dict[str, tuple[float, float]]:
    """What the fix costs a read, in this process, per variant: CPU microseconds a
    ``DocumentReference.get`` (send's status reads) and a streamed document (``stream_rows`` of
    ``documents`` subscriptions, as deliver's plan reads them), the variants alternating."""
    from push365 import store
    from push365.seams import firestore as firestore_seam

    clients = {}
    for variant in VARIANTS:
        with patched(variant):
            made = store.store_client(PROJECT)
            store.bound_every_call(made, 30)
            firestore_seam.open_channel(made)  # its channel, made now
        clients[variant] = made
    collection = clients["fixed"].collection("organizations", "read-cost", "subscriptions")
    batch = clients["fixed"].batch()
    for n in range(documents):
        batch.set(collection.document(f"s{n:05d}"), {"user_id": "u", "status": "active"})
    batch.commit()
    gets, streamed = dict.fromkeys(VARIANTS, 0.0), dict.fromkeys(VARIANTS, 0.0)
    for _ in range(rounds):
        for variant, made in clients.items():
            subscriptions = made.collection("organizations", "read-cost", "subscriptions")
            reference = subscriptions.document("s00000")
            started = time.process_time()
            for _ in range(50):
                reference.get(**store.bounded(30))
            gets[variant] += time.process_time() - started
            started = time.process_time()
            rows = store.stream_rows(subscriptions.order_by("__name__"), 30)
            assert sum(1 for _ in rows) == documents
            streamed[variant] += time.process_time() - started
    return {
        variant: (
            gets[variant] * 1e6 / (50 * rounds),
            streamed[variant] * 1e6 / (documents * rounds),
        )
        for variant in VARIANTS
    }


def _clear(fcm_url: str) -> None:
    """The local FCM server keeps every message: drop them (its memory is not measured, but
    the machine's is shared)."""
    message = urllib.request.Request(f"{fcm_url}/_messages", method="DELETE")
    with urllib.request.urlopen(message, timeout=30):
        pass


@contextlib.contextmanager
def running() -> Iterator[Soak]:
    logs = Path(tempfile.gettempdir())
    firestore = FirestoreEmulator(free_port(), log_path=logs / "soak-firestore.log")
    pubsub = PubSubEmulator(free_port(), log_path=logs / "soak-pubsub.log")
    fcm = FcmServerProcess(free_port())
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
            "PUSH365_MAIL_BACKEND": "none",
            # thousands of calls of one route within minutes: past its quota by design
            "PUSH365_QUOTAS_ENABLED": "false",
        }
        # The queue send publishes to (deliver's soak pumps it; send's leaves it unread).
        fanout.create(pubsub.address, fanout.FanoutTopology(PROJECT, TOPIC, None))
        yield Soak(pubsub, fcm, env)
    finally:
        fcm.stop()
        pubsub.stop()
        firestore.stop()


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve_variant(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4, help="requests in flight")
    parser.add_argument("--functions", default="send,deliver")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--no-read-cost", dest="read_cost", action="store_false", help="skip the CPU a read"
    )
    arguments = parser.parse_args()
    variants = arguments.variants.split(",")
    results = []
    with running() as soak:
        for function in arguments.functions.split(","):
            growth = {
                variant: getattr(soak, function)(
                    variant, arguments.warmup, arguments.requests, arguments.clients
                )
                for variant in variants
            }
            line = (
                f"RESULT soak function={function} requests={arguments.requests} "
                f"rss_growth_kb_per_request={growth['fixed']:.2f}"
            )
            if "unfixed" in growth:
                ratio = growth["fixed"] / growth["unfixed"] if growth["unfixed"] > 0 else 0.0
                line += f" baseline_kb_per_request={growth['unfixed']:.2f} ratio={ratio:.3f}"
            if "default_channel" in growth:
                line += f" default_channel_kb_per_request={growth['default_channel']:.2f}"
            results.append(line)
            print(line, flush=True)
        if arguments.read_cost:
            cost = read_cost()
            fixed, unfixed, default = (cost[v] for v in VARIANTS)
            results += [
                f"RESULT soak_read_cost read={read} fixed_cpu_us={fixed[n]:.1f} "
                f"baseline_us={unfixed[n]:.1f} ratio={fixed[n] / unfixed[n]:.2f} "
                f"default_channel_us={default[n]:.1f}"
                for n, read in enumerate(("get", "streamed_document"))
            ]
            print("\n".join(results[-2:]), flush=True)
    for line in results:
        print(line)


if __name__ == "__main__":
    main()
