"""Event rules: which rule an event meets, who it names, and what it renders.

Rendering never fails an event for its data: each field is cut to its limit with an ellipsis, an
empty title falls back to the table and the message ("Contact updated"), and the message is kept
under FCM's payload limit by shortening the body first. A link that does not come out as an https
URL is left out. Which value a placeholder shows, and how a template reads when some are missing,
is notifications.templates. Nothing here logs, stores or raises with a rendered value.
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
    ANY_STAGE,
    CONTEXT_RECIPIENTS,
    FCM_PAYLOAD_LIMIT,
    MAX_RECIPIENTS,
    Rule,
)
from push365.notifications.service import payload_size
from push365.notifications.templates import (
    EventValues,
    Reader,
    UserNames,
    fill,
    link_text,
    placeholders,
    table_name,
    unnamed_users,
)

RECORD_LINK = "record"
TITLE_LIMIT = 1024
BODY_LIMIT = 4096
LINK_LIMIT = 2048
ELLIPSIS = "\u2026"

_HOST = re.compile(r"^[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+(:\d{1,5})?$")
_HTTPS = re.compile(r"^https://[^\s/]+")

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
NO_TABLE = "none"
"""``PrimaryEntityName`` of a message bound to no table (an unbound custom API or action)."""
_NO_ID = "00000000-0000-0000-0000-000000000000"

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
    missing: tuple[str, ...] = ()  # placeholders that showed nothing (for the preview)

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
    if context.stage is not None and rule.stage not in (ANY_STAGE, context.stage):
        return WRONG_STAGE
    if context.depth is not None and context.depth > rule.max_depth:
        return TOO_DEEP
    return None


@dataclass(frozen=True)
class Surroundings:
    """What rendering needs beyond the event: where record links point, the organization's
    language, the receipt URL every message will also carry (it counts against FCM's limit),
    and the organization's directory of system users, to name a user the event names only by
    id (read only when a template needs it)."""

    dynamics_host: str | None = None
    organization_url: str | None = None
    language_code: int | None = None
    receipt_url: str | None = None
    user_names: UserNames | None = None


def render_rule(rule: Rule, context: ExecutionContext, around: Surroundings) -> Rendered:
    """What ``rule`` sends for the event: recipients, and content that always fits."""
    values = EventValues.of(context)
    users, teams = resolve_recipients(rule.recipients, context, values)
    names = _directory_names(rule, values, around.user_names)
    title_reader = Reader(around.language_code, names, in_title=True)
    reader = Reader(around.language_code, names)
    title = fill(rule.title, lambda name: title_reader.show(values.value(name)))
    body = fill(rule.body, lambda name: reader.show(values.value(name)))
    missing = title.missing + body.missing
    title_text = title.text.strip()
    if not title_text or not title.required_shown:
        title_text = default_title(context.primary_entity_name, context.message_name)
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
        # a link is not prose: a missing value leaves nothing, and nothing else is changed
        rendered = fill(rule.link, lambda name: link_text(values.value(name)), clean=False)
        missing += rendered.missing
        link = https_or_none(rendered.text)
    fitted_title, fitted_body, link = fit(title_text, body.text.strip(), link, around.receipt_url)
    return Rendered(users, teams, fitted_title, fitted_body, link, tuple(dict.fromkeys(missing)))


def _directory_names(
    rule: Rule, values: EventValues, user_names: UserNames | None
) -> dict[str, str]:
    """Full names of the users the templates show without a ``Name``, in one read."""
    if user_names is None:
        return {}
    templates = (rule.title, rule.body, rule.link or "")
    wanted = unnamed_users(values.value(n) for t in templates for n in placeholders(t))
    return dict(user_names(wanted)) if wanted else {}


def resolve_recipients(
    names: Sequence[str], context: ExecutionContext, values: EventValues
) -> tuple[list[str], int]:
    """The system users a rule's recipients name in this event, and how many teams were skipped.

    A column counts with the value the record has after the operation (a lookup, or activity
    parties: see ``EventValues.column``), a request parameter (``input.Name``) with its value;
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
            shown = values.value(name)
            found, skipped = user_ids_in([shown.value if shown else None])
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
    """A title when the rendered one is empty: "Contact updated", "Phone call deleted"; a
    custom API or action by its own name, without the publisher prefix: "Debug custom api",
    "Escalate (Case)" when it is bound to a table."""
    word = _MESSAGE_WORDS.get(message.lower())
    unbound = not table or table.lower() == NO_TABLE
    if word is not None:
        return word[:1].upper() + word[1:] if unbound else f"{table_name(table)} {word}"
    action = message_words(message)
    return action if unbound else f"{action} ({table_name(table)})"


def message_words(message: str) -> str:
    """ "devkit_DebugCustomApi" -> "Debug custom api"; "SetState" -> "Set state"."""
    prefix, underscore, rest = message.partition("_")
    name = rest if underscore and rest else prefix
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|_", " ", name).split()
    text = " ".join(words).lower()
    return text[:1].upper() + text[1:] if text else "Event"


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
    if base is None or not record_id or record_id == _NO_ID or table.lower() == NO_TABLE:
        return None  # an unbound message has no record: no link rather than etn=none
    return https_or_none(f"{base}/main.aspx?etn={table}&id={record_id}&pagetype=entityrecord")


def _base_url(host: str | None, organization_url: str | None) -> str | None:
    if host:
        bare = host.strip().removeprefix("https://").rstrip("/")
        if _HOST.match(bare):
            return f"https://{bare}"
    if organization_url:
        return organization_url.rstrip("/")
    return None
