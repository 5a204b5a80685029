"""Mail messages, the notices that choose them, and the local outbox, over fakes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from push365.errors import ValidationFailed
from push365.mail import messages
from push365.mail.notices import AdminNotices
from push365.mail.port import Mail, OutboxMailer
from push365.model import validate
from push365.organizations.model import Organization, Registration
from tests.fakes import InMemoryOrganizationRepository

ORG = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class RecordingMailer:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[Mail] = []
        self.fail = fail

    def send(self, mail: Mail) -> None:
        if self.fail:
            raise ConnectionError("SES is down")
        self.sent.append(mail)


def organization(
    language_code: int = 1033, name: str = "Contoso", confirmed: bool = True
) -> Organization:
    registration = Registration.model_validate(
        {
            "organization": {
                "id": ORG,
                "unique_name": "unq",
                "name": name,
                "language_code": language_code,
            },
            "admins": [{"full_name": "Ada", "email": "ada@contoso.com"}, {"full_name": "No mail"}],
        }
    )
    registered = Organization.register(registration, "hash", NOW)
    emails = ["ada@contoso.com"] if confirmed else []
    return registered.model_copy(update={"confirmed_emails": emails})


@pytest.fixture
def world() -> tuple[AdminNotices, RecordingMailer, InMemoryOrganizationRepository]:
    repository = InMemoryOrganizationRepository()
    repository.add(organization())
    mailer = RecordingMailer()
    clock = iter(NOW + timedelta(hours=h) for h in range(0, 1000))
    notices = AdminNotices(
        mailer, repository, lambda f: f"https://x/{f}", clock=lambda: next(clock)
    )
    return notices, mailer, repository


@pytest.mark.parametrize(
    ("lcid", "language"), [(1033, "en"), (2057, "en"), (1031, "de"), (3079, "de"), (1036, "en")]
)
def test_the_language_follows_the_lcid_with_english_as_fallback(lcid: int, language: str) -> None:
    assert messages.language_of(lcid) == language


def test_values_are_escaped_in_html() -> None:
    rendered = messages.registration_confirmed("en", "<b>Evil & Co</b>", "u", ORG, {})

    assert "<b>Evil" not in rendered.html
    assert "&lt;b&gt;Evil &amp; Co&lt;/b&gt;" in rendered.html
    assert "<b>Evil & Co</b>" in rendered.text


def test_registration_mail_names_the_webhook_urls(
    world: tuple[AdminNotices, RecordingMailer, object],
) -> None:
    notices, mailer, _ = world

    notices.registration_confirmed(organization())

    (mail,) = mailer.sent
    assert mail.to == ("ada@contoso.com",)
    assert "https://x/register/users" in mail.text
    assert "https://x/send" in mail.html


def test_alerts_go_at_most_once_a_day(
    world: tuple[AdminNotices, RecordingMailer, InMemoryOrganizationRepository],
) -> None:
    notices, mailer, _ = world

    for _ in range(30):  # the clock moves an hour each call: 30 hours
        notices.delivery_problem(ORG, "reason", 10, 9)

    assert len(mailer.sent) == 2  # hour 0 and hour 24


def test_a_mail_failure_does_not_raise() -> None:
    notices = AdminNotices(RecordingMailer(fail=True), InMemoryOrganizationRepository(), str)

    notices.key_rotated(organization(), None)  # no exception


def test_the_outbox_writes_one_file_per_message(tmp_path: Path) -> None:
    OutboxMailer(tmp_path / "outbox").send(
        Mail(("a@b.c",), "Subject: hello", "text", "<p>html</p>")
    )

    (path,) = (tmp_path / "outbox").iterdir()
    assert json.loads(path.read_text()) == {
        "to": ["a@b.c"],
        "subject": "Subject: hello",
        "text": "text",
        "html": "<p>html</p>",
    }


def test_no_mail_reaches_an_address_before_it_is_confirmed(
    world: tuple[AdminNotices, RecordingMailer, object],
) -> None:
    notices, mailer, _ = world
    unconfirmed = organization(confirmed=False)

    notices.registration_confirmed(unconfirmed)
    notices.key_rotated(unconfirmed, None)
    notices.data_erased(unconfirmed, "user", {"users": 1})

    assert mailer.sent == []


def test_a_confirmation_request_goes_to_its_address_alone_with_its_link(
    world: tuple[AdminNotices, RecordingMailer, object],
) -> None:
    notices, mailer, _ = world

    notices.confirmation_requests(organization(confirmed=False), {"ada@contoso.com": "p365c.t"})

    (mail,) = mailer.sent
    assert mail.to == ("ada@contoso.com",)
    assert "https://x/register/confirm-email?token=p365c.t" in mail.text


@pytest.mark.parametrize("bad", ["Contoso\r\nBcc: x@evil.test", "Contoso\nX", "Contoso\x00"])
def test_caller_text_that_reaches_a_mail_header_is_one_line(bad: str) -> None:
    with pytest.raises(ValidationFailed):
        validate(
            Registration,
            {"organization": {"id": ORG, "unique_name": "u", "name": bad, "language_code": 1033}},
        )
    with pytest.raises(ValidationFailed):
        validate(
            Registration,
            {
                "organization": {"id": ORG, "unique_name": "u", "name": "C", "language_code": 1033},
                "admins": [{"email": "a@b.test\r\nBcc: x@evil.test"}],
            },
        )
    with pytest.raises(ValueError, match="control character"):
        Mail(("a@b.test",), bad, "text", "html")
