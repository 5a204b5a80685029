"""What purge's caller sends, and how it is let in."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, StrictBool

from push365.errors import PurgeDisabled, Unauthorized
from push365.model import InputModel, utc_now
from push365.settings import get_settings


def _text(value: Any) -> Any:
    # An ISO-8601 text only: pydantic would also read a number as seconds since 1970.
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 date and time with its offset")
    return value


class PurgeRequest(InputModel):
    """``POST /purge``."""

    as_of: Annotated[AwareDatetime, BeforeValidator(_text)] | None = None
    dry_run: StrictBool = False

    def effective_as_of(self) -> datetime:
        """``as_of``, or now."""
        return self.as_of or utc_now()


def check_admin_key(presented: str | None) -> None:
    """Let in only a caller with the configured admin key, compared in constant time.

    Raises:
        PurgeDisabled: no admin key is configured.
        Unauthorized: no key, or another one.
    """
    configured = get_settings().admin_key
    if configured is None:
        raise PurgeDisabled()
    if not hmac.compare_digest((presented or "").encode(), configured.get_secret_value().encode()):
        raise Unauthorized("A valid X-Push365-Admin-Key is required.")
