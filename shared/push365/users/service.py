"""System user use cases: sync (create, correct) and remove."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from push365.model import utc_now
from push365.subscriptions.repository import SubscriptionRepository
from push365.users.model import SystemUser
from push365.users.repository import UserRepository


@dataclass(frozen=True)
class UserRemoved:
    """The outcome of ``remove``."""

    removed: bool
    subscriptions_removed: int


class UserService:
    """Keeping the organization's system users in step with Dynamics."""

    def __init__(
        self,
        users: UserRepository,
        subscriptions: SubscriptionRepository,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._users = users
        self._subscriptions = subscriptions
        self._clock = clock

    def upsert(self, organization_id: str, users: Sequence[SystemUser]) -> int:
        """Create or correct users; a field not sent keeps its stored value."""
        self._users.upsert_many(organization_id, [u.stored_fields() for u in users], self._clock())
        return len(users)

    def remove(self, organization_id: str, user_id: str) -> UserRemoved:
        """Remove a user and every subscription of theirs, now.

        Subscriptions go first: if this is interrupted, the user is still there and a retry
        finishes the job, so no subscription is ever left without its user.
        """
        removed_subscriptions = self._subscriptions.delete_user(organization_id, user_id)
        removed = self._users.delete(organization_id, user_id)
        return UserRemoved(removed, removed_subscriptions)
