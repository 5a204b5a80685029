"""Every query the domain library streams (``.stream``, or ``.get`` of a query) passes its own
retry.

With the client's default retry, ``Query.stream`` looks the retry up on the raw gRPC stub when a
stream fails after its first document and raises ``AttributeError: '_UnaryStreamMultiCallable'
object has no attribute '_retry'`` instead of the store's error (googleapis/python-firestore#596,
still in 2.x): the caller would answer 500, not 503, and the log would hide the cause.
"""

from __future__ import annotations

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "shared" / "push365"


QUERY_METHODS = frozenset(
    {"where", "select", "order_by", "limit", "limit_to_last", "offset", "start_after"}
    | {"start_at", "end_at", "end_before", "collection", "collection_group"}
    | {"count", "sum", "avg"}  # aggregations: the same bug (firestore_v1/aggregation.py)
)


def _is_query(node: ast.AST) -> bool:
    """Whether an expression plainly builds a query (``....where(...)``, ``a if c else b``)."""
    if isinstance(node, ast.IfExp):
        return _is_query(node.body) or _is_query(node.orelse)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in QUERY_METHODS
    )


def streams_without_a_retry(source: str) -> list[int]:
    """The lines of ``.stream(...)`` calls, and ``.get(...)`` calls of a query, that pass
    neither ``retry=`` nor ``**kwargs``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and (
                node.func.attr == "stream"
                or (node.func.attr == "get" and _is_query(node.func.value))
            )
            and not any(k.arg in {"retry", None} for k in node.keywords)
        ):
            lines.append(node.lineno)
    return lines


def test_the_check_finds_a_stream_without_a_retry() -> None:
    source = (
        "a = q.stream()\n"
        "b = q.stream(**bounded)\n"
        "c = q.stream(retry=r, timeout=1)\n"
        "d = c.where(filter=f).limit(5).get()\n"
        "e = (q.start_after(s) if s else q).get()\n"
        "f = document.get()\n"
        "g = q.limit(5).get(retry=r)\n"
        "h = client.collection(name).get()\n"
        "i = q.count().get()\n"
        "j = client.collection(name).document(d).get()\n"
    )

    assert streams_without_a_retry(source) == [1, 4, 5, 8, 9]


def test_every_query_stream_of_the_library_passes_its_own_retry() -> None:
    found = {
        f"{path.relative_to(LIBRARY)}:{line}"
        for path in sorted(LIBRARY.rglob("*.py"))
        for line in streams_without_a_retry(path.read_text())
    }

    assert found == set()
