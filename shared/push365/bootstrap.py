"""Wiring: the use-case services over their Firestore adapters, built lazily once per process.

Cold starts pay only for what a function uses: nothing here runs at import time.
"""

from __future__ import annotations

from functools import lru_cache

from push365.organizations.repository import FirestoreOrganizationRepository
from push365.organizations.service import OrganizationService
from push365.settings import get_settings
from push365.store import firestore_client
from push365.subscriptions.repository import FirestoreSubscriptionRepository
from push365.subscriptions.service import SubscriptionService
from push365.users.repository import FirestoreUserRepository
from push365.users.service import UserService


@lru_cache(maxsize=1)
def organizations() -> OrganizationService:
    """Registration and authentication."""
    return OrganizationService(FirestoreOrganizationRepository(firestore_client()))


@lru_cache(maxsize=1)
def users() -> UserService:
    """System user sync."""
    client = firestore_client()
    return UserService(FirestoreUserRepository(client), FirestoreSubscriptionRepository(client))


@lru_cache(maxsize=1)
def subscriptions() -> SubscriptionService:
    """Subscribe and unsubscribe."""
    client = firestore_client()
    return SubscriptionService(
        FirestoreSubscriptionRepository(client),
        FirestoreUserRepository(client),
        retention_days=get_settings().unsubscribe_retention_days,
    )
