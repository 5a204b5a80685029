"""Identical sends at the same moment (Dataverse retrying, a caller's parallel retries): every
one answers the same 2xx with the same notification id, and one plan goes out."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devstack.fcm_server import LocalFcmServer
from tests.integration import conftest as it
from tests.integration.conftest import BOB, ORG, Answer, Functions

CONCURRENT = 20


def _twenty_at_once(api: Functions, key: str, body: Any, headers: dict[str, str]) -> list[Answer]:
    with ThreadPoolExecutor(CONCURRENT) as pool:
        return list(
            pool.map(lambda _: api.post("/send", body, key=key, headers=headers), range(CONCURRENT))
        )


@pytest.mark.parametrize("shape", ["idempotency-key", "dataverse"])
def test_twenty_identical_concurrent_sends_answer_the_same_and_plan_once(
    api: Functions, store: Any, fcm: LocalFcmServer, shape: str
) -> None:
    key = it.register(api)
    answer = api.post("/subscribe", {"user_id": BOB, "instance_id": "bob-laptop"}, key=key)
    assert answer.status_code == 201
    if shape == "dataverse":
        body, headers = it.dataverse("notification-create.json"), {}
    else:
        body = {"recipients": [BOB], "title": "t", "body": "b"}
        headers = {"Idempotency-Key": "case-CAS-01024-escalated"}

    answers = _twenty_at_once(api, key, body, headers)
    it.deliver_pending(api)

    assert {a.status_code for a in answers} == {202}, [(a.status_code, a.json) for a in answers]
    assert [a.json for a in answers] == [answers[0].json] * CONCURRENT
    assert api.queue is not None
    assert len(api.queue.pushed) == 2
    assert len(it.documents(store, ORG, "notifications")) == 1
    assert [m["token"] for m in fcm.messages()] == ["bob-laptop"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/subscribe", {"user_id": BOB, "instance_id": "bob-laptop"}),
        ("/register/users", {"users": [{"id": BOB, "full_name": "Bob Stone"}]}),
    ],
)
def test_twenty_identical_concurrent_writes_all_succeed_alike(
    api: Functions, path: str, body: dict[str, Any]
) -> None:
    key = it.register(api)

    with ThreadPoolExecutor(CONCURRENT) as pool:
        answers = list(pool.map(lambda _: api.post(path, body, key=key), range(CONCURRENT)))

    assert {a.status_code for a in answers} <= {200, 201}, [
        (a.status_code, a.json) for a in answers
    ]
    assert len({json.dumps(a.json, sort_keys=True) for a in answers}) == 1
