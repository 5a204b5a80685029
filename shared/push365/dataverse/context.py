"""Parse the JSON form of Dataverse's ``RemoteExecutionContext`` (what a webhook receives).

The parser is tolerant by design: real captures add, omit and escape keys, so every key is
optional except the few that identify the operation. Typed values become small frozen
dataclasses; values of an unknown ``__type`` are kept as the raw JSON object.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Union

from push365.dataverse.display import format_datetime
from push365.errors import ValidationFailed
from push365.model import normalize_guid

SIZE_EXCEEDED_HEADER = "x-ms-dynamics-msg-size-exceeded"
"""Present when Dataverse stripped the context's parameters and images (over 256 KB)."""

_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
# An ISO 8601 date and time with its zone (what other serializers write); a bare date or a time
# without a zone stays text: a text column may well hold one.
_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,7})?)?(Z|[+-]\d\d:\d\d)$")
_NUMBERS = {"Int16", "Int32", "Int64", "Byte", "SByte", "UInt16", "UInt32", "UInt64"}
_DECIMALS = {"Decimal", "Double", "Single"}


@dataclass(frozen=True)
class EntityReference:
    """A lookup value: which record of which table (``Name`` only when Dataverse sends it)."""

    logical_name: str
    id: str
    name: str | None = None


@dataclass(frozen=True)
class OptionSetValue:
    """A choice column's value."""

    value: int


@dataclass(frozen=True)
class Money:
    """A currency column's value."""

    value: Decimal


Value = Union[
    None,
    str,
    int,
    float,
    Decimal,
    bool,
    datetime,
    EntityReference,
    OptionSetValue,
    Money,
    "Entity",
    "tuple[Value, ...]",
    Mapping[str, Any],
]
"""One attribute or parameter value; a tuple is a multi-select choice or an EntityCollection."""


@dataclass(frozen=True)
class Entity:
    """A record: the columns an operation touched, or an image's registered columns."""

    logical_name: str
    id: str | None
    attributes: Mapping[str, Value] = field(default_factory=dict)
    formatted_values: Mapping[str, str] = field(default_factory=dict)

    def get(self, column: str) -> Value:
        """The raw value of a column, or None when the record does not carry it."""
        return self.attributes.get(column)

    def display(self, column: str, language_code: int | None = None) -> str | None:
        """What a user sees: the formatted value when there is one, else the raw value as text.

        A date is shown in the language of ``language_code`` (an LCID; ISO-like without one)
        instead of the webhook's ISO text; activity parties are shown by their parties' names.
        """
        raw = self.attributes.get(column)
        if isinstance(raw, datetime):
            return format_datetime(raw, language_code)
        if isinstance(raw, tuple) and raw and all(isinstance(v, Entity) for v in raw):
            return display_text(raw)
        if column in self.formatted_values:
            return self.formatted_values[column]
        return display_text(raw)


@dataclass(frozen=True)
class ExecutionContext:
    """The parts of a ``RemoteExecutionContext`` Push365 uses, typed."""

    message_name: str
    primary_entity_name: str
    primary_entity_id: str | None
    organization_id: str
    organization_name: str | None = None
    initiating_user_id: str | None = None
    user_id: str | None = None
    request_id: str | None = None
    operation_id: str | None = None
    correlation_id: str | None = None
    owning_extension_id: str | None = None
    stage: int | None = None
    mode: int | None = None
    depth: int | None = None
    operation_created_on: datetime | None = None
    input_parameters: Mapping[str, Value] = field(default_factory=dict)
    output_parameters: Mapping[str, Value] = field(default_factory=dict)
    shared_variables: Mapping[str, Value] = field(default_factory=dict)
    pre_images: Mapping[str, Entity] = field(default_factory=dict)
    post_images: Mapping[str, Entity] = field(default_factory=dict)
    size_exceeded: bool = False

    def is_message(self, table: str, *messages: str) -> bool:
        """True when this is one of ``messages`` (case-insensitive) on ``table``."""
        wanted = {m.lower() for m in messages}
        return self.primary_entity_name.lower() == table and self.message_name.lower() in wanted

    @property
    def target_entity(self) -> Entity | None:
        """``InputParameters.Target`` on Create/Update (an Entity), else None."""
        target = self.input_parameters.get("Target")
        return target if isinstance(target, Entity) else None

    def first_pre_image(self) -> Entity | None:
        """The pre-image, whatever name the step registration gave it."""
        return next(iter(self.pre_images.values()), None)


def is_execution_context(body: Mapping[str, Any]) -> bool:
    """Recognise a Dataverse webhook body by its shape."""
    return all(key in body for key in ("MessageName", "PrimaryEntityName", "OrganizationId"))


def parse_execution_context(
    body: Mapping[str, Any], *, size_exceeded: bool = False
) -> ExecutionContext:
    """Parse a webhook body already decoded from JSON.

    Args:
        body: the decoded JSON object.
        size_exceeded: whether the request carried ``x-ms-dynamics-msg-size-exceeded``.

    Raises:
        ValidationFailed: a key that identifies the operation is missing or malformed.
    """
    message = body.get("MessageName")
    table = body.get("PrimaryEntityName")
    if not isinstance(message, str) or not message or not isinstance(table, str) or not table:
        raise ValidationFailed("Dataverse body without MessageName or PrimaryEntityName.")
    organization_id = _guid(body.get("OrganizationId"), "OrganizationId", required=True)
    assert organization_id is not None
    owning_extension = body.get("OwningExtension")
    return ExecutionContext(
        message_name=message,
        primary_entity_name=table.lower(),
        primary_entity_id=_guid(body.get("PrimaryEntityId"), "PrimaryEntityId"),
        organization_id=organization_id,
        organization_name=_str_or_none(body.get("OrganizationName")),
        initiating_user_id=_guid(body.get("InitiatingUserId"), "InitiatingUserId"),
        user_id=_guid(body.get("UserId"), "UserId"),
        request_id=_guid(body.get("RequestId"), "RequestId"),
        operation_id=_guid(body.get("OperationId"), "OperationId"),
        correlation_id=_guid(body.get("CorrelationId"), "CorrelationId"),
        owning_extension_id=_guid(
            owning_extension.get("Id") if isinstance(owning_extension, Mapping) else None,
            "OwningExtension.Id",
        ),
        stage=_int_or_none(body.get("Stage")),
        mode=_int_or_none(body.get("Mode")),
        depth=_int_or_none(body.get("Depth")),
        operation_created_on=_date_or_none(body.get("OperationCreatedOn")),
        input_parameters=_parameters(body.get("InputParameters")),
        output_parameters=_parameters(body.get("OutputParameters")),
        shared_variables=_parameters(body.get("SharedVariables")),
        pre_images=_images(body.get("PreEntityImages")),
        post_images=_images(body.get("PostEntityImages")),
        size_exceeded=size_exceeded,
    )


def parse_value(raw: Any) -> Value:
    """Turn one JSON value of a context into its typed form.

    Besides the SDK's contracts (Entity, EntityReference, OptionSetValue, Money,
    EntityCollection, OptionSetValueCollection, AliasedValue), a value typed only as ``object``
    arrives wrapped as ``{"__type": "DateTime:#System", "__value": ...}`` (``Guid``,
    ``Decimal``, ...): it is unwrapped to what it holds.
    """
    if isinstance(raw, str):
        return _date_or_text(raw)
    if isinstance(raw, list):
        return tuple(parse_value(item) for item in raw)
    if not isinstance(raw, Mapping):
        return raw  # type: ignore[no-any-return]
    kind = str(raw.get("__type", "")).partition(":")[0]
    if "__value" in raw:
        return _system_value(kind, raw["__value"])
    if kind == "Entity" or (not kind and "Attributes" in raw and "LogicalName" in raw):
        return parse_entity(raw)
    if kind == "EntityReference" or (not kind and {"Id", "LogicalName"} <= raw.keys()):
        return EntityReference(
            logical_name=str(raw.get("LogicalName") or "").lower(),
            id=_guid(raw.get("Id"), "EntityReference.Id", required=True) or "",
            name=_str_or_none(raw.get("Name")),
        )
    if kind == "OptionSetValue":
        return OptionSetValue(_int_required(raw.get("Value"), "OptionSetValue.Value"))
    if kind == "Money":
        return Money(_decimal(raw.get("Value")))
    if kind == "EntityCollection":
        entities = raw.get("Entities")
        return (
            tuple(parse_entity(e) for e in entities if isinstance(e, Mapping))
            if isinstance(entities, list)
            else ()
        )
    if kind == "OptionSetValueCollection":
        return parse_value(raw.get("Values") or [])
    if kind == "AliasedValue":
        # A column of a linked table (a query's alias): what it holds.
        return parse_value(raw.get("Value"))
    return raw


def _date_or_text(raw: str) -> Value:
    date = _DATE.match(raw)
    if date:
        return _date_from_match(date)
    if _ISO.match(raw):
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            return raw
    return raw


def _system_value(kind: str, raw: Any) -> Value:
    """A ``{"__type": "<Kind>:#System", "__value": ...}`` wrapper's value, typed."""
    if kind == "Guid":
        try:
            return normalize_guid(str(raw))
        except ValueError:
            return None
    if kind in _NUMBERS:
        return _int_or_none(raw)
    if kind in _DECIMALS and isinstance(raw, int | float | str) and not isinstance(raw, bool):
        return _decimal(raw)
    return parse_value(raw)


def _decimal(raw: Any) -> Decimal:
    try:
        return Decimal(str(raw))
    except ArithmeticError:
        raise ValidationFailed("Dataverse number value is not a number.") from None


def parse_entity(raw: Mapping[str, Any]) -> Entity:
    """An Entity object (a Target or an image)."""
    formatted = _key_values(raw.get("FormattedValues"))
    return Entity(
        logical_name=str(raw.get("LogicalName") or "").lower(),
        id=_guid(raw.get("Id"), "Entity.Id"),
        attributes=_parameters(raw.get("Attributes")),
        formatted_values={k: v for k, v in formatted.items() if isinstance(v, str)},
    )


def display_text(value: Value) -> str | None:
    """A raw value as text for templates: a reference's name (else id), a choice's number."""
    match value:
        case None:
            return None
        case EntityReference(name=name, id=ref_id):
            return name or ref_id
        case OptionSetValue(value=number):
            return str(number)
        case Money(value=amount):
            return str(amount)
        case datetime():
            return value.isoformat()
        case bool():
            return "true" if value else "false"
        case Entity():
            return _party_name(value)
        case tuple() if value and all(isinstance(v, Entity) for v in value):
            # Activity parties (from, to, cc, ...): the parties' names.
            return "; ".join(t for t in (display_text(v) for v in value) if t)
        case tuple():
            return ", ".join(t for t in (display_text(v) for v in value) if t)
        case Mapping():
            return None
        case _:
            return str(value)


def _party_name(party: Entity) -> str | None:
    # An activity party: the name of the record it points to, else the address it used.
    reference = party.get("partyid")
    if isinstance(reference, EntityReference) and reference.name:
        return reference.name
    address = party.get("addressused")
    if isinstance(address, str) and address:
        return address
    return None


def _key_values(raw: Any) -> dict[str, Any]:
    # Collections are lists of {"key", "value"} pairs; tolerate an object too.
    if isinstance(raw, Mapping):
        return dict(raw)
    if not isinstance(raw, list):
        return {}
    return {
        item["key"]: item.get("value")
        for item in raw
        if isinstance(item, Mapping) and isinstance(item.get("key"), str)
    }


def _parameters(raw: Any) -> dict[str, Value]:
    return {key: parse_value(value) for key, value in _key_values(raw).items()}


def _images(raw: Any) -> dict[str, Entity]:
    return {
        key: parse_entity(value)
        for key, value in _key_values(raw).items()
        if isinstance(value, Mapping)
    }


def _guid(raw: Any, name: str, *, required: bool = False) -> str | None:
    if raw is None or raw == "":
        if required:
            raise ValidationFailed(f"Dataverse body without {name}.")
        return None
    if not isinstance(raw, str):
        raise ValidationFailed(f"Dataverse {name} must be a GUID.")
    try:
        return normalize_guid(raw)
    except ValueError:
        raise ValidationFailed(f"Dataverse {name} must be a GUID.") from None


def _str_or_none(raw: Any) -> str | None:
    return raw if isinstance(raw, str) else None


def _int_or_none(raw: Any) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def _int_required(raw: Any, name: str) -> int:
    value = _int_or_none(raw)
    if value is None:
        raise ValidationFailed(f"Dataverse {name} must be an integer.")
    return value


def _date_or_none(raw: Any) -> datetime | None:
    match = _DATE.match(raw) if isinstance(raw, str) else None
    return _date_from_match(match) if match else None


def _date_from_match(match: re.Match[str]) -> datetime:
    # The milliseconds are UTC; the optional +hhmm suffix is only the sender's display offset.
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(match.group(1)))
    except OverflowError:
        raise ValidationFailed("Dataverse date is out of range.") from None


class NotHandled:
    """A Dataverse body this function has no use for (another table or message).

    Answered with 200 so a misregistered step never fails (or rolls back) a user's save.
    """

    def __init__(self, handles: str) -> None:
        self.handles = handles

    def answer(self) -> dict[str, object]:
        """The JSON answer: says what this function handles, echoes nothing."""
        return {"handled": False, "reason": f"This function handles {self.handles} only."}
