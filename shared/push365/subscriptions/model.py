"""Subscriptions: one browser's FCM instance id (token) for one user, plus its footprint."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

# Re-exported: a subscription records the kind of identifier it holds.
from push365.fcm.model import TokenKind as TokenKind
from push365.model import Guid, InputModel

InstanceId = Annotated[
    str, StringConstraints(min_length=1, max_length=4096, pattern=r"^[\x21-\x7e]+$")
]
"""An FCM registration token or installation id: printable ASCII, no spaces."""

Footprint = Annotated[str, StringConstraints(strip_whitespace=True, max_length=256)]
"""The browser footprint: a short non-identifying hash the subscribe page computes."""


class Status(StrEnum):
    """A subscription is either delivered to, or waiting to be purged."""

    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"


class UnsubscribeReason(StrEnum):
    """Why a subscription stopped; recorded on the tombstone."""

    REQUESTED = "requested"
    USER_REMOVED = "user_removed"
    UNREGISTERED = "unregistered"  # FCM: the token is no longer registered
    INVALID_TOKEN = "invalid_token"  # FCM: not a valid registration token
    STALE = "stale"  # not seen for the stale period (PUSH365_STALE_SUBSCRIPTION_DAYS)


class Device(BaseModel):
    """An active subscription as a send needs it."""

    subscription_id: str
    user_id: str
    instance_id: str
    token_kind: TokenKind = TokenKind.REGISTRATION_TOKEN


def subscription_id(instance_id: str) -> str:
    """A token's document id: its SHA-256, so one token is one subscription per organization."""
    return hashlib.sha256(instance_id.encode()).hexdigest()


class Subscribe(InputModel):
    """``POST /subscribe``."""

    user_id: Guid
    instance_id: InstanceId
    browser_footprint: Footprint | None = None
    # Web browsers' getToken() answers a registration token; an installation id must say so.
    token_kind: TokenKind = TokenKind.REGISTRATION_TOKEN


class Unsubscribe(InputModel):
    """``POST /unsubscribe``: one browser by its token, or every browser of a user."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["instance_id"],
                    "properties": {"instance_id": {"type": "string"}, "user_id": {"type": "null"}},
                },
                {
                    "required": ["user_id"],
                    "properties": {"instance_id": {"type": "null"}, "user_id": {"type": "string"}},
                },
            ]
        }
    )

    instance_id: InstanceId | None = None
    user_id: Guid | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.instance_id is None) == (self.user_id is None):
            raise ValueError("give exactly one of instance_id and user_id")
        return self


class Subscription(BaseModel):
    """A subscription as stored. An unsubscribed one keeps no token or footprint."""

    id: str
    user_id: str
    status: Status
    instance_id: str | None = None
    browser_footprint: str | None = None
    token_kind: TokenKind | None = None  # absent on subscriptions stored before it: a token
    created_at: datetime
    last_seen_at: datetime
    unsubscribed_at: datetime | None = None
    unsubscribe_reason: UnsubscribeReason | None = None
    purge_by: datetime | None = None
