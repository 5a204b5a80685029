"""Wiring: the use-case services over their Firestore adapters, built lazily once per process.

Cold starts pay only for what a function uses: nothing here runs at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from push365.fanout.binding import FirestoreBindingReader
from push365.fanout.model import BATCH_SIZE
from push365.fanout.publisher import PubSubPublisher, publish_wait_seconds
from push365.fanout.reconciler import ReconcilePolicy, Reconciler
from push365.fanout.repository import FanoutRepository, FirestoreFanoutRepository
from push365.fanout.worker import DeliveryWorker, FanoutPolicy
from push365.fcm.http import FcmHttpGateway
from push365.mail.limits import MailLimits, MailQuota
from push365.mail.notices import AdminNotices
from push365.mail.port import Mailer, NoMailer, OutboxMailer, SesMailer
from push365.mail.repository import FirestoreMailCounters
from push365.notifications.repository import FirestoreNotificationRepository
from push365.notifications.service import NotificationService, SendPolicy
from push365.notifications.stats import FirestoreStatsReader
from push365.organizations.repository import FirestoreOrganizationRepository
from push365.organizations.service import OrganizationService
from push365.privacy.repository import FirestorePrivacyStore
from push365.privacy.service import PrivacyService
from push365.quotas import QUOTA_CLASSES, QuotaService
from push365.quotas.repository import FirestoreQuotaCounter
from push365.retention.purge import FirestoreRetentionStore, Purger
from push365.retention.rules import retention_rules
from push365.settings import Settings, get_settings
from push365.signup.repository import FirestoreSignupRepository
from push365.signup.service import SignupPolicy, SignupService
from push365.store import firestore_client
from push365.subscriptions.repository import FirestoreSubscriptionRepository
from push365.subscriptions.service import SubscriptionService
from push365.users.repository import FirestoreUserDirectory, FirestoreUserRepository
from push365.users.service import UserService


@lru_cache(maxsize=1)
def notices() -> AdminNotices:
    """Transactional mail to administrators, through the configured backend."""
    settings = get_settings()
    mailer: Mailer
    if settings.mail_backend == "ses":
        if not settings.ses_sender:
            raise RuntimeError("PUSH365_MAIL_BACKEND=ses needs PUSH365_SES_SENDER")
        mailer = SesMailer(settings.ses_sender, settings.ses_region, settings.ses_endpoint_url)
    elif settings.mail_backend == "outbox":
        mailer = OutboxMailer(Path(settings.outbox_dir))
    else:
        mailer = NoMailer()
    limits = MailLimits(
        confirmations_per_organization=settings.mail_confirmations_per_organization,
        confirmations_per_address=settings.mail_confirmations_per_address,
        notices_per_organization=settings.mail_notices_per_organization,
    )
    return AdminNotices(
        mailer,
        FirestoreOrganizationRepository(firestore_client()),
        settings.function_url,
        quota=MailQuota(FirestoreMailCounters(firestore_client()), limits),
    )


def receipt_url() -> str | None:
    """The receipt URL every message carries: rendering keeps messages under FCM's limit with
    it."""
    return get_settings().receipt_url


@lru_cache(maxsize=1)
def organizations() -> OrganizationService:
    """Registration and authentication."""
    return OrganizationService(
        FirestoreOrganizationRepository(firestore_client()),
        notices=notices(),
        signup=signup(),
        key_overlap=timedelta(hours=get_settings().key_overlap_hours),
    )


@lru_cache(maxsize=1)
def quotas() -> QuotaService | None:
    """The quotas every route declares (None when switched off)."""
    settings = get_settings()
    if not settings.quotas_enabled:
        return None
    counter = FirestoreQuotaCounter(firestore_client(), settings.quota_check_seconds)
    return QuotaService(counter, QUOTA_CLASSES)


@lru_cache(maxsize=1)
def signup() -> SignupService:
    """Signup codes and the throttles on registering."""
    settings = get_settings()
    policy = SignupPolicy(
        required=settings.signup_code_required,
        code_lifetime=timedelta(hours=settings.signup_code_hours),
        attempts=settings.signup_attempts,
        window=timedelta(seconds=settings.signup_window_seconds),
        admin_key=settings.admin_key.get_secret_value() if settings.admin_key else None,
    )
    return SignupService(FirestoreSignupRepository(firestore_client()), policy)


@lru_cache(maxsize=1)
def users() -> UserService:
    """System user sync."""
    client = firestore_client()
    timeout = get_settings().store_timeout_seconds
    return UserService(
        FirestoreUserRepository(client), FirestoreSubscriptionRepository(client, timeout)
    )


@lru_cache(maxsize=1)
def user_directory() -> FirestoreUserDirectory:
    """System users' full names, for rendering a user an event names only by id."""
    return FirestoreUserDirectory(firestore_client(), get_settings().store_timeout_seconds)


def user_names(organization_id: str) -> Callable[[Sequence[str]], Mapping[str, str]]:
    """The organization's directory as rendering takes it (read only when a template needs a
    name the event does not carry)."""
    return lambda user_ids: user_directory().full_names(organization_id, user_ids)


@lru_cache(maxsize=1)
def subscriptions() -> SubscriptionService:
    """Subscribe and unsubscribe."""
    client = firestore_client()
    return SubscriptionService(
        FirestoreSubscriptionRepository(client, get_settings().store_timeout_seconds),
        FirestoreUserRepository(client),
        retention_days=get_settings().unsubscribe_retention_days,
    )


@lru_cache(maxsize=1)
def fanout_publisher() -> PubSubPublisher:
    """The fan-out topic (google-cloud-pubsub itself is imported on the first publish)."""
    settings = get_settings()
    return PubSubPublisher(
        settings.project_id, settings.fanout_topic, settings.queue_timeout_seconds
    )


def send_policy(settings: Settings) -> SendPolicy:
    """How long a send's record and its dedup key live, from the settings."""
    return SendPolicy(
        retention=timedelta(days=settings.notification_retention_days),
        dedup_window=timedelta(hours=settings.idempotency_window_hours),
        receipt_url=settings.receipt_url,
        # as long as the first request's publish may wait for Pub/Sub's answer
        in_flight=timedelta(seconds=publish_wait_seconds(settings.queue_timeout_seconds)),
    )


@lru_cache(maxsize=1)
def notifications() -> NotificationService:
    """Send (store and queue), status and receipts."""
    settings = get_settings()
    return NotificationService(
        FirestoreNotificationRepository(firestore_client(), settings.store_timeout_seconds),
        fanout_publisher(),
        send_policy(settings),
        devices=FirestoreSubscriptionRepository(firestore_client(), settings.store_timeout_seconds),
    )


@lru_cache(maxsize=1)
def stats_reader() -> FirestoreStatsReader:
    """The delivery report's reads (dates, statuses and error codes only)."""
    return FirestoreStatsReader(firestore_client(), get_settings().store_timeout_seconds)


@lru_cache(maxsize=1)
def delivery_worker() -> DeliveryWorker:
    """The fan-out's worker: one FCM connection pool per instance (made on first send)."""
    settings = get_settings()
    return delivery_worker_over(
        FirestoreFanoutRepository(firestore_client(), settings.store_timeout_seconds)
    )


def delivery_worker_over(fanout: FanoutRepository, **changes: Any) -> DeliveryWorker:
    """deliver's worker over this fan-out store (a test hands in one that fails where it says,
    and may shorten the policy's times); everything else as deployed."""
    settings = get_settings()
    client = firestore_client()
    policy = FanoutPolicy(
        batch_size=BATCH_SIZE,
        chunk_size=settings.deliver_chunk_size,
        lease=timedelta(seconds=settings.deliver_lease_seconds),
        retry_horizon=timedelta(seconds=settings.retry_horizon_seconds),
        first_backoff=timedelta(seconds=settings.retry_first_backoff_seconds),
        max_backoff=timedelta(seconds=settings.retry_max_backoff_seconds),
        retention=timedelta(days=settings.notification_retention_days),
        unsubscribe_retention_days=settings.unsubscribe_retention_days,
        receipt_url=settings.receipt_url,
        stale_after=timedelta(days=settings.stale_subscription_days),
        chunk_budget_seconds=settings.deliver_chunk_budget_seconds,
        handler_seconds=settings.deliver_handler_seconds,
        min_chunk_seconds=min(
            settings.fcm_http_timeout_seconds, settings.deliver_handler_seconds / 2
        ),
        clock_skew_seconds=settings.deliver_clock_skew_seconds,
        resend_window=settings.fcm_connections,
    )
    policy = replace(policy, **changes)
    gateway = FcmHttpGateway(
        settings.project_id,
        settings.fcm_endpoint,
        settings.fcm_http_timeout_seconds,
        pool_size=settings.fcm_connections,
    )
    return DeliveryWorker(
        fanout,
        FirestoreSubscriptionRepository(client, settings.store_timeout_seconds),
        gateway,
        fanout_publisher(),
        policy,
        notices=notices(),
    )


@lru_cache(maxsize=1)
def binding_reader() -> FirestoreBindingReader:
    """What deliver checks each message against before acting on it (fanout.binding)."""
    return FirestoreBindingReader(firestore_client(), get_settings().store_timeout_seconds)


@lru_cache(maxsize=1)
def privacy() -> PrivacyService:
    """Export and erasure."""
    store = FirestorePrivacyStore(firestore_client(), get_settings().store_timeout_seconds)
    return PrivacyService(store, notices=notices())


@lru_cache(maxsize=1)
def purger() -> Purger:
    """Retention purge."""
    settings = get_settings()
    rules = retention_rules(
        settings.notification_retention_days,
        settings.stale_subscription_days,
        settings.unsubscribe_retention_days,
    )
    store = FirestoreRetentionStore(
        firestore_client(), timeout_seconds=settings.store_timeout_seconds
    )
    return Purger(store, rules)


@lru_cache(maxsize=1)
def reconciler() -> Reconciler:
    """The fan-out's reconciler (gives up sends no message can come for any more)."""
    settings = get_settings()
    return Reconciler(
        FirestoreFanoutRepository(firestore_client(), settings.store_timeout_seconds),
        delivery_worker(),
        ReconcilePolicy(
            stall=timedelta(seconds=settings.reconcile_stall_seconds),
            message_retention=timedelta(seconds=settings.fanout_message_retention_seconds),
            lookback=timedelta(seconds=settings.reconcile_lookback_seconds),
        ),
    )
