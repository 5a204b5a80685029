"""The reconciler: no send stays unfinished once no message for it can come any more.

A send's content lives only in its Pub/Sub messages (the privacy policy keeps it out of every
store), so a message that is lost (a subscription deleted and recreated, a message that expired
on the subscription, a publish that never happened) cannot be sent again from anything stored.
What the reconciler does instead, every few minutes (Cloud Scheduler; ``make dev`` on its own):

- counts the sends that made no progress for ``stall`` (their record not written: no plan step,
  no batch finished), for the operators' alert and dashboards: nothing is changed while a
  message for them may still come (Pub/Sub retries for up to the subscription's retention);
- once a send is older than the subscription's message retention, no message for it can come
  any more: what has no outcome is recorded failed, reason ``lost`` (a plan never made: the
  send failed as a whole), counted as dead-lettered and alerted on. Its status then ends
  ``sent`` (its batches all done) or ``failed`` instead of staying ``queued`` or ``delivering``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from push365.audit import note_counts
from push365.fanout.repository import FanoutRepository
from push365.fanout.worker import DeliveryWorker
from push365.model import utc_now

LOST = "lost"
"""The failure reason of a device whose send's messages can no longer come."""


@dataclass(frozen=True)
class ReconcilePolicy:
    """What counts as stalled, and when nothing can come any more."""

    stall: timedelta
    message_retention: timedelta
    # How far back it looks: a reconciler that did not run for this long leaves older sends
    # as they are (they are purged with their retention all the same).
    lookback: timedelta


@dataclass
class ReconcileReport:
    """What one run found and did."""

    unfinished: int = 0
    stalled: int = 0
    given_up: int = 0  # sends recorded as lost
    batches_given_up: int = 0

    def counts(self) -> dict[str, int]:
        """The counts, as the answer and the audit record carry them."""
        return {
            "unfinished": self.unfinished,
            "stalled": self.stalled,
            "given_up": self.given_up,
            "batches_given_up": self.batches_given_up,
        }


class Reconciler:
    """Finds sends that cannot finish any more and records them as such."""

    def __init__(
        self,
        fanout: FanoutRepository,
        worker: DeliveryWorker,
        policy: ReconcilePolicy,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._fanout = fanout
        self._worker = worker
        self._policy = policy
        self._clock = clock

    def run(self) -> ReconcileReport:
        """One pass over every organization's recent sends."""
        now = self._clock()
        report = ReconcileReport()
        policy = self._policy
        for send in self._fanout.unfinished(now - policy.lookback, now - policy.stall):
            report.unfinished += 1
            if send.updated_at > now - policy.stall:
                continue  # it made progress lately
            report.stalled += 1
            if now < send.created_at + policy.message_retention:
                continue  # a message for it may still come: nothing is changed
            org, nid = send.organization_id, send.notification_id
            report.given_up += 1
            if not send.planned:
                self._fanout.fail_plan(org, nid, now)
            for batch in self._fanout.open_batches(org, nid):
                report.batches_given_up += self._worker.give_up(org, nid, batch, LOST)
        note_counts(report.counts())
        return report
