"""The Firestore indexes and TTL policies the code's queries need, derived from the code.

``python -m push365.indexes`` prints them as the JSON ``infra/firestore_indexes.json`` holds; a test
fails when the two differ, so a new query cannot ship without its index.
"""

from __future__ import annotations

import json
from typing import Any

from push365.daily.counts import REASONS, WAITS
from push365.fanout.repository import UNINDEXED_FIELDS
from push365.retention import TTL_FIELD
from push365.retention.rules import retention_rules
from push365.store import (
    BATCHES,
    DAILY,
    DEDUP,
    NOTIFICATIONS,
    QUOTAS,
    RECEIPTS,
    SIGNUP_CODES,
    SUBSCRIPTIONS,
    THROTTLES,
)
from push365.subscriptions.repository import ACTIVE_DEVICES_QUERY_FIELDS

TTL_COLLECTIONS = (
    SUBSCRIPTIONS,
    NOTIFICATIONS,
    RECEIPTS,
    BATCHES,
    DEDUP,
    SIGNUP_CODES,
    THROTTLES,
    QUOTAS,
    DAILY,
)
"""Collections whose purgeable documents carry ``TTL_FIELD``. Not organizations: TTL deletes a
document without its subcollections, and an erased organization's marker must stay until purge
has deleted everything under it. Not ``token_owners``: an entry lives exactly as long as its
active subscription (which has no TTL either), deleted in the same commit as it ends; erasing an
organization finds its entries by an equality on ``organization_id`` (a single-field index
Firestore keeps by default)."""


def required_indexes() -> dict[str, Any]:
    """Composite indexes, collection-group single-field indexes, and TTL fields."""
    # Retention's range queries run over collection groups: each needs that scope's index.
    rules = retention_rules(90)
    field_indexes = [
        {"collection": rule.collection, "field": rule.field, "query_scope": "COLLECTION_GROUP"}
        for rule in rules
        if not rule.top_level and rule.status is None
    ]
    composite = [
        {
            "collection": SUBSCRIPTIONS,
            "query_scope": "COLLECTION",
            "fields": list(ACTIVE_DEVICES_QUERY_FIELDS),
        }
    ] + [
        # A rule that also filters on status: one composite index over the collection group.
        {
            "collection": rule.collection,
            "query_scope": "COLLECTION_GROUP",
            "fields": ["status", rule.field],
        }
        for rule in rules
        if rule.status is not None
    ]
    return {
        "ttl_field": TTL_FIELD,
        "ttl_collections": list(TTL_COLLECTIONS),
        "collection_group_field_indexes": field_indexes,
        "composite_indexes": composite,
        # Large values no query filters on: indexing them would only cost every write.
        "unindexed_fields": [{"collection": BATCHES, "field": name} for name in UNINDEXED_FIELDS]
        + [{"collection": DAILY, "field": name} for name in (WAITS, REASONS)],
    }


if __name__ == "__main__":
    print(json.dumps(required_indexes(), indent=2))
