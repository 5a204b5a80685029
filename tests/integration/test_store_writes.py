"""The raw update encoder (``store.add_update``) writes what the client's own ``update`` writes:
the same protobuf, and the same document on the real emulator; its fence holds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from google.api_core import exceptions
from google.cloud import firestore

from push365.store import add_update

WHEN = datetime(2026, 11, 29, 8, 30, 15, 123456, tzinfo=UTC)
FIELDS: dict[str, Any] = {
    "outcomes": {"s1": "sent", "s2": "failed"},
    "inflight": ["s3", "s4"],
    "unknown": [],
    "pending": {},
    "not_before": None,
    "lease_until": WHEN,
    "done": True,
    "attempts": 3,
    "share": 0.5,
    "counts": {"sent": 1, "failed": 1},
    "deliveries": '{"0a":{"status":"sent"}}',
    "receipt_hashes": '{"0a":"' + "a" * 64 + '"}',
}
USERS = ["u1", "u2"]


def _client_update(client: Any, reference: Any, version: Any) -> Any:
    batch = client.batch()
    fields = dict(FIELDS)
    fields["users"] = firestore.ArrayUnion(USERS)
    batch.update(reference, fields, option=client.write_option(last_update_time=version))
    return batch


def _raw_update(client: Any, reference: Any, version: Any) -> Any:
    batch = client.batch()
    add_update(
        batch,
        reference,
        FIELDS,
        last_update_time=version,
        array_union={"users": USERS},
    )
    return batch


def _seed(store: Any, name: str) -> tuple[Any, Any]:
    reference = store.collection("x").document(name)
    # (receipt hashes as batches stored them before: a map, replaced whole by the text)
    written = reference.set(
        {"receipt_hashes": {"kept": "c" * 64}, "users": ["u0", "u1"], "devices": ["s1"]}
    )
    return reference, written.update_time


def test_the_write_is_the_protobuf_the_client_builds(store: Any) -> None:
    reference, version = _seed(store, "a")

    (ours,) = _raw_update(store, reference, version)._write_pbs
    (theirs,) = _client_update(store, reference, version)._write_pbs

    assert sorted(ours.update_mask.field_paths) == sorted(theirs.update_mask.field_paths)
    ours.update_mask.field_paths.clear()
    theirs.update_mask.field_paths.clear()
    assert ours == theirs


def test_the_document_written_is_the_one_the_client_writes(store: Any) -> None:
    # Arrange
    mine, my_version = _seed(store, "mine")
    theirs, their_version = _seed(store, "theirs")

    # Act
    _raw_update(store, mine, my_version).commit()
    _client_update(store, theirs, their_version).commit()

    # Assert
    written = mine.get().to_dict()
    assert written == theirs.get().to_dict()
    assert written["devices"] == ["s1"]  # a field not written is kept
    assert written["receipt_hashes"] == FIELDS["receipt_hashes"]  # a field written is replaced
    assert written["users"] == ["u0", "u1", "u2"]
    assert written["lease_until"] == WHEN


def test_a_stale_fence_fails_the_write(store: Any) -> None:
    reference, version = _seed(store, "fenced")
    reference.update({"attempts": 1})  # another worker wrote since

    with pytest.raises(exceptions.FailedPrecondition):
        _raw_update(store, reference, version).commit()


def test_a_value_it_cannot_encode_is_refused() -> None:
    with pytest.raises(TypeError):
        add_update(None, None, {"x": object()}, last_update_time=WHEN)
