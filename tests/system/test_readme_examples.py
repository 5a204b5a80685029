"""The documentation's examples, exactly as printed, in page order, against the local stack
(``python -m devstack``, what ``make dev`` runs): README.md, then every page its table of contents
links, in that order (``tests.docs.example_pages``), as one session: every ``curl`` of every ``sh``
block is run with bash, and its answer is compared with the one the page shows after it
(``# <status> <JSON>``). tests/unit/test_docs.py checks that no page holding examples is left out.

How a page's answers are read: the status must be the one shown; where the shown answer is JSON,
each key it shows must be there with the value shown, except a value written with ``…``, ``...``
or ``<...>`` (abridged: any value of that type) and times (any time); where it is not JSON (it
abridges a list with ``...``), each key it names must be in the answer. ``NAME=...   # the <field>
above`` takes ``<field>`` of the answer before it, as a reader would. A status route's answer is
asked again for a few seconds while the fan-out finishes (the notification is delivered through
Pub/Sub's push to ``deliver``, as in production).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devstack.emulator import FirestoreEmulator
from tests.conftest import REPO
from tests.docs import example_pages, name
from tests.stack import RunningStack, running_stack

ABRIDGED = re.compile(r"…|\.\.\.|<[^>]*>")
A_TIME = re.compile(r"\d{4}-\d\d-\d\d(T\d\d:\d\d(:\d\d)?Z?)?")
TAKE = re.compile(r"^([A-Z]+)=\.\.\.\s+# the (\w+) above")


@dataclass
class Example:
    """One command of a page, with the answer the page shows for it (if any)."""

    line: str
    command: str
    shown: str | None = None


def examples(text: str, page: str = "README.md") -> list[Example]:
    """Every command of every ``sh`` block holding a ``curl``, in page order."""
    found: list[Example] = []
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        if lines[number].strip() != "```sh":
            number += 1
            continue
        end = lines.index("```", number + 1)
        block = lines[number + 1 : end]
        if any("curl" in line for line in block):
            found += _commands(block, number + 2, page)
        number = end + 1
    return found


def _commands(block: list[str], first_line: int, page: str) -> list[Example]:
    commands: list[Example] = []
    pending: list[str] = []
    answer: list[str] | None = None
    for offset, line in enumerate(block):
        if pending:
            pending.append(line)
        elif line.startswith("#"):
            shown = re.match(r"#\s*(\d{3}\b.*)$", line)
            if shown and commands and commands[-1].shown is None:
                answer = [shown.group(1)]
                commands[-1].shown = answer[0]
            elif answer is not None and re.match(r"#\s{2,}\S", line):
                answer.append(line[1:].strip())
                commands[-1].shown = " ".join(answer)
            else:
                answer = None
            continue
        elif line.strip():
            pending = [line]
            answer = None
        else:
            continue
        text = "\n".join(pending)
        if text.count("'") % 2 == 0 and not text.endswith("\\"):
            commands.append(Example(f"{page} line {first_line + offset - len(pending) + 1}", text))
            pending = []
    return commands


@dataclass
class Reader:
    """Runs the pages' commands as a reader would, with ``$BASE`` and the FCM server moved to the
    test's stack."""

    stack: RunningStack
    variables: dict[str, str]
    last: Any = None

    def run(self, example: Example) -> tuple[int | None, Any]:
        taken = TAKE.match(example.command)
        if taken:
            assert isinstance(self.last, dict), f"{example.line}: nothing to take"
            self.variables[taken.group(1)] = str(self.last[taken.group(2)])
            return None, None
        if example.command.startswith("BASE="):
            return None, None
        command = re.sub(r"\s{2,}#.*$", "", example.command, flags=re.MULTILINE)
        command = command.replace("http://127.0.0.1:8090", self.stack.fcm)
        piped = " | " in command
        if not piped:
            command += " -w '\\n%{http_code}'"
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=REPO,
            env={"PATH": "/usr/bin:/bin", "BASE": self.stack.base, **self.variables},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{example.line}: {done.stderr}"
        if piped:
            return None, done.stdout
        body, _, status = done.stdout.rpartition("\n")
        self.last = json.loads(body) if body.strip() else None
        return int(status), self.last


def same(shown: Any, actual: Any, where: str) -> list[str]:
    """Where ``actual`` differs from what the page shows."""
    if isinstance(shown, dict):
        if not isinstance(actual, dict):
            return [f"{where}: not an object"]
        return [
            problem
            for key, value in shown.items()
            for problem in (
                same(value, actual[key], f"{where}.{key}")
                if key in actual
                else [f"{where}.{key}: missing"]
            )
        ]
    if isinstance(shown, list):
        if not isinstance(actual, list) or len(actual) != len(shown):
            return [f"{where}: {actual!r} is not a list of {len(shown)}"]
        return [
            p
            for n, (s, a) in enumerate(zip(shown, actual, strict=True))
            for p in same(s, a, f"{where}[{n}]")
        ]
    if isinstance(shown, str) and (ABRIDGED.search(shown) or A_TIME.fullmatch(shown)):
        return [] if isinstance(actual, str) else [f"{where}: {actual!r} is not a string"]
    if shown == actual:
        return []
    return [f"{where}: the page shows {shown!r}, the answer is {actual!r}"]


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def differences(shown: str, status: int, answer: Any) -> list[str]:
    expected_status, _, text = shown.partition(" ")
    problems = (
        []
        if int(expected_status) == status
        else [f"status {status}, the page shows {expected_status}"]
    )
    if not text.strip():
        return problems
    try:
        expected = json.loads(text)
    except ValueError:
        missing = set(re.findall(r'"(\w+)":', text)) - _keys(answer)
        return problems + [f"keys the page shows are missing: {sorted(missing)}"] * bool(missing)
    return problems + same(expected, answer, "answer")


@pytest.fixture
def stack(emulator: FirestoreEmulator, tmp_path: Path) -> Iterator[RunningStack]:
    # make dev's settings (its admin key, its retry timings); its own emulators on free ports
    with running_stack(
        tmp_path, PUSH365_MAIL_BACKEND="outbox", PUSH365_OUTBOX_DIR=str(tmp_path)
    ) as running:
        yield running


def test_the_docs_examples_run_in_page_order_and_answer_what_each_page_shows(
    stack: RunningStack,
) -> None:
    found = [
        example
        for path in example_pages()
        for example in examples(path.read_text("utf-8"), name(path))
    ]
    reader = Reader(stack, {})
    ran = 0
    failures: list[str] = []
    for example in found:
        deadline = time.monotonic() + 20
        while True:
            status, answer = reader.run(example)
            if status is None:
                break
            problems = (
                differences(example.shown, status, answer)
                if example.shown
                else ([] if 200 <= status < 300 else [f"status {status}"])
            )
            is_get = " -X " not in example.command
            if not problems or not is_get or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # a status route: the fan-out is still under way
        if status is not None:
            ran += 1
            failures += [f"{example.line}: {p}" for p in problems]
    print(f"docs examples: {ran} requests run")
    assert ran >= 20
    assert failures == [], "\n".join(failures)
