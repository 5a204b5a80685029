"""The local stack as a developer runs it (``python -m devstack``, what ``make dev`` runs), in a
process of its own with everything it writes captured to a file; and a small HTTP client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import (
    REPO,
    TEST_FCM_HTTP_TIMEOUT_SECONDS,
    free_port,
)

READY = "local FCM v1 server"  # the last line make dev prints once everything answers
ADMIN_KEY = "local-admin-key"  # make dev's


@dataclass
class RunningStack:
    """A running ``python -m devstack``."""

    process: subprocess.Popen[bytes]
    ports: dict[str, int]
    log: Path
    admin_key: str = ADMIN_KEY

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def fcm(self) -> str:
        return f"http://127.0.0.1:{self.ports['fcm']}"

    def output(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        return self.log.read_text()


@contextmanager
def running_stack(folder: Path, **env: str) -> Iterator[RunningStack]:
    """Start the stack on free ports with ``env`` added; Ctrl-C (SIGINT) it at the end."""
    ports = {
        "http": free_port(),
        "firestore": free_port(),
        "pubsub": free_port(),
        "fcm": free_port(),
    }
    environment = {
        **os.environ,
        "PUSH365_HTTP_PORT": str(ports["http"]),
        "PUSH365_FIRESTORE_PORT": str(ports["firestore"]),
        "PUSH365_PUBSUB_PORT": str(ports["pubsub"]),
        "PUSH365_FCM_PORT": str(ports["fcm"]),
        "PYTHONUNBUFFERED": "1",
        # Transient FCM errors are retried until the horizon: a short one keeps tests short.
        "PUSH365_RETRY_HORIZON_SECONDS": "3",
        "PUSH365_RETRY_FIRST_BACKOFF_SECONDS": "0.2",
        "PUSH365_RETRY_MAX_BACKOFF_SECONDS": "1",
        "PUSH365_FCM_HTTP_TIMEOUT_SECONDS": str(TEST_FCM_HTTP_TIMEOUT_SECONDS),
        "PUSH365_MAIL_BACKEND": "none",
        "PUSH365_ADMIN_KEY": ADMIN_KEY,
        **env,
    }
    for inherited in (
        "FIRESTORE_EMULATOR_HOST",
        "PUBSUB_EMULATOR_HOST",
        "PUSH365_FANOUT_TOPIC",
        "PUSH365_RECEIPT_URL",
        "PUSH365_FCM_ENDPOINT",
    ):
        if inherited not in env:
            environment.pop(inherited, None)
    log = folder / "devstack-output.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack"],
            cwd=REPO,
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    running = RunningStack(process, ports, log, environment["PUSH365_ADMIN_KEY"])
    with _ready(running, READY, signal.SIGINT) as stack:
        yield stack


@contextmanager
def _ready(stack: RunningStack, marker: str, stop: int) -> Iterator[RunningStack]:
    """Wait until ``stack`` prints ``marker``; send it ``stop`` at the end."""
    try:
        deadline = time.monotonic() + 60
        while marker not in stack.output():
            assert stack.process.poll() is None, stack.output()
            assert time.monotonic() < deadline, stack.output()
            time.sleep(0.1)
        yield stack
    finally:
        if stack.process.poll() is None:
            stack.process.send_signal(stop)
            stack.process.wait(timeout=30)


def signup(base: str, organization_id: str, admin_key: str = ADMIN_KEY) -> dict[str, str]:
    """The header that lets ``organization_id`` be registered: a code the operator issued."""
    status, issued = call(
        f"{base}/register/signup-codes",
        {"organization_id": organization_id},
        headers={"X-Push365-Admin-Key": admin_key},
    )
    assert status == 201, issued
    return {"X-Push365-Signup-Code": issued["signup_code"]}


def call(
    url: str,
    body: Any = None,
    *,
    method: str | None = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One HTTP request; the status and the decoded JSON answer (None when empty, the text when
    it is not JSON)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"))
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


@contextmanager
def running_gateway(folder: Path, **env: str) -> Iterator[RunningStack]:
    """Every function behind one port in a process of its own (``python -m devstack.gateway``),
    over the store and queue ``env`` names; no emulator of its own."""
    ports = {"http": free_port()}
    log = folder / "gateway-output.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack.gateway", str(ports["http"])],
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    with _ready(RunningStack(process, ports, log), "gateway ready", signal.SIGTERM) as gateway:
        yield gateway
