"""The Firestore client and the document layout, named once.

Layout (every tenant's data lives under its organization document)::

    organizations/{organization_id}
    organizations/{organization_id}/users/{systemuser_id}
    organizations/{organization_id}/subscriptions/{sha256(instance_id)}
    organizations/{organization_id}/notifications/{notification_id}
    organizations/{organization_id}/notifications/{notification_id}/deliveries/{device_id}
    organizations/{organization_id}/dedup/{sha256(dedup key)}
"""

from __future__ import annotations

from functools import lru_cache

from google.cloud import firestore

from push365.settings import get_settings

ORGANIZATIONS = "organizations"
USERS = "users"
SUBSCRIPTIONS = "subscriptions"

BATCH_LIMIT = 500
"""Firestore's limit on writes in one batch or transaction."""


@lru_cache(maxsize=1)
def firestore_client() -> firestore.Client:
    """The process-wide client, created on first use (``FIRESTORE_EMULATOR_HOST`` is honoured)."""
    return firestore.Client(project=get_settings().project_id)


def organization_ref(client: firestore.Client, organization_id: str) -> firestore.DocumentReference:
    """The document of one organization."""
    return client.collection(ORGANIZATIONS).document(organization_id)


NOTIFICATIONS = "notifications"
DELIVERIES = "deliveries"
DEDUP = "dedup"
