"""Nothing a request carries reaches the logs, on any path; each call leaves one audit record.

The whole local stack runs as a developer runs it (``python -m devstack``), with everything the
process writes (stdout and stderr: logging, print, tracebacks) captured to a file. Canary strings
ride in every content-bearing field through every function, valid and invalid.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.emulator import FirestoreEmulator
from tests.conftest import TEST_ADMIN_KEY, example
from tests.stack import RunningStack, call, running_stack, signup

CANARY = "CANARY-9d2c"
ORG = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"
BOB = "b1111111-2222-4333-8444-555555555502"
ALICE = "a1111111-2222-4333-8444-555555555501"
TRACE = "105445aa7843bc8bf206b12000100000"


class Stack:
    """The running stack, counting the calls made to its functions."""

    def __init__(self, running: RunningStack, outbox: Path) -> None:
        self.running = running
        self.outbox = outbox
        self.calls = 0

    def signup(self, organization_id: str) -> dict[str, str]:
        self.calls += 1
        return signup(self.running.base, organization_id, self.running.admin_key)

    def call(self, path: str, body: Any = None, **options: Any) -> tuple[int, Any]:
        self.calls += 1
        return call(self.running.base + path, body, **options)


@pytest.fixture
def stack(emulator: FirestoreEmulator, tmp_path: Path) -> Iterator[Stack]:
    outbox = tmp_path / "outbox"
    environment = {
        "PUSH365_ADMIN_KEY": TEST_ADMIN_KEY,
        "PUSH365_MAIL_BACKEND": "outbox",
        "PUSH365_OUTBOX_DIR": str(outbox),
    }
    with running_stack(tmp_path, **environment) as running:
        yield Stack(running, outbox)


def settled_output(stack: Stack, quiet: float = 2.0, timeout: float = 60.0) -> str:
    """The output once the fan-out has delivered (and retried) everything: no new line for
    ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last = stack.running.output()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = stack.running.output()
        if now == last:
            return now
        last = now
    raise AssertionError("the stack kept writing")


def test_no_canary_reaches_the_process_output_and_each_call_is_one_record(stack: Stack) -> None:
    # The process's first request carries a key-like canary in its query string: a logging
    # library's one-off entries come with the first request.
    first = stack.call(f"/subscribe?code={CANARY}", {"user_id": CANARY})
    assert first[0] == 401
    status, created = stack.call(
        "/register",
        {
            "organization": {
                "id": ORG,
                "unique_name": f"{CANARY}-u",
                "name": f"{CANARY}-n",
                "language_code": 1033,
            },
            "business": {
                k: f"{CANARY}-{k}" for k in ("name", "phone", "email", "country", "address")
            },
            "admins": [
                {"full_name": f"{CANARY}-a", "email": f"{CANARY}@x", "mobile_phone": CANARY}
            ],
            "extra": CANARY,
        },
        headers=stack.signup(ORG),
    )
    assert status == 201
    key = created["api_key"]
    auth = {"X-Push365-Key": key}
    # The administrator confirms their address (double opt-in): mail follows from then on.
    (request,) = [json.loads(path.read_text()) for path in stack.outbox.glob("*.json")]
    token = re.search(r"token=(p365c\.[A-Za-z0-9._-]+)", request["text"])
    assert token is not None
    confirm = f"/register/confirm-email?token={token.group(1)}"
    assert stack.call(confirm, method="POST")[0] == 200  # the page's button
    user = {
        "id": BOB,
        "domain_name": CANARY,
        "full_name": CANARY,
        "email": CANARY,
        "windows_live_id": CANARY,
        "mobile_phone": CANARY,
    }
    notification_row = example("notification-create.json")
    for attribute in notification_row["InputParameters"][0]["value"]["Attributes"]:
        if attribute["key"] in ("p365_title", "p365_body"):
            attribute["value"] = CANARY
    other_organization = example("subscription-create.json")
    other_organization["OrganizationId"] = "9e8d7c6b-5a49-4382-9716-05f4e3d2c1b0"
    other_organization["InputParameters"][0]["value"]["Attributes"][1]["value"] = CANARY
    content = {
        "title": CANARY,
        "body": CANARY,
        "link": f"https://x.com/{CANARY}",
        "icon": f"https://x.com/{CANARY}.png",
        "data": {CANARY: CANARY},
    }

    answers = [
        stack.call("/register/users", {"users": [user]}, headers=auth),
        stack.call(f"/register/users?code={key}", {"users": [user]}),
        stack.call(
            "/register/rules",
            {
                "rules": [
                    {
                        "table": "opportunity",
                        "message": "Update",
                        "recipients": ["ownerid"],
                        "title": CANARY,
                    }
                ]
            },
            headers=auth,
        ),
        stack.call(
            "/subscribe",
            {"user_id": BOB, "instance_id": f"tok-{CANARY}", "browser_footprint": CANARY},
            headers=auth,
        ),
        stack.call(
            "/subscribe", {"user_id": BOB, "instance_id": f"invalid-{CANARY}"}, headers=auth
        ),
        stack.call("/subscribe", {"user_id": BOB, "instance_id": f"quota-{CANARY}"}, headers=auth),
        stack.call(
            "/subscribe", {"user_id": ALICE, "instance_id": f"internal-{CANARY}"}, headers=auth
        ),
        stack.call("/send", {"recipients": [BOB, ALICE], **content}, headers=auth),
        stack.call(
            "/send", {"recipients": [BOB], **content}, headers={**auth, "Idempotency-Key": CANARY}
        ),
        stack.call("/send", notification_row, headers=auth),
        stack.call(
            "/send", {"recipients": [BOB], **content, "link": f"http://{CANARY}"}, headers=auth
        ),
        stack.call("/send", {"recipients": [BOB], **content, "body": CANARY * 300}, headers=auth),
        stack.call("/send", {"recipients": [BOB], **content}, headers={"X-Push365-Key": CANARY}),
        stack.call("/send", raw=b"{" + CANARY.encode(), headers=auth),
        stack.call("/send", raw=json.dumps({"users": [CANARY * 30_000]}).encode(), headers=auth),
        stack.call("/send", [CANARY], headers=auth),
        stack.call("/receipt", {"receipt": CANARY}),
        stack.call("/subscribe", other_organization, headers=auth),
        stack.call("/unsubscribe", {"instance_id": f"tok-{CANARY}"}, headers=auth),
        stack.call("/unsubscribe", {"instance_id": f"{CANARY} x"}, headers=auth),
        stack.call(f"/subscribe/{CANARY}", {"x": CANARY}, headers=auth),
        stack.call("/subscribe", {"x": CANARY}, method="PUT", headers=auth),
        stack.call(f"/privacy/export?user_id={CANARY}", method="GET", headers=auth),
        stack.call(
            "/privacy/export",
            method="GET",
            headers={**auth, "X-Cloud-Trace-Context": f"{TRACE}/1;o=1"},
        ),
        stack.call("/privacy/erase", {"user_id": CANARY}, headers=auth),
        stack.call("/purge", {"as_of": CANARY}, headers={"X-Push365-Admin-Key": TEST_ADMIN_KEY}),
        stack.call("/purge", {}, headers={"X-Push365-Admin-Key": CANARY}),
        stack.call("/purge", {"dry_run": True}, headers={"X-Push365-Admin-Key": TEST_ADMIN_KEY}),
        stack.call("/privacy/erase", {"user_id": BOB}, headers=auth),
    ]
    statuses = [status for status, _ in answers]
    assert 500 not in statuses, statuses
    assert {200, 400, 401, 403, 404, 405, 413, 422} <= set(statuses)

    output = settled_output(stack)
    assert CANARY not in output
    assert key not in output
    assert key.split(".")[2] not in output
    assert TEST_ADMIN_KEY not in output
    # Mail to administrators (registration, alerts, erasure) carries no content and no key either.
    # (The organization's name and its administrator's address are meant to be there.)
    mails = [
        path.read_text()
        .replace(f"{CANARY}-n", "")
        .replace(f"{CANARY}-u", "")
        .replace(f"{CANARY}@x", "")
        for path in stack.outbox.glob("*.json")
    ]
    assert len(mails) >= 2
    assert not [mail for mail in mails if CANARY in mail or key in mail]
    records = [json.loads(line) for line in output.splitlines() if '"event": "api_call"' in line]
    calls = [r for r in records if r["function"] != "deliver"]
    deliveries = [r for r in records if r["function"] == "deliver"]
    assert len(calls) == stack.calls
    assert all({"status", "duration_ms", "function", "route"} <= set(r) for r in records)
    sent = next(r for r in calls if r["function"] == "send" and r["status"] == 202)
    assert sent["counts"]["recipients"] == 2
    batch = next(r for r in deliveries if r["route"] == "/batch" and r["status"] == 200)
    assert {"devices", "sent", "failed", "removed_tokens"} <= set(batch["counts"])
    traced = [r for r in records if r["logging.googleapis.com/trace"]]
    assert [r["logging.googleapis.com/trace"] for r in traced] == [
        f"projects/demo-push365/traces/{TRACE}"
    ]
