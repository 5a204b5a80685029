"""Templates over a Dataverse event: which value a placeholder shows, and text that reads well
when some are missing.

Real events rarely carry a column where a template expects it: the Target of an Update holds only
what changed, and its lookups carry no ``Name``; the images carry names and formatted values but
only for the columns they were registered with. So a column is taken from every source the event
has (post-image, pre-image, Target), preferring the one that can show it as a person reads it,
and a template can mark what may be missing (``[by {modifiedby}]``) so that nothing reads
"updated by " or "()".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from push365.dataverse import (
    Entity,
    EntityReference,
    ExecutionContext,
    Money,
    OptionSetValue,
    Value,
)
from push365.dataverse.display import format_datetime
from push365.dataverse.text import repair_mojibake

PLACEHOLDER = re.compile(
    r"\{((?:[Ii][Nn][Pp][Uu][Tt]\.|[Oo][Uu][Tt][Pp][Uu][Tt]\.)?[A-Za-z0-9_]+)\}"
)
"""``{column}``, ``{input.Name}`` or ``{output.Name}`` (a request's parameters)."""
_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")
_GUID = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
_MARKERS = re.compile("[\x00-\x02]")
_MISSING = "\x00"
_VALUE = re.compile("\x01(\\d+)\x02")
_SEPARATORS = ",;:|\u00b7\u2013\u2014\\-"
_ENDS = ".!?)\\]"
UserNames = Callable[[Sequence[str]], Mapping[str, str]]
"""The organization's directory of system users (``/register/users``): full names by id."""

# What a user calls a table; others are named from their logical name.
TABLE_NAMES = {
    "account": "Account",
    "activitypointer": "Activity",
    "annotation": "Note",
    "appointment": "Appointment",
    "businessunit": "Business unit",
    "campaign": "Campaign",
    "competitor": "Competitor",
    "contact": "Contact",
    "email": "Email",
    "fax": "Fax",
    "incident": "Case",
    "invoice": "Invoice",
    "lead": "Lead",
    "letter": "Letter",
    "opportunity": "Opportunity",
    "phonecall": "Phone call",
    "product": "Product",
    "queue": "Queue",
    "quote": "Quote",
    "salesorder": "Order",
    "sharepointdocumentlocation": "Document location",
    "systemuser": "User",
    "task": "Task",
    "team": "Team",
    "transactioncurrency": "Currency",
}


def table_name(table: str) -> str:
    """ "Contact", "Phone call"; "new_projecttask" -> "Projecttask" (no publisher prefix)."""
    known = TABLE_NAMES.get(table.lower())
    if known:
        return known
    _, _, rest = table.partition("_")
    words = (rest or table).replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else "Record"


def a_table(table: str) -> str:
    """What a title says for a record it cannot name: "a contact", "an account"."""
    name = table_name(table).lower()
    return f"{'an' if name[:1] in 'aeio' else 'a'} {name}"


@dataclass(frozen=True)
class EventValues:
    """Where a placeholder's value comes from: the event's images, Target and parameters."""

    post_images: Sequence[Entity]
    pre_images: Sequence[Entity]
    target: Entity | None
    inputs: Mapping[str, Value]
    outputs: Mapping[str, Value]

    @classmethod
    def of(cls, context: ExecutionContext) -> EventValues:
        return cls(
            post_images=list(context.post_images.values()),
            pre_images=list(context.pre_images.values()),
            target=context.target_entity,
            inputs=context.input_parameters,
            outputs=context.output_parameters,
        )

    def value(self, name: str) -> Shown | None:
        """The value a placeholder (or a recipient) names, or None when the event has none."""
        kind, dot, parameter = name.partition(".")
        if dot:
            return _parameter(self.outputs if kind.lower() == "output" else self.inputs, parameter)
        return self.column(name.lower())

    def column(self, column: str) -> Shown | None:
        """A column's value as the event has it after the operation, with the best way to show it.

        The value is the post-image's (what the record is now), else the Target's (what the
        operation wrote), else the pre-image's (a column the operation did not change). It is
        shown from the first of post-image, pre-image and Target that holds that same value with
        a name or a formatted value; a pre-image holding another value (one the operation
        changed) is never shown.
        """

        def has(record: Entity) -> bool:
            return column in record.attributes or column in record.formatted_values

        posts = [r for r in self.post_images if has(r)]
        pres = [r for r in self.pre_images if has(r)]
        target = [self.target] if self.target is not None and has(self.target) else []
        sources = posts or target or pres
        if not sources:
            return None
        current = sources[0]
        value = current.get(column)
        holders = [r for r in [*posts, *pres, *target] if _same(r.get(column), value)]
        for record in holders:
            if column in record.formatted_values:
                return Shown(value, record.formatted_values[column])
            named = record.get(column)
            if isinstance(named, EntityReference) and named.name:
                return Shown(named)
        return Shown(value, current.formatted_values.get(column))


@dataclass(frozen=True)
class Shown:
    """A value and, when the event carries one, its formatted value (a choice's label)."""

    value: Value
    formatted: str | None = None


def _parameter(parameters: Mapping[str, Value], name: str) -> Shown | None:
    # Parameter names are case-sensitive in Dataverse; a template need not be.
    if name in parameters:
        return Shown(parameters[name])
    for key, value in parameters.items():
        if key.lower() == name.lower():
            return Shown(value)
    return None


def _same(one: Value, other: Value) -> bool:
    if isinstance(one, EntityReference) and isinstance(other, EntityReference):
        return (one.logical_name, one.id) == (other.logical_name, other.id)
    try:
        return bool(one == other)
    except TypeError:
        return False


@dataclass
class Reader:
    """Shows values as a user reads them: in the organization's language, by name."""

    language_code: int | None = None
    names: Mapping[str, str] = field(default_factory=dict)
    in_title: bool = False

    def show(self, shown: Shown | None) -> str | None:
        """The text of a value, or None when there is nothing a person could read.

        None for: a column the event does not carry, an empty value, a choice without a label
        (Dataverse sends labels only as formatted values) and, in a title, a bare GUID.
        """
        if shown is None:
            return None
        value = shown.value
        if isinstance(value, datetime):
            text: str | None = format_datetime(value, self.language_code)
        elif isinstance(value, tuple) and value and all(isinstance(v, Entity) for v in value):
            text = self._joined(value)
        elif shown.formatted:
            text = shown.formatted
        else:
            text = self._raw(value)
        if text is None or not text.strip():
            return None
        text = repair_mojibake(text)
        if self.in_title and _GUID.match(text.strip()):
            return None
        return text

    def _raw(self, value: Value) -> str | None:
        match value:
            case None:
                return None
            case EntityReference():
                return self._reference(value)
            case OptionSetValue():
                return None  # a number means nothing to the reader
            case Money(value=amount):
                return str(amount)
            case Decimal():
                return str(value)
            case bool():
                return "true" if value else "false"
            case Entity():
                return self._record(value)
            case tuple() if value and all(isinstance(v, OptionSetValue) for v in value):
                return None
            case tuple():
                return ", ".join(t for t in (self._raw(v) for v in value) if t) or None
            case Mapping():
                return None
            case _:
                return str(value)

    def _reference(self, reference: EntityReference) -> str | None:
        if reference.name:
            return reference.name
        if reference.logical_name == "systemuser" and reference.id in self.names:
            return self.names[reference.id]
        if self.in_title:
            return a_table(reference.logical_name) if reference.logical_name else None
        return reference.id

    def _record(self, record: Entity) -> str | None:
        # An activity party: the record it points to, else the address it used; another
        # record: its primary name, when the collection carries it.
        party = record.get("partyid")
        if isinstance(party, EntityReference):
            shown = self._reference(party)
            if shown and (party.name or party.id in self.names):
                return shown
        for column in ("addressused", "name", "fullname", "subject", "title"):
            text = record.get(column)
            if isinstance(text, str) and text:
                return text
        return None

    def _joined(self, records: Iterable[Value]) -> str | None:
        return "; ".join(t for t in (self._raw(r) for r in records) if t) or None


def link_text(shown: Shown | None) -> str | None:
    """A value as a link template takes it: what identifies it, never what a person reads (a
    lookup's id, not its name; a choice's number, not its label), so that a link built from an
    event with images (names, labels) is the link built from one without."""
    if shown is None:
        return None
    value = shown.value
    match value:
        case None | Mapping() | tuple() | Entity():
            return None
        case EntityReference(id=record_id):
            return record_id or None
        case OptionSetValue(value=number):
            return str(number)
        case Money(value=amount):
            return str(amount)
        case bool():
            return "true" if value else "false"
        case datetime():
            return value.isoformat()
        case _:
            text = str(value)
            return text if text.strip() else None


def unnamed_users(values: Iterable[Shown | None]) -> list[str]:
    """The system users these values name without a ``Name``: to look up in the directory."""
    found: list[str] = []

    def visit(value: Value) -> None:
        if isinstance(value, EntityReference):
            if value.logical_name == "systemuser" and not value.name:
                found.append(value.id)
        elif isinstance(value, Entity):
            visit(value.get("partyid"))
        elif isinstance(value, tuple):
            for item in value:
                visit(item)

    for shown in values:
        if shown is not None and not shown.formatted:
            visit(shown.value)
    return list(dict.fromkeys(found))


def placeholders(template: str) -> list[str]:
    """The names a template's placeholders use, in order."""
    return PLACEHOLDER.findall(template)


@dataclass(frozen=True)
class Filled:
    """A rendered template: its text, the placeholders that showed nothing, and whether any
    placeholder outside an optional segment showed a value (or there was none)."""

    text: str
    missing: tuple[str, ...]
    required_shown: bool


def fill(template: str, show: Callable[[str], str | None], *, clean: bool = True) -> Filled:
    """Render ``template``: ``[...]`` holding a placeholder is dropped whole when one of its
    placeholders shows nothing; elsewhere a missing placeholder is left out and the text around
    it tidied (``clean``): no doubled blanks, no blank before punctuation, no empty brackets or
    quotes, no separator left dangling ("a, , b" -> "a, b")."""
    template = _MARKERS.sub("", template)
    values: list[str] = []
    missing: list[str] = []

    def token(name: str) -> str:
        text = show(name)
        if text is None:
            missing.append(name)
            return _MISSING
        values.append(text)
        return f"\x01{len(values) - 1}\x02"

    def optional(segment: re.Match[str]) -> str:
        inner = segment.group(1)
        if not PLACEHOLDER.search(inner):
            return segment.group(0)  # literal brackets: "[URGENT] {name}"
        rendered = PLACEHOLDER.sub(lambda p: token(p.group(1)), inner)
        return _MISSING if _MISSING in rendered else rendered

    text = _OPTIONAL.sub(optional, template)
    required = PLACEHOLDER.findall(text)
    before = len(values)
    text = PLACEHOLDER.sub(lambda p: token(p.group(1)), text)
    required_shown = not required or len(values) > before
    text = _tidy(text) if clean else text.replace(_MISSING, "")
    text = _VALUE.sub(lambda m: values[int(m.group(1))], text)
    return Filled(text, tuple(dict.fromkeys(missing)), required_shown)


_M = f"(?:[ \\t]*{_MISSING}+)+[ \\t]*"
_EMPTY_PAIRS = re.compile(
    "|".join(
        rf"\{o}[ \t]*{_MISSING}+[ \t]*\{c}" if o in "([" else rf"{o}[ \t]*{_MISSING}+[ \t]*{c}"
        for o, c in ("()", "[]", '""', "''", "\u201c\u201d", "\u2018\u2019", "\u00ab\u00bb")
    )
)
_DANGLING_AFTER = re.compile(
    rf"[ \t]*[{_SEPARATORS}]{_M}(?=[{_SEPARATORS}{_ENDS}]|$)", re.MULTILINE
)
_DANGLING_BEFORE = re.compile(rf"^{_M}[{_SEPARATORS}][ \t]*", re.MULTILINE)
_BEFORE_PUNCTUATION = re.compile(rf"{_M}(?=[,.;:!?{_ENDS}])")
_AT_EDGE = re.compile(rf"^{_M}|{_M}$", re.MULTILINE)


def _tidy(text: str) -> str:
    text = _EMPTY_PAIRS.sub(_MISSING, text)
    text = _DANGLING_AFTER.sub("", text)
    text = _DANGLING_BEFORE.sub("", text)
    text = _BEFORE_PUNCTUATION.sub("", text)
    text = _AT_EDGE.sub("", text)

    # between words: one blank where there was any, none where the value was glued to its text
    return re.sub(_M, lambda m: " " if m.group(0).strip(_MISSING) else "", text)
