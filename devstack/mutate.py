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
import json
import os
import shutil
import signal
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
PYTEST_OPTIONS = ("-x", "-q", "-p", "no:cacheprovider", "--no-header")


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
    untested = [m.id for m in mutations if not m.tests]
    if untested:
        raise SystemExit(f"mutations that name no test: {untested}")
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
        self._runner: subprocess.Popen[str] | None = None

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

    def quick(self, tests: Sequence[str]) -> int:
        """pytest's exit code for ``tests``, forked from this copy's runner (libraries already
        imported: a run costs its tests, not Python's start-up); a plain subprocess without
        ``os.fork``."""
        if not tests:
            raise ValueError("no tests named: pytest would run the whole suite")
        arguments = [*PYTEST_OPTIONS, *tests]
        if not hasattr(os, "fork"):
            return self.pytest(tests).returncode
        if self._runner is None:
            self._runner = subprocess.Popen(
                [sys.executable, "-m", "devstack.mutate_zygote"],
                cwd=self.root,
                env=self.env | {"PUSH365_MUTATE_TIMEOUT": str(TEST_TIMEOUT_SECONDS)},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        assert self._runner.stdin is not None
        assert self._runner.stdout is not None
        self._runner.stdin.write(json.dumps(arguments) + "\n")
        self._runner.stdin.flush()
        answer = self._runner.stdout.readline()
        if not answer:
            raise RuntimeError("the test runner stopped")
        return int(answer)

    def close(self) -> None:
        if self._runner is not None:
            self._runner.communicate(timeout=30)
            self._runner = None

    def pytest(self, tests: Sequence[str]) -> subprocess.CompletedProcess[str]:
        if not tests:
            raise ValueError("no tests named: pytest would run the whole suite")
        return subprocess.run(
            [sys.executable, "-m", "pytest", *PYTEST_OPTIONS, *tests],
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
            code = self.quick(mutation.tests)
        seconds = time.monotonic() - started
        if code == 0:
            return Outcome(mutation, "SURVIVED", seconds)
        if code in CAUGHT_CODES:
            return Outcome(mutation, "caught", seconds)
        why = "timed out" if code == -signal.SIGALRM else f"pytest exit {code}"
        return Outcome(mutation, "ERROR", seconds, why)


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
    parser.add_argument("--list", type=Path, default=MUTATIONS, help="another list of mutations")
    arguments = parser.parse_args(argv)
    started = time.monotonic()
    mutations = load(arguments.list)
    if arguments.only:
        mutations = [m for m in mutations if arguments.only in (m.promise, m.id)]
    with tempfile.TemporaryDirectory(prefix="push365-mutate-") as scratch:
        base = Path(scratch)
        with shared_firestore(base / "firestore.log") as firestore:
            workers = []
            for index in range(max(1, arguments.workers)):
                root = base / f"copy{index}"
                copy_tree(root)
                workers.append(Worker(root, index, firestore))
            workers[0].check_imports_the_copy()
            named = sorted({t for m in mutations for t in m.tests})
            baseline = unmutated(workers, named)
            if baseline is not None:
                print(baseline.stdout[-3000:])
                print("The named tests do not all pass on the unmutated code: nothing to prove.")
                print(f"RESULT privacy_mutations caught=0 total={len(mutations)}")
                return 1
            print(
                f"{len(named)} named tests pass unmutated "
                f"({time.monotonic() - started:.0f} s); {len(mutations)} mutations, "
                f"{len(workers)} workers"
            )
            try:
                outcomes = run_all(workers, mutations)
            finally:
                for worker in workers:
                    worker.close()
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


def unmutated(
    workers: Sequence[Worker], named: Sequence[str]
) -> subprocess.CompletedProcess[str] | None:
    """Run the named tests on the unmutated copies, shared out among the workers, the way the
    mutations' tests run (so a runner that cannot fork cleanly counts nothing as caught); the
    output of a failing share run again plainly, or None when they all pass."""
    shares = [list(named[index :: len(workers)]) for index in range(len(workers))]
    busy = [(worker, share) for worker, share in zip(workers, shares, strict=True) if share]
    with ThreadPoolExecutor(max_workers=len(workers)) as pool:
        codes = list(pool.map(lambda pair: pair[0].quick(pair[1]), busy))
    for (worker, share), code in zip(busy, codes, strict=True):
        if code != 0:
            again = worker.pytest(share)
            again.stdout += f"\n(exit {code} in the forked runner, {again.returncode} plainly)"
            return again
    return None


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
