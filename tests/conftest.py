"""Shared fixtures: the example Dataverse bodies, and the real Firestore and Pub/Sub emulators.

Emulator-backed tests (``tests/integration``, ``tests/system``) are marked ``emulator``. When an
emulator cannot run here they are skipped, never passed, and the run ends with a banner that says
so. ``PUSH365_REQUIRE_EMULATOR=1`` (set by ``.ci/run``) turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack import fanout
from devstack.emulator import EmulatorMissing, FirestoreEmulator, PubSubEmulator
from devstack.fcm_server import LocalFcmServer
from push365.settings import get_settings

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "tests" / "data" / "dataverse-examples"
PROJECT = "demo-push365-test"


def free_port() -> int:
    """A port nothing listens on right now, below Linux's ephemeral range (32768 and up): a
    client dialling a port nobody listens on (a fault test's refused window) can otherwise be
    given that very port as its own and connect to itself, holding it."""
    import random

    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def example(name: str) -> dict[str, Any]:
    """One of ``tests/data/dataverse-examples/*.json``, decoded."""
    return json.loads((EXAMPLES / name).read_text())  # type: ignore[no-any-return]


# Files that mostly wait (faults lasting minutes, an isolated interpreter per function) go first:
# with `make test`'s two workers (pytest-xdist, a file per worker at a time) the other worker
# runs the rest meanwhile.
SLOW_FIRST = ("test_fanout_faults.py", "test_deploy_rehearsal.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if {"integration", "system"} & set(Path(str(item.fspath)).parts):
            item.add_marker(pytest.mark.emulator)
    items.sort(key=lambda item: Path(str(item.fspath)).name not in SLOW_FIRST)


def _start(instance: FirestoreEmulator | PubSubEmulator) -> None:
    try:
        instance.start()
    except EmulatorMissing as error:
        if os.environ.get("PUSH365_REQUIRE_EMULATOR") == "1":
            pytest.fail(f"EMULATOR MISSING: {error}")
        pytest.skip(f"NOT RUN - EMULATOR MISSING: {error}")


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirestoreEmulator]:
    """The real Firestore emulator on a free port, for the whole session."""
    log = tmp_path_factory.mktemp("emulator") / "firestore.log"
    instance = FirestoreEmulator(free_port(), log_path=log)
    _start(instance)
    os.environ["FIRESTORE_EMULATOR_HOST"] = instance.address
    os.environ["GOOGLE_CLOUD_PROJECT"] = PROJECT
    yield instance
    instance.stop()


FANOUT_TOPIC = "push365-fanout"
TEST_RETRY_HORIZON_SECONDS = 3.0


@pytest.fixture(scope="session")
def pubsub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PubSubEmulator]:
    """The real Pub/Sub emulator on a free port, for the whole session; the fan-out's topics are
    made per test (see ``tests/integration/conftest.py``)."""
    log = tmp_path_factory.mktemp("pubsub") / "pubsub.log"
    instance = PubSubEmulator(free_port(), log_path=log)
    _start(instance)
    os.environ["PUBSUB_EMULATOR_HOST"] = instance.address
    os.environ["PUSH365_FANOUT_TOPIC"] = FANOUT_TOPIC
    # Transient FCM failures come back in a fraction of a second, not minutes.
    os.environ["PUSH365_RETRY_FIRST_BACKOFF_SECONDS"] = "0.2"
    os.environ["PUSH365_RETRY_MAX_BACKOFF_SECONDS"] = "1"
    # ... and are given up (recorded as failed) after a few seconds, not an hour.
    os.environ["PUSH365_RETRY_HORIZON_SECONDS"] = str(TEST_RETRY_HORIZON_SECONDS)
    get_settings.cache_clear()  # as in fcm_server: what was read before these were set goes
    yield instance
    instance.stop()


def fanout_topology(push_endpoint: str | None = None) -> fanout.FanoutTopology:
    """The test project's fan-out topics; pull subscriptions unless an endpoint is given."""
    return fanout.FanoutTopology(
        PROJECT,
        FANOUT_TOPIC,
        push_endpoint,
        max_delivery_attempts=5,
        minimum_backoff="0s",
        maximum_backoff="1s",
        ack_deadline_seconds=10,
    )


# A short timeout keeps tests of a slow FCM fast; the production default is 10 s (settings.py).
TEST_FCM_HTTP_TIMEOUT_SECONDS = 1.0
TEST_ADMIN_KEY = "test-admin-key"


@pytest.fixture(scope="session")
def fcm_server() -> Iterator[LocalFcmServer]:
    """The local FCM v1 server on a free port; the functions send to it through firebase-admin."""
    server = LocalFcmServer(free_port())
    server.start()
    os.environ["PUSH365_FCM_ENDPOINT"] = server.url
    os.environ["PUSH365_FCM_HTTP_TIMEOUT_SECONDS"] = str(TEST_FCM_HTTP_TIMEOUT_SECONDS)
    os.environ["PUSH365_ADMIN_KEY"] = TEST_ADMIN_KEY
    # Settings read before this (a unit test that reached get_settings in this process) would
    # otherwise stay cached without these: every in-process function must see them.
    get_settings.cache_clear()
    yield server
    server.stop()


SES_SENDER = "noreply@push365.test"


@pytest.fixture(scope="session")
def ses_server() -> Iterator[str]:
    """A local SES (moto in server mode) on loopback; the functions mail through it with boto3."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    os.environ.update(
        PUSH365_MAIL_BACKEND="ses",
        PUSH365_SES_SENDER=SES_SENDER,
        PUSH365_SES_ENDPOINT_URL=url,
        PUSH365_SES_REGION="eu-west-1",
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",
    )
    yield url
    server.stop()


@pytest.fixture
def fcm(fcm_server: LocalFcmServer) -> Iterator[LocalFcmServer]:
    """The local FCM server with no messages recorded."""
    fcm_server.clear()
    yield fcm_server
    fcm_server.clear()


@pytest.fixture
def store(emulator: FirestoreEmulator) -> Iterator[Any]:
    """A Firestore client on an empty emulator database (wiped after the test too)."""
    from push365.store import firestore_client

    emulator.reset(PROJECT)
    yield firestore_client()
    emulator.reset(PROJECT)


RESULT_PROPERTY = "result"
"""A test's ``RESULT ...`` line (``record_property(RESULT_PROPERTY, line)``), for the summary."""


PLANT_TEST = "test_audit.py::test_each_planted_violation_is_reported_without_its_value["
"""The store check's plants (tests/privacy/test_audit.py): each passing one was found."""


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any) -> None:
    """RESULT lines and NOT RUN banners, from the tests' reports: this file is the conftest the
    controlling process loads under pytest-xdist (the workers run the tests, and those below
    tests/ load their own conftest files only in the workers)."""
    reports = [r for kind in terminalreporter.stats.values() for r in kind if hasattr(r, "when")]
    for report in reports:
        for name, line in getattr(report, "user_properties", ()):
            if name == RESULT_PROPERTY and report.when == "call":
                terminalreporter.write_line(line)
    plants = [r for r in reports if PLANT_TEST in r.nodeid and r.when == "call"]
    if plants:
        found = sum(r.passed for r in plants)
        terminalreporter.write_line(f"RESULT audit_plants found={found} total={len(plants)}")
    _banner(terminalreporter, "CHROMIUM MISSING", "browser tests")
    _banner(terminalreporter, "EMULATOR MISSING", "emulator-backed tests")


def _banner(terminalreporter: Any, what: str, tests: str) -> None:
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if what in str(report.longrepr)
    ]
    if not skipped:
        return
    reason = str(skipped[0].longrepr).split(what + ": ", 1)[-1].rstrip("')")
    bar = "!" * 78
    terminalreporter.write_line(bar, red=True, bold=True)
    terminalreporter.write_line(
        f"{what}: {len(skipped)} {tests} did NOT run.",
        red=True,
        bold=True,
    )
    terminalreporter.write_line(reason, red=True)
    terminalreporter.write_line(bar, red=True, bold=True)
