"""Benchmark ``send_fanout``: one notification to 5,000 devices (2,500 users x 2) through the
whole HTTP path, against bare firebase-admin sending the same 5,000 tokens, in the same run.

Push365 side: ``POST /send`` to the ``send`` function served by ``functions-framework`` (as Cloud
Functions serves it), reading subscriptions from the real Firestore emulator, sending through
firebase-admin to the local FCM v1 server (its own process), recording every delivery.
Baseline: ``messaging.send_each_for_multicast`` of the same tokens, 500 at a time, to the same
server, with firebase-admin's defaults (only its URL pointed at the local server).

Rounds alternate push365 and baseline; the medians are compared. The last line:
``RESULT send_fanout push365_s=<s> baseline_s=<s> ratio=<push365/baseline> peak_rss_mb=<mb>``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.emulator import FirestoreEmulator  # noqa: E402
from devstack.fcm_server import FcmServerProcess  # noqa: E402
from tests.conftest import free_port  # noqa: E402

PROJECT = "demo-push365-bench"
ORG = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"


def seed(users: int, devices_per_user: int) -> tuple[str, list[str], list[str]]:
    """An organization with ``users`` users of ``devices_per_user`` subscriptions each."""
    from push365.organizations.model import Registration
    from push365.organizations.repository import FirestoreOrganizationRepository
    from push365.organizations.service import OrganizationService
    from push365.store import firestore_client
    from push365.subscriptions.model import subscription_id

    client = firestore_client()
    registration = Registration.model_validate(
        {
            "organization": {
                "id": ORG,
                "unique_name": "bench",
                "name": "Bench",
                "language_code": 1033,
            }
        }
    )
    key = OrganizationService(FirestoreOrganizationRepository(client)).register(registration, None)
    assert key.api_key
    user_ids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(users)]
    tokens: list[str] = []
    subscriptions = client.collection("organizations", ORG, "subscriptions")
    batch = client.batch()
    for user_id in user_ids:
        for device in range(devices_per_user):
            token = f"bench-{user_id}-{device}-" + "x" * 120  # about a real token's length
            tokens.append(token)
            batch.set(
                subscriptions.document(subscription_id(token)),
                {"instance_id": token, "user_id": user_id, "status": "active"},
            )
            if len(tokens) % 500 == 0:
                batch.commit()
                batch = client.batch()
    batch.commit()
    return key.api_key, user_ids, tokens


def serve_send_function(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "functions-framework"),
            "--source",
            "functions/send.py",
            "--target",
            "send",
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
        except urllib.error.HTTPError:
            return process  # it answers (405 for GET)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the send function did not start")


def post(url: str, body: Any, key: str) -> dict[str, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("X-Push365-Key", key)
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def fcm_count(fcm_url: str, clear: bool = True) -> int:
    with urllib.request.urlopen(f"{fcm_url}/_messages", timeout=30) as response:
        count = len(json.loads(response.read()))
    if clear:
        request = urllib.request.Request(f"{fcm_url}/_messages", method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()
    return count


def baseline_app(fcm_url: str) -> Any:
    """firebase-admin as its documentation sets it up; only its URL points at the local server."""
    import firebase_admin
    from firebase_admin import messaging
    from google.auth.credentials import AnonymousCredentials

    app = firebase_admin.initialize_app(
        AnonymousCredentials(), {"projectId": PROJECT, "httpTimeout": 30}, name="baseline"
    )
    service = messaging._get_messaging_service(app)
    service._fcm_url = f"{fcm_url}/v1/projects/{PROJECT}/messages:send"
    return app


def baseline_send(app: Any, tokens: list[str]) -> int:
    from firebase_admin import messaging

    sent = 0
    for start in range(0, len(tokens), 500):
        message = messaging.MulticastMessage(
            fids=tokens[start : start + 500],
            data={"case": "CAS-1"},
            webpush=messaging.WebpushConfig(
                headers={"TTL": "3600", "Urgency": "high"},
                notification=messaging.WebpushNotification(
                    title="Case escalated", body="CAS-1 needs you"
                ),
                fcm_options=messaging.WebpushFCMOptions(link="https://contoso.crm4.dynamics.com/"),
            ),
        )
        sent += messaging.send_each_for_multicast(message, app=app).success_count
    return sent


def peak_rss_mb(pid: int) -> float:
    """The largest resident size any process of the function server reached (gunicorn's worker)."""
    peaks = []
    for candidate in [pid, *_children(pid)]:
        status = Path(f"/proc/{candidate}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found += [int(c) for c in children]
    return found + [g for c in found for g in _children(c)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2500)
    parser.add_argument("--devices-per-user", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()

    emulator = FirestoreEmulator(
        free_port(), log_path=Path(tempfile.gettempdir()) / "bench-firestore.log"
    )
    fcm = FcmServerProcess(free_port())
    function: subprocess.Popen[bytes] | None = None
    emulator.start()
    fcm.start()
    try:
        os.environ.update(FIRESTORE_EMULATOR_HOST=emulator.address, GOOGLE_CLOUD_PROJECT=PROJECT)
        env = {**os.environ, "PUSH365_FCM_ENDPOINT": fcm.url}
        key, user_ids, tokens = seed(arguments.users, arguments.devices_per_user)
        port = free_port()
        function = serve_send_function(port, env)
        url = f"http://127.0.0.1:{port}/"
        body = {
            "recipients": user_ids,
            "title": "Case escalated",
            "body": "CAS-1 needs you",
            "link": "https://contoso.crm4.dynamics.com/",
            "data": {"case": "CAS-1"},
            "ttl_seconds": 3600,
            "urgency": "high",
        }
        app = baseline_app(fcm.url)
        # Warm both sides (imports, connections) on one user's devices.
        post(url, body | {"recipients": user_ids[:1]}, key)
        baseline_send(app, tokens[: arguments.devices_per_user])
        fcm_count(fcm.url)

        push365_times, baseline_times = [], []
        for round_number in range(1, arguments.rounds + 1):
            started = time.perf_counter()
            summary = post(url, body, key)
            push365_times.append(time.perf_counter() - started)
            assert summary["sent"] == len(tokens), summary
            assert fcm_count(fcm.url) == len(tokens)

            started = time.perf_counter()
            sent = baseline_send(app, tokens)
            baseline_times.append(time.perf_counter() - started)
            assert sent == len(tokens)
            assert fcm_count(fcm.url) == len(tokens)
            print(
                f"round {round_number}: push365 {push365_times[-1]:.2f}s "
                f"baseline {baseline_times[-1]:.2f}s",
                flush=True,
            )

        push365_s = statistics.median(push365_times)
        baseline_s = statistics.median(baseline_times)
        rss = peak_rss_mb(function.pid)
        print(
            f"RESULT send_fanout push365_s={push365_s:.2f} baseline_s={baseline_s:.2f} "
            f"ratio={push365_s / baseline_s:.2f} peak_rss_mb={rss:.0f}"
        )
    finally:
        if function is not None:
            function.terminate()
            function.wait(timeout=10)
        fcm.stop()
        emulator.stop()


if __name__ == "__main__":
    main()
