"""The promises of docs/local.md about running locally, tried as a developer would:
``python -m devstack`` (what ``make dev`` runs) and one function alone under
``functions-framework``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.emulator import FirestoreEmulator
from tests.conftest import REPO, example, free_port
from tests.stack import RunningStack, call, running_stack, signup

ORG = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"
BOB = "b1111111-2222-4333-8444-555555555502"
BIN = Path(sys.executable).parent


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def dev_stack(emulator: FirestoreEmulator, tmp_path: Path) -> Iterator[RunningStack]:
    with running_stack(tmp_path) as stack:
        yield stack


def test_make_dev_serves_every_function_and_ctrl_c_leaves_nothing_behind(
    dev_stack: RunningStack,
) -> None:
    ports, process, base = dev_stack.ports, dev_stack.process, dev_stack.base
    names = (
        "register",
        "subscribe",
        "unsubscribe",
        "send",
        "deliver",
        "receipt",
        "privacy",
        "purge",
    )
    for name in names:
        assert f"{base}/{name}" in dev_stack.output()

    status, created = call(
        f"{base}/register",
        {
            "organization": {
                "id": ORG,
                "unique_name": "unq",
                "name": "Contoso",
                "language_code": 1033,
            }
        },
        headers=signup(base, ORG, dev_stack.admin_key),
    )
    key = {"X-Push365-Key": created["api_key"]}
    subscribed = call(f"{base}/subscribe", example("subscription-create.json"), headers=key)
    unsubscribed = call(f"{base}/unsubscribe", example("subscription-delete.json"), headers=key)
    users = call(f"{base}/register/users", {"users": [{"id": BOB}]}, headers=key)
    call(f"{base}/subscribe", {"user_id": BOB, "instance_id": "bob-laptop"}, headers=key)
    sent = call(f"{base}/send", {"recipients": [BOB], "title": "Hi", "body": "there"}, headers=key)
    status_url = f"{base}/send/status?notification_id={sent[1]['notification_id']}"
    deadline = time.monotonic() + 30  # Pub/Sub pushes the plan, then the batch, to deliver
    while (progress := call(status_url, headers=key))[1]["status"] != "sent":
        assert time.monotonic() < deadline, progress
        time.sleep(0.2)
    fcm = call(f"http://127.0.0.1:{ports['fcm']}/_messages")
    data = fcm[1][0]["message"]["data"]
    receipt = call(data["receipt_url"], {"receipt": data["receipt"]})

    assert status == 201
    assert subscribed[0] == 201
    assert unsubscribed == (200, {"unsubscribed": 1, "purge_by": unsubscribed[1]["purge_by"]})
    assert users == (200, {"upserted": 1})
    assert sent[0] == 202
    assert progress[1]["counts"]["sent"] == 1
    assert [m["token"] for m in fcm[1]] == ["bob-laptop"]
    assert data["receipt_url"] == f"{base}/receipt"
    assert receipt == (204, None)

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    for port in ports.values():
        assert not listening(port), f"port {port} still in use after Ctrl-C"


def test_a_function_runs_alone_under_functions_framework(emulator: FirestoreEmulator) -> None:
    port = free_port()
    env = {**os.environ, "FIRESTORE_EMULATOR_HOST": emulator.address, "PUSH365_ADMIN_KEY": "a"}
    process = subprocess.Popen(
        [
            str(BIN / "functions-framework"),
            "--source",
            "functions/register.py",
            "--target",
            "register",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not listening(port) and time.monotonic() < deadline:
            time.sleep(0.1)

        organization_id = "11111111-2222-4333-8444-555555555555"
        _, issued = call(
            f"http://127.0.0.1:{port}/signup-codes",
            {"organization_id": organization_id},
            headers={"X-Push365-Admin-Key": "a"},
        )
        status, body = call(
            f"http://127.0.0.1:{port}/",
            {
                "organization": {
                    "id": organization_id,
                    "unique_name": "alone",
                    "name": "Alone",
                    "language_code": 1033,
                }
            },
            headers={"X-Push365-Signup-Code": issued["signup_code"]},
        )

        assert status == 201
        assert body["api_key"]
        status, body = call(f"http://127.0.0.1:{port}/rotate-key", {})
        assert status == 401
    finally:
        process.terminate()
        process.wait(timeout=10)
