"""Every purge rule's query can run in production: Firestore answers a range query only on an
indexed field, and the emulator, which never needs an index, cannot show a missing one.

infra/ turns off the indexes of the TTL field on every TTL collection and of a batch's large
fields (``infra/firestore_indexes.json``, from ``push365.indexes``); a rule on one of those
fields would make purge answer 503 every day, and stop the rules after it (the unfinished
erasures' among them).
"""

from __future__ import annotations

import json

from push365.retention.rules import retention_rules
from tests.conftest import REPO


def _declared() -> dict[str, object]:
    return dict(json.loads((REPO / "infra" / "firestore_indexes.json").read_text()))


def _unindexed(declared: dict[str, object]) -> set[tuple[str, str]]:
    ttl_field = str(declared["ttl_field"])
    off = {(str(c), ttl_field) for c in declared["ttl_collections"]}  # type: ignore[attr-defined]
    off |= {(f["collection"], f["field"]) for f in declared["unindexed_fields"]}  # type: ignore[attr-defined]
    return off


def test_no_purge_rule_queries_a_field_whose_indexes_infra_turns_off() -> None:
    off = _unindexed(_declared())

    queried = {(rule.collection, rule.field): rule.kind for rule in retention_rules(90)}

    assert {kind for where, kind in queried.items() if where in off} == set()


def test_every_collection_group_rule_has_its_index_declared() -> None:
    declared = _declared()
    indexed = {(f["collection"], f["field"]) for f in declared["collection_group_field_indexes"]}  # type: ignore[attr-defined]
    indexed |= {
        (c["collection"], c["fields"][-1])
        for c in declared["composite_indexes"]  # type: ignore[attr-defined]
        if c["query_scope"] == "COLLECTION_GROUP"
    }

    missing = [
        rule.kind
        for rule in retention_rules(90)
        if not rule.top_level and (rule.collection, rule.field) not in indexed
    ]

    assert missing == []


def test_the_check_sees_a_rule_on_the_ttl_field() -> None:
    # (the rule purge had for the throttles, on expire_at: refused)
    declared = _declared()

    assert ("throttles", declared["ttl_field"]) in _unindexed(declared)
