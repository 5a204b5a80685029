"""Purge's caller in production: the Cloud Scheduler account's OIDC token, verified by google-auth
against keys served by a local certs endpoint (the ``request`` transport google-auth fetches
Google's keys through), or in the form Google's front end forwards it (signature removed)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt

from push365.errors import PurgeDisabled, Unauthorized
from push365.retention.caller import SIGNATURE_REMOVED, authorize_purge, google_verifier
from push365.settings import get_settings

SCHEDULER = "push365-purge-scheduler@my-project.iam.gserviceaccount.com"
URL = "https://push365-purge-abc123-ew.a.run.app"
GOOGLE_CERTS = "https://www.googleapis.com/oauth2/v1/certs"


def _key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


GOOGLE_PRIVATE, GOOGLE_PUBLIC = _key()
OTHER_PRIVATE, _ = _key()


@dataclass
class _Response:
    status: int
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class LocalCerts:
    """A google.auth transport that serves "Google's" signing keys, and notes what was asked."""

    keys: dict[str, str]
    asked: list[str] = field(default_factory=list)

    def __call__(self, url: str, method: str = "GET", **_: Any) -> _Response:
        self.asked.append(url)
        return _Response(200, json.dumps(self.keys).encode())


def token(private: str = GOOGLE_PRIVATE, kid: str = "google-1", **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": "https://accounts.google.com",
        "aud": URL,
        "email": SCHEDULER,
        "email_verified": True,
        "sub": "1234567890",
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    signer = crypt.RSASigner.from_string(private, key_id=kid)
    encoded: bytes = jwt.encode(signer, payload)
    return encoded.decode()


def stripped(signed: str) -> str:
    """What Google's front end forwards to a private function: the signature replaced."""
    header, payload, _ = signed.split(".")
    return f"{header}.{payload}.{SIGNATURE_REMOVED}"


def unsigned(**claims: Any) -> str:
    header, _, _ = token().split(".")
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{payload}.{SIGNATURE_REMOVED}"


@pytest.fixture
def certs() -> LocalCerts:
    return LocalCerts({"google-1": GOOGLE_PUBLIC})


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    get_settings.cache_clear()
    monkeypatch.setenv("PUSH365_PURGE_INVOKER", SCHEDULER)
    monkeypatch.setenv("PUSH365_ADMIN_KEY", "local-admin-key")  # present, and still refused
    yield
    get_settings.cache_clear()


def call(certs: LocalCerts, authorization: str | None, admin_key: str | None = None) -> None:
    authorize_purge(
        authorization=authorization,
        admin_key=admin_key,
        audience=URL,
        verify=google_verifier(certs),
    )


def test_the_schedulers_signed_token_for_the_function_url_gets_in(
    production: None, certs: LocalCerts
) -> None:
    call(certs, f"Bearer {token()}")

    assert certs.asked == [GOOGLE_CERTS]  # verified by google-auth against Google's keys


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "https://push365-send-abc123-ew.a.run.app"},  # minted for another function
        {"email": "someone-else@my-project.iam.gserviceaccount.com"},
        {"email_verified": False},
        {"iss": "https://evil.example"},
        {"exp": int(time.time()) - 600, "iat": int(time.time()) - 4200},  # expired
    ],
)
def test_a_signed_token_with_any_other_claim_is_refused(
    production: None, certs: LocalCerts, claims: dict[str, Any]
) -> None:
    with pytest.raises(Unauthorized):
        call(certs, f"Bearer {token(**claims)}")


def test_a_token_signed_by_another_key_is_refused(production: None, certs: LocalCerts) -> None:
    with pytest.raises(Unauthorized):
        call(certs, f"Bearer {token(private=OTHER_PRIVATE)}")
    with pytest.raises(Unauthorized):
        call(certs, f"Bearer {token(private=OTHER_PRIVATE, kid='unknown')}")


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Basic abc", "Bearer not-a-jwt", "Bearer a.b"]
)
def test_without_a_token_nobody_gets_in_not_even_with_the_admin_key(
    production: None, certs: LocalCerts, authorization: str | None
) -> None:
    with pytest.raises(Unauthorized):
        call(certs, authorization, admin_key="local-admin-key")
    assert certs.asked == []


def test_the_form_google_forwards_is_checked_on_its_claims(
    production: None, certs: LocalCerts
) -> None:
    call(certs, f"Bearer {stripped(token())}")
    assert certs.asked == []  # Google verified the signature before removing it

    now = int(time.time())
    good = {"iss": "accounts.google.com", "aud": URL, "email": SCHEDULER, "email_verified": True}
    call(certs, f"Bearer {unsigned(**good, exp=now + 60)}")
    for wrong in (
        {"aud": "https://elsewhere.example"},
        {"email": "someone-else@my-project.iam.gserviceaccount.com"},
        {"email_verified": "true"},
        {"iss": "https://evil.example"},
        {"exp": now - 600},
        {"exp": "never"},
    ):
        with pytest.raises(Unauthorized):
            call(certs, f"Bearer {unsigned(**{**good, 'exp': now + 60, **wrong})}")
    with pytest.raises(Unauthorized):
        call(certs, f"Bearer {token().split('.')[0]}.!!!.{SIGNATURE_REMOVED}")


def test_locally_the_admin_key_still_decides(
    monkeypatch: pytest.MonkeyPatch, certs: LocalCerts
) -> None:
    get_settings.cache_clear()
    monkeypatch.delenv("PUSH365_PURGE_INVOKER", raising=False)
    monkeypatch.setenv("PUSH365_ADMIN_KEY", "local-admin-key")
    try:
        call(certs, None, admin_key="local-admin-key")
        with pytest.raises(Unauthorized):
            call(certs, f"Bearer {token()}", admin_key=None)  # a token is no key
        monkeypatch.delenv("PUSH365_ADMIN_KEY")
        get_settings.cache_clear()
        with pytest.raises(PurgeDisabled):
            call(certs, None, admin_key="local-admin-key")
    finally:
        get_settings.cache_clear()
