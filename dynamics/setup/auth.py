"""Sign-in with the Microsoft identity platform: msal's device-code flow.

msal is the setup command's own dependency (``requirements-setup.txt``), never the functions':
it is imported here only, when the command runs. The token stays in memory; nothing prints it.

A network failure on the way to the sign-in host (msal speaks to it through ``requests``) is a
:class:`NetworkError` naming the host and the kind of failure, not a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

from dynamics.setup.transport import NetworkError, unreachable_reason

LOGIN_HOST = "login.microsoftonline.com"
"""Microsoft Entra ID's sign-in host (the global cloud); national clouds have their own
(``login.microsoftonline.us``, ``login.partner.microsoftonline.cn``): ``--login-host``."""
KNOWN_LOGIN_HOSTS = frozenset(
    {
        LOGIN_HOST,
        "login.microsoftonline.us",
        "login.partner.microsoftonline.cn",
        "login.microsoft.com",
        "login.windows.net",
    }
)


class SignInError(Exception):
    pass


def device_code_token(
    environment_url: str,
    client_id: str,
    tenant: str,
    out: TextIO,
    login_host: str = LOGIN_HOST,
) -> Callable[[], str]:
    """Sign in once (the user opens the page msal names and types its code), then answer a fresh
    access token for the environment on every call (msal renews it from its cache)."""
    try:
        return _device_code_token(environment_url, client_id, tenant, out, login_host)
    except OSError as error:  # requests' errors are OSErrors; so are socket's and ssl's
        raise NetworkError(login_host, unreachable_reason(error)) from None


def _device_code_token(
    environment_url: str, client_id: str, tenant: str, out: TextIO, login_host: str
) -> Callable[[], str]:
    import msal

    app: Any = msal.PublicClientApplication(
        client_id,
        authority=f"https://{login_host}/{tenant}",
        # Microsoft's own hosts need no discovery; another (a test's) must not be looked up at
        # Microsoft's.
        instance_discovery=None if login_host in KNOWN_LOGIN_HOSTS else False,
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
            try:
                renewed = app.acquire_token_silent(scopes, account=account)
            except OSError as error:
                raise NetworkError(login_host, unreachable_reason(error)) from None
            if renewed and "access_token" in renewed:
                token["value"] = str(renewed["access_token"])
        return token["value"]

    return current
