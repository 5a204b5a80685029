"""google-cloud-firestore's private parts that ``push365.store`` uses.

The client's public API builds a proto-plus object per value written and per document read,
its channel is made where no option can be added to it, and its per-method retry defaults live
in the generated transport: ``push365.store`` writes and reads raw protobuf on the client's own
channel (a fifth of the CPU), adds its options to that channel, and bounds every call.
``tests/integration/test_store_writes.py`` and ``test_store_reads.py`` check the raw paths
write and read what the client's own do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.cloud import firestore
from google.cloud.firestore_v1.services.firestore import client as gapic
from google.cloud.firestore_v1.services.firestore.transports.grpc import FirestoreGrpcTransport

DISTRIBUTION = "google-cloud-firestore"
CHECKED_AGAINST = "2.34.1"
USES = (
    "WriteBatch._add_write_pbs, DocumentReference._document_path, DocumentReference._client, "
    "Query._client, Query._parent._parent_info, Query._to_protobuf, Client._rpc_metadata, "
    "Client._database_string, Client._firestore_api (its _transport and _wrapped_methods), "
    "Client._firestore_api_helper, Client._emulator_channel, Client._emulator_host, "
    "firestore_v1._helpers.decode_value"
)

EMULATOR_OPTIONS: Sequence[tuple[str, Any]] = (
    ("Authorization", "Bearer owner"),
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
)
"""The options of the library's own emulator channel (``Client._emulator_channel``): its token
("owner", as without credentials) and unlimited message sizes."""


def add_write_pbs(batch: Any, writes: Sequence[Any]) -> None:
    """Add ready-made ``Write`` messages to ``batch`` (``WriteBatch._add_write_pbs``, what its
    own ``update``/``set`` end with): ``store.add_update`` builds them from raw protobuf."""
    batch._add_write_pbs(list(writes))


def document_path(reference: Any) -> str:
    """The full resource name of a document (``DocumentReference._document_path``), as a raw
    write or batch read names it."""
    path: str = reference._document_path
    return path


def client_of(reference: Any) -> firestore.Client:
    """The client a document reference or query was made by (``._client``; the public
    ``DocumentReference.parent`` chain does not lead to it)."""
    client: firestore.Client = reference._client
    return client


def query_request(query: Any) -> tuple[str, Any]:
    """A query's parent resource and its ``StructuredQuery`` as raw protobuf, what its own
    ``stream()`` sends (``Query._parent._parent_info``, ``Query._to_protobuf()._pb``)."""
    parent, _ = query._parent._parent_info()
    return parent, query._to_protobuf()._pb


def rpc_metadata(client: firestore.Client) -> Any:
    """The metadata the client sends with every call (``Client._rpc_metadata``: the database's
    routing header)."""
    return client._rpc_metadata


def database_string(client: firestore.Client) -> str:
    """``projects/{project}/databases/{database}`` (``Client._database_string``)."""
    name: str = client._database_string
    return name


def grpc_channel(client: firestore.Client) -> grpc.Channel:
    """The client's own gRPC channel (``Client._firestore_api._transport.grpc_channel``), made
    on first use: raw reads go on it, with its options, credentials and interceptors."""
    channel: grpc.Channel = client._firestore_api._transport.grpc_channel
    return channel


def open_channel(client: firestore.Client) -> None:
    """Make the client's channel now rather than on its first call (``Client._firestore_api``)."""
    _ = client._firestore_api


def rewrap_methods(client: firestore.Client, wrap: Callable[[Any], Any]) -> None:
    """Replace each RPC's wrapped method in the client's generated transport with
    ``wrap(method)`` (``transport._wrapped_methods``): the one place the per-method retry and
    timeout defaults live."""
    transport = client._firestore_api._transport
    transport._wrapped_methods = {method: wrap(method) for method in transport._wrapped_methods}


def decode_value(value: Any) -> Any:
    """A raw ``Value``'s Python value as the client decodes it (``_helpers.decode_value``), for
    the kinds ``store`` does not decode itself (maps, arrays, bytes, references, geo points)."""
    from google.cloud.firestore_v1 import _helpers
    from google.cloud.firestore_v1.types import document as document_types

    return _helpers.decode_value(document_types.Value.wrap(value), None)


class ChannelledClient(firestore.Client):
    """``firestore.Client`` whose channel a subclass makes: ``transport_class`` makes the
    production channel (its ``create_channel``), ``emulator_channel`` the emulator's.

    Overrides ``Client._firestore_api`` (to pass ``transport_class`` to the library's own
    ``_firestore_api_helper``) and ``Client._emulator_channel``: the library takes no channel
    options or channel factory."""

    transport_class: type[FirestoreGrpcTransport] = FirestoreGrpcTransport

    def emulator_channel(self, host: str) -> grpc.Channel:
        """The channel to the emulator at ``host`` (by default the library's own)."""
        return grpc.insecure_channel(host, options=list(EMULATOR_OPTIONS))

    @property
    def _firestore_api(self) -> Any:
        return self._firestore_api_helper(self.transport_class, gapic.FirestoreClient, gapic)

    def _emulator_channel(self, transport: Any) -> Any:
        host = self._emulator_host
        assert host is not None  # the library calls this only with an emulator host
        return self.emulator_channel(host)
