"""Each function's OpenAPI 3.1 description: generated from its route table and pydantic models,
committed in docs/openapi/, and served at GET /<function>/openapi.json."""

from __future__ import annotations

import json
from typing import Any

import functions_framework
import pytest

from devstack.gateway import FUNCTIONS_DIR, function_names
from devstack.openapi import DOCS_DIR, descriptions, render
from push365.notifications.model import SendRequest
from push365.web import Api, Operation

GENERATED = descriptions()


def test_the_committed_descriptions_are_the_generated_ones() -> None:
    committed = {path.stem: path.read_text() for path in DOCS_DIR.glob("*.json")}

    # Regenerate with: .venv/bin/python -m devstack.openapi
    assert set(committed) == set(GENERATED) == set(function_names()) - {"deliver"}
    for name, description in GENERATED.items():
        assert committed[name] == render(description), f"docs/openapi/{name}.json is stale"


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_each_function_serves_its_description(name: str) -> None:
    client = functions_framework.create_app(
        target=name, source=str(FUNCTIONS_DIR / f"{name}.py")
    ).test_client()

    answer = client.get("/openapi.json")
    refused = client.post("/openapi.json", json={})

    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    assert answer.get_json() == json.loads((DOCS_DIR / f"{name}.json").read_text())
    assert refused.status_code == 405  # read-only


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_each_description_is_valid_openapi_3_1(name: str) -> None:
    validator = pytest.importorskip("openapi_spec_validator", reason="NOT RUN - no validator")
    description = GENERATED[name]

    assert description["openapi"] == "3.1.0"
    validator.validate(description)


def test_the_description_follows_the_models_and_routes() -> None:
    send = GENERATED["send"]
    schema: dict[str, Any] = send["components"]["schemas"]["SendRequest"]
    body = send["paths"]["/"]["post"]["requestBody"]["content"]["application/json"]["schema"]

    assert set(schema["properties"]) == set(SendRequest.model_fields)
    assert (
        schema["properties"]["recipients"]["maxItems"]
        == (SendRequest.model_json_schema()["properties"]["recipients"]["maxItems"])
    )
    assert {"$ref": "#/components/schemas/DataverseContext"} in body["oneOf"]
    assert set(send["paths"]) == {"/", "/status", "/stats", "/openapi.json"}
    assert send["paths"]["/status"]["get"]["parameters"][0]["name"] == "notification_id"
    assert GENERATED["receipt"]["paths"]["/"]["post"]["security"] == []
    assert set(GENERATED["register"]["paths"]["/rules"]) == {"get", "post"}


def test_a_route_without_a_described_operation_is_an_error() -> None:
    def handler(_request: Any) -> Any:
        return 200, {}

    api = Api(
        "example",
        {"/": {"POST": handler}, "/other": {"GET": handler}},
        operations={("/", "POST"): Operation("Only this one.")},
    )
    with pytest.raises(ValueError, match="/other"):
        api.openapi()
