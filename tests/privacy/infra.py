"""infra/*.tf as numbers: a variable's default, an expression resolved, a validation evaluated."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from tests.unit.test_infra import terraform


@lru_cache(maxsize=1)
def tf() -> dict[str, Any]:
    return terraform()


def resource(type_name: str, name: str) -> dict[str, Any]:
    return tf()["resource"][type_name][name]  # type: ignore[no-any-return]


def default(variable: str) -> Any:
    return tf()["variable"][variable]["default"]


def value(expression: Any) -> Any:
    """A literal, or ``${var.x}`` resolved to the variable's default."""
    if isinstance(expression, str):
        match = re.fullmatch(r"\$\{var\.([a-z0-9_]+)\}", expression)
        if match:
            return default(match.group(1))
    return expression


def accepts(variable: str, candidate: Any) -> bool:
    """Whether the variable's validations accept ``candidate`` (HCL's && || ! and comparisons)."""
    for validation in tf()["variable"][variable].get("validation", []):
        condition = validation["condition"].removeprefix("${").removesuffix("}")
        python = (
            condition.replace("&&", " and ").replace("||", " or ").replace("!", " not ")
        ).replace(" not =", "!=")
        python = python.replace(f"var.{variable}", repr(candidate))
        if not eval(python, {"__builtins__": {}}, {}):  # our own .tf: numbers only
            return False
    return True


def cron_is_daily(schedule: str) -> bool:
    """``M H * * *`` with a single minute and hour: once a day."""
    fields = schedule.split()
    return (
        len(fields) == 5
        and fields[0].isdigit()
        and fields[1].isdigit()
        and fields[2:] == ["*", "*", "*"]
    )
