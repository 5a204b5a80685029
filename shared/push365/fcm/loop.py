"""The bridge between callers' threads and the HTTP port's event loop: one loop, run forever in a
daemon thread, that any thread hands coroutines to (``asyncio.run_coroutine_threadsafe``)."""

from __future__ import annotations

import asyncio
import threading


def start_loop(name: str) -> asyncio.AbstractEventLoop:
    """A new event loop, already running in a daemon thread named ``name``."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=_run, args=(loop,), name=name, daemon=True).start()
    return loop


def _run(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()
