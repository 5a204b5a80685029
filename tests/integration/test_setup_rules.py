"""``push365-setup rules push`` and ``rules pull`` against the real register function over the
Firestore emulator: the command's own HTTP requests, answered by the function as deployed (a
transport that hands each request to the function's WSGI app instead of a socket)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from dynamics.setup import __main__ as command
from dynamics.setup import rules as rule_files
from dynamics.setup.transport import HttpRequest, HttpResponse
from tests.integration.conftest import Functions, register

BASE_URL = "https://europe-west1-demo.cloudfunctions.net"
RULES_YAML = """\
rules:
  - table: opportunity
    message: Update
    recipients: [ownerid]
    title: "{name} is {statuscode}"
    body: Worth {estimatedvalue}
    link: record
  - table: account
    message: Create
    recipients: [context.initiatinguserid]
    title: New account {name}
    stage: 20
"""


class FunctionsTransport:
    """The setup command's transport, delivering to the functions in this process."""

    def __init__(self, api: Functions) -> None:
        self.api = api
        self.requests: list[str] = []

    def send(self, request: HttpRequest) -> HttpResponse:
        parts = urlsplit(request.url)
        assert f"{parts.scheme}://{parts.netloc}" == BASE_URL
        self.requests.append(f"{request.method} {parts.path}")
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-type"}
        answer = self.api.request(
            request.method,
            parts.path.replace("/push365-", "/", 1),
            data=request.body,
            content_type=request.headers.get("Content-Type"),
            headers=headers,
        )
        return HttpResponse(
            answer.status_code,
            {k.lower(): v for k, v in answer.headers.items()},
            answer.text.encode("utf-8"),
        )


@pytest.fixture
def state(api: Functions, tmp_path: Path) -> Path:
    """The state file a setup run leaves: the organization's key and where Push365 is."""
    path = tmp_path / "push365-setup.json"
    key = register(api)
    path.write_text(
        json.dumps({"api_key": key, "base_url": BASE_URL, "function_prefix": "push365-"}), "utf-8"
    )
    return path


def _key(state: Path) -> str:
    return str(json.loads(state.read_text("utf-8"))["api_key"])


def _held(api: Functions, state: Path) -> list[dict[str, Any]]:
    answer = api.get("/register/rules", key=_key(state))
    assert answer.status_code == 200
    return list(answer.json["rules"])


def test_push_replaces_the_rules_and_pull_writes_them_back(
    api: Functions, state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    transport = FunctionsTransport(api)
    source = tmp_path / "rules.yaml"
    source.write_text(RULES_YAML, "utf-8")

    pushed = command.rules_main(["push", str(source), "--state", str(state)], transport)
    out = capsys.readouterr().out
    pulled = command.rules_main(
        ["pull", str(tmp_path / "pulled.json"), "--state", str(state)], transport
    )

    assert pushed == 0
    assert pulled == 0
    assert "Push365 holds 2 rules" in out
    assert "Warning: Rule 2 runs at stage 20, before the change is committed" in out
    held = _held(api, state)
    assert [(r["table"], r["message"], r["stage"]) for r in held] == [
        ("opportunity", "update", 40),
        ("account", "create", 20),
    ]
    assert rule_files.read_rules(str(tmp_path / "pulled.json")) == held  # every field
    assert transport.requests == [
        "POST /push365-register/rules",
        "GET /push365-register/rules",
    ]


def test_a_pulled_file_pushed_again_changes_nothing(
    api: Functions, state: Path, tmp_path: Path
) -> None:
    transport = FunctionsTransport(api)
    source = tmp_path / "rules.yaml"
    source.write_text(RULES_YAML, "utf-8")
    assert command.rules_main(["push", str(source), "--state", str(state)], transport) == 0
    before = _held(api, state)

    assert (
        command.rules_main(["pull", str(tmp_path / "p.yaml"), "--state", str(state)], transport)
        == 0
    )
    assert (
        command.rules_main(["push", str(tmp_path / "p.yaml"), "--state", str(state)], transport)
        == 0
    )

    assert _held(api, state) == before


def test_rules_the_service_refuses_are_reported_by_field_and_nothing_changes(
    api: Functions, state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    transport = FunctionsTransport(api)
    good = tmp_path / "rules.yaml"
    good.write_text(RULES_YAML, "utf-8")
    assert command.rules_main(["push", str(good), "--state", str(state)], transport) == 0
    before = _held(api, state)
    bad = tmp_path / "bad.yaml"
    bad.write_text(RULES_YAML.replace("recipients: [ownerid]", "recipients: []"), "utf-8")
    capsys.readouterr()

    # As an installed command without the Push365 library does: the service checks them.
    status = command.rules_main(
        ["push", str(bad), "--state", str(state), "--service-check-only"], transport
    )

    err = capsys.readouterr().err
    assert status == 2
    assert "Push365 refused the rules (validation_failed), nothing changed" in err
    assert "rules.0.recipients: List should have at least 1 item" in err
    assert _held(api, state) == before
    assert transport.requests[-1] == "POST /push365-register/rules"


def test_a_wrong_key_stops_with_push365s_answer(
    api: Functions, state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    transport = FunctionsTransport(api)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"api_key": "p365.wrong.key", "base_url": BASE_URL}), "utf-8")

    status = command.rules_main(
        ["pull", str(tmp_path / "out.yaml"), "--state", str(wrong)], transport
    )

    assert status == 1
    assert "Stopped: Push365 answered 401 (unauthorized) to GET /register/rules" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "out.yaml").exists()
