"""push365-setup (or python -m dynamics.setup): connect one Dynamics 365 environment to Push365.

Signs in (device code), registers the organization with Push365, creates the webhook endpoints and
steps in Dataverse, and loads the enabled system users. Safe to run again: it changes only what is
missing or different, and continues where a failed run stopped.

``push365-setup rules push FILE`` and ``rules pull FILE`` keep the organization's event rules in
a YAML or JSON file (``dynamics/setup/rules.py``).

A network failure (DNS, a refused connection, TLS, a timeout) ends the command with one line,
``push365-setup: cannot reach <host>: <reason>``, and exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dynamics.setup import rules as rule_files
from dynamics.setup.auth import LOGIN_HOST
from dynamics.setup.dataverse import DataverseError, WebApi
from dynamics.setup.push365 import Push365, Push365Error
from dynamics.setup.run import Setup, SetupError, State, base_url_from_environment
from dynamics.setup.transport import NetworkError, Transport, UrllibTransport

PROG = "push365-setup"
DEFAULT_PREFIX = "push365-"
API_KEY_VARIABLE = "PUSH365_API_KEY"

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

the rules themselves, from a file (see push365-setup rules --help):
  push365-setup rules push rules.yaml    replace the organization's rules with the file's
  push365-setup rules pull rules.yaml    write the rules Push365 holds to the file

A network failure ends the command with one line (push365-setup: cannot reach <host>: <reason>)
and exit status 1: run the same command again when the network is back.

example:
  push365-setup --environment https://contoso.crm4.dynamics.com --client-id <app id>
"""

RULES_EPILOG = f"""\
A rules file is YAML (.yaml, .yml) or JSON (.json): a list of rules, or "rules:" holding that
list, each as POST /register/rules takes it (table, message, recipients, title, body, link, stage,
max_depth). "-" reads standard input or writes standard output (YAML).

push checks the rules with Push365's own model first when the Push365 library is importable (a
repository checkout), so nothing is sent when one is wrong; then it replaces the organization's
rules and prints Push365's answer and warnings. Run push365-setup --environment ... again after a
push: it registers the steps and images the new rules need.

Where Push365 is and the organization's key come from the --state file the setup wrote
(push365-setup.json); --base-url, --function-prefix and {API_KEY_VARIABLE} override it.

examples:
  push365-setup rules pull rules.yaml
  push365-setup rules push rules.yaml
"""


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(
        prog=PROG,
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
        default=DEFAULT_PREFIX,
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
    command.add_argument(
        "--login-host",
        default=LOGIN_HOST,
        help=f"the Entra ID sign-in host ({LOGIN_HOST}; a national cloud's own, e.g. "
        "login.microsoftonline.us)",
    )
    return command


def rules_parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(
        prog=f"{PROG} rules",
        description="Keep the organization's Push365 event rules in a YAML or JSON file.",
        epilog=RULES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = command.add_subparsers(dest="action", required=True, metavar="{push,pull}")
    push = actions.add_parser("push", help="replace the organization's rules with the file's")
    pull = actions.add_parser("pull", help="write the rules Push365 holds to the file")
    for action in (push, pull):
        action.add_argument("file", help="the rules file (.yaml, .yml or .json; - for stdio)")
        action.add_argument(
            "--state",
            type=Path,
            default=Path("push365-setup.json"),
            help="the setup's state file: the organization's key and where Push365 is",
        )
        action.add_argument(
            "--base-url", default="", help="where the Push365 functions are (default: --state's)"
        )
        action.add_argument(
            "--function-prefix",
            default=None,
            help=f"prefix of the function names (default: --state's, else {DEFAULT_PREFIX})",
        )
    push.add_argument(
        "--service-check-only",
        action="store_true",
        help="send the rules without checking them here first (Push365 checks them anyway)",
    )
    return command


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def _unreachable(error: NetworkError) -> int:
    _say(f"{PROG}: {error}")
    return 1


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["rules"]:
        return rules_main(arguments[1:])
    args = parser().parse_args(arguments)
    if not args.client_id:
        _say("--client-id (or PUSH365_SETUP_CLIENT_ID) is required.")
        return 2
    from dynamics.setup.auth import SignInError, device_code_token

    transport = UrllibTransport()
    try:
        token = device_code_token(
            args.environment, args.client_id, args.tenant, sys.stderr, args.login_host
        )
        dataverse = WebApi(transport, args.environment, token)
        base_url = args.base_url or base_url_from_environment(dataverse)
        setup = Setup(
            dataverse,
            Push365(transport, base_url, args.function_prefix, signup_code=args.signup_code),
            State.load(args.state),
            args.page_size,
            say=_say,
        )
        report = setup.run()
    except NetworkError as error:
        return _unreachable(error)
    except (DataverseError, Push365Error) as error:
        _say(f"Stopped: {error}. Run the same command again to continue.")
        return 1
    except (SetupError, SignInError) as error:
        _say(f"Stopped: {error}")
        return 1
    print("\n".join(report.lines()))
    return 0


def rules_main(argv: list[str], transport: Transport | None = None) -> int:
    """``push365-setup rules push|pull FILE``: 0 done, 1 Push365 refused or was not reached,
    2 the file or the command line is wrong. ``transport``: the tests' (default: urllib)."""
    args = rules_parser().parse_args(argv)
    try:
        state = State.load(args.state) if args.state.exists() else State(args.state)
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, not an object
        _say(f"{args.state}: not a state file the setup wrote (give the right --state)")
        return 2
    key = os.environ.get(API_KEY_VARIABLE, "") or state.api_key
    base_url = args.base_url or state.base_url
    prefix = args.function_prefix
    if prefix is None:
        prefix = DEFAULT_PREFIX if state.function_prefix is None else state.function_prefix
    if not key or not base_url:
        _say(
            f"No organization key or Push365 base URL: run {PROG} --environment ... first (it "
            f"writes {args.state}), or give --state, --base-url and {API_KEY_VARIABLE}."
        )
        return 2
    push365 = Push365(transport or UrllibTransport(), base_url, prefix)
    try:
        if args.action == "push":
            return _push(push365, key, args.file, local_check=not args.service_check_only)
        held = push365.rules(key)
        try:
            rule_files.write_rules(args.file, held)
        except OSError as error:
            _say(f"{args.file}: cannot write it ({error.strerror or type(error).__name__})")
            return 2
        _say(f"Wrote {len(held)} rules to {args.file}.")
        return 0
    except NetworkError as error:
        return _unreachable(error)
    except Push365Error as error:
        _say(f"Stopped: {error}.")
        for detail in error.details:
            _say(f"  {detail}")
        return 1


def _push(push365: Push365, key: str, file: str, local_check: bool) -> int:
    try:
        rules = rule_files.read_rules(file)
    except rule_files.RulesFileError as error:
        _say(f"{file}: {error}")
        return 2
    except ImportError:
        _say(f"{file}: reading YAML needs PyYAML (pip install PyYAML), or give a .json file")
        return 2
    problems = rule_files.local_problems(rules) if local_check else None
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        _say(f"{file}: {count} (rules.N: the Nth rule, from 0), nothing sent:")
        for problem in problems:
            _say(f"  {problem}")
        return 2
    try:
        held, warnings = push365.set_rules(key, rules)
    except Push365Error as error:
        if error.status != 422:
            raise
        _say(f"{file}: Push365 refused the rules ({error.code}), nothing changed:")
        for detail in error.details:
            _say(f"  {detail}")
        return 2
    print(f"Push365 holds {held} rules from {file}.")
    for warning in warnings:
        print(f"Warning: {warning}")
    if problems is None and local_check:
        print("(Checked by Push365 only: the Push365 library is not importable here.)")
    print(f"Run {PROG} --environment ... again: it registers the steps these rules need.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
