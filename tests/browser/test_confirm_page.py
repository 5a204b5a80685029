"""The page a mailed confirmation link opens, in a real browser, on the local stack with its
outbox: opening it confirms nothing (a mail scanner fetching the link changes nothing); its
button posts back to the very URL it was opened at, which the page's policy allows, and that
confirms the address (issue 27, item 3)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

from tests.stack import call, running_stack, signup


def subjects(outbox: Path) -> list[str]:
    return [json.loads(path.read_text())["subject"] for path in sorted(outbox.glob("*.json"))]


def test_the_link_confirms_only_through_its_pages_button(browser: Any, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    env = {"PUSH365_MAIL_BACKEND": "outbox", "PUSH365_OUTBOX_DIR": str(outbox)}
    with running_stack(tmp_path, **env) as stack:
        org = str(uuid.uuid4())
        body = {
            "organization": {"id": org, "unique_name": "u", "name": "C", "language_code": 1033},
            "admins": [{"email": "ada@contoso.com"}],
        }
        code = signup(stack.base, org, stack.admin_key)
        created = call(f"{stack.base}/register", body, headers=code)
        assert created[0] == 201, [line for line in stack.output().splitlines() if "fault" in line]
        (mail,) = [json.loads(path.read_text()) for path in outbox.glob("*.json")]
        token = re.search(r"token=(p365c\.[A-Za-z0-9._-]+)", mail["text"])
        assert token is not None
        link = f"{stack.base}/register/confirm-email?token={token.group(1)}"
        page = browser.new_page()
        blocked: list[str] = []
        page.on("console", lambda message: blocked.append(message.text))

        for _ in range(2):
            page.goto(link)
        opened = subjects(outbox)
        with page.expect_navigation():
            page.click("button")
        pressed = page.content()
        page.goto(link)
        with page.expect_navigation():
            page.click("button")
        again = page.content()
        page.close()

    assert opened == ["Push365: confirm your address"]  # opening it twice confirmed nothing
    assert "address confirmed" in pressed
    assert subjects(outbox)[1:] == ["Push365: your organization is registered"]
    assert "not valid" in again  # the link works once
    assert not [text for text in blocked if "Content Security Policy" in text]
