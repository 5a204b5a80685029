"""P7 (Notification Information): notifications are excluded from log files; a log record of a
notification drops the request body and keeps only identifying parameters."""

from __future__ import annotations

from push365.audit.record import AuditRecord
from push365.fcm.model import WebPush
from push365.notifications.model import SendRequest
from tests.privacy.conftest import BOB

CANARY = "CANARY-7f3e"


def test_an_answer_leaves_only_counts_ids_and_codes_on_the_record() -> None:
    record = AuditRecord("send", "/", "POST")

    record.note_response(
        {
            "title": CANARY,
            "notification_id": CANARY,
            "subscription_id": f"{'a' * 32} {CANARY}",
            "reason_code": CANARY,
            "recipients": CANARY,
            "devices": 2,
            "deleted": {CANARY: 1, "dedup_keys": 3},
        }
    )

    fields = record.fields()
    assert CANARY not in repr(fields)
    assert fields["counts"] == {"devices": 2, "deleted.dedup_keys": 3}


def test_a_send_request_and_its_content_never_show_in_a_repr() -> None:
    request = SendRequest(recipients=[BOB], title=CANARY, body=CANARY, data={"k": CANARY})
    push = WebPush(title=CANARY, body=CANARY, data={"k": CANARY})

    shown = [repr(request), str(request), repr(push), str(push), repr(request.web_push())]

    assert not [s for s in shown if CANARY in s]
