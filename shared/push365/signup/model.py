"""What the operator sends to issue a signup code, and what a code looks like."""

from __future__ import annotations

import hashlib
import secrets

from push365.model import Guid, InputModel

PREFIX = "p365s"
_SECRET_BYTES = 24


class SignupCodeRequest(InputModel):
    """``POST /register/signup-codes``: the organization id the code will admit."""

    organization_id: Guid


def new_code() -> str:
    """A fresh code: 192 random bits, shown once to the operator."""
    return f"{PREFIX}.{secrets.token_urlsafe(_SECRET_BYTES)}"


def code_hash(code: str) -> str:
    """The stored form of a code (and of a throttle's scope)."""
    return hashlib.sha256(code.encode()).hexdigest()
