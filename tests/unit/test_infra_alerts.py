"""Every alert policy in infra/ (found by type, for_each expanded) has a condition checked here,
documentation that says what it means and what to do, and a row in docs/operations/monitoring.md's
table. A new policy fails until it has a check of its own below; a removed or broken one fails its
check. The scheduler-failure alert covers every google_cloud_scheduler_job of infra/, those added
later included, and the backlog alert every Pub/Sub subscription."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.docs import page
from tests.unit.test_infra import terraform

MEANS, DO = "**What it means:**", "**What to do:**"
RETRY_HORIZON_S = 3600  # deliver retries a batch's transient failures this long (pubsub.tf)


@pytest.fixture(scope="module")
def tf() -> dict[str, Any]:
    return terraform()


def policies(tf: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return tf["resource"]["google_monitoring_alert_policy"]  # type: ignore[no-any-return]


def condition(policy: dict[str, Any], kind: str) -> dict[str, Any]:
    (only,) = policy["conditions"]
    return only[kind][0]  # type: ignore[no-any-return]


def unquoted(text: str) -> str:
    return text.replace('\\"', '"')


def named(text: str, prefix: str = "push365") -> str:
    """A name as deployed: ``${var.name_prefix}`` resolved."""
    return text.replace("${var.name_prefix}", prefix)


def expanded(tf: dict[str, Any], policy: dict[str, Any], field: str) -> list[str]:
    """A policy's field, or every value it takes over its for_each (``${each.value.x}``)."""
    value = policy["documentation"][0]["content"] if field == "content" else policy[field]
    match = re.fullmatch(r"\$\{each\.value\.([a-z_]+)\}", value)
    if match is None:
        return [value]
    source = re.fullmatch(r"\$\{local\.([a-z_]+)\}", policy["for_each"])
    assert source is not None, policy["for_each"]
    return [item[match[1]] for item in tf["locals"][source[1]].values()]


# --- each policy's condition --------------------------------------------------------------


def check_server_errors(tf: dict[str, Any], policy: dict[str, Any]) -> None:
    ratio = condition(policy, "condition_threshold")
    assert 'local.metric_types["server_errors"]' in ratio["filter"]
    assert 'local.metric_types["requests"]' in ratio["denominator_filter"]
    assert (ratio["comparison"], ratio["threshold_value"], ratio["duration"]) == (
        "COMPARISON_GT",
        0.01,
        "300s",
    )


def check_purge_missed(tf: dict[str, Any], policy: dict[str, Any]) -> None:
    query = unquoted(condition(policy, "condition_prometheus_query_language")["query"])
    (window,) = re.findall(r"absent_over_time\([^)]*purge_successes[^)]*\[(\d+)h\]\)", query)
    # Silent until the first purge could have run: the scheduler's first run comes at most a day
    # after its job is created, then its retries; the time is recorded when the job is created.
    guard = re.search(
        r"\band on\(\) \(vector\(time\(\)\) > \$\{time_offset\.([a-z_]+)\.unix\}\)", query
    )
    assert guard is not None, "the purge alert fires on every fresh deployment"
    offset = tf["resource"]["time_offset"][guard[1]]
    assert offset["offset_hours"] == int(window) == 26
    assert offset["triggers"] == {"job": "${google_cloud_scheduler_job.purge.id}"}
    assert set(offset) <= {"offset_hours", "triggers"}  # counted from when it is created
    purge_schedule = tf["variable"]["purge_schedule"]["default"].split()
    assert purge_schedule[2:] == ["*", "*", "*"]  # daily: the first run is within 24 hours


def check_occurrence(tf: dict[str, Any], policy: dict[str, Any]) -> None:
    any_count = condition(policy, "condition_threshold")
    assert "local.metric_types[each.value.metric]" in any_count["filter"]
    assert (any_count["threshold_value"], any_count["comparison"]) == (0, "COMPARISON_GT")
    metrics = {key: alert["metric"] for key, alert in tf["locals"]["occurrence_alerts"].items()}
    assert metrics == {
        "fcm_auth": "fcm_auth_failures",
        "dead_letters": "dead_lettered_batches",
        "refused_messages": "refused_messages",
        "reconcile_given_up": "reconcile_given_up",
    }


def check_send_latency(tf: dict[str, Any], policy: dict[str, Any]) -> None:
    latency = condition(policy, "condition_threshold")
    assert 'metric.label.function="send"' in unquoted(latency["filter"])
    assert latency["aggregations"][0]["cross_series_reducer"] == "REDUCE_PERCENTILE_95"
    assert (latency["threshold_value"], latency["duration"]) == (5000, "300s")


def check_fanout_backlog(tf: dict[str, Any], policy: dict[str, Any]) -> None:
    backlog = condition(policy, "condition_threshold")
    text = unquoted(backlog["filter"])
    assert 'metric.type="pubsub.googleapis.com/subscription/oldest_unacked_message_age"' in text
    (prefix,) = re.findall(r'resource\.label\.subscription_id=starts_with\("([^"]+)"\)', text)
    subscriptions = tf["resource"]["google_pubsub_subscription"]
    assert subscriptions
    for name, body in subscriptions.items():
        assert named(body["name"]).startswith(named(prefix)), f"subscription {name} is not watched"
    # Late but not lost: over before deliver's retry horizon ends, well before messages expire.
    retention = min(
        float(body["message_retention_duration"].removesuffix("s"))
        for body in subscriptions.values()
    )
    threshold = backlog["threshold_value"]
    assert backlog["comparison"] == "COMPARISON_GT"
    assert 0 < threshold < RETRY_HORIZON_S < retention
    assert backlog["aggregations"][0]["per_series_aligner"] == "ALIGN_MAX"
    assert "cross_series_reducer" not in backlog["aggregations"][0]  # one series a subscription


def _log_match(policy: dict[str, Any]) -> str:
    rate = policy["alert_strategy"][0]["notification_rate_limit"][0]["period"]
    assert re.fullmatch(r"[1-9]\d*s", rate)  # Cloud Monitoring requires one
    return unquoted(condition(policy, "condition_matched_log")["filter"])


def check_export_failed(tf: dict[str, Any], policy: dict[str, Any]) -> None:
    text = _log_match(policy)
    assert 'protoPayload.methodName="google.firestore.admin.v1.FirestoreAdmin.ExportDocuments"' in (
        text
    )
    assert "(severity>=ERROR OR protoPayload.status.code>0)" in text
    # It watches the call the export job makes.
    job = tf["resource"]["google_cloud_scheduler_job"]["backup"]["http_target"][0]
    assert job["uri"].endswith(":exportDocuments")


def check_scheduler_failed(tf: dict[str, Any], policy: dict[str, Any]) -> None:
    text = _log_match(policy)
    assert 'resource.type="cloud_scheduler_job"' in text
    assert "severity>=ERROR" in text
    (pattern,) = re.findall(r'resource\.labels\.job_id=~"([^"]+)"', text)
    jobs = tf["resource"]["google_cloud_scheduler_job"]
    assert {"purge", "backup"} <= set(jobs)
    for name, body in jobs.items():
        assert re.search(named(pattern), named(body["name"])), f"scheduler job {name} not watched"
    # A job added later named like the others is watched; one named otherwise is not, nor
    # another stack's.
    assert re.search(named(pattern), "push365-reconcile")
    assert not re.search(named(pattern), "reconcile")
    assert not re.search(named(pattern, "staging"), "push365-purge")


CHECKS: dict[str, Callable[[dict[str, Any], dict[str, Any]], None]] = {
    "server_errors": check_server_errors,
    "purge_missed": check_purge_missed,
    "occurrence": check_occurrence,
    "send_latency": check_send_latency,
    "fanout_backlog": check_fanout_backlog,
    "export_failed": check_export_failed,
    "scheduler_failed": check_scheduler_failed,
}


def test_every_alert_policy_has_a_check() -> None:
    assert set(policies(terraform())) == set(CHECKS), (
        "an alert policy was added or removed: its condition needs a check here, its "
        "documentation and a row in docs/operations/monitoring.md's table"
    )


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_each_alert_policys_condition(tf: dict[str, Any], name: str) -> None:
    policy = policies(tf)[name]

    CHECKS[name](tf, policy)
    assert policy["notification_channels"] == "${var.notification_channels}"
    assert policy.get("enabled", True) is True
    assert len(policy["conditions"]) == 1


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_each_alert_says_what_it_means_and_what_to_do(tf: dict[str, Any], name: str) -> None:
    policy = policies(tf)[name]

    assert policy["documentation"][0]["mime_type"] == "text/markdown"
    for content in expanded(tf, policy, "content"):
        assert content.startswith(MEANS), content
        means, _, do = content.removeprefix(MEANS).partition(DO)
        assert len(means.strip()) > 40, f"{name}: what it means"
        assert len(do.strip()) > 40, f"{name}: what to do"


def monitoring_rows() -> list[list[str]]:
    section = page("operations/monitoring.md")
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| ")
    ]


def test_the_docs_say_what_each_alert_means_and_what_to_do(tf: dict[str, Any]) -> None:
    rows = {row[0]: row for row in monitoring_rows()}

    missing = []
    for policy in policies(tf).values():
        for display_name in expanded(tf, policy, "display_name"):
            title = display_name.removeprefix("Push365: ")
            row = rows.get(title)
            if row is None or len(row) != 4 or not all(len(cell) > 10 for cell in row[1:]):
                missing.append(title)
    assert missing == [], "monitoring.md's table: policy | condition | what it means | what to do"
