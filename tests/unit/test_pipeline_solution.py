"""The pipeline builds the Dynamics 365 solution and stores it: cloudbuild.yaml's step ``solution``
runs the packer (``make solution``), and its ``artifacts`` put exactly the zips that build writes,
named with the solution's version, into the bucket infra/solution.tf defines, which deletes them
within a bound. So an administrator gets the solution from the pipeline, without a developer."""

from __future__ import annotations

import fnmatch
import math
import re
import shlex
from pathlib import Path
from typing import Any

import pathspec
import pytest
import yaml  # type: ignore[import-untyped]

from dynamics import packer
from tests.conftest import REPO
from tests.unit.test_infra import PIPELINE_IGNORE, terraform, upload_list
from tests.unit.test_infra_retention import NO_PERSONAL_DATA, bucket_days, value, variables

BUILD: dict[str, Any] = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())


@pytest.fixture(scope="module")
def tf() -> dict[str, Any]:
    return terraform()


def _step(step_id: str) -> dict[str, Any]:
    (step,) = [step for step in BUILD["steps"] if step["id"] == step_id]
    return dict(step)


def _command(step: dict[str, Any]) -> list[str]:
    return [step.get("entrypoint", ""), *step.get("args", [])]


def test_the_pipeline_builds_the_solution_as_make_solution_does_after_the_tests() -> None:
    step = _step("solution")
    make = (REPO / "Makefile").read_text()
    recipe = re.search(r"^solution:\n\t(.+)$", make, re.MULTILINE)
    ids = [s["id"] for s in BUILD["steps"]]

    assert recipe is not None
    # The Makefile's recipe with its interpreter: the same module, the same output folder.
    assert (
        shlex.split(recipe[1])[1:]
        == _command(step)[1:]
        == ["-m", "dynamics.packer", "--out", "dist"]
    )
    assert _command(step)[0] == "python"
    assert step["name"].startswith("python:3.11")  # the packer needs the standard library only
    assert ids.index("install-lint-test") < ids.index("solution") < ids.index("terraform-apply")


def test_the_artifacts_are_exactly_the_zips_the_build_writes_named_with_its_version(
    tmp_path: Path,
) -> None:
    objects = BUILD["artifacts"]["objects"]
    built = packer.build(tmp_path / "dist")
    written = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "dist").iterdir())
    version = packer.project_version()

    assert written == sorted(
        f"dist/{packer.zip_name(version, managed)}" for managed in (False, True)
    )
    stored = [path for path in written if any(fnmatch.fnmatch(path, p) for p in objects["paths"])]
    assert stored == written  # both zips, nothing else
    assert built.unmanaged.name == f"push365_{version.replace('.', '_')}.zip"
    assert built.managed.name == f"push365_{version.replace('.', '_')}_managed.zip"
    # A zip of another version left in dist/ would match too: dist/ is never uploaded.
    assert all(path.startswith("dist/push365_") for path in objects["paths"])


def test_the_artifacts_go_to_the_solution_bucket_of_infra(tf: dict[str, Any]) -> None:
    location = BUILD["artifacts"]["objects"]["location"]
    bucket = tf["resource"]["google_storage_bucket"]["solution"]
    name = bucket["name"].replace("${var.name_prefix}", variables()["name_prefix"])

    # The pipeline's project is Terraform's project_id (the plan step passes it).
    assert "-var=project_id=${PROJECT_ID}" in _command(_step("terraform-plan"))
    assert location == "gs://" + name.replace("${var.project_id}", "${PROJECT_ID}") + "/"
    assert "solution_bucket" in tf["output"]


def test_the_solution_bucket_is_private_and_bounded(tf: dict[str, Any]) -> None:
    bucket = tf["resource"]["google_storage_bucket"]["solution"]

    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    days = bucket_days(bucket)
    assert days < math.inf  # both the zips and the zips a rebuild replaced are deleted
    retention = value("${var.solution_retention_days}")
    # Each rule a day late at most (the age rule, then the one deleting what it left as a
    # noncurrent version), plus soft delete's 7 days.
    assert days == retention + 1 + 0 + 1 + 7
    # Reviewed as holding no one's data: the repository's code and web resources.
    assert "google_storage_bucket.solution" in NO_PERSONAL_DATA


def test_the_pipeline_account_may_write_the_solution_bucket(tf: dict[str, Any]) -> None:
    """The artifacts are uploaded as the build's account, the deployer: its Storage Admin is
    conditioned only away from the backups' objects."""
    condition = tf["locals"]["deployer_conditional_roles"]["roles/storage.admin"]["expression"]
    solution = tf["resource"]["google_storage_bucket"]["solution"]["name"]

    assert "-backups/objects/" in condition
    assert solution.rsplit("-", 1)[1] not in condition


def test_local_zips_are_never_uploaded_to_the_pipeline() -> None:
    rules = pathspec.PathSpec.from_lines(
        "gitignore", (REPO / PIPELINE_IGNORE).read_text().splitlines()
    )

    assert rules.match_file("dist/push365_0_0_9_0.zip")
    assert not any(path.startswith("dist/") for path in upload_list(REPO, PIPELINE_IGNORE))
