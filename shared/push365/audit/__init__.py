"""The audit log: one structured record per API call, built from an allow-list of fields.

The privacy policy: log records keep identifying parameters, status, response statistics, fault
reasons and duration; request bodies are dropped. Here nothing from a request can reach a log line
except through a named field of :class:`AuditRecord`, so a new field stays out until someone adds
it on purpose.
"""

from push365.audit.record import (
    AuditRecord,
    begin,
    emit,
    end,
    log_unhandled,
    note_counts,
    note_fault,
)

__all__ = ["AuditRecord", "begin", "emit", "end", "log_unhandled", "note_counts", "note_fault"]
