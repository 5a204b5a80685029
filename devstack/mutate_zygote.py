"""A test runner that has the heavy libraries imported once and forks a fresh child per run.

``devstack.mutate`` starts one per copy of the tree (cwd the copy, its ``shared/`` first on
``PYTHONPATH``) and writes one JSON line per run: pytest's arguments. The child runs pytest with
nothing of Push365 imported yet (so it imports the mutated code), its output discarded; the
answer is one line, pytest's exit code (negative: killed by that signal, e.g. the timeout).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys

# Third-party only: the code under test (push365, functions, tests, devstack) must be imported
# afresh by each child.
PRELOAD = (
    "pytest",
    "pydantic",
    "pydantic_settings",
    "flask",
    "yaml",
    "hcl2",
    "google.api_core.exceptions",
    "google.api_core.retry",
    "google.cloud.firestore",
    "google.cloud.logging_v2",
)
OURS = ("push365", "tests", "functions")


def main() -> int:
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    leaked = [m for m in sys.modules if m.split(".")[0] in OURS]
    if leaked:
        raise SystemExit(f"preloading imported code under test: {leaked[:3]}")
    timeout = int(os.environ.get("PUSH365_MUTATE_TIMEOUT", "180"))
    for line in sys.stdin:
        arguments = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: one pytest run, quiet
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            signal.alarm(timeout)
            import pytest

            os._exit(int(pytest.main(arguments)))
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(f"{os.waitstatus_to_exitcode(status)}\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
