"""A deploy rehearsal: exactly what gcloud would upload, installed as the Python buildpack installs
it, every function loaded as functions-framework loads it, from an isolated interpreter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pathspec
import pytest

from devstack.gateway import function_names
from tests.conftest import REPO

# One call each that needs no database: each function must load, route and answer. (Every
# authentication reads the store, even without a key, so that every failure takes the same time:
# the keyed functions are called with a method their route does not take.)
CALLS = {
    "receipt": ("POST", "/", {"receipt": "not-a-receipt"}, 404),
    "register": ("POST", "/", {}, 422),
    "send": ("GET", "/", None, 405),
    "subscribe": ("GET", "/", None, 405),
    "unsubscribe": ("GET", "/", None, 405),
    "privacy": ("POST", "/export", {}, 405),
    "purge": ("POST", "/", {}, 403),  # no admin key configured: refuses everyone
    "reconcile": ("POST", "/", {}, 403),  # the same callers as purge
    # A CloudEvent function: a body that is not a Pub/Sub push is refused (invalid_message)
    # before functions-framework reads it.
    "deliver": ("POST", "/", {}, 400),
}

LOAD_AND_CALL = """
import json, sys
import functions_framework
name, method, path, body = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
app = functions_framework.create_app(target=name, source=f"functions/{name}.py")
client = app.test_client()
options = {"json": body} if body is not None else {}
response = client.open(path, method=method, **options)
tree = [p for p in sys.path if p.startswith("/work")]
print(json.dumps({"status": response.status_code, "in_path": tree}))
"""


def upload_files() -> list[Path]:
    """What gcloud uploads: every file not matched by .gcloudignore."""
    rules = pathspec.PathSpec.from_lines(
        "gitignore", (REPO / ".gcloudignore").read_text().splitlines()
    )
    files = []
    for path in sorted(REPO.rglob("*")):
        relative = path.relative_to(REPO).as_posix()
        if path.is_file() and not rules.match_file(relative):
            files.append(path.relative_to(REPO))
    return files


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("upload")
    for relative in upload_files():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, source / relative)
    venv = source.parent / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            "requirements.txt",
        ],
        cwd=source,
        check=True,
        timeout=600,
    )
    return source


def test_the_upload_holds_the_functions_and_the_library_only() -> None:
    top_level = {p.parts[0] for p in upload_files()}

    assert top_level == {"functions", "shared", "requirements.txt"}


@pytest.mark.parametrize("name", function_names())
def test_each_function_loads_from_the_upload_in_an_isolated_interpreter(
    deployed: Path, name: str
) -> None:
    method, path, body, expected = CALLS[name]
    python = deployed.parent / "venv" / "bin" / "python"
    # No credentials here: an emulator address (nothing listens) lets clients be built; none of
    # these calls reaches the database.
    env = {
        "PATH": os.environ["PATH"],
        "GOOGLE_CLOUD_PROJECT": "demo-rehearsal",
        "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9",
    }

    result = subprocess.run(
        [str(python), "-I", "-c", LOAD_AND_CALL, name, method, path, json.dumps(body)],
        cwd=deployed,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == expected, result.stdout[-3000:]
    assert answer["in_path"] == []  # nothing of the working tree: only the upload and its venv
