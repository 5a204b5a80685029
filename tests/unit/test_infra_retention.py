"""Every copy of Push365's data that infra/ creates, found by resource type (not by name), with
the longest it can live computed from infra/ itself (variables as the pipeline sets them:
infra/pipeline.auto.tfvars over the defaults): none may outlive the privacy policy's bound for
backups (docs/privacy-policy.md: "backup systems within 180 days"), and the table of
docs/operations/retention.md ("Where copies live, and for how long") states each one with its bound.

A resource type infra/ starts using must be classified here: either it can hold a copy (and gets a
bound) or it is reviewed as holding none. A new bucket, subscription, log bucket or backup
schedule is bounded like the others or fails."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import cache
from typing import Any

import hcl2
import pytest
import yaml  # type: ignore[import-untyped]

from tests.conftest import REPO
from tests.docs import page
from tests.unit.test_infra import INFRA, _clean, terraform

DAY = 86400.0
# Cloud Storage runs a lifecycle action up to about a day after its condition is met.
LIFECYCLE_LAG_DAYS = 1.0
# What a service keeps when infra/ says nothing.
SOFT_DELETE_DEFAULT_DAYS = 7.0  # Cloud Storage: a deleted object stays restorable 7 days
LOG_BUCKET_DEFAULT_DAYS = 30.0  # Cloud Logging: a bucket without retention_days keeps 30
SUBSCRIPTION_DEFAULT_DAYS = 7.0  # Pub/Sub: an unacknowledged message is kept 7 days
PITR_DAYS = 7.0  # Firestore point-in-time recovery: every version of the last 7 days
NO_PITR_DAYS = 1 / 24  # without it, Firestore keeps versions 1 hour
# The docs' promise for notification content on Pub/Sub (P6: only in transit).
PUBSUB_CONTENT_S = 7200

# Resource types reviewed as holding no copy of anyone's data, and why.
HOLDS_NO_COPY = {
    "google_project_service": "an API switched on",
    "google_project_service_identity": "a service agent's identity",
    "google_service_account": "an identity",
    "google_project_iam_member": "a role binding",
    "google_service_account_iam_member": "a role binding",
    "google_storage_bucket_iam_member": "a role binding",
    "google_pubsub_topic_iam_member": "a role binding",
    "google_pubsub_subscription_iam_member": "a role binding",
    "google_cloud_run_service_iam_member": "a role binding",
    "google_secret_manager_secret_iam_member": "a role binding",
    "google_storage_bucket_object": "the functions' source archive (the repository's code)",
    "google_cloudfunctions2_function": "code and settings; its logs go to the log buckets",
    "google_cloudbuild_trigger": "a build definition; its logs go to the _Default log bucket",
    "google_firestore_index": "an index of the database, deleted with what it indexes",
    "google_firestore_field": "index and TTL settings",
    "google_logging_metric": "counts and distributions of numbers, no record",
    "google_logging_project_exclusion": "keeps logs out: stores nothing",
    "google_monitoring_alert_policy": "a condition on metrics",
    "google_monitoring_dashboard": "charts of metrics",
    "time_offset": "a timestamp in Terraform's state",
}
# Single resources of a copy-holding type that hold no one's data: reviewed one by one.
NO_PERSONAL_DATA = {
    "google_storage_bucket.source": "the functions' source archives: the repository's code only",
    "google_storage_bucket.solution": "the Dynamics 365 solution's zips: the repository's code and "
    "web resources only",
}


def policy_days() -> float:
    text = (REPO / "docs" / "privacy-policy.md").read_text()
    (days,) = re.findall(r"backup systems within (\d+) days", text)
    return float(days)


@cache
def parsed() -> dict[str, Any]:
    return terraform()


@cache
def variables() -> dict[str, Any]:
    """Every variable's value as an apply uses it: the committed tfvars over the defaults."""
    tf = parsed()
    values = {name: body.get("default") for name, body in tf["variable"].items()}
    with (INFRA / "pipeline.auto.tfvars").open() as file:
        values.update(_clean(hcl2.load(file)))
    return values


def value(expression: Any) -> Any:
    """A literal, or ``${var.x}`` resolved; anything else is not a number this test can trust."""
    if isinstance(expression, str):
        match = re.fullmatch(r"\$\{var\.([a-z0-9_]+)\}", expression)
        if match:
            return variables()[match.group(1)]
    return expression


def seconds(duration: Any) -> float:
    text = str(value(duration))
    assert text.endswith("s"), f"a duration in seconds: {text!r}"
    return float(text[:-1])


def _one(blocks: Any) -> dict[str, Any]:
    if isinstance(blocks, list):
        assert len(blocks) <= 1
        return blocks[0] if blocks else {}
    return blocks if isinstance(blocks, dict) else {}


# --- bounds, in days, per kind of copy ----------------------------------------------------


def bucket_days(bucket: dict[str, Any]) -> float:
    """The longest an object lives: the age at which a Delete rule that applies to every object
    removes it, plus Cloud Storage's lag, plus soft delete; in a versioned bucket the version
    that deletion leaves must be deleted too (``days_since_noncurrent_time``), by a later pass
    of the lifecycle that may be as late again."""
    soft = _one(bucket.get("soft_delete_policy"))
    soft_days = (
        float(value(soft["retention_duration_seconds"])) / DAY
        if "retention_duration_seconds" in soft
        else SOFT_DELETE_DEFAULT_DAYS
    )
    ages, noncurrent = [], []
    for rule in bucket.get("lifecycle_rule", []):
        if _one(rule["action"]).get("type") != "Delete":
            continue
        condition = dict(_one(rule["condition"]))
        state = condition.pop("with_state", "ANY")
        condition.pop("send_days_since_noncurrent_time_if_zero", None)
        if set(condition) == {"age"} and state in ("ANY", "LIVE"):
            ages.append(float(value(condition["age"])))
        if set(condition) == {"days_since_noncurrent_time"} and state in ("ANY", "ARCHIVED"):
            noncurrent.append(float(value(condition["days_since_noncurrent_time"])))
    if not ages:
        return math.inf
    versioned = _one(bucket.get("versioning")).get("enabled") is True
    if versioned and (not noncurrent or min(noncurrent) > 0):
        return math.inf  # a deleted export would live on as a noncurrent version
    if versioned:
        # The age rule only makes the export noncurrent; a second rule, acting up to a day late
        # as well, deletes that version.
        return min(ages) + LIFECYCLE_LAG_DAYS + min(noncurrent) + LIFECYCLE_LAG_DAYS + soft_days
    return min(ages) + LIFECYCLE_LAG_DAYS + soft_days


def log_bucket_days(bucket: dict[str, Any]) -> float:
    return float(value(bucket.get("retention_days", LOG_BUCKET_DEFAULT_DAYS)))


def subscription_days(subscription: dict[str, Any]) -> float:
    if "message_retention_duration" not in subscription:
        return SUBSCRIPTION_DEFAULT_DAYS
    return seconds(subscription["message_retention_duration"]) / DAY


def topic_days(topic: dict[str, Any]) -> float | None:
    if "message_retention_duration" not in topic:
        return None  # keeps nothing itself: its subscriptions hold the messages
    return seconds(topic["message_retention_duration"]) / DAY


def database_days(database: dict[str, Any]) -> float:
    enabled = database.get("point_in_time_recovery_enablement") == "POINT_IN_TIME_RECOVERY_ENABLED"
    return PITR_DAYS if enabled else NO_PITR_DAYS


def backup_schedule_days(schedule: dict[str, Any]) -> float:
    return seconds(schedule["retention"]) / DAY


def sink_days(sink: dict[str, Any]) -> float:
    """A sink copies into a log bucket of infra/; anywhere else is a copy with no known bound."""
    match = re.fullmatch(
        r"logging\.googleapis\.com/\$\{google_logging_project_bucket_config\.([a-z0-9_]+)\.id\}",
        sink["destination"],
    )
    if match is None:
        return math.inf
    return log_bucket_days(parsed()["resource"]["google_logging_project_bucket_config"][match[1]])


def scheduler_job_days(job: dict[str, Any]) -> float | None:
    """A Firestore export job copies the database into a bucket of infra/; other jobs copy
    nothing."""
    target = _one(job.get("http_target"))
    if ":exportDocuments" not in str(target.get("uri", "")):
        return None
    match = re.search(
        r"gs://\$\{google_storage_bucket\.([a-z0-9_]+)\.name\}", str(target.get("body", ""))
    )
    if match is None:
        return math.inf
    return bucket_days(parsed()["resource"]["google_storage_bucket"][match[1]])


# A kind of copy and its bound in days; None: this one holds no copy.
BOUNDS: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "google_storage_bucket": bucket_days,
    "google_logging_project_bucket_config": log_bucket_days,
    "google_logging_project_sink": sink_days,
    "google_pubsub_subscription": subscription_days,
    "google_pubsub_topic": topic_days,
    "google_firestore_database": database_days,
    "google_firestore_backup_schedule": backup_schedule_days,
    "google_cloud_scheduler_job": scheduler_job_days,
}


def copies(tf: dict[str, Any]) -> dict[str, float]:
    """Every resource of a copy-holding type that holds a copy, with its bound in days."""
    found = {}
    for type_name, by_name in tf["resource"].items():
        for name, body in by_name.items() if type_name in BOUNDS else ():
            days = BOUNDS[type_name](body)
            if days is not None and f"{type_name}.{name}" not in NO_PERSONAL_DATA:
                found[f"{type_name}.{name}"] = days
    return found


def cloud_build_log_days(tf: dict[str, Any]) -> float:
    """The pipeline's build logs: Cloud Logging only (no logs bucket of Cloud Build's own), so
    the _Default log bucket, whose retention infra/ must set."""
    build = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    if build.get("options", {}).get("logging") != "CLOUD_LOGGING_ONLY" or "logsBucket" in build:
        return math.inf
    for body in tf["resource"].get("google_logging_project_bucket_config", {}).values():
        if body.get("bucket_id") == "_Default":
            return log_bucket_days(body)
    return math.inf


@pytest.fixture(scope="module")
def tf() -> dict[str, Any]:
    return parsed()


def test_every_resource_type_is_classified(tf: dict[str, Any]) -> None:
    unclassified = sorted(set(tf["resource"]) - set(BOUNDS) - set(HOLDS_NO_COPY))

    assert unclassified == [], (
        "a resource type that may hold a copy of data: give it a bound in BOUNDS, or review it "
        "into HOLDS_NO_COPY with the reason"
    )
    assert set(NO_PERSONAL_DATA) <= {f"{t}.{n}" for t, by in tf["resource"].items() for n in by}


def test_no_copy_outlives_the_privacy_policy(tf: dict[str, Any]) -> None:
    bound = policy_days()
    found = copies(tf)

    assert bound == 180
    too_long = {address: days for address, days in found.items() if days > bound}
    assert too_long == {}, f"copies that can outlive the policy's {bound:g} days"
    assert cloud_build_log_days(tf) <= bound


def test_the_backups_are_gone_within_180_days_soft_delete_included(tf: dict[str, Any]) -> None:
    bucket = tf["resource"]["google_storage_bucket"]["backups"]

    # 178 days, up to a day's lag, noncurrent deleted at once by a pass up to a day late, no
    # soft delete: 180.
    assert bucket_days(bucket) == 180
    assert value(_one(bucket["soft_delete_policy"])["retention_duration_seconds"]) == 0
    # The job writes to this bucket, so the export itself has the same bound.
    assert scheduler_job_days(tf["resource"]["google_cloud_scheduler_job"]["backup"]) == 180
    assert scheduler_job_days(tf["resource"]["google_cloud_scheduler_job"]["purge"]) is None


def test_the_bound_counts_soft_delete_and_what_a_rule_leaves() -> None:
    bucket: dict[str, Any] = {
        "versioning": [{"enabled": True}],
        "lifecycle_rule": [
            {"condition": [{"age": 178}], "action": [{"type": "Delete"}]},
            {
                "condition": [{"days_since_noncurrent_time": 0, "with_state": "ARCHIVED"}],
                "action": [{"type": "Delete"}],
            },
        ],
    }
    # Without a soft-delete policy Cloud Storage keeps a deleted export 7 more days: 187.
    assert bucket_days(bucket) == 187
    # Not versioned: one pass of the lifecycle, one day's lag.
    assert bucket_days({**bucket, "versioning": [{"enabled": False}]}) == 186
    assert bucket_days({**bucket, "soft_delete_policy": [{"retention_duration_seconds": 0}]}) == 180
    # Noncurrent versions kept: unbounded; moved to Archive instead of deleted: unbounded.
    kept = {**bucket, "lifecycle_rule": bucket["lifecycle_rule"][:1]}
    assert bucket_days(kept) == math.inf
    archived = {
        "lifecycle_rule": [
            {"condition": [{"age": 179}], "action": [{"type": "SetStorageClass"}]},
        ]
    }
    assert bucket_days(archived) == math.inf
    # A subscription without a retention keeps messages 7 days; a sink outside infra/ unbounded.
    assert subscription_days({}) == 7
    assert sink_days({"destination": "storage.googleapis.com/some-bucket"}) == math.inf


def test_pubsub_keeps_notification_content_no_longer_than_the_docs_say(tf: dict[str, Any]) -> None:
    pubsub = {
        address: days * DAY
        for address, days in copies(tf).items()
        if address.startswith(("google_pubsub_subscription.", "google_pubsub_topic."))
    }

    assert pubsub
    assert {a: s for a, s in pubsub.items() if s > PUBSUB_CONTENT_S} == {}
    for body in tf["resource"]["google_pubsub_subscription"].values():
        assert body.get("retain_acked_messages", False) is False


def test_request_logs_and_the_default_bucket_are_in_terraform(tf: dict[str, Any]) -> None:
    default = tf["resource"]["google_logging_project_bucket_config"]["default"]

    assert (default["bucket_id"], default["location"]) == ("_Default", "global")
    assert log_bucket_days(default) == 30
    assert cloud_build_log_days(tf) == 30


def docs_section() -> str:
    return page("operations/retention.md")


def _stated(days: float) -> str:
    if days < 1:
        return f"{days * DAY:,.0f} s"
    return f"{days:g} days"


def test_the_docs_list_every_copy_with_its_bound(tf: dict[str, Any]) -> None:
    rows = [line for line in docs_section().splitlines() if line.startswith("|")]
    found = dict(copies(tf))
    found["cloudbuild.yaml (options.logging)"] = cloud_build_log_days(tf)

    missing = []
    for address, days in found.items():
        row = [r for r in rows if f"`{address}`" in r]
        if len(row) != 1 or f"**{_stated(days)}**" not in row[0]:
            missing.append(f"{address}: **{_stated(days)}**")
    assert missing == [], "retention.md's table must name each copy once with its bound in bold"
