"""Subscription use cases: a browser opts in, a browser (or all of a user's) opts out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from push365.model import utc_now
from push365.retention import unsubscribed_purge_by
from push365.subscriptions.model import Subscribe, Unsubscribe, UnsubscribeReason, subscription_id
from push365.subscriptions.repository import SubscriptionRepository
from push365.users.repository import UserRepository


@dataclass(frozen=True)
class Subscribed:
    """The outcome of ``subscribe``."""

    subscription_id: str
    created: bool


@dataclass(frozen=True)
class Unsubscribed:
    """The outcome of ``unsubscribe``: how many stopped, and when their traces are purged."""

    count: int
    purge_by: datetime


class SubscriptionService:
    """Opting browsers in and out."""

    def __init__(
        self,
        subscriptions: SubscriptionRepository,
        users: UserRepository,
        retention_days: int,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._subscriptions = subscriptions
        self._users = users
        self._retention_days = retention_days
        self._clock = clock

    def subscribe(self, organization_id: str, command: Subscribe) -> Subscribed:
        """Activate the token for the user (moving it to them if another user had it).

        A user the organization has not synced yet gets a minimal record (id only).
        """
        now = self._clock()
        self._users.ensure(organization_id, command.user_id, now)
        created = self._subscriptions.activate(
            organization_id,
            command.instance_id,
            command.user_id,
            command.browser_footprint,
            now,
            command.token_kind,
        )
        return Subscribed(subscription_id(command.instance_id), created)

    def count_devices(self, organization_id: str, user_ids: Sequence[str]) -> int:
        """How many active browsers these users have (what a send would reach); reads only."""
        if not user_ids:
            return 0
        return len(self._subscriptions.active_subscription_ids(organization_id, user_ids))

    def unsubscribe(self, organization_id: str, command: Unsubscribe) -> Unsubscribed:
        """Stop sending to one token, or to every token of a user. Never sent to again."""
        now = self._clock()
        purge_by = unsubscribed_purge_by(now, self._retention_days)
        reason = UnsubscribeReason.REQUESTED
        if command.instance_id is not None:
            count = self._subscriptions.deactivate_token(
                organization_id, command.instance_id, reason, now, purge_by
            )
        else:
            assert command.user_id is not None
            count = self._subscriptions.deactivate_user(
                organization_id, command.user_id, reason, now, purge_by
            )
        return Unsubscribed(count, purge_by)
