"""The subscribe page in a real browser: opting in, being blocked, failing, opting out."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import screenshot, xrm_calls

TOKEN = "browser-token-0001"


def open_page(context: Any, web_server: str, **test: Any) -> Any:
    context.add_init_script(f"self.__push365Test = {test!r};".replace("True", "true"))
    page = context.new_page()
    page.goto(f"{web_server}/subscribe.html")
    page.wait_for_function("document.body.dataset.state !== 'working'")
    return page


def state(page: Any) -> str:
    return str(page.evaluate("document.body.dataset.state"))


def test_opting_in_creates_one_row_with_token_and_footprint(context: Any, web_server: str) -> None:
    context.grant_permissions(["notifications"], origin=web_server)
    page = open_page(context, web_server, token=TOKEN)
    assert state(page) == "not-subscribed"
    assert page.text_content("#user") == "Bob Stone"
    screenshot(page, "subscribe-off")

    page.click("#subscribe")
    page.wait_for_function("document.body.dataset.state === 'subscribed'")

    (call,) = xrm_calls(page)
    assert call["op"] == "create"
    assert call["table"] == "p365_subscription"
    assert call["data"]["p365_instanceid"] == TOKEN
    family, digest = call["data"]["p365_footprint"].split("/")
    assert family == "chrome"
    assert len(digest) == 16
    assert page.is_visible("#unsubscribe")
    screenshot(page, "subscribe-on")


def test_the_footprint_is_stable_for_a_browser_and_names_nothing_else(
    context: Any, web_server: str
) -> None:
    page = open_page(context, web_server)

    first = page.evaluate("import('./footprint.js').then(m => m.footprint())")
    again = page.evaluate("import('./footprint.js').then(m => m.footprint())")
    stored = page.evaluate("Object.keys(localStorage)")

    assert first == again
    assert stored == ["push365.browserId"]


def test_a_denied_permission_shows_blocked_and_creates_nothing(
    context: Any, web_server: str
) -> None:
    page = open_page(context, web_server, token=TOKEN)  # no permission granted: the browser denies

    page.click("#subscribe")
    page.wait_for_function("document.body.dataset.state === 'blocked'")

    assert xrm_calls(page) == []
    assert "blocked" in (page.text_content("#state") or "")
    screenshot(page, "subscribe-blocked")


def test_a_token_failure_shows_an_error_and_creates_nothing(context: Any, web_server: str) -> None:
    context.grant_permissions(["notifications"], origin=web_server)
    page = open_page(context, web_server, failToken=True)

    page.click("#subscribe")
    page.wait_for_function("document.body.dataset.state === 'error'")

    assert xrm_calls(page) == []
    assert page.is_visible("#subscribe")  # the user can try again


def test_opting_out_deletes_the_row_it_created(context: Any, web_server: str) -> None:
    context.grant_permissions(["notifications"], origin=web_server)
    page = open_page(context, web_server, token=TOKEN)
    page.click("#subscribe")
    page.wait_for_function("document.body.dataset.state === 'subscribed'")

    page.click("#unsubscribe")
    page.wait_for_function("document.body.dataset.state === 'not-subscribed'")

    create, delete = xrm_calls(page)
    assert delete == {
        "op": "delete",
        "table": "p365_subscription",
        "id": "5ab50000-0000-4000-8000-000000000001",
    }
    assert create["op"] == "create"
    assert page.evaluate("localStorage.getItem('push365.subscriptionRowId')") is None
    assert page.evaluate("self.__push365Test.deleted") is True


def test_a_reload_remembers_this_browser_is_subscribed(context: Any, web_server: str) -> None:
    context.grant_permissions(["notifications"], origin=web_server)
    page = open_page(context, web_server, token=TOKEN)
    page.click("#subscribe")
    page.wait_for_function("document.body.dataset.state === 'subscribed'")

    page.reload()
    page.wait_for_function("document.body.dataset.state !== 'working'")

    assert state(page) == "subscribed"
