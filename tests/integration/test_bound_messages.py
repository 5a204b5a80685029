"""deliver acts only on messages bound to their stored notification, on the real emulators,
counted at the local FCM server: a forged or altered plan, batch or dead-letter copy with the
right ids changes nothing stored and sends nothing, and every malformed push is ``400
invalid_message`` in JSON (never a 500) with a bounded audit record of valid-shape fields."""

from __future__ import annotations

import base64
import json
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from devstack.fcm_server import LocalFcmServer
from push365.fanout.events import DEAD_LETTER_ATTRIBUTE
from tests.integration.conftest import (
    ALICE,
    BOB,
    ORG,
    Answer,
    Fanout,
    Functions,
    register,
    stored_state,
)

REAL_ONCE = Counter({("bob-1", "The real title"): 1, ("bob-2", "The real title"): 1})
INVALID = {"error": {"code": "invalid_message", "message": "Not a fan-out message."}}
MAX_AUDIT_LINE = 1024
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_NID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Sent:
    """A notification sent to two devices, its messages taken off the queue unhandled."""

    api: Functions
    queue: Fanout
    key: str
    nid: str
    plan: dict[str, Any]  # the Pub/Sub message of the plan
    batch: dict[str, Any] | None = None  # the Pub/Sub message of its batch, once planned

    def subscription(self, dead_letter: bool = False) -> str:
        topology = self.queue.topology
        name = topology.dead_letter_subscription if dead_letter else topology.subscription
        return f"projects/{topology.project}/subscriptions/{name}"

    def push(self, message: dict[str, Any], dead_letter: bool = False) -> Answer:
        body = {"message": message, "subscription": self.subscription(dead_letter)}
        return self.api.push_answer("deliver", body)

    def status(self) -> Any:
        return self.api.get("/send/status", key=self.key, query={"notification_id": self.nid}).json


def take(queue: Fanout) -> dict[str, Any]:
    """One message off the fan-out subscription, acknowledged there, not handled."""
    answer = queue._call(f"subscriptions/{queue.topology.subscription}:pull", maxMessages=1)
    (item,) = answer["receivedMessages"]
    queue._call(f"subscriptions/{queue.topology.subscription}:acknowledge", ackIds=[item["ackId"]])
    return dict(item["message"])


def data_of(message: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(message["data"]))  # type: ignore[no-any-return]


def with_data(message: dict[str, Any], data: dict[str, Any] | bytes) -> dict[str, Any]:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return {**message, "data": base64.b64encode(raw).decode()}


def dead_letter(message: dict[str, Any], sent: Sent) -> dict[str, Any]:
    attributes = {**message.get("attributes", {}), DEAD_LETTER_ATTRIBUTE: sent.subscription()}
    return {**message, "attributes": attributes}


def received(fcm: LocalFcmServer) -> Counter[tuple[str, str]]:
    """(token, title) of each message that reached the local FCM server."""
    return Counter(
        (m["token"], m["message"]["webpush"]["notification"]["title"]) for m in fcm.messages()
    )


@pytest.fixture
def sent(api: Functions, queue: Fanout) -> Sent:
    key = register(api)
    for token, user in (("bob-1", BOB), ("bob-2", BOB), ("alice-1", ALICE)):
        answer = api.post("/subscribe", {"user_id": user, "instance_id": token}, key=key)
        assert answer.status_code in (200, 201)
    body = {"recipients": [BOB], "title": "The real title", "body": "The real body"}
    accepted = api.post("/send", body, key=key)
    assert accepted.status_code == 202
    return Sent(api, queue, key, accepted.json["notification_id"], take(queue))


@pytest.fixture
def planned(sent: Sent) -> Sent:
    assert sent.push(sent.plan).status_code == 200
    sent.batch = take(sent.queue)
    return sent


def forged_content(data: dict[str, Any]) -> dict[str, Any]:
    return data | {"content": data["content"] | {"title": "FORGED", "body": "FORGED"}}


def new_seal() -> str:
    """A seal of the right shape that is not the notification's (a forger's own)."""
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def forged_with_own_seal(data: dict[str, Any]) -> dict[str, Any]:
    return forged_content(data) | {"seal": new_seal()}


def without_seal(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in forged_content(data).items() if k != "seal"}


def created_long_ago(data: dict[str, Any]) -> dict[str, Any]:
    # Past the retry horizon: the batch would give its devices up instead of sending them.
    moment = datetime.fromisoformat(data["created_at"]) - timedelta(days=2)
    return data | {"created_at": moment.isoformat()}


ALTERED_BATCHES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "other content, its seal": forged_content,
    "other content, another seal": forged_with_own_seal,
    "other content, no seal": without_seal,
    "its content, another creation time": created_long_ago,
}


@pytest.mark.parametrize("alter", ALTERED_BATCHES.values(), ids=ALTERED_BATCHES.keys())
def test_a_forged_or_altered_batch_message_sends_nothing_and_changes_nothing(
    planned: Sent, store: Any, fcm: LocalFcmServer, alter: Callable[[Any], Any]
) -> None:
    assert planned.batch is not None
    before = stored_state(store)

    refused = planned.push(with_data(planned.batch, alter(data_of(planned.batch))))

    assert (refused.status_code, refused.json) == (400, INVALID)
    assert fcm.messages() == []
    assert stored_state(store) == before
    # The genuine message still sends the real notification, once per device.
    assert planned.push(planned.batch).status_code == 200
    assert received(fcm) == Counter(
        {("bob-1", "The real title"): 1, ("bob-2", "The real title"): 1}
    )
    assert planned.status()["status"] == "sent"


def other_recipients(data: dict[str, Any]) -> dict[str, Any]:
    return data | {"recipients": [ALICE]}


ALTERED_PLANS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "other recipients": other_recipients,
    "other content, its seal": forged_content,
    "other content, another seal": forged_with_own_seal,
}


@pytest.mark.parametrize("alter", ALTERED_PLANS.values(), ids=ALTERED_PLANS.keys())
def test_a_forged_or_altered_plan_plans_nothing(
    sent: Sent, store: Any, fcm: LocalFcmServer, alter: Callable[[Any], Any]
) -> None:
    before = stored_state(store)

    refused = sent.push(with_data(sent.plan, alter(data_of(sent.plan))))

    assert (refused.status_code, refused.json) == (400, INVALID)
    assert stored_state(store) == before  # no batch stored, the record as it was
    sent.queue.deliver(quiet=0.5)
    assert fcm.messages() == []  # nothing was published either
    assert sent.push(sent.plan).status_code == 200
    sent.queue.deliver(until=lambda: sent.status()["status"] == "sent")
    assert received(fcm) == Counter(
        {("bob-1", "The real title"): 1, ("bob-2", "The real title"): 1}
    )


def test_a_forged_dead_letter_copy_of_a_plan_leaves_a_sent_notification_sent(
    sent: Sent, store: Any, fcm: LocalFcmServer, capsys: Any
) -> None:
    assert sent.push(sent.plan).status_code == 200
    sent.queue.deliver(until=lambda: sent.status()["status"] == "sent")
    finished = sent.status()
    before = stored_state(store)
    capsys.readouterr()

    forged = dead_letter(with_data(sent.plan, forged_with_own_seal(data_of(sent.plan))), sent)
    answered = sent.push(forged, dead_letter=True)

    # Acknowledged (the dead-letter subscription would hand it back for hours), not acted on.
    assert answered.status_code == 200
    assert sent.status() == finished
    assert finished["status"] == "sent"
    assert stored_state(store) == before
    (record,) = deliver_records(capsys)
    assert (record["route"], record["fault"]["code"]) == ("/plan/dead-letter", "invalid_message")


def test_a_forged_dead_letter_copy_of_a_batch_fails_none_of_its_devices(
    planned: Sent, store: Any, fcm: LocalFcmServer
) -> None:
    assert planned.batch is not None
    before = stored_state(store)

    forged = dead_letter(with_data(planned.batch, forged_content(data_of(planned.batch))), planned)
    assert planned.push(forged, dead_letter=True).status_code == 200

    assert stored_state(store) == before
    assert planned.status()["counts"]["failed"] == 0
    assert planned.push(planned.batch).status_code == 200
    final = planned.status()
    assert (final["status"], final["counts"]["sent"], final["counts"]["failed"]) == ("sent", 2, 0)
    assert len(fcm.messages()) == 2


def test_a_genuine_dead_letter_copy_is_still_recorded(planned: Sent, fcm: LocalFcmServer) -> None:
    assert planned.batch is not None

    answered = planned.push(dead_letter(planned.batch, planned), dead_letter=True)

    assert answered.status_code == 200
    final = planned.status()
    assert (final["status"], final["counts"]["failed"], final["counts"]["dead_lettered"]) == (
        "sent",
        2,
        1,
    )
    assert fcm.messages() == []


def test_a_replay_of_a_send_whose_plan_never_reached_the_queue_binds_its_own_content(
    api: Functions, queue: Fanout, store: Any, fcm: LocalFcmServer
) -> None:
    key = register(api)
    api.post("/subscribe", {"user_id": BOB, "instance_id": "bob-1"}, key=key)
    body = {"recipients": [BOB], "title": "Once", "body": "b"}
    headers = {"Idempotency-Key": "order-4711"}
    first = api.post("/send", body, key=key, headers=headers)
    nid = first.json["notification_id"]
    lost = take(queue)  # as if its publish had timed out after Pub/Sub stored the message
    # ... so the record stayed accepted, without published_at (and the first request is over).
    record = store.collection("organizations", ORG, "notifications").document(nid)
    created = record.get().get("created_at")
    record.update({"published_at": None, "created_at": created - timedelta(minutes=1)})
    assert status_of(api, key, nid) == "accepted"

    again = api.post("/send", body, key=key, headers=headers)
    queue.deliver(until=lambda: status_of(api, key, nid) == "sent")
    late = api.push_answer(
        "deliver",
        {"message": lost, "subscription": "projects/p/subscriptions/push365-deliver"},
    )

    assert (again.status_code, again.json["notification_id"]) == (202, nid)
    assert (late.status_code, late.json) == (400, INVALID)  # the replay bound its own seal
    assert received(fcm) == Counter({("bob-1", "Once"): 1})


def status_of(api: Functions, key: str, nid: str) -> str:
    return str(api.get("/send/status", key=key, query={"notification_id": nid}).json["status"])


# Every body below is refused with 400 invalid_message, whatever layer refuses it: the push
# body, the message's data, or its ids. Bodies are raw bytes where JSON could not be written by
# json.dumps (a lone surrogate, nesting deeper than Python's parser).
DEEP = 10_000
HUGE_ID = ("a\r\n" * 70_000)[:200_000]


def raw(text: str) -> bytes:
    return text.encode()


def push_body(message: dict[str, Any], subscription: str = "projects/p/subscriptions/s") -> bytes:
    return json.dumps({"message": message, "subscription": subscription}).encode()


def data_body(batch: dict[str, Any], data: bytes) -> bytes:
    return push_body(with_data(batch, data))


def field_body(message: dict[str, Any], /, **changes: Any) -> bytes:
    return data_body(message, json.dumps(data_of(message) | changes).encode())


def without(batch: dict[str, Any], name: str) -> bytes:
    data = {k: v for k, v in data_of(batch).items() if k != name}
    return data_body(batch, json.dumps(data).encode())


MALFORMED: dict[str, Callable[[dict[str, Any], dict[str, Any]], bytes]] = {
    # The push body itself.
    "top-level array": lambda b, p: b"[]",
    "top-level array of a push": lambda b, p: b"[" + push_body(b) + b"]",
    "top-level string": lambda b, p: b'"x"',
    "top-level number": lambda b, p: b"1",
    "top-level null": lambda b, p: b"null",
    "empty object": lambda b, p: b"{}",
    "not JSON": lambda b, p: b"{not json",
    "10,000-deep nesting": lambda b, p: b"[" * DEEP + b"]" * DEEP,
    "10,000-deep attributes": lambda b, p: raw(
        '{"message": {"data": "", "messageId": "1", "attributes": {"a": '
        + "[" * DEEP
        + "]" * DEEP
        + '}}, "subscription": "s"}'
    ),
    "message a string": lambda b, p: json.dumps({"message": "x", "subscription": "s"}).encode(),
    "no messageId": lambda b, p: json.dumps(
        {"message": {"data": b["data"]}, "subscription": "s"}
    ).encode(),
    "an attribute not text": lambda b, p: push_body(b | {"attributes": {"kind": 1}}),
    "a lone surrogate in the push": lambda b, p: raw(
        '{"message": {"data": "e30=", "messageId": "\\ud800"}, "subscription": "s"}'
    ),
    "a background event": lambda b, p: json.dumps(
        {"context": {}, "data": {}, "message": b, "subscription": "s"}
    ).encode(),
    "data not base64": lambda b, p: push_body(b | {"data": "!!not base64!!"}),
    "data over a megabyte": lambda b, p: push_body(b | {"data": "QUFB" * 300_000}),
    # The message's data.
    "data a top-level array": lambda b, p: data_body(b, b"[]"),
    "data a top-level string": lambda b, p: data_body(b, b'"batch"'),
    "data 10,000-deep": lambda b, p: data_body(b, b"[" * DEEP + b"]" * DEEP),
    "data not UTF-8": lambda b, p: data_body(b, b"\xff\xfe{}"),
    "data with a lone surrogate": lambda b, p: data_body(
        b, raw(json.dumps(data_of(b))[:-1] + ', "x": "\\udc00"}')
    ),
    "an extra field": lambda b, p: field_body(b, extra="x"),
    "no content": lambda b, p: without(b, "content"),
    "an unknown kind": lambda b, p: field_body(b, kind="purge"),
    # Ids of another shape than send makes.
    'organization ""': lambda b, p: field_body(b, organization_id=""),
    'organization "/"': lambda b, p: field_body(b, organization_id="/"),
    'organization "a/b"': lambda b, p: field_body(b, organization_id="a/b"),
    'organization "__x__"': lambda b, p: field_body(b, organization_id="__x__"),
    "organization in upper case": lambda b, p: field_body(b, organization_id=ORG.upper()),
    'notification ""': lambda b, p: field_body(b, notification_id=""),
    'notification "/"': lambda b, p: field_body(b, notification_id="/"),
    'notification "a/b"': lambda b, p: field_body(b, notification_id="a/b"),
    'notification "__x__"': lambda b, p: field_body(b, notification_id="__x__"),
    "notification of 200,000 characters with CR/LF": lambda b, p: field_body(
        b, notification_id=HUGE_ID
    ),
    "notification with a lone surrogate": lambda b, p: data_body(
        b, raw(json.dumps(data_of(b) | {"notification_id": "@"}).replace('"@"', '"\\ud800"'))
    ),
    "batch -1": lambda b, p: field_body(b, batch=-1),
    "batch 10**12": lambda b, p: field_body(b, batch=10**12),
    'batch "0"': lambda b, p: field_body(b, batch="0"),
    "batch with recipients": lambda b, p: field_body(b, recipients=[BOB]),
    "plan without recipients": lambda b, p: field_body(p, recipients=[]),
    "plan with a batch": lambda b, p: field_body(p, batch=0),
    "plan to a recipient of another shape": lambda b, p: field_body(p, recipients=["../x"]),
    "a seal of another shape": lambda b, p: field_body(b, seal="short"),
    "a creation time without a zone": lambda b, p: field_body(
        b, created_at=data_of(b)["created_at"][:19]
    ),
}


def test_every_malformed_push_is_400_invalid_message_never_500_with_a_bounded_audit_record(
    planned: Sent, store: Any, fcm: LocalFcmServer, capsys: Any
) -> None:
    assert planned.batch is not None
    before = stored_state(store)
    capsys.readouterr()
    answers: dict[str, tuple[int, Any]] = {}
    records: dict[str, list[tuple[str, dict[str, Any]]]] = {}

    for name, make in MALFORMED.items():
        body = make(planned.batch, planned.plan)
        answer = planned.api.post("/deliver/", data=body)
        answers[name] = (answer.status_code, answer.json)
        records[name] = deliver_lines(capsys)

    assert len(MALFORMED) >= 24
    assert {n: a for n, a in answers.items() if a != (400, INVALID)} == {}
    for name, lines in records.items():
        (line, record) = one(lines, name)
        assert len(line) <= MAX_AUDIT_LINE, name
        assert not re.search(r"\\[rn]|\\ud[89a-f]", line), name
        assert record["status"] == 400, name
        assert record["fault"]["code"] == "invalid_message", name
        assert record["route"] in ("(unknown)", "/plan", "/batch"), name
        assert _GUID.match(record.get("organization_id", ORG)), name
        assert _NID.match(record.get("notification_id", "0" * 32)), name
    assert fcm.messages() == []
    assert stored_state(store) == before


def one(lines: list[tuple[str, dict[str, Any]]], name: str) -> tuple[str, dict[str, Any]]:
    assert len(lines) == 1, f"{name}: {len(lines)} audit records"
    return lines[0]


def deliver_lines(capsys: Any) -> list[tuple[str, dict[str, Any]]]:
    """deliver's audit records written since the last read: (the line as written, its JSON)."""
    found = []
    for line in capsys.readouterr().out.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("event") == "api_call" and record.get("function") == "deliver":
            found.append((line, record))
    return found


def deliver_records(capsys: Any) -> list[dict[str, Any]]:
    return [record for _, record in deliver_lines(capsys)]
