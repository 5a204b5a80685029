"""Every function's audit record keeps one contract, on every path (issue 26 item 2).

The policy: API-call logs keep identifying parameters, status, response statistics, fault reasons
and duration; never a request's content. So every record of every function (``functions/*.py``,
found here, ``deliver``, ``reconcile`` and ``purge`` included) carries its duration, its status
and, when it failed, a fault code; a fault's message is a fixed text of the code or an
exception's type name, never the exception's text; no record, and no other line the functions
write, carries a token, a name, a key or a notification's content; a Dataverse name is logged
at its documented size at most.

Each function is driven in ordinary use (a send to tokens FCM refuses in every way, through the
loopback FCM server), with its store out (every route, and deliver, with Firestore behind a
proxy that refuses connections), and with the queue out (send's publish, and deliver's publish
of a plan's batches).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.emulator import FirestoreEmulator
from devstack.fcm_server import LocalFcmServer
from devstack.gateway import FUNCTIONS_DIR, function_names
from push365 import bootstrap
from push365.notifications.receipts import new_receipt
from push365.settings import get_settings
from push365.web.openapi import DOCUMENT_ROUTE
from tests.conftest import REPO, TEST_ADMIN_KEY, free_port
from tests.faults import TcpProxy
from tests.integration.conftest import (
    BOB,
    ORG,
    Fanout,
    Functions,
    dataverse,
    registration,
    signup,
)

CANARY = "canary7q"  # in every token, name, address and text below: never in a log line
TOKENS = [
    f"dev-{CANARY}-1",
    f"unregistered-{CANARY}-2",  # FCM 404 UNREGISTERED: the token is retired
    f"invalid-{CANARY}-3",  # FCM 400 INVALID_ARGUMENT
    f"thirdparty-{CANARY}-4",  # FCM 401 THIRD_PARTY_AUTH_ERROR
    f"internal-{CANARY}-5",  # FCM 500: retried, then failed
    f"quota-{CANARY}-6",  # FCM 429: retried by redelivery (deliver answers 503), then failed
]
CONTENT = {"recipients": [BOB], "title": f"Title {CANARY}", "body": f"Body {CANARY}"}
ADMIN_HEADER = {"X-Push365-Admin-Key": TEST_ADMIN_KEY}
MAX_NAME = 64  # every text on a record but a fault's message: ids, codes, Dataverse names
MAX_MESSAGE = 200
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_CODE = re.compile(r"[a-z_]{1,40}")
_CODE_FILES = [*(REPO / "shared" / "push365").rglob("*.py"), *FUNCTIONS_DIR.glob("*.py")]
_SOURCE = "\n".join(path.read_text() for path in _CODE_FILES)
LIBRARY_FIELDS = ("logging.googleapis.com/", "httpRequest")
"""Cloud Logging's own fields of a line (the code's location, the request's method, path and
latency): checked for secrets with the rest, not as the record's texts."""
RAISED_AS_TYPE = {"store_unavailable", "internal"}
"""Fault codes whose message is the exception's type name (and nothing of its text)."""


def function_apis() -> dict[str, Any]:
    """Each function module of ``functions/*.py`` by name -> its ``api`` (None: ``deliver``,
    a Pub/Sub target without routes), loaded under a name of its own."""
    apis = {}
    for name in function_names():
        spec = importlib.util.spec_from_file_location(
            f"push365_contract_{name}", FUNCTIONS_DIR / f"{name}.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        apis[name] = getattr(module, "api", None)
    return apis


def routes() -> set[tuple[str, str, str]]:
    """(function, route, method) of every route every function serves (its description
    aside)."""
    found = set()
    for name, api in function_apis().items():
        if api is None:
            continue
        for path, operations in api.openapi()["paths"].items():
            if path != DOCUMENT_ROUTE:
                found |= {(name, path, method.upper()) for method in operations}
    return found


ROUTES = routes()
"""Found once, at collection (as tests/unit/test_openapi.py does): a function module loaded after
an app has answered a request cannot register its error handlers any more."""


def fixed_text(message: str) -> bool:
    """A text the code holds (a message with numbers filled in counts: its other parts are)."""
    return all(part in _SOURCE for part in re.split(r"\d+(?:\.\d+)?", message) if part)


def breaches(record: dict[str, Any], secrets: list[str]) -> list[str]:
    """What in one record breaks the contract."""
    found = []
    duration = record.get("duration_ms")
    if not isinstance(duration, int | float) or isinstance(duration, bool) or duration < 0:
        found.append(f"duration_ms {duration!r}")
    status = record.get("status")
    if not isinstance(status, int) or not 100 <= status <= 599:
        found.append(f"status {status!r}")
    fault = record.get("fault")
    if isinstance(status, int) and status >= 400 and fault is None:
        found.append("a failure without a fault")
    if fault is not None:
        code, message = fault.get("code"), fault.get("message")
        if not isinstance(code, str) or not _CODE.fullmatch(code):
            found.append(f"fault code {code!r}")
        elif not isinstance(message, str) or len(message) > MAX_MESSAGE:
            found.append(f"fault message {message!r}")
        elif code in RAISED_AS_TYPE and not _IDENTIFIER.fullmatch(message):
            found.append(f"fault message beyond a type name: {message!r}")
        elif not _IDENTIFIER.fullmatch(message) and not fixed_text(message):
            found.append(f"fault message not a fixed text: {message!r}")
    for key, value in record.items():
        if key == "fault" or key.startswith(LIBRARY_FIELDS):
            continue
        for text in _texts(value):
            if len(text) > MAX_NAME:
                found.append(f"{key}: {len(text)} characters")
    line = json.dumps(record)
    found += [f"carries {s!r}" for s in secrets if s in line]
    return found


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _texts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)


class Output:
    """Everything the functions wrote: stdout and stderr lines, and every log record (INFO and
    up, whatever handler would have written it)."""

    def __init__(self, capsys: Any, caplog: pytest.LogCaptureFixture) -> None:
        self._capsys = capsys
        self._caplog = caplog
        caplog.set_level(logging.INFO)
        self.text = ""
        capsys.readouterr()  # what came before is not this test's to judge
        caplog.clear()

    def records(self) -> list[dict[str, Any]]:
        captured = self._capsys.readouterr()
        logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in self._caplog.records)
        self._caplog.clear()
        self.text += captured.out + captured.err + logged
        lines = [json.loads(x) for x in captured.out.splitlines() if x.startswith("{")]
        return [r for r in lines if r.get("event") == "api_call"]


def assert_contract(records: list[dict[str, Any]], output: Output, secrets: list[str]) -> None:
    wrong = {
        f"{r['function']} {r['method']} {r['route']} {r['status']}": b
        for r in records
        if (b := breaches(r, secrets))
    }
    assert wrong == {}
    assert [s for s in secrets if s in output.text] == []


def rewire(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """The functions' services built anew from these settings (the next call reads them)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    for value in vars(bootstrap).values():
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()


@pytest.fixture
def rewired(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Settings changed in a test are undone, and the services built again, after it."""
    yield monkeypatch
    monkeypatch.undo()
    rewire(monkeypatch)


def pull(queue: Fanout) -> dict[str, Any]:
    """The next message on the fan-out subscription, taken off it (waiting for it a while)."""
    deadline = time.monotonic() + 10
    while True:
        answer = queue._call(f"subscriptions/{queue.topology.subscription}:pull", maxMessages=1)
        if answer.get("receivedMessages") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    (item,) = answer["receivedMessages"]
    queue._call(f"subscriptions/{queue.topology.subscription}:acknowledge", ackIds=[item["ackId"]])
    return dict(item["message"])


def pushed(queue: Fanout, message: dict[str, Any]) -> dict[str, Any]:
    subscription = f"projects/{queue.topology.project}/subscriptions/{queue.topology.subscription}"
    return {"message": message, "subscription": subscription}


def organization(api: Functions) -> tuple[str, list[str]]:
    """ORG registered with canary names, BOB named and subscribed on every token; its key and
    the secrets that must never be logged."""
    admins = [{"full_name": f"Ada {CANARY}", "email": f"ada.{CANARY}@contoso.com"}]
    answer = api.post("/register", registration(admins=admins), headers=signup(api))
    assert answer.status_code == 201, answer.json
    key = str(answer.json["api_key"])
    user = {"id": BOB, "full_name": f"Bob {CANARY}", "email": f"bob.{CANARY}@contoso.com"}
    assert api.post("/register/users", {"users": [user]}, key=key).status_code == 200
    for token in TOKENS:
        answer = api.post("/subscribe", {"user_id": BOB, "instance_id": token}, key=key)
        assert answer.status_code == 201
    return key, [CANARY, key]


def test_every_function_and_route_is_driven_here() -> None:
    outage = {(f, r.split("?")[0], m) for f, r, m, _, _ in outage_requests("key", "nid")}

    assert set(function_names()) == set(DRIVEN)
    assert outage.isdisjoint(STORE_FREE)
    assert outage | set(STORE_FREE) == ROUTES


STORE_FREE = {
    (
        "register",
        "/confirm-email",
        "GET",
    ): "the mailed link's page: reads nothing, confirms nothing",
}
"""Routes that never reach the store (driven in ordinary use only)."""


DRIVEN = {
    "register": "ordinary use and store outage",
    "subscribe": "ordinary use and store outage",
    "unsubscribe": "ordinary use and store outage",
    "send": "ordinary use, store outage and queue outage",
    "deliver": "FCM errors of every kind, store outage and queue outage",
    "receipt": "ordinary use and store outage",
    "privacy": "ordinary use and store outage",
    "purge": "ordinary use and store outage",
    "reconcile": "ordinary use and store outage",
}
"""Each function (functions/*.py) and how this file drives it: a new function must be added."""


def test_records_of_ordinary_use_and_every_fcm_error_keep_the_contract(
    api: Functions,
    queue: Fanout,
    fcm: LocalFcmServer,
    capsys: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    output = Output(capsys, caplog)
    key, secrets = organization(api)
    rule = {"table": "opportunity", "message": "Update", "recipients": ["ownerid"], "title": "t"}
    long_name = dataverse("opportunity-update.json", MessageName="M" * 300)
    long_name["PrimaryEntityName"] = "t" * 300

    accepted = api.post("/send", CONTENT, key=key, headers={"Idempotency-Key": CANARY})
    nid = accepted.json["notification_id"]
    queue.deliver(
        until=lambda: (
            api.get("/send/status", key=key, query={"notification_id": nid}).json["status"]
            in ("sent", "failed")
        )
    )
    calls = [
        api.post("/send", long_name, key=key),  # no rule sends for it: 200, names bounded
        api.get("/send/stats", key=key),
        api.post("/register/rules", {"rules": [rule]}, key=key),
        api.get("/register/rules", key=key),
        api.post("/register/rules/preview", dataverse("opportunity-update.json"), key=key),
        api.get("/privacy/export", key=key, query={"user_id": BOB}),
        api.post("/receipt", {"receipt": new_receipt(ORG, nid, 0, "b" * 32)[0]}),  # unknown
        api.get("/register/confirm-email", query={"token": CANARY}),  # the page
        api.post(f"/register/confirm-email?token=p365c.{ORG}.{CANARY}"),  # unknown
        api.post("/purge", {"dry_run": True}, headers=ADMIN_HEADER),
        api.post("/reconcile", {}, headers=ADMIN_HEADER),
        api.post("/subscribe", data=f'{{"user_id": "{CANARY}"', key=key),  # not JSON
        api.post("/unsubscribe", {"instance_id": TOKENS[0]}, key=key),
        api.post("/privacy/erase", {"user_id": BOB}, key=key),
        api.post("/register/rotate-key", {}, key=key),
    ]
    assert [c.status_code for c in calls] == [200] * 6 + [404, 200, 404] + [200, 200, 400] + [
        200
    ] * 3

    records = output.records()
    assert_contract(records, output, secrets)
    assert {r["function"] for r in records} == set(DRIVEN)
    batches = [r for r in records if r["function"] == "deliver" and r["route"] == "/batch"]
    assert 503 in {r["status"] for r in batches}  # the quota token's redelivery
    assert {r.get("dataverse_message") for r in records} >= {"(other)"}
    assert fcm.messages(), "the tokens reached the loopback FCM server"


def outage_requests(key: str, nid: str) -> list[tuple[str, str, str, Any, dict[str, str]]]:
    """(function, route, method, body, headers): one request per route, each reaching the
    store."""
    auth = {"X-Push365-Key": key}
    other = "7c7c7c7c-1111-4222-8333-444444444444"
    rule = {"table": "opportunity", "message": "Update", "recipients": ["ownerid"], "title": "t"}
    preview = {"table": "opportunity", "message": "Update", "target": {"name": "x"}}
    receipt, _ = new_receipt(ORG, nid, 0, "b" * 32)
    return [
        ("register", "/", "POST", registration(other), {}),
        ("register", "/users", "POST", {"users": [{"id": BOB}]}, auth),
        ("register", "/rotate-key", "POST", None, auth),
        ("register", "/revoke-previous-key", "POST", None, auth),
        ("register", "/signup-codes", "POST", {"organization_id": other}, ADMIN_HEADER),
        ("register", f"/confirm-email?token=p365c.{ORG}.{CANARY}", "POST", None, {}),
        ("register", "/rules", "POST", {"rules": [rule]}, auth),
        ("register", "/rules", "GET", None, auth),
        ("register", "/rules/preview", "POST", preview, auth),
        ("subscribe", "/", "POST", {"user_id": BOB, "instance_id": TOKENS[0]}, auth),
        ("unsubscribe", "/", "POST", {"user_id": BOB}, auth),
        ("send", "/", "POST", CONTENT, auth),
        ("send", "/status", "GET", {"notification_id": nid}, auth),
        ("send", "/stats", "GET", {"days": "7"}, auth),
        ("receipt", "/", "POST", {"receipt": receipt}, {}),
        ("privacy", "/export", "GET", {}, auth),
        ("privacy", "/erase", "POST", {"user_id": BOB}, auth),
        ("purge", "/", "POST", {}, ADMIN_HEADER),
        ("reconcile", "/", "POST", {}, ADMIN_HEADER),
    ]


def test_a_store_outage_is_a_fault_on_every_routes_record_and_delivers(
    api: Functions,
    queue: Fanout,
    fcm: LocalFcmServer,
    emulator: FirestoreEmulator,
    capsys: Any,
    caplog: pytest.LogCaptureFixture,
    rewired: pytest.MonkeyPatch,
) -> None:
    key, secrets = organization(api)
    nid = api.post("/send", CONTENT, key=key).json["notification_id"]
    plan = pull(queue)
    proxy = TcpProxy(emulator.address)
    output = Output(capsys, caplog)
    try:
        rewire(rewired, FIRESTORE_EMULATOR_HOST=proxy.address, PUSH365_STORE_TIMEOUT_SECONDS="1")
        proxy.cut()
        answers = {}
        for function, route, method, body, headers in outage_requests(key, nid):
            url = f"/{function}{route}"
            if method == "GET":
                answer = api.get(url, headers=headers, query=body)
            else:
                answer = api.post(url, body, headers=headers)
            answers[(function, route.split("?")[0], method)] = answer.status_code
        answers[("deliver", "/plan", "PUBSUB")] = api.push("deliver", pushed(queue, plan))
    finally:
        proxy.stop()

    assert {k: v for k, v in answers.items() if v != 503} == {}
    records = output.records()
    assert len(records) == len(answers)
    assert_contract(records, output, secrets)
    assert {r["fault"]["code"] for r in records} == {"store_unavailable"}


def test_a_queue_outage_is_a_fault_on_sends_and_delivers_record(
    api: Functions,
    queue: Fanout,
    fcm: LocalFcmServer,
    capsys: Any,
    caplog: pytest.LogCaptureFixture,
    rewired: pytest.MonkeyPatch,
) -> None:
    key, secrets = organization(api)
    api.post("/send", CONTENT, key=key)
    plan = pull(queue)  # its batches are published while the queue is out
    output = Output(capsys, caplog)
    rewire(
        rewired,
        PUBSUB_EMULATOR_HOST=f"127.0.0.1:{free_port()}",  # nothing listens: refused
        PUSH365_QUEUE_TIMEOUT_SECONDS="1",
    )

    sent = api.post("/send", CONTENT, key=key, headers={"Idempotency-Key": f"k-{CANARY}"})
    delivered = api.push("deliver", pushed(queue, plan))

    records = output.records()
    assert (sent.status_code, delivered) == (503, 503), records
    assert_contract(records, output, secrets)
    assert [(r["function"], r["fault"]["code"]) for r in records] == [
        ("send", "queue_unavailable"),
        ("deliver", "queue_unavailable"),
    ]


def test_a_duration_is_the_calls_own(
    api: Functions,
    queue: Fanout,
    fcm: LocalFcmServer,
    capsys: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key, _ = organization(api)
    api.post("/send", CONTENT, key=key)
    plan = pull(queue)
    output = Output(capsys, caplog)

    started = time.perf_counter()
    assert api.push("deliver", pushed(queue, plan)) == 200
    assert api.get("/send/stats", key=key).status_code == 200
    elapsed_ms = (time.perf_counter() - started) * 1000

    records = output.records()
    deliver, stats = records
    assert (deliver["function"], stats["function"]) == ("deliver", "send")
    assert deliver["duration_ms"] > 0
    assert stats["duration_ms"] > 0
    assert deliver["duration_ms"] + stats["duration_ms"] <= elapsed_ms + 1
