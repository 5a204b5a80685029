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
from typing import Any, Literal, get_args

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from push365.errors import (
    BadRequest,
    CurrentKeyRequired,
    Forbidden,
    HeadersTooLarge,
    InternalError,
    InvalidJson,
    PayloadTooLarge,
    PurgeDisabled,
    Push365Error,
    QueryKeyRefused,
    QuotaExceeded,
    QuotaExceededRetryable,
    StoreUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from push365.model import GUID_PATTERN
from push365.quotas.model import QUOTA_CLASSES

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"
DOCUMENT_ROUTE = "/openapi.json"
_REF = "#/components/schemas/{model}"
DEPLOYED_URL = "https://{region}-{project}.cloudfunctions.net/{name_prefix}-"
"""Where a deployed function answers: infra/ names each function ``<name_prefix>-<function>`` and
gives it this URL (``local.base_url`` in infra/main.tf); the server variables' defaults are
infra/variables.tf's (the project has none: it is the operator's)."""
LOCAL_URL = "http://localhost:{port}/"
"""Where ``make dev`` serves every function (devstack's gateway, ``PUSH365_HTTP_PORT``)."""

Auth = Literal["key", "webhook", "optional", "none", "purge", "admin"]
"""How :class:`~push365.web.api.Api` lets a call in, before its handler runs:

- ``key``: the organization's current key only;
- ``webhook``: the current key, or the previous one during its overlap after a rotation (what a
  Dataverse webhook does);
- ``optional``: no key (the route's keyless use: registering a new organization), or a key as
  for ``webhook`` (the handler asks for the current one where it administers);
- ``none``: no key (the request carries its own proof: a receipt, a mailed link);
- ``purge``: the scheduler's OIDC token (production) or the operator's key (locally);
- ``admin``: the operator's key."""
AUTHS: tuple[Auth, ...] = get_args(Auth)


@dataclass(frozen=True)
class Operation:
    """What one route reads and answers, for its description; and how :class:`Api` lets it in
    (``auth``), counts it (``quota``) and reads its query (``query``)."""

    summary: str
    auth: Auth = field(kw_only=True)
    quota: str = field(kw_only=True)
    """Its class in ``push365.quotas.QUOTA_CLASSES`` (README "Quotas")."""
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    answers: Mapping[int, str] = field(default_factory=lambda: {200: "Done."})
    answer: type[BaseModel] | None = None
    media: tuple[str, ...] = ("application/json",)
    """What the answers are: JSON, or also (or only) ``text/html``, a page (web.api.Page)."""
    dataverse: bool = False  # the body may also be a Dataverse RemoteExecutionContext
    body_required: bool = True  # False: a request without a body is read as ``{}``
    headers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Optional request headers the route reads: name -> schema (what the route takes)."""
    errors: tuple[type[Push365Error], ...] = ()
    """What this route can answer besides the errors every route, its auth and its input
    have (see :func:`errors`)."""


def errors(operation: Operation) -> list[type[Push365Error]]:
    """Every error ``operation`` can answer: the HTTP layer's, the store's, its auth's, its
    input's and its own."""
    found: list[type[Push365Error]] = [BadRequest, HeadersTooLarge, InternalError, StoreUnavailable]
    found += {
        "key": [Unauthorized, QueryKeyRefused, CurrentKeyRequired],
        "webhook": [Unauthorized, QueryKeyRefused],
        "optional": [Unauthorized, QueryKeyRefused],
        "none": [],
        "purge": [Unauthorized, PurgeDisabled],
        "admin": [Unauthorized, Forbidden],
    }[operation.auth]
    if operation.body is not None:
        found += [InvalidJson, PayloadTooLarge, UnsupportedMediaType, ValidationFailed]
    if operation.query is not None:
        found.append(ValidationFailed)
    if operation.dataverse:
        found += [Forbidden, QuotaExceededRetryable]
    found.append(QuotaExceeded)
    found += operation.errors
    return sorted(set(found), key=lambda kind: (kind.status, kind.code))


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
_GUID = {"type": "string", "maxLength": 40, "pattern": GUID_PATTERN}
_PAGE = {"type": "string", "description": "An HTML page of fixed texts."}
_OPTIONAL_GUID = {"anyOf": [_GUID, {"type": "null"}, {"const": ""}]}
_IF_INTEGER = {"description": "An integer; any other value is read as absent."}
_IF_TEXT = {"description": "A string; any other value is read as absent."}
_COLLECTION = {
    "description": "Dataverse's collection shape: a list of {key, value} pairs (an object is read "
    "as one too; any other value as empty)."
}
_DATAVERSE = {
    "type": "object",
    "description": "A Dataverse webhook body (RemoteExecutionContext), recognised by its shape: "
    "the three required keys. Other keys Dataverse sends are read where a route needs them.",
    "required": ["MessageName", "PrimaryEntityName", "OrganizationId"],
    "properties": {
        "MessageName": {"type": "string", "minLength": 1},
        "PrimaryEntityName": {"type": "string", "minLength": 1},
        "OrganizationId": _GUID,
        "PrimaryEntityId": _OPTIONAL_GUID,
        "InitiatingUserId": _OPTIONAL_GUID,
        "UserId": _OPTIONAL_GUID,
        "RequestId": _OPTIONAL_GUID,
        "OperationId": _OPTIONAL_GUID,
        "CorrelationId": _OPTIONAL_GUID,
        "OrganizationName": _IF_TEXT,
        "Stage": _IF_INTEGER,
        "Mode": _IF_INTEGER,
        "Depth": _IF_INTEGER,
        "OperationCreatedOn": _IF_TEXT,
        "InputParameters": _COLLECTION,
        "OutputParameters": _COLLECTION,
        "SharedVariables": _COLLECTION,
        "PreEntityImages": _COLLECTION,
        "PostEntityImages": _COLLECTION,
    },
}
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "key": [{"headerKey": []}, {"queryKey": []}],
    "webhook": [{"headerKey": []}, {"queryKey": []}],
    "optional": [{}, {"headerKey": []}, {"queryKey": []}],
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
        "servers": _servers(function),
        "paths": dict(sorted(paths.items())),
        "components": components,
    }


def _servers(function: str) -> list[dict[str, Any]]:
    return [
        {
            "url": DEPLOYED_URL + function,
            "description": "Deployed (infra/): the function's own URL.",
            "variables": {
                "region": {"default": "europe-west1", "description": "var.region"},
                "project": {"default": "my-project", "description": "var.project_id"},
                "name_prefix": {"default": "push365", "description": "var.name_prefix"},
            },
        },
        {
            "url": LOCAL_URL + function,
            "description": "make dev: every function behind one port.",
            "variables": {"port": {"default": "8000", "description": "PUSH365_HTTP_PORT"}},
        },
    ]


def operation_id(function: str, path: str, method: str) -> str:
    """A route's name: its OpenAPI operationId, and its quota counters' name."""
    slug = path.strip("/").replace("/", "_").replace("-", "_") or "root"
    return f"{function}_{method.lower()}_{slug}"


def _quota(operation: Operation) -> dict[str, Any]:
    """The route's quota (README "Quotas"), as an extension of its operation."""
    quota = QUOTA_CLASSES[operation.quota]
    over = "429 quota_exceeded with Retry-After"
    if operation.dataverse:
        over += " (a Dataverse webhook body: 503, which Dataverse retries once)"
    return {
        "class": quota.name,
        "per": quota.scope,
        "per_minute": quota.per_minute,
        "per_day": quota.per_day,
        "exceeded": over + ".",
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

    described: dict[str, Any] = {
        "operationId": operation_id(function, path, method),
        "summary": operation.summary,
        "security": _SECURITY[operation.auth],
        "x-quota": _quota(operation),
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
    if operation.headers:
        described["parameters"] = described.get("parameters", []) + [
            {"name": name, "in": "header", "required": False, "schema": dict(schema)}
            for name, schema in sorted(operation.headers.items())
        ]
    if operation.body is not None:
        body = dict(ref(operation.body))
        # A body with the context's three keys is read as a context, whatever else it holds.
        plain = {"allOf": [body, {"not": {"required": _DATAVERSE["required"]}}]}
        schema = {"oneOf": [plain, {"$ref": _REF.format(model="DataverseContext")}]}
        described["requestBody"] = {
            "required": operation.body_required,
            "content": {"application/json": {"schema": schema if operation.dataverse else body}},
        }
    responses: dict[str, Any] = {}
    for status, text in operation.answers.items():
        answer: dict[str, Any] = {"description": text}
        if status != 204:
            model = ref(operation.answer) if operation.answer is not None else {"type": "object"}
            answer["content"] = {
                media: {"schema": dict(model) if media == "application/json" else _PAGE}
                for media in operation.media
            }
        responses[str(status)] = answer
    by_status: dict[int, list[type[Push365Error]]] = {}
    for kind in errors(operation):
        by_status.setdefault(kind.status, []).append(kind)
    for status, kinds in sorted(by_status.items()):
        codes = sorted({kind.code for kind in kinds})
        responses[str(status)] = {
            "description": "An error (fixed messages that never echo the request): "
            + "; ".join(f"{kind.code}: {kind.default_message}" for kind in kinds),
            "content": {
                "application/json": {
                    "schema": {
                        "allOf": [
                            {"$ref": _REF.format(model="Error")},
                            {"properties": {"error": {"properties": {"code": {"enum": codes}}}}},
                        ]
                    }
                }
            },
        }
    described["responses"] = responses
    return described


__all__ = ["AUTHS", "DOCUMENT_ROUTE", "Operation", "describe", "errors", "operation_id"]
