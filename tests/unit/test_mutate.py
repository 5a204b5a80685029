"""The privacy mutation suite's list and runner (devstack/mutate.py), without running it."""

from __future__ import annotations

import ast
from pathlib import Path

from devstack.mutate import Edit, Mutation, Worker, load
from tests.conftest import REPO

PROMISES = [f"P{n}" for n in range(1, 12)]


def test_the_list_has_at_least_60_mutations_covering_every_promise() -> None:
    mutations = load()

    assert len(mutations) >= 60
    assert {m.promise for m in mutations} >= set(PROMISES)


def test_every_old_text_is_in_its_file_exactly_once() -> None:
    problems = []
    for mutation in load():
        texts: dict[str, str] = {}
        for edit in mutation.edits:
            text = texts.setdefault(edit.file, (REPO / edit.file).read_text())
            if text.count(edit.old) != 1:
                problems.append(mutation.id)
            texts[edit.file] = text.replace(edit.old, edit.new, 1)
    assert problems == []


def test_every_named_test_exists() -> None:
    missing = []
    for mutation in load():
        for node in mutation.tests:
            path, _, name = node.partition("::")
            tree = ast.parse((REPO / path).read_text())
            functions = {f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
            if name.split("[", 1)[0] not in functions:
                missing.append(node)
    assert missing == []


def test_a_mutation_whose_old_text_is_missing_is_an_error_not_caught(tmp_path: Path) -> None:
    (tmp_path / "code.py").write_text("x = 1\n")
    mutation = Mutation("gone", "P1", "", (Edit("code.py", "x = 2", "x = 3"),), ("t.py::t",))

    outcome = Worker(tmp_path, 0, None).run(mutation)

    assert outcome.verdict == "ERROR"
    assert (tmp_path / "code.py").read_text() == "x = 1\n"


def test_a_mutation_is_undone_after_its_run(tmp_path: Path) -> None:
    (tmp_path / "code.py").write_text("x = 1\n")
    mutation = Mutation("m", "P1", "", (Edit("code.py", "x = 1", "x = 2"),), ("t.py::t",))

    with Worker(tmp_path, 0, None).applied(mutation) as problem:
        during = (tmp_path / "code.py").read_text()

    assert (problem, during) == (None, "x = 2\n")
    assert (tmp_path / "code.py").read_text() == "x = 1\n"
