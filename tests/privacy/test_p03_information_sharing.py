"""P3 (Privacy; Information Sharing): nothing personal is shared beyond the service providers
the service needs: Google Cloud (hosting, Firestore, logging), Firebase Cloud Messaging (tokens
and the notification, no user id: ``tests/integration/test_privacy_promises.py``) and Amazon SES
(administrators' addresses and transactional text, never a key or notification content)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from push365.mail.notices import AdminNotices
from push365.mail.port import OutboxMailer
from push365.organizations.repository import FirestoreOrganizationRepository
from push365.organizations.service import OrganizationService
from tests.docs import page
from tests.privacy.conftest import Services

PROCESSORS = ("Google Cloud", "Firebase", "Amazon SES")


def test_mail_goes_only_to_administrators_and_never_carries_the_key(
    services: Services, tmp_path: Path
) -> None:
    repository = FirestoreOrganizationRepository(services.client)
    notices = AdminNotices(OutboxMailer(tmp_path), repository, lambda f: f"https://x/{f}")
    services.organizations = OrganizationService(repository, notices=notices)

    key = services.register()
    (request,) = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    token = re.search(r"token=(p365c\.[A-Za-z0-9._-]+)", request["text"])
    assert token is not None
    services.organizations.confirm_email(token.group(1))  # double opt-in: then mail follows
    organization = repository.get(key.split(".")[1])
    assert organization is not None
    notices.key_rotated(organization, None)
    notices.data_erased(organization, "user", {"users": 1})

    mails = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*.json"))]
    assert len(mails) == 4
    for mail in mails:
        assert list(mail["to"]) == ["ada@contoso.example"]
        assert key.rsplit(".", 1)[-1] not in json.dumps(mail)


def test_the_docs_name_every_processor_on_the_privacy_page() -> None:
    section = page("privacy.md").split("## Processors", 1)[1].split("\n## ", 1)[0]

    assert [p for p in PROCESSORS if p not in section] == []
