"""The delivery report page (web/report.html) in a real browser, on the local stack after a
scripted day: subscriptions (one later unsubscribed), three notifications through the real
fan-out to the local FCM server, failures (tokens FCM refuses, and one send during a server-wide
fault set through its ``/_control``) and receipts. The stats route's numbers equal counts made in
this test from the stored records, read through the organization's privacy export (every record
Push365 holds, whatever the storage layout) and each notification's ``/send/status``; the page
shows those numbers. With ``PUSH365_SCREENSHOT_DIR`` set it writes ``report.png``."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from push365.daily.counts import RATIO
from tests.browser.conftest import (
    ALICE,
    BOB,
    FakeDataverse,
    edit_config,
    screenshot,
    wait_for_state,
)
from tests.browser.delivery import Tenant, send
from tests.stack import call

CAROL = "c1111111-2222-4333-8444-555555555503"
DAVE = "d1111111-2222-4333-8444-555555555504"
KEY_STORAGE = "push365.reportKey"
COUNTS = ("subscriptions_active", "subscriptions_new", "notifications", "devices_sent")
TITLES = ("Case escalated", "Quote approved", "Meeting moved")


def _subscribe(tenant: Tenant, user: str, token: str) -> None:
    body = {"user_id": user, "instance_id": token}
    status, _ = call(f"{tenant.stack.base}/subscribe", body, headers=tenant.auth)
    assert status in (200, 201)


def _scripted_day(tenant: Tenant) -> tuple[list[dict[str, Any]], int]:
    """Subscribe, send three notifications (failures included), post every other receipt as the
    browsers' service workers do. The sends' final statuses and the receipts accepted."""
    stack = tenant.stack
    for user, token in (
        (BOB, "bob-laptop"),
        (BOB, "bob-phone"),
        (ALICE, "alice-laptop"),
        (ALICE, "alice-tablet"),
        (CAROL, "unregistered-carol-old-browser"),  # FCM: 404 UNREGISTERED, then retired
        (CAROL, "mismatch-carol-work"),  # FCM: 403 SENDER_ID_MISMATCH, every time
        (DAVE, "invalid-dave-old-browser"),  # FCM: 400 invalid registration token, retired
        (DAVE, "dave-laptop"),
    ):
        _subscribe(tenant, user, token)
    unsubscribe = {"instance_id": "alice-tablet"}
    assert call(f"{stack.base}/unsubscribe", unsubscribe, headers=tenant.auth)[0] == 200
    before = len(call(f"{stack.fcm}/_messages")[1])
    everyone = [BOB, ALICE, CAROL, DAVE]
    sends = [send(tenant, {"recipients": everyone, "title": TITLES[0], "body": "b"})]
    # FCM refuses every send for a while (401 THIRD_PARTY_AUTH_ERROR, server-wide).
    assert call(f"{stack.fcm}/_control", {"status_override": 401}, method="PUT")[0] == 200
    try:
        sends.append(send(tenant, {"recipients": [BOB, DAVE], "title": TITLES[1], "body": "b"}))
    finally:
        assert call(f"{stack.fcm}/_control", method="DELETE")[0] == 200
    sends.append(send(tenant, {"recipients": everyone, "title": TITLES[2], "body": "b"}))
    received = call(f"{stack.fcm}/_messages")[1][before:]
    receipts = [r["message"]["data"]["receipt"] for r in received if r["response"] == 200]
    for receipt in receipts[::2]:  # every other browser showed its notification
        assert call(f"{stack.base}/receipt", {"receipt": receipt})[0] == 204
    return sends, len(receipts[::2])


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _counted_from_records(tenant: Tenant, today: date) -> dict[str, Any]:
    """Today's report, counted from every record the organization's privacy export holds."""
    status, export = call(f"{tenant.stack.base}/privacy/export", headers=tenant.auth)
    assert status == 200
    subscriptions = export["subscriptions"]
    deliveries = [d for n in export["notifications"] for d in n["deliveries"]]
    failed = [d for d in deliveries if d["status"] == "failed"]
    waits = [
        (_moment(d["delivered_at"]) - _moment(d["sent_at"])).total_seconds()
        for d in deliveries
        if d.get("delivered_at")
    ]
    return {
        "date": today.isoformat(),
        "subscriptions_active": sum(1 for s in subscriptions if s["status"] == "active"),
        "subscriptions_new": sum(
            1 for s in subscriptions if _moment(s["created_at"]).date() == today
        ),
        "notifications": len(export["notifications"]),
        "devices_sent": sum(1 for d in deliveries if d["status"] == "sent"),
        "failed": len(failed),
        "failed_by_reason": dict(sorted(Counter(d["error"] for d in failed).items())),
        "delivered": len(waits),
        "median_seconds_to_delivery": round(statistics.median(waits), 3) if waits else None,
    }


def _report_page(context: Any) -> Any:
    """A page in Bob's browser profile (signed in to "Dynamics"), wide enough for the report."""
    page = context.new_page()
    page.set_viewport_size({"width": 1280, "height": 1000})
    return page


def _shown(page: Any) -> None:
    page.wait_for_function("document.body.dataset.state === 'shown'")


def _text(page: Any, selector: str) -> str:
    return str(page.locator(selector).inner_text()).strip()


def test_the_report_page_shows_the_stats_of_a_scripted_day(
    context: Any, web_server: str, dataverse: FakeDataverse, tenant: Tenant
) -> None:
    sends, receipts = _scripted_day(tenant)
    today = datetime.now(UTC).date()
    dataverse.base_url = tenant.stack.base  # the p365_BaseUrl environment variable
    edit_config(functionPrefix="")  # make dev serves the functions without Terraform's prefix

    status, stats = call(f"{tenant.stack.base}/send/stats?days=7", headers=tenant.auth)
    page = _report_page(context)
    page.goto(f"{web_server}/report.html")
    wait_for_state(page, "need-key")
    page.fill("#key", "not-the-key")
    page.click("#key-form button[type=submit]")
    wait_for_state(page, "refused")
    refused_storage = page.evaluate("Object.keys(sessionStorage)")
    page.fill("#key", tenant.key)
    page.click("#key-form button[type=submit]")
    _shown(page)

    # The route's numbers are the records' counts, and agree with the sends' own statuses.
    counted = _counted_from_records(tenant, today)
    assert status == 200, stats
    *earlier, last = stats["per_day"]
    # The median is the daily histogram's estimate: within sqrt(RATIO) - 1 of the exact one
    # (0.05 s under 0.1 s), the rest exactly the records' counts.
    estimate, exact = last["median_seconds_to_delivery"], counted["median_seconds_to_delivery"]
    assert abs(estimate - exact) <= max((math.sqrt(RATIO) - 1) * exact, 0.05) + 0.001
    assert {**last, "median_seconds_to_delivery": exact} == counted
    counted["median_seconds_to_delivery"] = estimate  # (what the page shows)
    assert [day["date"] for day in stats["per_day"]] == [
        (today - timedelta(days=n)).isoformat() for n in range(6, -1, -1)
    ]
    assert all(day["notifications"] == day["devices_sent"] == 0 for day in earlier)
    assert counted["notifications"] == len(sends) == 3
    assert counted["devices_sent"] == sum(s["sent"] for s in sends) == 4 + 0 + 4
    assert counted["failed"] == sum(s["failed"] for s in sends) == 3 + 3 + 1
    assert counted["failed_by_reason"] == {
        "invalid_token": 1,
        "sender_id_mismatch": 2,
        "third_party_auth": 3,
        "unregistered": 1,
    }
    assert counted["delivered"] == receipts == 4
    assert counted["subscriptions_new"] == 8
    assert counted["subscriptions_active"] == 8 - 1 - 2  # unsubscribed; retired by FCM's answers

    # The page shows them: totals, today's row, four drawn charts, and nothing but counts.
    for name in (*COUNTS, "delivered", "failed"):
        assert _text(page, f"#total-{name}") == str(counted[name]), name
    row = page.locator(f"#per-day tr[data-date='{today.isoformat()}'] td").all_inner_texts()
    assert row == [
        today.isoformat(),
        *(str(counted[name]) for name in (*COUNTS, "delivered", "failed")),
        ", ".join(f"{reason} {n}" for reason, n in counted["failed_by_reason"].items()),
        str(counted["median_seconds_to_delivery"]),
    ]
    assert page.locator("#per-day tbody tr").count() == 7
    drawn = page.evaluate(
        """() => [...document.querySelectorAll('canvas')].map((canvas) => {
            const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
            return canvas.width > 0 && pixels.data.some((value, i) => i % 4 === 3 && value > 0);
        })"""
    )
    assert drawn == [True, True, True, True]
    shown = page.locator("body").inner_text() + page.content()
    for secret in (*TITLES, "bob-laptop", BOB, tenant.key):
        assert secret not in shown
    assert refused_storage == []  # a refused key is not kept
    assert page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')") == tenant.key
    assert page.evaluate("Object.keys(localStorage)") == []  # nothing outlives the tab
    screenshot(page, "report")

    page.select_option("#days", "30")
    page.wait_for_function("document.body.dataset.loaded === '2'")
    assert page.locator("#per-day tbody tr").count() == 30
    page.click("#forget")
    wait_for_state(page, "need-key")
    assert page.evaluate("Object.keys(sessionStorage)") == []


def test_without_the_base_url_variable_the_page_says_what_to_set(
    context: Any, web_server: str, dataverse: FakeDataverse
) -> None:
    page = _report_page(context)
    page.goto(f"{web_server}/report.html")

    wait_for_state(page, "no-base-url")
    assert "p365_BaseUrl" in _text(page, "#state")
    assert page.locator("#key-form").is_hidden()
