"""The subscribe page in a real browser: opting in, being blocked, failing, opting out, a browser
that cannot push, and a page that finds Dynamics only through Xrm."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import (
    BOB,
    FakeDataverse,
    open_page,
    screenshot,
    set_test,
    state,
    stored_state,
    subscribed_page,
    wait_for_state,
)

TOKEN = "browser-token-0001"


def test_opting_in_creates_one_row_with_token_and_footprint(
    context: Any, web_server: str, dataverse: FakeDataverse
) -> None:
    context.grant_permissions(["notifications"])
    set_test(context, token=TOKEN)
    page = open_page(context, web_server)
    assert state(page) == "not-subscribed"
    assert page.text_content("#user") == "Bob Stone"
    screenshot(page, "subscribe-off")

    page.click("#subscribe")
    wait_for_state(page, "subscribed")

    (call,) = dataverse.calls
    assert call["op"] == "POST"
    assert call["user"] == BOB
    assert call["data"]["p365_instanceid"] == TOKEN
    family, digest = call["data"]["p365_footprint"].split("/")
    assert family == "chrome"
    assert len(digest) == 16
    assert page.is_visible("#unsubscribe")
    kept = stored_state(page)[f"push365.subscription.{BOB}"]
    assert kept["rowId"] == call["row"]
    assert kept["token"] == TOKEN


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
    context: Any, web_server: str, dataverse: FakeDataverse
) -> None:
    set_test(context, token=TOKEN)
    page = open_page(context, web_server)  # no permission granted: the browser denies

    page.click("#subscribe")
    wait_for_state(page, "blocked")

    assert dataverse.calls == []
    assert "blocked" in (page.text_content("#state") or "")
    screenshot(page, "subscribe-blocked")


def test_a_token_failure_shows_an_error_and_creates_nothing(
    context: Any, web_server: str, dataverse: FakeDataverse
) -> None:
    context.grant_permissions(["notifications"])
    set_test(context, failToken=True)
    page = open_page(context, web_server)

    page.click("#subscribe")
    wait_for_state(page, "error")

    assert dataverse.calls == []
    assert page.is_visible("#subscribe")  # the user can try again


def test_opting_out_deletes_the_row_it_created(
    context: Any, web_server: str, dataverse: FakeDataverse
) -> None:
    page = subscribed_page(context, web_server, TOKEN)

    page.click("#unsubscribe")
    wait_for_state(page, "not-subscribed")

    create, delete = dataverse.calls
    assert (create["op"], delete["op"]) == ("POST", "DELETE")
    assert delete["row"] == create["row"]
    assert dataverse.rows == {}
    assert f"push365.subscription.{BOB}" not in stored_state(page)
    assert page.evaluate("self.__push365Test.deleted") is True


def test_a_reload_remembers_this_browser_is_subscribed(context: Any, web_server: str) -> None:
    page = subscribed_page(context, web_server, TOKEN)

    page.reload()
    page.wait_for_function("document.body.dataset.refreshed === 'true'")

    assert state(page) == "subscribed"


def test_a_browser_firebase_cannot_push_to_gets_a_clear_message_and_no_button(
    context: Any, web_server: str, dataverse: FakeDataverse
) -> None:
    context.grant_permissions(["notifications"])
    set_test(context, token=TOKEN, unsupported=True)  # isSupported() answers false

    page = open_page(context, web_server)

    assert state(page) == "unsupported"
    assert "cannot receive push notifications" in (page.text_content("#state") or "")
    assert not page.is_visible("#subscribe")
    assert not page.is_visible("#unsubscribe")
    assert dataverse.calls == []


XRM_ONLY = """
window.__xrmCalls = [];
window.Xrm = {
  Utility: { getGlobalContext: () => ({
    userSettings: { userId: "{A1111111-2222-4333-8444-555555555501}", userName: "Alice Park" },
  }) },
  WebApi: {
    createRecord: async (table, data) => {
      window.__xrmCalls.push({ op: "create", table, data });
      return { entityType: table, id: "5ab50000-0000-4000-8000-000000000001" };
    },
    updateRecord: async (table, id) => { window.__xrmCalls.push({ op: "update", table, id }); },
    deleteRecord: async (table, id) => { window.__xrmCalls.push({ op: "delete", table, id }); },
  },
};
"""


def test_without_client_global_context_the_page_uses_xrm(
    context: Any, web_server: str, dataverse: FakeDataverse
) -> None:
    from tests.browser.conftest import _WebHandler

    _WebHandler.global_context = False  # no ClientGlobalContext.js.aspx: a page inside a form
    context.grant_permissions(["notifications"])
    context.add_init_script(XRM_ONLY)
    set_test(context, token=TOKEN)
    page = open_page(context, web_server)

    page.click("#subscribe")
    wait_for_state(page, "subscribed")

    assert page.text_content("#user") == "Alice Park"
    (call,) = page.evaluate("window.__xrmCalls")
    assert call["op"] == "create"
    assert call["table"] == "p365_subscription"
    assert call["data"]["p365_instanceid"] == TOKEN
    assert dataverse.calls == []  # Xrm.WebApi, not the Web API over HTTP
    assert "push365.subscription.a1111111-2222-4333-8444-555555555501" in stored_state(page)


def test_the_firebase_config_comes_from_the_environment_variable_when_it_is_set(
    context: Any, web_server: str, dataverse: FakeDataverse
) -> None:
    page = subscribed_page(context, web_server, TOKEN)
    assert page.evaluate("self.__push365Test.firebaseApiKey") == "REPLACE-ME"  # config.js
    dataverse.firebase_config = {
        "apiKey": "environment-api-key",
        "authDomain": "contoso-push.firebaseapp.com",
        "projectId": "contoso-push",
        "messagingSenderId": "1234",
        "appId": "1:1234:web:abcd",
        "vapidKey": "environment-vapid-key",
    }
    page = open_page(context, web_server)
    assert state(page) == "subscribed"
    assert page.evaluate("self.__push365Test.firebaseApiKey") == "environment-api-key"
    assert page.evaluate("self.__push365Test.vapidKey") == "environment-vapid-key"
