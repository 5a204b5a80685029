"""Call the functions as the platform loads them (``functions_framework.create_app``), over the
real Firestore emulator."""

from __future__ import annotations

import copy
import json
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from devstack.emulator import FirestoreEmulator
from devstack.fcm_server import LocalFcmServer
from devstack.gateway import FUNCTIONS_DIR
from push365.web import API_KEY_HEADER
from tests.conftest import SES_SENDER, example

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


@pytest.fixture(scope="session")
def functions(
    emulator: FirestoreEmulator, fcm_server: LocalFcmServer, ses_server: str
) -> Functions:
    return Functions()


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
def api(functions: Functions, store: Any, fcm: LocalFcmServer, ses: LocalSes) -> Functions:
    """The functions over an empty store, a local FCM server and a local SES with nothing sent."""
    return functions


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


def register(api: Functions, org: str = ORG) -> str:
    """Register an organization; its API key."""
    response = api.post("/register", registration(org))
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
