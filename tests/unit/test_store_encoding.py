"""The fast encoder of delivery records writes exactly what the client's own ``set`` writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from push365.notifications.repository import Delivery, delivery_document
from push365.store import add_sets

SENT_AT = datetime(2026, 11, 29, 8, 30, 15, 123456, tzinfo=UTC)


def _client() -> firestore.Client:
    return firestore.Client(project="demo-push365-unit", credentials=AnonymousCredentials())


def _writes(documents: list[tuple[str, dict[str, object]]], fast: bool) -> list[object]:
    client = _client()
    collection = client.collection("organizations", "o", "notifications", "n", "deliveries")
    batch = client.batch()
    pairs = [(collection.document(name), fields) for name, fields in documents]
    if fast:
        add_sets(batch, pairs)
    else:
        for reference, fields in pairs:
            batch.set(reference, fields)
    return list(batch._write_pbs)


def test_delivery_records_are_encoded_as_the_client_encodes_them() -> None:
    sent = Delivery("d1", "u1", "sent", "projects/p/messages/1", None, SENT_AT, "a" * 64)
    failed = Delivery("d2", "u2", "failed", None, "unregistered", SENT_AT, "b" * 64, resent=True)
    documents = [
        ("d1", delivery_document(sent, SENT_AT + timedelta(days=90))),
        ("d2", delivery_document(failed, SENT_AT)),
    ]

    assert _writes(documents, fast=True) == _writes(documents, fast=False)


def test_every_flat_value_kind_matches_and_other_values_fall_back() -> None:
    documents: list[tuple[str, dict[str, object]]] = [
        ("a", {"none": None, "yes": True, "no": False, "n": -7, "s": "é", "empty": ""}),
        (
            "b",
            {"at": datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=5)))},
        ),
        ("c", {"nested": {"x": 1}, "list": [1, 2], "naive": datetime(2026, 1, 1)}),  # fallback
        ("d", {}),
    ]

    assert _writes(documents, fast=True) == _writes(documents, fast=False)
