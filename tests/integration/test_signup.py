"""Registration is no open door: creating an organization takes a single-use signup code the
operator issued for that organization id, attempts are throttled, and nothing of a code but its
hash is stored."""

from __future__ import annotations

from typing import Any

from push365.signup.model import code_hash
from tests.conftest import TEST_ADMIN_KEY
from tests.integration.conftest import ORG, OTHER_ORG, Functions, registration, signup

ADMIN = {"X-Push365-Admin-Key": TEST_ADMIN_KEY}


def organization_exists(store: Any, org: str) -> bool:
    return bool(store.collection("organizations").document(org).get().exists)


def test_without_a_code_registration_is_401_and_stores_nothing(api: Functions, store: Any) -> None:
    answer = api.post("/register", registration())

    assert (answer.status_code, answer.json["error"]["code"]) == (401, "signup_code_required")
    assert not organization_exists(store, ORG)


def test_a_code_works_once(api: Functions, store: Any) -> None:
    code = signup(api)
    first = api.post("/register", registration(), headers=code)
    api.post("/privacy/erase", {"organization": True}, key=first.json["api_key"])

    again = api.post("/register", registration(), headers=code)

    assert first.status_code == 201
    assert (again.status_code, again.json["error"]["code"]) == (403, "signup_code_invalid")
    assert not organization_exists(store, ORG)


def test_a_code_for_another_organization_id_is_refused_and_stays_usable(
    api: Functions, store: Any
) -> None:
    code = signup(api, OTHER_ORG)

    stolen = api.post("/register", registration(ORG), headers=code)
    own = api.post("/register", registration(OTHER_ORG), headers=code)

    assert (stolen.status_code, stolen.json["error"]["code"]) == (403, "signup_code_invalid")
    assert not organization_exists(store, ORG)
    assert own.status_code == 201


def test_an_unknown_code_is_refused(api: Functions, store: Any) -> None:
    answer = api.post("/register", registration(), headers={"X-Push365-Signup-Code": "p365s.x"})

    assert (answer.status_code, answer.json["error"]["code"]) == (403, "signup_code_invalid")


def test_only_the_operator_issues_codes_and_only_their_hash_is_stored(
    api: Functions, store: Any
) -> None:
    refused = api.post("/register/signup-codes", {"organization_id": ORG})
    wrong = api.post(
        "/register/signup-codes", {"organization_id": ORG}, headers={"X-Push365-Admin-Key": "x"}
    )
    issued = api.post("/register/signup-codes", {"organization_id": ORG}, headers=ADMIN)

    assert (refused.status_code, wrong.status_code, issued.status_code) == (401, 401, 201)
    code = issued.json["signup_code"]
    assert set(issued.json) == {"signup_code", "expires_at"}
    stored = {s.id: s.to_dict() for s in store.collection("signup_codes").stream()}
    assert list(stored) == [code_hash(code)]
    assert stored[code_hash(code)]["organization_id"] == ORG
    assert code not in repr(stored)


def test_a_burst_of_attempts_is_throttled_with_429_and_retry_after(
    api: Functions, store: Any
) -> None:
    answers = [api.post("/register", registration()) for _ in range(15)]

    statuses = [a.status_code for a in answers]
    assert statuses == [401] * 10 + [429] * 5
    throttled = answers[-1]
    assert throttled.json["error"]["code"] == "too_many_requests"
    assert throttled.mimetype == "application/json"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 601
    # the throttle holds up attempts without a code only: a valid code is not held up
    assert (
        api.post("/register", registration(OTHER_ORG), headers=signup(api, OTHER_ORG)).status_code
        == 201
    )


def test_attempts_without_a_code_never_lock_the_valid_code_out(api: Functions) -> None:
    # The organization id is public (every webhook body carries it): anyone can send these.
    attacker = {"X-Forwarded-For": "203.0.113.66"}
    noise = [api.post("/register", registration(), headers=attacker) for _ in range(11)]

    # (even from the same address: a code-less attempt can never succeed, so it counts only
    # against attempts without a code)
    valid = api.post("/register", registration(), headers={**attacker, **signup(api)})

    assert [a.status_code for a in noise] == [401] * 10 + [429]
    assert valid.status_code == 201, valid.json


def test_wrong_codes_throttle_the_caller_who_guesses_not_the_valid_code(api: Functions) -> None:
    guesser = {"X-Forwarded-For": "203.0.113.66"}
    customer = {"X-Forwarded-For": "198.51.100.7"}
    guesses = [
        api.post(
            "/register", registration(), headers={**guesser, "X-Push365-Signup-Code": f"p365s.{n}"}
        )
        for n in range(11)
    ]
    code = signup(api)

    stolen = api.post("/register", registration(), headers={**guesser, **code})
    valid = api.post("/register", registration(), headers={**customer, **code})

    # the brute-force bound: ten wrong codes a window from one caller, then 429 (even for a
    # valid one: that caller is not trusted with more tries)
    assert [g.status_code for g in guesses] == [403] * 10 + [429]
    assert stolen.status_code == 429
    assert valid.status_code == 201, valid.json


def test_one_code_is_throttled_across_organization_ids(api: Functions) -> None:
    code = signup(api, OTHER_ORG)
    orgs = [f"{n:08x}-1111-4222-8333-444444444444" for n in range(12)]

    statuses = [api.post("/register", registration(org), headers=code).status_code for org in orgs]

    assert statuses == [403] * 10 + [429] * 2
