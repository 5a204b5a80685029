"""Hostile input against the local stack: every function behind the gateway (``python -m
devstack.gateway``, the functions exactly as ``make dev`` serves them) over the real Firestore
and Pub/Sub emulators.

A seeded generator makes some hundreds of requests an attacker would: bodies nested thousands
deep (Dataverse-shaped too), not JSON, not UTF-8, not objects, NaN, oversized, mistyped, wrong
content types, broken chunked bodies, request lines and headers too long, too many headers,
unknown paths (``/robots.txt``, ``/favicon.ico``, encoded CR/LF), unknown methods, and Dataverse
message and table names and trace headers at any length. Each carries a canary. Then a burst
past one route's quota (429 with Retry-After).

Every answer must be below 500 and JSON from the error table (a 204 has no body), no answer may
echo the canary, and after the run neither anything the process wrote nor any document in
Firestore may hold it. The run prints
``RESULT hostile requests=N 5xx=0 non_json=0 echoes=0 canary_hits=0`` in the terminal summary.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devstack import fanout
from devstack.emulator import FirestoreEmulator, PubSubEmulator
from push365.quotas import QUOTA_CLASSES
from tests.conftest import FANOUT_TOPIC, PROJECT, RESULT_PROPERTY, TEST_ADMIN_KEY, fanout_topology
from tests.integration.conftest import BOB, ORG, all_documents, registration
from tests.stack import RunningStack, call, running_gateway, signup

CANARY = "HOSTILE-CANARY-7f3e"
SEED = 365
WRONG_KEY = f"p365.{ORG}.{'A' * 43}"


@dataclass
class Target:
    gateway: RunningStack
    key: str
    outbox: Path


@dataclass
class Tally:
    requests: int = 0
    server_errors: list[str] = field(default_factory=list)
    non_json: list[str] = field(default_factory=list)
    echoes: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def target(
    emulator: FirestoreEmulator,
    pubsub: PubSubEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Target]:
    emulator.reset(PROJECT)
    fanout.create(pubsub.address, fanout_topology())
    outbox = tmp_path_factory.mktemp("outbox")
    env = {
        "FIRESTORE_EMULATOR_HOST": emulator.address,
        "PUBSUB_EMULATOR_HOST": pubsub.address,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "PUSH365_FANOUT_TOPIC": FANOUT_TOPIC,
        "PUSH365_ADMIN_KEY": TEST_ADMIN_KEY,
        "PUSH365_MAIL_BACKEND": "outbox",
        "PUSH365_OUTBOX_DIR": str(outbox),
    }
    try:
        with running_gateway(tmp_path_factory.mktemp("hostile"), **env) as gateway:
            code = signup(gateway.base, ORG, TEST_ADMIN_KEY)
            status, created = call(f"{gateway.base}/register", registration(), headers=code)
            assert status == 201, created
            key = created["api_key"]
            auth = {"X-Push365-Key": key}
            device = {"user_id": BOB, "instance_id": "hostile-device-0001"}
            assert call(f"{gateway.base}/subscribe", device, headers=auth)[0] == 201
            yield Target(gateway, key, outbox)
    finally:
        emulator.reset(PROJECT)


# (method, path, authenticated with the real key: routes whose valid call changes the key or
# erases the organization are called with a wrong key)
ROUTES = [
    ("POST", "/register", False),
    ("POST", "/register/users", True),
    ("POST", "/register/rotate-key", False),
    ("POST", "/register/revoke-previous-key", False),
    ("POST", "/register/rules", True),
    ("GET", "/register/rules", True),
    ("POST", "/register/rules/preview", True),
    ("POST", "/register/signup-codes", False),
    ("GET", "/register/confirm-email", False),
    ("POST", "/subscribe", True),
    ("POST", "/unsubscribe", True),
    ("POST", "/send", True),
    ("GET", "/send/status", True),
    ("GET", "/send/stats", True),
    ("POST", "/receipt", False),
    ("POST", "/purge", False),
    ("GET", "/privacy/export", True),
    ("POST", "/privacy/erase", False),
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    None,
]


def _deep(depth: int, dataverse: bool) -> bytes:
    inner = "[" * depth + json.dumps(CANARY) + "]" * depth
    if not dataverse:
        return ('{"user_id": ' + inner + "}").encode()
    return (
        f'{{"OrganizationId": "{ORG}", "MessageName": "Create", '
        f'"PrimaryEntityName": "p365_notification", "Depth": 1, '
        f'"InputParameters": [{{"key": "Target", "value": {inner}}}]}}'
    ).encode()


def _dataverse_names(random_: random.Random) -> bytes:
    repeat = random_.choice([1, 10, 400])
    body = {
        "OrganizationId": ORG,
        "MessageName": f"{CANARY}\r\n" * repeat,
        "PrimaryEntityName": CANARY * repeat,
        "PrimaryEntityId": "0dd00000-0000-4000-8000-000000000042",
        "Stage": 40,
        "Depth": 1,
        "InputParameters": [
            {"key": "Target", "value": {"LogicalName": CANARY, "Attributes": [], "Id": CANARY}}
        ],
        "InitiatingUserId": BOB,
        "UserId": BOB,
    }
    return json.dumps(body).encode()


def _bodies(random_: random.Random) -> list[bytes]:
    return [
        _deep(random_.choice([33, 200, 1000, 20000]), dataverse=False),
        _deep(random_.choice([40, 600, 5000]), dataverse=True),
        _dataverse_names(random_),
        f"{CANARY} is not JSON {{".encode(),
        b"\xff\xfe\x00" + CANARY.encode(),
        json.dumps([CANARY]).encode(),
        f'{{"a": NaN, "b": "{CANARY}"}}'.encode(),
        json.dumps({"title": CANARY * 20000}).encode(),  # over 256 KB
        json.dumps({"recipients": CANARY, "title": {"x": CANARY}, "users": CANARY}).encode(),
        json.dumps({"user_id": CANARY * 500, "instance_id": 7, "receipt": CANARY}).encode(),
        json.dumps({"organization_id": CANARY, "rules": [{"table": CANARY}]}).encode(),
        b"",
    ]


def _request(
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    chunked_broken: bool = False,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if chunked_broken:
        lines.append("Transfer-Encoding: chunked")
        payload = f"zz{CANARY}\r\n{CANARY}\r\n0\r\n\r\n".encode()
    else:
        payload = body or b""
        if body is not None:
            lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def _plan(key: str) -> list[tuple[str, bytes]]:
    """Every hostile request, as (what it is, raw bytes), in a seeded order."""
    random_ = random.Random(SEED)
    plan: list[tuple[str, bytes]] = []
    for method, path, authenticated in ROUTES:
        auth = {"X-Push365-Key": key if authenticated else WRONG_KEY}
        for number, body in enumerate(_bodies(random_) + _bodies(random_)):
            content_type = random_.choice(CONTENT_TYPES[:2] * 3 + CONTENT_TYPES[2:])
            headers = dict(auth)
            if content_type:
                headers["Content-Type"] = content_type
            if random_.random() < 0.3:
                headers["X-Cloud-Trace-Context"] = f"{CANARY * random_.choice([1, 50])}/1;o=1"
            if random_.random() < 0.2:
                headers["traceparent"] = f"00-{CANARY}-{CANARY}-01"
            if random_.random() < 0.2:
                headers["Idempotency-Key"] = CANARY * 20  # over 255: refused, never stored
            plan.append((f"{method} {path} body {number}", _request("POST", path, headers, body)))
        query = f"?code={CANARY}&notification_id={CANARY}&days={CANARY}&user_id={CANARY}"
        plan.append((f"GET {path} query", _request("GET", path + query, auth, None)))
        plan.append((f"token {path}", _request("GET", f"{path}?token={CANARY * 30}", {}, None)))
        for other in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"):
            plan.append((f"{other} {path}", _request(other, path, auth, b"{}")))
        broken = {**auth, "Content-Type": "application/json"}
        plan.append((f"chunked {path}", _request("POST", path, broken, None, chunked_broken=True)))
        function = path.split("/")[1]
        for odd in ("robots.txt", "favicon.ico", CANARY, f"%0d%0a{CANARY}", f"x/../{CANARY}"):
            plan.append(
                (f"path /{function}/{odd}", _request("GET", f"/{function}/{odd}", {}, None))
            )
    plan.append(("unknown function", _request("GET", f"/{CANARY}", {}, None)))
    plan.append(("root", _request("GET", "/", {}, None)))
    plan.append(("long line", _request("GET", f"/send/{CANARY * 4000}", {}, None)))
    plan.append(("huge header", _request("GET", "/send/status", {"X-Big": CANARY * 4000}, None)))
    many = {f"X-{n}": CANARY for n in range(120)}
    plan.append(("many headers", _request("GET", "/send/status", many, None)))
    plan.append(("garbage", f"{CANARY}\r\n\r\n".encode()))
    plan.append(("bad version", f"GET /send HTTP/9.{CANARY}\r\n\r\n".encode()))
    random_.shuffle(plan)
    return plan


def _exchange(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        with contextlib.suppress(OSError):  # it may answer and close before reading it all
            connection.sendall(raw)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _check(what: str, answer: bytes, tally: Tally) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ")[1]) if status_line.startswith("HTTP/") else 0
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in header_lines)
    }
    if CANARY.encode() in answer:
        tally.echoes.append(what)
    if status >= 500 or status == 0:
        tally.server_errors.append(f"{what}: {status}")
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    if status == 204 and not body:
        return
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    if "/register/confirm-email" in what and headers.get("content-type", "").startswith(
        "text/html"
    ):
        # the page a mailed link opens (and, after a form post, its outcome): fixed texts
        if b"<script" in body or status not in (200, 404):
            tally.non_json.append(f"{what}: {status} (page)")
        return
    if not headers.get("content-type", "").startswith("application/json") or (
        status >= 400 and not (isinstance(decoded, dict) and "error" in decoded)
    ):
        tally.non_json.append(f"{what}: {status}")


def _dechunk(body: bytes) -> bytes:
    decoded = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        decoded, body = decoded + body[:size], body[size + 2 :]
    return decoded


def test_hostile_requests_get_json_4xx_and_leave_no_trace(
    target: Target, record_property: Any
) -> None:
    plan = _plan(target.key)
    tally = Tally(requests=len(plan))
    port = target.gateway.ports["http"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda item: _exchange(port, item[1]), plan))
    for (what, _), answer in zip(plan, answers, strict=True):
        _check(what, answer, tally)
    time.sleep(0.5)  # let the process finish writing its last records
    output_hits = target.gateway.output().count(CANARY)
    store_hits = sum(
        repr(fields).count(CANARY) + path.count(CANARY) for path, fields in _documents()
    )

    line = (
        f"RESULT hostile requests={tally.requests} 5xx={len(tally.server_errors)} "
        f"non_json={len(tally.non_json)} echoes={len(tally.echoes)} "
        f"canary_hits={output_hits + store_hits}"
    )
    record_property(RESULT_PROPERTY, line)
    print(line)
    assert tally.requests >= 500
    assert tally.server_errors == []
    assert tally.non_json == []
    assert tally.echoes == []
    output = target.gateway.output()
    assert output_hits == 0, output[max(0, output.find(CANARY) - 600) :][:1200]
    assert store_hits == 0, [path for path, fields in _documents() if CANARY in repr(fields)]


def _documents() -> list[tuple[str, dict[str, Any]]]:
    from push365.store import firestore_client

    return all_documents(firestore_client())


LONG_NAME = "unknownfunctionname" * 3000  # 57,000 characters a name could have: [a-z]


def _timed(port: int, head: str) -> tuple[float, int, Any]:
    """Send only a request's head (no body, the connection left open) and read the answer:
    (seconds it took, status, JSON body)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head.encode("latin-1"))
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    answered, _, body = answer.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in answered.lower():
        body = _dechunk(body)
    status = int(answered.split(b" ", 2)[1])
    return time.monotonic() - started, status, json.loads(body)


def test_absurd_framing_is_refused_at_once_and_unknown_names_are_logged_bounded(
    target: Target,
) -> None:
    port = target.gateway.ports["http"]
    post = "POST /send HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    auth = f"X-Push365-Key: {target.key}\r\n"
    framings = {
        "Content-Length: 99999999999999999999999\r\n": 413,
        "Content-Length: 2000000\r\n": 413,
        f"Content-Length: {'9' * 5000}\r\n": 413,
        "Content-Length: -1\r\n": 400,
        "Content-Length: 12abc\r\n": 400,
        "Content-Length: 5\r\nContent-Length: 6\r\n": 400,
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n": 400,
        "Transfer-Encoding: gzip\r\n": 400,
    }

    answers = {framing: _timed(port, post + auth + framing + "\r\n") for framing in framings}
    unknown = _timed(port, f"GET /{LONG_NAME} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")

    for framing, (seconds, status, body) in answers.items():
        assert status == framings[framing], framing
        assert body["error"]["code"] == ("payload_too_large" if status == 413 else "bad_request")
        assert seconds < 2.0, framing  # answered at once: the body it announced is never read
    assert (unknown[1], unknown[2]["error"]["code"]) == (404, "not_found")
    time.sleep(0.3)
    output = target.gateway.output()
    assert "unknownfunctionname" not in output
    gateway_lines = [line for line in output.splitlines() if " devstack " in line]
    assert gateway_lines
    assert max(len(line) for line in gateway_lines) < 200
    # a request without any framing is one without a body, as curl -X POST sends it: it reaches
    # the function (here: refused for its wrong key)
    wrong = f"X-Push365-Key: {WRONG_KEY}\r\n"
    no_body = _timed(port, f"POST /register/rotate-key HTTP/1.1\r\nHost: x\r\n{wrong}\r\n")
    assert no_body[1:] == (401, {"error": no_body[2]["error"]})
    assert no_body[2]["error"]["code"] == "unauthorized"


def test_a_public_id_a_leaked_key_and_a_neighbours_token_get_nowhere(target: Target) -> None:
    """Issue 27's abuses through the gateway: a lockout by code-less registrations of a public
    organization id, the takeover by a leaked key rotated away, a neighbour's browser token."""
    base = target.gateway.base
    other = "9e8d7c6b-5a49-4382-9716-05f4e3d2c1b0"

    noise = [call(f"{base}/register", registration(other))[0] for _ in range(11)]
    code = signup(base, other, TEST_ADMIN_KEY)
    created, registered = call(f"{base}/register", registration(other), headers=code)
    leaked = {"X-Push365-Key": registered["api_key"]}
    rotated = call(f"{base}/register/rotate-key", {}, headers=leaked)[1]["api_key"]
    takeover = call(f"{base}/register/rotate-key", {"overlap_hours": 0}, headers=leaked)
    erase = call(f"{base}/privacy/erase", {"organization": True}, headers=leaked)
    current = {"X-Push365-Key": rotated}
    neighbours = {"user_id": BOB, "instance_id": "hostile-device-0001"}  # the target's browser
    taken = call(f"{base}/subscribe", neighbours, headers=current)

    assert noise == [401] * 10 + [429]
    assert created == 201
    assert [takeover[0], erase[0]] == [403, 403]
    assert takeover[1]["error"]["code"] == erase[1]["error"]["code"] == "current_key_required"
    assert call(f"{base}/register/rules", headers=current)[0] == 200  # the current key still works
    assert (taken[0], taken[1]["error"]["code"]) == (409, "token_held")
    assert ORG not in json.dumps(taken[1])
    assert call(f"{base}/privacy/erase", {"organization": True}, headers=current)[0] == 200


BAIT = "BAIT-5d2c Claim your prize"


def test_mail_cannot_be_aimed(target: Target, record_property: Any) -> None:
    """Issue 27, item 3: a key holder sends 20 administrator updates of 50 new addresses each
    (1,000 confirmation requests aimed at strangers), 4 at a time, under a name that is a lure.
    At most the daily cap is mailed (counted in Firestore: the concurrent requests share it),
    every update succeeds and says by count how many were not mailed, no subject and no mail to
    a stranger carries the lure, and opening a mailed link confirms nothing: its page's button
    (a POST) does."""
    base = target.gateway.base
    org = "5a1d0c9b-8e7f-4a6b-9c5d-4e3f2a1b0c9d"
    code = signup(base, org, TEST_ADMIN_KEY)
    body = registration(org)
    body["organization"]["name"] = BAIT
    status, created = call(f"{base}/register", body, headers=code)
    assert status == 201, created
    auth = {"X-Push365-Key": created["api_key"]}
    (asked,) = [m for m in _outbox(target) if org in m["text"]]  # ada, at the creation
    link = asked["text"].split("Link: ", 1)[1].split()[0]
    page = base + "/register" + link.split("/register", 1)[1]

    opened = [_page(page, "GET") for _ in range(3)]  # a mail scanner, a preview, a person
    confirmed_before = _confirmed(org)
    pressed = _page(page, "POST")  # the page's button

    assert [status for status, _ in opened] == [200] * 3
    assert "<form method='post'>" in opened[0][1]
    assert confirmed_before == []
    assert pressed[0] == 200
    assert _confirmed(org) == ["ada@contoso.com"]

    updates = [
        body | {"admins": [{"email": f"stranger-{u}-{n}@target.test"} for n in range(50)]}
        for u in range(20)
    ]
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda b: call(f"{base}/register", b, headers=auth), updates))
    seconds = time.monotonic() - started

    assert [status for status, _ in answers] == [200] * 20
    sent = sum(answer["confirmation_mails"]["sent"] for _, answer in answers)
    not_sent = sum(answer["confirmation_mails"]["not_sent"] for _, answer in answers)
    assert (sent, not_sent) == (100 - 1, 1000 - 99)  # the daily cap; the creation asked ada
    assert all("target.test" not in json.dumps(answer) for _, answer in answers)
    mails = _outbox(target)
    strangers = [m for m in mails if m["to"][0].startswith("stranger-")]
    assert len(strangers) == sent
    assert all(m["subject"] == "Push365: confirm your address" for m in strangers)
    assert not [m for m in mails if BAIT in m["subject"]]
    assert not [m for m in strangers if BAIT in m["text"] + m["html"]]
    line = f"RESULT mail_abuse attempted=1000 mailed={len(strangers)} seconds={seconds:.1f}"
    record_property(RESULT_PROPERTY, line)
    print(line)


def _outbox(target: Target) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(target.outbox.glob("*.json"))]


def _page(url: str, method: str) -> tuple[int, str]:
    """A browser's request for the confirmation page (GET) or its button's form post (POST)."""
    import urllib.request

    data = b"" if method == "POST" else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/html")
        return response.status, response.read().decode()


def _confirmed(org: str) -> list[str]:
    from push365.store import firestore_client

    snapshot = firestore_client().collection("organizations").document(org).get()
    return list((snapshot.to_dict() or {}).get("confirmed_emails") or [])


def _answer(url: str, headers: dict[str, str]) -> tuple[int, Any, str | None]:
    """A GET: its status, JSON answer and Retry-After header."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), response.headers["Retry-After"]
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers["Retry-After"]


def test_a_burst_past_a_routes_quota_is_refused_with_retry_after(target: Target) -> None:
    """Issue 27 item 4 through the gateway: an organization's burst on one route past its quota
    (README "Quotas"; the deployed limits) gets 429 quota_exceeded with Retry-After, the rest of
    its window; another organization's calls of the route still pass."""
    base = target.gateway.base
    third = "5c4b3a29-1807-4f6e-9d5c-4b3a29180716"
    code = signup(base, third, TEST_ADMIN_KEY)
    created = call(f"{base}/register", registration(third), headers=code)[1]
    mine = {"X-Push365-Key": created["api_key"], "X-Echo": CANARY}
    limit = QUOTA_CLASSES["read"].per_minute
    if time.time() % 60 > 40:  # a burst within one minute's window
        time.sleep(60.5 - time.time() % 60)

    with ThreadPoolExecutor(8) as pool:
        burst = list(pool.map(lambda _: _answer(f"{base}/register/rules", mine), range(limit + 15)))
    neighbour = _answer(f"{base}/register/rules", {"X-Push365-Key": target.key})

    statuses = Counter(status for status, _, _ in burst)
    assert statuses == {200: limit, 429: 15}
    refused = [(body, after) for status, body, after in burst if status == 429]
    assert {body["error"]["code"] for body, _ in refused} == {"quota_exceeded"}
    assert all(after is not None and 1 <= int(after) <= 60 for _, after in refused)
    assert CANARY not in json.dumps(refused)
    assert neighbour[0] == 200
