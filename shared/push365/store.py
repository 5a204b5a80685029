"""The Firestore client and the document layout, named once.

Layout (every tenant's data lives under its organization document)::

    organizations/{organization_id}
    organizations/{organization_id}/users/{systemuser_id}
    organizations/{organization_id}/subscriptions/{sha256(instance_id)}
    organizations/{organization_id}/notifications/{notification_id}
    organizations/{organization_id}/notifications/{notification_id}/deliveries/{device_id}
    organizations/{organization_id}/notifications/{notification_id}/batches/{batch}
    organizations/{organization_id}/dedup/{sha256(dedup key)}
    signup_codes/{sha256(code)}
    throttles/{sha256(scope)}-{window}
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from google.cloud import firestore

from push365.settings import get_settings

ORGANIZATIONS = "organizations"
USERS = "users"
SUBSCRIPTIONS = "subscriptions"
NOTIFICATIONS = "notifications"
DELIVERIES = "deliveries"
BATCHES = "batches"
DEDUP = "dedup"
SIGNUP_CODES = "signup_codes"
THROTTLES = "throttles"

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


def add_sets(batch: Any, documents: Sequence[tuple[Any, dict[str, Any]]]) -> None:
    """``batch.set(reference, fields)`` for many flat documents at once, at a fifth of the
    client's CPU per document (its encoder builds a proto-plus object per field; this builds
    the same ``Write`` from the raw protobuf types; ``tests/unit/test_store_encoding.py`` checks
    they are equal). Values: ``None``, ``bool``, ``int``, ``str`` and aware ``datetime``; any
    other value goes through the client's own ``set``."""
    from google.cloud.firestore_v1.types import document as document_types
    from google.cloud.firestore_v1.types import write as write_types

    raw_write, raw_document = write_types.Write.pb(), document_types.Document.pb()
    writes: list[Any] = []
    for reference, fields in documents:
        try:
            encoded = {name: _value(value) for name, value in fields.items()}
        except TypeError:
            batch._add_write_pbs(writes)  # in order
            writes = []
            batch.set(reference, fields)
            continue
        raw = raw_write(update=raw_document(name=reference._document_path, fields=encoded))
        writes.append(write_types.Write.wrap(raw))
    batch._add_write_pbs(writes)


def _value(value: Any) -> Any:
    from google.cloud.firestore_v1.types import document as document_types

    raw_value = document_types.Value.pb()
    if value is None:
        return raw_value(null_value=0)
    if isinstance(value, bool):
        return raw_value(boolean_value=value)
    if isinstance(value, int):
        return raw_value(integer_value=value)
    if isinstance(value, str):
        return raw_value(string_value=value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        seconds = calendar.timegm(value.utctimetuple())
        return raw_value(timestamp_value={"seconds": seconds, "nanos": value.microsecond * 1000})
    raise TypeError("not a flat value")


@lru_cache(maxsize=1)
def firestore_client() -> firestore.Client:
    """The process-wide client, created on first use (``FIRESTORE_EMULATOR_HOST`` is honoured).

    Every call it makes without a retry and timeout of its own is bounded by
    ``PUSH365_STORE_TIMEOUT_SECONDS`` (see :func:`bound_every_call`)."""
    client = firestore.Client(project=get_settings().project_id)
    bound_every_call(client, get_settings().store_timeout_seconds)
    return client


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
    transport = client._firestore_api._transport
    transport._wrapped_methods = {
        method: gapic_v1.method.wrap_method(  # type: ignore[no-untyped-call]
            method, default_retry=bounded_retry(seconds), default_timeout=seconds
        )
        for method in transport._wrapped_methods
    }


def organization_ref(client: firestore.Client, organization_id: str) -> firestore.DocumentReference:
    """The document of one organization."""
    return client.collection(ORGANIZATIONS).document(organization_id)


def delete_organization_tree(client: firestore.Client, organization_id: str) -> dict[str, int]:
    """Delete everything under an organization, then its document; counts per kind.

    Children go before their parent and the organization document goes last, so an interrupted
    run leaves the organization's marker in place for the next one to finish.
    """
    organization = organization_ref(client, organization_id)
    counts = {USERS: 0, SUBSCRIPTIONS: 0, NOTIFICATIONS: 0, DELIVERIES: 0, BATCHES: 0, DEDUP: 0}
    for notifications in _id_pages(organization.collection(NOTIFICATIONS)):
        for notification in notifications:
            for kind in (DELIVERIES, BATCHES):
                for page in _id_pages(notification.collection(kind)):
                    counts[kind] += _delete_all(client, page)
        counts[NOTIFICATIONS] += _delete_all(client, notifications)
    for name in (SUBSCRIPTIONS, USERS, DEDUP):
        for page in _id_pages(organization.collection(name)):
            counts[name] += _delete_all(client, page)
    organization.delete()
    return counts


def _id_pages(
    collection: firestore.CollectionReference,
) -> Iterator[list[firestore.DocumentReference]]:
    # Re-query after each page is deleted: deleted documents drop out, memory stays bounded.
    while page := [
        snapshot.reference for snapshot in collection.select([]).limit(BATCH_LIMIT).get()
    ]:
        yield page


def _delete_all(client: firestore.Client, references: list[firestore.DocumentReference]) -> int:
    batch = client.batch()
    for reference in references:
        batch.delete(reference)
    batch.commit()
    return len(references)
