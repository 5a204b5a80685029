"""Validation errors name fields and problems, never the values or invented keys sent."""

from __future__ import annotations

import pytest

from push365.errors import ValidationFailed
from push365.model import validate
from push365.subscriptions.model import Subscribe, Unsubscribe
from push365.users.model import UserBatch

CANARY = "CANARY-7f3e"


def test_errors_hide_values() -> None:
    with pytest.raises(ValidationFailed) as raised:
        validate(Subscribe, {"user_id": CANARY, "instance_id": f"{CANARY} with space"})

    details = raised.value.details
    assert {d["field"] for d in details} == {"user_id", "instance_id"}
    assert CANARY not in repr(details)


def test_errors_hide_keys_the_caller_invented() -> None:
    with pytest.raises(ValidationFailed) as raised:
        validate(UserBatch, {"users": [{CANARY: 1}]})

    assert CANARY not in repr(raised.value.details)
    assert raised.value.details[0]["field"] == "users.0.id"


def test_model_repr_of_errors_hides_input() -> None:
    # hide_input_in_errors: even pydantic's own message, if it were logged, shows no value.
    with pytest.raises(Exception) as raised:  # noqa: PT011
        Subscribe.model_validate({"user_id": CANARY, "instance_id": ""})

    assert CANARY not in str(raised.value)


def test_unsubscribe_needs_exactly_one_selector() -> None:
    for body in ({}, {"instance_id": "t", "user_id": "b1111111-2222-4333-8444-555555555502"}):
        with pytest.raises(ValidationFailed):
            validate(Unsubscribe, body)


def test_extra_keys_are_dropped() -> None:
    user = validate(
        UserBatch, {"users": [{"id": "b1111111-2222-4333-8444-555555555502", "salary": 1}]}
    )

    assert "salary" not in user.users[0].stored_fields()
