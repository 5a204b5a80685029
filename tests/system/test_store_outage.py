"""Every function, with Firestore stopped (connections refused) or black-holed (connections
accepted, nothing ever answered): a JSON ``503 store_unavailable`` within 10 s, never a hang.

The functions run as they are served locally (one gateway process) against the real Firestore
emulator behind a TCP proxy the test cuts off. The store timeout is 2 s here (the production
default is 10 s, the same code path) so that both outages take seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devstack.emulator import FirestoreEmulator
from push365.notifications.receipts import new_receipt
from tests.conftest import PROJECT, TEST_ADMIN_KEY, free_port
from tests.faults import TcpProxy
from tests.integration.conftest import BOB, ORG, registration
from tests.stack import RunningStack, call, running_gateway, signup

BUDGET_SECONDS = 10.0
STORE_TIMEOUT_SECONDS = 2
NEW_ORG = "7c7c7c7c-1111-4222-8333-444444444444"
RECEIPT, _ = new_receipt(ORG, "a" * 32, 0, "b" * 32)  # well formed: it reaches the store


@pytest.fixture(scope="module")
def outage(
    emulator: FirestoreEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningStack, TcpProxy, str]]:
    emulator.reset(PROJECT)
    proxy = TcpProxy(emulator.address)
    folder: Path = tmp_path_factory.mktemp("outage")
    env = {
        "FIRESTORE_EMULATOR_HOST": proxy.address,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{free_port()}",
        "PUSH365_STORE_TIMEOUT_SECONDS": str(STORE_TIMEOUT_SECONDS),
        "PUSH365_QUEUE_TIMEOUT_SECONDS": str(STORE_TIMEOUT_SECONDS),
        "PUSH365_ADMIN_KEY": TEST_ADMIN_KEY,
        "PUSH365_MAIL_BACKEND": "none",
    }
    try:
        with running_gateway(folder, **env) as gateway:
            code = signup(gateway.base, ORG, TEST_ADMIN_KEY)
            status, answer = call(f"{gateway.base}/register", registration(), headers=code)
            assert status == 201, answer
            yield gateway, proxy, answer["api_key"]
    finally:
        proxy.stop()
        emulator.reset(PROJECT)


def requests(key: str) -> dict[str, tuple[str, str, Any, dict[str, str]]]:
    """One request per route that reads or writes the store: name -> (method, path, body,
    headers)."""
    auth = {"X-Push365-Key": key}
    user = {"user_id": BOB, "instance_id": "fcm-token-outage-0001"}
    rule = {"table": "opportunity", "message": "Update", "recipients": ["ownerid"], "title": "t"}
    preview = {"table": "opportunity", "message": "Update", "target": {"name": "x"}}
    return {
        "register create": ("POST", "/register", registration(NEW_ORG), {}),
        "register signup code": (
            "POST",
            "/register/signup-codes",
            {"organization_id": NEW_ORG},
            {"X-Push365-Admin-Key": TEST_ADMIN_KEY},
        ),
        "register revoke previous key": ("POST", "/register/revoke-previous-key", None, auth),
        "register update": ("POST", "/register", registration(), auth),
        "register users": ("POST", "/register/users", {"users": [{"id": BOB}]}, auth),
        "register rotate-key": ("POST", "/register/rotate-key", None, auth),
        "register rules set": ("POST", "/register/rules", {"rules": [rule]}, auth),
        "register rules get": ("GET", "/register/rules", None, auth),
        "register rules preview": ("POST", "/register/rules/preview", preview, auth),
        "subscribe": ("POST", "/subscribe", user, auth),
        "unsubscribe": ("POST", "/unsubscribe", {"user_id": BOB}, auth),
        "send": ("POST", "/send", {"recipients": [BOB], "title": "t"}, auth),
        "send status": ("GET", f"/send/status?notification_id={'f' * 32}", None, auth),
        "send stats": ("GET", "/send/stats?days=7", None, auth),
        "receipt": ("POST", "/receipt", {"receipt": RECEIPT}, {}),
        "purge": ("POST", "/purge", {}, {"X-Push365-Admin-Key": TEST_ADMIN_KEY}),
        "privacy export": ("GET", "/privacy/export", None, auth),
        "privacy erase": ("POST", "/privacy/erase", {"user_id": BOB}, auth),
    }


@pytest.mark.parametrize("fault", ["stopped", "black-holed"])
def test_every_function_answers_503_json_within_10_s_when_the_store_is_out(
    outage: tuple[RunningStack, TcpProxy, str], fault: str
) -> None:
    gateway, proxy, key = outage
    proxy.cut() if fault == "stopped" else proxy.black_hole()

    def timed(request: tuple[str, str, Any, dict[str, str]]) -> tuple[float, int, Any]:
        method, path, body, headers = request
        started = time.monotonic()
        status, answer = call(f"{gateway.base}{path}", body, method=method, headers=headers)
        return time.monotonic() - started, status, answer

    try:
        cases = requests(key)
        with ThreadPoolExecutor(len(cases)) as pool:
            answers = dict(zip(cases, pool.map(timed, cases.values()), strict=True))
    finally:
        proxy.restore()

    wrong = {
        name: (round(seconds, 1), status, answer)
        for name, (seconds, status, answer) in answers.items()
        if seconds > BUDGET_SECONDS
        or status != 503
        or not isinstance(answer, dict)
        or answer["error"]["code"] != "store_unavailable"
    }
    assert wrong == {}, wrong
    assert "Traceback" not in gateway.output()
