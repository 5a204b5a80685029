"""Purge's admin key: unset means nobody gets in; set means only that key, compared in full."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from push365.errors import PurgeDisabled, Unauthorized
from push365.retention.request import check_admin_key
from push365.settings import get_settings


@pytest.fixture
def admin_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.mark.parametrize("presented", [None, "", "local-admin-key", "anything"])
def test_without_a_configured_key_purge_refuses_everyone(
    admin_key: pytest.MonkeyPatch, presented: str | None
) -> None:
    admin_key.delenv("PUSH365_ADMIN_KEY", raising=False)

    with pytest.raises(PurgeDisabled):
        check_admin_key(presented)


def test_with_a_configured_key_only_that_key_gets_in(admin_key: pytest.MonkeyPatch) -> None:
    admin_key.setenv("PUSH365_ADMIN_KEY", "s3cret")

    check_admin_key("s3cret")
    for wrong in (None, "", "s3cre", "s3cret ", "S3CRET"):
        with pytest.raises(Unauthorized):
            check_admin_key(wrong)
