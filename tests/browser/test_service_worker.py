"""The service worker in a real browser: a notification sent through the whole product (the
send function, the local FCM server) is pushed to the worker with the DevTools protocol; it is
shown once per notification id, a click opens its link, and its receipt reaches the real receipt
function once."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import BOB, FOLDER, screenshot, service_worker, subscribed_page
from tests.browser.delivery import Tenant, send_and_deliver

TOKEN = "browser-token-0001"
LINK = "https://contoso.crm4.dynamics.com/main.aspx?etn=incident&id=4d1c&pagetype=entityrecord"
NOTIFICATION = {
    "recipients": [BOB],
    "title": "Case escalated",
    "body": "CAS-01024 needs you",
    "link": LINK,
    "icon": "https://contoso.com/icon.png",
}

SHOWN = f"""navigator.serviceWorker.getRegistration('{FOLDER}/')
    .then(r => r.getNotifications())
    .then(ns => ns.map(n => ({{title: n.title, body: n.body, icon: n.icon, tag: n.tag,
                              data: n.data}})))"""


def shown(page: Any) -> list[dict[str, Any]]:
    """The notifications the worker shows, once something is shown."""
    found: list[dict[str, Any]] = []
    for _ in range(50):
        found = page.evaluate(SHOWN)
        if found:
            break
        page.wait_for_timeout(100)
    return found


def receipts(tenant: Tenant, since: int = 0) -> list[str]:
    """The receipt function's answers in the stack's output (from line ``since``)."""
    lines = tenant.stack.output().splitlines()[since:]
    return [line for line in lines if "POST /receipt" in line]


def delivered_at(tenant: Tenant, page: Any) -> str | None:
    """When Push365 recorded the (only) delivery as delivered, once it has."""
    for _ in range(50):
        (notification,) = tenant.export(BOB)["notifications"]
        when = notification["deliveries"][0]["delivered_at"]
        if when:
            return str(when)
        page.wait_for_timeout(100)
    return None


def test_a_sent_notification_is_shown_links_to_its_record_and_is_confirmed_once(
    context: Any, web_server: str, web_origin: str, tenant: Tenant
) -> None:
    page = subscribed_page(context, web_server, TOKEN)
    lines = len(tenant.stack.output().splitlines())

    summary, (received,) = send_and_deliver(tenant, page, web_origin, NOTIFICATION)

    (notification,) = shown(page)
    assert summary["sent"] == 1
    assert received["token"] == TOKEN
    assert received["field"] == "token"  # a registration token, in FCM's token field
    assert notification["title"] == "Case escalated"
    assert notification["body"] == "CAS-01024 needs you"
    assert notification["icon"] == "https://contoso.com/icon.png"
    assert notification["data"] == {"link": LINK}
    assert notification["tag"] == summary["notification_id"]
    assert delivered_at(tenant, page) is not None
    page.wait_for_timeout(500)
    (receipt,) = receipts(tenant, lines)
    assert receipt.endswith(" 204")
    screenshot(page, "subscribe-on")


def test_a_push_delivered_twice_with_the_same_notification_id_shows_one_notification(
    context: Any, web_server: str, web_origin: str, tenant: Tenant
) -> None:
    page = subscribed_page(context, web_server, TOKEN)
    lines = len(tenant.stack.output().splitlines())

    summary, _ = send_and_deliver(tenant, page, web_origin, NOTIFICATION, times=2)

    page.wait_for_timeout(500)
    (notification,) = shown(page)
    assert notification["tag"] == summary["notification_id"]
    assert delivered_at(tenant, page) is not None
    assert len(receipts(tenant, lines)) == 1  # the repeat posts no second receipt


def test_a_click_opens_the_notifications_link(
    context: Any, web_server: str, web_origin: str, tenant: Tenant
) -> None:
    page = subscribed_page(context, web_server, TOKEN)
    send_and_deliver(tenant, page, web_origin, NOTIFICATION)
    shown(page)
    worker = service_worker(context)

    # A browser lets a worker open windows only inside a click the user made, which no driver
    # can make on a system notification: the worker's own notificationclick handler runs on the
    # notification it showed, and the window it opens is recorded as it is asked for.
    opened = worker.evaluate(
        """async () => {
            const asked = [];
            const original = self.clients.openWindow.bind(self.clients);
            self.clients.openWindow = (url) => { asked.push(url); return original(url); };
            const [notification] = await self.registration.getNotifications();
            const click = new NotificationEvent("notificationclick", { notification });
            self.dispatchEvent(click);
            await new Promise((resolve) => setTimeout(resolve, 500));
            const left = await self.registration.getNotifications();
            self.clients.openWindow = original;
            return { asked, left: left.length };
        }"""
    )

    assert opened == {"asked": [LINK], "left": 0}  # no Dynamics tab open: a new one, closed


def test_a_click_focuses_the_dynamics_tab_or_opens_the_link(context: Any, web_server: str) -> None:
    subscribed_page(context, web_server, TOKEN)
    worker = service_worker(context)

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
