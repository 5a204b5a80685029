"""P10 (Log Files): every API call is logged with its organization identity, user identities,
identifying parameters, fault reason and total duration, and nothing of the request body; a
crash record names code locations, never the exception's message."""

from __future__ import annotations

from push365.audit.record import AuditRecord, crash_fields
from tests.privacy.conftest import ALICE, BOB, ORG

CANARY = "CANARY-10b"


def a_failed_call() -> AuditRecord:
    record = AuditRecord("send", "/", "POST", organization_id=ORG, status=422)
    record.add_users([BOB, ALICE])
    record.fault = {"code": "validation_failed", "message": "The body does not match."}
    record.duration_ms = 12.34
    return record


def test_an_api_call_record_keeps_organization_users_fault_and_duration() -> None:
    fields = a_failed_call().fields()

    assert fields["organization_id"] == ORG
    assert fields["user_ids"] == [BOB, ALICE]
    assert fields["fault"] == {"code": "validation_failed", "message": "The body does not match."}
    assert fields["duration_ms"] == 12.3
    assert (fields["function"], fields["route"], fields["status"]) == ("send", "/", 422)


def test_a_callers_idempotency_key_is_logged_only_as_a_hash() -> None:
    record = AuditRecord("send", "/", "POST")

    record.note_dedup_key(f"idempotency-key:{CANARY}")

    assert CANARY not in repr(record.fields())
    assert record.fields()["dedup_key"].startswith("sha256:")


def test_a_crash_record_never_carries_the_exceptions_message() -> None:
    try:
        raise ValueError(f"bad value {CANARY}")
    except ValueError as error:
        fields = crash_fields("send", error)

    assert CANARY not in repr(fields)
    assert fields["exception"] == "ValueError"
    assert fields["frames"]
