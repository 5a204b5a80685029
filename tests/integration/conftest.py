"""Call the functions as the platform loads them (``functions_framework.create_app``), over the
real Firestore emulator."""

from __future__ import annotations

import copy
import json
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from devstack import fanout
from devstack.emulator import FirestoreEmulator, PubSubEmulator
from devstack.fcm_server import LocalFcmServer
from devstack.gateway import FUNCTIONS_DIR
from push365.store import QUOTAS, THROTTLES
from push365.web import API_KEY_HEADER
from tests.conftest import SES_SENDER, TEST_ADMIN_KEY, example, fanout_topology

ORG = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"
OTHER_ORG = "9e8d7c6b-5a49-4382-9716-05f4e3d2c1b0"
ALICE = "a1111111-2222-4333-8444-555555555501"
BOB = "b1111111-2222-4333-8444-555555555502"


@dataclass(frozen=True)
class Answer:
    """What a function answered."""

    status_code: int
    json: Any
    text: str
    mimetype: str
    headers: Mapping[str, str]


class Functions:
    """``post("/register/users", ...)`` reaches function ``register`` at ``/users``, as deployed."""

    def __init__(self) -> None:
        import functions_framework

        self.queue: Fanout | None = None

        self._clients = {
            path.stem: functions_framework.create_app(
                target=path.stem, source=str(path)
            ).test_client()
            for path in FUNCTIONS_DIR.glob("*.py")
        }

    def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        key: str | None = None,
        data: bytes | str | None = None,
        content_type: str | None = "application/json",
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> Answer:
        name, _, rest = url.lstrip("/").partition("/")
        all_headers = dict(headers or {})
        if key is not None:
            all_headers[API_KEY_HEADER] = key
        if data is None and body is not None:
            data = json.dumps(body)
        response = self._clients[name].open(
            f"/{rest}",
            method=method,
            data=data,
            content_type=content_type,
            headers=all_headers,
            query_string=query,
        )
        text = response.get_data(as_text=True)
        return Answer(
            status_code=response.status_code,
            json=json.loads(text) if response.is_json else None,
            text=text,
            mimetype=response.mimetype,
            headers=dict(response.headers),
        )

    def post(self, url: str, body: Any = None, **options: Any) -> Answer:
        return self.request("POST", url, body, **options)

    def get(self, url: str, **options: Any) -> Answer:
        return self.request("GET", url, content_type=None, **options)

    def push(self, function: str, body: Any) -> int:
        """What Pub/Sub's push does: the message's JSON to the function's root; the status."""
        return int(self.push_answer(function, body).status_code)

    def push_answer(self, function: str, body: Any) -> Answer:
        """The same push; the whole answer."""
        return self.post(f"/{function}/", body)


class Fanout:
    """The fan-out topics on the real Pub/Sub emulator, with pull subscriptions: ``deliver()``
    pulls each message and pushes it to the ``deliver`` function exactly as Pub/Sub's push does
    (the same body), then acknowledges it on a 2xx or hands it back for redelivery."""

    def __init__(self, functions: Functions, emulator: str) -> None:
        self._functions = functions
        self._emulator = emulator
        self.topology = fanout_topology()
        self.pushed: list[int] = []  # the status of every push, in order

    def reset(self) -> None:
        fanout.create(self._emulator, self.topology)
        self.pushed = []

    def deliver(
        self, until: Callable[[], bool] | None = None, timeout: float = 30.0, quiet: float = 1.0
    ) -> None:
        """Deliver until ``until()`` holds (checked when the queue is empty), or until nothing
        arrived for ``quiet`` seconds when no ``until`` is given."""
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline:
            moved = self.step()
            if moved:
                last = time.monotonic()
                continue
            if until is not None and until():
                return
            if until is None and time.monotonic() - last > quiet:
                return
            time.sleep(0.05)
        raise AssertionError("the fan-out did not finish in time")

    def step(self) -> int:
        """One pull of each subscription, each message pushed to ``deliver``; how many."""
        moved = 0
        for subscription in (self.topology.subscription, self.topology.dead_letter_subscription):
            answer = self._call(f"subscriptions/{subscription}:pull", maxMessages=50)
            received = answer.get("receivedMessages", [])
            acks: list[str] = []
            nacks: list[str] = []
            for item in received:
                path = f"projects/{self.topology.project}/subscriptions/{subscription}"
                body = {"message": item["message"], "subscription": path}
                status = self._functions.push("deliver", body)
                self.pushed.append(status)
                (acks if 200 <= status < 300 else nacks).append(item["ackId"])
            if acks:
                self._call(f"subscriptions/{subscription}:acknowledge", ackIds=acks)
            if nacks:
                self._call(
                    f"subscriptions/{subscription}:modifyAckDeadline",
                    ackIds=nacks,
                    ackDeadlineSeconds=0,
                )
            moved += len(received)
        return moved

    def _call(self, path: str, **body: Any) -> Any:
        if path.endswith(":pull"):
            body["returnImmediately"] = True
        url = f"http://{self._emulator}/v1/projects/{self.topology.project}/{path}"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")


@pytest.fixture(scope="session")
def functions(
    emulator: FirestoreEmulator,
    pubsub: PubSubEmulator,
    fcm_server: LocalFcmServer,
    ses_server: str,
) -> Functions:
    return Functions()


@pytest.fixture(scope="session")
def fanout_queue(functions: Functions, pubsub: PubSubEmulator) -> Fanout:
    functions.queue = Fanout(functions, pubsub.address)
    return functions.queue


class LocalSes:
    """The local SES: what it was asked to send, read through moto's own API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def reset(self) -> None:
        urllib.request.urlopen(
            urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        ).close()
        self.client().create_email_identity(EmailIdentity=SES_SENDER)

    def client(self) -> Any:
        import boto3

        return boto3.client("sesv2", region_name="eu-west-1", endpoint_url=self.url)

    def messages(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/moto-api/data.json") as response:
            data = json.loads(response.read())
        return list(data.get("ses", {}).get("Message", []))


@pytest.fixture
def ses(ses_server: str) -> LocalSes:
    """The local SES with nothing sent and the sender verified."""
    local = LocalSes(ses_server)
    local.reset()
    return local


@pytest.fixture
def queue(fanout_queue: Fanout) -> Fanout:
    """The fan-out topics, empty."""
    fanout_queue.reset()
    return fanout_queue


@pytest.fixture
def api(
    functions: Functions, store: Any, fcm: LocalFcmServer, ses: LocalSes, queue: Fanout
) -> Functions:
    """The functions over an empty store, empty fan-out topics, a local FCM server and a local
    SES with nothing sent."""
    return functions


def send_and_deliver(api: Functions, body: Any, key: str, **options: Any) -> tuple[Answer, Any]:
    """Send, let the fan-out finish, and read the notification's status: (send's answer, status
    JSON or None when nothing was accepted)."""
    queue = api.queue
    assert queue is not None
    accepted = api.post("/send", body, key=key, **options)
    if accepted.status_code != 202:
        queue.deliver()
        return accepted, None
    nid = accepted.json["notification_id"]

    def status() -> Any:
        return api.get("/send/status", key=key, query={"notification_id": nid}).json

    queue.deliver(until=lambda: status()["status"] in ("sent", "failed"))
    return accepted, status()


def deliver_pending(api: Functions) -> None:
    """Let the fan-out deliver whatever is queued."""
    assert api.queue is not None
    api.queue.deliver()


def registration(org: str = ORG, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "organization": {
            "id": org,
            "unique_name": f"unq-{org[:8]}",
            "name": "Contoso",
            "language_code": 1033,
        },
        "business": {
            "name": "Contoso Ltd",
            "phone": "+1 555 0100",
            "email": "it@contoso.com",
            "country": "US",
            "address": "1 Main St",
        },
        "admins": [
            {"full_name": "Ada Admin", "email": "ada@contoso.com", "mobile_phone": "+1 555 0101"}
        ],
    }
    return body | changes


def signup(api: Functions, org: str = ORG) -> dict[str, str]:
    """The header that lets ``org`` be registered: a code the operator issued for it."""
    issued = api.post(
        "/register/signup-codes",
        {"organization_id": org},
        headers={"X-Push365-Admin-Key": TEST_ADMIN_KEY},
    )
    assert issued.status_code == 201, issued.json
    return {"X-Push365-Signup-Code": issued.json["signup_code"]}


def register(api: Functions, org: str = ORG) -> str:
    """Register an organization; its API key."""
    response = api.post("/register", registration(org), headers=signup(api, org))
    assert response.status_code == 201, response.json
    return str(response.json["api_key"])


def dataverse(name: str, org: str = ORG, **changes: Any) -> dict[str, Any]:
    """An example Dataverse body, for ``org``."""
    body = copy.deepcopy(example(name))
    body["OrganizationId"] = org
    return body | changes


def documents(store: Any, org: str, collection: str) -> dict[str, dict[str, Any]]:
    """Every document of one of an organization's subcollections."""
    ref = store.collection("organizations", org, collection)
    return {snap.id: snap.to_dict() for snap in ref.stream()}


def all_documents(store: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every document in the database, subcollections included, as (path, fields)."""
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(collections: Any) -> None:
        for collection in collections:
            for reference in collection.list_documents():
                snapshot = reference.get()
                if snapshot.exists:
                    found.append((reference.path, snapshot.to_dict()))
                walk(reference.collections())

    walk(store.collections())
    return found


def stored_state(store: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every document but the rate counters (quotas, throttles), which count the test's own
    calls: what "nothing stored changed" compares."""
    return [
        (path, fields)
        for path, fields in all_documents(store)
        if not {QUOTAS, THROTTLES} & set(path.split("/")[::2])  # (its collections' names)
    ]


def delivery_records(store: Any, org: str, notification_id: str) -> dict[str, dict[str, Any]]:
    """A notification's delivery records by device id, read as stored (on its batches, with
    each receipt hash from the batch's hashes and ``delivered_at`` from the device's receipt)."""
    from push365.notifications.deliveries import (
        RECEIPT_HASHES,
        RECORDS,
        decode_receipt_hashes,
        decode_records,
        sent_at,
    )

    notification = store.collection("organizations", org, "notifications").document(notification_id)
    delivered = {
        r.id: (r.to_dict() or {}).get("delivered_at")
        for r in notification.collection("receipts").stream()
    }
    found: dict[str, dict[str, Any]] = {}
    for batch in notification.collection("batches").stream():
        fields = batch.to_dict() or {}
        hashes = decode_receipt_hashes(fields.get(RECEIPT_HASHES))
        for device, record in decode_records(fields.get(RECORDS)).items():
            found[device] = record | {
                "device_id": device,
                "sent_at": sent_at(record),
                "receipt_hash": hashes.get(device, ""),
                "delivered_at": delivered.get(device),
            }
    return found
