"""The real functions behind the browser tests: a running stack, an organization per test, and
THE one way a test sends a notification and has the browser receive it.

``send_and_deliver`` is the only place that knows how a send reaches FCM and the browser: ``/send``
answers 202, Pub/Sub pushes the fan-out to the stack's ``deliver`` function, and this waits for the
notification's status to be ``sent`` before handing the messages FCM received to the browser.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from tests.browser.conftest import FOLDER
from tests.stack import RunningStack, call, signup


@dataclass(frozen=True)
class Tenant:
    """An organization registered on the running stack for one test."""

    stack: RunningStack
    organization_id: str
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"X-Push365-Key": self.key}

    def export(self, user_id: str) -> dict[str, Any]:
        """Everything Push365 holds about the user (its privacy export); empty when nothing."""
        url = f"{self.stack.base}/privacy/export?user_id={user_id}"
        status, export = call(url, headers=self.auth)
        return dict(export) if status == 200 else {}

    def subscriptions(self, user_id: str) -> list[dict[str, Any]]:
        """The user's subscriptions as Push365 holds them."""
        return list(self.export(user_id).get("subscriptions", []))

    def active_tokens(self, user_id: str) -> list[str]:
        return sorted(
            s["instance_id"] for s in self.subscriptions(user_id) if s["status"] == "active"
        )


def register_tenant(stack: RunningStack) -> Tenant:
    organization_id = str(uuid.uuid4())
    body = {
        "organization": {
            "id": organization_id,
            "unique_name": f"unq{organization_id[:8]}",
            "name": "Contoso",
            "language_code": 1033,
        }
    }
    status, created = call(
        f"{stack.base}/register", body, headers=signup(stack.base, organization_id, stack.admin_key)
    )
    assert status == 201, created
    return Tenant(stack, organization_id, created["api_key"])


def erase_tenant(tenant: Tenant) -> None:
    """The organization erased (``POST /privacy/erase``), as a customer who leaves does."""
    status, answer = call(
        f"{tenant.stack.base}/privacy/erase", {"organization": True}, headers=tenant.auth
    )
    assert status == 200, answer


def as_delivered(message: dict[str, Any]) -> dict[str, Any]:
    """What FCM hands a web browser for a message Push365 sent: the notification, the data, and
    webpush.fcm_options as fcmOptions."""
    webpush = message["webpush"]
    return {
        "notification": webpush["notification"],
        "data": message["data"],
        "fcmOptions": webpush.get("fcm_options", {}),
        "from": "1234567890",
    }


def registration_id(page: Any, cdp: Any, scope: str) -> str:
    """The DevTools id of the service worker registration at ``scope``."""
    found: dict[str, str] = {}
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: found.update(
            {r["scopeURL"]: r["registrationId"] for r in event["registrations"]}
        ),
    )
    cdp.send("ServiceWorker.enable")
    for _ in range(50):
        if scope in found:
            return found[scope]
        page.wait_for_timeout(100)
    raise AssertionError(f"no service worker registration at {scope}: {found}")


def send(tenant: Tenant, notification: dict[str, Any]) -> dict[str, Any]:
    """Send ``notification`` through the real send function and wait until every batch is done;
    its final status (``notification_id``, ``sent`` and the other counts at the top level)."""
    stack = tenant.stack
    status, accepted = call(f"{stack.base}/send", notification, headers=tenant.auth)
    assert status == 202, accepted
    url = f"{stack.base}/send/status?notification_id={accepted['notification_id']}"
    deadline = time.monotonic() + 30
    while (progress := call(url, headers=tenant.auth)[1])["status"] != "sent":
        assert time.monotonic() < deadline, progress
        time.sleep(0.2)
    return {**progress, **progress["counts"]}


def send_and_deliver(
    tenant: Tenant, page: Any, origin: str, notification: dict[str, Any], times: int = 1
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Send ``notification`` through the real send function; hand every message the local FCM
    server accepted for it to this browser's service worker ``times`` times, as FCM delivers a
    push. Answers the send's final status (``notification_id``, ``sent`` and the other counts at
    the top level) and the messages FCM received."""
    stack = tenant.stack
    before = len(call(f"{stack.fcm}/_messages")[1])
    summary = send(tenant, notification)
    received = call(f"{stack.fcm}/_messages")[1][before:]
    cdp = page.context.new_cdp_session(page)
    registration = registration_id(page, cdp, f"{origin}{FOLDER}/")
    for record in received:
        if record["response"] != 200:
            continue
        for _ in range(times):
            cdp.send(
                "ServiceWorker.deliverPushMessage",
                {
                    "origin": origin,
                    "registrationId": registration,
                    "data": json.dumps(as_delivered(record["message"])),
                },
            )
            page.wait_for_timeout(300)
    return summary, received
