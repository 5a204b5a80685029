"""Logs as code (infra/logging.tf): the functions' Cloud Run request logs, whose URLs may hold an
organization key (``?code=``), are kept out of every log bucket, and the API call records reach
their own bucket. The filters are evaluated, not just read: a small evaluator of the Logging
query language's forms infra/ uses (AND of ``field="value"``, ``field=~"regex"`` and
``log_id("...")``) runs them over log entries shaped as Cloud Logging writes them."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.unit.test_infra import terraform

_CLAUSE = re.compile(
    r'^(?:log_id\("(?P<log_id>[^"]+)"\)'
    r'|(?P<field>[A-Za-z_][\w.]*)\s*(?P<op>=~|=)\s*"(?P<value>[^"]*)")$'
)


def matches(log_filter: str, entry: dict[str, Any], name_prefix: str = "push365") -> bool:
    """Whether ``entry`` matches ``log_filter`` (``${var.name_prefix}`` as ``name_prefix``)."""
    log_filter = log_filter.replace("${var.name_prefix}", name_prefix).replace('\\"', '"')
    for clause in re.split(r"\s+AND\s+", log_filter.strip()):
        match = _CLAUSE.match(clause.strip())
        if match is None:
            raise ValueError(f"a filter clause this test cannot evaluate: {clause!r}")
        if match["log_id"] is not None:
            if entry["logName"].split("/logs/", 1)[1] != match["log_id"].replace("/", "%2F"):
                return False
            continue
        found: Any = entry
        for key in match["field"].split("."):
            found = found.get(key) if isinstance(found, dict) else None
        if found is None:
            return False
        if match["op"] == "=" and str(found) != match["value"]:
            return False
        if match["op"] == "=~" and re.search(match["value"], str(found)) is None:
            return False
    return True


def entry(log: str, service: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Cloud Run log entry as Cloud Logging stores it."""
    record: dict[str, Any] = {
        "logName": f"projects/p/logs/{log.replace('/', '%2F')}",
        "resource": {
            "type": "cloud_run_revision",
            "labels": {"service_name": service, "revision_name": f"{service}-00001-abc"},
        },
    }
    if payload is not None:
        record["jsonPayload"] = payload
    else:
        record["httpRequest"] = {
            "requestMethod": "POST",
            "requestUrl": f"https://{service}-x.a.run.app/?code=p365.secret",
        }
    return record


REQUEST = entry("run.googleapis.com/requests", "push365-send")
API_CALL = entry("run.googleapis.com/stdout", "push365-send", {"event": "api_call"})
OTHER_SERVICE = entry("run.googleapis.com/requests", "someone-elses-service")


@pytest.fixture(scope="module")
def tf() -> dict[str, Any]:
    return terraform()


def test_the_functions_request_logs_are_excluded_from_the_default_sink(tf: dict[str, Any]) -> None:
    exclusions = tf["resource"]["google_logging_project_exclusion"]
    active = [e for e in exclusions.values() if e.get("disabled", False) is False]

    # A request log of every function (the Cloud Run services are "<name_prefix>-<function>").
    for function in ("send", "register", "subscribe", "deliver", "purge"):
        request = entry("run.googleapis.com/requests", f"push365-{function}")
        assert any(matches(e["filter"], request) for e in active), function
    # Not the API call records (the metrics and the audit bucket need them), not other services.
    assert not any(matches(e["filter"], API_CALL) for e in active)
    assert not any(matches(e["filter"], OTHER_SERVICE) for e in active)
    # With another prefix, its own services.
    other_stack = entry("run.googleapis.com/requests", "staging-send")
    assert any(matches(e["filter"], other_stack, name_prefix="staging") for e in active)


def test_the_audit_sink_takes_api_call_records_and_no_request_log(tf: dict[str, Any]) -> None:
    sink = tf["resource"]["google_logging_project_sink"]["audit"]

    assert matches(sink["filter"], API_CALL)
    assert not matches(sink["filter"], REQUEST)
    assert "exclusions" not in sink or all(
        not matches(e["filter"], API_CALL) for e in sink["exclusions"]
    )


def test_the_evaluator_refuses_what_it_cannot_read() -> None:
    assert matches('resource.labels.service_name=~"^push365-"', REQUEST)
    assert not matches('log_id("run.googleapis.com/stdout")', REQUEST)
    with pytest.raises(ValueError, match="cannot evaluate"):
        matches('resource.type="cloud_run_revision" OR severity>=ERROR', REQUEST)
