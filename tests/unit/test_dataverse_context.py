"""The RemoteExecutionContext parser, over every example body and the value encodings."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from push365.dataverse import (
    Entity,
    EntityReference,
    Money,
    OptionSetValue,
    display_text,
    is_execution_context,
    parse_execution_context,
    parse_value,
)
from push365.errors import ValidationFailed
from tests.conftest import EXAMPLES, example

ORG = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"
BOB = "b1111111-2222-4333-8444-555555555502"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_every_example_parses_with_its_identity(path: object) -> None:
    body = json.loads(EXAMPLES.joinpath(str(path)).read_text())

    context = parse_execution_context(body)

    assert is_execution_context(body)
    assert context.organization_id == ORG
    assert context.message_name == body["MessageName"]
    assert context.primary_entity_name == body["PrimaryEntityName"]
    assert context.primary_entity_id == body["PrimaryEntityId"]
    assert context.owning_extension_id == body["OwningExtension"]["Id"]
    assert context.stage == 40


def test_notification_create_typed_values() -> None:
    context = parse_execution_context(example("notification-create.json"))
    target = context.target_entity

    assert target is not None
    assert target.logical_name == "p365_notification"
    assert target.get("p365_urgency") == OptionSetValue(2)
    assert target.display("p365_urgency") == "High"
    assert target.get("p365_ttlseconds") == 3600
    assert target.get("ownerid") == EntityReference(
        "systemuser", "a1111111-2222-4333-8444-555555555501", None
    )
    assert target.get("createdon") == datetime(2025, 11, 29, 7, 6, 40, tzinfo=UTC)
    # Escaped slashes in the raw JSON arrive unescaped.
    assert target.get("p365_link") == (
        "https://contoso.crm4.dynamics.com/main.aspx?etn=incident"
        "&id=4d1c0c5e-0000-4000-8000-000000000009&pagetype=entityrecord"
    )
    assert context.output_parameters["id"] == "c0ffee00-0000-4000-8000-000000000001"
    assert context.shared_variables["IsAutoTransact"] is True
    assert context.post_images["AsynchronousStepPrimaryName"].id == context.primary_entity_id


def test_opportunity_update_money_formatted_values_and_pre_image() -> None:
    context = parse_execution_context(example("opportunity-update.json"))
    target = context.target_entity
    pre = context.first_pre_image()

    assert target is not None
    assert pre is not None
    assert target.get("estimatedvalue") == Money(Decimal("125000.0"))
    assert target.display("estimatedvalue") == "$125,000.00"
    assert target.display("statuscode") == "In Progress"
    assert target.display("ownerid") == "Bob Stone"  # a reference shows its name
    assert target.display("modifiedby") == "a1111111-2222-4333-8444-555555555501"  # else its id
    assert pre.get("ownerid") == EntityReference(
        "systemuser", "a1111111-2222-4333-8444-555555555501", "Alice Ng"
    )


def test_subscription_bodies_give_token_user_and_pre_image() -> None:
    create = parse_execution_context(example("subscription-create.json"))
    delete = parse_execution_context(example("subscription-delete.json"))

    assert create.initiating_user_id == BOB
    assert create.target_entity is not None
    assert create.target_entity.get("p365_instanceid") == "fcm-token-bob-laptop-chrome-0001"
    assert delete.target_entity is None  # a Delete's Target is an EntityReference
    assert isinstance(delete.input_parameters["Target"], EntityReference)
    pre = delete.first_pre_image()
    assert pre is not None
    assert pre.get("p365_instanceid") == "fcm-token-bob-laptop-chrome-0001"


def test_systemuser_update_columns() -> None:
    target = parse_execution_context(example("systemuser-update.json")).target_entity

    assert target is not None
    assert target.get("fullname") == "Bob Stone"
    assert target.get("isdisabled") is False


def test_multi_select_entity_collection_and_dates_with_offset() -> None:
    option = {"__type": "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts"}
    party = {
        "__type": "Entity:http://schemas.microsoft.com/xrm/2011/Contracts",
        "LogicalName": "activityparty",
        "Id": "00000000-0000-4000-8000-000000000001",
        "Attributes": [{"key": "partyid", "value": {"Id": BOB, "LogicalName": "systemuser"}}],
    }

    multi = parse_value([{**option, "Value": 1}, {**option, "Value": 3}])
    collection = parse_value(
        {
            "__type": "EntityCollection:http://schemas.microsoft.com/xrm/2011/Contracts",
            "Entities": [party],
        }
    )
    dated = parse_value("/Date(1506384247000+0300)/")

    assert multi == (OptionSetValue(1), OptionSetValue(3))
    assert display_text(multi) == "1, 3"
    assert isinstance(collection, tuple)
    assert isinstance(collection[0], Entity)
    assert collection[0].get("partyid") == EntityReference("systemuser", BOB, None)
    assert dated == datetime(2017, 9, 26, 0, 4, 7, tzinfo=UTC)  # the ms are UTC


def test_escaped_slashes_in_raw_json() -> None:
    raw = f'{{"__type":"EntityReference:http:\\/\\/schemas","Id":"{BOB}","LogicalName":"x"}}'
    date = json.loads('"\\/Date(0)\\/"')

    assert parse_value(json.loads(raw)) == EntityReference("x", BOB, None)
    assert parse_value(date) == datetime(1970, 1, 1, tzinfo=UTC)


def test_unknown_keys_are_ignored_and_missing_keys_tolerated() -> None:
    body = {
        "MessageName": "Create",
        "PrimaryEntityName": "P365_Subscription",
        "OrganizationId": ORG.upper(),
        "SomethingNew": {"nested": [1, 2]},
    }

    context = parse_execution_context(body)

    assert context.primary_entity_name == "p365_subscription"
    assert context.organization_id == ORG
    assert context.target_entity is None
    assert context.pre_images == {}
    assert context.initiating_user_id is None


def test_unknown_typed_value_is_kept_raw() -> None:
    raw = {"__type": "BooleanManagedProperty:http://schemas", "Value": True}

    assert parse_value(raw) == raw


_CONTRACTS = "http://schemas.microsoft.com/xrm/2011/Contracts"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # a value typed only as object: what a real capture's parameters carry
        (
            {"__type": "DateTime:#System", "__value": "/Date(1700000000000)/"},
            datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        ),
        (
            {"__type": "DateTime:#System", "__value": "/Date(1700000000000+0100)/"},
            datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        ),
        (
            {"__type": "Guid:#System", "__value": "B1111111-2222-4333-8444-555555555502"},
            BOB,
        ),
        ({"__type": "Decimal:#System", "__value": 12.5}, Decimal("12.5")),
        ({"__type": "Int64:#System", "__value": 7}, 7),
        ({"__type": "String:#System", "__value": "text"}, "text"),
        ("/Date(-86400000)/", datetime(1969, 12, 31, tzinfo=UTC)),
        ("2025-11-29T07:08:20Z", datetime(2025, 11, 29, 7, 8, 20, tzinfo=UTC)),
        ("2025-11-29T08:08:20.1234567+01:00", datetime(2025, 11, 29, 7, 8, 20, 123456, tzinfo=UTC)),
        ("2025-11-29", "2025-11-29"),  # a bare date may be text: kept
        (
            {
                "__type": f"AliasedValue:{_CONTRACTS}",
                "AttributeLogicalName": "name",
                "EntityLogicalName": "account",
                "NeedFormatting": True,
                "ReturnType": 14,
                "Value": "Fabrikam",
            },
            "Fabrikam",
        ),
        (
            {
                "__type": f"AliasedValue:{_CONTRACTS}",
                "AttributeLogicalName": "statuscode",
                "Value": {"__type": f"OptionSetValue:{_CONTRACTS}", "Value": 2},
            },
            OptionSetValue(2),
        ),
        (
            [
                {"__type": f"OptionSetValue:{_CONTRACTS}", "Value": 1},
                {"__type": f"OptionSetValue:{_CONTRACTS}", "Value": 3},
            ],
            (OptionSetValue(1), OptionSetValue(3)),
        ),
        (
            {
                "__type": f"OptionSetValueCollection:{_CONTRACTS}",
                "Values": [{"__type": f"OptionSetValue:{_CONTRACTS}", "Value": 1}],
            },
            (OptionSetValue(1),),
        ),
        (
            {"__type": f"Money:{_CONTRACTS}", "Value": 125000.0},
            Money(Decimal("125000.0")),
        ),
        (
            {
                "__type": f"EntityReference:{_CONTRACTS}",
                "Id": BOB,
                "LogicalName": "SystemUser",
                "Name": None,
            },
            EntityReference("systemuser", BOB, None),
        ),
    ],
)
def test_every_value_form_dataverse_serializes(raw: object, expected: object) -> None:
    assert parse_value(raw) == expected


def test_an_entity_collection_of_records_is_a_tuple_of_entities() -> None:
    raw = {
        "__type": f"EntityCollection:{_CONTRACTS}",
        "Entities": [
            {
                "__type": f"Entity:{_CONTRACTS}",
                "Attributes": [{"key": "name", "value": "Fabrikam"}],
                "FormattedValues": [],
                "Id": BOB,
                "LogicalName": "account",
            }
        ],
        "EntityName": "account",
    }

    value = parse_value(raw)

    assert isinstance(value, tuple)
    assert isinstance(value[0], Entity)
    assert value[0].get("name") == "Fabrikam"


def test_size_exceeded_body_keeps_ids_only() -> None:
    body = example("notification-create.json")
    for removed in ("ParentContext", "InputParameters", "PreEntityImages", "PostEntityImages"):
        body.pop(removed)

    context = parse_execution_context(body, size_exceeded=True)

    assert context.size_exceeded
    assert context.target_entity is None
    assert context.primary_entity_id == "c0ffee00-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    "change",
    [
        {"OrganizationId": None},
        {"OrganizationId": "not-a-guid"},
        {"OrganizationId": 42},
        {"MessageName": ""},
        {"PrimaryEntityId": "zzz"},
    ],
)
def test_malformed_identity_is_a_validation_error(change: dict[str, object]) -> None:
    body = {**example("subscription-create.json"), **change}

    with pytest.raises(ValidationFailed):
        parse_execution_context(body)


def test_plain_json_is_not_a_context() -> None:
    assert not is_execution_context({"user_id": BOB, "instance_id": "t"})
