"""deliver's time budget (docs/api/deliver.md, "The time budget"): the inequalities exactly-once
rests on hold for the deployed settings (settings.py's defaults: infra/ sets none of them) and the
platform's numbers in infra/ (deliver's timeout, every subscription that pushes to deliver)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from push365.fanout.budget import TimeBudget
from push365.settings import Settings
from tests.docs import page
from tests.unit.test_infra import FUNCTIONS, INFRA, terraform

FANOUT_TIMINGS = (
    "FCM_HTTP_TIMEOUT_SECONDS",
    "DELIVER_CHUNK_BUDGET_SECONDS",
    "DELIVER_LEASE_SECONDS",
    "DELIVER_HANDLER_SECONDS",
    "DELIVER_CLOCK_SKEW_SECONDS",
    "STORE_TIMEOUT_SECONDS",
    "QUEUE_TIMEOUT_SECONDS",
    "RETRY_HORIZON_SECONDS",
    "RETRY_MAX_BACKOFF_SECONDS",
)


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", duration)
    assert match, duration
    return float(match.group(1))


def deliver_subscriptions() -> dict[str, dict[str, Any]]:
    """Every subscription in infra/ whose pushes reach deliver, whatever its name."""
    subscriptions = terraform()["resource"]["google_pubsub_subscription"]
    return {
        name: body
        for name, body in subscriptions.items()
        if "local.deliver_url" in str(body.get("push_config", ""))
    }


def deployed_budgets() -> list[tuple[str, TimeBudget]]:
    defaults = Settings.model_construct()  # what every function runs with: infra/ sets none
    timeout = float(FUNCTIONS["deliver"]["timeout_seconds"])
    return [
        (
            name,
            TimeBudget.of(
                defaults,
                function_timeout=timeout,
                ack_deadline=float(body["ack_deadline_seconds"]),
                retention=_seconds(body["message_retention_duration"]),
            ),
        )
        for name, body in deliver_subscriptions().items()
    ]


def test_infra_sets_none_of_the_fanout_timings_so_the_defaults_are_what_runs() -> None:
    files = [*INFRA.glob("*.tf"), *INFRA.glob("*.json"), *INFRA.glob("*.tfvars")]
    text = "".join(path.read_text() for path in files)
    assert [name for name in FANOUT_TIMINGS if f"PUSH365_{name}" in text] == []


def test_both_subscriptions_that_push_to_deliver_are_checked() -> None:
    assert sorted(deliver_subscriptions()) == ["deliver", "deliver_dead_letter"]


@pytest.mark.parametrize(("subscription", "budget"), deployed_budgets())
def test_the_deployed_time_budget_holds(subscription: str, budget: TimeBudget) -> None:
    assert budget.violations() == [], subscription


def budget_table() -> dict[str, tuple[str, float]]:
    """docs/api/deliver.md's table: what -> (setting or file, deployed seconds)."""
    section = page("api/deliver.md").split("## The time budget", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        shown = re.fullmatch(r"(\d+) (s|h)", cells[2]) if len(cells) >= 3 else None
        if shown:
            seconds = float(shown.group(1)) * (3600 if shown.group(2) == "h" else 1)
            rows[cells[0]] = (cells[1].strip("`"), seconds)
    return rows


def test_the_budgets_figures_are_the_ones_the_docs_show() -> None:
    (_, budget), *_ = deployed_budgets()
    defaults = Settings.model_construct()
    rows = budget_table()

    settings = {what: row for what, row in rows.items() if row[0].startswith("PUSH365_")}
    assert len(settings) == 7
    for what, (setting, seconds) in settings.items():
        assert getattr(defaults, setting.removeprefix("PUSH365_").lower()) == seconds, what
    assert rows["function timeout"][1] == budget.function_timeout
    assert rows["ack deadline"][1] == budget.ack_deadline
    assert rows["message retention"][1] == budget.retention
    assert (budget.store, budget.queue) == (8, 11)  # a publish: 10 s of retries, 1 s more


BROKEN = {
    "request <= chunk": {"request": 25.0},
    "chunk + store + clock_skew < lease": {"lease": 30.0},
    "chunk <= handler": {"handler": 15.0},
    "handler + 2 x store + queue < function_timeout": {"handler": 40.0},
    "function_timeout <= ack_deadline": {"ack_deadline": 30.0},
    "retry_horizon + ack_deadline + max_backoff < retention": {"retention": 3700.0},
}


@pytest.mark.parametrize(("rule", "change"), list(BROKEN.items()))
def test_each_inequality_is_caught_when_broken(rule: str, change: dict[str, float]) -> None:
    (_, budget), *_ = deployed_budgets()

    broken = dataclasses.replace(budget, **change)

    assert rule in broken.violations()
