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
    # Everything a send does stays inside this, well under Dynamics' 60 s webhook timeout.
    send_deadline_seconds: float = Field(default=40.0, gt=0, le=55)
    # One FCM HTTP request may take at most this (firebase-admin's default is 120 s).
    fcm_http_timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    # Where the service worker posts delivery receipts; sent in each message's data when set.
    receipt_url: str | None = None
    # What purge's caller must send in X-Push365-Admin-Key (Secret Manager in production).
    # Unset: purge refuses every caller.
    admin_key: SecretStr | None = None

    # Where each function is reached, for the webhook URLs mail gives administrators.
    function_url_template: str = "https://{region}-{project}.cloudfunctions.net/{function}"
    region: str = "europe-west1"
    # Transactional mail to administrators: "ses" (Amazon SES), "outbox" (files, make dev), "none".
    mail_backend: Literal["none", "outbox", "ses"] = "none"
    outbox_dir: str = ".local/outbox"
    ses_sender: str | None = None
    ses_region: str = "eu-west-1"
    ses_endpoint_url: str | None = None

    def function_url(self, function: str) -> str:
        """A function's public URL."""
        return self.function_url_template.format(
            region=self.region, project=self.project_id, function=function
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built on first use."""
    return Settings()
