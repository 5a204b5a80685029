"""``purge``: what retention says is due goes, at the boundaries, and nothing else ever does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from push365.retention.purge import FirestoreRetentionStore, Purger
from push365.retention.rules import RetentionRule, retention_rules
from push365.subscriptions.model import subscription_id
from tests.conftest import TEST_ADMIN_KEY
from tests.integration.conftest import (
    ALICE,
    BOB,
    ORG,
    OTHER_ORG,
    Functions,
    all_documents,
    deliver_pending,
    documents,
    register,
    send_and_deliver,
)

ADMIN = {"X-Push365-Admin-Key": TEST_ADMIN_KEY}


def purge(api: Functions, as_of: datetime | None = None, dry_run: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"dry_run": dry_run}
    if as_of is not None:
        body["as_of"] = as_of.isoformat()
    response = api.post("/purge", body, headers=ADMIN)
    assert response.status_code == 200, response.json
    return response.json  # type: ignore[no-any-return]


def subscriptions(store: Any, org: str = ORG) -> dict[str, dict[str, Any]]:
    return documents(store, org, "subscriptions")


def test_purge_needs_the_admin_key(api: Functions) -> None:
    missing = api.post("/purge", {})
    wrong = api.post("/purge", {}, headers={"X-Push365-Admin-Key": "nope"})
    right = api.post("/purge", {}, headers=ADMIN)
    no_body = api.post("/purge", headers=ADMIN, content_type=None)

    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert no_body.status_code == 200
    assert TEST_ADMIN_KEY not in wrong.text


@pytest.mark.parametrize(("days", "purged"), [(28, False), (29, True), (30, True)])
def test_an_unsubscribed_subscription_goes_at_30_days(
    api: Functions, store: Any, days: int, purged: bool
) -> None:
    key = register(api)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "gone"}, key=key)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "kept"}, key=key)
    answer = api.post("/unsubscribe", {"instance_id": "gone"}, key=key).json
    purge_by = datetime.fromisoformat(answer["purge_by"])
    # purge_by is 29 days after the unsubscribe (rounded to the second): the daily purge that
    # runs in the 24 hours after it deletes the tombstone, so it is gone by day 30.
    as_of = purge_by + timedelta(days=days - 29, seconds=1)

    result = purge(api, as_of)

    assert result["deleted"]["subscriptions"] == int(purged)
    assert (subscription_id("gone") in subscriptions(store)) is not purged
    assert subscriptions(store)[subscription_id("kept")]["status"] == "active"


def test_an_active_subscription_is_never_purged(api: Functions, store: Any) -> None:
    key = register(api)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=key)
    api.post("/unsubscribe", {"instance_id": "tok"}, key=key)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=key)  # back again

    result = purge(api, datetime.now(UTC) + timedelta(days=59))  # not stale yet (60 days)

    assert result["deleted"]["subscriptions"] == 0
    assert subscriptions(store)[subscription_id("tok")]["status"] == "active"


def test_notification_records_go_after_the_retention(api: Functions, store: Any) -> None:
    key = register(api)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=key)
    api.post(
        "/send",
        {"recipients": [BOB], "title": "t", "body": "b"},
        key=key,
        headers={"Idempotency-Key": "k"},
    )
    deliver_pending(api)
    now = datetime.now(UTC)

    early = purge(api, now + timedelta(days=89))
    late = purge(api, now + timedelta(days=91))

    assert early["deleted"]["notifications"] == early["deleted"]["batches"] == 0
    assert early["deleted"]["dedup_keys"] == 1  # replay protection lasts 24 hours
    assert early["deleted"]["stale_subscriptions"] == 1  # never refreshed by its browser
    assert late["deleted"] == {
        "subscriptions": 0,
        "stale_subscriptions": 0,
        "receipts": 0,  # no browser confirmed
        "batches": 2,  # the batch (with its delivery record) and its plan document
        "notifications": 1,
        "dedup_keys": 0,
        "signup_codes": 0,  # gone at the early run, if any (expired)
        "daily_counts": 0,  # the day's counts live 91 days after the day
        "organizations": 0,
    }
    assert [path for path, _ in all_documents(store) if "notifications" in path] == []
    counts = purge(api, now + timedelta(days=93))["deleted"]["daily_counts"]
    assert counts >= 1
    assert [path for path, _ in all_documents(store) if "/daily/" in path] == []
    assert organization_exists(store)


def organization_exists(store: Any, org: str = ORG) -> bool:
    return bool(store.collection("organizations").document(org).get().exists)


def test_dry_run_counts_and_deletes_nothing(api: Functions, store: Any) -> None:
    key = register(api)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=key)
    api.post("/unsubscribe", {"instance_id": "tok"}, key=key)
    before = records(store)

    result = purge(api, datetime.now(UTC) + timedelta(days=31), dry_run=True)

    assert result["dry_run"] is True
    assert result["deleted"]["subscriptions"] == 1
    assert records(store) == before


def records(store: Any) -> list[tuple[str, Any]]:
    """Every document but the call counters (the purge call itself is counted: its quota)."""
    return [
        (path, fields)
        for path, fields in all_documents(store)
        if not path.startswith("throttles/") and "/quotas/" not in path
    ]


def test_purge_is_idempotent(api: Functions) -> None:
    key = register(api)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=key)
    api.post("/unsubscribe", {"instance_id": "tok"}, key=key)
    as_of = datetime.now(UTC) + timedelta(days=31)

    first, second = purge(api, as_of), purge(api, as_of)

    assert first["deleted"]["subscriptions"] == 1
    assert set(second["deleted"].values()) == {0}


class Interrupted(Exception):
    pass


class FailingAfter(FirestoreRetentionStore):
    """The real store, stopped dead after a number of deleted pages."""

    def __init__(self, client: Any, pages: int) -> None:
        super().__init__(client, page_size=2)
        self.pages_left = pages

    def delete(self, rule: RetentionRule, page: Sequence[Any]) -> int:
        if self.pages_left == 0:
            raise Interrupted()
        self.pages_left -= 1
        return super().delete(rule, page)


def test_an_interrupted_purge_is_finished_by_the_next_run(api: Functions, store: Any) -> None:
    key = register(api)
    for n in range(5):
        api.post("/subscribe", {"user_id": BOB, "instance_id": f"gone-{n}"}, key=key)
    api.post("/subscribe", {"user_id": ALICE, "instance_id": "kept"}, key=key)
    api.post("/unsubscribe", {"user_id": BOB}, key=key)
    as_of = datetime.now(UTC) + timedelta(days=31)
    rules = retention_rules(90)

    with pytest.raises(Interrupted):
        Purger(FailingAfter(store, pages=1), rules).purge(as_of)
    halfway = subscriptions(store)
    result = Purger(FirestoreRetentionStore(store, page_size=2), rules).purge(as_of)

    assert len(halfway) == 4  # 2 of 5 went, then it stopped
    assert result["subscriptions"] == 3
    assert next(iter(subscriptions(store).values()))["user_id"] == ALICE
    assert len(subscriptions(store)) == 1


def test_a_subscription_renewed_after_it_was_read_is_not_deleted(
    api: Functions, store: Any
) -> None:
    key = register(api)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=key)
    api.post("/unsubscribe", {"instance_id": "tok"}, key=key)
    rule = retention_rules(90)[0]
    retention = FirestoreRetentionStore(store)
    (page,) = list(retention.due_pages(rule, datetime.now(UTC) + timedelta(days=31)))
    api.post(
        "/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=key
    )  # between read and delete

    assert retention.delete(rule, page) == 0
    assert subscriptions(store)[subscription_id("tok")]["status"] == "active"


def test_an_organization_whose_erasure_stopped_is_finished_by_purge(
    api: Functions, store: Any
) -> None:
    key, other_key = register(api), register(api, OTHER_ORG)
    for n, k in enumerate((key, other_key)):
        api.post("/register/users", {"users": [{"id": BOB, "full_name": "Bob"}]}, key=k)
        api.post("/subscribe", {"user_id": BOB, "instance_id": f"tok-{n}"}, key=k)
    # What an erasure leaves when it stops right after replacing the profile with its marker.
    store.collection("organizations").document(ORG).set(
        {"id": ORG, "removed_at": datetime.now(UTC)}
    )

    result = purge(api)

    assert result["deleted"]["organizations"] == 1
    assert not organization_exists(store)
    assert documents(store, ORG, "users") == documents(store, ORG, "subscriptions") == {}
    assert organization_exists(store, OTHER_ORG)
    assert len(documents(store, OTHER_ORG, "subscriptions")) == 1


def seen_days_ago(store: Any, token: str, days: int) -> None:
    """The browser holding ``token`` last refreshed its subscription ``days`` ago."""
    reference = store.collection("organizations", ORG, "subscriptions").document(
        subscription_id(token)
    )
    reference.update({"last_seen_at": datetime.now(UTC) - timedelta(days=days)})


@pytest.mark.parametrize(("days", "stale"), [(59, False), (60, True), (61, True)])
def test_a_subscription_not_seen_for_60_days_is_stale_not_sent_to_and_purged_later(
    api: Functions, store: Any, fcm: Any, days: int, stale: bool
) -> None:
    key = register(api)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "old-laptop"}, key=key)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "new-laptop"}, key=key)
    seen_days_ago(store, "old-laptop", days)
    now = datetime.now(UTC)

    dry = purge(api, now, dry_run=True)
    result = purge(api, now)
    _, sent = send_and_deliver(api, {"recipients": [BOB], "title": "t", "body": "b"}, key)
    stored = subscriptions(store)[subscription_id("old-laptop")]
    gone = purge(api, now + timedelta(days=31))

    assert dry["deleted"]["stale_subscriptions"] == result["deleted"]["stale_subscriptions"]
    assert result["deleted"]["stale_subscriptions"] == int(stale)
    assert sorted(m["token"] for m in fcm.messages()) == (
        ["new-laptop"] if stale else ["new-laptop", "old-laptop"]
    )
    assert sent["devices"] == (1 if stale else 2)
    if stale:  # unsubscribed like any other: token erased now, tombstone gone by purge_by
        assert stored["status"] == "unsubscribed"
        assert stored["unsubscribe_reason"] == "stale"
        assert "instance_id" not in stored
        assert "token_kind" not in stored
        assert stored["purge_by"] == now + timedelta(days=29)  # gone by day 30 (daily purge)
        assert gone["deleted"]["subscriptions"] == 1
    else:
        assert stored["status"] == "active"
    assert subscriptions(store)[subscription_id("new-laptop")]["status"] == "active"


def test_the_stale_period_is_configurable_and_a_refresh_keeps_a_subscription(
    api: Functions, store: Any
) -> None:
    key = register(api)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=key)
    seen_days_ago(store, "tok", 20)
    rules = retention_rules(90, stale_subscription_days=10)
    read = FirestoreRetentionStore(store)
    (page,) = list(read.due_pages(rules[1], datetime.now(UTC)))
    api.post("/subscribe", {"user_id": BOB, "instance_id": "tok"}, key=key)  # the page refreshed

    kept = read.tombstone(rules[1], page, datetime.now(UTC))  # between read and write
    result = Purger(read, rules).purge(datetime.now(UTC))

    assert kept == 0
    assert result["stale_subscriptions"] == 0
    assert subscriptions(store)[subscription_id("tok")]["status"] == "active"
    seen_days_ago(store, "tok", 11)
    assert Purger(read, rules).purge(datetime.now(UTC))["stale_subscriptions"] == 1
