"""The store client leaves no gRPC call behind, however a read ends: read whole, left after its
first answer (the client library's ``DocumentReference.get``), cancelled mid-stream
(``stream_rows`` closed early), or failed.

On a channel with ``SingleThreadedUnaryStream`` gRPC frees a call only once its reader has taken
every event of it (``push365.store.finishing_streams``); before the fix each ``get`` held 18 KB
for the life of the process and a status poll grew ``send`` by 54 KB (``bench/soak.py``). The
calls still held are counted directly (gRPC's per-call state objects), and the process's
resident size is checked too; each check is first shown to catch the leak on a client without
the fix, so a gRPC that renamed what is counted fails here instead of passing blind.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.emulator import FirestoreEmulator
from push365 import store as store_module
from push365.store import bound_every_call, bounded, get_rows, stream_rows
from tests.conftest import PROJECT

READS = 600
"""Reads per resident-size check: a leak of 18 KB a read is 10 MB, far above the noise."""

ROUNDS = 50
"""Rounds of ``every_kind_of_read`` (six reads each) per count of held calls (exact: no noise)."""

RSS_BOUND_KB_PER_READ = 3.0
"""Resident growth allowed per read once warm (measured 0.1 KB with the fix, 18 KB without)."""


def held_calls() -> int:
    """gRPC calls the process still holds (cygrpc's per-call state; one per unfinished call)."""
    gc.collect()
    return sum(1 for thing in gc.get_objects() if type(thing).__name__ == "_CallState")


def rss_kb() -> int:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


@pytest.fixture
def emulator_reset(emulator: FirestoreEmulator) -> Iterator[None]:
    """An empty store; unlike the ``store`` fixture, the settings are not read (and cached)
    here: the clients below are made from the project alone."""
    emulator.reset(PROJECT)
    yield
    emulator.reset(PROJECT)


@contextlib.contextmanager
def client(fixed: bool) -> Iterator[Any]:
    """A store client as ``firestore_client`` makes it (its own channel), with or without the
    fix."""
    if fixed:
        made = store_module.store_client(PROJECT)
    else:
        original = store_module.finishing_streams
        store_module.finishing_streams = lambda channel: channel
        try:
            made = store_module.store_client(PROJECT)
            _ = made._firestore_api  # the channel is made now, without the fix
        finally:
            store_module.finishing_streams = original
    bound_every_call(made, 10.0)
    try:
        yield made
    finally:
        made._firestore_api._transport.close()


def every_kind_of_read(made: Any) -> Callable[[], None]:
    """One of each read the functions make, the ones that leave their stream early included."""
    collection = made.collection("organizations", "memory", "subscriptions")
    for n in range(3):
        collection.document(f"s{n}").set({"user_id": "u", "status": "active"})
    reference = collection.document("s0")
    missing = collection.document("nobody")

    def reads() -> None:
        assert reference.get(**bounded(10)).exists  # one answer read, the status left
        assert not missing.get(**bounded(10)).exists
        with contextlib.closing(stream_rows(collection.order_by("__name__"), 10)) as rows:
            assert next(rows)[0] == "s0"  # closed after the first of three: cancelled
        assert len(list(stream_rows(collection.order_by("__name__"), 10))) == 3  # read whole
        assert len(get_rows(made, [reference, missing], ["status"], 10)) == 1
        assert len(collection.limit(2).get(**bounded(10))) == 2

    return reads


@pytest.mark.parametrize("fixed", [False, True], ids=["without the fix", "with the fix"])
@pytest.mark.usefixtures("emulator_reset")
def test_no_read_leaves_a_grpc_call_behind(fixed: bool) -> None:
    with client(fixed) as made:
        reads = every_kind_of_read(made)
        reads()
        before = held_calls()
        for _ in range(ROUNDS):
            reads()
        held = held_calls() - before

    if fixed:
        assert held <= 2, f"{held} gRPC calls still held after {ROUNDS * 6} reads"
    else:  # the control: this count sees the leak (three calls left in each round)
        assert held >= ROUNDS * 3, held


@pytest.mark.parametrize("fixed", [False, True], ids=["without the fix", "with the fix"])
@pytest.mark.usefixtures("emulator_reset")
def test_the_process_does_not_grow_with_reads(fixed: bool) -> None:
    with client(fixed) as made:
        reference = made.collection("organizations", "memory", "subscriptions").document("s")
        reference.set({"user_id": "u", "status": "active"})
        for _ in range(200):  # warm: the channel, the allocator's arenas
            reference.get(**bounded(10))
        gc.collect()
        before = rss_kb()
        for _ in range(READS):
            reference.get(**bounded(10))
        gc.collect()
        growth = (rss_kb() - before) / READS

    if fixed:
        assert growth <= RSS_BOUND_KB_PER_READ, f"{growth:.2f} KB a read"
    else:
        # The control: the same reads leak past the bound without the fix (18 KB a read alone,
        # 5-18 KB measured here under load), so the bound above would catch the leak.
        assert growth > RSS_BOUND_KB_PER_READ, f"{growth:.2f} KB a read"
