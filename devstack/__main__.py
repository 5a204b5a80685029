"""``make dev``: the Firestore and Pub/Sub emulators, the local FCM server and every function, in
the foreground.

Ports come from ``PUSH365_HTTP_PORT`` (8000), ``PUSH365_FIRESTORE_PORT`` (8080),
``PUSH365_PUBSUB_PORT`` (8085) and ``PUSH365_FCM_PORT`` (8090). Ctrl-C (or SIGTERM) stops
everything this started.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devstack import fanout
from devstack.emulator import EmulatorMissing, FirestoreEmulator, PubSubEmulator
from devstack.fcm_server import FcmServerProcess

HOST = "127.0.0.1"
PROJECT = "demo-push365"


def _port(variable: str, default: int) -> int:
    return int(os.environ.get(variable, default))


def _reconcile_every(seconds: float, url: str, admin_key: str, stop: threading.Event) -> None:
    """POST the reconcile function every ``seconds`` (its answer is in its audit record)."""
    import urllib.error
    import urllib.request

    while not stop.wait(seconds):
        request = urllib.request.Request(
            url, data=b"{}", method="POST", headers={"Content-Type": "application/json"}
        )
        request.add_header("X-Push365-Admin-Key", admin_key)
        try:
            with urllib.request.urlopen(request, timeout=seconds):
                pass
        except (OSError, urllib.error.URLError) as error:
            logging.getLogger("devstack").warning("reconcile: %s", type(error).__name__)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    http_port = _port("PUSH365_HTTP_PORT", 8000)
    emulator = FirestoreEmulator(
        _port("PUSH365_FIRESTORE_PORT", 8080), HOST, log_path=Path(".local/firestore-emulator.log")
    )
    pubsub = PubSubEmulator(
        _port("PUSH365_PUBSUB_PORT", 8085), HOST, log_path=Path(".local/pubsub-emulator.log")
    )
    Path(".local").mkdir(exist_ok=True)
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    base = f"http://{HOST}:{http_port}"
    # Its own process, as FCM is: the functions' process pays only for the client side.
    fcm = FcmServerProcess(_port("PUSH365_FCM_PORT", 8090), HOST)
    try:
        emulator.start()
        pubsub.start()
        fcm.start()
        topic = os.environ.setdefault("PUSH365_FANOUT_TOPIC", "push365-fanout")
        # Each fan-out message goes to the local deliver function as Pub/Sub's push sends it in
        # production; pulled and pushed by fanout.Pump (the emulator's push loses messages that
        # back off: see devstack/fanout.py).
        topology = fanout.FanoutTopology(PROJECT, topic, None, retry_policy=False)
        fanout.create(pubsub.address, topology)
        # The functions read these when they are loaded, exactly as deployed ones read theirs.
        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.address
        os.environ["PUBSUB_EMULATOR_HOST"] = pubsub.address
        os.environ["GOOGLE_CLOUD_PROJECT"] = PROJECT
        os.environ["PUSH365_FCM_ENDPOINT"] = fcm.url
        os.environ.setdefault("PUSH365_RECEIPT_URL", f"{base}/receipt")
        os.environ.setdefault("PUSH365_ADMIN_KEY", "local-admin-key")
        os.environ.setdefault("PUSH365_FUNCTION_URL_TEMPLATE", base + "/{function}")
        os.environ.setdefault("PUSH365_MAIL_BACKEND", "outbox")  # .local/outbox/*.json

        from devstack.gateway import build_gateway, function_names, serve

        server = serve(build_gateway(), HOST, http_port)
        threading.Thread(target=server.serve_forever, name="gateway", daemon=True).start()
        pump = fanout.Pump(pubsub.address, topology, f"{base}/deliver").start()
        # Cloud Scheduler calls reconcile every 5 minutes; here every PUSH365_RECONCILE_SECONDS.
        every = float(os.environ.get("PUSH365_RECONCILE_SECONDS", "60"))
        threading.Thread(
            target=_reconcile_every,
            args=(every, f"{base}/reconcile", os.environ["PUSH365_ADMIN_KEY"], stop),
            name="reconcile",
            daemon=True,
        ).start()
        print(f"Push365 is running (project {PROJECT}). Ctrl-C stops everything.")
        for name in function_names():
            print(f"  {name:<12} {base}/{name}")
        print(f"  Firestore emulator  {emulator.address}  (FIRESTORE_EMULATOR_HOST)")
        print(f"  Pub/Sub emulator    {pubsub.address}  (PUBSUB_EMULATOR_HOST, topic {topic})")
        print(f"  local FCM v1 server {fcm.url}  (GET {fcm.url}/_messages)", flush=True)
        stop.wait()
        print("Stopping...", flush=True)
        pump.stop()
        server.shutdown()
        server.server_close()
    except EmulatorMissing as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    finally:
        fcm.stop()
        pubsub.stop()
        emulator.stop()
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
