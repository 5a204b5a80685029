"""Which administrator gets which message, when. Mail never blocks or fails the request that
caused it: a failure becomes a fault on that request's audit record."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

from push365.audit import note_fault
from push365.mail import messages
from push365.mail.limits import MailQuota
from push365.mail.port import Mail, Mailer
from push365.model import utc_now
from push365.organizations.model import Organization

ALERT_INTERVAL = timedelta(days=1)
WEBHOOKS = {
    "systemuser Create/Update/Delete": ("register", "/users"),
    "p365_subscription Create": ("subscribe", ""),
    "p365_subscription Delete (pre-image)": ("unsubscribe", ""),
    "p365_notification Create and event rules": ("send", ""),
}


class AlertLog(Protocol):
    """Remembers when an organization was last alerted."""

    def claim_alert(self, organization_id: str, now: datetime, interval: timedelta) -> bool:
        """Atomically: True (and remember ``now``) unless an alert went out within ``interval``."""
        ...

    def get(self, organization_id: str) -> Organization | None:
        """The organization, for its administrators and language."""
        ...


class AdminNotices:
    """Transactional messages to an organization's administrators."""

    def __init__(
        self,
        mailer: Mailer,
        alerts: AlertLog,
        function_url: Callable[[str], str],
        clock: Callable[[], datetime] = utc_now,
        quota: MailQuota | None = None,
    ) -> None:
        """
        Args:
            quota: the daily mail limits (push365.mail.limits); None: no limits (unit tests).
        """
        self._mailer = mailer
        self._alerts = alerts
        self._function_url = function_url
        self._clock = clock
        self._quota = quota

    def admit_confirmations(self, organization_id: str, emails: Sequence[str]) -> list[str]:
        """Which of these new addresses may be asked to confirm now, under the daily limits
        (each counted as asked, whether admitted or not)."""
        if self._quota is None:
            return list(emails)
        return self._quota.confirmations(organization_id, emails)

    def confirmation_requests(self, organization: Organization, tokens: Mapping[str, str]) -> None:
        """Ask each new address (address -> token; admitted by :meth:`admit_confirmations`) to
        confirm it wants Push365's mail: the one message an unconfirmed address ever gets, sent
        to it alone, with its link, naming the organization by its id only (no text the caller
        chose reaches an address that did not opt in)."""
        page = self._function_url("register") + "/confirm-email?token="
        for email, token in tokens.items():
            link = page + token
            self._send(
                organization,
                partial(messages.confirm_address, organization_id=organization.id, link=link),
                to=(email,),
            )

    def registration_confirmed(self, organization: Organization, only: str | None = None) -> None:
        """What was registered and how to register the webhooks (never the key); to one newly
        confirmed address when ``only`` names it."""
        urls = {
            step: self._function_url(function) + suffix
            for step, (function, suffix) in WEBHOOKS.items()
        }
        self._send(
            organization,
            lambda language: messages.registration_confirmed(
                language, organization.name, organization.unique_name, organization.id, urls
            ),
            to=(only,) if only else None,
            counted=only is None,  # one per confirmation request, which the limits counted
        )

    def key_rotated(self, organization: Organization, previous_until: datetime | None) -> None:
        """When the key changed, and until when the previous one keeps working."""
        now = self._clock()
        self._send(
            organization,
            lambda language: messages.key_rotated(language, organization.name, now, previous_until),
        )

    def previous_key_revoked(self, organization: Organization) -> None:
        """The previous key stopped working before its overlap ended."""
        now = self._clock()
        self._send(
            organization, lambda language: messages.key_revoked(language, organization.name, now)
        )

    def admins_replaced(self, organization: Organization, administrators: int) -> None:
        """The administrator list was replaced: to the confirmed administrators of
        ``organization`` as it was before (the new addresses get their confirmation request)."""
        now = self._clock()
        self._send(
            organization,
            lambda language: messages.admins_replaced(
                language, organization.name, now, administrators
            ),
        )

    def delivery_problem(
        self, organization_id: str, reason: str, devices: int, failed: int
    ) -> None:
        """FCM keeps rejecting this organization's messages: at most one alert a day."""
        try:
            if not self._alerts.claim_alert(organization_id, self._clock(), ALERT_INTERVAL):
                return
            organization = self._alerts.get(organization_id)
        except Exception as error:  # noqa: BLE001 - an alert must not fail the send it reports on
            note_fault("alert_failed", type(error).__name__)
            return
        if organization is not None:
            self._send(
                organization,
                lambda language: messages.delivery_alert(
                    language, organization.name, reason, devices, failed
                ),
            )

    def data_erased(
        self, organization: Organization, scope: str, counts: Mapping[str, int]
    ) -> None:
        """Confirmation of an erasure, with its counts."""
        self._send(
            organization,
            lambda language: messages.data_erased(language, organization.name, scope, counts),
        )

    def _send(
        self,
        organization: Organization,
        render: Callable[[str], messages.Rendered],
        to: tuple[str, ...] | None = None,
        counted: bool | None = None,
    ) -> None:
        """To ``to``, or else to every confirmed administrator address (double opt-in).
        ``counted`` (by default: when not sent to ``to``): a notice, under the organization's
        daily cap of notices (over it, it is dropped and noted as the request's fault)."""
        confirmed = set(organization.confirmed_emails)
        recipients = to or tuple(e for e in organization.admin_emails() if e in confirmed)
        if not recipients:
            return
        if (to is None if counted is None else counted) and not self._notice_allowed(organization):
            return
        rendered = render(messages.language_of(organization.language_code))
        try:
            self._mailer.send(Mail(recipients, rendered.subject, rendered.text, rendered.html))
        except Exception as error:  # noqa: BLE001 - mail never fails the request that caused it
            note_fault("mail_failed", type(error).__name__)

    def _notice_allowed(self, organization: Organization) -> bool:
        if self._quota is None:
            return True
        try:
            allowed = self._quota.notice(organization.id)
        except Exception as error:  # noqa: BLE001 - mail never fails the request that caused it
            note_fault("mail_failed", type(error).__name__)
            return False
        if not allowed:
            note_fault("mail_limited", "the organization's daily notices are used up")
        return allowed
