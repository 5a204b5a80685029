"""Signup use cases: issue a code, admit a registration, throttle attempts."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from push365.errors import (
    Forbidden,
    SignupCodeInvalid,
    SignupCodeRequired,
    TooManyRequests,
    Unauthorized,
)
from push365.model import utc_now
from push365.quotas.model import Window
from push365.signup.model import code_hash, new_code
from push365.signup.repository import SignupRepository


@dataclass(frozen=True)
class SignupPolicy:
    """How codes and attempts are limited."""

    required: bool
    code_lifetime: timedelta
    attempts: int
    window: timedelta
    admin_key: str | None


@dataclass(frozen=True)
class IssuedCode:
    """A fresh code, shown to the operator once."""

    signup_code: str
    expires_at: datetime


class SignupService:
    """Who may create an organization, and how often anyone may try."""

    def __init__(
        self,
        repository: SignupRepository,
        policy: SignupPolicy,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._repository = repository
        self._policy = policy
        self._clock = clock

    def check_operator(self, presented: str | None) -> None:
        """Let in only the operator (the admin key, compared in constant time).

        Raises:
            Forbidden: no admin key is configured (issue codes with ``python -m push365.signup``).
            Unauthorized: no key, or another one.
        """
        configured = self._policy.admin_key
        if configured is None:
            raise Forbidden("Issuing signup codes over HTTP is disabled: no admin key is set.")
        if not hmac.compare_digest((presented or "").encode(), configured.encode()):
            raise Unauthorized("A valid X-Push365-Admin-Key is required.")

    def issue(self, organization_id: str) -> IssuedCode:
        """A single-use code that admits ``organization_id`` only; stored as its hash."""
        now = self._clock()
        code = new_code()
        expires_at = now + self._policy.code_lifetime
        self._repository.add(code_hash(code), organization_id, expires_at, now)
        return IssuedCode(code, expires_at)

    def admit(self, code: str | None, organization_id: str, caller: str = "unknown") -> None:
        """Let a registration create ``organization_id``, using up its code.

        The throttles are keyed so that no failure without the valid code can hold up the
        valid code (the organization id is public: it is in every webhook body):

        - attempts without a code, by the caller (its address): they cannot succeed, so they
          are only counted against whoever sends them;
        - wrong codes, by the caller: a caller that guessed ``attempts`` times is refused
          further guesses for the window (the brute-force bound), counted only when a guess
          fails, so a valid code from another caller is never refused;
        - every use of one code, by the code (one code tried against many organization ids),
          a scope nobody without the code can fill.

        Raises:
            TooManyRequests: too many attempts without a code or wrong codes from this caller,
                or uses of this code.
            SignupCodeRequired: no code, and codes are required.
            SignupCodeInvalid: unknown, used, expired, or for another organization id.
        """
        if code is None:
            self._throttle(f"caller-without-code:{caller}")
            if self._policy.required:
                raise SignupCodeRequired()
            return
        self._throttle(f"code:{code}")
        guesses = f"caller-wrong-codes:{caller}"
        self._throttle(guesses, count=False)
        if not self._repository.redeem(code_hash(code), organization_id, self._clock()):
            self._throttle(guesses)
            raise SignupCodeInvalid()

    def _throttle(self, scope: str, count: bool = True) -> None:
        """Count one attempt in ``scope`` (or, without ``count``, only read the count); past
        the limit, refuse it."""
        now = self._clock()
        window = Window.of(now, int(self._policy.window.total_seconds()))
        scope_hash = code_hash(scope)
        seen = (
            self._repository.hit(scope_hash, window.number, window.ends)
            if count
            else self._repository.count(scope_hash, window.number) + 1
        )
        if seen > self._policy.attempts:
            raise TooManyRequests(retry_after=window.retry_after(now))
