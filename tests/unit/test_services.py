"""The use cases over in-memory repositories: registration, users, subscriptions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from push365.errors import Conflict, CurrentKeyRequired, Forbidden, Unauthorized
from push365.organizations.model import Registration
from push365.organizations.service import OrganizationService
from push365.subscriptions.model import Subscribe, Unsubscribe, subscription_id
from push365.subscriptions.service import SubscriptionService
from push365.users.model import SystemUser
from push365.users.service import UserService
from tests.fakes import (
    InMemoryOrganizationRepository,
    InMemorySubscriptionRepository,
    InMemoryUserRepository,
)

ORG = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"
OTHER_ORG = "9e8d7c6b-5a49-4382-9716-05f4e3d2c1b0"
ALICE = "a1111111-2222-4333-8444-555555555501"
BOB = "b1111111-2222-4333-8444-555555555502"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def registration(org: str = ORG, **changes: object) -> Registration:
    body: dict[str, object] = {
        "organization": {"id": org, "unique_name": "unq", "name": "Contoso", "language_code": 1033},
        "business": {"name": "Contoso Ltd", "phone": "+1 555"},
        "admins": [{"full_name": "Ada Admin", "email": "ada@contoso.com"}],
    }
    return Registration.model_validate(body | changes)


@pytest.fixture
def organizations() -> OrganizationService:
    return OrganizationService(InMemoryOrganizationRepository(), clock=lambda: NOW)


class TestOrganizations:
    def test_register_returns_a_key_that_authenticates(
        self, organizations: OrganizationService
    ) -> None:
        outcome = organizations.register(registration(), presented_key=None)

        assert outcome.created
        assert outcome.api_key
        assert organizations.authenticate(outcome.api_key).id == ORG

    def test_same_id_without_key_conflicts(self, organizations: OrganizationService) -> None:
        organizations.register(registration(), None)

        with pytest.raises(Conflict):
            organizations.register(registration(), None)

    def test_update_with_key_keeps_unsent_business_fields(self) -> None:
        repository = InMemoryOrganizationRepository()
        service = OrganizationService(repository, clock=lambda: NOW)
        key = service.register(registration(), None).api_key
        assert key

        outcome = service.register(
            registration(
                business={"phone": "+1 999"},
                organization={
                    "id": ORG,
                    "unique_name": "unq",
                    "name": "Contoso EU",
                    "language_code": 1031,
                },
            ),
            key,
        )

        stored = repository.documents[ORG]
        assert not outcome.created
        assert outcome.api_key is None
        assert stored["name"] == "Contoso EU"
        assert stored["language_code"] == 1031
        assert stored["business"] == {
            "name": "Contoso Ltd",
            "phone": "+1 999",
            "email": None,
            "country": None,
            "address": None,
        }

    def test_key_of_another_organization_is_forbidden(
        self, organizations: OrganizationService
    ) -> None:
        other_key = organizations.register(registration(OTHER_ORG), None).api_key
        organizations.register(registration(), None)

        with pytest.raises(Forbidden):
            organizations.register(registration(), other_key)

    @pytest.mark.parametrize(
        "presented", [None, "", "garbage", f"p365.{ORG}.wrong", f"p365.{OTHER_ORG}.x"]
    )
    def test_bad_keys_get_one_answer(
        self, organizations: OrganizationService, presented: str | None
    ) -> None:
        organizations.register(registration(), None)

        with pytest.raises(Unauthorized) as raised:
            organizations.authenticate(presented)
        assert raised.value.message == Unauthorized.default_message

    def test_after_rotation_the_previous_key_works_for_the_overlap_window_only(self) -> None:
        clock = Clock()
        organizations = OrganizationService(
            InMemoryOrganizationRepository(), clock=clock, key_overlap=timedelta(hours=24)
        )
        old = organizations.register(registration(), None).api_key
        assert old

        rotated = organizations.rotate_key(organizations.authenticate(old))

        assert rotated.previous_key_valid_until == NOW + timedelta(hours=24)
        assert organizations.identify(rotated.api_key).key == "current"
        assert organizations.identify(old).key == "previous"
        clock.now = NOW + timedelta(hours=24)
        assert organizations.identify(rotated.api_key).key == "current"
        with pytest.raises(Unauthorized):
            organizations.authenticate(old)

    def test_a_revoked_previous_key_stops_at_once(self) -> None:
        organizations = OrganizationService(InMemoryOrganizationRepository(), clock=Clock())
        old = organizations.register(registration(), None).api_key
        assert old
        rotated = organizations.rotate_key(organizations.authenticate(old))

        organizations.revoke_previous_key(organizations.authenticate(rotated.api_key))

        assert organizations.identify(rotated.api_key).key == "current"
        with pytest.raises(Unauthorized):
            organizations.authenticate(old)

    def test_a_rotation_without_overlap_retires_the_old_key_at_once(
        self, organizations: OrganizationService
    ) -> None:
        old = organizations.register(registration(), None).api_key
        assert old

        rotated = organizations.rotate_key(organizations.authenticate(old), timedelta(0))

        assert rotated.previous_key_valid_until is None
        with pytest.raises(Unauthorized):
            organizations.authenticate(old)

    def test_the_previous_key_cannot_update_the_registration(
        self, organizations: OrganizationService
    ) -> None:
        old = organizations.register(registration(), None).api_key
        assert old
        current = organizations.rotate_key(organizations.authenticate(old)).api_key
        mallory = registration(admins=[{"full_name": "M", "email": "m@evil.example"}])

        with pytest.raises(CurrentKeyRequired):
            organizations.register(mallory, old)

        organizations.register(registration(), current)  # no exception
        assert organizations.authenticate(current).admin_emails() == ["ada@contoso.com"]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class TestUsersAndSubscriptions:
    @pytest.fixture
    def repositories(self) -> tuple[InMemoryUserRepository, InMemorySubscriptionRepository]:
        return InMemoryUserRepository(), InMemorySubscriptionRepository()

    @pytest.fixture
    def users(
        self, repositories: tuple[InMemoryUserRepository, InMemorySubscriptionRepository]
    ) -> UserService:
        return UserService(*repositories, clock=lambda: NOW)

    @pytest.fixture
    def subscriptions(
        self, repositories: tuple[InMemoryUserRepository, InMemorySubscriptionRepository]
    ) -> SubscriptionService:
        user_repo, subscription_repo = repositories
        return SubscriptionService(
            subscription_repo, user_repo, retention_days=30, clock=lambda: NOW
        )

    def test_partial_user_update_keeps_other_fields(
        self, users: UserService, repositories: tuple[InMemoryUserRepository, object]
    ) -> None:
        users.upsert(ORG, [SystemUser(id=BOB, full_name="Bob", email="bob@contoso.com")])
        users.upsert(ORG, [SystemUser(id=BOB, full_name="Bob Stone")])

        stored = repositories[0].documents[(ORG, BOB)]
        assert stored["full_name"] == "Bob Stone"
        assert stored["email"] == "bob@contoso.com"

    def test_subscribe_twice_is_created_then_refreshed_and_moves_user(
        self,
        subscriptions: SubscriptionService,
        repositories: tuple[object, InMemorySubscriptionRepository],
    ) -> None:
        first = subscriptions.subscribe(ORG, Subscribe(user_id=ALICE, instance_id="tok"))
        again = subscriptions.subscribe(ORG, Subscribe(user_id=BOB, instance_id="tok"))

        stored = repositories[1].documents[(ORG, subscription_id("tok"))]
        assert first.created
        assert not again.created
        assert first.subscription_id == again.subscription_id
        assert stored["user_id"] == BOB

    def test_subscribe_creates_a_minimal_user(
        self,
        subscriptions: SubscriptionService,
        repositories: tuple[InMemoryUserRepository, object],
    ) -> None:
        subscriptions.subscribe(ORG, Subscribe(user_id=BOB, instance_id="tok"))

        assert repositories[0].documents[(ORG, BOB)] == {
            "id": BOB,
            "created_at": NOW,
            "updated_at": NOW,
        }

    def test_unsubscribe_leaves_a_tombstone_without_token_purged_within_30_days(
        self,
        subscriptions: SubscriptionService,
        repositories: tuple[object, InMemorySubscriptionRepository],
    ) -> None:
        subscriptions.subscribe(
            ORG, Subscribe(user_id=BOB, instance_id="tok", browser_footprint="fp")
        )

        outcome = subscriptions.unsubscribe(ORG, Unsubscribe(instance_id="tok"))
        repeat = subscriptions.unsubscribe(ORG, Unsubscribe(instance_id="tok"))

        stored = repositories[1].documents[(ORG, subscription_id("tok"))]
        assert (outcome.count, repeat.count) == (1, 0)
        assert outcome.purge_by == NOW + timedelta(days=29)  # the daily purge's day of margin
        assert stored["status"] == "unsubscribed"
        assert "instance_id" not in stored
        assert "browser_footprint" not in stored

    def test_unsubscribe_user_stops_all_their_devices_only(
        self,
        subscriptions: SubscriptionService,
        repositories: tuple[object, InMemorySubscriptionRepository],
    ) -> None:
        for token, user in (("b1", BOB), ("b2", BOB), ("a1", ALICE)):
            subscriptions.subscribe(ORG, Subscribe(user_id=user, instance_id=token))

        outcome = subscriptions.unsubscribe(ORG, Unsubscribe(user_id=BOB))

        statuses = {doc["user_id"] + doc["status"] for doc in repositories[1].documents.values()}
        assert outcome.count == 2
        assert statuses == {BOB + "unsubscribed", ALICE + "active"}

    def test_resubscribe_after_unsubscribe_is_a_new_subscription(
        self, subscriptions: SubscriptionService
    ) -> None:
        subscriptions.subscribe(ORG, Subscribe(user_id=BOB, instance_id="tok"))
        subscriptions.unsubscribe(ORG, Unsubscribe(instance_id="tok"))

        assert subscriptions.subscribe(ORG, Subscribe(user_id=BOB, instance_id="tok")).created

    def test_removing_a_user_removes_their_subscriptions(
        self,
        users: UserService,
        subscriptions: SubscriptionService,
        repositories: tuple[InMemoryUserRepository, InMemorySubscriptionRepository],
    ) -> None:
        subscriptions.subscribe(ORG, Subscribe(user_id=BOB, instance_id="b1"))
        subscriptions.subscribe(ORG, Subscribe(user_id=ALICE, instance_id="a1"))

        outcome = users.remove(ORG, BOB)

        assert outcome.removed
        assert outcome.subscriptions_removed == 1
        assert (ORG, BOB) not in repositories[0].documents
        assert [d["user_id"] for d in repositories[1].documents.values()] == [ALICE]
