"""Fault injection for the system tests: a TCP proxy that can cut a service off (connections
refused and dropped), and ``deliver`` run as its own process, as the platform runs it, that a
test can kill."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import REPO, free_port


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``target``; ``cut()`` refuses and drops every connection
    until ``restore()``; ``black_hole()`` keeps accepting and holding connections but passes
    nothing on either way (a store that never answers) until ``restore()``; ``hold_answers()``
    passes the client's bytes on to the server but none of the server's back (the request
    arrives, its answer never does) until ``restore()``, which drops the connections held so
    the client reconnects (a protocol's state, HTTP/2's, is broken by the bytes withheld).
    ``bytes_sent`` and ``bytes_answered`` count what it passed on each way (clients to ``target``,
    ``target`` back to clients), for a test that measures how much a call reads."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._silent = False
        self._holding = False
        self.bytes_sent = 0
        self.bytes_answered = 0
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.restore()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def restore(self) -> None:
        async def listen() -> None:
            self._silent = False
            if self._holding:
                self._holding = False
                for writer in list(self._writers):
                    writer.transport.abort()
                self._writers.clear()
            if self._server is None:
                self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

        self._run(listen())

    def black_hole(self) -> None:
        async def silence() -> None:
            self._silent = True

        self._run(silence())

    def hold_answers(self) -> None:
        async def hold() -> None:
            self._holding = True

        self._run(hold())

    def cut(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
                self._server = None
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()

        self._run(close())

    def stop(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._silent:
            self._writers.add(writer)
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while await reader.read(65536):
                    pass
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update({writer, upstream_writer})

        async def copy(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, answers: bool
        ) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    if self._silent or (answers and self._holding):
                        continue
                    if answers:
                        self.bytes_answered += len(data)
                    else:
                        self.bytes_sent += len(data)
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(
            copy(reader, upstream_writer, answers=False),
            copy(upstream_reader, writer, answers=True),
        )
        self._writers.discard(writer)
        self._writers.discard(upstream_writer)


class DeliverProcess:
    """``functions-framework --target deliver`` in a process of its own (gunicorn, as deployed)."""

    def __init__(self, port: int, env: dict[str, str], log: Path) -> None:
        self.port = port
        self._env = env
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "functions_framework",
            "--target",
            "deliver",
            "--source",
            str(REPO / "functions" / "deliver.py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        with open(self._log, "ab") as sink:
            self.process = subprocess.Popen(
                command,
                cwd=REPO,
                env={**os.environ, **self._env},
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while not _listening(self.port):
            assert self.process.poll() is None, self._log.read_text()[-2000:]
            assert time.monotonic() < deadline, "deliver did not start"
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: the process dies wherever it is, as an instance that is shut down does."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def _listening(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=0.5):
            return True
    except urllib.error.HTTPError:
        return True  # a CloudEvent function answers a GET with an error: it is up
    except OSError:
        return False


@contextlib.contextmanager
def deliver_process(port: int, env: dict[str, str], log: Path) -> Iterator[DeliverProcess]:
    worker = DeliverProcess(port, env, log)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
