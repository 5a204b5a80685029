"""Organization use cases: register, update, authenticate, rotate the key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from push365.errors import Conflict, Forbidden, Unauthorized
from push365.model import utc_now
from push365.notifications.model import RuleSet
from push365.organizations import keys
from push365.organizations.model import Organization, Registration
from push365.organizations.repository import OrganizationRepository

if TYPE_CHECKING:
    from push365.mail.notices import AdminNotices


@dataclass(frozen=True)
class Registered:
    """The outcome of ``register``: ``api_key`` only when the organization was created."""

    organization_id: str
    created: bool
    api_key: str | None = None


class OrganizationService:
    """Registration and authentication of organizations."""

    def __init__(
        self,
        repository: OrganizationRepository,
        clock: Callable[[], datetime] = utc_now,
        notices: AdminNotices | None = None,
    ) -> None:
        self._repository = repository
        self._clock = clock
        self._notices = notices

    def register(
        self, registration: Registration, presented_key: str | None, key_in_query: bool = False
    ) -> Registered:
        """Create an organization (no key needed) or update it (its key needed).

        Raises:
            Conflict: the organization exists and no key was presented.
            Unauthorized: a key was presented and is not valid.
            QueryKeyRefused: it came in ``?code=`` and the organization accepts only the header.
            Forbidden: the key belongs to another organization.
        """
        organization_id = registration.organization.id
        if presented_key is None:
            issued = keys.issue_key(organization_id)
            organization = Organization.register(registration, issued.hash, self._clock())
            if not self._repository.add(organization):
                raise Conflict()
            if self._notices is not None:
                self._notices.registration_confirmed(organization)
            return Registered(organization_id, created=True, api_key=issued.plaintext)
        caller = self.authenticate(presented_key)
        caller.check_key_source(key_in_query)
        if caller.id != organization_id:
            raise Forbidden("The API key belongs to another organization.")
        self._repository.update_profile(
            organization_id, registration.profile_updates(), self._clock()
        )
        return Registered(organization_id, created=False)

    def authenticate(self, presented_key: str | None) -> Organization:
        """The organization a key belongs to.

        Raises:
            Unauthorized: no key, a malformed key, an unknown organization or a wrong key
                (one answer for all four).
        """
        organization_id = keys.organization_of(presented_key) if presented_key else None
        organization = self._repository.get(organization_id) if organization_id else None
        stored_hash = organization.api_key_hash if organization else None
        if not keys.key_matches(presented_key or "", stored_hash) or organization is None:
            raise Unauthorized()
        return organization

    def rotate_key(self, organization: Organization) -> str:
        """Issue a new key for an authenticated organization; the old one stops working at once."""
        issued = keys.issue_key(organization.id)
        self._repository.set_key_hash(organization.id, issued.hash, self._clock())
        if self._notices is not None:
            self._notices.key_rotated(organization)
        return issued.plaintext

    def set_rules(self, organization: Organization, rule_set: RuleSet) -> int:
        """Replace the organization's event rules; how many there are now."""
        rules = [rule.model_dump() for rule in rule_set.rules]
        self._repository.set_rules(organization.id, rules, self._clock())
        return len(rules)
