"""``send`` and ``deliver`` stay flat under a soak: each served by functions-framework in a process
of its own (gunicorn's worker, as deployed), its resident size read after a warm-up and after
some hundreds of requests more.

Before the fix in ``push365.store.finishing_streams`` a status poll grew ``send`` by 54 KB and a
fan-out message grew ``deliver`` by 39 KB (``bench/soak.py``, 5,000 requests each, prints the
figures). The bounds here are a few KB a request: far below the leak, above the noise of a
short soak (a process still warming up grows by 0-2.5 KB a request over its first thousand).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devstack import fanout
from devstack.emulator import FirestoreEmulator, PubSubEmulator
from devstack.fcm_server import LocalFcmServer
from tests.conftest import FANOUT_TOPIC, PROJECT, REPO, RESULT_PROPERTY, free_port

ORG = "6d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
USERS = [f"{n:08x}-0000-4000-8000-00000000000a" for n in range(5)]
DEVICES_PER_USER = 2
CLIENTS = 4  # requests in flight
SEND_POLLS = 800
SEND_BOUND_KB = 4.0
DELIVER_WARMUP = 400  # its FCM connections and request threads come up over the first hundreds
DELIVER_MESSAGES = 600
DELIVER_BOUND_KB = 6.0
BODY = {"title": "Soak", "body": "One of many", "ttl_seconds": 60}


def serve(name: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """``name`` under functions-framework on a free port; the process and its URL."""
    port = free_port()
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
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, f"{name} exited"
        assert time.monotonic() < deadline, f"{name} did not start"
        try:
            urllib.request.urlopen(url, timeout=1).close()
        except urllib.error.HTTPError:
            return process, url  # it answers
        except OSError:
            time.sleep(0.1)
            continue
        return process, url


def rss_kb(pid: int) -> int:
    """The resident size of the largest process under ``pid`` (gunicorn's one worker)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(child) for child in (task / "children").read_text().split()]
    sizes = []
    for each in pids:
        status = Path(f"/proc/{each}/status").read_text()
        sizes.append(int(next(s for s in status.splitlines() if s.startswith("VmRSS:")).split()[1]))
    return max(sizes)


def request(url: str, key: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    message = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    message.add_header("Content-Type", "application/json")
    message.add_header("X-Push365-Key", key)
    with urllib.request.urlopen(message, timeout=60) as response:
        return json.loads(response.read())


def growth_kb_per_request(pid: int, run: Callable[[int], None], warmup: int, count: int) -> float:
    run(warmup)
    time.sleep(0.5)
    before = rss_kb(pid)
    run(count)
    time.sleep(0.5)
    return (rss_kb(pid) - before) / count


def result(function: str, requests: int, growth: float, bound: float) -> str:
    return (
        f"RESULT soak_test function={function} requests={requests} "
        f"rss_growth_kb_per_request={growth:.2f} bound={bound}"
    )


@pytest.fixture(scope="module")
def organization(
    emulator: FirestoreEmulator, pubsub: PubSubEmulator, fcm_server: LocalFcmServer
) -> Iterator[tuple[str, dict[str, str]]]:
    """A registered organization's key, with USERS' devices; the functions' environment."""
    from push365.organizations.model import Registration
    from push365.organizations.repository import FirestoreOrganizationRepository
    from push365.organizations.service import OrganizationService
    from push365.store import store_client
    from push365.subscriptions.model import subscription_id

    emulator.reset(PROJECT)
    # A client of its own: the process-wide one would read (and cache) the settings here, before
    # the fixtures of the tests that run next in this process have set theirs.
    client = store_client(PROJECT)
    registration = Registration.model_validate(
        {"organization": {"id": ORG, "unique_name": "soak", "name": "S", "language_code": 1033}}
    )
    key = OrganizationService(FirestoreOrganizationRepository(client)).register(registration, None)
    assert key.api_key
    subscriptions = client.collection("organizations", ORG, "subscriptions")
    for user in USERS:
        for device in range(DEVICES_PER_USER):
            token = f"soak-{user}-{device}-" + "x" * 120
            subscriptions.document(subscription_id(token)).set(
                {"instance_id": token, "user_id": user, "status": "active"}
            )
    fanout.create(pubsub.address, topology())
    # (thousands of calls of one route within minutes: past its quota by design)
    yield (
        key.api_key,
        {**os.environ, "PUSH365_MAIL_BACKEND": "none", "PUSH365_QUOTAS_ENABLED": "false"},
    )
    emulator.reset(PROJECT)


def topology() -> fanout.FanoutTopology:
    return fanout.FanoutTopology(PROJECT, FANOUT_TOPIC, None, retry_policy=False)


def test_send_stays_flat_under_status_polls(
    organization: tuple[str, dict[str, str]], record_property: Callable[[str, str], None]
) -> None:
    key, env = organization
    process, url = serve("send", env)
    try:
        accepted = request(url, key, BODY | {"recipients": USERS[:1]})
        status_url = f"{url}status?notification_id={accepted['notification_id']}"

        def run(count: int) -> None:
            with ThreadPoolExecutor(CLIENTS) as pool:
                answers = list(pool.map(lambda _: request(status_url, key), range(count)))
            assert {a["notification_id"] for a in answers} == {accepted["notification_id"]}

        growth = growth_kb_per_request(process.pid, run, 200, SEND_POLLS)
    finally:
        process.terminate()
        process.wait(timeout=30)

    record_property(RESULT_PROPERTY, result("send", SEND_POLLS, growth, SEND_BOUND_KB))
    assert growth <= SEND_BOUND_KB, f"send grew {growth:.2f} KB a status poll"


def test_deliver_stays_flat_under_fanout_messages(
    organization: tuple[str, dict[str, str]],
    pubsub: PubSubEmulator,
    fcm_server: LocalFcmServer,
    record_property: Callable[[str, str], None],
) -> None:
    key, env = organization
    sender, send_url = serve("send", env)
    process, deliver_url = serve("deliver", env)
    pump = fanout.Pump(pubsub.address, topology(), deliver_url, CLIENTS).start()
    try:

        def run(count: int) -> None:
            """Deliver ``count`` messages: a plan and a batch for each one-recipient send."""
            target = sum(pump.answers.values()) + count
            with ThreadPoolExecutor(CLIENTS) as pool:
                list(
                    pool.map(
                        lambda n: request(
                            send_url, key, BODY | {"recipients": [USERS[n % len(USERS)]]}
                        ),
                        range(count // 2),
                    )
                )
            deadline = time.monotonic() + 120
            while sum(pump.answers.values()) < target:
                assert time.monotonic() < deadline, pump.answers
                time.sleep(0.05)
            assert set(pump.answers) == {200}, pump.answers
            fcm_server.clear()

        growth = growth_kb_per_request(process.pid, run, DELIVER_WARMUP, DELIVER_MESSAGES)
    finally:
        pump.stop()
        for each in (process, sender):
            each.terminate()
            each.wait(timeout=30)

    record_property(RESULT_PROPERTY, result("deliver", DELIVER_MESSAGES, growth, DELIVER_BOUND_KB))
    assert growth <= DELIVER_BOUND_KB, f"deliver grew {growth:.2f} KB a fan-out message"
