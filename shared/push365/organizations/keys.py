"""API keys: issued once, stored only as a hash, compared in constant time.

A key reads ``p365.<organization id>.<secret>``: the organization id says whose hash to compare
against, the secret is 256 random bits. A secret with that much entropy needs no slow hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from push365.model import normalize_guid

_PREFIX = "p365"
CONFIRMATION_PREFIX = "p365c"
_SECRET_BYTES = 32
# Compared against when the organization is unknown, so that case takes the same path.
_UNKNOWN_HASH = hashlib.sha256(b"no organization").hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    """A freshly issued key: ``plaintext`` is shown to the caller once, ``hash`` is stored."""

    plaintext: str
    hash: str


def issue_key(organization_id: str, prefix: str = _PREFIX) -> IssuedKey:
    """A new random key for an organization (or, with ``CONFIRMATION_PREFIX``, the token of a
    mail address's confirmation link)."""
    plaintext = f"{prefix}.{organization_id}.{secrets.token_urlsafe(_SECRET_BYTES)}"
    return IssuedKey(plaintext=plaintext, hash=hash_key(plaintext))


def hash_key(plaintext: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def organization_of(presented: str, prefix: str = _PREFIX) -> str | None:
    """The organization id a presented key names, or None when it is not a key's shape."""
    parts = presented.split(".")
    if len(parts) != 3 or parts[0] != prefix or not parts[2]:
        return None
    try:
        return normalize_guid(parts[1])
    except ValueError:
        return None


def key_matches(presented: str, stored_hash: str | None) -> bool:
    """Constant-time comparison of a presented key with a stored hash (None never matches)."""
    return hash_matches(hash_key(presented), stored_hash)


def hash_matches(presented_hash: str, stored_hash: str | None) -> bool:
    """Constant-time comparison of two hashes; a missing one is compared too, and never
    matches (the same work whatever is stored)."""
    matches = hmac.compare_digest(presented_hash, stored_hash or _UNKNOWN_HASH)
    return matches and stored_hash is not None
