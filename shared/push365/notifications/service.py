"""Notification use cases: accept a send (stored, then queued for fan-out), its status, receipts.

The devices themselves are reached by ``deliver`` (:mod:`push365.fanout`): a send's answer does
not grow with its audience.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from push365.audit import note_counts
from push365.errors import (
    MessageTooLarge,
    NotificationNotFound,
    PublishOutcomeUnknown,
    StoreUnavailable,
    UnknownReceipt,
)
from push365.fanout.binding import bind, new_seal
from push365.fanout.model import Content, FanoutMessage, Kind
from push365.fanout.publisher import FanoutPublisher
from push365.fcm.model import PushMessage, WebPush
from push365.model import utc_now
from push365.notifications.model import (
    FCM_PAYLOAD_LIMIT,
    Accepted,
    NotificationRecord,
    NotificationStatus,
    SendRequest,
)
from push365.notifications.receipts import RECEIPT_LENGTH, parse_receipt
from push365.notifications.repository import NotificationRepository

_REPLAY_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class SendPolicy:
    """Limits a send works within."""

    retention: timedelta
    dedup_window: timedelta
    receipt_url: str | None = None
    # A replay arriving while the first request may still be queueing waits for it this long
    # after the first was accepted (then it queues the notification itself).
    in_flight: timedelta = timedelta(0)


class SeenDevices(Protocol):
    """Where a sign of life from a device is written (the subscriptions' store)."""

    def seen(self, organization_id: str, subscription_id: str, now: datetime) -> bool:
        """An active subscription's browser is working: it is not stale."""
        ...


class NotificationService:
    """Accepting notifications, answering their status and recording their receipts."""

    def __init__(
        self,
        notifications: NotificationRepository,
        publisher: FanoutPublisher,
        policy: SendPolicy,
        clock: Callable[[], datetime] = utc_now,
        *,
        devices: SeenDevices,
    ) -> None:
        self._notifications = notifications
        self._publisher = publisher
        self._policy = policy
        self._clock = clock
        self._devices = devices

    def send(self, organization_id: str, request: SendRequest, dedup_key: str | None) -> Accepted:
        """Store the notification and queue it for every active device of the recipients.

        A replay of ``dedup_key`` within the window answers the same notification and never
        makes a second plan; one whose first attempt did not reach the queue queues it now.

        The stored record is the commitment. When Pub/Sub's answer does not come in time (the
        message may be stored all the same), a send without a dedup key is answered as
        accepted (status ``accepted``): a retry could only make a second notification, while
        ``deliver`` plans this one if its message arrived, and otherwise the reconciler records
        it failed (``lost``) once no message for it can come. With a dedup key the answer is
        503: the replay is safe (it binds the record to a new seal and publishes again, which
        voids the first message's seal: at most one plan runs).

        Raises:
            MessageTooLarge: over FCM's payload limit (nothing is stored or queued).
            PublishOutcomeUnknown: with a dedup key, Pub/Sub's answer did not come in time (the
                record stays ``accepted``; a replay of the same key queues it).
            QueueUnavailable: Pub/Sub refused it: nothing is queued (the record stays
                ``accepted``; a replay of the same dedup key queues it, and the reconciler
                records one that is never replayed failed, ``lost``).
        """
        push = request.web_push()
        if payload_size(push, self._policy.receipt_url) > FCM_PAYLOAD_LIMIT:
            raise MessageTooLarge()
        now = self._clock()
        recipients = list(dict.fromkeys(request.recipients))
        # The record keeps only the content's binding under a seal that travels in the messages:
        # deliver acts on no message whose content does not give it back (fanout.binding).
        content = Content.of(push)
        seal = new_seal()
        claim = self._notifications.claim(
            organization_id,
            dedup_key,
            recipients,
            now,
            dedup_window=self._policy.dedup_window,
            expire_at=now + self._policy.retention,
            binding=bind(seal, content),
        )
        nid = claim.notification_id
        if not claim.new:
            record = self._first_attempt(organization_id, nid)
            if record.published_at is not None or record.status != "accepted":
                return record.accepted()
            # Its first request's seal is gone with that request: this one binds the record to
            # its own content, unless planning has begun meanwhile (then it only answers).
            if not self._notifications.rebind(organization_id, nid, bind(seal, content)):
                record = self._first_attempt(organization_id, nid)
                return record.accepted()
            recipients = record.recipients
        plan = FanoutMessage(
            kind=Kind.PLAN,
            organization_id=organization_id,
            notification_id=nid,
            content=content,
            seal=seal,
            recipients=recipients,
        )
        try:
            self._publisher.publish([plan])
        except PublishOutcomeUnknown:
            if dedup_key is not None:
                raise
            note_counts({"publish_outcome_unknown": 1})
            return Accepted(notification_id=nid, status="accepted", recipients=len(recipients))
        try:
            self._notifications.mark_published(organization_id, nid, self._clock())
        except StoreUnavailable:
            # The message is queued: deliver plans it whether or not this date was written.
            note_counts({"published_not_marked": 1})
        return Accepted(notification_id=nid, status="queued", recipients=len(recipients))

    def _first_attempt(self, organization_id: str, nid: str) -> NotificationRecord:
        """The record a replay found, once its first request has queued it or given up (any
        number of identical requests at once answer the same and make one plan)."""
        give_up = time.monotonic() + self._policy.in_flight.total_seconds()
        while True:
            record = self._notifications.get(organization_id, nid)
            if record is None:
                raise StoreUnavailable()  # the claim wrote it with the dedup entry
            in_flight = self._clock() - record.created_at < self._policy.in_flight
            if record.published_at is not None or record.status != "accepted" or not in_flight:
                return record
            if time.monotonic() >= give_up:
                return record
            time.sleep(_REPLAY_POLL_SECONDS)

    def status(self, organization_id: str, notification_id: str) -> NotificationStatus:
        """A notification's progress.

        Raises:
            NotificationNotFound: no such notification in this organization.
        """
        record = self._notifications.get(organization_id, notification_id)
        if record is None:
            raise NotificationNotFound()
        return record.progress()

    def confirm_delivery(self, receipt: str) -> None:
        """The service worker showed the notification: set its device's ``delivered_at``, and
        its subscription's ``last_seen_at``.

        Raises:
            UnknownReceipt: not a receipt this service issued.
        """
        parsed = parse_receipt(receipt)
        now = self._clock()
        confirmed = None
        if parsed is not None:
            confirmed = self._notifications.mark_delivered(
                parsed.organization_id,
                parsed.notification_id,
                parsed.batch,
                parsed.device_id,
                parsed.hash,
                now,
            )
        if parsed is None or confirmed is None:
            raise UnknownReceipt()
        # A receipt proves the subscription works: it is not stale, whether or not its
        # subscribe page is ever opened again (purge unsubscribes after 60 days without one).
        if confirmed.subscription_id is not None:
            self._devices.seen(parsed.organization_id, confirmed.subscription_id, now)


def payload_size(push: WebPush, receipt_url: str | None) -> int:
    """The bytes FCM counts against its limit for ``push``'s largest message: firebase-admin's
    own encoding of it (:func:`push365.fcm.body.payload_bytes`) with the largest per-device data
    deliver adds (the notification's id, a receipt, the receipt URL).

    Raises:
        ValueError: firebase-admin's encoder refuses the content (a send request's checks
            admit none it refuses).
    """
    from push365.fcm.body import payload_bytes

    device_data = {"notification_id": "0" * 32, "receipt": "0" * RECEIPT_LENGTH}
    if receipt_url:
        device_data["receipt_url"] = receipt_url
    return payload_bytes(PushMessage(token="0", push=push, device_data=device_data))
