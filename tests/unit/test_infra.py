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
    assert [n for n, f in FUNCTIONS.items() if not f["public"]] == ["purge"]
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
    fcm = {n for n, f in FUNCTIONS.items() if "roles/firebasecloudmessaging.admin" in f["roles"]}
    assert fcm == {"send"}
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
