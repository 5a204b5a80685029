"""google-cloud-logging's private parts that ``push365.audit.record`` uses.

The structured-log handler copies the request's full URL into one "instrumentation" entry (a
query string can hold an organization key) and copies the caller's trace header into every line
at any length: the audit record gives the request fields itself, from the library's own reading
of the request, and never lets that entry be written.
"""

from __future__ import annotations

from typing import Any

DISTRIBUTION = "google-cloud-logging"
CHECKED_AGAINST = "3.17.0"
USES = "logging_v2.handlers._helpers.get_request_data and logging_v2._instrumentation_emitted"


def request_trace() -> tuple[str | None, str | None, bool | None]:
    """The current request's trace id, span id and sampled flag, as the library reads them from
    Flask's or Django's request headers (``handlers._helpers.get_request_data``)."""
    from google.cloud.logging_v2.handlers._helpers import get_request_data

    _, trace, span, sampled = get_request_data()
    return trace, span, sampled


def skip_instrumentation_entry() -> None:
    """Mark the handler's one-off "instrumentation" entry as written, so that it never is
    (``logging_v2._instrumentation_emitted``).

    Raises:
        RuntimeError: the library changed: the flag is no longer where it was.
    """
    import google.cloud.logging_v2

    module: Any = google.cloud.logging_v2
    if not hasattr(module, "_instrumentation_emitted"):
        raise RuntimeError("google-cloud-logging changed: review push365.seams.cloud_logging")
    module._instrumentation_emitted = True
