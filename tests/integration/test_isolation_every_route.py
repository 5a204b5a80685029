"""Two organizations in every read path (issue 26 item 3): every route that takes an
organization, called by each of two organizations that share a Dynamics user id and hold
overlapping data, answers only about the caller's and changes nothing of the other's.

The routes are found from each function's ``api`` (``functions/*.py``): a route with no case
below, and not listed as taking no organization, fails. Both orders run: each organization is
set up and acts first in one of them, and the ids are chosen so that each sorts first in one
(Firestore lists a collection group in path order, so a read that reaches past its organization
and takes the first match is right for one of them only). The organizations hold different
amounts (one device and one send, against two), so a count that reads both is wrong for both.
The checks read the answers only, not how a route finds them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from devstack.fcm_server import LocalFcmServer
from tests.integration.conftest import (
    BOB,
    Answer,
    Fanout,
    Functions,
    all_documents,
    dataverse,
    register,
    registration,
)
from tests.integration.test_audit_contract import ROUTES

LOW = "0a0a0a0a-1111-4222-8333-444444444401"  # sorts before every other organization id
HIGH = "fefefefe-1111-4222-8333-444444444402"  # sorts after every other organization id
ORDERS = [pytest.param((LOW, HIGH), id="low-first"), pytest.param((HIGH, LOW), id="high-first")]


@dataclass
class Tenant:
    """One organization of the pair: its key, and what it holds (``size`` devices of BOB and
    ``size`` sends to him, every text marked with the first 8 characters of its id)."""

    org: str
    key: str
    size: int
    sent: list[str] = field(default_factory=list)

    @property
    def mark(self) -> str:
        return self.org[:8]

    @property
    def name(self) -> str:
        return f"Bob of {self.mark}"

    def tokens(self) -> list[str]:
        return [f"dev-{self.mark}-{n}" for n in range(self.size)]


def rule(tenant: Tenant) -> dict[str, Any]:
    return {
        "table": "opportunity",
        "message": "Update",
        "recipients": ["ownerid"],
        "title": f"Rule of {tenant.mark}",
    }


def set_up(api: Functions, queue: Fanout, order: tuple[str, str]) -> list[Tenant]:
    tenants = []
    for size, org in enumerate(order, start=1):
        tenant = Tenant(org, register(api, org), size)
        user = {"id": BOB, "full_name": tenant.name}
        assert api.post("/register/users", {"users": [user]}, key=tenant.key).status_code == 200
        for token in tenant.tokens():
            answer = api.post("/subscribe", {"user_id": BOB, "instance_id": token}, key=tenant.key)
            assert answer.status_code == 201
        answer = api.post("/register/rules", {"rules": [rule(tenant)]}, key=tenant.key)
        assert answer.status_code == 200
        for _ in range(size):
            body = {"recipients": [BOB], "title": f"T {tenant.mark}", "body": "b"}
            accepted = api.post("/send", body, key=tenant.key)
            assert accepted.status_code == 202
            tenant.sent.append(accepted.json["notification_id"])
        tenants.append(tenant)
    queue.deliver()  # batches and delivery records for both
    return tenants


Case = Callable[[Functions, Tenant, Tenant], Answer]


def _get_rules(api: Functions, me: Tenant, _other: Tenant) -> Answer:
    answer = api.get("/register/rules", key=me.key)
    assert [r["title"] for r in answer.json["rules"]] == [rule(me)["title"]]
    return answer


def _preview(api: Functions, me: Tenant, _other: Tenant) -> Answer:
    body = dataverse("opportunity-update.json", me.org)
    answer = api.post("/register/rules/preview", body, key=me.key)
    (preview,) = answer.json["previews"]
    assert preview["devices"] == me.size
    return answer


def _status(api: Functions, me: Tenant, other: Tenant) -> Answer:
    theirs = api.get("/send/status", key=me.key, query={"notification_id": other.sent[0]})
    assert theirs.status_code == 404
    answer = api.get("/send/status", key=me.key, query={"notification_id": me.sent[0]})
    assert answer.json["devices"] == me.size
    return answer


def _stats(api: Functions, me: Tenant, _other: Tenant) -> Answer:
    answer = api.get("/send/stats", key=me.key, query={"days": "2"})
    days = answer.json["per_day"]
    assert sum(d["notifications"] for d in days) == me.size
    assert sum(d["devices_sent"] for d in days) == me.size * me.size
    assert days[-1]["subscriptions_active"] == me.size
    return answer


def _export(api: Functions, me: Tenant, _other: Tenant) -> Answer:
    answer = api.get("/privacy/export", key=me.key)
    exported = answer.json
    assert exported["organization"]["id"] == me.org
    assert [u["full_name"] for u in exported["users"]] == [me.name]
    assert sorted(s["instance_id"] for s in exported["subscriptions"]) == me.tokens()
    assert sorted(n["id"] for n in exported["notifications"]) == sorted(me.sent)
    return answer


def _export_user(api: Functions, me: Tenant, _other: Tenant) -> Answer:
    answer = api.get("/privacy/export", key=me.key, query={"user_id": BOB})
    exported = answer.json
    assert exported["user"]["full_name"] == me.name
    assert sorted(s["instance_id"] for s in exported["subscriptions"]) == me.tokens()
    assert sorted(n["id"] for n in exported["notifications"]) == sorted(me.sent)
    return answer


def _update(api: Functions, me: Tenant, _other: Tenant) -> Answer:
    answer = api.post("/register", registration(me.org), key=me.key)
    assert answer.json == {"organization_id": me.org}
    return answer


def _users(api: Functions, me: Tenant, _other: Tenant) -> Answer:
    user = {"id": BOB, "full_name": me.name, "email": f"bob@{me.mark}.example"}
    answer = api.post("/register/users", {"users": [user]}, key=me.key)
    assert answer.json == {"upserted": 1}
    return answer


def _set_rules(api: Functions, me: Tenant, _other: Tenant) -> Answer:
    answer = api.post("/register/rules", {"rules": [rule(me)]}, key=me.key)
    assert answer.json["rules"] == 1
    return answer


def _subscribe(api: Functions, me: Tenant, _other: Tenant) -> Answer:
    token = f"dev-{me.mark}-new"
    answer = api.post("/subscribe", {"user_id": BOB, "instance_id": token}, key=me.key)
    assert answer.status_code == 201
    return answer


def _unsubscribe(api: Functions, me: Tenant, _other: Tenant) -> Answer:
    answer = api.post("/unsubscribe", {"user_id": BOB}, key=me.key)
    assert answer.json["unsubscribed"] == me.size + 1  # with the one just subscribed
    return answer


def _send(api: Functions, me: Tenant, _other: Tenant) -> Answer:
    body = {"recipients": [BOB], "title": f"T {me.mark}", "body": "b"}
    answer = api.post("/send", body, key=me.key)
    assert answer.status_code == 202
    me.sent.append(answer.json["notification_id"])
    return answer


def _rotate_key(api: Functions, me: Tenant, _other: Tenant) -> Answer:
    answer = api.post("/register/rotate-key", {}, key=me.key)
    assert answer.json["organization_id"] == me.org
    me.key = answer.json["api_key"]
    return answer


def _revoke_previous_key(api: Functions, me: Tenant, _other: Tenant) -> Answer:
    answer = api.post("/register/revoke-previous-key", key=me.key, content_type=None)
    assert answer.json["organization_id"] == me.org
    return answer


def _erase(api: Functions, me: Tenant, _other: Tenant) -> Answer:
    answer = api.post("/privacy/erase", {"user_id": BOB}, key=me.key)
    erased = answer.json["erased"]
    assert (erased["users"], erased["notifications"]) == (1, len(me.sent))
    assert erased["subscriptions"] == me.size + 1
    return answer


CASES: dict[tuple[str, str, str], Case] = {
    ("register", "/rules", "GET"): _get_rules,
    ("register", "/rules/preview", "POST"): _preview,
    ("send", "/status", "GET"): _status,
    ("send", "/stats", "GET"): _stats,
    ("privacy", "/export", "GET"): _export,
    ("register", "/", "POST"): _update,
    ("register", "/users", "POST"): _users,
    ("register", "/rules", "POST"): _set_rules,
    ("subscribe", "/", "POST"): _subscribe,
    ("unsubscribe", "/", "POST"): _unsubscribe,
    ("send", "/", "POST"): _send,
    ("register", "/rotate-key", "POST"): _rotate_key,
    ("register", "/revoke-previous-key", "POST"): _revoke_previous_key,
    ("privacy", "/erase", "POST"): _erase,
}
"""Every route that takes an organization -> its case, run in this order (reads, then writes,
the erasure last). ``/privacy/export`` runs once more for one user (below)."""

NO_ORGANIZATION = {
    ("register", "/signup-codes", "POST"): "the operator's, for an organization not registered",
    ("register", "/confirm-email", "GET"): "the mailed link's page: reads nothing",
    ("register", "/confirm-email", "POST"): "the link's token names its organization",
    ("receipt", "/", "POST"): "the receipt names its organization, device and batch",
    ("purge", "/", "POST"): "every organization's due records (the scheduler's)",
    ("reconcile", "/", "POST"): "every organization's unfinished sends (the scheduler's)",
}


def test_every_route_has_a_case_or_takes_no_organization() -> None:
    assert set(CASES).isdisjoint(NO_ORGANIZATION)
    assert set(CASES) | set(NO_ORGANIZATION) == ROUTES


def tree(store: Any, org: str) -> list[tuple[str, dict[str, Any]]]:
    return [(p, f) for p, f in all_documents(store) if p.startswith(f"organizations/{org}")]


@pytest.mark.parametrize("order", ORDERS)
def test_every_route_answers_each_organization_about_its_own_only(
    api: Functions, queue: Fanout, fcm: LocalFcmServer, store: Any, order: tuple[str, str]
) -> None:
    first, second = set_up(api, queue, order)

    for me, other in ((first, second), (second, first)):
        others_before = tree(store, other.org)
        answers: dict[str, Answer] = {}
        for (function, route, method), case in CASES.items():
            answers[f"{method} /{function}{route}"] = case(api, me, other)
            if case is _export:
                answers["GET /privacy/export?user_id"] = _export_user(api, me, other)

        wrong = {
            name: (a.status_code, a.text[:300])
            for name, a in answers.items()
            if not 200 <= a.status_code < 300 or other.mark in a.text or other.org in a.text
        }
        assert wrong == {}
        assert not [nid for nid in other.sent if any(nid in a.text for a in answers.values())]
        assert tree(store, other.org) == others_before
