"""System users from Dataverse: Create, Update and Delete of the ``systemuser`` table."""

from __future__ import annotations

from push365.dataverse import ExecutionContext, NotHandled
from push365.errors import ValidationFailed
from push365.model import validate
from push365.users.model import SystemUser, UserRemoval

TABLE = "systemuser"

COLUMNS = {
    "domainname": "domain_name",
    "fullname": "full_name",
    "internalemailaddress": "email",
    "windowsliveid": "windows_live_id",
    "mobilephone": "mobile_phone",
}
"""Dataverse column -> stored field: the privacy policy's list, and nothing else."""


def user_change_from_context(context: ExecutionContext) -> SystemUser | UserRemoval | NotHandled:
    """What a systemuser event means: an upsert of the touched columns, or a removal.

    A Delete, or ``isdisabled`` set to true, removes the user.
    """
    if not context.is_message(TABLE, "Create", "Update", "Delete"):
        return NotHandled(f"Create, Update and Delete of {TABLE}")
    user_id = context.primary_entity_id
    target = context.target_entity
    if context.message_name.lower() == "delete" or (target and target.get("isdisabled") is True):
        return validate(UserRemoval, {"id": user_id})
    if target is None:
        raise ValidationFailed("The Dataverse body has no Target; check the step registration.")
    fields: dict[str, object] = {"id": user_id or target.id}
    for column, field in COLUMNS.items():
        if column in target.attributes:
            fields[field] = target.get(column)
    return validate(SystemUser, fields)
