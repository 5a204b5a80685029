"""The README's promises about running locally, tried as a developer would: ``python -m devstack``
(what ``make dev`` runs) and one function alone under ``functions-framework``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.emulator import FirestoreEmulator
from tests.conftest import REPO, example, free_port

ORG = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"
BOB = "b1111111-2222-4333-8444-555555555502"
BIN = Path(sys.executable).parent


def call(url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for_line(process: subprocess.Popen[str], text: str, timeout: float = 60) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"never printed {text!r}: {''.join(seen)}")


@pytest.fixture
def dev_stack(emulator: FirestoreEmulator, tmp_path: Path) -> Iterator[dict[str, Any]]:
    ports = {"http": free_port(), "firestore": free_port(), "fcm": free_port()}
    env = {
        **os.environ,
        "PUSH365_HTTP_PORT": str(ports["http"]),
        "PUSH365_FIRESTORE_PORT": str(ports["firestore"]),
        "PUSH365_FCM_PORT": str(ports["fcm"]),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("FIRESTORE_EMULATOR_HOST", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = wait_for_line(process, "local FCM v1 server")
        yield {"process": process, "ports": ports, "banner": "".join(lines)}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_make_dev_serves_every_function_and_ctrl_c_leaves_nothing_behind(
    dev_stack: dict[str, Any],
) -> None:
    ports, process = dev_stack["ports"], dev_stack["process"]
    base = f"http://127.0.0.1:{ports['http']}"
    for name in ("register", "subscribe", "unsubscribe", "send", "receipt"):
        assert f"{base}/{name}" in dev_stack["banner"]

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
    )
    key = {"X-Push365-Key": created["api_key"]}
    subscribed = call(f"{base}/subscribe", example("subscription-create.json"), key)
    unsubscribed = call(f"{base}/unsubscribe", example("subscription-delete.json"), key)
    users = call(f"{base}/register/users", {"users": [{"id": BOB}]}, key)
    call(f"{base}/subscribe", {"user_id": BOB, "instance_id": "bob-laptop"}, key)
    sent = call(f"{base}/send", {"recipients": [BOB], "title": "Hi", "body": "there"}, key)
    fcm = call(f"http://127.0.0.1:{ports['fcm']}/_messages")
    data = fcm[1][0]["message"]["data"]
    receipt = call(data["receipt_url"], {"receipt": data["receipt"]})

    assert status == 201
    assert subscribed[0] == 201
    assert unsubscribed == (200, {"unsubscribed": 1, "purge_by": unsubscribed[1]["purge_by"]})
    assert users == (200, {"upserted": 1})
    assert sent[0] == 200
    assert sent[1]["sent"] == 1
    assert [m["token"] for m in fcm[1]] == ["bob-laptop"]
    assert data["receipt_url"] == f"{base}/receipt"
    assert receipt == (204, None)

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    for port in ports.values():
        assert not listening(port), f"port {port} still in use after Ctrl-C"


def test_a_function_runs_alone_under_functions_framework(emulator: FirestoreEmulator) -> None:
    port = free_port()
    env = {**os.environ, "FIRESTORE_EMULATOR_HOST": emulator.address}
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

        status, body = call(
            f"http://127.0.0.1:{port}/",
            {
                "organization": {
                    "id": "11111111-2222-4333-8444-555555555555",
                    "unique_name": "alone",
                    "name": "Alone",
                    "language_code": 1033,
                }
            },
        )

        assert status == 201
        assert body["api_key"]
        status, body = call(f"http://127.0.0.1:{port}/rotate-key", {})
        assert status == 401
    finally:
        process.terminate()
        process.wait(timeout=10)
