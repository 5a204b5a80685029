"""The log-based metrics (infra/metrics.json) read the audit records the functions really write.

The functions run as Cloud Functions loads them, over the Firestore and Pub/Sub emulators, the
local FCM server and the local SES; the calls below produce every kind of record a metric counts
(a send fanned out to good, dead, auth-failing and rate-limited tokens, a dead-lettered batch, a
purge, a bad request). The lines they print are the records Cloud Logging would receive: every
field other than Cloud Logging's own becomes ``jsonPayload.<field>``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from devstack.fcm_server import LocalFcmServer
from push365 import bootstrap
from push365.fanout.events import DEAD_LETTER_ATTRIBUTE
from push365.settings import get_settings
from tests.conftest import REPO, TEST_ADMIN_KEY
from tests.integration.conftest import BOB, Fanout, Functions, register

METRICS: dict[str, Any] = json.loads((REPO / "infra" / "metrics.json").read_text())
TOKENS = [
    "dev-1",
    "dev-2",
    "dev-3",
    "dev-4",
    "unregistered-1",  # FCM: 404 UNREGISTERED, the token is removed
    "thirdparty-1",  # FCM: 401 THIRD_PARTY_AUTH_ERROR, an auth failure
    "quota-1",  # FCM: 429, retried by redelivery: deliver answers 503
]
_TERM = re.compile(r"^(jsonPayload(?:\.[A-Za-z_@]+)+)(>=|<=|!=|=|>|<|:)(.+)$")
_TYPES: dict[str, tuple[type, ...]] = {"STRING": (str,), "INT64": (int,), "DOUBLE": (int, float)}


def field(record: dict[str, Any], path: str) -> Any:
    """``jsonPayload.a.b`` of a record, or ``...`` when it is absent."""
    value: Any = record
    for part in path.split(".")[1:]:
        if not isinstance(value, dict) or part not in value:
            return ...
        value = value[part]
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def condition(term: str) -> tuple[str, Callable[[Any], bool], type | None]:
    """One ``AND`` term of a filter: (field, test of the field's value, the type it compares)."""
    match = _TERM.match(term.strip())
    assert match, f"a filter term this test cannot read: {term}"
    path, operator, literal = match.groups()
    if operator == ":":
        assert literal == "*", term
        return path, lambda value: value is not ..., None
    if literal.startswith('"'):
        text = json.loads(literal)
        assert operator in ("=", "!="), term
        return path, (lambda v: v == text) if operator == "=" else (lambda v: v != text), str
    number = float(literal)
    compare: dict[str, Callable[[float], bool]] = {
        "=": lambda v: v == number,
        "!=": lambda v: v != number,
        ">": lambda v: v > number,
        ">=": lambda v: v >= number,
        "<": lambda v: v < number,
        "<=": lambda v: v <= number,
    }
    return path, lambda value: is_number(value) and compare[operator](value), float


def produce_every_kind_of_record(
    api: Functions, queue: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = register(api)
    for token in TOKENS:
        answer = api.post("/subscribe", {"user_id": BOB, "instance_id": token}, key=key)
        assert answer.status_code == 201
    accepted = api.post("/send", {"recipients": [BOB], "title": "t", "body": "b"}, key=key)
    assert accepted.status_code == 202

    def take() -> dict[str, Any]:
        answer = queue._call(f"subscriptions/{queue.topology.subscription}:pull", maxMessages=1)
        (item,) = answer["receivedMessages"]
        queue._call(
            f"subscriptions/{queue.topology.subscription}:acknowledge", ackIds=[item["ackId"]]
        )
        return dict(item["message"])

    project = queue.topology.project
    source = f"projects/{project}/subscriptions/{queue.topology.subscription}"
    assert api.push("deliver", {"message": take(), "subscription": source}) == 200  # the plan
    batch = take()
    # quota-1 is retried: the batch waits for redelivery (503); the others have their outcome.
    assert api.push("deliver", {"message": batch, "subscription": source}) == 503
    # Pub/Sub gives up on it: its dead-letter copy is recorded, quota-1 as failed.
    dead_letter = {**batch, "attributes": {DEAD_LETTER_ATTRIBUTE: source}}
    copy_from = f"projects/{project}/subscriptions/{queue.topology.dead_letter_subscription}"
    assert api.push("deliver", {"message": dead_letter, "subscription": copy_from}) == 200
    # A push that is not bound to any notification: refused, counted.
    unbound = {"data": "e30=", "messageId": "1", "publishTime": "2026-11-29T00:00:00Z"}
    assert api.push("deliver", {"message": unbound, "subscription": source}) == 400

    purged = api.post("/purge", {"dry_run": True}, headers={"X-Push365-Admin-Key": TEST_ADMIN_KEY})
    assert purged.status_code == 200
    # A send whose plan message is lost, given up by a reconcile that counts anything unfinished
    # as past its messages' retention (settings read anew for this one call).
    lost = api.post("/send", {"recipients": [BOB], "title": "t", "body": "b"}, key=key)
    assert lost.status_code == 202
    take()
    with monkeypatch.context() as scoped:
        scoped.setenv("PUSH365_RECONCILE_STALL_SECONDS", "0.001")
        scoped.setenv("PUSH365_FANOUT_MESSAGE_RETENTION_SECONDS", "0.001")
        get_settings.cache_clear()
        bootstrap.reconciler.cache_clear()
        try:
            time.sleep(0.01)
            reconciled = api.post("/reconcile", {}, headers={"X-Push365-Admin-Key": TEST_ADMIN_KEY})
        finally:
            bootstrap.reconciler.cache_clear()
    get_settings.cache_clear()
    assert reconciled.status_code == 200
    assert reconciled.json["given_up"] >= 1
    assert api.post("/subscribe", data="{not json", key=key).status_code == 400


def written(capsys: Any) -> list[dict[str, Any]]:
    """The audit records the functions printed (one JSON line each)."""
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    return [r for r in lines if r.get("event") == "api_call"]


def test_every_field_a_metric_names_is_in_the_records_the_functions_write(
    api: Functions,
    queue: Fanout,
    fcm: LocalFcmServer,
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    produce_every_kind_of_record(api, queue, monkeypatch)

    records = written(capsys)
    assert len(records) >= len(TOKENS) + 6
    for name, metric in METRICS.items():
        terms = [condition(term) for term in metric["filter"].split(" AND ")]
        # Each field the filter names is in the records, with the type it is compared as.
        for path, _, kind in terms:
            values = [field(r, path) for r in records if field(r, path) is not ...]
            assert values, f"{name}: no record has {path}"
            if kind is str:
                assert all(isinstance(v, str) for v in values), f"{name}: {path} is not text"
            elif kind is float:
                assert all(is_number(v) for v in values), f"{name}: {path} is not a number"
        matched = [r for r in records if all(test(field(r, path)) for path, test, _ in terms)]
        assert matched, f"{name}: its filter matches none of the records"
        # The value extractor and every label extractor find their field, of the declared type.
        for record in matched:
            if "value" in metric:
                assert is_number(field(record, metric["value"])), f"{name}: {metric['value']}"
            for label, spec in metric.get("labels", {}).items():
                value = field(record, spec["field"])
                assert isinstance(value, _TYPES[spec["type"]]), f"{name}: label {label}"
                assert not isinstance(value, bool), f"{name}: label {label}"


def test_deliver_records_carry_the_counts_operators_alert_on(
    api: Functions,
    queue: Fanout,
    fcm: LocalFcmServer,
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    produce_every_kind_of_record(api, queue, monkeypatch)

    deliver = [
        r
        for r in written(capsys)
        if r["function"] == "deliver" and r.get("fault", {}).get("code") != "invalid_message"
    ]
    plan, retried, dead = deliver
    assert (plan["route"], plan["method"], plan["counts"]["devices"]) == ("/plan", "PUBSUB", 7)
    assert (retried["route"], retried["status"]) == ("/batch", 503)
    assert retried["counts"] | {"devices": 7} == retried["counts"]
    assert (retried["counts"]["sent"], retried["counts"]["removed_tokens"]) == (4, 1)
    assert retried["counts"]["auth_failures"] == 1
    assert (dead["route"], dead["status"]) == ("/batch/dead-letter", 200)
    assert dead["counts"]["dead_lettered"] == 1
