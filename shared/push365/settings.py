"""Runtime configuration, read once from the environment (prefix ``PUSH365_``)."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_PROJECT_ID = "demo-push365"


def _default_project_id() -> str:
    # Cloud Functions sets GOOGLE_CLOUD_PROJECT; locally the emulator accepts any demo- project.
    return os.environ.get("GOOGLE_CLOUD_PROJECT") or LOCAL_PROJECT_ID


class Settings(BaseSettings):
    """Push365 settings. Every field can be overridden with ``PUSH365_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="PUSH365_", frozen=True)

    project_id: str = Field(default_factory=_default_project_id)
    # The privacy policy promises removal from the live database within 30 days of unsubscribe.
    unsubscribe_retention_days: int = Field(default=30, ge=0, le=30)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built on first use."""
    return Settings()
