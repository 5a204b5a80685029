"""P2 (Privacy), by the class of place: every Firestore collection the code writes or reads, found
in the code (not listed here), has a bound.

The collections are discovered from the code's AST: every ``.collection(...)`` and
``.collection_group(...)`` call under ``shared/push365`` and ``functions/`` (a path's collection
names: its 1st, 3rd, ... argument), each argument resolved to its text (a literal, a module-level
constant such as ``store.NOTIFICATIONS``, or a loop over such constants). A call whose argument
cannot be resolved must be reviewed here (``REVIEWED_DYNAMIC``), so a new call site cannot hide a
collection. A store the use cases filled is listed too, and must hold no collection the code
walk missed.

A bound is an entry in the policy's data file (``shared/push365/privacy/policy_fields.json``,
``collections.<name>.retention``): how its documents end (``by``) and until when (``until``).
Each way is checked against the code:

- ``ttl``: the collection is one of ``push365.indexes.TTL_COLLECTIONS`` (Firestore's TTL policy on
  ``expire_at``, which the policy lists as a field), with ``ttl_max_days`` (the store check holds
  every document's TTL to it);
- ``purge``: a rule of ``push365.retention.rules`` deletes its documents daily;
- ``erasure``: deleted with its organization (or its user) by the erasure;
- ``with_subscription``: written and deleted in the same commit as an active subscription;
- ``stored_on``: records kept on another collection's documents (they end with those).

A new collection therefore needs a constant next to the others (``push365/store.py``), an entry
in the data file with its fields and its ``retention``, and, for ``ttl``, its name in
``TTL_COLLECTIONS`` (or, for ``purge``, a retention rule).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from push365.indexes import TTL_COLLECTIONS
from push365.retention import TTL_FIELD
from push365.retention.rules import retention_rules
from tests.conftest import REPO
from tests.privacy.conftest import Services, every_document, policy

SOURCES = [REPO / "shared" / "push365", REPO / "functions"]
WAYS = {"ttl", "purge", "erasure", "with_subscription", "stored_on"}

# Calls whose collection is data, reviewed one by one: where its values come from.
REVIEWED_DYNAMIC = {
    "shared/push365/retention/purge.py:due_pages": (
        "rule.collection: a retention rule's collection (every rule's is checked below)"
    ),
}


@cache
def constants() -> dict[str, set[str]]:
    """Every module-level ``NAME = "text"`` of the code: name -> its texts."""
    found: dict[str, set[str]] = {}
    for path in python_files():
        for node in ast.parse(path.read_text()).body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found.setdefault(target.id, set()).add(node.value.value)
    return found


def python_files() -> list[Path]:
    return sorted(p for source in SOURCES for p in source.rglob("*.py"))


def _resolve(argument: ast.expr, loops: dict[str, list[ast.expr]]) -> set[str] | None:
    """The texts an argument can be, or None when the code does not say."""
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return {argument.value}
    if isinstance(argument, ast.Name):
        if argument.id in loops:
            texts: set[str] = set()
            for item in loops[argument.id]:
                resolved = _resolve(item, {})
                if resolved is None:
                    return None
                texts |= resolved
            return texts
        known = constants().get(argument.id)
        return set(known) if known and len(known) == 1 else None
    return None


def _loops(function: ast.AST) -> dict[str, list[ast.expr]]:
    """``for name in (A, B, ...)`` inside a function: name -> the items it runs over."""
    loops: dict[str, list[ast.expr]] = {}
    for node in ast.walk(function):
        if (
            isinstance(node, ast.For)
            and isinstance(node.target, ast.Name)
            and isinstance(node.iter, ast.Tuple | ast.List)
        ):
            loops.setdefault(node.target.id, []).extend(node.iter.elts)
    return loops


def _calls(tree: ast.AST) -> Iterator[tuple[str, ast.Call, dict[str, list[ast.expr]]]]:
    """(enclosing function's name, call, its loops) for every collection call."""
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module):
            continue
        loops = _loops(function)
        body = function.body if not isinstance(function, ast.Module) else []
        name = getattr(function, "name", "<module>")
        for statement in body if body else []:
            for node in ast.walk(statement):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("collection", "collection_group")
                    and node.args
                ):
                    yield name, node, loops


@cache
def discovered() -> tuple[dict[str, set[str]], dict[str, int]]:
    """(collection name -> where it is used, reviewed-or-not dynamic site -> how many calls)."""
    names: dict[str, set[str]] = {}
    dynamic: dict[str, int] = {}
    for path in python_files():
        relative = path.relative_to(REPO).as_posix()
        seen: set[int] = set()
        for function, call, loops in _calls(ast.parse(path.read_text())):
            if id(call) in seen:
                continue  # (a nested function's call, met again from its outer function)
            seen.add(id(call))
            assert isinstance(call.func, ast.Attribute)
            arguments = call.args if call.func.attr == "collection" else call.args[:1]
            for argument in arguments[0::2]:
                texts = _resolve(argument, loops)
                if texts is None:
                    site = f"{relative}:{function}"
                    dynamic[site] = dynamic.get(site, 0) + 1
                    continue
                for text in texts:
                    names.setdefault(text, set()).add(f"{relative}:{call.lineno}")
    return names, dynamic


def test_the_walk_finds_the_collections_the_code_is_known_to_use() -> None:
    names, _ = discovered()

    # (a check of the walk itself: the store's own constants, in their different call shapes)
    assert {"organizations", "users", "subscriptions", "notifications", "batches"} <= set(names)
    assert {"receipts", "dedup", "signup_codes", "throttles", "token_owners"} <= set(names)


def test_every_call_whose_collection_the_code_does_not_name_is_reviewed() -> None:
    _, dynamic = discovered()

    assert set(dynamic) == set(REVIEWED_DYNAMIC), (
        "a .collection()/.collection_group() call whose name is not a literal, a module constant "
        "or a loop over those: name the collection with a constant, or review the call"
    )


def bound_of(collection: str) -> dict[str, Any] | None:
    entry = policy()["collections"].get(collection)
    return None if entry is None else entry.get("retention")


def problems(collection: str) -> list[str]:
    """Why a collection's bound does not hold (empty: it holds)."""
    entry = policy()["collections"].get(collection)
    if entry is None:
        return ["not in the policy's data file (policy_fields.json collections)"]
    retention = entry.get("retention")
    if not isinstance(retention, dict):
        return ["no retention in the policy's data file"]
    found = []
    ways = set(retention.get("by") or ())
    if not ways or not ways <= WAYS:
        found.append(f"retention.by must name ways among {sorted(WAYS)}")
    if not str(retention.get("until") or "").strip():
        found.append("retention.until: the documented bound, in words")
    ruled = {rule.collection for rule in retention_rules(90)}
    if "ttl" in ways:
        if collection not in TTL_COLLECTIONS:
            found.append("by ttl, but not in push365.indexes.TTL_COLLECTIONS")
        if TTL_FIELD not in entry["fields"]:
            found.append(f"by ttl, but {TTL_FIELD} is not one of its fields")
        days = retention.get("ttl_max_days")
        if not isinstance(days, int | float) or days <= 0:
            found.append("by ttl, without ttl_max_days")
    elif collection in TTL_COLLECTIONS:
        found.append("in TTL_COLLECTIONS: retention.by must say ttl")
    if "purge" in ways and collection not in ruled:
        found.append("by purge, but no rule of push365.retention.rules deletes it")
    if collection in ruled and "purge" not in ways:
        found.append("a retention rule deletes it: retention.by must say purge")
    if "stored_on" in ways and not entry.get("stored_on"):
        found.append("by stored_on, without the collection it is stored on")
    return found


def test_every_collection_the_code_uses_has_a_bound() -> None:
    names, _ = discovered()

    unbounded = {name: problems(name) for name in sorted(names) if problems(name)}

    assert unbounded == {}, {name: (p, sorted(names[name])) for name, p in unbounded.items()}


def test_every_collection_of_the_policy_has_a_bound_and_every_rule_a_collection() -> None:
    listed = policy()["collections"]

    assert {name: problems(name) for name in listed if problems(name)} == {}
    assert {rule.collection for rule in retention_rules(90)} <= set(listed)
    assert set(TTL_COLLECTIONS) <= set(listed)


def test_a_collection_without_a_bound_is_told_apart() -> None:
    # (the rule itself: a collection the data file does not list, or lists without a way)
    assert problems("outbox") == ["not in the policy's data file (policy_fields.json collections)"]
    assert problems("organizations") == []
    assert problems("throttles") == []


@pytest.mark.emulator
def test_the_store_the_use_cases_fill_holds_only_collections_the_walk_found(
    services: Services,
) -> None:
    from tests.privacy.test_audit import used_store

    used_store(services)

    stored = set()
    for path, _ in every_document(services.client):
        parts = path.split("/")
        stored |= set(parts[0::2])
    names, _ = discovered()
    assert stored
    assert stored <= set(names), "a collection the code walk missed: extend the walk"
