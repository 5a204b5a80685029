"""Organization use cases: register, update, authenticate, rotate and revoke keys, confirm the
administrators' mail addresses."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from push365.errors import (
    Conflict,
    CurrentKeyRequired,
    Forbidden,
    Unauthorized,
    UnknownConfirmation,
)
from push365.model import utc_now
from push365.notifications.model import RuleSet
from push365.organizations import keys
from push365.organizations.model import Authenticated, Organization, Registration
from push365.organizations.repository import Credentials, OrganizationRepository

if TYPE_CHECKING:
    from push365.mail.notices import AdminNotices
    from push365.signup.service import SignupService

# Compared against when a key names no organization (or none at all): every failure reads the
# same small document and compares the same two hashes.
_NOBODY = "00000000-0000-0000-0000-000000000000"
DEFAULT_KEY_OVERLAP = timedelta(hours=24)
# ... and every failure answers no sooner than this after it started: a store read of an
# existing document (a wrong key) takes longer than one of a missing document (an unknown
# organization), and that difference must not tell a caller which ids exist.
FAILURE_FLOOR_SECONDS = 0.025


@dataclass(frozen=True)
class Registered:
    """The outcome of ``register``: ``api_key`` only when the organization was created."""

    organization_id: str
    created: bool
    api_key: str | None = None
    confirmations_sent: int = 0
    """New administrator addresses asked to confirm (mailed) by this call."""
    confirmations_not_sent: int = 0
    """New addresses the daily mail limits kept from being asked: they stay unasked, and a later
    update (after the limit's day) asks them."""

    def confirmation_mails(self) -> dict[str, int] | None:
        """The answer's counts of confirmation mails, when this call had new addresses."""
        if self.confirmations_sent + self.confirmations_not_sent == 0:
            return None
        return {"sent": self.confirmations_sent, "not_sent": self.confirmations_not_sent}


@dataclass(frozen=True)
class Rotated:
    """A new key, and until when the previous one keeps working (None: it stopped now)."""

    api_key: str
    previous_key_valid_until: datetime | None


class OrganizationService:
    """Registration and authentication of organizations."""

    def __init__(
        self,
        repository: OrganizationRepository,
        clock: Callable[[], datetime] = utc_now,
        notices: AdminNotices | None = None,
        signup: SignupService | None = None,
        key_overlap: timedelta = DEFAULT_KEY_OVERLAP,
        failure_floor: float = FAILURE_FLOOR_SECONDS,
    ) -> None:
        self._repository = repository
        self._clock = clock
        self._notices = notices
        self._signup = signup
        self._key_overlap = key_overlap
        self._failure_floor = failure_floor

    def register(
        self,
        registration: Registration,
        presented_key: str | None,
        key_in_query: bool = False,
        signup_code: str | None = None,
        caller: str = "unknown",
    ) -> Registered:
        """Create an organization (a signup code for its id needed) or update it (its current
        key). ``caller``: where the request came from, for the registration throttles.

        Raises:
            Conflict: the organization exists and no key was presented.
            TooManyRequests, SignupCodeRequired, SignupCodeInvalid: see ``SignupService.admit``.
            Unauthorized: a key was presented and is not valid.
            QueryKeyRefused: it came in ``?code=`` and the organization accepts only the header.
            Forbidden: the key belongs to another organization.
            CurrentKeyRequired: it is the previous key (during its overlap it administers
                nothing).
        """
        if presented_key is None:
            return self.register_as(registration, None, signup_code, caller)
        authenticated = self.identify(presented_key)
        stored = authenticated.organization
        stored.check_key_source(key_in_query)
        return self.register_as(registration, authenticated, signup_code, caller)

    def register_as(
        self,
        registration: Registration,
        authenticated: Authenticated | None,
        signup_code: str | None = None,
        caller: str = "unknown",
    ) -> Registered:
        """:meth:`register`, with the key already checked (``None``: no key was presented).

        Raises:
            Forbidden, CurrentKeyRequired: a key of another organization, or the previous key.
            and, without a key, what :meth:`register` raises then.
        """
        organization_id = registration.organization.id
        if authenticated is None:
            return self._create(registration, signup_code, caller)
        stored = authenticated.organization
        if stored.id != organization_id:
            raise Forbidden("The API key belongs to another organization.")
        if authenticated.key != "current":
            raise CurrentKeyRequired()
        updates = registration.profile_updates()
        tokens: dict[str, str] = {}
        refused = 0
        replaced = "admins" in registration.model_fields_set and [
            a.model_dump() for a in registration.admins
        ] != [a.model_dump() for a in stored.admins]
        if "admins" in registration.model_fields_set:
            updated = stored.model_copy(update={"admins": registration.admins})
            tokens, pending, refused = self._confirmations(updated)
            # A waiting confirmation ends with its address's removal (its link stops working),
            # so that the list stays as short as the administrators; re-adding the address asks
            # it again only once the mail limits allow (not on the day it was asked).
            kept = set(updated.admin_emails())
            waiting = {h: e for h, e in stored.pending_emails.items() if e in kept}
            if pending or waiting != stored.pending_emails:
                updates["pending_emails"] = {**waiting, **pending}
        self._repository.update_profile(organization_id, updates, self._clock())
        if self._notices is not None and tokens:
            self._notices.confirmation_requests(stored, tokens)
        if self._notices is not None and replaced:
            # to the administrators confirmed before the change: someone who replaced them
            # with a key cannot keep them from hearing of it
            self._notices.admins_replaced(stored, len(registration.admins))
        return Registered(
            organization_id,
            created=False,
            confirmations_sent=len(tokens),
            confirmations_not_sent=refused,
        )

    def _create(
        self, registration: Registration, signup_code: str | None, caller: str
    ) -> Registered:
        organization_id = registration.organization.id
        if self._repository.credentials(organization_id) is not None:
            raise Conflict()  # before the code is used: a code is not spent on a taken id
        if self._signup is not None:
            self._signup.admit(signup_code, organization_id, caller)
        issued = keys.issue_key(organization_id)
        organization = Organization.register(registration, issued.hash, self._clock())
        tokens, pending, refused = self._confirmations(organization)
        organization = organization.model_copy(update={"pending_emails": pending})
        if not self._repository.add(organization):
            raise Conflict()
        if self._notices is not None:
            self._notices.confirmation_requests(organization, tokens)
        return Registered(
            organization_id,
            created=True,
            api_key=issued.plaintext,
            confirmations_sent=len(tokens),
            confirmations_not_sent=refused,
        )

    def _confirmations(
        self, organization: Organization
    ) -> tuple[dict[str, str], dict[str, str], int]:
        """A confirmation token for each address not asked yet that the daily mail limits
        admit: (address -> token to mail, token hash -> address to store, how many addresses
        the limits refused). A refused address is not stored as waiting: it stays unasked."""
        unasked = organization.unasked_emails()
        admitted = (
            self._notices.admit_confirmations(organization.id, unasked)
            if self._notices is not None and unasked
            else unasked
        )
        tokens: dict[str, str] = {}
        pending: dict[str, str] = {}
        for email in admitted:
            issued = keys.issue_key(organization.id, keys.CONFIRMATION_PREFIX)
            tokens[email] = issued.plaintext
            pending[issued.hash] = email
        return tokens, pending, len(unasked) - len(admitted)

    def confirm_email(self, token: str) -> None:
        """An administrator opened the link: their address now gets Push365's mail, starting
        with what was registered.

        Raises:
            UnknownConfirmation: not a link Push365 sent, or one already used.
        """
        organization_id = keys.organization_of(token, keys.CONFIRMATION_PREFIX)
        email = (
            self._repository.confirm_email(organization_id, keys.hash_key(token), self._clock())
            if organization_id
            else None
        )
        if organization_id is None or email is None:
            raise UnknownConfirmation()
        organization = self._repository.get(organization_id)
        if self._notices is not None and organization is not None:
            self._notices.registration_confirmed(organization, only=email)

    def authenticate(self, presented_key: str | None) -> Organization:
        """The organization a key belongs to (see :meth:`identify`)."""
        return self.identify(presented_key).organization

    def identify(self, presented_key: str | None) -> Authenticated:
        """The organization a key belongs to, and whether it is its current or previous key.

        No key, a malformed key, an unknown organization, an erased one and a wrong key take
        the same path (one small read, two hash comparisons) and the same time (the failure
        floor).

        Raises:
            Unauthorized: any of those (one answer for all).
        """
        started = time.monotonic()
        try:
            return self._identify(presented_key)
        except Unauthorized:
            time.sleep(max(0.0, started + self._failure_floor - time.monotonic()))
            raise

    def _identify(self, presented_key: str | None) -> Authenticated:
        organization_id = keys.organization_of(presented_key) if presented_key else None
        credentials = self._repository.credentials(organization_id or _NOBODY)
        presented_hash = keys.hash_key(presented_key or "")
        stored = credentials or Credentials(None)
        current = keys.hash_matches(presented_hash, stored.key_hash)
        previous = keys.hash_matches(presented_hash, stored.previous_hash)
        until = stored.previous_until
        previous = previous and until is not None and self._clock() < until
        if organization_id is None or not (current or previous):
            raise Unauthorized()
        organization = self._repository.get(organization_id)
        if organization is None:
            raise Unauthorized()
        return Authenticated(organization, "current" if current else "previous")

    def rotate_key(self, organization: Organization, overlap: timedelta | None = None) -> Rotated:
        """Issue a new key; the current one keeps working for ``overlap`` (default: the
        configured window, 24 h; zero: it stops at once). A previous key still in its window
        is replaced by the current one."""
        overlap = self._key_overlap if overlap is None else overlap
        now = self._clock()
        issued = keys.issue_key(organization.id)
        until = now + overlap if overlap > timedelta(0) else None
        previous = organization.api_key_hash if until is not None else None
        self._repository.rotate_key(organization.id, Credentials(issued.hash, previous, until), now)
        if self._notices is not None:
            self._notices.key_rotated(organization, until)
        return Rotated(issued.plaintext, until)

    def revoke_previous_key(self, organization: Organization) -> None:
        """The previous key stops working now (after rotating because a key leaked); the
        confirmed administrators are told."""
        self._repository.revoke_previous(organization.id, self._clock())
        if self._notices is not None:
            self._notices.previous_key_revoked(organization)

    def set_rules(self, organization: Organization, rule_set: RuleSet) -> int:
        """Replace the organization's event rules; how many there are now."""
        rules = [rule.model_dump() for rule in rule_set.rules]
        self._repository.set_rules(organization.id, rules, self._clock())
        return len(rules)
