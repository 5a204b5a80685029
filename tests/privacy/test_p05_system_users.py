"""P5 (Information We Collect: About System Users): Dynamics 365 identity, domain name, full
name, email, Windows Live id and mobile phone, nothing else, however a user arrives."""

from __future__ import annotations

from typing import Any

from push365.dataverse import parse_execution_context
from push365.subscriptions.repository import DEVICES_FIELD, DEVICES_LISTED
from push365.users.dataverse import COLUMNS, user_change_from_context
from push365.users.model import SystemUser
from tests.conftest import example
from tests.privacy.conftest import BOB, ORG, Services, listed, under

EXTRA_COLUMNS = ("jobtitle", "title", "address1_line1", "homephone", "personalemailaddress")


def test_users_synced_from_dataverse_keep_only_the_listed_fields(services: Services) -> None:
    body: dict[str, Any] = example("systemuser-update.json")
    body["OrganizationId"] = ORG
    attributes = body["InputParameters"][0]["value"]["Attributes"]
    for column in (*COLUMNS, *EXTRA_COLUMNS):
        attributes.append({"key": column, "value": "x"})
    services.register()

    user = user_change_from_context(parse_execution_context(body))
    assert isinstance(user, SystemUser)
    services.users.upsert(ORG, [user])

    users = [f for p, f in under(services.client, ORG) if "/users/" in p]
    assert users
    assert set().union(*users) <= listed("users")


def test_users_sent_as_json_keep_only_the_listed_fields(services: Services) -> None:
    services.register()
    user = SystemUser.model_validate({"id": BOB, "full_name": "Bob", "job_title": "CEO"})

    services.users.upsert(ORG, [user])

    ((stored),) = [f for p, f in under(services.client, ORG) if "/users/" in p]
    assert set(stored) <= listed("users")


def test_the_synced_columns_are_the_listed_fields() -> None:
    # besides the columns: dates, and the list of the user's active subscriptions' ids
    kept = {"id", "created_at", "updated_at", DEVICES_FIELD, DEVICES_LISTED}
    assert set(COLUMNS.values()) | kept == listed("users")
