"""What the setup registers in Dataverse: one webhook endpoint per Push365 function Dynamics calls,
and the steps (``sdkmessageprocessingstep``) on each.

``deliver`` is not here: Pub/Sub calls it, never Dynamics. Nor are ``receipt`` (browsers call it),
``privacy`` and ``purge``.
"""

from __future__ import annotations

from dataclasses import dataclass

STAGE_POST_OPERATION = 40
MODE_SYNCHRONOUS = 0
MODE_ASYNCHRONOUS = 1
IMAGE_PRE = 0
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


@dataclass(frozen=True)
class Step:
    endpoint: Endpoint
    table: str
    message: str
    stage: int = STAGE_POST_OPERATION
    filtering_attributes: tuple[str, ...] = ()
    pre_image: Image | None = None

    @property
    def mode(self) -> int:
        """Post-operation steps run asynchronously (a failed call never rolls back a save);
        Dataverse runs pre-operation and pre-validation steps only synchronously."""
        return MODE_ASYNCHRONOUS if self.stage == STAGE_POST_OPERATION else MODE_SYNCHRONOUS

    @property
    def name(self) -> str:
        suffix = "" if self.stage == STAGE_POST_OPERATION else f" (stage {self.stage})"
        return f"Push365: {self.message} of {self.table}{suffix}"


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
    Step(UNSUBSCRIBE, SUBSCRIPTION, "Delete", pre_image=Image("PreImage", (INSTANCE_ID,))),
    Step(SEND, NOTIFICATION, "Create"),
)


def message_name(message: str) -> str:
    """A rule's message (stored lower case) as Dataverse spells it."""
    return _MESSAGES.get(message.lower(), message)


def steps(rule_events: list[tuple[str, str, int]]) -> list[Step]:
    """The fixed steps, then one step on ``send`` per (table, message, stage) the rules name.

    A Delete carries only the row's id, so its step gets a pre-image of every column: the rule's
    placeholders and recipients are read from it.
    """
    planned = list(FIXED_STEPS)
    seen = {(step.table, step.message.lower(), step.stage) for step in planned}
    for table, message, stage in rule_events:
        key = (table.lower(), message.lower(), stage)
        if key in seen:
            continue
        seen.add(key)
        name = message_name(message)
        image = Image("PreImage") if name == "Delete" else None
        planned.append(Step(SEND, table.lower(), name, stage, pre_image=image))
    return planned
