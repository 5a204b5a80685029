"""Where system users are kept: the port, and its Firestore adapter."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore

from push365.store import ORGANIZATIONS, USERS, get_rows
from push365.subscriptions.repository import DEVICES_LISTED


class UserRepository(Protocol):
    """The storage port the user use cases need."""

    def upsert_many(
        self, organization_id: str, users: Sequence[dict[str, Any]], now: datetime
    ) -> None:
        """Merge each user's fields into its record, all in one atomic write."""
        ...

    def ensure(self, organization_id: str, user_id: str, now: datetime) -> None:
        """Create a minimal record for a user not synced yet; leave an existing one alone."""
        ...

    def delete(self, organization_id: str, user_id: str) -> bool:
        """Delete a user's record; False when there was none."""
        ...


class FirestoreUserRepository:
    """Users in ``organizations/{org}/users/{id}``."""

    def __init__(self, client: firestore.Client, timeout_seconds: float = 10.0) -> None:
        self._client = client
        self._timeout = timeout_seconds

    def _users(self, organization_id: str) -> firestore.CollectionReference:
        return self._client.collection(ORGANIZATIONS, organization_id, USERS)

    def upsert_many(
        self, organization_id: str, users: Sequence[dict[str, Any]], now: datetime
    ) -> None:
        collection = self._users(organization_id)
        references = [collection.document(fields["id"]) for fields in users]
        known = {user_id for user_id, _ in get_rows(self._client, references, [], self._timeout)}
        batch = self._client.batch()
        for reference, fields in zip(references, users, strict=True):
            # A user new to Push365 has no subscription yet: its (empty) list is complete. One
            # kept from before the lists existed is never marked here (subscriptions.repository).
            new = {} if reference.id in known else {DEVICES_LISTED: True}
            batch.set(reference, {**fields, **new, "updated_at": now}, merge=True)
        batch.commit()

    def ensure(self, organization_id: str, user_id: str, now: datetime) -> None:
        with contextlib.suppress(AlreadyExists):
            self._users(organization_id).document(user_id).create(
                {"id": user_id, DEVICES_LISTED: True, "created_at": now, "updated_at": now}
            )

    def delete(self, organization_id: str, user_id: str) -> bool:
        reference = self._users(organization_id).document(user_id)
        existed = reference.get(field_paths=["id"]).exists
        reference.delete()
        return existed


class FirestoreUserDirectory:
    """The full names of the organization's system users (``/register/users``), read by a send
    to name a user an event names only by id. Reads ``full_name`` and nothing else."""

    def __init__(self, client: firestore.Client, timeout_seconds: float = 10.0) -> None:
        self._client = client
        self._timeout = timeout_seconds

    def full_names(self, organization_id: str, user_ids: Sequence[str]) -> dict[str, str]:
        """Full names by user id, for the users that have one; one read per 500."""
        users = self._client.collection(ORGANIZATIONS, organization_id, USERS)
        references = [users.document(u) for u in dict.fromkeys(user_ids)]
        names: dict[str, str] = {}
        for user_id, fields in get_rows(self._client, references, ["full_name"], self._timeout):
            name = fields.get("full_name")
            if isinstance(name, str) and name.strip():
                names[user_id] = name
        return names
