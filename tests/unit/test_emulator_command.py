"""The emulators' JVM options: the quick compiler only, unless the developer says otherwise."""

from __future__ import annotations

import pytest

from devstack import emulator


def test_the_emulators_run_on_the_quick_compiler_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(emulator.JVM_OPTIONS_VARIABLE, raising=False)
    monkeypatch.setattr(emulator, "find_jar", lambda: emulator.DEFAULT_JAR)
    monkeypatch.setattr(emulator, "find_pubsub_jar", lambda: emulator.PUBSUB_JAR)

    firestore = emulator.FirestoreEmulator(1)._command()
    pubsub = emulator.PubSubEmulator(2)._command()

    assert firestore[:2] == ["java", "-XX:TieredStopAtLevel=1"]
    assert pubsub[:2] == ["java", "-XX:TieredStopAtLevel=1"]


def test_the_jvm_options_can_be_replaced_or_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emulator, "find_jar", lambda: emulator.DEFAULT_JAR)

    monkeypatch.setenv(emulator.JVM_OPTIONS_VARIABLE, "-Xmx512m -XX:+UseSerialGC")
    replaced = emulator.FirestoreEmulator(1)._command()
    monkeypatch.setenv(emulator.JVM_OPTIONS_VARIABLE, "")
    dropped = emulator.FirestoreEmulator(1)._command()

    assert replaced[:4] == ["java", "-Xmx512m", "-XX:+UseSerialGC", "-cp"]
    assert dropped[:2] == ["java", "-cp"]
