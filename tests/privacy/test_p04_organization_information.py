"""P4 (Information We Collect: Organization Information): only the listed fields about the
instance, the business and its system administrators are stored."""

from __future__ import annotations

from push365.organizations.model import Registration
from tests.privacy.conftest import ORG, Services, listed, policy, under


def nested(name: str) -> set[str]:
    return set(policy()["collections"]["organizations"]["nested"][name])


def test_a_registration_stores_only_the_listed_fields(services: Services) -> None:
    body = {
        "organization": {"id": ORG, "unique_name": "u", "name": "C", "language_code": 1033},
        "business": {n: "x" for n in ("name", "phone", "email", "country", "address", "vat")},
        "admins": [
            {
                n: "x@y.example" if n == "email" else "x"
                for n in ("full_name", "email", "mobile_phone", "birthday")
            }
        ],
        "crm_version": "9.2",
    }

    services.organizations.register(Registration.model_validate(body), None)

    ((_, stored),) = under(services.client, ORG)
    assert set(stored) <= listed("organizations")
    assert set(stored["business"]) <= nested("business")
    assert set(stored["admins"][0]) <= nested("admins")


def test_an_update_stores_only_the_listed_fields(services: Services) -> None:
    key = services.register()
    body = {
        "organization": {"id": ORG, "unique_name": "u", "name": "C", "language_code": 1033},
        "business": {"name": "y", "vat": "DE1"},
        "admins": [{"full_name": "B", "birthday": "1990"}],
    }

    services.organizations.register(Registration.model_validate(body), key)

    ((_, stored),) = under(services.client, ORG)
    assert set(stored) <= listed("organizations")
    assert set(stored["business"]) <= nested("business")
    assert set(stored["admins"][0]) <= nested("admins")
