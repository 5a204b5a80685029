"""Benchmark ``deliver_cpu``: where the CPU of one 20,000-device send goes, process by process,
against bare firebase-admin on the same tokens and server in the same run.

The pieces are ``bench/fanout.py``'s (the emulators, ``send`` and ``deliver`` under
functions-framework, the local FCM server, ``fanout.Pump``). Prints one ``RESULT`` line:
``deliver_cpu devices=N deliver_wall_s=... sdk_wall_s=... ratio=...`` and the CPU seconds each
process used meanwhile (``deliver``, ``firestore``, ``pubsub``, ``fcm``, ``send``; ``sdk`` for
firebase-admin's own process). Run it on a quiet machine: with 2 cores, any other load moves the
ratio more than the code does.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import fanout as bench  # noqa: E402


def cpu_seconds(pid: int | None) -> float:
    """User and system CPU of ``pid`` and its children so far."""
    if pid is None:
        return 0.0
    total = 0
    for process in [pid, *bench._children(pid)]:
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20_000)
    arguments = parser.parse_args()
    with bench.running("cpu") as (run, firestore):
        fcm, pubsub = run.fcm, run.pubsub
        key, users, tokens = bench.seed(arguments.devices // bench.DEVICES_PER_USER)
        run.keys = [key]
        run.start_deliver(1)
        run.drain(users[:1], bench.DEVICES_PER_USER, key)  # warm both processes
        assert run.deliver is not None
        pids = {
            "deliver": run.deliver.pid,
            "firestore": firestore.pid,
            "pubsub": pubsub.pid,
            "fcm": fcm.pid,
            "send": run.send.pid,
        }
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        _, deliver_s = run.drain(users, len(tokens), key)
        used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        run.stop_pushers()
        fcm_before, sdk_before = cpu_seconds(fcm.pid), sum(os.times()[:2])
        sdk_s = bench.baseline(fcm.url, tokens)
        sdk_used = {
            "fcm": cpu_seconds(fcm.pid) - fcm_before,
            "sdk": sum(os.times()[:2]) - sdk_before,
        }
        print(
            f"RESULT deliver_cpu devices={len(tokens)} deliver_wall_s={deliver_s:.1f} "
            f"sdk_wall_s={sdk_s:.1f} ratio={deliver_s / sdk_s:.2f} "
            + " ".join(f"{name}_cpu_s={seconds:.1f}" for name, seconds in used.items())
            + f" sdk_cpu_s={sdk_used['sdk']:.1f} sdk_fcm_cpu_s={sdk_used['fcm']:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
