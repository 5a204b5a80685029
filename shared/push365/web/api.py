"""HTTP translation for the Cloud Functions: routing, reading bodies, JSON answers and errors.

Each function in ``functions/`` builds one :class:`Api` from its routes, each with its
:class:`~push365.web.openapi.Operation`. Before a handler runs, the Api does what the route
declares: it lets the call in by ``auth`` (the organization lands on ``request.organization``),
counts it against its ``quota`` and reads its ``query`` model (``request.parsed(Model)``). The
handler reads its body through :class:`ApiRequest`, calls one use case and returns
``(status, body)``.
Whatever goes wrong becomes ``{"error": {"code", "message"}}`` with a 4xx status, built from
fixed texts so that no request value is ever echoed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import flask
import werkzeug.exceptions
from google.api_core import exceptions as google_exceptions
from pydantic import BaseModel, ValidationError

from push365.audit import AuditRecord, begin, emit, end, log_unhandled
from push365.dataverse import (
    SIZE_EXCEEDED_HEADER,
    ExecutionContext,
    NotHandled,
    is_execution_context,
    parse_execution_context,
)
from push365.errors import (
    CurrentKeyRequired,
    Forbidden,
    InternalError,
    InvalidJson,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Push365Error,
    QuotaExceeded,
    QuotaExceededRetryable,
    StoreUnavailable,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
    for_status,
)
from push365.model import InputModel, safe_error_details, validate
from push365.organizations.model import Authenticated, Organization
from push365.quotas import QUOTA_CLASSES
from push365.settings import get_settings
from push365.web.guards import Guards, default_guards
from push365.web.openapi import DOCUMENT_ROUTE, Operation, describe, operation_id

API_KEY_HEADER = "X-Push365-Key"
ADMIN_KEY_HEADER = "X-Push365-Admin-Key"
MAX_JSON_DEPTH = 32
"""The deepest nesting a body may have (Dataverse's own bodies reach about 8)."""
_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")
API_KEY_QUERY = "code"


@dataclass(frozen=True)
class Page:
    """An HTML answer: the one page a person opens from mail (the address confirmation), built
    from fixed texts only. Served with a policy that lets it run no script, load nothing and be
    framed by no one, and that sends no referrer (its URL carries a token)."""

    html: str


Reply = tuple[int, Mapping[str, Any] | Page]
Handler = Callable[["ApiRequest"], Reply]
M = TypeVar("M", bound=InputModel)
C = TypeVar("C")

# A store that does not answer, or answers with an error no use case expected (contention that
# outlasted its retries, an internal error), is worth one retry by Dataverse (it retries
# 502/503/504 once): 503, never 500.
_UNAVAILABLE = (google_exceptions.GoogleAPICallError, google_exceptions.RetryError)


class ApiRequest:
    """One request as a handler sees it."""

    def __init__(self, request: flask.Request, audit: AuditRecord) -> None:
        self._request = request
        self._body: dict[str, Any] | None = None
        self.audit = audit
        """This call's audit record: handlers note ids on it, never request content."""
        self.context: ExecutionContext | None = None
        """The Dataverse context, once :meth:`command` has read one."""
        self.authenticated: Authenticated | None = None
        """Whose key let the call in (set by :class:`Api` from the route's ``auth``)."""
        self._query: BaseModel | None = None

    @property
    def organization(self) -> Organization:
        """The organization whose key let the call in.

        Raises:
            Unauthorized: no key did (a route whose ``auth`` lets a call in without one).
        """
        if self.authenticated is None:
            raise Unauthorized()
        return self.authenticated.organization

    def parsed(self, model: type[M]) -> M:
        """The query, as the route's declared query model read it."""
        if not isinstance(self._query, model):
            raise TypeError(f"the route declares no query model {model.__name__}")
        return self._query

    def authenticate(
        self,
        authenticator: Callable[[str | None], Authenticated],
        *,
        previous_key: bool = False,
    ) -> Organization:
        """The organization whose key the request carries (noted on the audit record, with
        which of its keys it was).

        Only the current key passes, unless ``previous_key``: a route that does what a Dataverse
        webhook does (send, users, subscribe, unsubscribe) also takes the previous key during
        its overlap, so that rotating breaks no webhook; nothing else does (a leaked key that
        was rotated away cannot rotate, revoke, replace administrators, change rules, read or
        erase).

        Raises:
            Unauthorized: see the authenticator.
            QueryKeyRefused: the key came in ``?code=`` and the organization refuses that.
            CurrentKeyRequired: the previous key, on a route that needs the current one.
        """
        return self.identify(authenticator, previous_key=previous_key).organization

    def identify(
        self,
        authenticator: Callable[[str | None], Authenticated],
        *,
        previous_key: bool = False,
    ) -> Authenticated:
        """:meth:`authenticate`, answering which key it was too."""
        authenticated = authenticator(self.api_key)
        self.audit.organization_id = authenticated.organization.id
        self.audit.api_key = authenticated.key
        authenticated.organization.check_key_source(self.key_in_query)
        if authenticated.key != "current" and not previous_key:
            raise CurrentKeyRequired()
        return authenticated

    @property
    def caller(self) -> str:
        """Where the request came from, for throttles: the address the platform's front end
        appended to ``X-Forwarded-For`` (its last entry: earlier ones are the caller's own
        text), else the peer's address."""
        forwarded = self._request.headers.get("X-Forwarded-For", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        return (last or self._request.remote_addr or "unknown")[:64]

    def query(self, name: str) -> str | None:
        """A query parameter, or None."""
        return self._request.args.get(name)

    @property
    def api_key(self) -> str | None:
        """The organization key: header ``X-Push365-Key``, else query parameter ``code``."""
        return self._request.headers.get(API_KEY_HEADER) or self._request.args.get(API_KEY_QUERY)

    @property
    def key_in_query(self) -> bool:
        """Whether the key came in query parameter ``code`` (no header): the platform's request
        logs keep it, with the rest of the URL."""
        return not self._request.headers.get(API_KEY_HEADER) and bool(
            self._request.args.get(API_KEY_QUERY)
        )

    @property
    def has_body(self) -> bool:
        """Whether the request carries a body at all."""
        return bool(self._request.content_length) or self._request.content_type is not None

    def header(self, name: str) -> str | None:
        """A request header, or None."""
        return self._request.headers.get(name)

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object.

        Raises:
            UnsupportedMediaType: not sent as application/json.
            PayloadTooLarge: over the configured limit (256 KB, Dataverse's own limit).
            InvalidJson: not JSON, or JSON that is not an object.
        """
        if self._body is None:
            self._body = _read_json_object(self._request, get_settings().max_body_bytes)
        return self._body

    def command(
        self,
        model: type[M],
        organization: Organization,
        from_context: Callable[[ExecutionContext], C],
    ) -> M | C:
        """The use case's input from either body shape: plain JSON, or a Dataverse context.

        Raises:
            Forbidden: a Dataverse body of another organization than the key's.
            ValidationFailed: the body does not give what the use case needs.
        """
        body = self.json_object()
        if not is_execution_context(body):
            return validate(model, body)
        context = parse_execution_context(
            body, size_exceeded=self.header(SIZE_EXCEEDED_HEADER) is not None
        )
        self.audit.dataverse_message = _logged_name(context.message_name)
        self.audit.dataverse_table = _logged_name(context.primary_entity_name)
        self.audit.dataverse_entity_id = context.primary_entity_id
        if context.organization_id != organization.id:
            raise Forbidden()
        self.context = context
        return from_context(context)


@dataclass(frozen=True)
class Cors:
    """A route browsers on any origin may call: the methods and request headers a preflight
    allows. Any origin, because nothing rides on the browser's cookies: a receipt is its own
    proof, and the stats route needs the organization key in a header the page sets."""

    methods: str
    headers: str


class Api:
    """The routes of one Cloud Function, and the translation of its errors."""

    def __init__(
        self,
        function: str,
        routes: Mapping[str, Mapping[str, Handler]],
        *,
        operations: Mapping[tuple[str, str], Operation],
        cors: Mapping[str, Cors] | None = None,
        guards: Guards | None = None,
    ) -> None:
        """
        Args:
            function: the function's name, for logs.
            routes: path (relative to the function's URL, ``/`` for its root) -> method -> handler.
            operations: (path, method) -> what the route reads and answers, how it is let in
                and counted: one for every route. The function also answers
                ``GET /openapi.json``, its OpenAPI 3.1 description (no key, no quota: it reads
                nothing).
            cors: path -> what browsers from any origin may call there (the service worker's
                receipts, the delivery report page).
            guards: the checks behind ``auth`` and ``quota`` (default: the deployed ones).
        """
        self.function = function
        self._cors = dict(cors or {})
        self._operations = dict(operations)
        self._guards = guards
        missing = {(p, m) for p, methods in routes.items() for m in methods} - set(operations)
        if missing:
            raise ValueError(f"{function}: routes without an Operation: {sorted(missing)}")
        self._routes = {**routes, DOCUMENT_ROUTE: {"GET": self._describe}}

    def with_guards(self, guards: Guards) -> Api:
        """The same routes behind other checks (another instance, as a test runs it)."""
        routes = {p: m for p, m in self._routes.items() if p != DOCUMENT_ROUTE}
        return Api(
            self.function, routes, operations=self._operations, cors=self._cors, guards=guards
        )

    @property
    def operations(self) -> Mapping[tuple[str, str], Operation]:
        """(path, method) -> the route's operation."""
        return self._operations

    def openapi(self) -> dict[str, Any]:
        """This function's OpenAPI 3.1 description, from its routes and their models."""
        routes = {path: m for path, m in self._routes.items() if path != DOCUMENT_ROUTE}
        return describe(self.function, routes, self._operations)

    def _describe(self, _request: ApiRequest) -> Reply:
        return 200, self.openapi()

    def handle(self, request: flask.Request) -> flask.Response:
        """Answer one request, and write its one audit record."""
        started = time.perf_counter()
        path = "/" + request.path.strip("/")
        # An unknown path is the caller's text: it is not logged.
        route = path if path in self._routes else "(unknown)"
        audit = AuditRecord(function=self.function, route=route, method=request.method)
        token = begin(audit)
        try:
            response = self._answer(request, path, audit)
        finally:
            end(token)
        if path in self._cors:
            response.headers["Access-Control-Allow-Origin"] = "*"
        audit.status = response.status_code
        audit.duration_ms = (time.perf_counter() - started) * 1000
        emit(audit)
        return response

    def _answer(self, request: flask.Request, path: str, audit: AuditRecord) -> flask.Response:
        cors = self._cors.get(path)
        if cors is not None and request.method == "OPTIONS":
            preflight = flask.Response(status=204)
            preflight.headers["Access-Control-Allow-Methods"] = cors.methods
            preflight.headers["Access-Control-Allow-Headers"] = cors.headers
            preflight.headers["Access-Control-Max-Age"] = "86400"
            return preflight
        try:
            status, body = self._dispatch(request, path, audit)
        except Push365Error as error:
            audit.fault = {"code": error.code, "message": error.message}
            return _error_response(error)
        except _UNAVAILABLE as error:
            audit.fault = {"code": StoreUnavailable.code, "message": type(error).__name__}
            return _error_response(StoreUnavailable())
        except Exception as error:  # noqa: BLE001 - the last line of defence: a 500 that says nothing
            audit.fault = {"code": "internal", "message": type(error).__name__}
            log_unhandled(self.function, error)
            return _error_response(InternalError())
        if isinstance(body, Page):
            return _page_response(status, body)
        audit.note_response(body)
        return _json_response(status, body)

    def _dispatch(self, request: flask.Request, path: str, audit: AuditRecord) -> Reply:
        methods = self._routes.get(path)
        if methods is None:
            raise NotFound()
        handler = methods.get(request.method)
        if handler is None:
            raise MethodNotAllowed(list(methods))
        api_request = ApiRequest(request, audit)
        operation = self._operations.get((path, request.method))
        if operation is not None:  # (none: this function's own description)
            self._admit(api_request, operation, operation_id(self.function, path, request.method))
        return handler(api_request)

    def _admit(self, request: ApiRequest, operation: Operation, route: str) -> None:
        """What the route declares, before its handler: let the call in by ``auth``, count it
        against its ``quota``, read its ``query``."""
        guards = self._guards or default_guards()
        auth = operation.auth
        if auth in ("key", "webhook") or (auth == "optional" and request.api_key is not None):
            request.authenticated = request.identify(guards.identify, previous_key=auth != "key")
        elif auth == "admin":
            guards.operator(request.header(ADMIN_KEY_HEADER))
        elif auth == "purge":
            audience = get_settings().purge_audience or f"https://{request.header('Host')}"
            guards.scheduler(
                request.header("Authorization"), request.header(ADMIN_KEY_HEADER), audience
            )
        self._count(request, operation, route, guards)
        if operation.query is not None:
            request._query = _read_query(request, operation.query)

    @staticmethod
    def _count(request: ApiRequest, operation: Operation, route: str, guards: Guards) -> None:
        quotas = guards.quotas()
        organization = request.authenticated.organization.id if request.authenticated else None
        if quotas is None or (
            QUOTA_CLASSES[operation.quota].scope == "organization" and organization is None
        ):
            return  # (keyless use of an organization's route, registering: signup throttles)
        try:
            quotas.check(
                route, operation.quota, organization_id=organization, caller=request.caller
            )
        except QuotaExceeded as refused:
            if operation.dataverse and _is_dataverse(request):
                raise QuotaExceededRetryable(refused.retry_after) from None
            raise
        except _UNAVAILABLE:
            # Fail open: the quota guards cost, not access (the call is authenticated), and
            # a call that needs the store meets its own 503 if the store is really out.
            request.audit.counts["quota_unchecked"] = 1


def json_errors(errorhandler: Callable[[Any], Callable[[Any], Any]]) -> None:
    """Make functions-framework's own answers JSON from the error table too: its 404 for
    ``/robots.txt`` and ``/favicon.ico``, a 400 for a body it cannot read, and any 500.

    Call it at a function module's import with ``functions_framework.errorhandler``.
    """

    def http_error(error: werkzeug.exceptions.HTTPException) -> flask.Response:
        allowed = getattr(error, "valid_methods", None) or ()
        methods = sorted({method for method in allowed if method not in ("HEAD", "OPTIONS")})
        return _error_response(for_status(error.code or 500, methods))

    def crash(error: Exception) -> flask.Response:
        original = getattr(error, "original_exception", None) or error
        if isinstance(original, OSError | ValueError):
            # functions-framework reads the rest of the body after the function answered: a
            # broken chunked body fails there, and that is the caller's doing
            return _error_response(for_status(400))
        log_unhandled("functions-framework", original)
        return _error_response(InternalError())

    errorhandler(werkzeug.exceptions.HTTPException)(http_error)
    errorhandler(Exception)(crash)
    errorhandler(500)(crash)  # an error after the function answered (reading the rest of a body)
    if flask.has_app_context():
        # Flask's own exception log carries the exception's message, which can quote the
        # request; crash records (code locations only) are written instead.
        flask.current_app.logger.disabled = True


def _is_dataverse(request: ApiRequest) -> bool:
    """Whether the body is a Dataverse webhook's (read only for a call refused by its quota)."""
    try:
        return is_execution_context(request.json_object())
    except Push365Error:
        return False


def _read_query(request: ApiRequest, model: type[BaseModel]) -> BaseModel:
    """The query parameters the model names, validated (the others are not read).

    Raises:
        ValidationFailed: with the model's ``INVALID`` message, else a general one.
    """
    values = {name: request.query(name) for name in model.model_fields}
    present = {name: value for name, value in values.items() if value is not None}
    try:
        return model.model_validate(present)
    except ValidationError as error:
        message = getattr(model, "INVALID", "A query parameter is not valid.")
        raise ValidationFailed(message, safe_error_details(error, model)) from None


def ignored(outcome: NotHandled) -> Reply:
    """The answer to a Dataverse body this function has no use for."""
    return 200, outcome.answer()


def _logged_name(name: str | None) -> str | None:
    """A Dataverse message or table name as logged: its documented shape, else ``(other)``."""
    if name is None or _NAME.fullmatch(name):
        return name
    return "(other)"


def _read_json_object(request: flask.Request, limit: int) -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge()
    try:
        raw = request.stream.read(limit + 1)
    except (OSError, ValueError, werkzeug.exceptions.HTTPException):
        # a broken chunked body, or a client gone mid-body
        raise InvalidJson("The body could not be read.") from None
    if len(raw) > limit:
        raise PayloadTooLarge()
    if _nesting(raw) > MAX_JSON_DEPTH:
        raise InvalidJson("The body is nested too deeply.")
    try:
        body = json.loads(raw.decode("utf-8-sig"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidJson() from None
    if not isinstance(body, dict):
        raise InvalidJson("The body must be a JSON object.")
    return body


def _nesting(raw: bytes) -> int:
    """How deeply arrays and objects nest, counted before parsing (strings left out): parsing
    and validating a body nested thousands deep would exhaust Python's recursion."""
    deepest = depth = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub(b"", raw)):
        depth += 1 if bracket in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _reject_constant(_name: str) -> None:
    raise ValueError("NaN and Infinity are not JSON")


def _error_response(error: Push365Error) -> flask.Response:
    payload: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details:
        payload["details"] = error.details
    response = _json_response(error.status, {"error": payload})
    if isinstance(error, MethodNotAllowed):
        response.headers["Allow"] = ", ".join(error.allowed)
    if isinstance(error, TooManyRequests):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def _page_response(status: int, page: Page) -> flask.Response:
    response = flask.Response(page.html, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _json_response(status: int, body: Mapping[str, Any]) -> flask.Response:
    if status == 204:
        response = flask.Response(status=204)
    else:
        response = flask.Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response
