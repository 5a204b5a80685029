"""Event rules kept in a file: ``push365-setup rules push rules.yaml`` and ``rules pull``.

A rules file is YAML (``.yaml``, ``.yml``) or JSON (``.json``): either a list of rules or a
mapping with ``rules:`` holding that list, each rule as ``POST /register/rules`` takes it
(docs/api/rules.md). ``push`` checks the rules first with the model the service itself
validates them with (``push365.notifications.model.RuleSet``) when the Push365 library is
importable (a repository checkout), so a mistake is shown before anything is sent; then it
replaces the organization's rules and shows Push365's answer. ``pull`` writes the rules Push365
holds, every field, in the same form.

No rule text reaches an error message here: problems name the rule's position and field.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STDIO = "-"


class RulesFileError(Exception):
    """The file cannot be read as rules; the message says what to fix."""


def _yaml() -> Any:
    import yaml  # type: ignore[import-untyped]

    return yaml


def _loader() -> Any:
    """YAML's safe loader without its timestamps: a title ``2026-01-01`` stays text."""
    yaml = _yaml()

    class Loader(yaml.SafeLoader):  # type: ignore[misc,name-defined]
        pass

    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return Loader


def _is_json(path: str) -> bool:
    return path.lower().endswith(".json")


def parse_rules(text: str, json_format: bool) -> list[Any]:
    """The rules a file's text holds."""
    loader = None if json_format else _loader()  # PyYAML missing: ImportError, not "invalid"
    try:
        data = json.loads(text) if loader is None else _yaml().load(text, Loader=loader)
    except ValueError as error:  # json.JSONDecodeError
        raise RulesFileError(f"not valid JSON (line {getattr(error, 'lineno', '?')})") from None
    except Exception as error:  # noqa: BLE001 - yaml.YAMLError, whose class is imported lazily
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise RulesFileError(f"not valid YAML{where}") from None
    if isinstance(data, dict) and set(data) == {"rules"}:
        data = data["rules"]
    if not isinstance(data, list):
        raise RulesFileError('it must hold a list of rules, or "rules:" with that list')
    return data


def read_rules(path: str) -> list[Any]:
    """The rules in ``path`` (``-``: standard input, as YAML)."""
    if path == STDIO:
        return parse_rules(sys.stdin.read(), json_format=False)
    try:
        text = Path(path).read_text("utf-8")
    except OSError as error:
        raise RulesFileError(f"cannot read it ({error.strerror or type(error).__name__})") from None
    return parse_rules(text, _is_json(path))


def format_rules(rules: Sequence[dict[str, Any]], json_format: bool) -> str:
    if json_format:
        return json.dumps({"rules": list(rules)}, indent=2, ensure_ascii=False) + "\n"
    text: str = _yaml().safe_dump(
        {"rules": list(rules)}, sort_keys=False, allow_unicode=True, width=100
    )
    return text


def write_rules(path: str, rules: Sequence[dict[str, Any]]) -> None:
    """Write ``rules`` to ``path`` (``-``: standard output, as YAML), JSON for ``.json``."""
    text = format_rules(rules, _is_json(path))
    if path == STDIO:
        sys.stdout.write(text)
        return
    Path(path).write_text(text, "utf-8")


def local_problems(rules: Sequence[Any]) -> list[str] | None:
    """What the service's own model finds wrong with ``rules`` (``field: problem`` lines, as the
    service's 422 details read), ``[]`` when nothing; ``None`` when the Push365 library is not
    importable here (an installed setup command: the service checks them instead)."""
    try:
        from push365.errors import ValidationFailed
        from push365.model import validate
        from push365.notifications.model import RuleSet
    except ImportError:
        return None
    try:
        validate(RuleSet, {"rules": list(rules)})
    except ValidationFailed as error:
        return [f"{detail['field']}: {detail['problem']}" for detail in error.details]
    return []
