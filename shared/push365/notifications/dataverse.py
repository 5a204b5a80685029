"""Notifications from Dataverse: a ``p365_notification`` row, or an event a rule matches.

Neither fails an event for the data it carries: what cannot be sent as it is is shortened,
defaulted or left out, and an event that names nobody is a documented no-op (``200``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from push365.dataverse import (
    Entity,
    EntityReference,
    ExecutionContext,
    OptionSetValue,
    Value,
    parse_entity,
    parse_value,
)
from push365.dataverse.text import repair_mojibake
from push365.model import normalize_guid, validate
from push365.notifications.model import (
    ANY_STAGE,
    MAX_RECIPIENTS,
    MAX_TTL_SECONDS,
    Rule,
    RulePreviewEvent,
    SendRequest,
    Urgency,
)
from push365.notifications.rules import (
    NO_RECIPIENTS,
    NO_RULE,
    NO_TABLE,
    Candidate,
    Rendered,
    Surroundings,
    candidates,
    fit,
    https_or_none,
    render_rule,
    user_ids_in,
)
from push365.notifications.templates import UserNames

TABLE = "p365_notification"
DYNAMICS_HOST_HEADER = "x-ms-dynamics-organization"
"""Sent by Dataverse: the environment's host name (or, some say, its bare name)."""
ROW_DEFAULT_TITLE = "Notification"
URGENCY_VALUES: dict[int, Urgency] = {0: "low", 1: "normal", 2: "high", 3: "very-low"}
"""``p365_urgency`` is read by value, never by its (translatable) label: Low 0, Normal 1 and
High 2 as Dataverse's own priority choices, Very Low 3."""


class NothingToSend:
    """A Dataverse event that sends nothing: no rule for it, a rule for another stage or depth,
    or recipients that name no system user.

    Answered with 200 and a fixed reason: an owner that is a team, or an event with no rule, is
    not an error (a failed step would fail, or roll back, the user's save).
    """

    def __init__(
        self, matched: bool, reason: tuple[str, str] = NO_RULE, teams_skipped: int = 0
    ) -> None:
        self.matched = matched
        self.reason_code, self.reason = reason
        self.teams_skipped = teams_skipped

    def answer(self) -> dict[str, object]:
        """The JSON answer (``reason_code`` also reaches the audit record)."""
        if not self.matched:
            return {"matched": False, "reason": self.reason, "reason_code": self.reason_code}
        return {
            "matched": True,
            "recipients": 0,
            "devices": 0,
            "sent": 0,
            "failed": 0,
            "teams_skipped": self.teams_skipped,
            "reason": self.reason,
            "reason_code": self.reason_code,
        }


def dedup_key(context: ExecutionContext, rules: Sequence[Rule] = ()) -> str:
    """The operation's identity: one Dataverse operation is sent at most once per step.

    ``CorrelationId`` is shared by every step of one operation, so it is used only when neither
    ``RequestId`` nor ``OperationId`` is there, and then with ``OperationCreatedOn``: two events
    never share a key, while Dataverse's retry (the identical body) still does. When the rule the
    event matches is for any stage (of ``rules``), the step and stage are left out: that rule
    sends once per operation, however many of the operation's steps reach Push365.
    """
    operation: object = context.request_id or context.operation_id
    if operation is None and (context.correlation_id or context.operation_created_on):
        created = context.operation_created_on
        operation = "{}@{}".format(
            context.correlation_id or "",
            "" if created is None else int(created.timestamp() * 1000),
        )
    fitting = _fitting(context, rules)
    per_step = fitting is None or fitting.rule.stage != ANY_STAGE
    parts = (
        context.owning_extension_id if per_step else "",
        operation,
        context.primary_entity_id,
        context.message_name.lower(),
        context.stage if per_step else "any",
    )
    return "dataverse:" + ":".join("" if p is None else str(p) for p in parts)


def send_from_context(
    context: ExecutionContext,
    rules: Sequence[Rule],
    dynamics_host: str | None,
    *,
    organization_url: str | None = None,
    language_code: int | None = None,
    receipt_url: str | None = None,
    user_names: UserNames | None = None,
) -> SendRequest | NothingToSend:
    """What to send for a Dataverse event: a ``p365_notification`` row, else the first rule for
    the event's table and message whose stage and depth fit.

    ``organization_url`` (registered) serves record links when ``dynamics_host`` is a bare
    name; ``language_code`` (the organization's LCID) formats dates; ``receipt_url`` (what every
    message also carries) counts against FCM's payload limit; ``user_names`` (the organization's
    directory) names users the event names only by id.

    Raises:
        ValidationFailed: never for the event's data; only if a rendered request still failed
            validation, which the rendering rules out.
    """
    around = Surroundings(dynamics_host, organization_url, language_code, receipt_url, user_names)
    if context.is_message(TABLE, "Create") and context.target_entity is not None:
        return _from_notification_row(context.target_entity, around)
    fitting = _fitting(context, rules)
    if fitting is not None:
        return _request(render_rule(fitting.rule, context, around))
    refused = next((c.refused for c in candidates(context, rules)), None)
    return NothingToSend(matched=False, reason=refused or NO_RULE)


def _fitting(context: ExecutionContext, rules: Sequence[Rule]) -> Candidate | None:
    """The first rule for the event's table and message whose stage and depth fit."""
    return next((c for c in candidates(context, rules) if c.refused is None), None)


def _request(rendered: Rendered) -> SendRequest | NothingToSend:
    if not rendered.recipients:
        return NothingToSend(True, NO_RECIPIENTS, rendered.teams_skipped)
    fields: dict[str, object] = {
        "recipients": rendered.recipients,
        "title": rendered.title,
        "body": rendered.body,
        "link": rendered.link,
    }
    return validate(SendRequest, fields)


def _from_notification_row(row: Entity, around: Surroundings) -> SendRequest | NothingToSend:
    recipients, teams = _row_recipients(row)
    title = repair_mojibake(str(row.get("p365_title") or ""))
    if not title.strip():
        title = ROW_DEFAULT_TITLE
    title, body, link = fit(
        title,
        repair_mojibake(str(row.get("p365_body") or "")),
        https_or_none(_text(row.get("p365_link"))),
        around.receipt_url,
    )
    return _row_request(recipients, teams, title, body, link, row)


def _row_request(
    recipients: list[str], teams: int, title: str, body: str, link: str | None, row: Entity
) -> SendRequest | NothingToSend:
    if not recipients:
        return NothingToSend(True, NO_RECIPIENTS, teams)
    urgency = row.get("p365_urgency")
    ttl = row.get("p365_ttlseconds")
    fields: dict[str, object] = {
        "recipients": recipients,
        "title": title,
        "body": body,
        "link": link,
        "ttl_seconds": min(max(ttl, 0), MAX_TTL_SECONDS)
        if isinstance(ttl, int) and not isinstance(ttl, bool)
        else None,
        "urgency": URGENCY_VALUES.get(urgency.value)
        if isinstance(urgency, OptionSetValue)
        else None,
    }
    return validate(SendRequest, fields)


def _row_recipients(row: Entity) -> tuple[list[str], int]:
    # p365_recipients: GUIDs separated by ";" or ","; what is not a GUID is skipped. Empty: the
    # row's owner.
    users: list[str] = []
    for part in re.split(r"[;,\s]+", _text(row.get("p365_recipients")) or ""):
        try:
            users.append(normalize_guid(part))
        except ValueError:
            continue  # empty, or not a GUID
    if users:
        return list(dict.fromkeys(users))[:MAX_RECIPIENTS], 0
    return user_ids_in([row.get("ownerid")])


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class RulePreview:
    """What one rule for the event's table and message would do. Content: in memory only."""

    number: int
    rule: Rule
    refused: tuple[str, str] | None
    rendered: Rendered
    sends: bool

    def __repr__(self) -> str:
        return f"RulePreview(rule={self.number}, <content hidden>)"


def preview(
    context: ExecutionContext, rules: Sequence[Rule], around: Surroundings
) -> list[RulePreview]:
    """Every rule for the event's table and message, rendered exactly as a send renders it
    (the same code), with whether it is the one a send would use."""
    previews: list[RulePreview] = []
    chosen = False
    for candidate in candidates(context, rules):
        rendered = render_rule(candidate.rule, context, around)
        first = candidate.refused is None and not chosen
        chosen = chosen or first
        previews.append(
            RulePreview(
                number=candidate.number,
                rule=candidate.rule,
                refused=candidate.refused,
                rendered=rendered,
                sends=first and bool(rendered.recipients),
            )
        )
    return previews


def rule_preview_answer(
    rule_preview: RulePreview, devices: int, context: ExecutionContext | None = None
) -> dict[str, object]:
    """One preview as JSON: the rule, whether it applies and sends, what it renders, and the
    placeholders that showed nothing (``missing``). For a message that is not about a record's
    columns (a custom API or action), also what a template can reach: ``input`` and ``output``
    (the request's parameter names) and whether it is ``bound`` to a record (its link)."""
    rendered = rule_preview.rendered
    answer: dict[str, object] = {
        "rule": rule_preview.number,
        "table": rule_preview.rule.table,
        "message": rule_preview.rule.message,
        "applies": rule_preview.refused is None,
        "sends": rule_preview.sends,
        "title": rendered.title,
        "body": rendered.body,
        "link": rendered.link,
        "recipients": len(rendered.recipients),
        "devices": devices,
        "teams_skipped": rendered.teams_skipped,
        "missing": list(rendered.missing),
    }
    if context is not None and context.target_entity is None and not _is_delete(context):
        answer["input"] = sorted(k for k in context.input_parameters if k != "Target")
        answer["output"] = sorted(context.output_parameters)
        answer["bound"] = context.primary_entity_name != NO_TABLE
    reason = rule_preview.refused or (None if rendered.recipients else NO_RECIPIENTS)
    if reason is not None:
        answer["reason_code"], answer["reason"] = reason
    return answer


def context_from_event(event: RulePreviewEvent, organization_id: str) -> ExecutionContext:
    """An execution context from a plainly described event (for previews)."""

    def entity(attributes: dict[str, object], formatted: dict[str, str]) -> Entity:
        return parse_entity(
            {
                "LogicalName": event.table,
                "Id": event.record_id,
                "Attributes": attributes,
                "FormattedValues": formatted,
            }
        )

    inputs: dict[str, Value] = {k: parse_value(v) for k, v in event.input.items()}
    if event.target or event.formatted_values or event.message.lower() in ("create", "update"):
        inputs.setdefault("Target", entity(event.target, event.formatted_values))
    elif event.table != NO_TABLE and event.record_id:
        # what Delete, Assign and a bound custom API carry: the record, not its columns
        inputs.setdefault("Target", EntityReference(event.table, event.record_id))
    post = entity(event.post_image, event.post_formatted_values)
    return ExecutionContext(
        message_name=event.message,
        primary_entity_name=event.table,
        primary_entity_id=event.record_id,
        organization_id=organization_id,
        initiating_user_id=event.initiating_user_id,
        user_id=event.user_id or event.initiating_user_id,
        stage=event.stage,
        depth=event.depth,
        operation_created_on=datetime.now(UTC),
        input_parameters=inputs,
        output_parameters={k: parse_value(v) for k, v in event.output.items()},
        pre_images={"PreImage": entity(event.pre_image, {})} if event.pre_image else {},
        post_images={"PostImage": post} if event.post_image or event.post_formatted_values else {},
    )


def _is_delete(context: ExecutionContext) -> bool:
    return context.message_name.lower() == "delete"
