"""Runtime configuration, read once from the environment (prefix ``PUSH365_``)."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from push365.retention import (
    DEFAULT_STALE_SUBSCRIPTION_DAYS,
    MAX_STALE_SUBSCRIPTION_DAYS,
    MAX_UNSUBSCRIBE_RETENTION_DAYS,
)

LOCAL_PROJECT_ID = "demo-push365"


def _default_project_id() -> str:
    # Cloud Functions sets GOOGLE_CLOUD_PROJECT; locally the emulator accepts any demo- project.
    return os.environ.get("GOOGLE_CLOUD_PROJECT") or LOCAL_PROJECT_ID


class Settings(BaseSettings):
    """Push365 settings. Every field can be overridden with ``PUSH365_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="PUSH365_", frozen=True)

    project_id: str = Field(default_factory=_default_project_id)
    # The privacy policy promises removal from the live database within 30 days of unsubscribe.
    unsubscribe_retention_days: int = Field(
        default=MAX_UNSUBSCRIBE_RETENTION_DAYS, ge=0, le=MAX_UNSUBSCRIBE_RETENTION_DAYS
    )
    # A subscription its browser has not refreshed for this long is stale: never sent to again,
    # unsubscribed by purge (token erased) and purged like any unsubscribed one.
    stale_subscription_days: int = Field(
        default=DEFAULT_STALE_SUBSCRIPTION_DAYS, ge=1, le=MAX_STALE_SUBSCRIPTION_DAYS
    )
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    # How long a notification record (metadata only, never content) is kept.
    notification_retention_days: int = Field(default=90, ge=1, le=3650)
    # Replays of one Dataverse operation or Idempotency-Key within this window never send twice.
    idempotency_window_hours: int = Field(default=24, ge=1, le=24 * 7)

    # FCM. None: the real endpoint with Application Default Credentials. A URL (http://127.0.0.1:8090):
    # a server that speaks FCM v1, reached without credentials (make dev and the tests).
    fcm_endpoint: str | None = None
    # One FCM HTTP request may take at most this (firebase-admin's default is 120 s).
    fcm_http_timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    # Keep-alive connections to FCM per deliver instance.
    fcm_connections: int = Field(default=16, ge=1, le=256)

    # Fan-out over Pub/Sub (send publishes, deliver consumes). PUBSUB_EMULATOR_HOST is honoured.
    fanout_topic: str = "push365-fanout"
    # How long one publish is retried (send's answer waits for it, and 1 s more for Pub/Sub's
    # last answer: fanout.publisher.WAIT_MARGIN_SECONDS).
    queue_timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    # 8 s: a request that meets a store out of reach answers its 503 within 10 s.
    store_timeout_seconds: float = Field(default=8.0, gt=0, le=30)
    # Devices claimed, sent and recorded together inside a batch of at most 500.
    deliver_chunk_size: int = Field(default=250, ge=1, le=498)
    # A worker holds a batch this long after each checkpoint; then another may take it over.
    deliver_lease_seconds: float = Field(default=45.0, gt=0, le=540)
    # deliver's time budget (docs/api/deliver.md, "The time budget"; push365.fanout.budget): one
    # chunk's requests all end within this; those not started by then are handed on, never sent
    # late.
    deliver_chunk_budget_seconds: float = Field(default=20.0, gt=0, le=300)
    # No FCM request starts later than this after deliver's handler began (then it records
    # what it knows, hands the rest to a continuation message and answers).
    deliver_handler_seconds: float = Field(default=30.0, gt=0, le=540)
    # How far two instances' clocks may disagree: sending ends this long before the lease does.
    deliver_clock_skew_seconds: float = Field(default=2.0, ge=0, le=30)
    # Transient FCM failures are retried (Pub/Sub redelivery after a backoff) this long after
    # the send; then the devices are recorded as failed. Inside the subscription's retention.
    retry_horizon_seconds: float = Field(default=3600.0, gt=0, le=6 * 3600)
    # How long the fan-out subscription keeps a message (infra/pubsub.tf's
    # message_retention_duration): once a send is older, no message for it can come any more
    # and the reconciler records what has no outcome as lost.
    fanout_message_retention_seconds: float = Field(default=7200.0, gt=0, le=7 * 86400)
    # The reconciler counts a send as stalled when its record saw no write for this long.
    reconcile_stall_seconds: float = Field(default=120.0, gt=0)
    # How far back the reconciler looks (a reconciler down for longer leaves older sends as
    # they are: their retention purges them all the same).
    reconcile_lookback_seconds: float = Field(default=86400.0, gt=0)
    retry_first_backoff_seconds: float = Field(default=10.0, gt=0)
    retry_max_backoff_seconds: float = Field(default=300.0, gt=0)
    # Where the service worker posts delivery receipts; sent in each message's data when set.
    receipt_url: str | None = None
    # What purge's caller must send in X-Push365-Admin-Key (Secret Manager in production).
    # Unset: purge refuses every caller.
    admin_key: SecretStr | None = None
    # Production: the one service account whose OIDC token purge accepts (Cloud Scheduler's,
    # set by infra/). When set, the admin key is not accepted (push365.retention.caller).
    purge_invoker: str | None = None
    # The audience purge expects in that token; unset: the URL the request was sent to
    # (https://<Host>), which is what the scheduler job names (infra/scheduler.tf).
    purge_audience: str | None = None

    # Creating an organization needs an operator-issued signup code (POST /register/signup-codes
    # with the admin key, or python -m push365.signup). Off only for a closed test setup.
    signup_code_required: bool = True
    signup_code_hours: int = Field(default=168, ge=1, le=720)
    # Attempts to create one organization, or to use one code, per window (then 429).
    signup_attempts: int = Field(default=10, ge=1, le=1000)
    signup_window_seconds: int = Field(default=600, ge=1, le=86400)
    # Quotas on every route (push365.quotas, README "Quotas"): off only for a benchmark that
    # means to call past them. Counting one call may take this long; then the call goes on
    # uncounted (a store that does not answer fails the call itself, with its own 503).
    quotas_enabled: bool = True
    quota_check_seconds: float = Field(default=2.0, gt=0, le=30)
    # After rotate-key the previous key keeps working this long, unless revoked (0: at once).
    key_overlap_hours: float = Field(default=24.0, ge=0, le=168)

    # Where each function is reached, for the webhook URLs mail gives administrators.
    function_url_template: str = "https://{region}-{project}.cloudfunctions.net/{function}"
    region: str = "europe-west1"
    # Transactional mail to administrators: "ses" (Amazon SES), "outbox" (files, make dev), "none".
    mail_backend: Literal["none", "outbox", "ses"] = "none"
    outbox_dir: str = ".local/outbox"
    ses_sender: str | None = None
    ses_region: str = "eu-west-1"
    ses_endpoint_url: str | None = None
    # The mail limits (README "The mail limits", push365.mail.limits), per UTC day, kept in
    # Firestore: confirmation requests one organization causes, confirmation requests one
    # address gets from all organizations together (and from one organization: once), notices
    # to one organization's confirmed administrators.
    mail_confirmations_per_organization: int = Field(default=100, ge=1, le=10000)
    mail_confirmations_per_address: int = Field(default=3, ge=1, le=100)
    mail_notices_per_organization: int = Field(default=20, ge=1, le=10000)

    def function_url(self, function: str) -> str:
        """A function's public URL."""
        return self.function_url_template.format(
            region=self.region, project=self.project_id, function=function
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built on first use."""
    return Settings()
