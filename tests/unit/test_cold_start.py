"""Import time is cold-start time: only the function that sends loads firebase-admin, on its
first send, and no function talks to anything while it is being loaded."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from devstack.gateway import FUNCTIONS_DIR, function_names

PROBE = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("{name}", "{path}")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(sorted(m for m in ("firebase_admin", "google.cloud.logging_v2", "boto3") if m in sys.modules))
"""


@pytest.mark.parametrize("name", function_names())
def test_loading_a_function_imports_no_heavy_optional_library(name: str) -> None:
    code = PROBE.format(name=name, path=FUNCTIONS_DIR / f"{name}.py")

    # No emulator and no credentials: loading must not need either.
    # (PYTHONPATH kept: the code under test is this tree's, not an installed copy of it.)
    env = {
        "PATH": "/usr/bin:/bin",
        "GOOGLE_CLOUD_PROJECT": "demo-cold",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )

    assert result.stdout.strip() == "[]"
