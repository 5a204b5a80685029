"""P11 (Data Security, Data Integrity and Access): no unauthorized access. Each organization's
data is reachable only with its key, even when two share a user id; keys and receipts are kept
only as hashes; a key in a URL (``?code=``, which the platform's request logs keep) is refused
by every organization registered since that setting exists."""

from __future__ import annotations

import flask
import pytest
from google.cloud import firestore

from push365.audit.record import AuditRecord
from push365.errors import QueryKeyRefused, Unauthorized
from push365.organizations.keys import hash_key
from push365.organizations.model import Registration
from push365.subscriptions.repository import DEVICES_LISTED, SCAN_ABOVE
from push365.web.api import ApiRequest
from tests.privacy.conftest import BOB, ORG, OTHER_ORG, Services, every_document, under


@pytest.mark.parametrize("acting", [ORG, OTHER_ORG])
@pytest.mark.parametrize("path", ["listed", "unlisted", "many"])
def test_a_send_plans_only_its_own_organizations_devices_of_a_shared_user_id(
    services: Services, acting: str, path: str
) -> None:
    # Every way a plan finds devices, from both organizations: a few users by the lists on
    # their records, a few whose records are not known complete (kept from before) by the
    # query, more than SCAN_ABOVE users by one scan.
    other = OTHER_ORG if acting == ORG else ORG
    services.register(ORG)
    services.register(OTHER_ORG)
    mine = services.subscribe(acting, BOB, "bob-here")
    services.subscribe(other, BOB, "bob-there")
    recipients = [BOB]
    if path == "unlisted":
        for org in (ORG, OTHER_ORG):
            user = services.client.collection("organizations", org, "users").document(BOB)
            user.update({DEVICES_LISTED: firestore.DELETE_FIELD})
    if path == "many":
        recipients += [f"{n:08x}-0000-4000-8000-000000000000" for n in range(SCAN_ABOVE)]

    ids = services.subscription_store.active_subscription_ids(acting, recipients)
    paged = list(
        services.subscription_store.active_subscription_ids_after(acting, recipients, None)
    )
    devices = services.subscription_store.active_devices_by_id(acting, ids)

    assert ids == paged == [mine]
    assert [d.instance_id for d in devices.values()] == ["bob-here"]


def test_unsubscribing_a_shared_user_id_touches_only_its_organization(
    services: Services,
) -> None:
    from push365.subscriptions.model import Unsubscribe

    services.register(ORG)
    services.register(OTHER_ORG)
    services.subscribe(ORG, BOB, "bob-at-org")
    services.subscribe(OTHER_ORG, BOB, "bob-at-other")
    theirs = under(services.client, OTHER_ORG)

    services.subscriptions.unsubscribe(ORG, Unsubscribe(user_id=BOB))
    services.users.remove(ORG, BOB)

    assert under(services.client, OTHER_ORG) == theirs


def test_the_key_is_stored_only_as_its_hash(services: Services) -> None:
    key = services.register()

    stored = every_document(services.client)

    assert key not in repr(stored)
    assert key.rsplit(".", 1)[-1] not in repr(stored)
    assert dict(stored)[f"organizations/{ORG}"]["api_key_hash"] == hash_key(key)


def test_one_organizations_key_never_opens_another(services: Services) -> None:
    services.register(ORG)
    other_key = services.register(OTHER_ORG)

    assert services.organizations.authenticate(other_key).id == OTHER_ORG
    with pytest.raises(Unauthorized):
        services.organizations.authenticate(other_key.replace(OTHER_ORG, ORG))


def request_with(query: str = "", header: str | None = None) -> ApiRequest:
    app = flask.Flask(__name__)
    headers = {} if header is None else {"X-Push365-Key": header}
    with app.test_request_context(f"/x{query}", headers=headers):
        return ApiRequest(flask.request._get_current_object(), AuditRecord("x", "/", "GET"))  # type: ignore[attr-defined]


def test_a_key_in_the_query_string_is_told_apart_from_one_in_the_header() -> None:
    assert request_with("?code=k").key_in_query
    assert not request_with("?code=k", header="k").key_in_query
    assert not request_with(header="k").key_in_query


def test_a_new_organization_refuses_its_key_in_the_query_string(services: Services) -> None:
    key = services.register()

    with pytest.raises(QueryKeyRefused):
        request_with(f"?code={key}").authenticate(services.organizations.identify)
    with pytest.raises(QueryKeyRefused):
        services.organizations.register(registration(), key, key_in_query=True)
    assert request_with(header=key).authenticate(services.organizations.identify).id == ORG


def test_an_organization_may_ask_for_the_query_string_and_one_from_before_keeps_it(
    services: Services,
) -> None:
    from google.cloud import firestore

    key = services.register(accept_query_key=True)
    other_key = services.register(OTHER_ORG)
    services.client.collection("organizations").document(OTHER_ORG).update(
        {"query_key_allowed": firestore.DELETE_FIELD}  # registered before the setting existed
    )

    mine = request_with(f"?code={key}").authenticate(services.organizations.identify)
    theirs = request_with(f"?code={other_key}").authenticate(services.organizations.identify)

    assert (mine.id, theirs.id) == (ORG, OTHER_ORG)


def registration() -> Registration:
    return Registration.model_validate(
        {"organization": {"id": ORG, "unique_name": "u", "name": "C", "language_code": 1033}}
    )
