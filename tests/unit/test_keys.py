"""API keys: long enough, stored as a hash, compared against the hash."""

from __future__ import annotations

import base64

from push365.organizations import keys

ORG = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"


def test_key_carries_at_least_256_random_bits_and_is_stored_as_hash() -> None:
    issued = keys.issue_key(ORG)
    secret = issued.plaintext.split(".")[2]

    assert len(base64.urlsafe_b64decode(secret + "=")) * 8 >= 256
    assert issued.hash == keys.hash_key(issued.plaintext)
    assert secret not in issued.hash


def test_two_keys_differ() -> None:
    assert keys.issue_key(ORG).plaintext != keys.issue_key(ORG).plaintext


def test_key_names_its_organization_and_rejects_other_shapes() -> None:
    issued = keys.issue_key(ORG)

    assert keys.organization_of(issued.plaintext) == ORG
    assert keys.organization_of("p365.not-a-guid.secret") is None
    assert keys.organization_of(f"p365.{ORG}.") is None
    assert keys.organization_of("just-a-string") is None


def test_key_matches_only_its_hash() -> None:
    issued = keys.issue_key(ORG)

    assert keys.key_matches(issued.plaintext, issued.hash)
    assert not keys.key_matches(issued.plaintext + "x", issued.hash)
    assert not keys.key_matches(issued.plaintext, keys.issue_key(ORG).hash)
    assert not keys.key_matches(issued.plaintext, None)
