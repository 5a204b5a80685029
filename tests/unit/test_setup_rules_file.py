"""Rules files (``push365-setup rules``): YAML or JSON, a list or ``rules:`` holding one, read as
written (no YAML timestamps), checked with the service's own model before anything is sent, and
written back in the same form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dynamics.setup import __main__ as command
from dynamics.setup import rules as rule_files
from push365.notifications.model import RuleSet

YAML = """\
# Opportunities: tell the owner
rules:
  - table: opportunity
    message: Update
    recipients: [ownerid]
    title: "{name} is {statuscode}"
    body: Worth {estimatedvalue}
    link: record
  - table: opportunity
    message: Delete
    recipients: [ownerid, context.initiatinguserid]
    title: 2026-01-01 {name} was deleted
"""


def test_yaml_and_json_files_hold_the_same_rules(tmp_path: Path) -> None:
    yaml_file = tmp_path / "rules.yaml"
    yaml_file.write_text(YAML, "utf-8")

    rules = rule_files.read_rules(str(yaml_file))
    json_file = tmp_path / "rules.json"
    rule_files.write_rules(str(json_file), rules)
    as_list = tmp_path / "list.yml"
    as_list.write_text(rule_files.format_rules(rules, json_format=False).replace("rules:\n", ""))

    assert [rule["message"] for rule in rules] == ["Update", "Delete"]
    assert rules[1]["title"] == "2026-01-01 {name} was deleted"  # text, not a date
    assert json_file.read_text("utf-8").startswith('{\n  "rules": [')
    assert rule_files.read_rules(str(json_file)) == rules
    assert rule_files.read_rules(str(tmp_path / "list.yml")) == rules
    assert RuleSet.model_validate({"rules": rules}).rules[0].table == "opportunity"


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("bad.yaml", "rules:\n  - table: [opportunity\n", "not valid YAML (line 3)"),
        ("bad.json", '{"rules": [}', "not valid JSON (line 1)"),
        ("one.yaml", "table: opportunity\n", 'it must hold a list of rules, or "rules:"'),
        ("missing.yaml", None, "cannot read it (No such file or directory)"),
    ],
)
def test_a_file_that_holds_no_rules_is_named_with_what_to_fix(
    tmp_path: Path, name: str, text: str | None, problem: str
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text, "utf-8")

    with pytest.raises(rule_files.RulesFileError) as failed:
        rule_files.read_rules(str(path))

    assert str(failed.value).startswith(problem)


def test_the_service_model_checks_the_rules_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules: list[Any] = rule_files.parse_rules(YAML, json_format=False)
    rules[0]["recipients"] = []
    rules[1]["stage"] = 25
    path = tmp_path / "rules.yaml"
    rule_files.write_rules(str(path), rules)
    state = tmp_path / "state.json"
    # Nothing listens there: a request would fail with "cannot reach", not a problem list.
    state.write_text('{"api_key": "p365.k", "base_url": "http://127.0.0.1:9"}', "utf-8")

    problems = rule_files.local_problems(rules)
    status = command.main(["rules", "push", str(path), "--state", str(state)])

    assert problems is not None
    assert [p.split(":")[0] for p in problems] == ["rules.0.recipients", "rules.1.stage"]
    assert status == 2
    err = capsys.readouterr().err
    assert "2 problems" in err
    assert "nothing sent" in err
    assert "rules.0.recipients: List should have at least 1 item" in err
    assert "cannot reach" not in err
    assert rule_files.local_problems(rule_files.parse_rules(YAML, json_format=False)) == []


def test_without_a_state_file_or_key_it_says_what_to_run_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(command.API_KEY_VARIABLE, raising=False)

    status = command.main(["rules", "pull", "out.yaml", "--state", str(tmp_path / "none.json")])

    assert status == 2
    assert "run push365-setup --environment ... first" in capsys.readouterr().err


def test_a_state_file_that_is_not_one_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "push365-setup.json"
    state.write_text("[1, 2", "utf-8")

    status = command.main(["rules", "pull", "out.yaml", "--state", str(state)])

    assert status == 2
    assert (
        capsys.readouterr().err
        == f"{state}: not a state file the setup wrote (give the right --state)\n"
    )
