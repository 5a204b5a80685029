"""The repository needs nothing beside it: the pipeline's first step (cloudbuild.yaml's
``install-lint-test``: ruff, then ``pytest tests/unit``) passes on the tracked files alone, copied
into an empty folder with nothing beside them, as a fresh clone, a Cloud Build workspace or a
user's fork has them. A test, fixture, docs example or tool that reads the reference folder
beside the repository (or any other path outside it) fails here, although it would pass in a
checkout that happens to have that folder beside it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO


def tracked_files() -> list[str]:
    """The files git tracks, and the untracked ones it does not ignore (a change not yet
    committed is what is being tested)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    return [name.decode() for name in listed if name and (REPO / name.decode()).is_file()]


@pytest.fixture(scope="module")
def alone() -> Iterator[Path]:
    """The tracked files in ``<empty folder>/push365``: nothing else in the folder around it."""
    base = Path(tempfile.mkdtemp(prefix="push365-alone-"))
    try:
        copy = base / "push365"
        for name in tracked_files():
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target)
        assert sorted(p.name for p in base.iterdir()) == ["push365"]
        yield copy
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _environment(copy: Path) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        # The pipeline's step has no emulators and no provider schema: those tests say NOT RUN.
        if not key.startswith(("PUSH365_", "FIRESTORE_EMULATOR", "PUBSUB_EMULATOR", "PYTEST_"))
    }
    # The copy's own library and tests, ahead of the editable install of this checkout's.
    environment["PYTHONPATH"] = os.pathsep.join([str(copy / "shared"), str(copy)])
    return environment


def test_the_pipelines_first_step_passes_on_the_tracked_files_alone(alone: Path) -> None:
    environment = _environment(alone)
    bin_dir = Path(sys.executable).parent

    ruff = subprocess.run(
        [str(bin_dir / "ruff"), "check", "--no-cache", "."],
        cwd=alone,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ruff.returncode == 0, ruff.stdout[-3000:] + ruff.stderr[-2000:]

    where = subprocess.run(
        [sys.executable, "-c", "import push365; print(push365.__file__)"],
        cwd=alone,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(alone)), f"the copy imported another library: {where}"

    unit = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/unit", "-q", "-p", "no:cacheprovider", "-x"],
        cwd=alone,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    tail = unit.stdout[-4000:] + unit.stderr[-2000:]
    assert unit.returncode == 0, tail
    summary = re.search(r"(\d+) passed", tail)
    assert summary is not None, tail
    assert int(summary.group(1)) > 100, tail
    assert " failed" not in tail, tail
    assert " error" not in tail, tail
