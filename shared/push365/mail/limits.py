"""How much mail Push365 sends, per UTC day: the limits that keep a key holder from aiming
Push365's mail at anyone.

- A confirmation request (the one mail an address that did not opt in ever gets) goes to an
  address at most once a day for an organization, at most ``confirmations_per_address`` times a
  day for all organizations together, and an organization causes at most
  ``confirmations_per_organization`` of them a day.
- Notices to confirmed administrators (key rotated or revoked, administrators replaced, data
  erased, delivery alerts): at most ``notices_per_organization`` a day for an organization.

The counters live in Firestore (``throttles/{sha256(scope)}-{day}``, a count and the TTL field),
so every instance sees the same counts; Firestore's TTL policy deletes each one after its day.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from push365.model import utc_now

WINDOW = timedelta(days=1)
"""The limits' window: a UTC day (counters keyed by the day's number since the epoch)."""


@dataclass(frozen=True)
class MailLimits:
    """The daily caps (docs/mail.md "The mail limits")."""

    confirmations_per_organization: int = 100
    confirmations_per_address: int = 3
    notices_per_organization: int = 20


class MailCounters(Protocol):
    """Counters shared by every instance."""

    def add(self, counts: Mapping[str, int], window: int, expires_at: datetime) -> dict[str, int]:
        """Add each count to its scope's counter (a scope hash) in ``window``, all in one write;
        each counter's total afterwards."""
        ...

    def claim(self, scope: str, wanted: int, cap: int, window: int, expires_at: datetime) -> int:
        """Atomically: how many of ``wanted`` fit under ``cap`` in the scope's counter, added
        to it."""
        ...


def _scope(*parts: str) -> str:
    return hashlib.sha256(":".join(parts).encode()).hexdigest()


class MailQuota:
    """Claims mail against the daily caps.

    The per-address counters count every address asked (added to, then read: two instances
    asking one address at once both see two and neither mails it, never both); an
    organization's cap is claimed atomically, so concurrent requests share it exactly.
    """

    def __init__(
        self,
        counters: MailCounters,
        limits: MailLimits = MailLimits(),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._counters = counters
        self._limits = limits
        self._clock = clock

    def confirmations(self, organization_id: str, emails: Sequence[str]) -> list[str]:
        """Which of these addresses may get a confirmation request now (in their order): each
        address once a day for this organization and within its cap for all organizations,
        then as many as the organization's cap has left. Every address asked is counted, mailed
        or not: one refused today is not mailed again today."""
        if not emails:
            return []
        window, ends = self._window()
        per_address: dict[str, tuple[str, str]] = {}
        for email in emails:
            folded = email.lower()  # one address however it is capitalised
            if folded not in {e.lower() for e in per_address}:
                per_address[email] = (
                    _scope("mail-confirmation", organization_id, folded),
                    _scope("mail-address", folded),
                )
        ours = self._counters.add({o: 1 for o, _ in per_address.values()}, window, ends)
        # An address counts against every organization's cap only on this organization's first
        # ask today: asking it again (removed and added back) cannot use up the others' asks.
        first = {e: scopes for e, scopes in per_address.items() if ours[scopes[0]] <= 1}
        everyone = (
            self._counters.add({e: 1 for _, e in first.values()}, window, ends) if first else {}
        )
        eligible = [
            email
            for email, (_, scope) in first.items()
            if everyone[scope] <= self._limits.confirmations_per_address
        ]
        allowed = self._claim(
            _scope("mail-confirmations", organization_id),
            len(eligible),
            self._limits.confirmations_per_organization,
            window,
            ends,
        )
        return eligible[:allowed]

    def notice(self, organization_id: str) -> bool:
        """Whether one more notice to this organization's administrators may go today."""
        window, ends = self._window()
        scope = _scope("mail-notices", organization_id)
        return self._claim(scope, 1, self._limits.notices_per_organization, window, ends) == 1

    def _claim(self, scope: str, wanted: int, cap: int, window: int, ends: datetime) -> int:
        """How many of ``wanted`` fit under ``cap`` (claimed)."""
        if wanted == 0:
            return 0
        return self._counters.claim(scope, wanted, cap, window, ends)

    def _window(self) -> tuple[int, datetime]:
        seconds = int(WINDOW.total_seconds())
        window = int(self._clock().timestamp()) // seconds
        return window, datetime.fromtimestamp((window + 1) * seconds, tz=UTC)
