"""P8 (User's Instance ID): a browser's FCM instance id and footprint are kept until the user
unsubscribes (or Firebase rejects the token, or its browser stops refreshing it); then they are
erased at once, and what is left is gone from the live database within 30 days."""

from __future__ import annotations

from datetime import timedelta

import pytest

from push365.model import utc_now
from push365.retention import (
    MAX_UNSUBSCRIBE_RETENTION_DAYS,
    PURGE_INTERVAL,
    unsubscribed_purge_by,
)
from push365.settings import Settings
from push365.subscriptions.model import Unsubscribe, UnsubscribeReason
from tests.privacy.conftest import ALICE, BOB, NOW, ORG, Services, policy, under

TOKEN_FIELDS = ("instance_id", "browser_footprint", "token_kind")


def subscription(services: Services, sid: str) -> dict:  # type: ignore[type-arg]
    return dict(under(services.client, ORG))[f"organizations/{ORG}/subscriptions/{sid}"]


def assert_token_erased(stored: dict) -> None:  # type: ignore[type-arg]
    assert stored["status"] == "unsubscribed"
    assert [f for f in TOKEN_FIELDS if f in stored] == []


def test_unsubscribing_a_token_erases_it_at_once(services: Services) -> None:
    services.register()
    sid = services.subscribe(ORG, BOB, "tok")

    services.subscriptions.unsubscribe(ORG, Unsubscribe(instance_id="tok"))

    assert_token_erased(subscription(services, sid))


def test_unsubscribing_by_user_id_erases_every_token_of_the_user(services: Services) -> None:
    services.register()
    sids = [services.subscribe(ORG, BOB, t) for t in ("laptop", "phone")]
    alice = services.subscribe(ORG, ALICE, "alice")

    services.subscriptions.unsubscribe(ORG, Unsubscribe(user_id=BOB))

    for sid in sids:
        assert_token_erased(subscription(services, sid))
    assert subscription(services, alice)["instance_id"] == "alice"


def test_a_token_firebase_rejected_is_erased_at_once(services: Services) -> None:
    services.register()
    sid = services.subscribe(ORG, BOB, "dead")
    now = utc_now()

    services.subscription_store.retire(
        ORG, [sid], UnsubscribeReason.UNREGISTERED, now, unsubscribed_purge_by(now, 30)
    )

    assert_token_erased(subscription(services, sid))


def test_a_stale_token_is_erased_by_purge(services: Services) -> None:
    services.register()
    sid = services.subscribe(ORG, BOB, "old")
    seen = subscription(services, sid)["last_seen_at"]

    services.purger().purge(seen + timedelta(days=Settings().stale_subscription_days, seconds=1))

    assert_token_erased(subscription(services, sid))


def test_the_stale_period_stays_under_firebases_270_days() -> None:
    assert Settings().stale_subscription_days <= 269


def test_purge_by_leaves_the_daily_purge_a_day_inside_30_days() -> None:
    assert unsubscribed_purge_by(NOW, 30) + PURGE_INTERVAL <= NOW + timedelta(days=30)
    assert timedelta(days=1) <= PURGE_INTERVAL
    assert unsubscribed_purge_by(NOW, 0) == NOW


def test_an_unsubscribed_record_is_gone_30_days_after_unsubscribe(services: Services) -> None:
    services.register()
    sid = services.subscribe(ORG, BOB, "tok")
    unsubscribed = services.subscriptions.unsubscribe(ORG, Unsubscribe(instance_id="tok"))
    at = subscription(services, sid)["unsubscribed_at"]
    purger = services.purger()

    # Purge runs daily: the run in the last day before day 30 must find it due.
    purger.purge(at + timedelta(days=30) - PURGE_INTERVAL)

    assert unsubscribed.purge_by <= at + timedelta(days=30) - PURGE_INTERVAL
    assert f"organizations/{ORG}/subscriptions/{sid}" not in dict(under(services.client, ORG))


def test_the_retention_after_unsubscribe_cannot_be_set_past_30_days() -> None:
    assert MAX_UNSUBSCRIBE_RETENTION_DAYS == policy()["retention"]["unsubscribed_days"] == 30
    assert Settings().unsubscribe_retention_days <= 30
    with pytest.raises(ValueError, match="less than or equal to 30"):
        Settings(unsubscribe_retention_days=31)
    with pytest.raises(ValueError, match="between 0 and 30 days"):
        unsubscribed_purge_by(NOW, 31)


def test_removing_a_user_deletes_their_subscriptions(services: Services) -> None:
    services.register()
    sid = services.subscribe(ORG, BOB, "tok")

    services.users.remove(ORG, BOB)

    assert f"organizations/{ORG}/subscriptions/{sid}" not in dict(under(services.client, ORG))
