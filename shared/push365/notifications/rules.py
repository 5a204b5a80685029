"""Event rules: which rule an event meets, who it names, and what it renders.

Rendering never fails an event for its data: each field is cut to its limit with an ellipsis, an
empty title falls back to the table and the message ("Contact updated"), and the message is kept
under FCM's payload limit by shortening the body first. A link that does not come out as an https
URL is left out. Nothing here logs, stores or raises with a rendered value.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from push365.dataverse import Entity, EntityReference, ExecutionContext, Value
from push365.fcm.model import WebPush
from push365.model import normalize_guid
from push365.notifications.model import (
    CONTEXT_RECIPIENTS,
    FCM_PAYLOAD_LIMIT,
    MAX_RECIPIENTS,
    Rule,
)
from push365.notifications.service import payload_size

RECORD_LINK = "record"
TITLE_LIMIT = 1024
BODY_LIMIT = 4096
LINK_LIMIT = 2048
ELLIPSIS = "\u2026"

_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")
_HOST = re.compile(r"^[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+(:\d{1,5})?$")
_HTTPS = re.compile(r"^https://[^\s/]+")

# What a user calls a table, for the default title; others are named from their logical name.
_TABLE_NAMES = {
    "account": "Account",
    "activitypointer": "Activity",
    "appointment": "Appointment",
    "contact": "Contact",
    "email": "Email",
    "fax": "Fax",
    "incident": "Case",
    "invoice": "Invoice",
    "lead": "Lead",
    "letter": "Letter",
    "opportunity": "Opportunity",
    "phonecall": "Phone call",
    "quote": "Quote",
    "salesorder": "Order",
    "systemuser": "User",
    "task": "Task",
    "team": "Team",
}
_MESSAGE_WORDS = {
    "create": "created",
    "update": "updated",
    "delete": "deleted",
    "assign": "assigned",
    "setstate": "status changed",
    "setstatedynamicentity": "status changed",
    "win": "won",
    "lose": "lost",
    "qualifylead": "qualified",
    "close": "closed",
    "merge": "merged",
    "share": "shared",
}

# Why an event meets no rule, or a rule names nobody: (code, fixed text). Codes reach the audit
# record; neither carries anything of the event.
NO_RULE = ("no_rule", "No rule names this table and message.")
WRONG_STAGE = ("stage", "The rules for this table and message are for another stage.")
TOO_DEEP = (
    "depth",
    "The event comes from a plug-in chain deeper than the rules for it allow (max_depth).",
)
NO_RECIPIENTS = (
    "no_recipients",
    "The rule's recipients name no system user in this event "
    "(teams are skipped: their members are not known).",
)


@dataclass(frozen=True)
class Rendered:
    """What a rule renders for an event. Content: kept in memory only."""

    recipients: list[str]
    teams_skipped: int
    title: str
    body: str
    link: str | None

    def __repr__(self) -> str:
        return f"Rendered(<content hidden>, recipients={len(self.recipients)})"


@dataclass(frozen=True)
class Candidate:
    """A rule for the event's table and message, and whether its stage and depth fit."""

    number: int  # 1-based position in the organization's rules
    rule: Rule
    refused: tuple[str, str] | None  # (code, text) when stage or depth do not fit


def candidates(context: ExecutionContext, rules: Sequence[Rule]) -> Iterator[Candidate]:
    """The rules naming the event's table and message, in order."""
    for number, rule in enumerate(rules, start=1):
        if context.is_message(rule.table, rule.message):
            yield Candidate(number, rule, _refusal(rule, context))


def _refusal(rule: Rule, context: ExecutionContext) -> tuple[str, str] | None:
    # A body without Stage or Depth (an old environment, a hand-made test) is not refused.
    if context.stage is not None and context.stage != rule.stage:
        return WRONG_STAGE
    if context.depth is not None and context.depth > rule.max_depth:
        return TOO_DEEP
    return None


@dataclass(frozen=True)
class Surroundings:
    """What rendering needs beyond the event: where record links point, the organization's
    language, and the receipt URL every message will also carry (it counts against FCM's
    limit)."""

    dynamics_host: str | None = None
    organization_url: str | None = None
    language_code: int | None = None
    receipt_url: str | None = None


def render_rule(rule: Rule, context: ExecutionContext, around: Surroundings) -> Rendered:
    """What ``rule`` sends for the event: recipients, and content that always fits."""
    records = event_records(context)
    users, teams = resolve_recipients(rule.recipients, context, records)
    title = render(rule.title, records, around.language_code).strip()
    body = render(rule.body, records, around.language_code).strip()
    if not title or not _any_column_shown(rule.title, records, around.language_code):
        title = default_title(context.primary_entity_name, context.message_name)
    link: str | None = None
    if rule.link == RECORD_LINK:
        if context.message_name.lower() != "delete":  # a deleted record has no page
            link = record_url(
                around.dynamics_host,
                around.organization_url,
                context.primary_entity_name,
                context.primary_entity_id,
            )
    elif rule.link:
        link = https_or_none(render(rule.link, records, around.language_code))
    title, body, link = fit(title, body, link, around.receipt_url)
    return Rendered(users, teams, title, body, link)


def event_records(context: ExecutionContext) -> list[Entity]:
    """Where columns are looked up: what the operation touched first, then post-images, then
    pre-images (which are all a Delete carries)."""
    target = context.target_entity
    records = [target] if target else []
    return records + list(context.post_images.values()) + list(context.pre_images.values())


def render(template: str, records: Sequence[Entity], language_code: int | None) -> str:
    """``{column}`` placeholders: the display value, or nothing when no record carries it."""

    def value(match: re.Match[str]) -> str:
        column = match.group(1).lower()
        for record in records:
            if column in record.formatted_values or column in record.attributes:
                return record.display(column, language_code) or ""
        return ""

    return _PLACEHOLDER.sub(value, template)


def _any_column_shown(template: str, records: Sequence[Entity], language_code: int | None) -> bool:
    """Whether a template without placeholders, or with at least one that shows a value: a
    title whose every column is missing ("{name} was deleted" without a pre-image) falls back
    to the default title rather than reading " was deleted"."""
    columns = _PLACEHOLDER.findall(template)
    return not columns or any(render(f"{{{c}}}", records, language_code) for c in columns)


def resolve_recipients(
    names: Sequence[str], context: ExecutionContext, records: Sequence[Entity]
) -> tuple[list[str], int]:
    """The system users a rule's recipients name in this event, and how many teams were skipped.

    A column counts from the first record that carries it (a lookup, or activity parties);
    ``context.initiatinguserid`` and ``context.userid`` are the event's users; a GUID is itself.
    """
    users: list[str] = []
    teams = 0
    for name in names:
        if name == CONTEXT_RECIPIENTS[0]:
            users += [context.initiating_user_id] if context.initiating_user_id else []
        elif name == CONTEXT_RECIPIENTS[1]:
            users += [context.user_id] if context.user_id else []
        elif "-" in name:
            users.append(normalize_guid(name))
        else:
            value = next((r.get(name) for r in records if name in r.attributes), None)
            found, skipped = user_ids_in([value])
            users += found
            teams += skipped
    return list(dict.fromkeys(users))[:MAX_RECIPIENTS], teams


def user_ids_in(values: Iterable[Value]) -> tuple[list[str], int]:
    """System users referenced by lookups or activity parties, and how many teams were skipped."""
    users: list[str] = []
    teams = 0
    for value in values:
        if isinstance(value, EntityReference):
            if value.logical_name == "systemuser":
                users.append(value.id)
            elif value.logical_name == "team":
                teams += 1
        elif isinstance(value, Entity):  # an activity party
            found, skipped = user_ids_in([value.get("partyid")])
            users += found
            teams += skipped
        elif isinstance(value, tuple):
            found, skipped = user_ids_in(value)
            users += found
            teams += skipped
    return users, teams


def default_title(table: str, message: str) -> str:
    """A title when the rendered one is empty: "Contact updated", "Phone call deleted"."""
    name = _TABLE_NAMES.get(table.lower()) or _name_from_logical(table)
    word = _MESSAGE_WORDS.get(message.lower(), message.lower())
    return f"{name} {word}"


def _name_from_logical(table: str) -> str:
    # "new_projecttask" -> "Projecttask": the publisher prefix is not part of the name.
    _, _, rest = table.partition("_")
    words = (rest or table).replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else "Record"


def truncate(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, cut on a character boundary with an ellipsis."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    cut = text[: limit - 1]
    # Never leave a combining mark without its base, or a lone half of a surrogate pair.
    while cut and (unicodedata.combining(cut[-1]) or "\ud800" <= cut[-1] <= "\udfff"):
        cut = cut[:-1]
    return cut.rstrip() + ELLIPSIS


def fit(
    title: str, body: str, link: str | None, receipt_url: str | None
) -> tuple[str, str, str | None]:
    """Title and body within their limits, and the whole message under FCM's payload limit:
    the body is shortened first, then the title; the link goes last."""
    title = truncate(title, TITLE_LIMIT)
    body = truncate(body, BODY_LIMIT)

    def fits(t: str, b: str, lk: str | None) -> bool:
        return payload_size(WebPush(title=t, body=b, link=lk), receipt_url) <= FCM_PAYLOAD_LIMIT

    if fits(title, body, link):
        return title, body, link
    if fits(title, "", link):
        return title, _longest(body, lambda b: fits(title, b, link)), link
    if fits(truncate(title, 1), "", link):
        return _longest(title, lambda t: fits(t, "", link), minimum=1), "", link
    return _longest(title, lambda t: fits(t, "", None), minimum=1), "", None


def _longest(text: str, fits: Callable[[str], bool], minimum: int = 0) -> str:
    """The longest truncation of ``text`` that ``fits`` (a binary search over its length)."""
    low, high = minimum, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if fits(truncate(text, middle)):
            low = middle
        else:
            high = middle - 1
    return truncate(text, low)


def https_or_none(value: str | None) -> str | None:
    """A link FCM accepts (https, at most 2,048 characters), or None rather than a 422."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > LINK_LIMIT or not _HTTPS.match(value):
        return None
    return value


def record_url(
    host: str | None, organization_url: str | None, table: str, record_id: str | None
) -> str | None:
    """The Dynamics URL of a record.

    ``x-ms-dynamics-organization`` is taken when it is a host name (``contoso.crm4.dynamics.com``,
    with or without ``https://``); a bare organization name gives no link, unless the
    organization registered its ``url``.
    """
    base = _base_url(host, organization_url)
    if base is None or not record_id:
        return None
    return https_or_none(f"{base}/main.aspx?etn={table}&id={record_id}&pagetype=entityrecord")


def _base_url(host: str | None, organization_url: str | None) -> str | None:
    if host:
        bare = host.strip().removeprefix("https://").rstrip("/")
        if _HOST.match(bare):
            return f"https://{bare}"
    if organization_url:
        return organization_url.rstrip("/")
    return None
