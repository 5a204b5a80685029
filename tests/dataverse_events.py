"""Dataverse webhook bodies in the real shape (``tests/data/dataverse-examples``), for
any table and message: the example's envelope, with the record, images and context changed.

``account-update-names-in-images.json`` (a Target whose lookups carry no names, named images)
and ``customapi-unbound.json`` (a custom API with typed parameters) in that folder were written
with these helpers, not captured: the same envelope, values in the captured forms.

Values are written as Dataverse writes them: ``ref(...)`` for a lookup, ``choice(n)``, ``money(x)``,
``date(ms)``, ``parties(...)`` for an activity party list.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from tests.conftest import example

ORG = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"
ALICE = "a1111111-2222-4333-8444-555555555501"
BOB = "b1111111-2222-4333-8444-555555555502"
CAROL = "c1111111-2222-4333-8444-555555555503"
TEAM = "7ea70000-0000-4000-8000-000000000001"
CONTACT_ID = "c0c0c0c0-0000-4000-8000-000000000007"
RECORD_ID = "0dd00000-0000-4000-8000-000000000099"
_CONTRACTS = "http://schemas.microsoft.com/xrm/2011/Contracts"


def ref(table: str, record_id: str, name: str | None = None) -> dict[str, Any]:
    return {
        "__type": f"EntityReference:{_CONTRACTS}",
        "Id": record_id,
        "KeyAttributes": [],
        "LogicalName": table,
        "Name": name,
        "RowVersion": None,
    }


def user(user_id: str, name: str | None = None) -> dict[str, Any]:
    return ref("systemuser", user_id, name)


def choice(value: int) -> dict[str, Any]:
    return {"__type": f"OptionSetValue:{_CONTRACTS}", "Value": value}


def choices(*values: int) -> list[dict[str, Any]]:
    return [choice(v) for v in values]


def money(value: float) -> dict[str, Any]:
    return {"__type": f"Money:{_CONTRACTS}", "Value": value}


def date(milliseconds: int) -> str:
    return f"/Date({milliseconds})/"


def party(reference: dict[str, Any] | None, address: str | None = None) -> dict[str, Any]:
    """One activityparty row, as Dataverse nests it in an EntityCollection."""
    attributes: list[dict[str, Any]] = [{"key": "participationtypemask", "value": choice(1)}]
    if reference is not None:
        attributes.append({"key": "partyid", "value": reference})
    if address is not None:
        attributes.append({"key": "addressused", "value": address})
    return {
        "__type": f"Entity:{_CONTRACTS}",
        "Attributes": attributes,
        "EntityState": None,
        "FormattedValues": [],
        "Id": str(uuid.uuid4()),
        "KeyAttributes": [],
        "LogicalName": "activityparty",
        "RelatedEntities": [],
        "RowVersion": None,
    }


def parties(*rows: dict[str, Any]) -> dict[str, Any]:
    return {
        "__type": f"EntityCollection:{_CONTRACTS}",
        "Entities": list(rows),
        "EntityName": "activityparty",
        "MinActiveRowVersion": "-1",
        "MoreRecords": False,
        "PagingCookie": None,
        "TotalRecordCount": -1,
        "TotalRecordCountLimitExceeded": False,
    }


def entity(
    table: str,
    record_id: str,
    attributes: dict[str, Any],
    formatted: dict[str, str] | None = None,
    *,
    typed: bool = True,
) -> dict[str, Any]:
    """An Entity as a Target (``typed``) or an image (no ``__type``)."""
    body: dict[str, Any] = {
        "Attributes": [{"key": k, "value": v} for k, v in attributes.items()],
        "EntityState": None,
        "FormattedValues": [{"key": k, "value": v} for k, v in (formatted or {}).items()],
        "Id": record_id,
        "KeyAttributes": [],
        "LogicalName": table,
        "RelatedEntities": [],
        "RowVersion": None,
    }
    if typed:
        body = {"__type": f"Entity:{_CONTRACTS}", **body}
    return body


def event(
    table: str,
    message: str,
    attributes: dict[str, Any] | None = None,
    formatted: dict[str, str] | None = None,
    *,
    record_id: str = RECORD_ID,
    pre_image: dict[str, Any] | None = None,
    pre_formatted: dict[str, str] | None = None,
    post_image: dict[str, Any] | None = None,
    post_formatted: dict[str, str] | None = None,
    **context: Any,
) -> dict[str, Any]:
    """A webhook body for ``message`` on ``table``. A Delete's Target is a reference; images
    are registered as ``PreImage``/``PostImage`` only when given. ``context`` overrides
    top-level keys (``Stage``, ``Depth``, ``RequestId``, ...)."""
    body = copy.deepcopy(example("opportunity-update.json"))
    body["OrganizationId"] = ORG
    body["MessageName"] = message
    body["PrimaryEntityName"] = table
    body["PrimaryEntityId"] = record_id
    if message.lower() == "delete":
        target: dict[str, Any] = ref(table, record_id)
    else:
        target = entity(table, record_id, attributes or {}, formatted)
    body["InputParameters"] = [{"key": "Target", "value": target}]
    body["PreEntityImages"] = (
        []
        if pre_image is None
        else [
            {
                "key": "PreImage",
                "value": entity(table, record_id, pre_image, pre_formatted, typed=False),
            }
        ]
    )
    body["PostEntityImages"] = (
        []
        if post_image is None
        else [
            {
                "key": "PostImage",
                "value": entity(table, record_id, post_image, post_formatted, typed=False),
            }
        ]
    )
    body["OwningExtension"]["Name"] = f"Push365: {message} of {table}"
    return body | context


NO_ID = "00000000-0000-0000-0000-000000000000"


def system(kind: str, value: Any) -> dict[str, Any]:
    """A value typed only as ``object``, as the serializer wraps it: ``DateTime``, ``Guid``."""
    return {"__type": f"{kind}:#System", "__value": value}


def custom_api(
    message: str,
    inputs: dict[str, Any],
    outputs: dict[str, Any] | None = None,
    *,
    table: str = "none",
    record_id: str = NO_ID,
    **context: Any,
) -> dict[str, Any]:
    """A custom API's (or custom action's) webhook body: unbound by default (``none`` and the
    empty id, as Dataverse sends them), bound when ``table`` and ``record_id`` are given (the
    Target is then a reference to that record). ``inputs`` are the request's parameters."""
    body = copy.deepcopy(example("opportunity-update.json"))
    body["OrganizationId"] = ORG
    body["MessageName"] = message
    body["PrimaryEntityName"] = table
    body["PrimaryEntityId"] = record_id
    parameters = dict(inputs)
    if table != "none":
        parameters = {"Target": ref(table, record_id), **parameters}
    body["InputParameters"] = [{"key": k, "value": v} for k, v in parameters.items()]
    body["OutputParameters"] = [{"key": k, "value": v} for k, v in (outputs or {}).items()]
    body["PreEntityImages"] = []
    body["PostEntityImages"] = []
    body["OwningExtension"]["Name"] = f"Push365: {message}"
    return body | context


def email_create(*extra_to: dict[str, Any], **context: Any) -> dict[str, Any]:
    """A Create of an email from Alice to Bob (a user), Dana (a contact) and an address that
    resolved to no record, plus ``extra_to`` parties."""
    return event(
        "email",
        "Create",
        {
            "subject": "Quote for Fabrikam",
            "from": parties(party(user(ALICE, "Alice Ng"))),
            "to": parties(
                party(user(BOB, "Bob Stone")),
                party(ref("contact", CONTACT_ID, "Dana Diaz")),
                party(None, "someone@fabrikam.example"),
                *extra_to,
            ),
            "ownerid": user(ALICE, "Alice Ng"),
        },
        InitiatingUserId=ALICE,
        **context,
    )
