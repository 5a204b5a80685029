"""The raw readers (``store.stream_rows``, ``store.get_rows``) read what the client reads, on the
real emulator, and give up in bounded time when the store does not answer."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from google.api_core import exceptions
from google.cloud import firestore

from push365.store import get_rows, stream_rows
from tests.conftest import PROJECT, free_port

SEEN = datetime(2026, 11, 29, 8, 30, 15, 123456, tzinfo=UTC)


def _seed(store: Any) -> Any:
    collection = store.collection("organizations", "o", "subscriptions")
    batch = store.batch()
    for index in range(12):
        batch.set(
            collection.document(f"s{index:02d}"),
            {
                "user_id": f"u{index % 3}",
                "instance_id": f"token-{index}",
                "status": "active" if index % 4 else "unsubscribed",
                "last_seen_at": SEEN,
                "purge_by": None,
                "count": index,
                "flag": bool(index % 2),
                "nested": {"a": [1, "b"]},  # not a flat value: decoded by the client's helper
            },
        )
    batch.commit()
    return collection


def _client_rows(snapshots: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(s.id, s.to_dict()) for s in snapshots if s.exists]


def test_a_query_reads_the_same_documents_and_values_as_the_client(store: Any) -> None:
    # Arrange
    collection = _seed(store)
    query = (
        collection.where(filter=firestore.FieldFilter("status", "==", "active"))
        .order_by("__name__")
        .start_after({"__name__": collection.document("s02")})
        .limit(5)
    )

    # Act
    raw = list(stream_rows(query, 10.0))

    # Assert
    assert raw == _client_rows(query.stream())
    assert [sid for sid, _ in raw] == ["s03", "s05", "s06", "s07", "s09"]
    assert raw[0][1]["last_seen_at"] == SEEN


def test_a_streamed_query_reads_the_same_lazily_and_can_be_left_early(store: Any) -> None:
    # Arrange
    collection = _seed(store)
    query = collection.order_by("__name__").select(["user_id", "status"])

    # Act
    whole = list(stream_rows(query, 10.0))
    rows = stream_rows(query, 10.0)
    first_two = [next(rows), next(rows)]
    rows.close()  # cancels the stream

    # Assert
    assert whole == _client_rows(query.stream())
    assert first_two == whole[:2]
    assert (
        list(stream_rows(collection.where(filter=firestore.FieldFilter("count", ">", 99)), 5.0))
        == []
    )


def test_a_selected_query_reads_only_the_selected_fields(store: Any) -> None:
    collection = _seed(store)
    query = collection.order_by("__name__").select(["user_id"])

    raw = list(stream_rows(query, 10.0))

    assert raw == _client_rows(query.stream())
    assert all(set(fields) == {"user_id"} for _, fields in raw)


def test_a_batch_read_gives_the_existing_documents_masked_like_get_all(store: Any) -> None:
    # Arrange
    collection = _seed(store)
    references = [collection.document(name) for name in ("s01", "nope", "s04", "s11")]
    fields = ["user_id", "instance_id", "status", "last_seen_at", "flag", "count"]

    # Act
    raw = get_rows(store, references, fields, 10.0)

    # Assert
    assert sorted(raw) == sorted(_client_rows(store.get_all(references, field_paths=fields)))
    assert sorted(sid for sid, _ in raw) == ["s01", "s04", "s11"]


def test_a_store_that_does_not_answer_is_given_up_on_within_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Arrange: a client of a port nobody listens on
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    client = firestore.Client(project=PROJECT)
    collection = client.collection("organizations", "o", "subscriptions")
    started = time.monotonic()

    # Act / Assert
    with pytest.raises(exceptions.GoogleAPIError):
        get_rows(client, [collection.document("s01")], ["status"], 2.0)
    with pytest.raises(exceptions.GoogleAPIError):
        next(stream_rows(collection.limit(1), 2.0))
    assert time.monotonic() - started < 15.0


def test_the_stores_streams_are_read_on_the_calling_thread(store: Any) -> None:
    # gRPC's SingleThreadedUnaryStream: without it a streamed document crosses threads. The
    # channel under the interceptor that finishes every stream (tests/integration/
    # test_store_memory.py) is the one with the option.
    from google.auth.credentials import AnonymousCredentials

    from push365.store import _Transport

    production = _Transport.create_channel(
        "firestore.googleapis.com", credentials=AnonymousCredentials()
    )

    assert store._firestore_api._transport.grpc_channel._channel._single_threaded_unary_stream
    assert production._channel._single_threaded_unary_stream
    production.close()
