"""Notification use cases: send to every active device of the recipients, once; record receipts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from push365.errors import MessageTooLarge, SendInProgress, StoreUnavailable, UnknownReceipt
from push365.fcm.model import Outcome, PushGateway, PushMessage, SendResult, WebPush
from push365.model import utc_now
from push365.notifications.model import (
    FCM_PAYLOAD_LIMIT,
    DeliveryCounts,
    NotificationRecord,
    SendRequest,
    Summary,
)
from push365.notifications.receipts import RECEIPT_LENGTH, device_id, new_receipt, parse_receipt
from push365.notifications.repository import Delivery, NotificationRepository
from push365.retention import unsubscribed_purge_by
from push365.subscriptions.model import Device, UnsubscribeReason
from push365.subscriptions.repository import SubscriptionRepository

if TYPE_CHECKING:
    from push365.mail.notices import AdminNotices

FCM_BATCH = 500  # firebase-admin's send_each limit
_RETIRE_REASONS = {"unregistered": UnsubscribeReason.UNREGISTERED}
_POLL_SECONDS = 0.2
_WRITE_MARGIN_SECONDS = 2.0  # left at the end of the deadline for the last records


@dataclass(frozen=True)
class SendPolicy:
    """Limits a send works within."""

    deadline_seconds: float
    http_timeout_seconds: float
    retention: timedelta
    dedup_window: timedelta
    unsubscribe_retention_days: int
    receipt_url: str | None = None
    alert_auth_errors: tuple[str, ...] = ("third_party_auth", "sender_id_mismatch")
    first_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0


@dataclass
class _Pending:
    device: Device
    message: PushMessage
    receipt_hash: str
    last: SendResult | None = None


class NotificationService:
    """Sending notifications and recording their delivery."""

    def __init__(
        self,
        notifications: NotificationRepository,
        subscriptions: SubscriptionRepository,
        gateway: PushGateway,
        policy: SendPolicy,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        notices: AdminNotices | None = None,
    ) -> None:
        self._notices = notices
        self._notifications = notifications
        self._subscriptions = subscriptions
        self._gateway = gateway
        self._policy = policy
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep

    def send(self, organization_id: str, request: SendRequest, dedup_key: str | None) -> Summary:
        """Send to every active device of the recipients, each device at most once.

        A replay of ``dedup_key`` within the window answers the original summary; when that send
        left devices failed, only the devices it did not reach are tried again. An identical send
        still in progress is waited for.

        Raises:
            MessageTooLarge: over FCM's payload limit (nothing is stored or sent).
            SendInProgress: an identical send did not finish within this one's deadline.
        """
        deadline = self._monotonic() + self._policy.deadline_seconds
        push = request.web_push()
        if payload_size(push, self._policy.receipt_url) > FCM_PAYLOAD_LIMIT:
            raise MessageTooLarge()
        now = self._clock()
        recipients = list(dict.fromkeys(request.recipients))
        claim = self._notifications.claim(
            organization_id,
            dedup_key,
            recipients,
            now,
            lease_until=self._lease_until(now),
            dedup_window=self._policy.dedup_window,
            expire_at=now + self._policy.retention,
        )
        nid = claim.notification_id
        before = DeliveryCounts()
        reached: set[str] = set()
        if not claim.new:
            replay, previous = self._replay_or_take_over(organization_id, nid, deadline)
            if replay is not None:
                return replay
            reached = self._notifications.sent_device_ids(organization_id, nid)
            before = DeliveryCounts(
                devices=len(reached),
                sent=len(reached),
                removed_tokens=previous.counts.removed_tokens,
            )
        devices = {
            d.subscription_id: d
            for d in self._subscriptions.active_devices(organization_id, recipients)
            if device_id(d.subscription_id) not in reached
        }
        counts = self._deliver(organization_id, nid, push, list(devices.values()), deadline)
        total = DeliveryCounts(
            devices=before.devices + counts.devices,
            sent=before.sent + counts.sent,
            failed=counts.failed,
            removed_tokens=before.removed_tokens + counts.removed_tokens,
        )
        self._notifications.complete(organization_id, nid, total, self._clock())
        self._alert_if_rejected(organization_id, counts)
        return Summary(notification_id=nid, recipients=len(recipients), **total.model_dump())

    def _alert_if_rejected(self, organization_id: str, counts: DeliveryCounts) -> None:
        """FCM rejecting this organization's messages (auth errors, or most devices failing)
        is worth telling its administrators about, at most once a day."""
        if self._notices is None or counts.devices == 0:
            return
        if counts.auth_failures:
            reason = "Firebase rejected the project's credentials (third-party auth)."
        elif counts.failed * 2 > counts.devices:
            reason = "More than half of the devices of a notification could not be reached."
        else:
            return
        self._notices.delivery_problem(organization_id, reason, counts.devices, counts.failed)

    def confirm_delivery(self, receipt: str) -> None:
        """The service worker showed the notification: set its device's ``delivered_at``.

        Raises:
            UnknownReceipt: not a receipt this service issued.
        """
        parsed = parse_receipt(receipt)
        if parsed is None or not self._notifications.mark_delivered(
            parsed.organization_id,
            parsed.notification_id,
            parsed.device_id,
            parsed.hash,
            self._clock(),
        ):
            raise UnknownReceipt()

    def _lease_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self._policy.deadline_seconds + 5)

    def _replay_or_take_over(
        self, organization_id: str, nid: str, deadline: float
    ) -> tuple[Summary | None, NotificationRecord]:
        """The original summary, or (None, record) once this request holds the send's lease."""
        while True:
            record = self._notifications.get(organization_id, nid)
            if record is None:
                raise StoreUnavailable()  # the claim wrote it in the same transaction
            if record.status == "sent" and record.counts.failed == 0:
                return record.summary(), record
            now = self._clock()
            if record.status == "sent" or (record.lease_until or now) <= now:
                if self._notifications.take_lease(
                    organization_id, nid, now, self._lease_until(now)
                ):
                    return None, record
                continue
            if self._monotonic() + _POLL_SECONDS > deadline:
                raise SendInProgress()
            self._sleep(_POLL_SECONDS)

    def _deliver(
        self,
        organization_id: str,
        nid: str,
        push: WebPush,
        devices: Sequence[Device],
        deadline: float,
    ) -> DeliveryCounts:
        pending = [self._prepare(organization_id, nid, push, device) for device in devices]
        counts = DeliveryCounts(devices=len(pending))
        retired: dict[UnsubscribeReason, list[str]] = {}
        expire_at = self._clock() + self._policy.retention
        attempt = 0
        # Records are written while the next batch is being sent.
        with ThreadPoolExecutor(max_workers=2) as writer:
            writes: list[Future[None]] = []
            while pending:
                retry: list[_Pending] = []
                for start in range(0, len(pending), FCM_BATCH):
                    batch = pending[start : start + FCM_BATCH]
                    results = self._send_batch([p.message for p in batch])
                    sent_at = self._clock()
                    final: list[Delivery] = []
                    for item, result in zip(batch, results, strict=True):
                        item.last = result
                        if result.outcome is Outcome.RETRY:
                            retry.append(item)
                            continue
                        final.append(_delivery(item, result, sent_at))
                        if result.outcome is Outcome.SENT:
                            counts.sent += 1
                        else:
                            counts.failed += 1
                        if result.reason in self._policy.alert_auth_errors:
                            counts.auth_failures += 1
                        if result.outcome is Outcome.RETIRE:
                            reason = _RETIRE_REASONS.get(
                                result.reason or "", UnsubscribeReason.INVALID_TOKEN
                            )
                            retired.setdefault(reason, []).append(item.device.subscription_id)
                    writes.append(
                        writer.submit(
                            self._notifications.record_deliveries,
                            organization_id,
                            nid,
                            final,
                            expire_at,
                        )
                    )
                if not retry:
                    break
                wait = self._backoff(attempt, retry)
                if (
                    self._monotonic()
                    + wait
                    + self._policy.http_timeout_seconds
                    + _WRITE_MARGIN_SECONDS
                    > deadline
                ):
                    # Out of time: what still failed is recorded with its last reason.
                    sent_at = self._clock()
                    counts.failed += len(retry)
                    last = [
                        _delivery(item, item.last or SendResult(Outcome.FAILED), sent_at)
                        for item in retry
                    ]
                    writes.append(
                        writer.submit(
                            self._notifications.record_deliveries,
                            organization_id,
                            nid,
                            last,
                            expire_at,
                        )
                    )
                    break
                self._sleep(wait)
                attempt += 1
                pending = retry
            for write in writes:
                write.result()
        now = self._clock()
        purge_by = unsubscribed_purge_by(now, self._policy.unsubscribe_retention_days)
        for reason, subscription_ids in retired.items():
            counts.removed_tokens += self._subscriptions.retire(
                organization_id, subscription_ids, reason, now, purge_by
            )
        return counts

    def _send_batch(self, messages: list[PushMessage]) -> list[SendResult]:
        try:
            return self._gateway.send_batch(messages)
        except Exception:  # noqa: BLE001 - a gateway failure is a retryable failure of each message
            return [SendResult(Outcome.RETRY, reason="gateway_error")] * len(messages)

    def _backoff(self, attempt: int, retry: Sequence[_Pending]) -> float:
        backoff = min(
            self._policy.first_backoff_seconds * 2.0**attempt, self._policy.max_backoff_seconds
        )
        retry_after = max((p.last.retry_after_seconds or 0.0) for p in retry if p.last)
        return max(backoff, retry_after)

    def _prepare(self, organization_id: str, nid: str, push: WebPush, device: Device) -> _Pending:
        receipt, receipt_hash = new_receipt(organization_id, nid, device_id(device.subscription_id))
        data = {"notification_id": nid, "receipt": receipt}
        if self._policy.receipt_url:
            data["receipt_url"] = self._policy.receipt_url
        message = PushMessage(
            token=device.instance_id, push=push, device_data=data, token_kind=device.token_kind
        )
        return _Pending(device, message, receipt_hash)


def _delivery(item: _Pending, result: SendResult, sent_at: datetime) -> Delivery:
    sent = result.outcome is Outcome.SENT
    return Delivery(
        device_id=device_id(item.device.subscription_id),
        user_id=item.device.user_id,
        status="sent" if sent else "failed",
        message_id=result.message_id,
        error=None if sent else (result.reason or "error"),
        sent_at=sent_at,
        receipt_hash=item.receipt_hash,
    )


def payload_size(push: WebPush, receipt_url: str | None) -> int:
    """The bytes FCM counts against its limit: notification and data, with the largest
    per-device data Push365 adds."""
    data = {**push.data, "notification_id": "0" * 32, "receipt": "0" * RECEIPT_LENGTH}
    if receipt_url:
        data["receipt_url"] = receipt_url
    notification = {"title": push.title, "body": push.body, "icon": push.icon}
    payload = {
        "data": data,
        "webpush": {"notification": notification, "fcm_options": {"link": push.link}},
    }
    return len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())
