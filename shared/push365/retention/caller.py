"""Who may call purge: in production the Cloud Scheduler account's OIDC identity, locally the
admin key.

Production (``PUSH365_PURGE_INVOKER`` set to the scheduler account's email, infra/functions.json
"callers"): the request must carry ``Authorization: Bearer <ID token>`` whose audience is the
function's URL, whose issuer is Google and whose verified email is that account. The admin key is
not accepted there, even if one is configured: there is no secret to leak.

Google's front end checks the token before the request reaches a private function (purge's only
invoker is that account, infra/scheduler.tf) and then, for a Google-signed token, forwards it with
its signature replaced by ``SIGNATURE_REMOVED_BY_GOOGLE`` (Cloud Run troubleshooting,
"signature-removed"), so such a token cannot be replayed elsewhere. A token that arrives signed is
verified here with google-auth (``id_token.verify_oauth2_token``: Google's keys, audience, expiry,
issuer); one whose signature Google removed has already been verified by Google, and its claims
(audience, issuer, expiry, email) are checked here all the same.

Locally (``PUSH365_PURGE_INVOKER`` unset): header ``X-Push365-Admin-Key`` equal to
``PUSH365_ADMIN_KEY`` (``make dev``); neither set: purge refuses everyone.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from push365.errors import Unauthorized
from push365.retention.request import check_admin_key
from push365.settings import get_settings

# Verifies a signed ID token for an audience: its claims, or ValueError.
TokenVerifier = Callable[[str, str], Mapping[str, Any]]

SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"
GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
CLOCK_SKEW_SECONDS = 10
_REFUSED = "A valid OIDC token of the purge scheduler's account is required."


def authorize_purge(
    *,
    authorization: str | None,
    admin_key: str | None,
    audience: str,
    verify: TokenVerifier,
    now: Callable[[], float] = time.time,
) -> None:
    """Let in only purge's caller; see the module's docstring.

    Raises:
        Unauthorized: not the configured caller.
        PurgeDisabled: neither an invoker nor an admin key is configured.
    """
    invoker = get_settings().purge_invoker
    if not invoker:
        check_admin_key(admin_key)
        return
    token = _bearer(authorization)
    if token is None:
        raise Unauthorized(_REFUSED)
    claims = _claims(token, audience, verify, now())
    if claims.get("email") != invoker or claims.get("email_verified") is not True:
        raise Unauthorized(_REFUSED)


def google_verifier(request: Any = None) -> TokenVerifier:
    """google-auth's verification of a Google-signed ID token (Google's keys fetched by
    google-auth over ``request``, a ``google.auth.transport.Request``)."""

    def verify(token: str, audience: str) -> Mapping[str, Any]:
        from google.auth.transport.requests import Request
        from google.oauth2 import id_token

        claims = id_token.verify_oauth2_token(  # type: ignore[no-untyped-call]
            token, request or Request(), audience=audience, clock_skew_in_seconds=CLOCK_SKEW_SECONDS
        )
        return dict(claims)

    return verify


def _bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or token.count(".") != 2:
        return None
    return token


def _claims(token: str, audience: str, verify: TokenVerifier, now: float) -> Mapping[str, Any]:
    _, payload, signature = token.split(".")
    if signature != SIGNATURE_REMOVED:
        try:
            return verify(token, audience)
        except Exception:  # noqa: BLE001 - any failure to verify is a refusal
            raise Unauthorized(_REFUSED) from None
    # Verified by Google's front end, which removed the signature: check the claims here too.
    claims = _decode(payload)
    expires = claims.get("exp")
    if (
        claims.get("aud") != audience
        or claims.get("iss") not in GOOGLE_ISSUERS
        or not isinstance(expires, int | float)
        or expires + CLOCK_SKEW_SECONDS < now
    ):
        raise Unauthorized(_REFUSED)
    return claims


def _decode(segment: str) -> Mapping[str, Any]:
    try:
        claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise Unauthorized(_REFUSED) from None
    if not isinstance(claims, Mapping):
        raise Unauthorized(_REFUSED)
    return claims
