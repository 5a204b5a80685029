"""Subscriptions from Dataverse: Create and Delete of the ``p365_subscription`` table."""

from __future__ import annotations

from push365.dataverse import ExecutionContext, NotHandled
from push365.errors import ValidationFailed
from push365.model import validate
from push365.subscriptions.model import Subscribe, Unsubscribe

TABLE = "p365_subscription"
INSTANCE_ID = "p365_instanceid"
FOOTPRINT = "p365_footprint"
TOKEN_KIND = "p365_tokenkind"  # optional text column; absent: a registration token (web browsers)


def subscribe_from_context(context: ExecutionContext) -> Subscribe | NotHandled:
    """A Create of ``p365_subscription``, or an Update that sets its token (the subscribe page
    refreshing it): the initiating user subscribes the row's token, refreshing ``last_seen_at``."""
    if not context.is_message(TABLE, "Create", "Update"):
        return NotHandled(f"Create and Update of {TABLE}")
    target = context.target_entity
    if target is None:
        raise ValidationFailed(_missing(f"the {context.message_name}'s Target", context))
    if context.is_message(TABLE, "Update") and target.get(INSTANCE_ID) is None:
        return NotHandled(f"Create of {TABLE} and Updates that set {INSTANCE_ID}")
    return validate(
        Subscribe,
        {
            "user_id": context.initiating_user_id,
            "instance_id": target.get(INSTANCE_ID),
            "browser_footprint": target.get(FOOTPRINT),
            **({"token_kind": target.get(TOKEN_KIND)} if target.get(TOKEN_KIND) else {}),
        },
    )


def unsubscribe_from_context(context: ExecutionContext) -> Unsubscribe | NotHandled:
    """A Delete of ``p365_subscription``: the token comes from the step's pre-image."""
    if not context.is_message(TABLE, "Delete"):
        return NotHandled(f"Delete of {TABLE}")
    image = context.first_pre_image()
    if image is None or image.get(INSTANCE_ID) is None:
        raise ValidationFailed(_missing(f"a pre-image with {INSTANCE_ID}", context))
    return validate(Unsubscribe, {"instance_id": image.get(INSTANCE_ID)})


def _missing(what: str, context: ExecutionContext) -> str:
    if context.size_exceeded:
        return f"Dataverse removed {what} because the context exceeded 256 KB."
    return f"The Dataverse body has no {what}; check the step registration."
