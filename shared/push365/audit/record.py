"""The audit record and where it is written (google-cloud-logging's structured logging)."""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from push365.model import recorded_dedup_key
from push365.settings import get_settings

AUDIT_LOGGER = "push365.audit"
MAX_USER_IDS = 20

# Response keys whose integer values are summaries worth keeping, and ids worth keeping.
COUNT_KEYS = frozenset(
    {
        "upserted",
        "removed",
        "subscriptions_removed",
        "unsubscribed",
        "recipients",
        "devices",
        "sent",
        "failed",
        "removed_tokens",
        "rules",
        "users",
        "subscriptions",
        "notifications",
        "deliveries",
        "dedup_keys",
        "organizations",
        "deleted",
        "erased",
        "teams_skipped",
    }
)
ID_KEYS = frozenset({"organization_id", "subscription_id", "notification_id"})
# Why a call did nothing (a Dataverse event no rule sends for): a code from a fixed set.
REASON_CODE_KEY = "reason_code"
_CODE = re.compile(r"^[a-z_]{1,40}$")
_ID = re.compile(r"^[0-9a-f-]{32,64}$")


@dataclass
class AuditRecord:
    """One API call. Each field is an allow-listed, content-free fact about it."""

    function: str
    route: str
    method: str
    organization_id: str | None = None
    api_key: str | None = None  # which key authenticated: "current" or "previous", never the key
    user_ids: list[str] = field(default_factory=list)
    dataverse_message: str | None = None
    dataverse_table: str | None = None
    dataverse_entity_id: str | None = None
    dedup_key: str | None = None
    ids: dict[str, str] = field(default_factory=dict)
    status: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    fault: dict[str, str] | None = None
    reason_code: str | None = None
    duration_ms: float = 0.0

    def add_users(self, user_ids: Iterable[str]) -> None:
        """Note the users a call is about (ids only; the first few when there are many)."""
        for user_id in user_ids:
            if len(self.user_ids) >= MAX_USER_IDS:
                self.counts["user_ids_not_logged"] = self.counts.get("user_ids_not_logged", 0) + 1
            elif user_id not in self.user_ids:
                self.user_ids.append(user_id)

    def note_dedup_key(self, key: str) -> None:
        """A Dataverse operation key (ids only) as is; a caller's Idempotency-Key as a hash."""
        self.dedup_key = recorded_dedup_key(key)

    def note_response(self, body: Mapping[str, Any]) -> None:
        """Keep the summary of an answer: allow-listed counts and ids, nothing else."""
        for key, value in body.items():
            if key in COUNT_KEYS and isinstance(value, int) and not isinstance(value, bool):
                self.counts[key] = value
            elif key in COUNT_KEYS and isinstance(value, Mapping):
                for kind, count in value.items():
                    if isinstance(count, int) and re.fullmatch(r"[a-z_]{1,40}", str(kind)):
                        self.counts[f"{key}.{kind}"] = count
            elif key in ID_KEYS and isinstance(value, str) and _ID.match(value):
                self.ids[key] = value
            elif key == REASON_CODE_KEY and isinstance(value, str) and _CODE.match(value):
                self.reason_code = value

    def fields(self) -> dict[str, Any]:
        """The JSON fields of the log entry."""
        entry: dict[str, Any] = {
            "event": "api_call",
            "function": self.function,
            "route": self.route,
            "method": self.method,
            "status": self.status,
            "duration_ms": round(self.duration_ms, 1),
        }
        optional = {
            "organization_id": self.organization_id,
            "api_key": self.api_key,
            "user_ids": self.user_ids or None,
            "dataverse_message": self.dataverse_message,
            "dataverse_table": self.dataverse_table,
            "dataverse_entity_id": self.dataverse_entity_id,
            "dedup_key": self.dedup_key,
            "counts": self.counts or None,
            "fault": self.fault,
            "reason_code": self.reason_code,
            **self.ids,
        }
        entry.update({k: v for k, v in optional.items() if v is not None})
        return entry


_current: contextvars.ContextVar[AuditRecord | None] = contextvars.ContextVar(
    "push365_audit_record", default=None
)


def begin(record: AuditRecord) -> contextvars.Token[AuditRecord | None]:
    """Make ``record`` the one this request's code notes faults on."""
    return _current.set(record)


def end(token: contextvars.Token[AuditRecord | None]) -> None:
    """The request is over."""
    _current.reset(token)


def note_fault(code: str, message: str) -> None:
    """A failure that does not change the answer (mail, alerts): noted on the current record.

    ``message`` must be a fixed text or an exception's type name, never request data.
    """
    record = _current.get()
    if record is not None and record.fault is None:
        record.fault = {"code": code, "message": message}


def note_counts(counts: Mapping[str, int]) -> None:
    """Counts a use case worked through (devices, sent, ...): noted on the current record."""
    record = _current.get()
    if record is None:
        return
    for name, count in counts.items():
        if isinstance(count, int) and re.fullmatch(r"[a-z_]{1,40}", name):
            record.counts[name] = count


def emit(record: AuditRecord) -> None:
    """Write the record: one JSON line on stdout, as Cloud Functions' logging agent reads it."""
    severity = (
        logging.ERROR
        if record.status >= 500
        else logging.WARNING
        if record.status >= 400
        else logging.INFO
    )
    message = f"{record.function} {record.method} {record.route} {record.status}"
    _logger().log(severity, message, extra=_extra(record.fields(), record))


# Error Reporting reads a log entry as an error event when its payload carries this type.
ERROR_EVENT_TYPE = (
    "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
)


def crash_fields(function: str, error: BaseException) -> dict[str, Any]:
    """A crash record in Error Reporting's format, built from code locations only: never the
    exception's message or the source lines (an exception's text can carry request values)."""
    frames = traceback.extract_tb(error.__traceback__)
    where = [f"{frame.filename}:{frame.lineno} in {frame.name}" for frame in frames]
    # Python's own traceback layout, which Error Reporting parses, minus the source lines and
    # the message: "Traceback ...", one "File" line per frame, then the exception's type alone.
    stack = "\n".join(
        [
            "Traceback (most recent call last):",
            *(f'  File "{f.filename}", line {f.lineno}, in {f.name}' for f in frames),
            _qualified_name(type(error)),
        ]
    )
    fields: dict[str, Any] = {
        "@type": ERROR_EVENT_TYPE,
        "event": "unhandled_exception",
        "function": function,
        "exception": type(error).__name__,
        "frames": where,
        "stack_trace": stack,
        "serviceContext": {"service": function},
    }
    if frames:
        last = frames[-1]
        fields["context"] = {
            "reportLocation": {
                "filePath": last.filename,
                "lineNumber": last.lineno,
                "functionName": last.name,
            }
        }
    return fields


def log_unhandled(function: str, error: BaseException) -> None:
    """A crash, for debugging and Error Reporting: the exception's type and code locations."""
    fields = crash_fields(function, error)
    _logger().error(
        "%s", fields["stack_trace"], extra={"json_fields": fields, "http_request": None}
    )


def _qualified_name(kind: type[BaseException]) -> str:
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _extra(fields: dict[str, Any], record: AuditRecord) -> dict[str, Any]:
    # httpRequest is given explicitly: the library would otherwise log the full URL, and the
    # query string can hold the organization key (?code=).
    http_request = {
        "requestMethod": record.method,
        "requestUrl": f"/{record.function}{record.route if record.route != '/' else ''}",
        "status": record.status,
        "latency": f"{record.duration_ms / 1000:.3f}s",
    }
    return {"json_fields": fields, "http_request": http_request, **_trace()}


_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{1,20}")


def _trace() -> dict[str, Any]:
    """Cloud Logging's trace fields from the request's trace header, only when it has the
    documented shape (32 hex digits, a span id of at most 20): the header is the caller's text,
    and the library would otherwise copy it into every line at any length."""
    from push365.seams.cloud_logging import request_trace

    trace, span, sampled = request_trace()
    if not (trace and _TRACE_ID.fullmatch(trace) and (not span or _SPAN_ID.fullmatch(span))):
        return {"trace": "", "span_id": "", "trace_sampled": False}
    project = get_settings().project_id
    return {
        "trace": f"projects/{project}/traces/{trace}",
        "span_id": span or "",
        "trace_sampled": bool(sampled),
    }


class _Stdout:
    """Whatever ``sys.stdout`` is when a record is written (frameworks and tests replace it)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@lru_cache(maxsize=1)
def _logger() -> logging.Logger:
    from google.cloud.logging_v2.handlers.structured_log import StructuredLogHandler

    from push365.seams.cloud_logging import skip_instrumentation_entry

    # The handler's one-off "instrumentation" entry copies the current request's full URL into
    # httpRequest, and a query string can hold an organization key: it is never written.
    skip_instrumentation_entry()

    logger = logging.getLogger(AUDIT_LOGGER)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = StructuredLogHandler(project_id=get_settings().project_id, stream=_Stdout())
    logger.addHandler(handler)
    return logger
