"""Quotas on every route, counted in Firestore (the real emulator): a burst past a route's quota
is refused with 429 and Retry-After, whichever instance each call reaches (two Apis, each over its
own Firestore client, as two instances of a function are); the window ends and calls pass again;
another organization is not held up; a Dataverse webhook over quota gets the 503 Dataverse
retries; a quota store that does not answer lets the call through (fail open), counted as
unchecked on its audit record.

The limits are small here and the clock is the test's (a fixed moment, stepped by hand): the
deployed limits and windows are ``push365.quotas.QUOTA_CLASSES``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import flask
import functions_framework
import pytest

from devstack.emulator import FirestoreEmulator
from devstack.gateway import FUNCTIONS_DIR
from push365.quotas import QUOTA_CLASSES, QuotaService
from push365.quotas.repository import FirestoreQuotaCounter
from push365.store import store_client
from push365.web import API_KEY_HEADER, Api
from push365.web.guards import default_guards
from tests.conftest import PROJECT
from tests.faults import TcpProxy
from tests.integration.conftest import ORG, OTHER_ORG, Functions, dataverse, register

CANARY = "CANARY-q7"
START = datetime(2030, 1, 7, 12, 0, 10, tzinfo=UTC)  # 50 s before its minute ends
SMALL = {
    **QUOTA_CLASSES,
    "read": replace(QUOTA_CLASSES["read"], per_minute=5, per_day=8),
    "webhook": replace(QUOTA_CLASSES["webhook"], per_minute=2, per_day=100, shards=1),
    "send": replace(QUOTA_CLASSES["send"], per_minute=8, per_day=100, shards=4),
}


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def load(name: str) -> ModuleType:
    """Function ``name``'s module, executed in an app of its own, as the platform loads it (its
    error handlers register on that app, never on one that already served a request)."""
    functions_framework.create_app(target=name, source=str(FUNCTIONS_DIR / f"{name}.py"))
    return sys.modules[name]


def instance(
    name: str, clock: Clock, client: Any = None, seconds: float = 5.0, first_shard: int = 0
) -> Api:
    """Function ``name``'s routes behind quotas counted over a Firestore client of its own (a
    sharded count starts on ``first_shard``)."""
    counter = FirestoreQuotaCounter(client or store_client(PROJECT), seconds)
    quotas = QuotaService(counter, SMALL, clock=clock, shard=lambda _: first_shard)
    api: Api = load(name).api
    return api.with_guards(replace(default_guards(), quotas=lambda: quotas))


def call(
    api: Api, method: str, path: str, key: str, body: Any = None, query: Any = None
) -> tuple[int, Any, dict[str, str]]:
    app = flask.Flask(__name__)
    headers = {API_KEY_HEADER: key, "X-Echo": CANARY}
    with app.test_request_context(
        path, method=method, headers=headers, json=body, query_string=query
    ):
        response = api.handle(flask.request)
    return response.status_code, response.get_json(), dict(response.headers)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def audit_records(capsys: Any) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    return [r for r in lines if r.get("event") == "api_call"]


def test_a_burst_past_the_quota_is_refused_with_retry_after_on_either_instance(
    api: Functions, clock: Clock, capsys: Any
) -> None:
    key = register(api)
    other_key = register(api, OTHER_ORG)
    first, second = instance("register", clock), instance("register", clock)
    capsys.readouterr()

    answers = [call((first, second)[n % 2], "GET", "/rules", key) for n in range(7)]
    neighbour = call(first, "GET", "/rules", other_key)

    assert [status for status, _, _ in answers] == [200] * 5 + [429] * 2
    _, refused, headers = answers[5]
    assert refused["error"]["code"] == "quota_exceeded"
    assert headers["Retry-After"] == "51"  # the minute's window ends in 50 s
    assert CANARY not in json.dumps(refused)
    assert neighbour[0] == 200  # another organization's quota is its own
    records = [r for r in audit_records(capsys) if r["status"] == 429]
    assert [r["fault"]["code"] for r in records] == ["quota_exceeded"] * 2
    assert all(r["organization_id"] == ORG for r in records)
    assert CANARY not in json.dumps(records)


def test_the_window_ends_and_the_day_limit_holds_past_it(api: Functions, clock: Clock) -> None:
    key = register(api)
    first, second = instance("register", clock), instance("register", clock)
    for _ in range(6):
        call(first, "GET", "/rules", key)

    clock.now = START + timedelta(seconds=50)  # the next minute
    next_minute = [call(second, "GET", "/rules", key)[0] for _ in range(4)]
    _, _, headers = call(first, "GET", "/rules", key)

    # 6 counted in the first minute (the refused one too: a caller that keeps calling keeps
    # its windows full), 2 more reach the day's 8
    assert next_minute == [200, 200, 429, 429]
    assert int(headers["Retry-After"]) > 11 * 3600  # until the day's window ends


def test_the_quota_is_per_route(api: Functions, clock: Clock) -> None:
    key = register(api)
    register_api = instance("register", clock)
    for _ in range(6):
        call(register_api, "GET", "/rules", key)

    export = call(instance("privacy", clock), "GET", "/export", key)

    assert call(register_api, "GET", "/rules", key)[0] == 429
    assert export[0] == 200


def test_a_dataverse_webhook_over_quota_gets_the_503_dataverse_retries(
    api: Functions, clock: Clock
) -> None:
    key = register(api)
    first, second = instance("register", clock), instance("register", clock)
    event = dataverse("systemuser-update.json")

    answers = [call(api_, "POST", "/users", key, event)[0] for api_ in (first, second, first)]
    plain = call(second, "POST", "/users", key, {"users": [{"id": ORG}]})

    assert answers == [200, 200, 503]
    assert plain[0] == 429
    clock.now = START + timedelta(seconds=50)
    _, retried, _ = call(second, "POST", "/users", key, event)
    assert retried == {"upserted": 1}  # Dataverse's one retry, in the next window, passes


def test_a_sharded_quota_refuses_only_past_its_limit(api: Functions, clock: Clock) -> None:
    key = register(api)
    # two instances that start on the same shard (the worst case: random picks spread)
    first, second = instance("send", clock, first_shard=3), instance("send", clock, first_shard=3)
    query = {"notification_id": "0" * 32}

    # send's quota (8 here) counts on 4 shards of 2: a call moves on to the next shard when its
    # own is full, and is refused once all are
    answers = [call((first, second)[n % 2], "POST", "/", key, {})[0] for n in range(10)]

    assert answers == [422] * 8 + [429] * 2  # counted before the body is read
    assert call(first, "GET", "/status", key, query=query)[0] == 404


def test_a_quota_store_that_does_not_answer_lets_the_call_through(
    api: Functions, clock: Clock, emulator: FirestoreEmulator, capsys: Any
) -> None:
    key = register(api)
    proxy = TcpProxy(emulator.address)
    saved = os.environ["FIRESTORE_EMULATOR_HOST"]
    os.environ["FIRESTORE_EMULATOR_HOST"] = proxy.address
    try:
        cut_off = instance("register", clock, store_client(PROJECT), seconds=1.0)
    finally:
        os.environ["FIRESTORE_EMULATOR_HOST"] = saved
    proxy.black_hole()
    capsys.readouterr()
    try:
        answers = [call(cut_off, "GET", "/rules", key)[0] for _ in range(7)]
    finally:
        proxy.stop()

    assert answers == [200] * 7
    records = audit_records(capsys)
    assert [r["counts"]["quota_unchecked"] for r in records] == [1] * 7


@pytest.fixture(autouse=True)
def _guards_built() -> Iterator[None]:
    default_guards.cache_clear()
    yield
    default_guards.cache_clear()
