"""Mail messages, the notices that choose them, and the local outbox, over fakes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from push365.errors import ValidationFailed
from push365.mail import messages, pages
from push365.mail.limits import MailLimits, MailQuota
from push365.mail.notices import AdminNotices
from push365.mail.port import Mail, OutboxMailer
from push365.model import validate
from push365.organizations.model import Organization, Registration
from push365.organizations.service import OrganizationService
from tests.fakes import InMemoryMailCounters, InMemoryOrganizationRepository

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


# Issue 27, item 3: the mail limits, fixed subjects, and the confirmation page.

BAIT = "BAIT-9c1e Win a prize"


class Day:
    """A clock the test moves by whole days."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def limited(
    limits: MailLimits | None = None,
) -> tuple[OrganizationService, RecordingMailer, Day, InMemoryMailCounters]:
    repository = InMemoryOrganizationRepository()
    mailer = RecordingMailer()
    day = Day()
    counters = InMemoryMailCounters()
    notices = AdminNotices(
        mailer,
        repository,
        lambda f: f"https://x/{f}",
        clock=day,
        quota=MailQuota(counters, limits or MailLimits(), day),
    )
    return OrganizationService(repository, clock=day, notices=notices), mailer, day, counters


def registered(
    service: OrganizationService, org: str = ORG, emails: tuple[str, ...] = ("ada@contoso.com",)
) -> str:
    key = service.register(update(org, emails), None).api_key
    assert key
    return key


def update(org: str, emails: tuple[str, ...], name: str = "Contoso") -> Registration:
    return Registration.model_validate(
        {
            "organization": {"id": org, "unique_name": "unq", "name": name, "language_code": 1033},
            "admins": [{"email": email} for email in emails],
        }
    )


def asked(mailer: RecordingMailer) -> list[str]:
    return [mail.to[0] for mail in mailer.sent if mail.subject == "Push365: confirm your address"]


def test_1000_confirmation_mails_aimed_by_a_key_holder_yield_the_daily_cap() -> None:
    service, mailer, _, counters = limited(MailLimits(confirmations_per_organization=100))
    key = registered(service)

    outcomes = [
        service.register(update(ORG, tuple(f"v{u}-{n}@target.test" for n in range(50))), key)
        for u in range(20)
    ]

    assert len(asked(mailer)) == 100
    assert sum(o.confirmations_sent for o in outcomes) == 99
    assert sum(o.confirmations_not_sent for o in outcomes) == 901
    assert len({window for _, window in counters.counters}) == 1  # one UTC day's counters


def test_addresses_the_cap_refused_are_asked_on_a_later_day_and_never_twice_a_day() -> None:
    service, mailer, day, _ = limited(MailLimits(confirmations_per_organization=2))
    key = registered(service)  # ada: 1 of 2
    admins = ("ada@contoso.com", "bob@contoso.com", "cy@contoso.com")

    today = service.register(update(ORG, admins), key)
    repeated = service.register(update(ORG, admins), key)
    day.now += timedelta(days=1)
    tomorrow = service.register(update(ORG, admins), key)

    assert (today.confirmations_sent, today.confirmations_not_sent) == (1, 1)  # bob; not cy
    assert (repeated.confirmations_sent, repeated.confirmations_not_sent) == (0, 1)  # cy again
    assert (tomorrow.confirmations_sent, tomorrow.confirmations_not_sent) == (1, 0)  # cy
    assert asked(mailer) == ["ada@contoso.com", "bob@contoso.com", "cy@contoso.com"]


def test_a_removed_and_re_added_address_is_not_asked_again_the_same_day() -> None:
    service, mailer, day, _ = limited()
    key = registered(service)

    for _ in range(5):
        service.register(update(ORG, ("bob@contoso.com",)), key)
        service.register(update(ORG, ("ada@contoso.com",)), key)
    day.now += timedelta(days=1)
    service.register(update(ORG, ("ada@contoso.com",)), key)  # a new day: asked anew
    service.register(update(ORG, ("bob@contoso.com",)), key)

    assert asked(mailer) == ["ada@contoso.com", "bob@contoso.com"] * 2


def test_one_address_gets_at_most_its_cap_from_all_organizations_together() -> None:
    service, mailer, _, _ = limited(MailLimits(confirmations_per_address=3))
    organizations = [f"{n}f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162" for n in range(1, 7)]

    for org in organizations:
        registered(
            service, org, ("Victim@Target.test",) if org[0] == "1" else ("victim@target.test",)
        )

    assert len(asked(mailer)) == 3


def test_one_organization_asking_an_address_again_and_again_leaves_the_others_their_asks() -> None:
    service, mailer, _, _ = limited(MailLimits(confirmations_per_address=3))
    first, second = (f"{n}f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162" for n in (1, 2))
    key = registered(service, first, ("ada@contoso.com",))

    for _ in range(4):  # removed and added back: asked once today, counted once for everyone
        service.register(update(first, ("victim@target.test",)), key)
        service.register(update(first, ("ada@contoso.com",)), key)
    registered(service, second, ("victim@target.test",))

    assert asked(mailer) == ["ada@contoso.com", "victim@target.test", "victim@target.test"]


def test_notices_to_an_organization_stop_at_the_daily_cap() -> None:
    service, mailer, day, _ = limited(MailLimits(notices_per_organization=20))
    key = registered(service)
    (confirmation,) = mailer.sent
    token = confirmation.text.split("token=")[1].split()[0]
    service.confirm_email(token)  # "registered": not counted, one per confirmation request

    for _ in range(25):
        key = service.rotate_key(service.authenticate(key)).api_key
    rotations_today = [m for m in mailer.sent if m.subject == "Push365: new API key"]
    day.now += timedelta(days=1)
    service.rotate_key(service.authenticate(key))

    assert len(rotations_today) == 20
    assert len([m for m in mailer.sent if m.subject == "Push365: new API key"]) == 21
    assert [m.subject for m in mailer.sent].count("Push365: your organization is registered") == 1


def test_a_refused_address_is_not_stored_as_waiting() -> None:
    service, _, _, _ = limited(MailLimits(confirmations_per_organization=1))
    key = registered(service)

    service.register(update(ORG, ("ada@contoso.com", "bob@contoso.com")), key)

    stored = service.authenticate(key)
    assert sorted(stored.pending_emails.values()) == ["ada@contoso.com"]
    assert stored.unasked_emails() == ["bob@contoso.com"]


NOW_ = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
MESSAGES = {
    "registration_confirmed": lambda lang: messages.registration_confirmed(
        lang, BAIT, BAIT, ORG, {"w": "https://x"}
    ),
    "confirm_address": lambda lang: messages.confirm_address(lang, ORG, "https://x/?token=t"),
    "key_rotated": lambda lang: messages.key_rotated(lang, BAIT, NOW_, NOW_),
    "key_revoked": lambda lang: messages.key_revoked(lang, BAIT, NOW_),
    "admins_replaced": lambda lang: messages.admins_replaced(lang, BAIT, NOW_, 2),
    "delivery_alert": lambda lang: messages.delivery_alert(lang, BAIT, "reason", 2, 1),
    "data_erased": lambda lang: messages.data_erased(lang, BAIT, "organization", {"users": 1}),
}


@pytest.mark.parametrize("language", ["en", "de"])
@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_every_subject_is_a_fixed_text(name: str, language: str) -> None:
    rendered = MESSAGES[name](language)

    assert "BAIT" not in rendered.subject
    assert ORG not in rendered.subject
    assert rendered.subject.startswith("Push365: ")


def test_the_confirmation_request_carries_no_text_the_caller_chose() -> None:
    mailer = RecordingMailer()
    notices = AdminNotices(mailer, InMemoryOrganizationRepository(), lambda f: f"https://x/{f}")
    baited = organization(name=BAIT, confirmed=False)

    notices.confirmation_requests(baited, {"ada@contoso.com": "p365c.t"})

    (mail,) = mailer.sent
    assert "BAIT" not in mail.subject + mail.text + mail.html
    assert ORG in mail.text


def test_the_confirmation_page_posts_back_to_its_own_url_and_shows_nothing_of_it() -> None:
    page = pages.confirm_form(pages.language_of("de-AT,de;q=0.9,en;q=0.5"))

    assert "<form method='post'>" in page
    assert "action=" not in page
    assert "<script" not in page
    assert "Adresse bestätigen" in page
    assert pages.language_of(None) == pages.language_of("fr-FR,de;q=0.5") == "en"
