"""The privacy policy's promises, one file per promise (P1 ... P11, the policy's own order).

Fast path: these tests call the use cases over their real Firestore adapters (no functions, no
Pub/Sub, no FCM), so a mutation's tests take seconds (``make mutate``). They use the session's
Firestore emulator (``tests/conftest.py``), or, when ``PUSH365_SHARED_FIRESTORE`` names one
already running (``host:port``, what ``make mutate`` starts once for all its workers), that one,
in project ``PUSH365_SHARED_PROJECT`` (one per worker).
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from push365.compliance import POLICY_FIELDS
from push365.fanout.repository import FirestoreFanoutRepository, Taken
from push365.model import utc_now
from push365.notifications.deliveries import Delivery
from push365.notifications.receipts import device_id, new_receipt
from push365.notifications.repository import FirestoreNotificationRepository
from push365.notifications.service import NotificationService
from push365.organizations.model import Registration
from push365.organizations.repository import FirestoreOrganizationRepository
from push365.organizations.service import OrganizationService
from push365.privacy.repository import FirestorePrivacyStore
from push365.privacy.service import PrivacyService
from push365.retention.purge import FirestoreRetentionStore, Purger
from push365.retention.rules import retention_rules
from push365.settings import Settings
from push365.subscriptions.model import Subscribe, subscription_id
from push365.subscriptions.repository import FirestoreSubscriptionRepository
from push365.subscriptions.service import SubscriptionService
from push365.users.model import SystemUser
from push365.users.repository import FirestoreUserRepository
from push365.users.service import UserService
from tests.conftest import PROJECT
from tests.fakes import RecordingPublisher
from tests.integration.conftest import all_documents

SHARED_FIRESTORE = "PUSH365_SHARED_FIRESTORE"
SHARED_PROJECT = "PUSH365_SHARED_PROJECT"

ORG = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"
OTHER_ORG = "9e8d7c6b-5a49-4382-9716-05f4e3d2c1b0"
ALICE = "a1111111-2222-4333-8444-555555555501"
BOB = "b1111111-2222-4333-8444-555555555502"  # a user id both organizations have
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def policy() -> dict[str, Any]:
    """The policy's field lists: the same data file ``make store-check`` reads."""
    return json.loads(Path(POLICY_FIELDS).read_text())  # type: ignore[no-any-return]


def listed(collection: str) -> set[str]:
    """The fields the policy lists for a collection."""
    return set(policy()["collections"][collection]["fields"])


def _reset(address: str, project: str) -> None:
    request = urllib.request.Request(
        f"http://{address}/emulator/v1/projects/{project}/databases/(default)/documents",
        method="DELETE",
    )
    urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture(scope="session")
def firestore_address(request: pytest.FixtureRequest) -> str:
    shared = os.environ.get(SHARED_FIRESTORE)
    if shared:
        os.environ["FIRESTORE_EMULATOR_HOST"] = shared
        return shared
    return str(request.getfixturevalue("emulator").address)


@pytest.fixture(scope="session")
def _client(firestore_address: str) -> Any:
    from google.cloud import firestore

    return firestore.Client(project=os.environ.get(SHARED_PROJECT, PROJECT))


@pytest.fixture
def db(firestore_address: str, _client: Any) -> Iterator[Any]:
    """A Firestore client on an empty database."""
    _reset(firestore_address, _client.project)
    yield _client
    _reset(firestore_address, _client.project)


every_document = all_documents
"""(path, fields) of every document, subcollections included."""


def under(client: Any, org: str) -> list[tuple[str, dict[str, Any]]]:
    """Every document of one organization."""
    return [(p, f) for p, f in every_document(client) if p.startswith(f"organizations/{org}")]


@dataclass
class Services:
    """The use cases over Firestore, as bootstrap wires them (Pub/Sub recorded, not run)."""

    client: Any
    settings: Settings
    organizations: OrganizationService
    users: UserService
    subscriptions: SubscriptionService
    subscription_store: FirestoreSubscriptionRepository
    notifications: NotificationService
    notification_store: FirestoreNotificationRepository
    privacy: PrivacyService
    published: RecordingPublisher

    def register(self, org: str = ORG, **fields: Any) -> str:
        """Register an organization; its API key."""
        body = {
            "organization": {"id": org, "unique_name": "u", "name": "C", "language_code": 1033},
            "business": {"name": "Contoso Ltd", "email": "it@contoso.example"},
            "admins": [{"full_name": "Ada Admin", "email": "ada@contoso.example"}],
        } | fields
        registered = self.organizations.register(Registration.model_validate(body), None)
        assert registered.api_key is not None
        return registered.api_key

    def subscribe(self, org: str, user: str, token: str) -> str:
        self.users.upsert(org, [SystemUser(id=user, full_name="Bob Stone")])
        self.subscriptions.subscribe(
            org, Subscribe(user_id=user, instance_id=token, browser_footprint="fp")
        )
        return subscription_id(token)

    def send(self, org: str, recipients: list[str], dedup_key: str | None = None) -> str:
        """A send as the send function makes it (stored and queued); the notification id."""
        from push365.notifications.model import SendRequest

        request = SendRequest(recipients=recipients, title="CANARY-TITLE", body="CANARY-BODY")
        return self.notifications.send(org, request, dedup_key).notification_id

    def deliver(self, org: str, notification_id: str, user: str, token: str) -> str:
        """A device's delivery record, as deliver writes it (a batch of its own, planned and
        finished through the fan-out's adapter); the receipt its message carried."""
        fanout = FirestoreFanoutRepository(self.client)
        sid = subscription_id(token)
        device = device_id(sid)
        now = utc_now()
        lease = fanout.lease_plan(
            org, notification_id, now, now + timedelta(minutes=1), now + timedelta(days=90)
        )
        assert lease is not None
        batch = lease.batches
        fanout.release_plan(
            fanout.add_batch(
                lease, org, notification_id, [sid], now, now + timedelta(days=90), now
            ),
            org,
            notification_id,
        )
        state = fanout.take(org, notification_id, batch, now, now + timedelta(minutes=1))
        assert not isinstance(state, Taken)
        receipt, receipt_hash = new_receipt(org, notification_id, batch, device)
        delivery = Delivery(device, user, "sent", "projects/p/messages/1", None, now, receipt_hash)
        state.outcomes[sid] = "sent"
        fanout.finish(state, [delivery])
        return receipt

    def purger(self) -> Purger:
        rules = retention_rules(
            self.settings.notification_retention_days,
            self.settings.stale_subscription_days,
            self.settings.unsubscribe_retention_days,
        )
        return Purger(FirestoreRetentionStore(self.client), rules)


@pytest.fixture
def services(db: Any) -> Services:
    from push365 import bootstrap

    settings = Settings()
    published = RecordingPublisher()
    notification_store = FirestoreNotificationRepository(db)
    subscription_store = FirestoreSubscriptionRepository(db)
    return Services(
        client=db,
        settings=settings,
        organizations=OrganizationService(FirestoreOrganizationRepository(db)),
        users=UserService(FirestoreUserRepository(db), subscription_store),
        subscriptions=SubscriptionService(
            subscription_store,
            FirestoreUserRepository(db),
            retention_days=settings.unsubscribe_retention_days,
        ),
        subscription_store=subscription_store,
        notifications=NotificationService(
            notification_store,
            published,
            bootstrap.send_policy(settings),
            devices=subscription_store,
        ),
        notification_store=notification_store,
        privacy=PrivacyService(FirestorePrivacyStore(db)),
        published=published,
    )
