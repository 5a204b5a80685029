"""Sign-in with the Microsoft identity platform: msal's device-code flow.

msal is the setup command's own dependency (``requirements-setup.txt``), never the functions':
it is imported here only, when the command runs. The token stays in memory; nothing prints it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO


class SignInError(Exception):
    pass


def device_code_token(
    environment_url: str, client_id: str, tenant: str, out: TextIO
) -> Callable[[], str]:
    """Sign in once (the user opens the page msal names and types its code), then answer a fresh
    access token for the environment on every call (msal renews it from its cache)."""
    import msal

    app: Any = msal.PublicClientApplication(
        client_id, authority=f"https://login.microsoftonline.com/{tenant}"
    )
    scopes = [environment_url.rstrip("/") + "/.default"]
    flow = app.initiate_device_flow(scopes=scopes)
    if "user_code" not in flow:
        raise SignInError("The sign-in could not start: check --client-id and --tenant.")
    print(flow["message"], file=out, flush=True)
    result = app.acquire_token_by_device_flow(flow)
    if "access_token" not in result:
        raise SignInError(f"Sign-in failed ({result.get('error', 'unknown error')}).")
    account = app.get_accounts()[0] if app.get_accounts() else None
    token = {"value": str(result["access_token"])}

    def current() -> str:
        if account is not None:
            renewed = app.acquire_token_silent(scopes, account=account)
            if renewed and "access_token" in renewed:
                token["value"] = str(renewed["access_token"])
        return token["value"]

    return current
