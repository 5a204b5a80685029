"""Each function's OpenAPI 3.1 description: generated from its route table and pydantic models,
committed in docs/openapi/, and served at GET /<function>/openapi.json."""

from __future__ import annotations

import json
import re
from typing import Any

import functions_framework
import pytest

from devstack.gateway import FUNCTIONS_DIR, function_names
from devstack.openapi import DOCS_DIR, descriptions, render
from push365.errors import Push365Error
from push365.notifications.model import SendRequest
from push365.web import Api, Operation
from push365.web.openapi import DEPLOYED_URL
from tests.conftest import REPO

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
    assert {"$ref": "#/components/schemas/SendRequest"} in body["oneOf"][0]["allOf"]
    assert set(send["paths"]) == {"/", "/status", "/stats", "/openapi.json"}
    assert send["paths"]["/status"]["get"]["parameters"][0]["name"] == "notification_id"
    assert GENERATED["receipt"]["paths"]["/"]["post"]["security"] == []
    assert set(GENERATED["register"]["paths"]["/rules"]) == {"get", "post"}


def test_a_route_without_a_described_operation_is_an_error() -> None:
    def handler(_request: Any) -> Any:
        return 200, {}

    with pytest.raises(ValueError, match="/other"):
        Api(
            "example",
            {"/": {"POST": handler}, "/other": {"GET": handler}},
            operations={("/", "POST"): Operation("Only this one.", auth="none", quota="link")},
        )


def _codes(kind: type[Push365Error]) -> list[type[Push365Error]]:
    return [kind, *(k for sub in kind.__subclasses__() for k in _codes(sub))]


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_each_operation_lists_its_own_error_statuses_and_codes(name: str) -> None:
    table = {kind.code: kind.status for kind in _codes(Push365Error)}
    for path, methods in GENERATED[name]["paths"].items():
        for method, operation in methods.items():
            responses = operation["responses"]
            errors = {int(s): r for s, r in responses.items() if s != "default" and int(s) >= 400}

            assert "default" not in responses, (path, method)
            if path == "/openapi.json":
                continue
            assert {500, 503} <= set(errors), (path, method)
            for status, response in errors.items():
                schema = response["content"]["application/json"]["schema"]
                codes = schema["allOf"][1]["properties"]["error"]["properties"]["code"]["enum"]
                assert codes, (path, method, status)
                assert all(table[code] == status for code in codes), (path, method, status)
                assert all(code in response["description"] for code in codes)


def test_the_error_codes_follow_each_operations_auth_input_and_use_case() -> None:
    def codes(function: str, path: str, method: str) -> set[str]:
        responses = GENERATED[function]["paths"][path][method]["responses"]
        return {
            code
            for status, response in responses.items()
            if int(status) >= 400
            for code in response["content"]["application/json"]["schema"]["allOf"][1]["properties"][
                "error"
            ]["properties"]["code"]["enum"]
        }

    assert {"unauthorized", "query_key_refused", "validation_failed", "forbidden"} <= codes(
        "send", "/", "post"
    )
    assert {"message_too_large", "queue_unavailable"} <= codes("send", "/", "post")
    assert "notification_not_found" in codes("send", "/status", "get")
    assert "notification_not_found" not in codes("send", "/", "post")
    assert "unauthorized" not in codes("receipt", "/", "post")  # no key: the receipt is proof
    assert "unknown_receipt" in codes("receipt", "/", "post")
    assert "purge_disabled" in codes("purge", "/", "post")
    assert {"conflict", "signup_code_required", "too_many_requests"} <= codes(
        "register", "/", "post"
    )
    assert "invalid_json" not in codes("register", "/rules", "get")  # reads no body


def test_servers_are_the_deployed_function_url_and_make_devs() -> None:
    main = (REPO / "infra" / "main.tf").read_text()
    functions = (REPO / "infra" / "functions.tf").read_text()
    variables = (REPO / "infra" / "variables.tf").read_text()
    # What the deployment gives every function as PUSH365_FUNCTION_URL_TEMPLATE (the settings'
    # function_url_template), with infra's variables as the description's server variables.
    base_url = re.search(r'base_url = "([^"]+)"', main)
    template = re.search(r'PUSH365_FUNCTION_URL_TEMPLATE\s*=\s*"([^"]+)"', functions)
    assert base_url is not None
    assert template is not None
    deployed_template = (
        template.group(1)
        .replace("${local.base_url}", base_url.group(1))
        .replace("${var.region}", "{region}")
        .replace("${var.project_id}", "{project}")
        .replace("${var.name_prefix}", "{name_prefix}")
    )
    assert "${" not in deployed_template

    assert deployed_template == DEPLOYED_URL + "{function}"
    for name, description in GENERATED.items():
        deployed, local = description["servers"]
        assert deployed["url"] == deployed_template.replace("{function}", name)
        assert deployed["url"].startswith("https://")  # absolute
        assert set(deployed["variables"]) == {"region", "project", "name_prefix"}
        for variable in ("region", "name_prefix"):
            default = deployed["variables"][variable]["default"]
            declared = re.search(
                rf'variable "{variable}" {{[^}}]*default\s*=\s*"([^"]+)"', variables
            )
            assert declared is not None
            assert default == declared.group(1)
        assert local["url"] == f"http://localhost:{{port}}/{name}"


def test_delivers_405_names_its_method() -> None:
    client = functions_framework.create_app(
        target="deliver", source=str(FUNCTIONS_DIR / "deliver.py"), signature_type="cloudevent"
    ).test_client()

    answer = client.get("/")

    assert answer.status_code == 405
    assert answer.get_json() == {
        "error": {"code": "method_not_allowed", "message": "Allowed methods: POST."}
    }
    assert answer.headers["Allow"] == "POST"
