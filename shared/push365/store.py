"""The Firestore client and the document layout, named once.

Layout (every tenant's data lives under its organization document)::

    organizations/{organization_id}
    organizations/{organization_id}/users/{systemuser_id}
    organizations/{organization_id}/subscriptions/{sha256(instance_id)}
    organizations/{organization_id}/notifications/{notification_id}
    organizations/{organization_id}/notifications/{notification_id}/batches/{batch}
    organizations/{organization_id}/notifications/{notification_id}/receipts/{device_id}
    organizations/{organization_id}/dedup/{sha256(dedup key)}
    organizations/{organization_id}/quotas/{route}-{period}-{window}[-{shard}]   call counts
    organizations/{organization_id}/daily/{YYYY-MM-DD}.{shard}   counts only (push365.daily)
    signup_codes/{sha256(code)}
    throttles/{sha256(scope)}-{window}[-{shard}]   registration attempts; calls per caller or route
    token_owners/{sha256(instance_id)}      the one organization whose active subscription the
                                            token is (written and removed in the same commit)
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

import grpc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.services.firestore.transports.grpc import FirestoreGrpcTransport

from push365.seams import firestore as firestore_seam
from push365.seams import grpc as grpc_seam
from push365.settings import get_settings

T = TypeVar("T")

ORGANIZATIONS = "organizations"
USERS = "users"
SUBSCRIPTIONS = "subscriptions"
NOTIFICATIONS = "notifications"
RECEIPTS = "receipts"
BATCHES = "batches"
DEDUP = "dedup"
QUOTAS = "quotas"
DAILY = "daily"
SIGNUP_CODES = "signup_codes"
THROTTLES = "throttles"
TOKEN_OWNERS = "token_owners"
OWNER_FIELD = "organization_id"
"""On ``token_owners/{sha256(instance_id)}``: the organization whose active subscription it is."""

BATCH_LIMIT = 500
"""Firestore's limit on writes in one batch or transaction."""

CONTENDED_ATTEMPTS = 30
"""Attempts of a transaction that identical concurrent requests contend for (the client's
default, 5, fails the sixth of them); each attempt is still bounded by the store timeout."""


def bounded_retry(seconds: float) -> Any:
    """A retry policy that gives up after ``seconds`` in all (the client library's defaults
    retry for up to 300 s, past every function's timeout): a store that does not answer becomes
    a retry by Pub/Sub or a 503, in seconds."""
    from google.api_core import retry

    return retry.Retry(initial=0.1, maximum=1.0, multiplier=2.0, timeout=seconds)


def bounded(seconds: float) -> dict[str, Any]:
    """The ``retry`` and ``timeout`` of a call given up after ``seconds`` in all, as keyword
    arguments. Pass them to every query too: with the client's default retry, a stream that
    fails after its first document raises AttributeError (python-firestore#596), not the store's
    error."""
    return {"retry": bounded_retry(seconds), "timeout": seconds}


def transact(function: Callable[[Any], T], transaction: Any) -> T:
    """``function(transaction)`` for a ``@firestore.transactional`` function, a store that does
    not answer raising its own error: when the transaction could not even begin, the library's
    rollback raises ``ValueError`` ("not in progress") over it, and that would be a 500."""
    from google.api_core import exceptions as google_exceptions

    try:
        return function(transaction)
    except ValueError as error:
        cause = error.__context__
        if isinstance(cause, google_exceptions.GoogleAPICallError | google_exceptions.RetryError):
            raise cause from None
        raise


def add_update(
    batch: Any,
    reference: Any,
    fields: Mapping[str, Any],
    last_update_time: Any,
    array_union: Mapping[str, Sequence[Any]] | None = None,
) -> None:
    """``batch.update(reference, ...)``, fenced by ``last_update_time``, built from the raw
    protobuf types at a fraction of the client's CPU (its encoder builds a proto-plus object per
    value and parses every field path): ``fields`` replace top-level fields (the others are
    kept), ``array_union[name]``'s values are added to array ``name``.
    ``tests/integration/test_store_writes.py`` checks the write equals the client's.

    Values: ``None``, ``bool``, ``int``, ``float``, ``str``, aware ``datetime``, and lists and
    ``str``-keyed dicts of them.
    """
    from google.cloud.firestore_v1.types import common, document, write

    raw_fields = {name: raw_value(value) for name, value in fields.items()}
    mask = list(fields)
    raw = write.Write.pb()(
        update=document.Document.pb()(
            name=firestore_seam.document_path(reference), fields=raw_fields
        ),
        update_mask=common.DocumentMask.pb()(field_paths=mask),
        current_document=common.Precondition.pb()(update_time=_timestamp(last_update_time)),
    )
    for name, values in (array_union or {}).items():
        if values:
            added = raw_value(list(values)).array_value
            raw.update_transforms.add(field_path=name, append_missing_elements=added)
    firestore_seam.add_write_pbs(batch, [write.Write.wrap(raw)])


def raw_value(value: Any) -> Any:
    """A Firestore ``Value`` (raw protobuf) for a Python value (see :func:`add_update`)."""
    from google.cloud.firestore_v1.types import document

    raw = document.Value.pb()
    if value is None:
        return raw(null_value=0)
    if isinstance(value, bool):
        return raw(boolean_value=value)
    if isinstance(value, int):
        return raw(integer_value=value)
    if isinstance(value, float):
        return raw(double_value=value)
    if isinstance(value, str):
        return raw(string_value=value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return raw(timestamp_value=_timestamp(value))
    if isinstance(value, dict):
        entries = {str(key): raw_value(inner) for key, inner in value.items()}
        return raw(map_value=document.MapValue.pb()(fields=entries))
    if isinstance(value, list | tuple):
        return raw(array_value=document.ArrayValue.pb()(values=[raw_value(v) for v in value]))
    raise TypeError("not a value add_update writes")


def _timestamp(value: datetime) -> Any:
    from google.protobuf import timestamp_pb2

    if hasattr(value, "timestamp_pb"):  # the store's own times keep their nanoseconds
        return value.timestamp_pb()
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


Row = tuple[str, dict[str, Any]]
"""One document as the raw readers give it: its id and its fields (flat values decoded)."""


def stream_rows(query: Any, seconds: float) -> Generator[Row, None, None]:
    """``query``'s documents, read as ``query.stream()`` reads them, at a fifth of the client's
    CPU per document (it wraps every streamed message in proto-plus objects and a snapshot; this
    reads the raw protobuf types off the client's own channel; ``tests/integration/
    test_store_reads.py`` checks both read the same).

    Lazily, as the store streams them, the whole stream within ``seconds`` (one query over a
    large collection, not pages of it: the emulator scans from the start for every page). A
    failure before the first document is retried like any call, bounded; one after it is raised
    (``google.api_core`` exceptions): the caller resumes after the last document it took.
    Closing the iterator cancels the stream."""
    from google.api_core import exceptions

    stub, request, metadata = _run_query(query)

    def start() -> tuple[Any, Row | None]:
        call = stub(request, timeout=seconds, metadata=metadata)
        try:
            for answer in call:
                if answer.HasField("document"):
                    return call, _row(answer.document)
        except grpc.RpcError as error:
            raise exceptions.from_grpc_error(error) from None  # type: ignore[no-untyped-call]
        return call, None

    call, first = bounded_retry(seconds)(start)()
    if first is None:
        return
    try:
        yield first
        for answer in call:
            if answer.HasField("document"):
                yield _row(answer.document)
    except grpc.RpcError as error:
        raise exceptions.from_grpc_error(error) from None  # type: ignore[no-untyped-call]
    finally:
        call.cancel()


def _run_query(query: Any) -> tuple[Any, Any, Any]:
    from google.cloud.firestore_v1.types import firestore as firestore_types

    client = firestore_seam.client_of(query)
    parent, structured_query = firestore_seam.query_request(query)
    request = firestore_types.RunQueryRequest.pb()(parent=parent, structured_query=structured_query)
    stub = _raw_stub(
        client, "RunQuery", firestore_types.RunQueryRequest, firestore_types.RunQueryResponse
    )
    return stub, request, firestore_seam.rpc_metadata(client)


def get_rows(
    client: firestore.Client,
    references: Sequence[Any],
    field_paths: Sequence[str],
    seconds: float,
) -> list[Row]:
    """The documents of ``references`` that exist (only ``field_paths``), as
    ``client.get_all`` reads them, raw like :func:`stream_rows`: one batch read per BATCH_LIMIT
    references, each retried while transient and given up after ``seconds`` in all."""
    rows: list[Row] = []
    for start in range(0, len(references), BATCH_LIMIT):
        rows += _get_rows(client, references[start : start + BATCH_LIMIT], field_paths, seconds)
    return rows


def _get_rows(
    client: firestore.Client,
    references: Sequence[Any],
    field_paths: Sequence[str],
    seconds: float,
) -> list[Row]:
    from google.cloud.firestore_v1.types import common
    from google.cloud.firestore_v1.types import firestore as firestore_types

    request = firestore_types.BatchGetDocumentsRequest.pb()(
        database=firestore_seam.database_string(client),
        documents=[firestore_seam.document_path(reference) for reference in references],
        mask=common.DocumentMask.pb()(field_paths=list(field_paths)),
    )
    stub = _raw_stub(
        client,
        "BatchGetDocuments",
        firestore_types.BatchGetDocumentsRequest,
        firestore_types.BatchGetDocumentsResponse,
    )
    metadata = firestore_seam.rpc_metadata(client)
    return _bounded_rows(
        seconds,
        lambda: [
            _row(answer.found)
            for answer in stub(request, timeout=seconds, metadata=metadata)
            if answer.HasField("found")
        ],
    )


def _raw_stub(client: firestore.Client, method: str, request: Any, response: Any) -> Any:
    return firestore_seam.grpc_channel(client).unary_stream(
        f"/google.firestore.v1.Firestore/{method}",
        request_serializer=request.pb().SerializeToString,
        response_deserializer=response.pb().FromString,
    )


def _bounded_rows(seconds: float, read: Any) -> list[Row]:
    from google.api_core import exceptions

    def attempt() -> list[Row]:
        try:
            rows: list[Row] = read()
        except grpc.RpcError as error:
            raise exceptions.from_grpc_error(error) from None  # type: ignore[no-untyped-call]
        return rows

    rows: list[Row] = bounded_retry(seconds)(attempt)()
    return rows


def _row(document: Any) -> Row:
    return document.name.rpartition("/")[2], {
        name: _decoded(value) for name, value in document.fields.items()
    }


def _decoded(value: Any) -> Any:
    kind = value.WhichOneof("value_type")
    if kind == "string_value":
        return value.string_value
    if kind == "null_value":
        return None
    if kind == "timestamp_value":
        return value.timestamp_value.ToDatetime(tzinfo=UTC)
    if kind == "boolean_value":
        return value.boolean_value
    if kind == "integer_value":
        return value.integer_value
    return firestore_seam.decode_value(value)


@lru_cache(maxsize=1)
def firestore_client() -> firestore.Client:
    """The process-wide client, created on first use (``FIRESTORE_EMULATOR_HOST`` is honoured).

    Every call it makes without a retry and timeout of its own is bounded by
    ``PUSH365_STORE_TIMEOUT_SECONDS`` (see :func:`bound_every_call`); its streamed reads are
    read on the calling thread (see :func:`store_client`)."""
    client = store_client(get_settings().project_id)
    bound_every_call(client, get_settings().store_timeout_seconds)
    return client


def store_client(project: str) -> firestore.Client:
    """A Firestore client whose channel reads a stream (a query, a batch read) on the thread
    that called, gRPC's ``SingleThreadedUnaryStream``. By default gRPC hands every streamed
    document from a thread of its own to the caller's: a deliver batch's 500 subscriptions
    then cost four times the CPU (``bench/deliver_cpu.py``).

    Every stream on its channel is run to its end, even one its reader leaves early (see
    :func:`finishing_streams`): with that option, gRPC frees a call only once the caller has
    taken every event of it, and a stream left unread held its call, its completion queue and
    their buffers for the life of the process (18 KB a read: ``bench/soak.py``)."""
    return StoreClient(project=project)


class _Transport(FirestoreGrpcTransport):
    @classmethod
    def create_channel(cls, *args: Any, **kwargs: Any) -> Any:
        options = [*kwargs.pop("options", ()), *_stream_options()]
        return finishing_streams(super().create_channel(*args, options=options, **kwargs))


class StoreClient(firestore_seam.ChannelledClient):
    """``firestore.Client`` on a channel with ``SingleThreadedUnaryStream`` whose streams are
    always finished (see :func:`store_client`)."""

    transport_class = _Transport

    def emulator_channel(self, host: str) -> grpc.Channel:
        # The library's emulator channel (its token, its message sizes), with the option.
        options = [*firestore_seam.EMULATOR_OPTIONS, *_stream_options()]
        return finishing_streams(grpc.insecure_channel(host, options=options))


def _stream_options() -> list[tuple[str, int]]:
    return [(grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1)]


def finishing_streams(channel: grpc.Channel) -> grpc.Channel:
    """``channel``, with every server stream it starts run to its end however its reader leaves
    it: read to its status, or cancelled and then its remaining events taken.

    Why: on a channel with ``SingleThreadedUnaryStream`` no thread of gRPC's takes a call's
    events from its completion queue; the reader does, as it reads. gRPC's C layer keeps the
    call (its queue, buffers and metadata) in the channel until every operation it started has
    been taken, and a reader that stops early never takes them: the client library's
    ``DocumentReference.get`` reads the one answer of its batch read and leaves the status
    unread, and a cancelled stream (``stream_rows`` closed early, a stream dropped mid-way) has
    its cancellation unread. Each such call stayed for the life of the process: three reads a
    status poll made ``send`` grow by 54 KB a request. On a channel without the option gRPC's
    own thread takes every event, and this changes nothing."""
    return grpc.intercept_channel(channel, _FinishStreams())


class _FinishStreams(grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        call = continuation(details, request)
        if grpc_seam.is_single_threaded_stream(call):
            return _FinishedStream(call)
        return call


class _FinishedStream:
    """A single-threaded stream that is finished when it is cancelled or dropped (see
    :func:`finishing_streams`); anything else is the call's own."""

    __slots__ = ("_call",)

    def __init__(self, call: Any) -> None:
        self._call = call

    def __iter__(self) -> _FinishedStream:
        return self

    def __next__(self) -> Any:
        return next(self._call)

    def cancel(self) -> bool:
        cancelled: bool = self._call.cancel()
        _finish(self._call)
        return cancelled

    def __getattr__(self, name: str) -> Any:
        if name == "_call":  # not set yet: __init__ did not run
            raise AttributeError(name)
        return getattr(self._call, name)

    def __del__(self) -> None:
        call = getattr(self, "_call", None)
        if call is not None:
            _finish(call)


def _finish(call: Any) -> None:
    """Cancel ``call`` unless it has ended, then take the events its operations still owe, so
    that gRPC frees it. A cancelled call's events come at once, an ended call's are already
    there; one gRPC ended itself (an answer it could not decode) is still live on the wire and
    owes them by its deadline, which every store call has. Private to gRPC, as reading a
    single-threaded stream is: :func:`push365.seams.grpc.finish`."""
    grpc_seam.finish(call)


def bound_every_call(client: firestore.Client, seconds: float) -> None:
    """Give every RPC of ``client`` a deadline of ``seconds`` and a retry that gives up after
    ``seconds`` in all, as its defaults.

    The client library's own defaults (per method, in the generated transport) retry for 60 to
    300 s and wait on a silent connection as long: a request that met a stopped or black-holed
    store answered its 503 after four minutes. A call that passes its own ``retry``/``timeout``
    (send's and deliver's repositories) keeps them.
    """
    from google.api_core import gapic_v1

    # The generated transport is the one place the per-method defaults live.
    firestore_seam.rewrap_methods(
        client,
        lambda method: gapic_v1.method.wrap_method(  # type: ignore[no-untyped-call]
            method, default_retry=bounded_retry(seconds), default_timeout=seconds
        ),
    )


def organization_ref(client: firestore.Client, organization_id: str) -> firestore.DocumentReference:
    """The document of one organization."""
    return client.collection(ORGANIZATIONS).document(organization_id)


def delete_organization_tree(client: firestore.Client, organization_id: str) -> dict[str, int]:
    """Delete everything under an organization, then its document; counts per kind.

    Children go before their parent and the organization document goes last, so an interrupted
    run leaves the organization's marker in place for the next one to finish.
    """
    organization = organization_ref(client, organization_id)
    counts = {USERS: 0, SUBSCRIPTIONS: 0, NOTIFICATIONS: 0, RECEIPTS: 0, BATCHES: 0, DEDUP: 0}
    counts[DAILY] = 0
    # The tokens it holds are free again (before its subscriptions go: an interrupted run
    # leaves none of its entries without the marker that makes the next run finish).
    owned = client.collection(TOKEN_OWNERS).where(
        filter=FieldFilter(OWNER_FIELD, "==", organization_id)
    )
    while page := [s.reference for s in owned.select([]).limit(BATCH_LIMIT).get(**bounded(10.0))]:
        _delete_all(client, page)
    for notifications in _id_pages(organization.collection(NOTIFICATIONS)):
        for notification in notifications:
            for kind in (RECEIPTS, BATCHES):
                for page in _id_pages(notification.collection(kind)):
                    counts[kind] += _delete_all(client, page)
        counts[NOTIFICATIONS] += _delete_all(client, notifications)
    for name in (SUBSCRIPTIONS, USERS, DEDUP):
        for page in _id_pages(organization.collection(name)):
            counts[name] += _delete_all(client, page)
    # Its call counters (operational, not reported; their TTL would take them within a day).
    for page in _id_pages(organization.collection(QUOTAS)):
        _delete_all(client, page)
    for page in _id_pages(organization.collection(DAILY)):  # its daily counts (push365.daily)
        counts[DAILY] += _delete_all(client, page)
    organization.delete()
    return counts


def _id_pages(
    collection: firestore.CollectionReference, seconds: float = 10.0
) -> Iterator[list[firestore.DocumentReference]]:
    # Re-query after each page is deleted: deleted documents drop out, memory stays bounded.
    query = collection.select([]).limit(BATCH_LIMIT)
    while page := [snapshot.reference for snapshot in query.get(**bounded(seconds))]:
        # (A stream the client resumed after an error may hold more than its limit.)
        for start in range(0, len(page), BATCH_LIMIT):
            yield page[start : start + BATCH_LIMIT]


def _delete_all(client: firestore.Client, references: list[firestore.DocumentReference]) -> int:
    batch = client.batch()
    for reference in references:
        batch.delete(reference)
    batch.commit()
    return len(references)
