"""Access and erasure use cases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

from pydantic import ConfigDict, StrictBool, model_validator

from push365.errors import NotFound
from push365.model import Guid, InputModel, utc_now
from push365.organizations.model import Organization
from push365.privacy.repository import PrivacyStore

if TYPE_CHECKING:
    from push365.mail.notices import AdminNotices


class EraseRequest(InputModel):
    """``POST /privacy/erase``: one user, or the whole organization."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["user_id"],
                    "properties": {"user_id": {"type": "string"}, "organization": {"const": False}},
                },
                {
                    "required": ["organization"],
                    "properties": {"user_id": {"type": "null"}, "organization": {"const": True}},
                },
            ]
        }
    )

    user_id: Guid | None = None
    organization: StrictBool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.user_id is None) == (not self.organization):
            raise ValueError('give exactly one of "user_id" and "organization": true')
        return self


class PrivacyService:
    """What a customer may ask of the data Push365 holds."""

    def __init__(
        self,
        store: PrivacyStore,
        clock: Callable[[], datetime] = utc_now,
        notices: AdminNotices | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._notices = notices

    def export(
        self, organization_id: str, user_id: str | None = None, page_token: str | None = None
    ) -> dict[str, Any]:
        """Everything held about the organization, or about one of its users: a page of it
        (at most ``EXPORT_PAGE`` documents), and the ``next_page_token`` of the rest (None on
        the last page).

        Raises:
            NotFound: nothing is held about that user.
            ValidationFailed: a page token no export answered.
        """
        if user_id is None:
            return self._store.export_organization(organization_id, page_token)
        found = self._store.export_user(organization_id, user_id, page_token)
        if found is None:
            raise NotFound("Nothing is held about this user.")
        return found

    def erase(self, organization: Organization, request: EraseRequest) -> dict[str, int]:
        """Remove a user's data, or the organization's, now (not at the next purge); the
        administrators get a confirmation with the counts."""
        if request.user_id is not None:
            counts = self._store.erase_user(organization.id, request.user_id)
            scope = "user"
        else:
            counts = self._store.erase_organization(organization.id, self._clock())
            scope = "organization"
        if self._notices is not None:
            self._notices.data_erased(organization, scope, counts)
        return counts
