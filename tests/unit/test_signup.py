"""Signup codes and the registration throttles, over an in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from push365.errors import (
    Forbidden,
    SignupCodeInvalid,
    SignupCodeRequired,
    TooManyRequests,
    Unauthorized,
)
from push365.signup.model import code_hash
from push365.signup.service import SignupPolicy, SignupService
from tests.fakes import InMemorySignupRepository

ORG = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"
OTHER_ORG = "9e8d7c6b-5a49-4382-9716-05f4e3d2c1b0"
NOW = datetime(2026, 11, 29, 12, 0, 30, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def service(
    clock: Clock | None = None, required: bool = True, admin_key: str | None = "admin"
) -> tuple[SignupService, InMemorySignupRepository]:
    repository = InMemorySignupRepository()
    policy = SignupPolicy(
        required=required,
        code_lifetime=timedelta(days=7),
        attempts=3,
        window=timedelta(minutes=10),
        admin_key=admin_key,
    )
    return SignupService(repository, policy, clock or Clock()), repository


def test_a_code_admits_its_organization_once_and_only_its_hash_is_kept() -> None:
    signup, repository = service()
    issued = signup.issue(ORG)

    signup.admit(issued.signup_code, ORG)

    assert list(repository.codes) == [code_hash(issued.signup_code)]
    assert issued.expires_at == NOW + timedelta(days=7)
    with pytest.raises(SignupCodeInvalid):
        signup.admit(issued.signup_code, ORG)


def test_a_code_for_another_organization_or_expired_is_invalid() -> None:
    clock = Clock()
    signup, _ = service(clock)
    code = signup.issue(ORG).signup_code

    with pytest.raises(SignupCodeInvalid):
        signup.admit(code, OTHER_ORG)
    clock.now = NOW + timedelta(days=7)
    with pytest.raises(SignupCodeInvalid):
        signup.admit(code, ORG)


def test_no_code_is_refused_unless_codes_are_not_required() -> None:
    with pytest.raises(SignupCodeRequired):
        service()[0].admit(None, ORG)

    service(required=False)[0].admit(None, ORG)  # no exception


def test_attempts_past_the_limit_wait_for_the_next_window() -> None:
    clock = Clock()
    signup, _ = service(clock)
    for _ in range(3):
        with pytest.raises(SignupCodeRequired):
            signup.admit(None, ORG)

    with pytest.raises(TooManyRequests) as throttled:
        signup.admit(None, ORG)

    assert throttled.value.retry_after == 571  # the window ends at 12:10:00
    clock.now = NOW + timedelta(minutes=10)
    with pytest.raises(SignupCodeRequired):
        signup.admit(None, ORG)


def test_only_the_operator_issues_codes() -> None:
    signup, _ = service()
    signup.check_operator("admin")  # no exception

    with pytest.raises(Unauthorized):
        signup.check_operator("nope")
    with pytest.raises(Unauthorized):
        signup.check_operator(None)
    with pytest.raises(Forbidden):
        service(admin_key=None)[0].check_operator("admin")


def test_attempts_without_a_code_never_hold_up_a_valid_code() -> None:
    signup, _ = service()
    code = signup.issue(ORG).signup_code
    for _ in range(3):
        with pytest.raises(SignupCodeRequired):
            signup.admit(None, ORG, "attacker")
    with pytest.raises(TooManyRequests):
        signup.admit(None, ORG, "attacker")

    signup.admit(code, ORG, "attacker")  # no exception: it counts only against code-less ones


def test_wrong_codes_hold_up_the_caller_that_guessed_and_not_the_valid_code() -> None:
    signup, repository = service()
    code = signup.issue(ORG).signup_code
    for n in range(3):
        with pytest.raises(SignupCodeInvalid):
            signup.admit(f"p365s.guess-{n}", ORG, "guesser")

    with pytest.raises(TooManyRequests):
        signup.admit(code, ORG, "guesser")  # the brute-force bound: no fourth try this window
    signup.admit(code, ORG, "customer")  # no exception
    assert all(ORG not in scope and "guesser" not in scope for scope, _ in repository.counters)
