"""The real Firestore and Pub/Sub emulators that ship with the Google Cloud CLI, started and
stopped here."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_JAR = Path(
    "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
)
MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
PUBSUB_JAR = Path(
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib/cloud-pubsub-emulator-0.8.20-all.jar"
)
JVM_OPTIONS_VARIABLE = "PUSH365_EMULATOR_JVM_OPTIONS"
DEFAULT_JVM_OPTIONS = ""
"""Extra options for the emulators' JVM; none by default. ``-XX:TieredStopAtLevel=1`` (the quick
compiler only) suits a short session on a small machine: with the optimising compiler, the
Firestore emulator used 13-16 s of CPU during one 20,000-device send (in one run, 10.9 of 15.3 s
compiling itself; ``bench/deliver_cpu.py``), 4.4-5.4 s with the quick compiler only; but a
100,000-device drain then took 82 and 86 s instead of 70, 73 and 79 s (``bench/fanout.py``,
one deliver process)."""


def jvm_options() -> list[str]:
    """The options each emulator's JVM starts with."""
    return shlex.split(os.environ.get(JVM_OPTIONS_VARIABLE, DEFAULT_JVM_OPTIONS))


class EmulatorMissing(RuntimeError):
    """An emulator (or Java) is not on this machine."""


def find_jar() -> Path:
    """The Firestore emulator jar: ``FIRESTORE_EMULATOR_JAR`` if set, else the Cloud CLI's.

    Raises:
        EmulatorMissing: no jar, or no ``java`` to run it.
    """
    return _find("Firestore", "FIRESTORE_EMULATOR_JAR", DEFAULT_JAR, "firestore")


def find_pubsub_jar() -> Path:
    """The Pub/Sub emulator jar: ``PUBSUB_EMULATOR_JAR`` if set, else the Cloud CLI's.

    Raises:
        EmulatorMissing: no jar, or no ``java`` to run it.
    """
    return _find("Pub/Sub", "PUBSUB_EMULATOR_JAR", PUBSUB_JAR, "pubsub")


def _find(name: str, variable: str, default: Path, package: str) -> Path:
    jar = Path(os.environ.get(variable, default))
    if not jar.is_file():
        raise EmulatorMissing(
            f"{name} emulator jar not found at {jar} (Debian package "
            f"google-cloud-cli-{package}-emulator; or set {variable})."
        )
    if shutil.which("java") is None:
        raise EmulatorMissing(f"java is not on PATH; the {name} emulator needs Java 17+.")
    return jar


class _JavaEmulator:
    """One emulator process on ``host:port``; use as a context manager."""

    name = "emulator"

    def __init__(self, port: int, host: str = "127.0.0.1", log_path: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The emulator's process, while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def address(self) -> str:
        """``host:port``, what the client libraries' ``*_EMULATOR_HOST`` is set to."""
        return f"{self.host}:{self.port}"

    def _command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 60.0) -> None:
        """Start the emulator and wait until it answers.

        Raises:
            EmulatorMissing: see :func:`find_jar`.
            RuntimeError: the port is taken, or the emulator did not come up in time.
        """
        command = self._command()
        if _answers(self.address):
            raise RuntimeError(f"Something already answers on {self.address}; choose another port.")
        log_path = self.log_path or Path(os.devnull)
        with open(log_path, "wb") as log:
            # Its own session, so that stopping it reaches every process it started.
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while not _answers(self.address):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"The {self.name} did not start on {self.address}.")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the emulator and everything it started; idempotent."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class FirestoreEmulator(_JavaEmulator):
    """The Firestore emulator."""

    name = "Firestore emulator"

    def _command(self) -> list[str]:
        jar = find_jar()
        return [
            "java",
            *jvm_options(),
            "-cp",
            str(jar),
            MAIN_CLASS,
            "start",
            f"--host={self.host}",
            f"--port={self.port}",
        ]

    def reset(self, project: str) -> None:
        """Delete every document of a project."""
        request = urllib.request.Request(
            f"http://{self.address}/emulator/v1/projects/{project}/databases/(default)/documents",
            method="DELETE",
        )
        urllib.request.urlopen(request, timeout=10).close()

    def __enter__(self) -> FirestoreEmulator:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class PubSubEmulator(_JavaEmulator):
    """The Pub/Sub emulator (``PUBSUB_EMULATOR_HOST``)."""

    name = "Pub/Sub emulator"

    def _command(self) -> list[str]:
        jar = find_pubsub_jar()
        return [
            "java",
            *jvm_options(),
            "-jar",
            str(jar),
            f"--host={self.host}",
            f"--port={self.port}",
        ]

    def __enter__(self) -> PubSubEmulator:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/", timeout=0.5) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError:
        return True  # it answers (the Pub/Sub emulator's root is a 404)
    except (urllib.error.URLError, OSError):
        return False
