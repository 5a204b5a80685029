"""infra/ and cloudbuild.yaml, read as data: what the deploy promises is what the code needs."""

from __future__ import annotations

import json
from typing import Any

import hcl2
import pytest
import yaml  # type: ignore[import-untyped]

from devstack.gateway import function_names
from push365.indexes import required_indexes
from push365.retention import TTL_FIELD
from tests.conftest import REPO

INFRA = REPO / "infra"
FUNCTIONS = json.loads((INFRA / "functions.json").read_text())


def _clean(value: Any) -> Any:
    """python-hcl2 keeps HCL's quotes and marks blocks; drop both."""
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def terraform() -> dict[str, Any]:
    """Every block of every .tf file: {"resource": {type: {name: body}}, "variable": ...}."""
    merged: dict[str, Any] = {}
    for path in sorted(INFRA.glob("*.tf")):
        with path.open() as file:
            parsed = _clean(hcl2.load(file))
        for kind, blocks in parsed.items():
            for block in blocks:
                if kind in ("resource", "data"):
                    for type_name, by_name in block.items():
                        merged.setdefault(kind, {}).setdefault(type_name, {}).update(by_name)
                else:
                    merged.setdefault(kind, {}).update(block if isinstance(block, dict) else {})
    return merged


@pytest.fixture(scope="module")
def tf() -> dict[str, Any]:
    return terraform()


def resource(tf: dict[str, Any], type_name: str, name: str) -> dict[str, Any]:
    return tf["resource"][type_name][name]  # type: ignore[no-any-return]


def test_every_function_module_is_deployed_by_one_for_each(tf: dict[str, Any]) -> None:
    function = resource(tf, "google_cloudfunctions2_function", "function")

    assert set(FUNCTIONS) == set(function_names())
    assert function["for_each"] == "${local.functions}"
    build = function["build_config"][0]
    assert build["runtime"] == "python311"
    assert build["entry_point"] == "${each.key}"  # entry point = function name


def test_purge_is_private_and_the_scheduler_calls_it_with_oidc(tf: dict[str, Any]) -> None:
    public = resource(tf, "google_cloud_run_service_iam_member", "public")
    invoker = resource(tf, "google_cloud_run_service_iam_member", "purge_invoker")
    job = resource(tf, "google_cloud_scheduler_job", "purge")["http_target"][0]

    assert FUNCTIONS["purge"]["public"] is False
    assert "if function.public" in public["for_each"]
    assert {n for n, f in FUNCTIONS.items() if not f["public"]} == {"purge", "deliver"}
    assert invoker["member"] == "serviceAccount:${google_service_account.purge_scheduler.email}"
    assert (
        job["oidc_token"][0]["service_account_email"]
        == "${google_service_account.purge_scheduler.email}"
    )
    assert "X-Push365-Admin-Key" in job["headers"]
    assert "google_secret_manager_secret_version.admin_key" in job["headers"]["X-Push365-Admin-Key"]


def test_the_backup_bucket_deletes_at_180_days_and_is_never_public(tf: dict[str, Any]) -> None:
    bucket = resource(tf, "google_storage_bucket", "backups")
    variable = tf["variable"]["backup_retention_days"]

    ages = [rule["condition"][0].get("age") for rule in bucket["lifecycle_rule"]]
    assert "${var.backup_retention_days}" in ages
    assert variable["default"] == 180
    assert "<= 180" in variable["validation"][0]["condition"]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"


def test_indexes_and_ttl_field_match_the_code() -> None:
    declared = json.loads((INFRA / "firestore_indexes.json").read_text())

    # Regenerate with: .venv/bin/python -m push365.indexes > infra/firestore_indexes.json
    assert declared == required_indexes()
    assert declared["ttl_field"] == TTL_FIELD


def test_ttl_policies_and_retention_indexes_read_that_file(tf: dict[str, Any]) -> None:
    ttl = resource(tf, "google_firestore_field", "ttl")
    retention = resource(tf, "google_firestore_field", "retention")

    assert ttl["field"] == "${local.indexes.ttl_field}"
    assert "ttl_config" in ttl
    assert "local.indexes.collection_group_field_indexes" in retention["for_each"]


def test_each_function_account_has_only_its_roles(tf: dict[str, Any]) -> None:
    binding = resource(tf, "google_project_iam_member", "function")

    assert binding["for_each"] == "${local.function_roles}"
    # Only deliver talks to FCM; send publishes batches and no longer sends.
    fcm = {n for n, f in FUNCTIONS.items() if "roles/firebasecloudmessaging.admin" in f["roles"]}
    assert fcm == {"deliver"}
    assert FUNCTIONS["deliver"]["roles"] == [
        "roles/datastore.user",
        "roles/firebasecloudmessaging.admin",
    ]
    assert FUNCTIONS["send"]["roles"] == ["roles/datastore.user"]
    # Project-level roles: never a Pub/Sub one (publishing is granted on the topic, below).
    for function in FUNCTIONS.values():
        assert set(function["roles"]) <= {
            "roles/datastore.user",
            "roles/firebasecloudmessaging.admin",
        }


def test_function_settings_are_sized_for_their_jobs() -> None:
    for name, function in FUNCTIONS.items():
        assert function["max_instances"] >= 1, name
        assert function["memory"].endswith("M"), name
    # send's own deadline (40 s) and the function's timeout stay under Dynamics' 60 s.
    assert FUNCTIONS["send"]["timeout_seconds"] < 60
    # deliver's target peak RSS is 256 MB: a 256M limit would leave no headroom (an instance killed
    # mid-batch means redelivery), and 512M also doubles its CPU (0.167 -> 0.333 vCPU).
    assert int(FUNCTIONS["deliver"]["memory"].removesuffix("M")) >= 512


def _seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])


DELIVER_URL = '${google_cloudfunctions2_function.function["deliver"].service_config[0].uri}'
PUSH_ACCOUNT = "${google_service_account.pubsub_push.email}"
SERVICE_AGENT = (
    "serviceAccount:service-${data.google_project.this.number}"
    "@gcp-sa-pubsub.iam.gserviceaccount.com"
)
RETRY_HORIZON_S = 3600  # deliver's default horizon for transient FCM failures (issue 10)
RETENTION_CAP_S = 7200  # the content stays on Pub/Sub no longer than the horizon needs


def test_the_fanout_and_dead_letter_topics_exist_and_retain_nothing(tf: dict[str, Any]) -> None:
    fanout = resource(tf, "google_pubsub_topic", "fanout")
    dead_letter = resource(tf, "google_pubsub_topic", "fanout_dead_letter")

    assert fanout["name"] == "${var.name_prefix}-fanout"
    assert dead_letter["name"] == "${var.name_prefix}-fanout-dead-letter"
    for topic in (fanout, dead_letter):
        assert "message_retention_duration" not in topic  # subscriptions bound the retention
        assert topic["message_storage_policy"][0]["allowed_persistence_regions"] == [
            "${var.region}"
        ]
    assert "pubsub.googleapis.com" in tf["locals"]["apis"]


def test_the_deliver_subscription_pushes_to_deliver_with_oidc(tf: dict[str, Any]) -> None:
    subscription = resource(tf, "google_pubsub_subscription", "deliver")
    push = subscription["push_config"][0]

    assert subscription["name"] == "${var.name_prefix}-deliver"
    assert subscription["topic"] == "${google_pubsub_topic.fanout.id}"
    # deliver's URL; the path names the topic (the CloudEvent's source, see pubsub.tf).
    assert push["push_endpoint"] == "${local.deliver_url}/${google_pubsub_topic.fanout.id}"
    assert tf["locals"]["deliver_url"] == DELIVER_URL
    assert push["oidc_token"][0]["service_account_email"] == PUSH_ACCOUNT
    assert push["oidc_token"][0]["audience"] == "${local.deliver_url}"
    # The push request times out with deliver itself.
    assert subscription["ack_deadline_seconds"] == FUNCTIONS["deliver"]["timeout_seconds"] == 60
    assert subscription["expiration_policy"][0]["ttl"] == ""  # never expires


def test_the_deliver_subscription_retries_then_dead_letters(tf: dict[str, Any]) -> None:
    subscription = resource(tf, "google_pubsub_subscription", "deliver")
    retry = subscription["retry_policy"][0]
    dead_letter = subscription["dead_letter_policy"][0]

    assert dead_letter["dead_letter_topic"] == "${google_pubsub_topic.fanout_dead_letter.id}"
    attempts = dead_letter["max_delivery_attempts"]
    assert attempts == 20
    minimum, maximum = _seconds(retry["minimum_backoff"]), _seconds(retry["maximum_backoff"])
    assert (minimum, maximum) == (10, 300)
    retention = _seconds(subscription["message_retention_duration"])
    ack_deadline = subscription["ack_deadline_seconds"]
    # A poison batch reaches the dead-letter topic before its message could expire: every attempt
    # lasts at most the ack deadline, every wait at most the maximum backoff.
    assert (attempts - 1) * maximum + attempts * ack_deadline < retention
    # A batch failing only transiently gets deliver's whole horizon first (exponential backoff
    # from the minimum, doubling, capped at the maximum).
    waits = [min(minimum * 2**i, maximum) for i in range(attempts - 1)]
    assert sum(waits) > RETRY_HORIZON_S


def test_batch_content_stays_on_pubsub_no_longer_than_the_retry_needs(tf: dict[str, Any]) -> None:
    for name in ("deliver", "deliver_dead_letter"):
        subscription = resource(tf, "google_pubsub_subscription", name)
        retention = _seconds(subscription["message_retention_duration"])
        assert RETRY_HORIZON_S < retention <= RETENTION_CAP_S, name
        assert subscription["retain_acked_messages"] is False, name


def test_dead_lettered_batches_are_pushed_to_deliver_to_be_recorded(tf: dict[str, Any]) -> None:
    subscription = resource(tf, "google_pubsub_subscription", "deliver_dead_letter")
    push = subscription["push_config"][0]

    assert subscription["name"] == "${var.name_prefix}-deliver-dead-letter"
    assert subscription["topic"] == "${google_pubsub_topic.fanout_dead_letter.id}"
    assert push["push_endpoint"] == (
        "${local.deliver_url}/${google_pubsub_topic.fanout_dead_letter.id}"
    )
    assert push["oidc_token"][0]["service_account_email"] == PUSH_ACCOUNT
    assert push["oidc_token"][0]["audience"] == "${local.deliver_url}"
    assert "retry_policy" in subscription
    assert "dead_letter_policy" not in subscription
    assert subscription["expiration_policy"][0]["ttl"] == ""


def test_deliver_is_private_and_only_the_push_account_invokes_it(tf: dict[str, Any]) -> None:
    invoker = resource(tf, "google_cloud_run_service_iam_member", "deliver_invoker")

    assert FUNCTIONS["deliver"]["public"] is False
    assert invoker["service"] == (
        '${google_cloudfunctions2_function.function["deliver"].service_config[0].service}'
    )
    assert invoker["role"] == "roles/run.invoker"
    assert invoker["member"] == f"serviceAccount:{PUSH_ACCOUNT}"
    # The push account has no other grant anywhere.
    grants = [
        (type_name, name)
        for type_name, by_name in tf["resource"].items()
        for name, body in by_name.items()
        if PUSH_ACCOUNT in str(body.get("member", ""))
    ]
    assert grants == [("google_cloud_run_service_iam_member", "deliver_invoker")]


def test_send_and_deliver_publish_to_the_fanout_topic_only(tf: dict[str, Any]) -> None:
    publisher = resource(tf, "google_pubsub_topic_iam_member", "function_publisher")
    function = resource(tf, "google_cloudfunctions2_function", "function")

    # send publishes a notification's plan; deliver turns a plan into its batches.
    publishers = {n: f["publishes"] for n, f in FUNCTIONS.items() if "publishes" in f}
    assert publishers == {
        "send": {"PUSH365_FANOUT_TOPIC": "fanout"},
        "deliver": {"PUSH365_FANOUT_TOPIC": "fanout"},
    }
    assert tf["locals"]["topic_ids"] == {"fanout": "${google_pubsub_topic.fanout.name}"}
    # Topic-level grant, one per (function, topic) that functions.json names.
    assert publisher["for_each"] == "${local.function_publishers}"
    assert publisher["topic"] == "${local.topic_ids[each.value.topic]}"
    assert publisher["role"] == "roles/pubsub.publisher"
    assert "google_service_account.function[each.value.function].email" in publisher["member"]
    assert 'lookup(function, "publishes", {})' in tf["locals"]["function_publishers"]
    # ... and the topic id reaches the function in the variable functions.json names.
    assert 'lookup(function, "publishes", {})' in tf["locals"]["function_topics"]
    environment = function["service_config"][0]["environment_variables"]
    assert "local.function_topics[each.key]" in environment


def test_pubsub_service_agent_can_dead_letter_and_sign_push_tokens(tf: dict[str, Any]) -> None:
    publisher = resource(tf, "google_pubsub_topic_iam_member", "dead_letter_publisher")
    subscriber = resource(tf, "google_pubsub_subscription_iam_member", "dead_letter_subscriber")
    token_creator = resource(tf, "google_service_account_iam_member", "pubsub_push_token_creator")

    assert tf["locals"]["pubsub_service_agent"] == SERVICE_AGENT
    assert publisher["topic"] == "${google_pubsub_topic.fanout_dead_letter.name}"
    assert publisher["role"] == "roles/pubsub.publisher"
    assert subscriber["subscription"] == "${google_pubsub_subscription.deliver.name}"
    assert subscriber["role"] == "roles/pubsub.subscriber"
    # Needed only where the service agent predates 8 April 2021; granted on the push account alone.
    assert token_creator["service_account_id"] == "${google_service_account.pubsub_push.name}"
    assert token_creator["role"] == "roles/iam.serviceAccountTokenCreator"
    for binding in (publisher, subscriber, token_creator):
        assert binding["member"] == "${local.pubsub_service_agent}"
    assert not any(
        "pubsub_service_agent" in str(body.get("member", ""))
        for body in tf["resource"].get("google_project_iam_member", {}).values()
    )


def test_audit_records_go_to_a_log_bucket_with_a_retention(tf: dict[str, Any]) -> None:
    sink = resource(tf, "google_logging_project_sink", "audit")
    bucket = resource(tf, "google_logging_project_bucket_config", "audit")

    assert (
        'jsonPayload.event=\\"api_call\\"' in sink["filter"]
        or 'jsonPayload.event="api_call"' in sink["filter"]
    )
    assert bucket["retention_days"] == "${var.audit_log_retention_days}"


def test_every_function_url_is_an_output(tf: dict[str, Any]) -> None:
    assert "google_cloudfunctions2_function.function" in tf["output"]["function_urls"]["value"]


def test_cloudbuild_installs_lints_tests_and_deploys_with_terraform_only() -> None:
    build = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    script = json.dumps(build["steps"])

    for needed in ("requirements.txt", "ruff check", "mypy", "pytest", "checkov", "apply"):
        assert needed in script, needed
    assert "gcloud functions deploy" not in script  # one source of truth: infra/


def test_the_upload_leaves_out_tests_and_infra_but_keeps_the_library() -> None:
    import pathspec

    rules = pathspec.PathSpec.from_lines(
        "gitignore", (REPO / ".gcloudignore").read_text().splitlines()
    )

    for kept in (
        "functions/send.py",
        "shared/pyproject.toml",
        "shared/push365/store.py",
        "requirements.txt",
    ):
        assert not rules.match_file(kept), kept
    for left_out in (
        "tests/conftest.py",
        "bench/purge.py",
        "infra/main.tf",
        "devstack/gateway.py",
        "shared/push365/__pycache__/store.cpython-311.pyc",
        "requirements-dev.txt",
        "requirements-setup.txt",
        "dynamics/packer.py",
        "dynamics/setup/run.py",
        "dist/push365_0_1_0_0.zip",
    ):
        assert rules.match_file(left_out), left_out


def test_terraform_is_formatted() -> None:
    import shutil
    import subprocess

    if shutil.which("terraform") is None:
        pytest.skip("NOT RUN - terraform is not installed")
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", str(INFRA)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
