"""Building blocks shared by every concern's pydantic models."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from push365.errors import ValidationFailed


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC (the clock services use by default)."""
    return datetime.now(UTC)


def iso_utc(moment: datetime) -> str:
    """A moment as ISO-8601 in UTC with a ``Z``, to the second (how answers show times)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


DATAVERSE_DEDUP_PREFIX = "dataverse:"


def recorded_dedup_key(key: str) -> str:
    """A dedup key as records and logs keep it: a Dataverse operation key (ids and codes only)
    as is, anything else (a caller's ``Idempotency-Key``, its own text) only as a hash."""
    if key.startswith(DATAVERSE_DEDUP_PREFIX):
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:16]


BLANK = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""Unicode's White_Space, for a regular expression's character class: what pydantic's
``strip_whitespace`` strips (Python's ``\\s`` also takes ``\\x1c``-``\\x1f``, JavaScript's
``\\ufeff``: patterns in the OpenAPI descriptions name the characters instead)."""
_HEX_GUID = r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}"
GUID_PATTERN = rf"^[{BLANK}]*(\{{{_HEX_GUID}\}}|{_HEX_GUID})[{BLANK}]*$"
"""What :func:`normalize_guid` takes (and the OpenAPI descriptions state): 32 hex digits,
hyphenated 8-4-4-4-12 or not, in braces or not, any case, blanks around."""
_GUID = re.compile(GUID_PATTERN)


def normalize_guid(value: str) -> str:
    """A GUID in Dataverse's canonical form: lower case, hyphenated, no braces.

    Raises:
        ValueError: the value is not a GUID (the message names no value).
    """
    if not isinstance(value, str) or not _GUID.fullmatch(value):
        raise ValueError("must be a GUID")
    try:
        return str(uuid.UUID(value.strip().strip("{}")))
    except (ValueError, AttributeError):
        raise ValueError("must be a GUID") from None


Guid = Annotated[
    str,
    StringConstraints(max_length=40),
    Field(json_schema_extra={"pattern": GUID_PATTERN}),
    AfterValidator(normalize_guid),
]
"""A Dataverse id (organization, system user)."""

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=256)]


def single_line(value: str) -> str:
    """Refuse line breaks and other control characters (text that can reach a mail header).

    Raises:
        ValueError: the value holds one (the message names no value).
    """
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029" for c in value):
        raise ValueError("must be one line without control characters")
    return value


_CONTROL = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
SINGLE_LINE_PATTERN = rf"^[{BLANK}]*([^{_CONTROL}]*[^{BLANK}{_CONTROL}])?[{BLANK}]*$"
"""What :func:`single_line` takes once blanks around are stripped: no control character."""
SingleLine = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=256),
    Field(json_schema_extra={"pattern": SINGLE_LINE_PATTERN}),
    AfterValidator(single_line),
]
"""Caller text that can reach a mail's subject or recipients: one line, at most 256."""
NonEmptyLine = Annotated[
    SingleLine,
    Field(
        min_length=1,
        json_schema_extra={"pattern": rf"^[{BLANK}]*[^{_CONTROL}]*[^{BLANK}{_CONTROL}][{BLANK}]*$"},
    ),
]
"""A :data:`SingleLine` with something in it besides blanks."""


def _email_address(value: str) -> str:
    if not re.fullmatch(r"[^@\s<>,;:\"()\[\]]{1,64}@[A-Za-z0-9.-]{1,189}", value):
        raise ValueError("must be an email address")
    return value


EmailAddress = Annotated[
    SingleLine,
    StringConstraints(max_length=254),
    Field(
        json_schema_extra={
            "pattern": rf"^[{BLANK}]*[^@{BLANK}<>,;:\"()\[\]{_CONTROL}]{{1,64}}"
            rf"@[A-Za-z0-9.-]{{1,189}}[{BLANK}]*$"
        }
    ),
    AfterValidator(_email_address),
]
"""An address mail may be sent to: one line, local part and domain, nothing else."""
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1024)]


class InputModel(BaseModel):
    """A request body. Keys not declared are dropped (never stored); errors never show input."""

    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True, frozen=True)


InputModelT = TypeVar("InputModelT", bound=InputModel)


def validate(model: type[InputModelT], data: object) -> InputModelT:
    """Validate a decoded body (or fields taken from a Dataverse body) against a model.

    Raises:
        ValidationFailed: with one detail per problem: where (field names only) and what.
    """
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ValidationFailed(details=safe_error_details(error, model)) from None


def safe_error_details(error: ValidationError, model: type[BaseModel]) -> list[dict[str, Any]]:
    """Validation problems that show no input: no values, and no keys the caller invented.

    A location part that is not a field name of the model tree (a key of a free-form mapping,
    an unknown key) is shown as ``*``: such keys can be notification content.
    """
    known = _field_names(model)
    details = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        location = [
            str(part) if isinstance(part, int) or part in known else "*" for part in item["loc"]
        ]
        details.append({"field": ".".join(location) or "(body)", "problem": item["msg"]})
    return details


@cache
def _field_names(model: type[BaseModel]) -> frozenset[str]:
    names: set[str] = set()
    for name, info in model.model_fields.items():
        names.add(name)
        for nested in _models_in(info.annotation):
            names |= _field_names(nested)
    return frozenset(names)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]
