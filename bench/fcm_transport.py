"""Benchmark the FCM transports: ``FcmHttpGateway`` (one loop, a keep-alive pool, httptools) against
firebase-admin's ``send_each`` (``FirebaseGateway``), the same messages to the same local FCM v1
server in its own process, batches of 500 one after another as the deliver worker sends them.

For each transport and pool size, one line:
``RESULT fcm_transport transport=<name> pool=<n> messages=<n> seconds=<s> msg_s=<n>
client_cpu_us_per_msg=<us> server_cpu_us_per_msg=<us>``
then ``RESULT fcm_transport_ratio pool=<n> cpu_ratio=<http/sdk> speedup=<http msg/s / sdk msg/s>``
(over the fastest of ``--rounds`` alternating rounds; the CPU figures hold on a busy host, the
msg/s figures only on a quiet one).

``firebase_admin`` with pool n is ``send_each`` with a requests pool of n connections
(``pool_block``: at most n open, as the gateway's pool); ``firebase_admin_shipped`` is
``FirebaseGateway`` as it is configured in production (a pool of 100, non-blocking).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "shared"))

from devstack.fcm_server import FcmServerProcess  # noqa: E402
from push365.fcm.firebase import FirebaseGateway  # noqa: E402
from push365.fcm.http import FcmHttpGateway  # noqa: E402
from push365.fcm.model import Outcome, PushMessage, SendResult, WebPush  # noqa: E402
from tests.conftest import free_port  # noqa: E402

PROJECT = "demo-push365-bench"
BATCH = 500


def messages(count: int) -> list[PushMessage]:
    push = WebPush(
        title="Case escalated",
        body="CAS-1 needs you",
        link="https://example.crm.dynamics.com/main.aspx?id=1",
        data={"notification_id": "n-1", "receipt_url": "https://example.test/receipt"},
        ttl_seconds=3600,
        urgency="high",
        collapse_key="n-1",
    )
    return [
        PushMessage(f"bench-token-{i:06d}", push, {"delivery_id": f"d-{i}"}) for i in range(count)
    ]


def server_cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(
    name: str,
    pool: int,
    send: Callable[[Sequence[PushMessage]], list[SendResult]],
    batch: list[PushMessage],
    server: FcmServerProcess,
) -> tuple[float, float]:
    """(msg/s, client CPU s per message) of one transport over the whole batch."""
    send(batch[:BATCH])  # warm: connections, imports, credentials
    server_before = server_cpu_seconds(server.pid)
    cpu, wall = time.process_time(), time.perf_counter()
    sent = 0
    for start in range(0, len(batch), BATCH):
        results = send(batch[start : start + BATCH])
        sent += sum(r.outcome is Outcome.SENT for r in results)
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    server_cpu = server_cpu_seconds(server.pid) - server_before
    if sent != len(batch):
        raise RuntimeError(f"{name}: {len(batch) - sent} messages not sent")
    msg_s = len(batch) / wall
    print(
        f"RESULT fcm_transport transport={name} pool={pool} messages={len(batch)} "
        f"seconds={wall:.2f} msg_s={msg_s:.0f} "
        f"client_cpu_us_per_msg={cpu / len(batch) * 1e6:.0f} "
        f"server_cpu_us_per_msg={server_cpu / len(batch) * 1e6:.0f}",
        flush=True,
    )
    return msg_s, cpu / len(batch)


def sdk_gateway(url: str, pool: int | None) -> FirebaseGateway:
    """``FirebaseGateway``; with ``pool``, its requests pool limited to that many connections."""
    import requests.adapters

    from push365.seams import firebase_admin as firebase_seam

    gateway = FirebaseGateway(PROJECT, url, http_timeout_seconds=10.0)
    app = gateway._get_app()
    if pool is not None:
        session = firebase_seam.service_session(firebase_seam.messaging_service(app))
        assert session is not None
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=1, pool_maxsize=pool, max_retries=0, pool_block=True
        )
        session.mount(url, adapter)
    return gateway


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--pools", default="8,16,32")
    parser.add_argument("--sdk-pool", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds (noisy hosts)")
    parser.add_argument("--skip-sdk", action="store_true")
    arguments = parser.parse_args()
    batch = messages(arguments.messages)
    server = FcmServerProcess(free_port())
    server.start()
    try:
        fastest: dict[int, tuple[float, float]] = {}  # pool -> (msg/s, CPU s/msg), best round
        sdk_best: tuple[float, float] = (0.0, 0.0)
        for _ in range(arguments.rounds):
            for pool in (int(p) for p in arguments.pools.split(",")):
                gateway = FcmHttpGateway(PROJECT, server.url, 10.0, pool_size=pool)
                measured = run("push365", pool, gateway.send_batch, batch, server)
                fastest[pool] = max(fastest.get(pool, (0.0, 0.0)), measured)
                gateway.close()
            if arguments.skip_sdk:
                continue
            import firebase_admin

            sdk = sdk_gateway(server.url, arguments.sdk_pool)
            measured = run("firebase_admin", arguments.sdk_pool, sdk.send_batch, batch, server)
            sdk_best = max(sdk_best, measured)
            firebase_admin.delete_app(sdk._get_app())
            shipped = sdk_gateway(server.url, None)
            run("firebase_admin_shipped", 100, shipped.send_batch, batch, server)
            firebase_admin.delete_app(shipped._get_app())
        if sdk_best[0] and arguments.sdk_pool in fastest:
            msg_s, cpu_s = fastest[arguments.sdk_pool]
            print(
                f"RESULT fcm_transport_ratio pool={arguments.sdk_pool} "
                f"cpu_ratio={cpu_s / sdk_best[1]:.3f} speedup={msg_s / sdk_best[0]:.2f}",
                flush=True,
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
