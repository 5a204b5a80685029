"""infra/ and cloudbuild.yaml, read as data: what the deploy promises is what the code needs."""

from __future__ import annotations

import fnmatch
import json
import os
import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml  # type: ignore[import-untyped]

from devstack.gateway import function_names
from push365.indexes import required_indexes
from push365.retention import TTL_FIELD
from tests.conftest import REPO
from tests.docs import page

INFRA = REPO / "infra"
FUNCTIONS = json.loads((INFRA / "functions.json").read_text())


def _clean(value: Any) -> Any:
    """python-hcl2 keeps HCL's quotes and marks blocks and comments; drop all three."""
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items() if not str(k).startswith("__")}
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


@pytest.mark.parametrize("name", ["purge", "reconcile"])
def test_purge_and_reconcile_are_private_and_the_scheduler_calls_them_with_oidc(
    tf: dict[str, Any], name: str
) -> None:
    public = resource(tf, "google_cloud_run_service_iam_member", "public")
    invoker = resource(tf, "google_cloud_run_service_iam_member", f"{name}_invoker")
    job = resource(tf, "google_cloud_scheduler_job", name)["http_target"][0]

    assert FUNCTIONS[name]["public"] is False
    assert "if function.public" in public["for_each"]
    assert {n for n, f in FUNCTIONS.items() if not f["public"]} == {
        "purge",
        "reconcile",
        "deliver",
    }
    assert invoker["member"] == "serviceAccount:${google_service_account.purge_scheduler.email}"
    assert f'function["{name}"]' in invoker["service"]
    assert (
        job["oidc_token"][0]["service_account_email"]
        == "${google_service_account.purge_scheduler.email}"
    )
    assert job["oidc_token"][0]["audience"] == job["uri"]
    assert f'function["{name}"]' in job["uri"]
    assert job["headers"] == {"Content-Type": "application/json"}
    assert FUNCTIONS[name]["callers"] == {"PUSH365_PURGE_INVOKER": "purge_scheduler"}


def test_no_secret_in_the_scheduler_job_and_purge_checks_the_schedulers_identity(
    tf: dict[str, Any],
) -> None:
    job = resource(tf, "google_cloud_scheduler_job", "purge")["http_target"][0]
    function = resource(tf, "google_cloudfunctions2_function", "function")
    environment = function["service_config"][0]["environment_variables"]

    # Anyone who can view the job sees its headers: nothing secret there, and no admin key at all
    # in production (it stays for `make dev`).
    assert job["headers"] == {"Content-Type": "application/json"}
    assert "google_secret_manager_secret_version" not in json.dumps(tf)
    assert "admin_key" not in json.dumps(tf["resource"])
    assert all("secrets" not in f for f in FUNCTIONS.values())
    # purge learns the one account whose token it accepts (push365.retention.caller).
    assert FUNCTIONS["purge"]["callers"] == {"PUSH365_PURGE_INVOKER": "purge_scheduler"}
    assert tf["locals"]["caller_accounts"] == {
        "purge_scheduler": "${google_service_account.purge_scheduler.email}"
    }
    assert 'lookup(function, "callers", {})' in tf["locals"]["function_callers"]
    assert "local.function_callers[each.key]" in environment


def test_the_backup_bucket_deletes_at_180_days_and_is_never_public(tf: dict[str, Any]) -> None:
    bucket = resource(tf, "google_storage_bucket", "backups")
    variable = tf["variable"]["backup_retention_days"]

    ages = [rule["condition"][0].get("age") for rule in bucket["lifecycle_rule"]]
    assert "${var.backup_retention_days}" in ages
    # The numbers themselves: tests/privacy/test_p09_backups.py.
    assert variable["default"] == 178
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


def test_a_batchs_large_fields_are_deployed_without_indexes(tf: dict[str, Any]) -> None:
    unindexed = resource(tf, "google_firestore_field", "unindexed")
    fields = {(f["collection"], f["field"]) for f in required_indexes()["unindexed_fields"]}

    assert "local.indexes.unindexed_fields" in unindexed["for_each"]
    assert unindexed["index_config"] in ({}, [{}])
    assert ("batches", "deliveries") in fields
    assert ("batches", "receipt_hashes") in fields
    # What a query filters on keeps its index.
    assert not fields & {("batches", "done"), ("batches", "users"), ("batches", "created_at")}


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


@pytest.mark.parametrize("ignore_file", [".gitignore", ".gcloudignore", ".gcloudignore-cloudbuild"])
def test_the_setup_state_holding_an_api_key_is_never_committed_or_uploaded(
    ignore_file: str,
) -> None:
    # dynamics.setup keeps the organization's API key in push365-setup.json, by default in the
    # directory it runs in: the administrator guide runs it from the repository root, in
    # .venv-setup.
    import pathspec

    rules = pathspec.PathSpec.from_lines("gitignore", (REPO / ignore_file).read_text().splitlines())

    for secret in ("push365-setup.json", "dynamics/push365-setup.json", ".venv-setup/bin/python"):
        assert rules.match_file(secret), secret


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


# --- Cloud Build: what it uploads, what it runs, as whom ------------------------------------

PIPELINE_IGNORE = ".gcloudignore-cloudbuild"
BUILD = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
# What each step reads from the upload (globs: at least one match each). A new step needs a line.
STEP_NEEDS = {
    "install-lint-test": [
        "requirements.txt",
        "requirements-dev.txt",
        "pyproject.toml",  # ruff, mypy and pytest settings
        "shared/pyproject.toml",
        "shared/push365/**/*.py",
        "functions/*.py",
        "devstack/*.py",  # the unit tests import the local stack's helpers
        "tests/conftest.py",
        "tests/unit/*.py",
        "tests/fakes.py",
        "web/*.js",  # tests/unit/test_web_bundle.py
        "cloudbuild.yaml",  # this test
        PIPELINE_IGNORE,  # this test
        "tests/docs.py",
        "README.md",  # tests/unit/test_docs.py
        "CHANGELOG.md",  # tests/unit/test_docs.py
        "CONTRIBUTING.md",  # tests/unit/test_docs.py
        "docs/**/*.md",  # this test and the others that read the docs
        "infra/*.tf",  # this test
    ],
    "solution": [
        "dynamics/packer.py",
        "dynamics/__init__.py",
        "dynamics/solution/Other/*.xml",
        "dynamics/solution/**/*.xml",
        "web/*.html",
        "web/*.js",
        "shared/pyproject.toml",  # the solution's version
    ],
    "checkov": ["infra/*.tf"],
    "terraform-init": ["infra/versions.tf"],
    "terraform-plan": [
        "infra/*.tf",
        "infra/functions.json",
        "infra/firestore_indexes.json",
        "infra/metrics.json",
        "infra/dashboard.json",
        "infra/pipeline.auto.tfvars",
        ".gcloudignore",  # infra/functions.tf reads it to zip the functions' source
        "requirements.txt",
        "functions/*.py",
        "shared/pyproject.toml",
        "shared/push365/**/*.py",
    ],
    "terraform-apply": [],  # the plan file the plan step wrote
}


def upload_list(root: Path, ignore_file: str) -> set[str]:
    """The files gcloud uploads from ``root`` with ``ignore_file`` (gcloud meta
    list-files-for-upload): gitignore patterns, the last match deciding, and a directory that
    matches is skipped whole (nothing under it can be included again)."""
    import pathspec

    spec = pathspec.PathSpec.from_lines("gitignore", (root / ignore_file).read_text().splitlines())
    kept: set[str] = set()
    for directory, subdirectories, files in os.walk(root):
        relative = Path(directory).relative_to(root)
        subdirectories[:] = [
            d for d in subdirectories if not spec.match_file((relative / d).as_posix() + "/")
        ]
        for name in files:
            path = (relative / name).as_posix()
            if not spec.match_file(path):
                kept.add(path)
    return kept


def _needs_met(upload: set[str], patterns: list[str]) -> list[str]:
    """The patterns nothing in ``upload`` matches."""
    return [p for p in patterns if not any(fnmatch.fnmatch(path, p) for path in upload)]


def test_the_pipeline_uploads_what_every_step_needs_and_no_local_state() -> None:
    upload = upload_list(REPO, PIPELINE_IGNORE)

    assert set(STEP_NEEDS) == {step["id"] for step in BUILD["steps"]}
    for step, patterns in STEP_NEEDS.items():
        assert _needs_met(upload, patterns) == [], step
    # Nothing local goes: virtual environments, caches, Terraform's own state and plans.
    for local in (".venv/", ".venv-checkov/", ".local/", ".git/", "__pycache__/", "node_modules/"):
        assert not any(local in f"/{path}" or path.startswith(local) for path in upload), local
    assert not any(path.startswith(("infra/.terraform/", "infra/.build/")) for path in upload)
    # Inside the build, infra/functions.tf zips the functions' source from this upload with
    # .gcloudignore: it must get exactly what a deploy from the repository gets.
    tracked = _tracked()
    if tracked is not None:
        assert tracked <= upload, sorted(tracked - upload)[:10]
        functions = {p for p in upload_list(REPO, ".gcloudignore") if p in tracked}
        assert {p for p in functions if p in upload} == functions
        assert "functions/send.py" in functions
        assert "tests/conftest.py" not in functions


def test_the_functions_upload_alone_would_break_the_pipeline() -> None:
    """Why the pipeline has its own ignore file: .gcloudignore (the functions' upload) leaves out
    what the steps need (issue 14: `gcloud builds submit` failed at its first step)."""
    upload = upload_list(REPO, ".gcloudignore")

    missing = _needs_met(upload, STEP_NEEDS["install-lint-test"] + STEP_NEEDS["terraform-plan"])
    assert {"requirements-dev.txt", "pyproject.toml", "tests/unit/*.py", "infra/*.tf"} <= set(
        missing
    )


def test_the_upload_list_is_what_gcloud_itself_lists(tmp_path: Path) -> None:
    """The same rules through gcloud's own implementation, when the Google Cloud CLI is here: a
    copy of the tree (tracked files plus local state) with the pipeline's ignore file as its
    .gcloudignore, listed by `gcloud meta list-files-for-upload`."""
    import shutil
    import subprocess

    gcloud, tracked = shutil.which("gcloud"), _tracked()
    if gcloud is None or tracked is None:
        pytest.skip("NOT RUN - gcloud or git is not installed")
    local_state = [
        ".venv/bin/python",
        ".local/outbox/1.json",
        "shared/push365/__pycache__/store.cpython-311.pyc",
        "shared/push365.egg-info/PKG-INFO",
        "web/sdk/node_modules/firebase/package.json",
        "infra/.terraform/providers/x",
        "infra/.build/push365-source.zip",
        "infra/terraform.tfstate",
        "infra/tfplan",
    ]
    for path in sorted(tracked | set(local_state)):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
    (tmp_path / ".gcloudignore").write_text((REPO / PIPELINE_IGNORE).read_text())

    listed = subprocess.run(
        [gcloud, "meta", "list-files-for-upload", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"},
    ).stdout.splitlines()  # one path a line (a path may hold a space)

    assert set(listed) == upload_list(tmp_path, ".gcloudignore")
    assert not set(local_state) & set(listed)


def _tracked() -> set[str] | None:
    """The files Git tracks, or None where there is no Git (inside Cloud Build)."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (REPO / ".git").exists():
        return None
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.decode()
    return {p for p in out.split("\0") if p and (REPO / p).is_file()}


def _step(step_id: str) -> dict[str, Any]:
    (step,) = [s for s in BUILD["steps"] if s["id"] == step_id]
    return step  # type: ignore[no-any-return]


def test_the_pipeline_plans_then_applies_that_plan_with_committed_variables(
    tf: dict[str, Any],
) -> None:
    ids = [step["id"] for step in BUILD["steps"]]
    plan, apply = _step("terraform-plan")["args"], _step("terraform-apply")["args"]

    assert ids.index("terraform-plan") < ids.index("terraform-apply")
    assert "-out=tfplan" in plan
    assert apply[-1] == "tfplan"
    assert "-auto-approve" not in json.dumps(BUILD)
    # Only the project comes from the build; every other variable from the committed file, which
    # Terraform loads by itself (so an operator's local apply uses the same values).
    assert [a for a in plan if a.startswith("-var")] == ["-var=project_id=${PROJECT_ID}"]
    assert not [a for a in apply if a.startswith("-var")]
    with (INFRA / "pipeline.auto.tfvars").open() as file:
        pipeline_vars = _clean(hcl2.load(file))
    assert set(pipeline_vars) <= set(tf["variable"]) - {"project_id"}
    assert {"mail_backend", "ses_sender", "notification_channels"} <= set(pipeline_vars)
    assert BUILD["options"]["logging"] == "CLOUD_LOGGING_ONLY"  # a named build account needs it


def test_the_pipeline_runs_as_the_deployer_with_its_own_ignore_file(tf: dict[str, Any]) -> None:
    deployer = resource(tf, "google_service_account", "deployer")
    roles = tf["locals"]["deployer_roles"]
    deploying = page("operations/deploying.md")
    commands = [
        " ".join(line.strip().rstrip("\\") for line in block.splitlines())
        for block in re.findall(r"gcloud builds submit[^`]*?(?=\n\n|```|\n#)", deploying + "\n\n")
    ]

    assert deployer["account_id"] == "${var.name_prefix}-deployer"
    assert "roles/owner" not in roles
    assert "roles/editor" not in roles
    assert "roles/logging.logWriter" in roles  # its own build logs
    # It acts as this stack's accounts only, one grant each, never project-wide.
    assert "roles/iam.serviceAccountUser" not in roles
    acts_as = resource(tf, "google_service_account_iam_member", "deployer_acts_as")
    assert acts_as["role"] == "roles/iam.serviceAccountUser"
    assert acts_as["for_each"] == "${local.deployer_acts_as}"
    for account in ("function[name]", "build", "purge_scheduler", "backup", "pubsub_push"):
        assert f"google_service_account.{account}.name" in tf["locals"]["deployer_acts_as"]
    assert commands, "docs/operations/deploying.md gives the pipeline's command"
    for command in commands:
        assert f"--ignore-file {PIPELINE_IGNORE}" in command or (
            f"--ignore-file={PIPELINE_IGNORE}" in command
        ), command
        assert "serviceAccounts/push365-deployer@" in command, command
    state = resource(tf, "google_storage_bucket_iam_member", "deployer_state")
    assert state["bucket"] == "${var.tf_state_bucket}"
    # A trigger on main, when a repository is named, runs the same file as the same account.
    trigger = resource(tf, "google_cloudbuild_trigger", "main")
    assert trigger["service_account"] == "${google_service_account.deployer.id}"
    assert trigger["filename"] == "cloudbuild.yaml"
    assert trigger["substitutions"] == {"_TF_STATE_BUCKET": "${var.tf_state_bucket}"}


# --- a first apply in an empty project ------------------------------------------------------

# Google's documented roles of a function's build account; the third only on the buckets builds
# read (tests/unit/test_infra_iam.py).
DOCUMENTED_BUILD_ROLES = [
    "roles/logging.logWriter",
    "roles/artifactregistry.writer",
]


def test_every_function_is_built_by_the_named_build_account(tf: dict[str, Any]) -> None:
    function = resource(tf, "google_cloudfunctions2_function", "function")
    build = function["build_config"][0]
    grants = resource(tf, "google_project_iam_member", "build")

    assert build["service_account"] == "${google_service_account.build.id}"  # projects/P/sA/E
    assert tf["locals"]["build_roles"] == DOCUMENTED_BUILD_ROLES
    assert grants["for_each"] == "${toset(local.build_roles)}"
    assert grants["member"] == "serviceAccount:${google_service_account.build.email}"
    assert "${google_project_iam_member.build}" in function["depends_on"]
    sources = resource(tf, "google_project_iam_member", "build_sources")
    assert sources["role"] == "roles/storage.objectAdmin"
    assert sources["member"] == "serviceAccount:${google_service_account.build.email}"
    assert "${google_project_iam_member.build_sources}" in function["depends_on"]


def test_every_account_and_binding_waits_for_the_apis(tf: dict[str, Any]) -> None:
    waiting = []
    for type_name, by_name in tf["resource"].items():
        if type_name == "google_service_account" or type_name.endswith("_iam_member"):
            for name, body in by_name.items():
                if "${google_project_service.apis}" not in body.get("depends_on", []):
                    waiting.append(f"{type_name}.{name}")
    assert waiting == []
    for api in (
        "cloudresourcemanager.googleapis.com",
        "iam.googleapis.com",
        "firebase.googleapis.com",
        "fcm.googleapis.com",
        "fcmregistrations.googleapis.com",
        "monitoring.googleapis.com",
    ):
        assert api in tf["locals"]["apis"], api


def test_the_firestore_service_agent_exists_before_its_binding(tf: dict[str, Any]) -> None:
    agent = resource(tf, "google_project_service_identity", "firestore")
    binding = resource(tf, "google_storage_bucket_iam_member", "backup_writer")
    providers = tf["terraform"]["required_providers"][0]

    assert agent["service"] == "firestore.googleapis.com"
    assert agent["provider"] in ("google-beta", "${google-beta}")  # a beta-only resource
    assert providers["google-beta"]["source"] == "hashicorp/google-beta"
    assert binding["member"] == "serviceAccount:${google_project_service_identity.firestore.email}"


def test_provider_versions_and_the_platforms_own_variable(tf: dict[str, Any]) -> None:
    providers = tf["terraform"]["required_providers"][0]
    function = resource(tf, "google_cloudfunctions2_function", "function")
    environment = function["service_config"][0]["environment_variables"]

    # 2.5.0 is the first archive provider with glob excludes (functions.tf's source zip).
    assert providers["archive"]["version"] == "~> 2.5"
    # 6.13: the first google provider with disable_metric_validation (the purge alert).
    assert providers["google"]["version"] == providers["google-beta"]["version"] == "~> 6.13"
    # Cloud Functions sets LOG_EXECUTION_ID itself: declared, or every plan redeploys everything.
    assert 'LOG_EXECUTION_ID = "true"' in environment or "LOG_EXECUTION_ID" in environment


# --- observability --------------------------------------------------------------------------

METRICS = json.loads((INFRA / "metrics.json").read_text())


def test_log_based_metrics_come_from_metrics_json(tf: dict[str, Any]) -> None:
    metric = resource(tf, "google_logging_metric", "audit")

    assert metric["for_each"] == "${local.metrics}"
    assert 'file("${path.module}/metrics.json")' in tf["locals"]["metrics"]
    assert metric["value_extractor"].startswith("${each.value.value == null ? null")
    (buckets,) = [d["bucket_options"] for d in metric["dynamic"] if "bucket_options" in d]
    assert buckets["for_each"] == "${each.value.buckets}"  # none for counters, one otherwise
    (labels,) = metric["metric_descriptor"][0]["dynamic"]
    assert labels["labels"]["content"][0]["value_type"] == "${labels.value.type}"
    assert "resource.type" in tf["locals"]["on_functions"]
    for name, definition in METRICS.items():
        assert definition["filter"].startswith('jsonPayload.event="api_call"'), name
        assert ("value" in definition) == ("buckets" in definition), name


def test_alert_policies_watch_the_metrics_and_notify_the_channels(tf: dict[str, Any]) -> None:
    policies = tf["resource"]["google_monitoring_alert_policy"]
    occurrence = tf["locals"]["occurrence_alerts"]

    assert set(policies) == {
        "server_errors",
        "purge_missed",
        "occurrence",
        "send_latency",
        "fanout_backlog",
        "export_failed",
        "scheduler_failed",
    }
    assert policies["occurrence"]["for_each"] == "${local.occurrence_alerts}"
    assert {k: v["metric"] for k, v in occurrence.items()} == {
        "fcm_auth": "fcm_auth_failures",
        "dead_letters": "dead_lettered_batches",
        "refused_messages": "refused_messages",
        "reconcile_given_up": "reconcile_given_up",
    }
    assert all(a["metric"] in METRICS and a["runbook"] for a in occurrence.values())
    for name, policy in policies.items():
        assert policy["notification_channels"] == "${var.notification_channels}", name
        assert policy["documentation"][0]["content"], name
    any_count = policies["occurrence"]["conditions"][0]["condition_threshold"][0]
    assert "local.metric_types[each.value.metric]" in any_count["filter"]
    assert (any_count["threshold_value"], any_count["comparison"]) == (0, "COMPARISON_GT")
    ratio = policies["server_errors"]["conditions"][0]["condition_threshold"][0]
    assert 'local.metric_types["server_errors"]' in ratio["filter"]
    assert 'local.metric_types["requests"]' in ratio["denominator_filter"]
    assert (ratio["threshold_value"], ratio["duration"]) == (0.01, "300s")
    purge = policies["purge_missed"]["conditions"][0]["condition_prometheus_query_language"][0]
    assert "absent_over_time(" in purge["query"]
    assert "[26h]" in purge["query"]
    assert 'audit["purge_successes"]' in purge["query"]
    latency = policies["send_latency"]["conditions"][0]["condition_threshold"][0]
    assert latency["threshold_value"] == 5000  # duration_ms
    assert latency["aggregations"][0]["cross_series_reducer"] == "REDUCE_PERCENTILE_95"
    assert 'metric.label.function=\\"send\\"' in latency["filter"] or (
        'metric.label.function="send"' in latency["filter"]
    )


def test_the_dashboard_shows_only_metrics_that_exist() -> None:
    text = (INFRA / "dashboard.json").read_text()
    referenced = set(re.findall(r"\$\{(?:metrics|promql)\.([a-z_]+)\}", text))
    rendered = re.sub(r"\$\{[a-z_.]+\}", "x", text)

    dashboard = json.loads(rendered)
    assert dashboard["gridLayout"]["widgets"]
    assert referenced
    assert referenced <= set(METRICS)
    assert {"requests", "server_errors", "duration_ms", "faults"} <= referenced
