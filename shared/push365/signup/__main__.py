"""``python -m push365.signup ORGANIZATION_ID``: issue a signup code straight into the store
``FIRESTORE_EMULATOR_HOST`` / ``GOOGLE_CLOUD_PROJECT`` name (Application Default Credentials in
production), for an operator without the admin key. Prints the code and its expiry once."""

from __future__ import annotations

import argparse
import json

from push365 import bootstrap
from push365.model import Guid, InputModel, validate


class _Arguments(InputModel):
    organization_id: Guid


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m push365.signup", description=__doc__)
    parser.add_argument("organization_id", help="the Dynamics organization id the code admits")
    arguments = validate(_Arguments, vars(parser.parse_args()))
    issued = bootstrap.signup().issue(arguments.organization_id)
    print(
        json.dumps({"signup_code": issued.signup_code, "expires_at": issued.expires_at.isoformat()})
    )


if __name__ == "__main__":
    main()
