"""The emulators' JVM options: the JVM's defaults, unless the developer gives some."""

from __future__ import annotations

import pytest

from devstack import emulator


def test_the_emulators_run_with_the_jvm_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(emulator.JVM_OPTIONS_VARIABLE, raising=False)
    monkeypatch.setattr(emulator, "find_jar", lambda: emulator.DEFAULT_JAR)
    monkeypatch.setattr(emulator, "find_pubsub_jar", lambda: emulator.PUBSUB_JAR)

    firestore = emulator.FirestoreEmulator(1)._command()
    pubsub = emulator.PubSubEmulator(2)._command()

    assert firestore[:2] == ["java", "-cp"]
    assert pubsub[:2] == ["java", "-jar"]


def test_the_developer_can_give_jvm_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emulator, "find_jar", lambda: emulator.DEFAULT_JAR)
    monkeypatch.setattr(emulator, "find_pubsub_jar", lambda: emulator.PUBSUB_JAR)
    monkeypatch.setenv(emulator.JVM_OPTIONS_VARIABLE, "-XX:TieredStopAtLevel=1 -Xmx512m")

    firestore = emulator.FirestoreEmulator(1)._command()
    pubsub = emulator.PubSubEmulator(2)._command()

    assert firestore[:4] == ["java", "-XX:TieredStopAtLevel=1", "-Xmx512m", "-cp"]
    assert pubsub[:4] == ["java", "-XX:TieredStopAtLevel=1", "-Xmx512m", "-jar"]
