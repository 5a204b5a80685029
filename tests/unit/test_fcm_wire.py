"""``FcmHttpGateway`` against firebase-admin's own ``send_each`` (``FirebaseGateway``), both sending
to the real local FCM v1 server on loopback: the same JSON and headers on the wire, the same result
for every error FCM answers, and what a timeout or a refused connection gives."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import pytest

from devstack.fcm_server import ANSWER_CODINGS, LocalFcmServer
from push365.fcm import body as fcm_body
from push365.fcm import firebase
from push365.fcm import pool as fcm_pool
from push365.fcm.firebase import FirebaseGateway
from push365.fcm.http import FcmHttpGateway
from push365.fcm.model import Outcome, PushMessage, SendResult, TokenKind, WebPush
from tests.conftest import PROJECT, free_port

TIMEOUT = 1.0
# Headers each HTTP client sets its own way (requests: "python-requests/..." and an explicit
# "Connection: keep-alive"); every other header, Accept and Accept-Encoding included, is identical.
TRANSPORT_HEADERS = {"host", "user-agent", "connection"}

PUSHES = {
    "plain": WebPush(title="Case escalated", body="CAS-1 needs you"),
    "full": WebPush(
        title="Case escalated",
        body="CAS-1 needs you — ünïcödé ✓",
        link="https://example.crm.dynamics.com/main.aspx?etn=incident&id=1",
        icon="https://example.test/icon.png",
        data={"notification_id": "n-1", "receipt_url": "https://example.test/receipt"},
        ttl_seconds=3600,
        urgency="high",
        collapse_key="n-1",
    ),
    "ttl-zero": WebPush(title="T", body="B", ttl_seconds=0, urgency="very-low"),
    "link-only": WebPush(title="T", body="B", link="https://example.test/x?a=1&b=2"),
    "collapse-only": WebPush(title="T", body="B", collapse_key="n-2", data={"k": "v"}),
}

# Every error class the local server can answer, by token prefix.
ERROR_TOKENS = [
    "unregistered-1",
    "invalid-1",
    "badarg-1",
    "quota-1",
    "unavailable-1",
    "internal-1",
    "mismatch-1",
    "thirdparty-1",
    "notfound-1",
    "exhausted-1",
    "teapot-1",
]


@pytest.fixture(scope="module")
def server() -> Iterator[LocalFcmServer]:
    instance = LocalFcmServer(free_port(), record_wire=True)
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def fcm(server: LocalFcmServer) -> Iterator[LocalFcmServer]:
    server.clear()
    server.reset_control()
    yield server
    server.reset_control()
    server.clear()


@pytest.fixture
def sdk(server: LocalFcmServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FirebaseGateway]:
    """firebase-admin's own send_each, in an app of this test's own (not the functions' one)."""
    import firebase_admin

    name = f"push365-wire-{time.monotonic_ns()}"
    monkeypatch.setattr(firebase, "APP_NAME", name)
    gateway = FirebaseGateway(PROJECT, server.url, http_timeout_seconds=TIMEOUT)
    yield gateway
    if name in firebase_admin._apps:
        # delete_app closes its async client with asyncio.run(), which refuses to run in a thread
        # that has an event loop running (the browser tests' Playwright leaves one): its own thread.
        closing = threading.Thread(
            target=firebase_admin.delete_app, args=(firebase_admin.get_app(name),)
        )
        closing.start()
        closing.join(timeout=30)


@pytest.fixture
def gateway(server: LocalFcmServer) -> Iterator[FcmHttpGateway]:
    instance = FcmHttpGateway(PROJECT, server.url, http_timeout_seconds=TIMEOUT, pool_size=4)
    yield instance
    instance.close()


def wire(fcm: LocalFcmServer, send: Any, messages: Sequence[PushMessage]) -> dict[str, Any]:
    """What the server received for each token: the raw body and the non-transport headers."""
    fcm.clear()
    send(messages)
    received = {}
    for entry in fcm.messages():
        headers = {k.lower(): v for k, v in entry["headers"] if k.lower() not in TRANSPORT_HEADERS}
        received[entry["token"]] = {"body": entry["body"], "headers": headers}
    return received


def test_the_wire_is_firebase_admins(
    fcm: LocalFcmServer, sdk: FirebaseGateway, gateway: FcmHttpGateway
) -> None:
    messages = [
        PushMessage(f"token-{name}-{n}", push, device_data)
        for name, push in PUSHES.items()
        for n, device_data in enumerate([{}, {"delivery_id": "d-1"}])
    ]

    expected = wire(fcm, sdk.send_batch, messages)
    actual = wire(fcm, gateway.send_batch, messages)

    assert len(expected) == len(messages)
    assert actual == expected
    some = expected["token-full-1"]
    assert json.loads(some["body"])["message"]["webpush"]["headers"]["Topic"] == "n-1"
    assert some["headers"]["x-goog-api-format-version"] == "2"
    assert some["headers"]["x-firebase-client"].startswith("fire-admin-python/")
    assert "authorization" not in some["headers"]  # a local server is reached without credentials


def test_a_batch_of_one_push_to_many_devices_is_firebase_admins_on_the_wire(
    fcm: LocalFcmServer, sdk: FirebaseGateway, gateway: FcmHttpGateway
) -> None:
    # A batch as deliver sends it: one push, each device its own token, kind and receipt.
    messages = [
        PushMessage(
            f"token-{name}-{n}",
            push,
            {"notification_id": "n-1", "receipt": f"r-{n}"} if n % 3 else {},
            TokenKind.INSTALLATION_ID if n % 4 == 1 else TokenKind.REGISTRATION_TOKEN,
        )
        for name, push in PUSHES.items()
        for n in range(6)
    ]

    expected = wire(fcm, sdk.send_batch, messages)
    actual = wire(fcm, gateway.send_batch, messages)

    assert len(expected) == len(messages)
    assert actual == expected


def test_a_batch_with_an_empty_token_is_refused_as_firebase_admin_refuses_it(
    fcm: LocalFcmServer, sdk: FirebaseGateway, gateway: FcmHttpGateway
) -> None:
    messages = [PushMessage("token-ok", PUSHES["plain"]), PushMessage("", PUSHES["plain"])]

    with pytest.raises(ValueError, match="non-empty"):
        sdk.send_batch(messages)
    with pytest.raises(ValueError, match="non-empty"):
        gateway.send_batch(messages)
    assert fcm.messages() == []  # nothing was sent


def test_every_fcm_error_is_classified_as_firebase_admin_does(
    fcm: LocalFcmServer, sdk: FirebaseGateway, gateway: FcmHttpGateway
) -> None:
    messages = [PushMessage(token, PUSHES["full"]) for token in ["ok-1", *ERROR_TOKENS]]

    actual = gateway.send_batch(messages)
    # A 401 makes firebase-admin's AuthorizedSession try to refresh the credentials, which a local
    # (anonymous) app cannot: the whole send_each fails. Its answer is compared one by one below.
    expected = sdk.send_batch([m for m in messages if not m.token.startswith("thirdparty-")])

    by_token = {m.token: r for m, r in zip(messages, actual, strict=True)}
    assert by_token.pop("thirdparty-1") == SendResult(Outcome.FAILED, reason="third_party_auth")
    assert by_token.pop("ok-1").outcome is Outcome.SENT
    assert expected[0].outcome is Outcome.SENT
    assert list(by_token.values()) == expected[1:]
    assert {r.reason for r in by_token.values()} == {
        "unregistered",
        "invalid_token",
        "invalid_argument",
        "quota_exceeded",
        "unavailable",
        "internal",
        "sender_id_mismatch",
        "error",
    }


def test_a_401_is_classified_as_firebase_admin_classifies_it(
    fcm: LocalFcmServer, gateway: FcmHttpGateway
) -> None:
    import requests
    from firebase_admin import _utils, messaging

    # firebase-admin's own error handling of the same answer, fetched with requests.
    body = json.dumps({"message": {"token": "thirdparty-2"}})
    answer = requests.post(f"{fcm.url}/v1/projects/{PROJECT}/messages:send", data=body, timeout=5)
    error = _utils.handle_platform_error_from_requests(
        requests.exceptions.HTTPError(response=answer),
        messaging._MessagingService._build_fcm_error_requests,
    )

    (result,) = gateway.send_batch([PushMessage("thirdparty-2", PUSHES["plain"])])

    assert type(error).__name__ == "ThirdPartyAuthError"
    assert result == firebase.classify_error(error)


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (429, "120", SendResult(Outcome.RETRY, reason="quota_exceeded", retry_after_seconds=120)),
        (503, "30", SendResult(Outcome.RETRY, reason="unavailable", retry_after_seconds=30)),
        (503, "Sun, 29 Nov 2026 06:00:00 GMT", SendResult(Outcome.RETRY, reason="unavailable")),
        (500, "1", SendResult(Outcome.RETRY, reason="internal")),
        (404, "1", SendResult(Outcome.RETIRE, reason="unregistered")),
        (409, "1", SendResult(Outcome.FAILED, reason="error")),
    ],
)
def test_a_server_wide_fault_is_classified_as_firebase_admin_does(
    fcm: LocalFcmServer,
    sdk: FirebaseGateway,
    gateway: FcmHttpGateway,
    status: int,
    retry_after: str,
    expected: SendResult,
) -> None:
    fcm.control(status_override=status, retry_after=retry_after)
    messages = [PushMessage(f"ok-{n}", PUSHES["plain"]) for n in range(3)]

    assert gateway.send_batch(messages) == [expected] * 3
    assert sdk.send_batch(messages) == [expected] * 3


def test_a_timeout_may_have_been_delivered(
    fcm: LocalFcmServer, sdk: FirebaseGateway, gateway: FcmHttpGateway
) -> None:
    fcm.control(delay_seconds=TIMEOUT + 0.5)
    messages = [PushMessage(f"ok-{n}", PUSHES["plain"]) for n in range(3)]

    started = time.monotonic()
    results = gateway.send_batch(messages)
    took = time.monotonic() - started

    assert results == [SendResult(Outcome.RETRY, reason="timeout", maybe_delivered=True)] * 3
    assert TIMEOUT <= took < TIMEOUT + 1.0  # all at once, each within its own timeout
    assert sorted(m["token"] for m in fcm.messages()) == ["ok-0", "ok-1", "ok-2"]  # FCM got them
    # firebase-admin says the same, less whether it may have been delivered.
    assert [SendResult(r.outcome, reason=r.reason) for r in sdk.send_batch(messages)] == [
        SendResult(Outcome.RETRY, reason="timeout")
    ] * 3


def test_only_the_slow_token_times_out(fcm: LocalFcmServer, gateway: FcmHttpGateway) -> None:
    fcm.control(slow_seconds=TIMEOUT + 0.5)
    messages = [PushMessage(t, PUSHES["plain"]) for t in ("ok-1", "slow-1", "ok-2")]

    results = gateway.send_batch(messages)

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.RETRY, Outcome.SENT]
    assert results[1].maybe_delivered


def test_a_refused_connection_was_not_delivered() -> None:
    nothing = FcmHttpGateway(PROJECT, f"http://127.0.0.1:{free_port()}", TIMEOUT)
    try:
        results = nothing.send_batch([PushMessage(f"ok-{n}", PUSHES["plain"]) for n in range(3)])
    finally:
        nothing.close()

    assert results == [SendResult(Outcome.RETRY, reason="connection", maybe_delivered=False)] * 3


def test_sending_resumes_when_fcm_accepts_connections_again(
    fcm: LocalFcmServer, gateway: FcmHttpGateway
) -> None:
    messages = [PushMessage(f"ok-{n}", PUSHES["plain"]) for n in range(8)]
    assert {r.outcome for r in gateway.send_batch(messages)} == {Outcome.SENT}  # pool is warm

    fcm.control(refuse_seconds=1.0)  # open keep-alive connections are dropped too
    time.sleep(0.2)
    refused = gateway.send_batch(messages)
    time.sleep(1.2)
    resumed = gateway.send_batch(messages)

    assert {(r.outcome, r.reason, r.maybe_delivered) for r in refused} == {
        (Outcome.RETRY, "connection", False)
    }
    assert {r.outcome for r in resumed} == {Outcome.SENT}


def test_the_control_endpoint_sets_and_resets_faults(fcm: LocalFcmServer) -> None:
    def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", fcm.server_address[1], timeout=5)
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=payload)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())

    assert call("PUT", "/_control", {"status_override": 429, "retry_after": "120"})[0] == 200
    assert call("GET", "/_control")[1]["status_override"] == 429
    assert call("PUT", "/_control", {"nonsense": 1})[0] == 400
    assert call("DELETE", "/_control")[1]["status_override"] is None
    assert call("GET", "/_messages") == (200, [])


def test_results_are_in_order_from_many_threads(
    fcm: LocalFcmServer, gateway: FcmHttpGateway
) -> None:
    batches = [
        [PushMessage(f"{prefix}{t}-{n}", PUSHES["plain"]) for n in range(50)]
        for t, prefix in enumerate(["ok-", "unregistered-", "quota-", "ok-"])
    ]
    results: dict[int, list[SendResult]] = {}

    def send(index: int) -> None:
        results[index] = gateway.send_batch(batches[index])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r.outcome for r in results[0]] == [Outcome.SENT] * 50
    assert [r.reason for r in results[1]] == ["unregistered"] * 50
    assert [r.reason for r in results[2]] == ["quota_exceeded"] * 50
    numbers = [int((r.message_id or "").rsplit("/", 1)[1]) for r in results[0] + results[3]]
    assert len(set(numbers)) == 100
    assert len(fcm.messages()) == 200


def test_keep_alive_answers_do_not_wait_for_a_delayed_ack(fcm: LocalFcmServer) -> None:
    # Headers and body in two writes with Nagle on cost 40+ ms per request on one connection.
    connection = http.client.HTTPConnection("127.0.0.1", fcm.server_address[1], timeout=5)
    body = json.dumps({"message": {"token": "ok-1"}})
    started = time.monotonic()
    for _ in range(50):
        connection.request("POST", f"/v1/projects/{PROJECT}/messages:send", body=body)
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 200
    connection.close()

    assert (time.monotonic() - started) / 50 < 0.01


def test_loading_the_gateway_does_not_load_its_parser() -> None:
    probe = "import sys, push365.fcm.http; print('httptools' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("coding", ANSWER_CODINGS)
def test_every_framing_of_an_answer_reads_as_firebase_admin_reads_it(
    fcm: LocalFcmServer, sdk: FirebaseGateway, gateway: FcmHttpGateway, coding: str
) -> None:
    # FCM's front ends may chunk or compress an answer (both clients ask for gzip and deflate),
    # or close the connection after it.
    fcm.control(answer_coding=coding)
    tokens = ["ok-1", "ok-2", *(t for t in ERROR_TOKENS if not t.startswith("thirdparty-"))]
    messages = [PushMessage(token, PUSHES["full"]) for token in tokens]

    actual = gateway.send_batch(messages)
    expected = sdk.send_batch(messages)

    assert [replace(r, message_id=None) for r in actual] == [
        replace(r, message_id=None) for r in expected
    ]
    assert [r.outcome for r in actual[:2]] == [Outcome.SENT] * 2
    assert all((r.message_id or "").startswith(f"projects/{PROJECT}/messages/") for r in actual[:2])
    assert gateway.send_batch(messages[:1])[0].outcome is Outcome.SENT  # and it goes on


def test_an_answer_that_comes_after_its_timeout_is_never_read_as_another_ones(
    fcm: LocalFcmServer,
) -> None:
    # One connection: the late answer to "slow-1" would be the next thing on it.
    single = FcmHttpGateway(PROJECT, fcm.url, http_timeout_seconds=TIMEOUT, pool_size=1)
    fcm.control(slow_seconds=TIMEOUT + 0.3)
    try:
        timed_out = single.send_batch([PushMessage("slow-1", PUSHES["plain"])])
        next_one = single.send_batch([PushMessage("ok-1", PUSHES["plain"])])
        time.sleep(0.6)  # the late answer has come by now
        after = single.send_batch([PushMessage("ok-2", PUSHES["plain"])])
    finally:
        single.close()

    names = {m["token"]: m.get("name") for m in fcm.messages()}
    assert timed_out == [SendResult(Outcome.RETRY, reason="timeout", maybe_delivered=True)]
    assert names["slow-1"] is not None  # it was answered, late
    assert next_one[0].message_id == names["ok-1"]  # its own answer, not slow-1's
    assert after[0].message_id == names["ok-2"]


def test_a_connection_idle_too_long_is_not_used_again(
    fcm: LocalFcmServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server or a NAT may drop an idle connection without a word: a request written to it
    # would wait its whole timeout and then be unknown (maybe delivered).
    monkeypatch.setattr(fcm_pool, "IDLE_SECONDS", 0.3)
    single = FcmHttpGateway(PROJECT, fcm.url, http_timeout_seconds=TIMEOUT, pool_size=1)
    try:
        for token in ("ok-1", "ok-2"):
            single.send_batch([PushMessage(token, PUSHES["plain"])])
        time.sleep(0.5)
        single.send_batch([PushMessage("ok-3", PUSHES["plain"])])
    finally:
        single.close()

    connections = {m["token"]: m["connection"] for m in fcm.messages()}
    assert connections["ok-1"] == connections["ok-2"]  # kept alive
    assert connections["ok-3"] != connections["ok-2"]  # idle too long: a new one


@pytest.mark.parametrize(
    "stray",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",  # a whole answer nobody asked for
        b'HTTP/1.1 200 OK\r\nContent-Length: 48\r\n\r\n{"name": "projects/p/messages/999"',  # part
    ],
    ids=["whole", "partial"],
)
def test_bytes_nobody_asked_for_end_the_connection(stray: bytes) -> None:
    # A server that sends something after its answer: the next request must get its own answer
    # on a connection of its own, never read the stray bytes as (part of) it.
    served = []

    def serve(listener: socket.socket) -> None:
        for number in (1, 2):
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                served.append(number)
                body = json.dumps({"name": f"projects/p/messages/{number}"}).encode()
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
                connection.sendall(body)
                time.sleep(0.1)
                connection.sendall(stray)
                time.sleep(1.0)

    listener = socket.create_server(("127.0.0.1", 0))
    server = threading.Thread(target=serve, args=(listener,), daemon=True)
    server.start()
    single = FcmHttpGateway(
        PROJECT, f"http://127.0.0.1:{listener.getsockname()[1]}", TIMEOUT, pool_size=1
    )
    try:
        first = single.send_batch([PushMessage("ok-1", PUSHES["plain"])])
        time.sleep(0.3)  # the stray bytes have come
        second = single.send_batch([PushMessage("ok-2", PUSHES["plain"])])
    finally:
        single.close()
        listener.close()

    assert first[0].message_id == "projects/p/messages/1"
    assert second[0].message_id == "projects/p/messages/2"  # on a second connection
    assert served == [1, 2]


def test_every_header_the_credentials_set_is_sent(fcm: LocalFcmServer) -> None:
    # google-auth's apply() sets more than Authorization: x-goog-user-project with a quota project.
    import datetime

    from google.oauth2.credentials import Credentials

    expiry = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(hours=1)
    credentials = Credentials("token-1", expiry=expiry, quota_project_id="billing-project")  # type: ignore[no-untyped-call]
    authorized = FcmHttpGateway(PROJECT, fcm.url, TIMEOUT)
    authorized._local = False  # as against the real FCM: credentials on every request
    authorized._credentials = credentials
    try:
        result = authorized.send_batch([PushMessage("ok-1", PUSHES["plain"])])
    finally:
        authorized.close()

    headers = {k.lower(): v for k, v in fcm.messages()[0]["headers"]}
    assert result[0].outcome is Outcome.SENT
    assert headers["authorization"] == "Bearer token-1"
    assert headers["x-goog-user-project"] == "billing-project"


def _as_firebase_admin_encodes(messages: Sequence[PushMessage]) -> list[bytes]:
    return [fcm_body.body(message) for message in messages]


def test_bodies_filled_into_the_encoders_text_are_the_encoders_own_bytes() -> None:
    odd = 'quote " backslash \\ slash / tab \t nul \x00 é ✓ 𝄞 </script>'
    push = WebPush(
        title=odd,
        body=odd,
        link="https://example.test/x?a=1&b=2",
        data={"notification_id": "n-1", "receipt": "from-the-push", "other": odd},
        ttl_seconds=60,
        collapse_key="n-1",
    )
    messages = [
        PushMessage(f"tok-{n}-{odd}", push, data, kind)
        for n, (data, kind) in enumerate(
            [
                ({}, TokenKind.REGISTRATION_TOKEN),
                ({"receipt": f"r-{odd}"}, TokenKind.REGISTRATION_TOKEN),  # overrides the push's
                ({"receipt": "r-2", "delivery": "d"}, TokenKind.INSTALLATION_ID),
                ({"delivery": "d", "receipt": "r-3"}, TokenKind.REGISTRATION_TOKEN),  # order
            ]
        )
    ]
    bare = WebPush(title="T", body="B")
    messages += [PushMessage("tok-bare", bare), PushMessage("tok-bare-2", bare, {"k": odd})]

    assert fcm_body.bodies(messages) == _as_firebase_admin_encodes(messages)


def test_content_holding_the_marker_is_encoded_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    fixed = uuid.UUID(int=7)
    monkeypatch.setattr(uuid, "uuid4", lambda: fixed)
    marker = f"push365-{fixed.hex}-"
    push = WebPush(title=f'"{marker}0"', body="B", data={"x": f'"{marker}1"'})
    messages = [PushMessage(f"tok-{n}", push, {"receipt": f"r-{n}"}) for n in range(3)]

    assert fcm_body.Template.of(messages[0]) is None  # the text would not split as planned
    assert fcm_body.bodies(messages) == _as_firebase_admin_encodes(messages)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for localhost, and a client context that
    trusts it (and nothing else)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    return server, ssl.create_default_context(cafile=str(cert_path))


def test_fcm_is_reached_over_tls_verified_as_requests_verifies_it(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_context, trusting = tls
    server = LocalFcmServer(free_port(), tls=server_context)
    server.start()
    url = f"https://localhost:{server.server_address[1]}"
    verified = FcmHttpGateway(PROJECT, url, TIMEOUT, tls_context=trusting)
    default = FcmHttpGateway(PROJECT, url, TIMEOUT)  # certifi's roots: not this certificate
    wrong_name = FcmHttpGateway(
        PROJECT, f"https://127.0.0.1:{server.server_address[1]}", TIMEOUT, tls_context=trusting
    )
    messages = [PushMessage(f"ok-{n}", PUSHES["plain"]) for n in range(3)]
    try:
        sent = verified.send_batch(messages)
        received = sorted(m["token"] for m in server.messages())
        refused = default.send_batch(messages) + wrong_name.send_batch(messages)
        after = len(server.messages())
    finally:
        for gateway in (verified, default, wrong_name):
            gateway.close()
        server.stop()

    assert [r.outcome for r in sent] == [Outcome.SENT] * 3
    assert received == ["ok-0", "ok-1", "ok-2"]
    assert refused == [SendResult(Outcome.RETRY, reason="connection", maybe_delivered=False)] * 6
    assert after == 3  # an unverified server never gets a message


def test_closing_the_gateway_ends_a_batch_still_sending(fcm: LocalFcmServer) -> None:
    # At exit (atexit closes the gateway) a batch mid-send must not wait forever on a stopped loop.
    patient = FcmHttpGateway(PROJECT, fcm.url, http_timeout_seconds=30.0)
    fcm.control(delay_seconds=10.0)
    outcome: list[BaseException | list[SendResult]] = []

    def send() -> None:
        try:
            outcome.append(patient.send_batch([PushMessage("ok-1", PUSHES["plain"])]))
        except BaseException as error:  # noqa: BLE001 - what the caller sees is the point
            outcome.append(error)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.5)  # written, waiting for its answer
    started = time.monotonic()
    patient.close()
    sender.join(timeout=5)

    assert not sender.is_alive()
    assert time.monotonic() - started < 5
    assert len(outcome) == 1
    assert isinstance(outcome[0], concurrent.futures.CancelledError)
    assert isinstance(outcome[0], Exception)  # the worker's except Exception: all maybe delivered


def test_a_deadline_starts_no_request_whose_timeout_does_not_fit_and_cuts_none_in_flight(
    fcm: LocalFcmServer,
) -> None:
    pooled = FcmHttpGateway(PROJECT, fcm.url, http_timeout_seconds=TIMEOUT, pool_size=2)
    fcm.control(delay_seconds=0.6)  # each request 0.6 s: two rounds fit in 1.5 s, not three
    messages = [PushMessage(f"ok-{n}", PUSHES["plain"]) for n in range(8)]
    try:
        pooled.send_batch(messages[:2])  # connections open
        fcm.clear()
        started = time.monotonic()
        results = pooled.send_batch(messages, deadline=started + TIMEOUT + 0.5)
        took = time.monotonic() - started
    finally:
        pooled.close()

    reached = {m["token"] for m in fcm.messages()}
    sent = [r for r in results if r.outcome is Outcome.SENT]
    not_started = [r for r in results if r.reason == "deadline"]
    # The first round starts with 1.5 s left (>= the 1 s timeout); the second at 0.6 s with
    # 0.9 s left: too little for a whole timeout, so it never starts. Nothing is cut in flight.
    assert len(sent) == 2
    assert len(not_started) == 6
    assert all(r.maybe_delivered is False for r in not_started)
    assert len(reached) == 2
    assert took < TIMEOUT + 0.5


def test_a_deadline_already_past_sends_nothing(fcm: LocalFcmServer) -> None:
    gateway = FcmHttpGateway(PROJECT, fcm.url, http_timeout_seconds=TIMEOUT)
    try:
        results = gateway.send_batch(
            [PushMessage("ok-1", PUSHES["plain"])], deadline=time.monotonic() - 1
        )
    finally:
        gateway.close()

    assert results == [SendResult(Outcome.RETRY, reason="deadline")]
    assert fcm.messages() == []


def test_a_reserved_batch_runs_the_claim_with_a_connection_held_for_each_then_writes_all(
    fcm: LocalFcmServer,
) -> None:
    pooled = FcmHttpGateway(PROJECT, fcm.url, http_timeout_seconds=TIMEOUT, pool_size=4)
    messages = [PushMessage(f"ok-{n}", PUSHES["plain"]) for n in range(4)]
    seen_at_claim: list[int] = []
    try:
        results = pooled.send_batch(
            messages, before_writing=lambda: seen_at_claim.append(len(fcm.messages()))
        )
    finally:
        pooled.close()

    assert seen_at_claim == [0]  # nothing reached FCM before the claim
    assert [r.outcome for r in results] == [Outcome.SENT] * 4


def test_a_claim_that_fails_is_raised_and_nothing_is_sent(fcm: LocalFcmServer) -> None:
    pooled = FcmHttpGateway(PROJECT, fcm.url, http_timeout_seconds=TIMEOUT, pool_size=4)

    def refused() -> None:
        raise KeyError("the store said no")

    try:
        with pytest.raises(KeyError):
            pooled.send_batch([PushMessage("ok-1", PUSHES["plain"])], before_writing=refused)
        after = pooled.send_batch([PushMessage("ok-2", PUSHES["plain"])])  # the pool is whole
    finally:
        pooled.close()

    assert [m["token"] for m in fcm.messages()] == ["ok-2"]
    assert after[0].outcome is Outcome.SENT


def test_reserved_batches_at_once_never_hold_the_pool_in_parts(fcm: LocalFcmServer) -> None:
    pooled = FcmHttpGateway(PROJECT, fcm.url, http_timeout_seconds=TIMEOUT, pool_size=4)
    fcm.control(delay_seconds=0.05)
    batches = [[PushMessage(f"b{b}-{n}", PUSHES["plain"]) for n in range(4)] for b in range(6)]
    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = list(
                pool.map(
                    lambda batch: pooled.send_batch(batch, before_writing=lambda: None), batches
                )
            )
    finally:
        pooled.close()

    assert all(r.outcome is Outcome.SENT for answer in answers for r in answer)
    assert len(fcm.messages()) == 24
