"""OpenAPI 3.1 descriptions of the functions, generated from their route tables and the pydantic
models their routes read and answer (never written by hand).

Each function's :class:`~push365.web.api.Api` knows its routes; an :class:`Operation` per route
names its models. ``GET /<function>/openapi.json`` answers the description; the committed copies
in ``docs/openapi/`` are checked against it by ``tests/unit/test_openapi.py`` and rewritten with
``python -m devstack.openapi``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from push365.errors import Push365Error

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"
DOCUMENT_ROUTE = "/openapi.json"
_REF = "#/components/schemas/{model}"

Auth = Literal["key", "none", "purge", "admin"]


@dataclass(frozen=True)
class Operation:
    """What one route reads and answers, for its description."""

    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    answers: Mapping[int, str] = field(default_factory=lambda: {200: "Done."})
    answer: type[BaseModel] | None = None
    auth: Auth = "key"
    dataverse: bool = False  # the body may also be a Dataverse RemoteExecutionContext


_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}
_DATAVERSE = {
    "type": "object",
    "description": "A Dataverse webhook body (RemoteExecutionContext), recognised by its shape.",
    "required": ["MessageName", "PrimaryEntityName", "OrganizationId"],
}
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "key": [{"headerKey": []}, {"queryKey": []}],
    "none": [],
    "purge": [{"schedulerOidc": []}, {"adminKey": []}],
    "admin": [{"adminKey": []}],
}
_SCHEMES = {
    "headerKey": {"type": "apiKey", "in": "header", "name": "X-Push365-Key"},
    "queryKey": {"type": "apiKey", "in": "query", "name": "code"},
    "schedulerOidc": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "Production: an OIDC token of the Cloud Scheduler account.",
    },
    "adminKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Push365-Admin-Key",
        "description": "The operator's key: purge locally (make dev), signup codes.",
    },
}


def describe(
    function: str,
    routes: Mapping[str, Mapping[str, object]],
    operations: Mapping[tuple[str, str], Operation],
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of one function (paths relative to its URL)."""
    missing = {(p, m) for p, methods in routes.items() for m in methods} - set(operations)
    if missing:
        raise ValueError(f"{function}: routes without an Operation: {sorted(missing)}")
    models = sorted(
        {m for op in operations.values() for m in (op.body, op.query, op.answer) if m is not None},
        key=lambda m: m.__name__,
    )
    names, schemas = models_json_schema(
        [(m, "validation" if _is_input(m, operations) else "serialization") for m in models],
        ref_template=_REF,
    )
    paths: dict[str, dict[str, Any]] = {}
    for path, methods in routes.items():
        for method in methods:
            operation = operations[(path, method)]
            paths.setdefault(path, {})[method.lower()] = _operation(
                function, path, method, operation, names
            )
    paths[DOCUMENT_ROUTE] = {
        "get": {
            "operationId": f"{function}_openapi",
            "summary": "This description.",
            "security": [],
            "responses": {"200": {"description": "The OpenAPI 3.1 document."}},
        }
    }
    components: dict[str, Any] = {
        "schemas": {**schemas.get("$defs", {}), "Error": _ERROR, "DataverseContext": _DATAVERSE},
        "securitySchemes": _SCHEMES,
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": f"Push365 {function}",
            "version": API_VERSION,
            "description": "Generated from the function's route table and pydantic models.",
        },
        "servers": [{"url": f"/{function}"}],
        "paths": dict(sorted(paths.items())),
        "components": components,
    }


def _is_input(model: type[BaseModel], operations: Mapping[tuple[str, str], Operation]) -> bool:
    return any(model in (op.body, op.query) for op in operations.values())


def _operation(
    function: str,
    path: str,
    method: str,
    operation: Operation,
    names: Mapping[tuple[Any, Any], Mapping[str, Any]],
) -> dict[str, Any]:
    def ref(model: type[BaseModel]) -> Mapping[str, Any]:
        mode = "validation" if model in (operation.body, operation.query) else "serialization"
        return names[(model, mode)]

    slug = path.strip("/").replace("/", "_").replace("-", "_") or "root"
    described: dict[str, Any] = {
        "operationId": f"{function}_{method.lower()}_{slug}",
        "summary": operation.summary,
        "security": _SECURITY[operation.auth],
    }
    if operation.query is not None:
        required = {
            name for name, spec in operation.query.model_fields.items() if spec.is_required()
        }
        described["parameters"] = [
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": {"$ref": f"{ref(operation.query)['$ref']}/properties/{name}"},
            }
            for name in operation.query.model_fields
        ]
    if operation.body is not None:
        body = dict(ref(operation.body))
        schema = {"oneOf": [body, {"$ref": _REF.format(model="DataverseContext")}]}
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema if operation.dataverse else body}},
        }
    responses: dict[str, Any] = {}
    for status, text in operation.answers.items():
        answer: dict[str, Any] = {"description": text}
        if status != 204:
            model = ref(operation.answer) if operation.answer is not None else {"type": "object"}
            answer["content"] = {"application/json": {"schema": dict(model)}}
        responses[str(status)] = answer
    responses["default"] = {
        "description": "An error: a fixed message that never echoes the request "
        f"({', '.join(sorted(_codes()))}).",
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}},
    }
    described["responses"] = responses
    return described


def _codes() -> set[str]:
    codes: set[str] = set()
    pending: list[type[Push365Error]] = [Push365Error]
    while pending:
        kind = pending.pop()
        pending.extend(kind.__subclasses__())
        code = getattr(kind, "code", None)
        if isinstance(code, str):
            codes.add(code)
    return codes


__all__ = ["DOCUMENT_ROUTE", "Operation", "describe"]
