"""Notifications from Dataverse: a ``p365_notification`` row, or an event a rule matches."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from push365.dataverse import Entity, EntityReference, ExecutionContext, Value
from push365.model import validate
from push365.notifications.model import Rule, SendRequest

TABLE = "p365_notification"
RECORD_LINK = "record"
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$")
_URGENCY_LABELS = {
    "very low": "very-low",
    "very-low": "very-low",
    "low": "low",
    "normal": "normal",
    "high": "high",
}


class NothingToSend:
    """A Dataverse event no rule matched, or a matched one that names no system user.

    Answered with 200: an owner that is a team, or an event with no rule, is not an error.
    """

    def __init__(self, matched: bool) -> None:
        self.matched = matched

    def answer(self) -> dict[str, object]:
        """The JSON answer."""
        if not self.matched:
            return {"matched": False}
        return {"matched": True, "recipients": 0, "devices": 0, "sent": 0, "failed": 0}


def dedup_key(context: ExecutionContext) -> str:
    """The operation's identity: one Dataverse operation is sent at most once.

    ``CorrelationId`` is shared by every step of one operation, so it is not used.
    """
    parts = (
        context.owning_extension_id,
        context.request_id or context.operation_id,
        context.primary_entity_id,
        context.message_name.lower(),
        context.stage,
    )
    return "dataverse:" + ":".join("" if p is None else str(p) for p in parts)


def send_from_context(
    context: ExecutionContext, rules: Sequence[Rule], dynamics_host: str | None
) -> SendRequest | NothingToSend:
    """What to send for a Dataverse event (the first rule that matches wins).

    Raises:
        ValidationFailed: the row or the rendered rule is not a valid notification.
    """
    if context.is_message(TABLE, "Create") and context.target_entity is not None:
        return _from_notification_row(context.target_entity)
    for rule in rules:
        if context.is_message(rule.table, rule.message):
            return _from_rule(rule, context, dynamics_host)
    return NothingToSend(matched=False)


def _from_notification_row(row: Entity) -> SendRequest:
    recipients: list[Any] = [
        part.strip()
        for part in re.split(r"[;,]", str(row.get("p365_recipients") or ""))
        if part.strip()
    ]
    if not recipients:
        recipients = list(_user_ids([row.get("ownerid")]))
    urgency_label = (row.formatted_values.get("p365_urgency") or "").strip().lower()
    fields: dict[str, object] = {
        "recipients": recipients,
        "title": row.get("p365_title"),
        "body": row.get("p365_body") or "",
        "link": row.get("p365_link") or None,
        "ttl_seconds": row.get("p365_ttlseconds"),
        "urgency": _URGENCY_LABELS.get(urgency_label),
    }
    return validate(SendRequest, fields)


def _from_rule(
    rule: Rule, context: ExecutionContext, host: str | None
) -> SendRequest | NothingToSend:
    records = _records(context)
    recipients = list(dict.fromkeys(_user_ids(_column(records, c) for c in rule.recipients)))
    if not recipients:
        return NothingToSend(matched=True)
    fields: dict[str, object] = {
        "recipients": recipients,
        "title": render(rule.title, records),
        "body": render(rule.body, records),
    }
    if rule.link == RECORD_LINK:
        fields["link"] = record_url(host, context.primary_entity_name, context.primary_entity_id)
    elif rule.link:
        fields["link"] = render(rule.link, records) or None
    return validate(SendRequest, fields)


def render(template: str, records: Sequence[Entity]) -> str:
    """``{column}`` placeholders: the formatted value when there is one, else the raw value."""

    def value(match: re.Match[str]) -> str:
        column = match.group(1).lower()
        for record in records:
            if column in record.formatted_values or column in record.attributes:
                return record.display(column) or ""
        return ""

    return _PLACEHOLDER.sub(value, template)


def record_url(host: str | None, table: str, record_id: str | None) -> str | None:
    """The Dynamics URL of a record, when the host header and the id are there."""
    if not host or not record_id or not _HOST.match(host):
        return None
    return f"https://{host}/main.aspx?etn={table}&id={record_id}&pagetype=entityrecord"


def _records(context: ExecutionContext) -> list[Entity]:
    # What the operation touched first, then the images' registered columns.
    target = context.target_entity
    records = [target] if target else []
    return records + list(context.post_images.values()) + list(context.pre_images.values())


def _column(records: Sequence[Entity], column: str) -> Value:
    return next((r.get(column) for r in records if column in r.attributes), None)


def _user_ids(values: Iterable[Value]) -> Iterable[str]:
    """System users referenced by lookups or activity parties (teams and others are skipped)."""
    for value in values:
        if isinstance(value, EntityReference) and value.logical_name == "systemuser":
            yield value.id
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, Entity):
                    yield from _user_ids([item.get("partyid")])
                else:
                    yield from _user_ids([item])
