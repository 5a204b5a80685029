"""A browser's subscription over months, in a real browser through the real functions: the page
writes its p365_subscription row through the Web API, whose webhook steps call the real subscribe
and unsubscribe functions; what Push365 then holds is read back through its privacy export."""

from __future__ import annotations

import time
from typing import Any

from tests.browser.conftest import (
    ALICE,
    BOB,
    FOLDER,
    FakeDataverse,
    open_page,
    service_worker,
    set_test,
    sign_in,
    state,
    stored_state,
    subscribed_page,
    wait_for_state,
)
from tests.browser.delivery import Tenant

TOKEN = "browser-token-0001"
NEW_TOKEN = "browser-token-0002"
WEEK_MS = 7 * 24 * 60 * 60 * 1000


def age_state(page: Any, age_ms: int) -> None:
    """Bob's token was last sent ``age_ms`` ago."""
    page.evaluate(
        """([key, age]) => {
            const state = JSON.parse(localStorage.getItem(key));
            state.sentAt = Date.now() - age;
            localStorage.setItem(key, JSON.stringify(state));
        }""",
        [f"push365.subscription.{BOB}", age_ms],
    )


def reopen(context: Any, web_server: str, page: Any) -> Any:
    page.close()
    return open_page(context, web_server)


def test_first_subscribe_reaches_the_subscribe_function(
    context: Any, web_server: str, web_origin: str, dataverse: FakeDataverse, tenant: Tenant
) -> None:
    page = subscribed_page(context, web_server, TOKEN)

    (create,) = dataverse.calls
    (subscription,) = tenant.subscriptions(BOB)
    scope = page.evaluate(
        f"navigator.serviceWorker.getRegistration('{FOLDER}/').then(r => r && r.scope)"
    )
    assert (create["op"], create["function"]) == ("POST", 201)
    assert subscription["instance_id"] == TOKEN
    assert subscription["status"] == "active"
    assert subscription["token_kind"] == "registration_token"
    assert scope == f"{web_origin}{FOLDER}/"  # the explicit scope, at Dynamics' web resource path


def test_reopening_with_the_same_token_fetches_it_and_writes_nothing(
    context: Any, web_server: str, dataverse: FakeDataverse, tenant: Tenant
) -> None:
    page = subscribed_page(context, web_server, TOKEN)
    (before,) = tenant.subscriptions(BOB)

    page = reopen(context, web_server, page)

    assert state(page) == "subscribed"
    assert page.evaluate("self.__push365Test.tokenCalls") >= 1  # fetched at this open
    assert len(dataverse.calls) == 1  # the first create only
    assert tenant.subscriptions(BOB) == [before]  # last_seen_at untouched


def test_a_changed_token_replaces_the_row_and_only_the_new_token_is_active(
    context: Any, web_server: str, dataverse: FakeDataverse, tenant: Tenant
) -> None:
    page = subscribed_page(context, web_server, TOKEN)
    set_test(context, token=NEW_TOKEN)  # Firebase rotated the token

    page = reopen(context, web_server, page)

    create, delete, create_again = dataverse.calls
    assert (delete["op"], delete["row"], delete["function"]) == ("DELETE", create["row"], 200)
    assert (create_again["op"], create_again["function"]) == ("POST", 201)
    assert create_again["data"]["p365_instanceid"] == NEW_TOKEN
    assert tenant.active_tokens(BOB) == [NEW_TOKEN]
    kept = stored_state(page)[f"push365.subscription.{BOB}"]
    assert (kept["rowId"], kept["token"]) == (create_again["row"], NEW_TOKEN)
    assert state(page) == "subscribed"


def test_a_token_last_sent_a_week_ago_is_sent_again(
    context: Any, web_server: str, dataverse: FakeDataverse, tenant: Tenant
) -> None:
    page = subscribed_page(context, web_server, TOKEN)
    (before,) = tenant.subscriptions(BOB)
    age_state(page, WEEK_MS + 60_000)
    time.sleep(1)  # last_seen_at must be able to move

    page = reopen(context, web_server, page)

    create, update = dataverse.calls
    assert (update["op"], update["row"], update["function"]) == ("PATCH", create["row"], 200)
    assert update["data"]["p365_instanceid"] == TOKEN
    (after,) = tenant.subscriptions(BOB)
    assert after["status"] == "active"
    assert after["last_seen_at"] > before["last_seen_at"]
    assert after["created_at"] == before["created_at"]


def test_a_row_deleted_in_dynamics_meanwhile_is_created_again_at_the_weekly_refresh(
    context: Any, web_server: str, dataverse: FakeDataverse, tenant: Tenant
) -> None:
    page = subscribed_page(context, web_server, TOKEN)
    age_state(page, WEEK_MS + 60_000)
    dataverse.rows.clear()  # someone deleted the row in Dynamics (its webhook is not the point)

    page = reopen(context, web_server, page)

    create, create_again = dataverse.calls
    assert (create["op"], create_again["op"]) == ("POST", "POST")
    assert stored_state(page)[f"push365.subscription.{BOB}"]["rowId"] == create_again["row"]
    assert tenant.active_tokens(BOB) == [TOKEN]


def test_two_dynamics_users_in_one_browser_profile_keep_separate_state(
    context: Any, web_server: str, web_origin: str, dataverse: FakeDataverse, tenant: Tenant
) -> None:
    bob_page = subscribed_page(context, web_server, TOKEN)
    bob_page.close()

    sign_in(context, web_origin, ALICE)
    alice_page = open_page(context, web_server)
    alice_state_before = state(alice_page)
    alice_page.click("#subscribe")
    wait_for_state(alice_page, "subscribed")
    alice_page.close()

    sign_in(context, web_origin, BOB)
    bob_page = open_page(context, web_server)
    bob_state_after = state(bob_page)
    stored = stored_state(bob_page)
    moved_to = tenant.active_tokens(ALICE), tenant.active_tokens(BOB)
    bob_page.click("#subscribe")  # Bob takes this browser back
    wait_for_state(bob_page, "subscribed")

    bob_create, alice_create, bob_update = dataverse.calls
    assert alice_state_before == "not-subscribed"  # Bob's "on" is not Alice's
    assert (bob_create["user"], alice_create["user"], bob_update["user"]) == (BOB, ALICE, BOB)
    assert alice_create["op"] == "POST"
    assert alice_create["row"] != bob_create["row"]
    assert stored[f"push365.subscription.{BOB}"]["rowId"] == bob_create["row"]
    assert stored[f"push365.subscription.{ALICE}"]["rowId"] == alice_create["row"]
    # One browser profile has one FCM token: it goes to whoever turned notifications on last,
    # and the page tells the other user so instead of showing "on".
    assert moved_to == ([TOKEN], [])
    assert bob_state_after == "elsewhere"
    assert (bob_update["op"], bob_update["row"]) == ("PATCH", bob_create["row"])
    assert (tenant.active_tokens(ALICE), tenant.active_tokens(BOB)) == ([], [TOKEN])


def test_pushsubscriptionchange_makes_the_open_page_send_the_new_token(
    context: Any, web_server: str, dataverse: FakeDataverse, tenant: Tenant
) -> None:
    page = subscribed_page(context, web_server, TOKEN)
    worker = service_worker(context)
    page.evaluate(f"self.__push365Test.token = '{NEW_TOKEN}'")  # what getToken() now answers

    worker.evaluate("self.dispatchEvent(new ExtendableEvent('pushsubscriptionchange'))")
    page.wait_for_function(
        f"JSON.parse(localStorage.getItem('push365.subscription.{BOB}')).token === '{NEW_TOKEN}'"
    )

    assert [c["op"] for c in dataverse.calls] == ["POST", "DELETE", "POST"]
    assert tenant.active_tokens(BOB) == [NEW_TOKEN]
