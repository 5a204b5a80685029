"""What Push365 holds about a system user: exactly the privacy policy's "About System Users"."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from push365.model import Guid, InputModel, ShortText

MAX_USERS_PER_REQUEST = 500
"""One Firestore batch: a request's users are stored all together or not at all."""


class SystemUser(InputModel):
    """A Dynamics system user. Only the fields sent are written; null clears a field."""

    id: Guid
    domain_name: ShortText | None = None
    full_name: ShortText | None = None
    email: ShortText | None = None
    windows_live_id: ShortText | None = None
    mobile_phone: ShortText | None = None

    def stored_fields(self) -> dict[str, Any]:
        """The fields to write: those the sender set (so a partial update keeps the rest)."""
        return self.model_dump(exclude_unset=True) | {"id": self.id}


class UserBatch(InputModel):
    """``POST /register/users``."""

    users: list[SystemUser] = Field(min_length=1, max_length=MAX_USERS_PER_REQUEST)


class UserRemoval(InputModel):
    """A user deleted or disabled in Dynamics: remove them and their subscriptions."""

    id: Guid
