"""python -m dynamics.setup: connect one Dynamics 365 environment to Push365.

Signs in (device code), registers the organization with Push365, creates the webhook endpoints and
steps in Dataverse, and loads the enabled system users. Safe to run again: it changes only what is
missing or different, and continues where a failed run stopped.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dynamics.setup.dataverse import DataverseError, WebApi
from dynamics.setup.push365 import Push365, Push365Error
from dynamics.setup.run import Setup, SetupError, State, base_url_from_environment
from dynamics.setup.transport import UrllibTransport

EPILOG = """\
what it does, in order:
  1. signs you in with your Microsoft account (device code: open the page it names, type the code);
     you need the System Administrator role in the environment
  2. reads the Push365 base URL from the p365_BaseUrl environment variable (unless --base-url),
     and the organization (WhoAmI, RetrieveCurrentOrganization, its language, your name and email)
  3. registers it with Push365 (POST /register); the API key Push365 answers once is kept in
     --state, readable by you only: keep that file, a later run needs it
  4. creates or corrects four webhook endpoints (HttpHeader auth, X-Push365-Key): users, subscribe,
     unsubscribe, send
  5. registers the steps: systemuser Create/Update/Delete; p365_subscription Create, Update
     (p365_instanceid) and Delete (with a pre-image of p365_instanceid); p365_notification Create;
     and one step per table and message your Push365 event rules name, with a pre-image and a
     post-image (where Dataverse allows them) holding exactly the columns those rules reference
  6. loads every enabled system user into Push365 (POST /register/users, in pages)

Run it again after changing rules: it adds their steps, corrects their images' columns and
removes images no rule needs any more; it touches nothing else.

example:
  python -m dynamics.setup --environment https://contoso.crm4.dynamics.com --client-id <app id>
"""


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(
        prog="python -m dynamics.setup",
        description="Connect a Dynamics 365 environment to Push365: one run, safe to repeat.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument(
        "--environment", required=True, help="the environment's URL, https://<org>.crm.dynamics.com"
    )
    command.add_argument(
        "--base-url",
        default="",
        help="where the Push365 functions are, e.g. https://europe-west1-my-project.cloudfunctions"
        ".net (default: the environment's p365_BaseUrl environment variable)",
    )
    command.add_argument(
        "--function-prefix",
        default="push365-",
        help="prefix of the function names (Terraform's name_prefix and a dash; '' for make dev)",
    )
    command.add_argument(
        "--client-id",
        default=os.environ.get("PUSH365_SETUP_CLIENT_ID", ""),
        help="application (client) id of an Entra ID app registration that allows public client "
        "flows and has Dynamics CRM user_impersonation (or PUSH365_SETUP_CLIENT_ID)",
    )
    command.add_argument(
        "--tenant", default="organizations", help="Entra ID tenant id or domain (organizations)"
    )
    command.add_argument(
        "--state",
        type=Path,
        default=Path("push365-setup.json"),
        help="where the organization's API key and progress are kept (push365-setup.json)",
    )
    command.add_argument(
        "--signup-code",
        default=os.environ.get("PUSH365_SIGNUP_CODE", ""),
        help="the signup code the Push365 operator issued for this organization's id (first run "
        "only; or PUSH365_SIGNUP_CODE)",
    )
    command.add_argument(
        "--page-size", type=int, default=500, help="system users per request (at most 500)"
    )
    return command


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.client_id:
        print("--client-id (or PUSH365_SETUP_CLIENT_ID) is required.", file=sys.stderr)
        return 2
    from dynamics.setup.auth import SignInError, device_code_token

    transport = UrllibTransport()
    try:
        token = device_code_token(args.environment, args.client_id, args.tenant, sys.stderr)
        dataverse = WebApi(transport, args.environment, token)
        base_url = args.base_url or base_url_from_environment(dataverse)
        setup = Setup(
            dataverse,
            Push365(transport, base_url, args.function_prefix, signup_code=args.signup_code),
            State.load(args.state),
            args.page_size,
            say=lambda line: print(line, file=sys.stderr),
        )
        report = setup.run()
    except (DataverseError, Push365Error) as error:
        print(f"Stopped: {error}. Run the same command again to continue.", file=sys.stderr)
        return 1
    except (SetupError, SignInError) as error:
        print(f"Stopped: {error}", file=sys.stderr)
        return 1
    print("\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
