"""What the setup registers in Dataverse: one webhook endpoint per Push365 function Dynamics calls,
the steps (``sdkmessageprocessingstep``) on each, and the images (``sdkmessageprocessingstepimage``)
on the steps of the organization's rules, holding exactly the columns those rules reference.

``deliver`` is not here: Pub/Sub calls it, never Dynamics. Nor are ``receipt`` (browsers call it),
``privacy`` and ``purge``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

STAGE_POST_OPERATION = 40
REGISTRABLE_STAGES = (10, 20, 40)
"""The stages a step can be registered at (pre-validation, pre-operation, post-operation). A rule
for stage 0 matches contexts a workflow or an action's own pipeline sends (no step of Push365's
delivers them), and stage 30 is the platform's own operation."""
UNBOUND = "none"
"""A rule's table for a message bound to no table (an unbound custom API or action)."""
MODE_SYNCHRONOUS = 0
MODE_ASYNCHRONOUS = 1
IMAGE_PRE = 0
IMAGE_POST = 1
PRE_IMAGE = "PreImage"
POST_IMAGE = "PostImage"
IMAGE_ALIASES = (PRE_IMAGE, POST_IMAGE)
"""The aliases Push365 registers; the only images a run corrects or removes, on its own steps."""
SUBSCRIPTION = "p365_subscription"
NOTIFICATION = "p365_notification"
INSTANCE_ID = "p365_instanceid"
USER_COLUMNS = ("domainname", "fullname", "internalemailaddress", "windowsliveid", "mobilephone")
"""The system user columns Push365 keeps (the privacy policy's list); ``isdisabled`` also
triggers the Update step, since disabling a user removes them."""
_MESSAGES = {
    name.lower(): name
    for name in (
        "Create",
        "Update",
        "Delete",
        "Assign",
        "SetState",
        "SetStateDynamicEntity",
        "Merge",
        "Associate",
        "Disassociate",
        "Win",
        "Lose",
        "Close",
        "Qualify",
    )
}


@dataclass(frozen=True)
class Endpoint:
    """A webhook service endpoint: one Push365 function URL, the key in a header."""

    name: str
    function: str
    route: str = ""


@dataclass(frozen=True)
class Image:
    alias: str
    attributes: tuple[str, ...] = ()
    """Empty: every column."""
    image_type: int = IMAGE_PRE
    message_property: str = "Target"
    """The request's parameter the image is taken of: ``Target``; ``Id`` for a Create (its
    post-image is of the created row); ``EntityMoniker`` for SetState."""

    @property
    def kind(self) -> str:
        return "post-image" if self.image_type == IMAGE_POST else "pre-image"


@dataclass(frozen=True)
class Step:
    endpoint: Endpoint
    table: str
    message: str
    stage: int = STAGE_POST_OPERATION
    filtering_attributes: tuple[str, ...] = ()
    images: tuple[Image, ...] = ()
    for_rules: bool = False
    """A step of the organization's rules: its Push365 images are exactly ``images`` (a run
    removes the ones no rule needs any more)."""
    columns: tuple[str, ...] = ()
    """A rule step's: the columns its rules reference (sorted), which its images hold."""

    def holding(self, columns: Iterable[str]) -> Step:
        """This rule step with images holding only ``columns`` (those the table has)."""
        known = set(columns)
        kept = tuple(column for column in self.columns if column in known)
        return replace(self, columns=kept, images=images_for(self.message, self.stage, kept))

    @property
    def mode(self) -> int:
        """Post-operation steps run asynchronously (a failed call never rolls back a save);
        Dataverse runs pre-operation and pre-validation steps only synchronously."""
        return MODE_ASYNCHRONOUS if self.stage == STAGE_POST_OPERATION else MODE_SYNCHRONOUS

    @property
    def name(self) -> str:
        suffix = "" if self.stage == STAGE_POST_OPERATION else f" (stage {self.stage})"
        return f"{STEP_NAME_PREFIX}{self.message} of {self.table}{suffix}"


STEP_NAME_PREFIX = "Push365: "
_STEP_NAME = re.compile(r"^Push365: (\w+) of (\w+)(?: \(stage (\d+)\))?$")


USERS = Endpoint("Push365 users", "register", "/users")
SUBSCRIBE = Endpoint("Push365 subscribe", "subscribe")
UNSUBSCRIBE = Endpoint("Push365 unsubscribe", "unsubscribe")
SEND = Endpoint("Push365 send", "send")
ENDPOINTS = (USERS, SUBSCRIBE, UNSUBSCRIBE, SEND)

FIXED_STEPS = (
    Step(USERS, "systemuser", "Create"),
    Step(USERS, "systemuser", "Update", filtering_attributes=(*USER_COLUMNS, "isdisabled")),
    Step(USERS, "systemuser", "Delete"),
    Step(SUBSCRIBE, SUBSCRIPTION, "Create"),
    Step(SUBSCRIBE, SUBSCRIPTION, "Update", filtering_attributes=(INSTANCE_ID,)),
    Step(UNSUBSCRIBE, SUBSCRIPTION, "Delete", images=(Image(PRE_IMAGE, (INSTANCE_ID,)),)),
    Step(SEND, NOTIFICATION, "Create"),
)


@dataclass(frozen=True)
class RuleEvent:
    """What a step needs of one rule: its event, and the columns it references."""

    table: str
    message: str
    stage: int = STAGE_POST_OPERATION
    columns: tuple[str, ...] = ()


_TEMPLATE_FIELDS = ("title", "body", "link")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_COLUMN = re.compile(r"^[a-z][a-z0-9_]{0,127}$")
RECORD_LINK = "record"
_CONTEXT_PREFIX = "context."


def referenced_columns(rule: Mapping[str, object]) -> tuple[str, ...]:
    """The table columns a rule reads: its templates' ``{column}`` placeholders (title, body,
    and a link that is a template) and its recipients that are columns (not ``context.*``, not a
    user's GUID), lower case, in order of first mention.

    A lookup needs only its own column: an image carries a lookup with its name. Placeholders
    that are not a column (``{input.Name}``, anything with a dot) are not the table's.
    """
    found: list[str] = []
    for field in _TEMPLATE_FIELDS:
        template = rule.get(field)
        if not isinstance(template, str) or (field == "link" and template == RECORD_LINK):
            continue
        for inside in _PLACEHOLDER.findall(template):
            found.append(re.split(r"[:|]", inside, maxsplit=1)[0].strip().lower())
    recipients = rule.get("recipients")
    for name in recipients if isinstance(recipients, list) else []:
        if isinstance(name, str) and not name.startswith(_CONTEXT_PREFIX) and "-" not in name:
            found.append(name.strip().lower())
    return tuple(dict.fromkeys(name for name in found if _COLUMN.match(name)))


def rule_event(rule: Mapping[str, object]) -> RuleEvent:
    """A stored rule (``GET /register/rules``) as its step needs it."""
    stage = rule.get("stage", STAGE_POST_OPERATION)
    return RuleEvent(
        str(rule["table"]),
        str(rule["message"]),
        stage if isinstance(stage, int) else STAGE_POST_OPERATION,
        referenced_columns(rule),
    )


_IMAGE_PROPERTY = {
    "Create": "Id",
    "Update": "Target",
    "Delete": "Target",
    "Assign": "Target",
    "Merge": "Target",
    "SetState": "EntityMoniker",
    "SetStateDynamicEntity": "EntityMoniker",
}
"""The messages a step's image can be taken for, and the request parameter it is of (Microsoft's
"Messages that support entity images"; ``Id`` for a Create's post-image as the Plug-in
Registration Tool registers it). Other messages (Win, Qualify, Associate, custom APIs) carry no
images."""


def images_for(message: str, stage: int, columns: Iterable[str]) -> tuple[Image, ...]:
    """The images a rule step registers: a pre-image (not for a Create: the row does not exist
    yet) and, at post-operation, a post-image (not for a Delete: the row is gone), each holding
    exactly ``columns``; none when the rules reference no column (an image without columns
    would carry every column)."""
    attributes = tuple(sorted(set(columns)))
    prop = _IMAGE_PROPERTY.get(message)
    if not attributes or prop is None:
        return ()
    images: list[Image] = []
    if message != "Create":
        images.append(Image(PRE_IMAGE, attributes, IMAGE_PRE, prop))
    if stage == STAGE_POST_OPERATION and message != "Delete":
        images.append(Image(POST_IMAGE, attributes, IMAGE_POST, prop))
    return tuple(images)


def not_registrable(rule_events: Iterable[RuleEvent]) -> list[str]:
    """The rules' events no step can be registered for (stage 0 or 30), as a report names them:
    such rules match only contexts that reach Push365 another way (a workflow's own step)."""
    found = {
        f"{message_name(e.message)} of {e.table} (stage {e.stage})"
        for e in rule_events
        if e.stage not in REGISTRABLE_STAGES
    }
    return sorted(found)


def retired_step(name: str) -> Step | None:
    """A rule step found in Dataverse by its name that no rule names any more (``None`` for a
    name that is not a Push365 rule step's): a run removes its images."""
    match = _STEP_NAME.match(name)
    if not match or any(step.name == name for step in FIXED_STEPS):
        return None
    message, table, stage = match.groups()
    return Step(SEND, table, message, int(stage or STAGE_POST_OPERATION), for_rules=True)


def message_name(message: str) -> str:
    """A rule's message (stored lower case) as Dataverse spells it."""
    return _MESSAGES.get(message.lower(), message)


def steps(rule_events: Iterable[RuleEvent | tuple[str, str, int]]) -> list[Step]:
    """The fixed steps, then one step on ``send`` per (table, message, stage) the rules name,
    with images holding the columns every rule for that step references (their union).

    Images are what make names and labels arrive: the Target of an Update carries only the
    columns changed, and its lookups without their names; a Delete carries only the row's id.
    """
    planned = list(FIXED_STEPS)
    fixed = {(step.table, step.message.lower(), step.stage) for step in planned}
    events: dict[tuple[str, str, int], list[str]] = {}
    for given in rule_events:
        event = given if isinstance(given, RuleEvent) else RuleEvent(*given)
        if event.stage not in REGISTRABLE_STAGES:
            continue  # (listed by not_registrable)
        key = (event.table.lower(), event.message.lower(), event.stage)
        if key not in fixed:
            events.setdefault(key, []).extend(event.columns)
    for (table, message, stage), columns in events.items():
        name = message_name(message)
        held = tuple(sorted(set(columns)))
        images = images_for(name, stage, held)
        planned.append(Step(SEND, table, name, stage, images=images, for_rules=True, columns=held))
    return planned
