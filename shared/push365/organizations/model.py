"""What Push365 holds about an organization: the privacy policy's "Organization Information"."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StrictBool, StrictInt, StringConstraints

from push365.errors import QueryKeyRefused
from push365.model import BLANK, EmailAddress, Guid, InputModel, LongText, NonEmptyLine, SingleLine
from push365.notifications.model import Rule

_ORGANIZATION_URL = r"https://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(:[0-9]{1,5})?/?"


def _organization_url(value: str) -> str:
    if not re.fullmatch(_ORGANIZATION_URL, value):
        raise ValueError("must be the environment's https:// address, without a path")
    return value.rstrip("/")


OrganizationUrl = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=256),
    Field(json_schema_extra={"pattern": rf"^[{BLANK}]*{_ORGANIZATION_URL}[{BLANK}]*$"}),
    AfterValidator(_organization_url),
]
"""The environment's address (``https://contoso.crm4.dynamics.com``): record links are built on
it when Dataverse's ``x-ms-dynamics-organization`` header is a bare organization name."""


class OrganizationInfo(InputModel):
    """About the Dynamics 365 instance."""

    id: Guid
    unique_name: NonEmptyLine
    name: NonEmptyLine
    language_code: StrictInt = Field(ge=1, le=0x7FFF, description="An LCID, e.g. 1033.")
    url: OrganizationUrl | None = None


class Business(InputModel):
    """About the customer's business."""

    name: SingleLine | None = None
    phone: SingleLine | None = None
    email: SingleLine | None = None
    country: SingleLine | None = None
    address: LongText | None = None


class Administrator(InputModel):
    """A system administrator Push365 may send transactional messages to."""

    full_name: SingleLine | None = None
    email: EmailAddress | None = None
    mobile_phone: SingleLine | None = None


class Registration(InputModel):
    """``POST /register``: create an organization, or update it with its key."""

    organization: OrganizationInfo
    business: Business = Business()
    admins: list[Administrator] = Field(default_factory=list, max_length=50)
    accept_query_key: StrictBool = Field(
        default=False,
        description="Whether the API key is accepted in query parameter code (Dataverse auth "
        "WebhookKey) besides header X-Push365-Key. The platform's request logs keep a URL's "
        "query string, key included: new organizations refuse it unless this is true.",
    )

    def profile_updates(self) -> dict[str, Any]:
        """Firestore field paths to update: the organization always, business and admins as sent.

        Business fields not sent keep their stored values; ``admins``, when sent, replaces the list.
        """
        info = self.organization
        updates: dict[str, Any] = {
            "unique_name": info.unique_name,
            "name": info.name,
            "language_code": info.language_code,
        }
        if "url" in info.model_fields_set:
            updates["url"] = info.url
        for name, value in self.business.model_dump(exclude_unset=True).items():
            updates[f"business.{name}"] = value
        if "admins" in self.model_fields_set:
            updates["admins"] = [admin.model_dump() for admin in self.admins]
        if "accept_query_key" in self.model_fields_set:
            updates["query_key_allowed"] = self.accept_query_key
        return updates


class Organization(BaseModel):
    """A registered organization as stored."""

    id: str
    unique_name: str
    name: str
    language_code: int
    business: Business
    admins: list[Administrator]
    api_key_hash: str | None
    created_at: datetime
    updated_at: datetime
    url: str | None = None
    rules: list[Rule] = []
    last_delivery_alert_at: datetime | None = None
    # Double opt-in: mail goes only to addresses confirmed through their link.
    confirmed_emails: list[str] = []
    pending_emails: dict[str, str] = {}
    """Confirmation token hash -> the address it confirms."""
    # Key rotation's overlap: the previous key works until then, unless revoked.
    previous_key_hash: str | None = None
    previous_key_until: datetime | None = None

    def admin_emails(self) -> list[str]:
        """Every administrator's address, once each."""
        return list(dict.fromkeys(a.email for a in self.admins if a.email))

    def unasked_emails(self) -> list[str]:
        """Addresses neither confirmed nor waiting for their confirmation."""
        asked = set(self.confirmed_emails) | set(self.pending_emails.values())
        return [email for email in self.admin_emails() if email not in asked]

    # An organization registered before this setting existed has no such field and keeps the
    # behaviour it had (the key accepted in ?code=); a new one refuses it unless it asks.
    query_key_allowed: bool = True

    def check_key_source(self, key_in_query: bool) -> None:
        """Refuse a key sent in ``?code=`` when the organization accepts only the header.

        Raises:
            QueryKeyRefused: the key came in the query string and the organization refuses that.
        """
        if key_in_query and not self.query_key_allowed:
            raise QueryKeyRefused()

    @classmethod
    def register(cls, registration: Registration, api_key_hash: str, now: datetime) -> Organization:
        """A new organization from its registration."""
        info = registration.organization
        return cls(
            id=info.id,
            unique_name=info.unique_name,
            name=info.name,
            language_code=info.language_code,
            url=info.url,
            business=registration.business,
            admins=registration.admins,
            api_key_hash=api_key_hash,
            query_key_allowed=registration.accept_query_key,
            created_at=now,
            updated_at=now,
        )


@dataclass(frozen=True)
class Authenticated:
    """The organization a key belongs to, and which of its keys it was (never the key)."""

    organization: Organization
    key: Literal["current", "previous"]
