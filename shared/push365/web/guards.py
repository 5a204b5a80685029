"""What :class:`~push365.web.api.Api` checks before a handler runs, by the route's declared
``Operation(auth=..., quota=...)``: whose key it is, the operator's and the scheduler's
credentials, and the quota. Built from ``push365.bootstrap`` on first use (a test hands in its
own)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from push365.organizations.model import Authenticated
from push365.quotas import QuotaService


@dataclass(frozen=True)
class Guards:
    """The checks, as callables over the request's credentials."""

    identify: Callable[[str | None], Authenticated]
    """An organization key -> its organization and which key (raises Unauthorized)."""
    operator: Callable[[str | None], None]
    """The operator's key (``X-Push365-Admin-Key``): passes, or raises."""
    scheduler: Callable[[str | None, str | None, str], None]
    """(Authorization header, operator's key, audience): the scheduler's OIDC token or, locally,
    the operator's key: passes, or raises."""
    quotas: Callable[[], QuotaService | None]
    """The quota service (None: quotas switched off)."""


@lru_cache(maxsize=1)
def default_guards() -> Guards:
    """The deployed checks, over the services ``push365.bootstrap`` wires."""
    from push365 import bootstrap
    from push365.retention.caller import authorize_purge, google_verifier

    verify = google_verifier()

    def scheduler(authorization: str | None, admin_key: str | None, audience: str) -> None:
        authorize_purge(
            authorization=authorization, admin_key=admin_key, audience=audience, verify=verify
        )

    return Guards(
        identify=lambda key: bootstrap.organizations().identify(key),
        operator=lambda key: bootstrap.signup().check_operator(key),
        scheduler=scheduler,
        quotas=bootstrap.quotas,
    )
