"""``subscribe`` and ``unsubscribe``, plain JSON and Dataverse, over the emulator."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from push365.retention import TTL_FIELD
from push365.subscriptions.model import subscription_id
from tests.integration.conftest import (
    ALICE,
    BOB,
    ORG,
    Functions,
    dataverse,
    documents,
    register,
)

TOKEN = "fcm-token-bob-laptop-chrome-0001"  # the token in the example bodies


def subscriptions(store: Any) -> dict[str, dict[str, Any]]:
    return documents(store, ORG, "subscriptions")


def test_subscribe_then_again_is_201_then_200(api: Functions, store: Any) -> None:
    key = register(api)
    body = {"user_id": BOB, "instance_id": "tok-1", "browser_footprint": "chrome/win/1"}

    first = api.post("/subscribe", body, key=key)
    again = api.post("/subscribe", body, key=key)

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json == again.json == {"subscription_id": subscription_id("tok-1")}
    stored = subscriptions(store)[subscription_id("tok-1")]
    assert stored["status"] == "active"
    assert stored["last_seen_at"] > stored["created_at"]


def test_subscribe_moves_a_token_that_changed_hands(api: Functions, store: Any) -> None:
    key = register(api)
    api.post("/subscribe", {"user_id": ALICE, "instance_id": "shared-pc"}, key=key)

    response = api.post("/subscribe", {"user_id": BOB, "instance_id": "shared-pc"}, key=key)

    assert response.status_code == 200
    assert subscriptions(store)[subscription_id("shared-pc")]["user_id"] == BOB


def test_subscribe_gives_an_unsynced_user_a_minimal_record(api: Functions, store: Any) -> None:
    key = register(api)

    api.post("/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=key)

    user = documents(store, ORG, "users")[BOB]
    assert set(user) == {"id", "devices", "devices_listed", "created_at", "updated_at"}
    assert user["devices"] == [subscription_id("tok")]


def test_subscribe_does_not_overwrite_a_synced_user(api: Functions, store: Any) -> None:
    key = register(api)
    api.post("/register/users", {"users": [{"id": BOB, "full_name": "Bob"}]}, key=key)

    api.post("/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=key)

    assert documents(store, ORG, "users")[BOB]["full_name"] == "Bob"


def test_dataverse_create_subscribes_the_initiating_user(api: Functions, store: Any) -> None:
    key = register(api)

    response = api.post("/subscribe", dataverse("subscription-create.json"), key=key)

    assert response.status_code == 201
    stored = subscriptions(store)[subscription_id(TOKEN)]
    assert stored["user_id"] == BOB
    assert stored["instance_id"] == TOKEN
    assert stored["browser_footprint"] == "chrome-131/windows-11/1f9c2ab4"


def test_dataverse_update_setting_the_token_refreshes_last_seen(api: Functions, store: Any) -> None:
    """What the subscribe page does weekly: rewrite its row with the same token."""
    key = register(api)
    api.post("/subscribe", dataverse("subscription-create.json"), key=key)
    before = subscriptions(store)[subscription_id(TOKEN)]
    update = dataverse("subscription-create.json", MessageName="Update")
    other_columns = dataverse("subscription-create.json", MessageName="Update")
    target = other_columns["InputParameters"][0]["value"]
    target["Attributes"] = [a for a in target["Attributes"] if a["key"] != "p365_instanceid"]

    refreshed = api.post("/subscribe", update, key=key)
    ignored = api.post("/subscribe", other_columns, key=key)

    assert refreshed.status_code == 200
    after = subscriptions(store)[subscription_id(TOKEN)]
    assert after["last_seen_at"] > before["last_seen_at"]
    assert after["created_at"] == before["created_at"]
    assert ignored.status_code == 200
    assert ignored.json["handled"] is False  # an Update of other columns is not a refresh


def test_dataverse_create_of_another_table_is_not_handled(api: Functions, store: Any) -> None:
    key = register(api)

    response = api.post("/subscribe", dataverse("notification-create.json"), key=key)

    assert response.status_code == 200
    assert response.json["handled"] is False
    assert subscriptions(store) == {}


def test_dataverse_create_with_size_exceeded_says_why(api: Functions, store: Any) -> None:
    key = register(api)
    body = dataverse("subscription-create.json")
    body.pop("InputParameters")

    response = api.post(
        "/subscribe", body, key=key, headers={"x-ms-dynamics-msg-size-exceeded": "true"}
    )

    assert response.status_code == 422
    assert "256 KB" in response.json["error"]["message"]
    assert subscriptions(store) == {}


def test_unsubscribe_token_never_sent_again_and_purged_within_30_days(
    api: Functions, store: Any
) -> None:
    key = register(api)
    api.post(
        "/subscribe", {"user_id": BOB, "instance_id": "tok", "browser_footprint": "fp"}, key=key
    )
    before = datetime.now(UTC)

    response = api.post("/unsubscribe", {"instance_id": "tok"}, key=key)

    assert response.status_code == 200
    assert response.json["unsubscribed"] == 1
    purge_by = datetime.fromisoformat(response.json["purge_by"])
    assert purge_by <= before + timedelta(days=30, seconds=5)
    stored = subscriptions(store)[subscription_id("tok")]
    assert stored["status"] == "unsubscribed"
    assert "instance_id" not in stored
    assert "browser_footprint" not in stored
    assert stored["purge_by"] == stored[TTL_FIELD]
    assert abs(stored["purge_by"] - purge_by) < timedelta(seconds=1)


def test_unsubscribe_twice_counts_once(api: Functions) -> None:
    key = register(api)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=key)

    first = api.post("/unsubscribe", {"instance_id": "tok"}, key=key)
    again = api.post("/unsubscribe", {"instance_id": "tok"}, key=key)
    unknown = api.post("/unsubscribe", {"instance_id": "never-seen"}, key=key)

    assert [r.json["unsubscribed"] for r in (first, again, unknown)] == [1, 0, 0]


def test_unsubscribe_user_stops_all_their_devices(api: Functions, store: Any) -> None:
    key = register(api)
    for token, user in (("bob-laptop", BOB), ("bob-phone", BOB), ("alice", ALICE)):
        api.post("/subscribe", {"user_id": user, "instance_id": token}, key=key)

    response = api.post("/unsubscribe", {"user_id": BOB}, key=key)

    assert response.json["unsubscribed"] == 2
    status = {s["user_id"] + "/" + s["status"] for s in subscriptions(store).values()}
    assert status == {f"{BOB}/unsubscribed", f"{ALICE}/active"}


def test_resubscribe_after_unsubscribe_is_active_again(api: Functions, store: Any) -> None:
    key = register(api)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=key)
    api.post("/unsubscribe", {"instance_id": "tok"}, key=key)

    response = api.post("/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=key)

    assert response.status_code == 201
    stored = subscriptions(store)[subscription_id("tok")]
    assert stored["status"] == "active"
    assert "purge_by" not in stored
    assert TTL_FIELD not in stored


def test_dataverse_delete_unsubscribes_the_pre_image_token(api: Functions, store: Any) -> None:
    key = register(api)
    api.post("/subscribe", dataverse("subscription-create.json"), key=key)

    response = api.post("/unsubscribe", dataverse("subscription-delete.json"), key=key)

    assert response.status_code == 200
    assert response.json["unsubscribed"] == 1
    assert subscriptions(store)[subscription_id(TOKEN)]["status"] == "unsubscribed"


def test_dataverse_delete_without_pre_image_is_422_and_changes_nothing(
    api: Functions, store: Any
) -> None:
    key = register(api)
    api.post("/subscribe", dataverse("subscription-create.json"), key=key)
    body = dataverse("subscription-delete.json", PreEntityImages=[])

    response = api.post("/unsubscribe", body, key=key)

    assert response.status_code == 422
    assert "pre-image" in response.json["error"]["message"]
    assert subscriptions(store)[subscription_id(TOKEN)]["status"] == "active"


def test_two_simultaneous_subscribes_create_once(api: Functions, store: Any) -> None:
    key = register(api)
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def subscribe() -> None:
        barrier.wait()
        response = api.post("/subscribe", {"user_id": BOB, "instance_id": "race"}, key=key)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=subscribe) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200, 201]
    assert len(subscriptions(store)) == 1


def receipts_service(at: datetime) -> Any:
    """What the receipt function runs, its clock at ``at``."""
    from push365 import bootstrap
    from push365.notifications.repository import FirestoreNotificationRepository
    from push365.notifications.service import NotificationService
    from push365.settings import get_settings
    from push365.store import firestore_client
    from push365.subscriptions.repository import FirestoreSubscriptionRepository

    settings = get_settings()
    return NotificationService(
        FirestoreNotificationRepository(firestore_client()),
        bootstrap.fanout_publisher(),
        bootstrap.send_policy(settings),
        clock=lambda: at,
        devices=FirestoreSubscriptionRepository(firestore_client()),
    )


def test_a_browser_that_shows_notifications_is_never_dropped_as_stale(
    api: Functions, store: Any, fcm: Any
) -> None:
    from push365.retention.purge import FirestoreRetentionStore, Purger
    from push365.retention.rules import retention_rules
    from tests.integration.conftest import send_and_deliver

    key = register(api)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "bob-laptop"}, key=key)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "bob-phone"}, key=key)  # never shows
    for _ in range(2):
        send_and_deliver(api, {"recipients": [BOB], "title": "t", "body": "b"}, key)
    laptop = [m["message"]["data"]["receipt"] for m in fcm.messages() if m["token"] == "bob-laptop"]
    day0 = datetime.now(UTC)
    purge = Purger(FirestoreRetentionStore(store), retention_rules(90)).purge

    # The laptop shows a notification on day 50 and day 100, and is never opened on its
    # subscribe page again; the phone shows nothing.
    receipts_service(day0 + timedelta(days=50)).confirm_delivery(laptop[0])
    at_61 = purge(day0 + timedelta(days=61))
    receipts_service(day0 + timedelta(days=100)).confirm_delivery(laptop[1])
    at_111 = purge(day0 + timedelta(days=111))
    at_161 = purge(day0 + timedelta(days=161))

    assert (at_61["stale_subscriptions"], at_111["stale_subscriptions"]) == (1, 0)  # the phone
    assert at_161["stale_subscriptions"] == 1  # 61 days without a sign of life
    stored = subscriptions(store)
    assert stored[subscription_id("bob-laptop")]["unsubscribe_reason"] == "stale"


def test_a_receipt_never_brings_an_unsubscribed_browser_back(
    api: Functions, store: Any, fcm: Any
) -> None:
    from tests.integration.conftest import send_and_deliver

    key = register(api)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "bob-laptop"}, key=key)
    send_and_deliver(api, {"recipients": [BOB], "title": "t", "body": "b"}, key)
    (receipt,) = [m["message"]["data"]["receipt"] for m in fcm.messages()]
    api.post("/unsubscribe", {"instance_id": "bob-laptop"}, key=key)

    receipts_service(datetime.now(UTC) + timedelta(days=1)).confirm_delivery(receipt)

    stored = subscriptions(store)[subscription_id("bob-laptop")]
    assert (stored["status"], "instance_id" in stored) == ("unsubscribed", False)
    assert stored["last_seen_at"] < stored["unsubscribed_at"]
