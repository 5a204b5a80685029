"""A crash record is an Error Reporting event built from code locations only."""

from __future__ import annotations

import json
from typing import Any

from push365.audit.record import ERROR_EVENT_TYPE, crash_fields, log_unhandled

CANARY = "CANARY-4f1d-secret-value"


class Boom(RuntimeError):
    pass


def _fail(value: str) -> None:
    raise Boom(f"could not handle {value}")


def _crash() -> BaseException:
    try:
        _fail(CANARY)
    except Boom as error:
        return error
    raise AssertionError("unreachable")


def test_a_crash_record_is_an_error_reporting_event_without_values() -> None:
    fields = crash_fields("send", _crash())
    stack = fields["stack_trace"]
    lines = stack.splitlines()

    assert fields["@type"] == ERROR_EVENT_TYPE
    assert fields["serviceContext"] == {"service": "send"}
    assert lines[0] == "Traceback (most recent call last):"
    assert all(line.startswith('  File "') and ", line " in line for line in lines[1:-1])
    assert lines[-2].endswith(", in _fail")
    assert "test_crash_record.py" in lines[-2]
    assert lines[-1] == f"{__name__}.Boom"  # the type alone: no message
    location = fields["context"]["reportLocation"]
    assert location["functionName"] == "_fail"
    assert location["lineNumber"] > 0
    assert CANARY not in json.dumps(fields)
    assert "raise Boom" not in stack  # no source lines either


def test_the_logged_line_carries_the_stack_as_its_message(capsys: Any) -> None:
    log_unhandled("send", _crash())

    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert line["severity"] == "ERROR"
    assert line["@type"] == ERROR_EVENT_TYPE
    assert line["message"] == line["stack_trace"]
    assert line["message"].startswith("Traceback (most recent call last):")
    assert line["event"] == "unhandled_exception"
    assert CANARY not in json.dumps(line)
