"""``deliver``'s use cases: turn a plan into batches, and send one batch, each device once.

Exactly once per device under Pub/Sub's at-least-once delivery:

- A batch is held by one worker at a time (a lease, renewed at every checkpoint), and every
  write to it is fenced, so a worker that lost it cannot record over the one that took it.
- Devices are claimed (``inflight``) before they are sent and recorded after; a redelivered batch
  sends only devices with no recorded outcome. Messages FCM accepted are never sent again
  because another message of the batch failed.
- A device whose outcome is unknown (a request timed out, a worker died between claim and
  record) is re-sent at most once, with the notification id as the web push ``Topic`` (and the
  service worker's ``tag``), so the push service and the browser show it once; such re-sends
  are counted apart (``resent``).
- Transient FCM failures are retried by Pub/Sub redelivery after a backoff (``not_before``),
  never by sleeping in a request, until the retry horizon; then they are recorded as failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from push365.audit import note_counts
from push365.fanout.model import BatchState, FanoutMessage, Kind, Verdict
from push365.fanout.publisher import FanoutPublisher
from push365.fanout.repository import FanoutRepository, LeaseLost, PlanLease, Taken
from push365.fcm.model import Outcome, PushGateway, PushMessage, SendResult, WebPush
from push365.model import utc_now
from push365.notifications.deliveries import Delivery
from push365.notifications.receipts import device_id, new_receipt
from push365.retention import unsubscribed_purge_by
from push365.subscriptions.model import Device, UnsubscribeReason
from push365.subscriptions.repository import SubscriptionRepository

if TYPE_CHECKING:
    from push365.mail.notices import AdminNotices

_RETIRE_REASONS = {"unregistered": UnsubscribeReason.UNREGISTERED}
_AUTH_ERRORS = frozenset({"third_party_auth", "sender_id_mismatch"})
SUPPRESS_RETIREMENT_FROM = 10
"""Devices a batch must have tried before "more than half invalid" reads as a configuration error
(one dead token of a one-device send is just a dead token)."""


@dataclass
class _Attempt:
    """What one attempt at a batch gathered across its chunks."""

    retire: dict[UnsubscribeReason, list[str]] = field(default_factory=dict)
    retry_after: float = 0.0
    auth: int = 0
    out_of_time: bool = False  # some of the chunk was not started before its deadline


@dataclass(frozen=True)
class FanoutPolicy:
    """Limits the fan-out works within."""

    batch_size: int
    chunk_size: int
    lease: timedelta
    retry_horizon: timedelta
    first_backoff: timedelta
    max_backoff: timedelta
    retention: timedelta
    unsubscribe_retention_days: int
    receipt_url: str | None = None
    # One plan request stores batches this long, then hands on to a continuation message.
    plan_slice_seconds: float = 30.0
    # A subscription its browser has not refreshed for this long is stale: not sent to.
    stale_after: timedelta | None = None
    # The time budget (docs/api/deliver.md; push365.fanout.budget checks its inequalities).
    # One chunk's requests all end within this (those not started by then never start).
    chunk_budget_seconds: float = 20.0
    # No request starts later than this after the handler began; then it records what it
    # knows, hands the rest to a continuation message and answers.
    handler_seconds: float = 30.0
    # A chunk starts only with at least this long left before the handler's deadline (one FCM
    # request's timeout: a shorter window would cut requests that would have been answered).
    min_chunk_seconds: float = 10.0
    # How far two workers' clocks may disagree: sending ends this long before the lease does.
    clock_skew_seconds: float = 2.0
    # Re-sends are claimed and sent this many at a time: the connections to FCM (all start at
    # once).
    resend_window: int = 16


class DeliveryWorker:
    """Handles one fan-out message."""

    def __init__(
        self,
        fanout: FanoutRepository,
        subscriptions: SubscriptionRepository,
        gateway: PushGateway,
        publisher: FanoutPublisher,
        policy: FanoutPolicy,
        clock: Callable[[], datetime] = utc_now,
        notices: AdminNotices | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._fanout = fanout
        self._subscriptions = subscriptions
        self._gateway = gateway
        self._publisher = publisher
        self._policy = policy
        self._clock = clock
        self._notices = notices

    def handle(self, message: FanoutMessage, dead_lettered: bool = False) -> Verdict:
        """Do what the message asks; ``dead_lettered`` when Pub/Sub gave up on it.

        Raises:
            QueueUnavailable, google.api_core exceptions: the queue or the store did not answer
                (the caller answers Pub/Sub with a retry).
        """
        if message.kind is Kind.PLAN:
            return self._plan(message, dead_lettered)
        deadline = self._monotonic() + self._policy.handler_seconds
        return self._batch(message, dead_lettered, deadline)

    def give_up(self, organization_id: str, notification_id: str, batch: int, reason: str) -> bool:
        """Record what has no outcome in the batch as failed with ``reason``, as a dead letter
        is recorded (the reconciler: no message for it can come any more). False when it is done
        already, gone, or held by a worker right now."""
        now = self._clock()
        taken = self._fanout.take(
            organization_id,
            notification_id,
            batch,
            now,
            now + self._policy.lease,
            ignore_backoff=True,
        )
        if not isinstance(taken, BatchState):
            return False
        try:
            self._record_given_up(taken, reason)
        except LeaseLost:
            return False
        return True

    def _record_given_up(self, state: BatchState, reason: str) -> None:
        state.counts.dead_lettered = 1
        remaining = state.remaining()
        self._give_up(state, remaining, reason, self._active(state, remaining))
        self._fanout.finish(state)

    def _plan(self, message: FanoutMessage, dead_lettered: bool) -> Verdict:
        org, nid = message.organization_id, message.notification_id
        record = self._fanout.plan_record(org, nid)
        if record is None:
            return Verdict.ACK  # erased or purged meanwhile: nothing to send
        if dead_lettered and record.planned:
            # A late copy of a plan that went through: nothing failed (counted apart).
            note_counts({"dead_letter_ignored": 1})
            return Verdict.ACK
        if dead_lettered:
            self._fanout.fail_plan(org, nid, self._clock())
            self._alert(org, "A notification could not be planned and was given up.", 0, 0)
            return Verdict.ACK
        if record.planned:
            self._publish_batches(message, self._fanout.open_batches(org, nid), record.created_at)
            return Verdict.ACK
        started = self._monotonic()
        now = self._clock()
        expire_at = record.created_at + self._policy.retention
        lease = self._fanout.lease_plan(org, nid, now, now + self._policy.lease, expire_at)
        if lease is None:
            return Verdict.RETRY  # another worker is planning it: this copy comes back later
        if lease.batches:
            # An earlier planner stored these; it may have died before publishing them.
            self._publish_batches(message, self._fanout.open_batches(org, nid), record.created_at)
        devices: list[str] = []
        planned = 0
        try:
            ids = self._subscriptions.active_subscription_ids_after(
                org, message.recipients, lease.cursor
            )
            for sid in ids:
                devices.append(sid)
                if len(devices) < self._policy.batch_size:
                    continue
                # Each batch is stored, then published at once: sending starts while planning
                # goes on.
                lease = self._store_batch(message, lease, devices, record.created_at)
                planned += len(devices)
                devices = []
                if self._monotonic() - started >= self._policy.plan_slice_seconds:
                    # Long enough for one request: a continuation resumes after the cursor.
                    self._fanout.release_plan(lease, org, nid)
                    self._publisher.publish([message])
                    note_counts({"devices": planned, "batches": lease.batches})
                    return Verdict.ACK
            if devices:
                lease = self._store_batch(message, lease, devices, record.created_at)
                planned += len(devices)
            self._fanout.end_plan(lease, org, nid, self._clock())
        except LeaseLost:
            return Verdict.RETRY
        note_counts({"devices": planned, "batches": lease.batches})
        return Verdict.ACK

    def _store_batch(
        self, message: FanoutMessage, lease: PlanLease, devices: list[str], created_at: datetime
    ) -> PlanLease:
        org, nid = message.organization_id, message.notification_id
        now = self._clock()
        index = lease.batches
        expire_at = created_at + self._policy.retention
        lease = self._fanout.add_batch(
            lease, org, nid, devices, now, expire_at, now + self._policy.lease
        )
        self._publish_batches(message, [index], created_at)
        return lease

    def _publish_batches(
        self, message: FanoutMessage, batches: list[int], created_at: datetime
    ) -> None:
        if not batches:
            return
        self._publisher.publish(
            [
                FanoutMessage(
                    kind=Kind.BATCH,
                    organization_id=message.organization_id,
                    notification_id=message.notification_id,
                    content=message.content,
                    seal=message.seal,
                    batch=batch,
                    created_at=created_at,
                )
                for batch in batches
            ]
        )

    def _batch(self, message: FanoutMessage, dead_lettered: bool, deadline: float) -> Verdict:
        org, nid, index = message.organization_id, message.notification_id, message.batch or 0
        created_at = message.created_at
        if created_at is None:  # a message published before batches carried it
            record = self._fanout.plan_record(org, nid)
            if record is None:
                return Verdict.ACK
            created_at = record.created_at
        now = self._clock()
        # Past the horizon, devices that failed transiently are given up, not tried again.
        # (A notification erased or purged meanwhile has no batches: take finds it gone.)
        expired = now >= created_at + self._policy.retry_horizon
        taken = self._fanout.take(
            org, nid, index, now, now + self._policy.lease, ignore_backoff=expired or dead_lettered
        )
        if taken is Taken.GONE:
            if dead_lettered:
                note_counts({"dead_letter_ignored": 1})  # a late copy of a finished batch
            return Verdict.ACK
        if taken is Taken.BUSY:
            return Verdict.RETRY
        try:
            return self._send(message, taken, expired, dead_lettered, deadline)
        except LeaseLost:
            return Verdict.RETRY  # another worker holds it now; a later copy finds it done

    def _send(
        self,
        message: FanoutMessage,
        state: BatchState,
        expired: bool,
        dead_lettered: bool,
        deadline: float,
    ) -> Verdict:
        org = state.organization_id
        push = message.content.web_push(topic=state.notification_id)
        if dead_lettered:
            # Pub/Sub gave up on this batch: what has no outcome yet failed, counted as such.
            self._record_given_up(state, "dead_letter")
            # On the audit record too: operators alert on dead_lettered (monitoring.tf).
            note_counts({"devices": len(state.devices), **state.counts.as_dict()})
            return Verdict.ACK
        if expired:
            waiting = [d for d in state.remaining() if d in state.pending]
            self._give_up(state, waiting, "", self._active(state, waiting))
        remaining = state.remaining()
        # Re-sends first, in windows no larger than the connection pool: each window's requests
        # all start at once, right after its claim is stored, so a worker killed after the claim
        # has, all but surely, sent every re-send of it (failing their unknown outcomes loses
        # nothing), and a claimed re-send is never sent again (never a third copy). Then first
        # attempts in chunks, whose claim may hold devices a kill leaves unsent: they become
        # unknown and are re-sent, once.
        resends = [d for d in remaining if d in state.unknown]
        first = [d for d in remaining if d not in state.unknown]
        chunks = _split(resends, self._policy.resend_window) + _split(
            first, self._policy.chunk_size
        )
        outcome = _Attempt()
        # The outcomes of the chunk just sent, written with the next claim.
        recorded: list[Delivery] = []
        handed_on = False
        # When this worker's hold on the batch began (take() came after the handler started);
        # each claim renews it.
        leased_at = deadline - self._policy.handler_seconds
        for sids in chunks:
            if deadline - self._monotonic() < self._policy.min_chunk_seconds:
                handed_on = True  # too little time left for a chunk: a continuation goes on
                break
            # Unsubscribe and erasure are read just before each chunk is sent.
            devices, settled = self._prepare(state, sids, self._active(state, sids))
            sending = [d.subscription_id for d in devices]
            claimed: list[bool] = []

            def claim(
                sending: list[str] = sending,
                written: list[Delivery] = recorded + settled,
                claimed: list[bool] = claimed,
            ) -> None:
                # Claim before sending (with the outcomes of the chunk before: one write), which
                # also renews the lease and checks the fence: a worker that lost the batch stops
                # here, before sending anything.
                nonlocal leased_at
                state.claim(sending)
                at = self._monotonic()
                self._fanout.checkpoint(state, self._clock() + self._policy.lease, written)
                leased_at = at
                claimed.append(True)

            # Re-sends are claimed only once a connection is held for each (the gateway writes
            # them all the moment the claim is stored); first attempts are claimed first.
            resending = any(sid in state.unknown for sid in sending)
            if not resending:
                claim()
            # Every request of the chunk ends before the lease does (less the clocks' skew), within
            # the chunk's budget and the handler's deadline.
            send_by = min(
                self._monotonic() + self._policy.chunk_budget_seconds,
                leased_at + self._policy.lease.total_seconds() - self._policy.clock_skew_seconds,
                deadline,
            )
            recorded = (
                self._send_and_apply(
                    state, push, devices, outcome, send_by, claim if resending else None
                )
                if devices
                else []
            )
            if not claimed:
                recorded = settled + recorded  # never claimed: its settled outcomes still to write
            if outcome.out_of_time:
                handed_on = True  # what was not started goes on in a continuation
                break
        state.inflight = []
        retire, retry_after, auth_failures = outcome.retire, outcome.retry_after, outcome.auth
        self._retire(state, retire, auth_failures)
        # auth_failures: FCM rejected the project's credentials (operators' alert, monitoring.tf).
        note_counts(
            {
                "devices": len(state.devices),
                **state.counts.as_dict(),
                "auth_failures": auth_failures,
                "handed_on": int(handed_on),
            }
        )
        if handed_on:
            # What is known is recorded and the batch given back; a continuation message (a new
            # Pub/Sub delivery) takes it on at once. Not a failed attempt: the backoff of devices
            # waiting after a transient failure does not grow with it.
            state.attempts = max(state.attempts - 1, 0)
            self._fanout.release(state, recorded)
            self._publisher.publish([message])
            return Verdict.ACK
        waiting = [d for d in state.remaining() if d in state.pending]
        if waiting:
            state.not_before = self._clock() + self._backoff(state.attempts, retry_after)
            self._fanout.release(state, recorded)
            return Verdict.RETRY
        self._fanout.finish(state, recorded)
        tried = len(state.devices) - state.counts.skipped
        if state.counts.failed * 2 > tried and not auth_failures:
            self._alert(
                org,
                "More than half of the devices of a notification could not be reached.",
                tried,
                state.counts.failed,
            )
        return Verdict.ACK

    def _active(self, state: BatchState, sids: list[str]) -> dict[str, Device]:
        """Those of ``sids`` still subscribed (and not stale), as read now."""
        if not sids:
            return {}
        stale = self._policy.stale_after
        seen_since = self._clock() - stale if stale is not None else None
        return self._subscriptions.active_devices_by_id(state.organization_id, sids, seen_since)

    def _prepare(
        self, state: BatchState, sids: list[str], active: dict[str, Device]
    ) -> tuple[list[Device], list[Delivery]]:
        """The chunk's devices to send, and the outcomes settled without sending."""
        devices: list[Device] = []
        settled: list[Delivery] = []
        for sid in sids:
            device = active.get(sid)
            if device is None:
                # Unsubscribed or erased after the plan was made: not sent to.
                state.skip(sid)
            elif not state.may_send(sid):
                # Its re-send's outcome is unknown too: it may have been shown; not a third.
                state.give_up(sid)
                failed = SendResult(Outcome.FAILED, reason="unknown_outcome")
                settled.append(_delivery(device, failed, self._clock(), "", resent=True))
            else:
                devices.append(device)
        return devices, settled

    def _send_and_apply(
        self,
        state: BatchState,
        push: WebPush,
        devices: list[Device],
        attempt: _Attempt,
        deadline: float,
        claim: Callable[[], None] | None,
    ) -> list[Delivery]:
        """Send one chunk by ``deadline`` (claimed already, or by ``claim`` once a connection is
        held for each device); its final outcomes (the transient ones stay pending)."""
        messages = [self._message(state, push, d) for d in devices]
        results = self._send_chunk([m for m, _ in messages], deadline, claim)
        sent_at = self._clock()
        final: list[Delivery] = []
        for device, (_, receipt_hash), result in zip(devices, messages, results, strict=True):
            sid = device.subscription_id
            if not (result.outcome is Outcome.SENT or result.maybe_delivered):
                state.not_delivered(sid)
            if result.outcome is Outcome.RETRY and result.reason == "deadline":
                attempt.out_of_time = True  # never started: no attempt, no backoff
                continue
            if result.outcome is Outcome.RETRY:
                state.hold(sid, result.reason or "retry", result.maybe_delivered)
                attempt.retry_after = max(attempt.retry_after, result.retry_after_seconds or 0.0)
                continue
            state.settle(sid, sent=result.outcome is Outcome.SENT)
            if result.outcome is not Outcome.SENT:
                attempt.auth += result.reason in _AUTH_ERRORS
            if result.outcome is Outcome.RETIRE:
                reason = _RETIRE_REASONS.get(result.reason or "", UnsubscribeReason.INVALID_TOKEN)
                attempt.retire.setdefault(reason, []).append(sid)
            final.append(_delivery(device, result, sent_at, receipt_hash, sid in state.resent))
        return final

    def _send_chunk(
        self, messages: list[PushMessage], deadline: float, claim: Callable[[], None] | None
    ) -> list[SendResult]:
        def before_writing() -> None:
            assert claim is not None
            try:
                claim()
            except Exception as error:
                raise _ClaimFailed(error) from error

        try:
            return self._gateway.send_batch(
                messages, deadline=deadline, before_writing=before_writing if claim else None
            )
        except _ClaimFailed as failed:
            raise failed.cause from None  # the claim was not stored: nothing was sent
        except Exception:  # noqa: BLE001 - whatever escaped, FCM may have taken some of them
            return [SendResult(Outcome.RETRY, reason="error", maybe_delivered=True)] * len(messages)

    def _retire(
        self, state: BatchState, retire: dict[UnsubscribeReason, list[str]], auth_failures: int
    ) -> None:
        org = state.organization_id
        tried = len(state.devices) - state.counts.skipped
        invalid = retire.get(UnsubscribeReason.INVALID_TOKEN, [])
        if tried >= SUPPRESS_RETIREMENT_FROM and len(invalid) * 2 > tried:
            # More than half of a batch "not a valid token" is a configuration error (another
            # project's tokens, the wrong field), not dead tokens: retire none of them, and tell
            # the administrators. UNREGISTERED is FCM saying the token is gone: always retired.
            state.counts.retire_suppressed += len(invalid)
            retire = {
                r: ids for r, ids in retire.items() if r is not UnsubscribeReason.INVALID_TOKEN
            }
            self._alert(
                org,
                "FCM called more than half of a batch's tokens invalid; none were removed.",
                tried,
                len(invalid),
            )
        now = self._clock()
        purge_by = unsubscribed_purge_by(now, self._policy.unsubscribe_retention_days)
        for reason, ids in retire.items():
            state.counts.removed_tokens += self._subscriptions.retire(
                org, ids, reason, now, purge_by
            )
        if auth_failures:
            self._alert(
                org,
                "Firebase rejected the project's credentials (third-party auth).",
                tried,
                auth_failures,
            )

    def _give_up(
        self, state: BatchState, devices: list[str], reason: str, active: dict[str, Device]
    ) -> None:
        """Record these devices as failed, each with its last transient reason (or ``reason``)."""
        if not devices:
            return
        now = self._clock()
        final = []
        for sid in devices:
            last = state.give_up(sid, reason)
            device = active.get(sid)
            final.append(
                Delivery(
                    device_id=device_id(sid),
                    user_id=device.user_id if device is not None else "",
                    status="failed",
                    message_id=None,
                    error=last,
                    sent_at=now,
                    receipt_hash="",
                )
            )
        state.inflight = []
        self._fanout.checkpoint(state, now + self._policy.lease, final)
        self._alert(
            state.organization_id,
            "Some devices could not be reached; they are recorded as failed.",
            len(state.devices),
            len(final),
        )

    def _message(self, state: BatchState, push: WebPush, device: Device) -> tuple[PushMessage, str]:
        receipt, receipt_hash = new_receipt(
            state.organization_id,
            state.notification_id,
            state.batch,
            device_id(device.subscription_id),
        )
        data = {"notification_id": state.notification_id, "receipt": receipt}
        if self._policy.receipt_url:
            data["receipt_url"] = self._policy.receipt_url
        message = PushMessage(
            token=device.instance_id, push=push, device_data=data, token_kind=device.token_kind
        )
        return message, receipt_hash

    def _backoff(self, attempts: int, retry_after: float) -> timedelta:
        doubled: timedelta = self._policy.first_backoff * 2 ** max(attempts - 1, 0)
        return max(min(doubled, self._policy.max_backoff), timedelta(seconds=retry_after))

    def _alert(self, organization_id: str, reason: str, devices: int, failed: int) -> None:
        if self._notices is not None:
            self._notices.delivery_problem(organization_id, reason, devices, failed)


def _delivery(
    device: Device, result: SendResult, sent_at: datetime, receipt_hash: str, resent: bool
) -> Delivery:
    sent = result.outcome is Outcome.SENT
    return Delivery(
        device_id=device_id(device.subscription_id),
        user_id=device.user_id,
        status="sent" if sent else "failed",
        message_id=result.message_id,
        error=None if sent else (result.reason or "error"),
        sent_at=sent_at,
        receipt_hash=receipt_hash,
        resent=resent,
    )


class _ClaimFailed(Exception):
    """The claim a gateway runs before writing failed (LeaseLost, the store out of reach)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__("the claim was not stored")
        self.cause = cause


def _split(devices: list[str], size: int) -> list[list[str]]:
    return [devices[start : start + size] for start in range(0, len(devices), max(size, 1))]
