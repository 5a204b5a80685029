"""grpcio's private parts that ``push365.store`` uses.

On a channel with ``SingleThreadedUnaryStream`` no thread of gRPC's takes a call's events: the
reader does, as it reads, and a call stays in the channel until every event it owes has been
taken (see ``push365.store.finishing_streams``). Finishing a stream its reader left means taking
those events, which only the call's private state and method do. A gRPC that renames them fails
``tests/unit/test_seams.py`` (the version) and ``tests/integration/test_store_memory.py``.
"""

from __future__ import annotations

from typing import Any

DISTRIBUTION = "grpcio"
CHECKED_AGAINST = "1.85.4"
USES = "_SingleThreadedRendezvous._state (its .due) and ._consume_next_event"


def is_single_threaded_stream(call: Any) -> bool:
    """Whether ``call`` is a single-threaded stream (gRPC's ``_SingleThreadedRendezvous``: it
    has ``_state`` and ``_consume_next_event``), which only its reader finishes."""
    return hasattr(call, "_consume_next_event") and hasattr(call, "_state")


def finish(call: Any) -> None:
    """Cancel ``call`` unless it has ended, then take the events its operations still owe
    (``_state.due``, ``_consume_next_event``), so that gRPC frees it. A cancelled call's events
    come at once, an ended call's are already there; one gRPC ended itself (an answer it could
    not decode) is still live on the wire and owes them by its deadline, which every store call
    has."""
    state = call._state
    if not state.due:
        return
    call.cancel()
    while state.due:
        call._consume_next_event()
