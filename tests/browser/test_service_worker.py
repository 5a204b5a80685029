"""The service worker in a real browser: a notification sent through the whole product (the
send function, the local FCM server) is pushed to the worker with the DevTools protocol; it is
shown, its link is its click target, and its receipt reaches the real receipt function once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.emulator import FirestoreEmulator
from tests.browser.conftest import screenshot
from tests.conftest import example
from tests.stack import RunningStack, call, running_stack

ORG = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"
BOB = "b1111111-2222-4333-8444-555555555502"
TOKEN = "browser-token-0001"
LINK = "https://contoso.crm4.dynamics.com/main.aspx?etn=incident&id=4d1c&pagetype=entityrecord"


SHOWN = """navigator.serviceWorker.ready
    .then(r => r.getNotifications())
    .then(ns => ns.map(n => ({title: n.title, body: n.body, icon: n.icon, tag: n.tag,
                             data: n.data})))"""


@pytest.fixture
def stack(emulator: FirestoreEmulator, tmp_path: Path) -> Iterator[RunningStack]:
    with running_stack(tmp_path) as running:
        yield running


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


def registration_id(page: Any, cdp: Any) -> str:
    found: list[str] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: found.extend(r["registrationId"] for r in event["registrations"]),
    )
    cdp.send("ServiceWorker.enable")
    for _ in range(50):
        if found:
            return found[-1]
        page.wait_for_timeout(100)
    raise AssertionError("no service worker registration seen")


def test_a_sent_notification_is_shown_links_to_its_record_and_is_confirmed_once(
    context: Any, web_server: str, stack: RunningStack
) -> None:
    base = stack.base
    _status, created = call(
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
    key = created["api_key"]
    context.grant_permissions(["notifications"], origin=web_server)
    context.add_init_script(f"self.__push365Test = {{token: {json.dumps(TOKEN)}}};")
    page = context.new_page()
    page.goto(f"{web_server}/subscribe.html")
    page.click("#subscribe")
    page.wait_for_function("document.body.dataset.state === 'subscribed'")
    # The row's Dataverse webhook (Create of p365_subscription) reaches subscribe:
    row = page.evaluate("window.__xrmCalls[0].data")
    webhook = example("subscription-create.json")
    webhook["InputParameters"][0]["value"]["Attributes"][1]["value"] = row["p365_instanceid"]
    webhook["InputParameters"][0]["value"]["Attributes"][2]["value"] = row["p365_footprint"]
    auth = {"X-Push365-Key": key}
    assert call(f"{base}/subscribe", webhook, headers=auth)[0] == 201

    sent = call(
        f"{base}/send",
        {
            "recipients": [BOB],
            "title": "Case escalated",
            "body": "CAS-01024 needs you",
            "link": LINK,
            "icon": "https://contoso.com/icon.png",
        },
        headers=auth,
    )
    (recorded,) = call(f"{stack.fcm}/_messages")[1]
    cdp = page.context.new_cdp_session(page)
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {
            "origin": web_server,
            "registrationId": registration_id(page, cdp),
            "data": json.dumps(as_delivered(recorded["message"])),
        },
    )

    shown: list[dict[str, Any]] = []
    for _ in range(50):
        shown = page.evaluate(SHOWN)
        if shown:
            break
        page.wait_for_timeout(100)
    assert sent[0] == 200
    assert recorded["token"] == TOKEN
    (notification,) = shown
    assert notification["title"] == "Case escalated"
    assert notification["body"] == "CAS-01024 needs you"
    assert notification["icon"] == "https://contoso.com/icon.png"
    assert notification["data"] == {"link": LINK}
    assert notification["tag"] == sent[1]["notification_id"]

    delivered = None
    for _ in range(50):
        export = call(f"{base}/privacy/export?user_id={BOB}", headers=auth)[1]
        delivered = export["notifications"][0]["deliveries"][0]["delivered_at"]
        if delivered:
            break
        page.wait_for_timeout(100)
    assert delivered is not None
    page.wait_for_timeout(500)
    receipts = [line for line in stack.output().splitlines() if "POST /receipt" in line]
    assert len(receipts) == 1, receipts
    assert receipts[0].endswith(" 204")
    screenshot(page, "subscribe-on")


def test_a_click_focuses_the_dynamics_tab_or_opens_the_link(context: Any, web_server: str) -> None:
    context.grant_permissions(["notifications"], origin=web_server)
    context.add_init_script(f"self.__push365Test = {{token: {json.dumps(TOKEN)}}};")
    page = context.new_page()
    page.goto(f"{web_server}/subscribe.html")
    page.click("#subscribe")
    page.wait_for_function("document.body.dataset.state === 'subscribed'")
    workers = context.service_workers
    worker = workers[0] if workers else context.wait_for_event("serviceworker")

    decide = """([link, urls]) => {
        const t = self.push365.clickTarget(link, urls.map(url => ({url})));
        return {action: t.action, url: t.url || null, client: t.client ? t.client.url : null};
    }"""
    other = "https://contoso.crm4.dynamics.com/main.aspx?appid=1"
    focus = worker.evaluate(decide, [LINK, [other, LINK]])
    navigate = worker.evaluate(decide, [LINK, ["https://example.com/", other]])
    open_new = worker.evaluate(decide, [LINK, ["https://example.com/"]])
    nothing = worker.evaluate(decide, [None, [other]])

    assert focus == {"action": "focus", "url": LINK, "client": LINK}
    assert navigate == {"action": "navigate", "url": LINK, "client": other}
    assert open_new == {"action": "open", "url": LINK, "client": None}
    assert nothing["action"] == "none"
