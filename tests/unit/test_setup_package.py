"""The setup command installs as a console script, ``push365-setup``, from ``dynamics/`` alone
(``pipx install ./dynamics``): its wheel is built here with this environment's setuptools and
wheel (offline, no build isolation), installed into a new virtual environment without the
repository on its path, and run from there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port

DYNAMICS = REPO / "dynamics"
PYPROJECT = tomllib.loads((DYNAMICS / "pyproject.toml").read_text("utf-8"))


def _run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dynamics/`` built into a wheel, from a copy (a build writes build/ into its source)."""
    source = tmp_path_factory.mktemp("source")
    shutil.copy(DYNAMICS / "pyproject.toml", source)
    shutil.copytree(
        DYNAMICS / "setup", source / "setup", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path_factory.mktemp("wheel")
    built = _run(
        sys.executable,
        *("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"),
        *("--wheel-dir", str(out), str(source)),
        cwd=source,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = out.glob("push365_setup-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with the wheel installed (``--no-deps``: the sign-in library is
    not needed to start the command): its ``push365-setup``."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=False)
    done = _run(
        sys.executable,
        *("-m", "pip", "--python", str(home / "bin" / "python"), "install"),
        *("--no-index", "--no-deps", "--quiet", str(wheel)),
        cwd=home,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return home / "bin" / "push365-setup"


def _clean_env() -> dict[str, str]:
    """This environment without the repository on the path: only what the wheel installed."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def test_the_package_is_the_setup_command_at_the_projects_version() -> None:
    shared = tomllib.loads((REPO / "shared" / "pyproject.toml").read_text("utf-8"))
    pins = (REPO / "requirements-setup.txt").read_text("utf-8")

    assert PYPROJECT["project"]["name"] == "push365-setup"
    assert PYPROJECT["project"]["version"] == shared["project"]["version"]
    assert PYPROJECT["project"]["scripts"] == {"push365-setup": "dynamics.setup.__main__:main"}
    # Every library the package names is pinned for the repository's own runs.
    for requirement in PYPROJECT["project"]["dependencies"]:
        name = requirement.split(">")[0].split("=")[0].split("<")[0].strip()
        assert f"\n{name}==" in f"\n{pins}", name


def test_the_wheel_holds_the_setup_command_only(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        modules = sorted(
            name for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")
        )

    assert modules == sorted(
        f"dynamics/setup/{path.name}" for path in (DYNAMICS / "setup").glob("*.py")
    )
    # No dynamics/__init__.py: a namespace, never shadowing a checkout's dynamics/ (the packer).
    assert "dynamics/__init__.py" not in modules


def test_the_installed_command_answers_help(installed: Path, tmp_path: Path) -> None:
    done = _run(str(installed), "--help", cwd=tmp_path, env=_clean_env())
    rules = _run(str(installed), "rules", "--help", cwd=tmp_path, env=_clean_env())

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: push365-setup ")
    for words in ("--environment", "--client-id", "--login-host", "rules push", "rules pull"):
        assert words in done.stdout, words
    assert rules.returncode == 0, rules.stderr
    assert rules.stdout.startswith("usage: push365-setup rules ")
    assert "push" in rules.stdout
    assert "pull" in rules.stdout


def test_the_installed_command_runs_from_its_own_environment(installed: Path) -> None:
    """Not the checkout's modules: the command's package is the installed one."""
    python = installed.parent / "python"
    where = _run(
        str(python),
        "-c",
        "import dynamics.setup.__main__ as m; print(m.__file__)",
        cwd=installed.parent,
        env=_clean_env(),
    )

    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed.parent.parent)


def test_the_installed_command_says_one_line_when_push365_is_unreachable(
    installed: Path, tmp_path: Path
) -> None:
    port = free_port()
    state = tmp_path / "push365-setup.json"
    state.write_text(f'{{"api_key": "p365.k", "base_url": "http://127.0.0.1:{port}"}}')

    done = _run(
        str(installed), "rules", "pull", "rules.yaml", "--state", str(state),
        cwd=tmp_path, env=_clean_env(),
    )  # fmt: skip

    assert done.returncode == 1
    assert done.stderr == f"push365-setup: cannot reach 127.0.0.1:{port}: connection refused\n"
    assert done.stdout == ""
