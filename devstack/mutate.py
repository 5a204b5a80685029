"""The privacy mutation suite: each promise broken on purpose must fail the tests named for it.

    .venv/bin/python -m devstack.mutate              # make mutate; .ci/run runs it after make test
    .venv/bin/python -m devstack.mutate --only P8    # the mutations of one promise (or one id)

``tests/privacy/mutations.yaml`` is the curated list: each mutation is one or more small edits
(a file, its exact old text, the new text), the promise it breaks and the test node ids expected
to catch it. The working tree is copied twice into a temporary folder (one copy per worker; the
copies' ``shared/`` comes first on ``PYTHONPATH``, ahead of the editable install); each worker
applies a mutation to its copy, runs only the named tests there, and restores the file. One
Firestore emulator serves every run (a project per worker). A mutation is

- caught: its tests fail (or cannot even be collected);
- SURVIVED: its tests pass;
- ERROR: its old text is not in the file exactly once, or its tests do not exist.

The named tests must all pass on the unmutated copy first. It prints one line per mutation and
``RESULT privacy_mutations caught=N total=M``, and exits 1 unless every mutation was caught.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MUTATIONS = REPO / "tests" / "privacy" / "mutations.yaml"
WORKERS = 2
TEST_TIMEOUT_SECONDS = 180
# pytest's exit codes: 1 tests failed, 2 interrupted (a collection error), 4 usage error (no such
# node id), 5 no tests collected.
CAUGHT_CODES = (1, 2)


@dataclass(frozen=True)
class Edit:
    file: str
    old: str
    new: str


@dataclass(frozen=True)
class Mutation:
    id: str
    promise: str
    what: str
    edits: tuple[Edit, ...]
    tests: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    mutation: Mutation
    verdict: str  # caught | SURVIVED | ERROR
    seconds: float
    detail: str = ""


def load(path: Path = MUTATIONS) -> list[Mutation]:
    """The curated list."""
    import yaml  # type: ignore[import-untyped]

    entries: list[dict[str, Any]] = yaml.safe_load(path.read_text())
    mutations = []
    for entry in entries:
        edits = entry.get("edits") or [
            {"file": entry["file"], "old": entry["old"], "new": entry["new"]}
        ]
        mutations.append(
            Mutation(
                id=str(entry["id"]),
                promise=str(entry["promise"]),
                what=str(entry.get("what", "")),
                edits=tuple(Edit(e["file"], e["old"], e["new"]) for e in edits),
                tests=tuple(entry["tests"]),
            )
        )
    ids = [m.id for m in mutations]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise SystemExit(f"duplicate mutation ids: {sorted(duplicates)}")
    return mutations


def copy_tree(destination: Path) -> None:
    """The working tree (tracked and untracked files, not ignored ones) into ``destination``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = REPO / name.decode()
        if not source.is_file():
            continue  # deleted in the working tree
        target = destination / name.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


class Worker:
    """One copy of the repository and one Firestore project."""

    def __init__(self, root: Path, index: int, firestore: str | None) -> None:
        self.root = root
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(root / "shared"), str(root), self.env.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.env.pop("FIRESTORE_EMULATOR_HOST", None)
        if firestore is not None:
            self.env["PUSH365_SHARED_FIRESTORE"] = firestore
            self.env["PUSH365_SHARED_PROJECT"] = f"demo-mutate-{index}"

    def check_imports_the_copy(self) -> None:
        found = subprocess.run(
            [sys.executable, "-c", "import push365; print(push365.__file__)"],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not found.startswith(str(self.root)):
            raise SystemExit(f"the copy's push365 is not the one imported: {found}")

    def pytest(self, tests: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-x",
                "-q",
                "-p",
                "no:cacheprovider",
                "--no-header",
                *tests,
            ],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TEST_TIMEOUT_SECONDS,
            check=False,
        )

    @contextmanager
    def applied(self, mutation: Mutation) -> Iterator[str | None]:
        """The mutation applied to the copy (None), or why it cannot be (its files restored)."""
        originals: dict[Path, str] = {}
        problem = None
        for edit in mutation.edits:
            path = self.root / edit.file
            if not path.is_file():
                problem = f"no file {edit.file}"
                break
            text = originals.setdefault(path, path.read_text())
            current = path.read_text()
            count = current.count(edit.old)
            if count != 1:
                problem = f"old text found {count} times in {edit.file}"
                break
            path.write_text(current.replace(edit.old, edit.new, 1))
        try:
            yield problem
        finally:
            for path, text in originals.items():
                path.write_text(text)

    def run(self, mutation: Mutation) -> Outcome:
        started = time.monotonic()
        with self.applied(mutation) as problem:
            if problem is not None:
                return Outcome(mutation, "ERROR", time.monotonic() - started, problem)
            try:
                answer = self.pytest(mutation.tests)
            except subprocess.TimeoutExpired:
                return Outcome(mutation, "ERROR", time.monotonic() - started, "timed out")
        seconds = time.monotonic() - started
        if answer.returncode == 0:
            return Outcome(mutation, "SURVIVED", seconds)
        if answer.returncode in CAUGHT_CODES:
            return Outcome(mutation, "caught", seconds)
        last = (answer.stdout.strip().splitlines() or [""])[-1]
        return Outcome(mutation, "ERROR", seconds, f"pytest exit {answer.returncode}: {last}")


@contextmanager
def shared_firestore(log: Path) -> Iterator[str | None]:
    """One Firestore emulator for every run; None when it cannot start (each run starts its own)."""
    from devstack.emulator import EmulatorMissing, FirestoreEmulator
    from tests.conftest import free_port

    emulator = FirestoreEmulator(free_port(), log_path=log)
    try:
        emulator.start()
    except (EmulatorMissing, RuntimeError) as error:
        print(f"(no shared Firestore emulator: {error}; each run starts its own)")
        yield None
        return
    try:
        yield emulator.address
    finally:
        emulator.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Break each privacy promise; expect failures.")
    parser.add_argument("--only", default=None, help="a promise (P1..P11) or a mutation id")
    parser.add_argument("--workers", type=int, default=WORKERS)
    arguments = parser.parse_args(argv)
    started = time.monotonic()
    mutations = load()
    if arguments.only:
        mutations = [m for m in mutations if arguments.only in (m.promise, m.id)]
    with tempfile.TemporaryDirectory(prefix="push365-mutate-") as scratch:
        base = Path(scratch)
        # Beside the repository: ../shared (the policy and the reference examples tests read).
        if (REPO.parent / "shared").is_dir():
            (base / "shared").symlink_to(REPO.parent / "shared")
        with shared_firestore(base / "firestore.log") as firestore:
            workers = []
            for index in range(max(1, arguments.workers)):
                root = base / f"copy{index}"
                copy_tree(root)
                workers.append(Worker(root, index, firestore))
            workers[0].check_imports_the_copy()
            named = sorted({t for m in mutations for t in m.tests})
            baseline = workers[0].pytest(named)
            if baseline.returncode != 0:
                print(baseline.stdout[-3000:])
                print("The named tests do not all pass on the unmutated code: nothing to prove.")
                print(f"RESULT privacy_mutations caught=0 total={len(mutations)}")
                return 1
            print(
                f"{len(named)} named tests pass unmutated "
                f"({time.monotonic() - started:.0f} s); {len(mutations)} mutations, "
                f"{len(workers)} workers"
            )
            outcomes = run_all(workers, mutations)
    caught = sum(o.verdict == "caught" for o in outcomes)
    for outcome in outcomes:
        if outcome.verdict != "caught":
            print(
                f"  {outcome.verdict}: {outcome.mutation.id} ({outcome.mutation.promise}) "
                f"{outcome.detail}".rstrip()
            )
    print(f"mutate took {time.monotonic() - started:.0f} s")
    print(f"RESULT privacy_mutations caught={caught} total={len(mutations)}")
    return 0 if caught == len(mutations) else 1


def run_all(workers: Sequence[Worker], mutations: Sequence[Mutation]) -> list[Outcome]:
    """Every mutation, each on the first free worker; outcomes in the list's order."""
    free = list(workers)
    lock = threading.Lock()
    available = threading.Semaphore(len(workers))

    def one(mutation: Mutation) -> Outcome:
        available.acquire()
        with lock:
            worker = free.pop()
        try:
            outcome = worker.run(mutation)
        finally:
            with lock:
                free.append(worker)
            available.release()
        print(
            f"{outcome.verdict:<8} {outcome.mutation.promise:<4} {outcome.mutation.id} "
            f"({outcome.seconds:.1f} s)",
            flush=True,
        )
        return outcome

    with ThreadPoolExecutor(max_workers=len(workers)) as pool:
        return list(pool.map(one, mutations))


if __name__ == "__main__":
    sys.exit(main())
