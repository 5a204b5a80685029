"""Event rules through the real functions: real-shaped Dataverse bodies become the expected
message or a documented no-op (never a 4xx for their data), and a preview shows exactly what
the send then delivers, with nothing of it logged or stored."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest

from devstack.fcm_server import LocalFcmServer
from tests.conftest import example
from tests.dataverse_events import (
    ALICE,
    BOB,
    CAROL,
    CONTACT_ID,
    TEAM,
    choice,
    date,
    email_create,
    event,
    money,
    ref,
    user,
)
from tests.integration.conftest import (
    ORG,
    Answer,
    Functions,
    all_documents,
    register,
    registration,
    send_and_deliver,
    stored_state,
)
from tests.integration.test_send import subscribe

HOST = {"x-ms-dynamics-organization": "contoso.crm4.dynamics.com"}
LONG_MEMO = "Lorem ipsum dolor sit amet. " * 180
CANARY = "CANARY-71e0"

RULES: list[dict[str, Any]] = [
    {
        "table": "opportunity",
        "message": "Update",
        "recipients": ["ownerid"],
        "title": "{name} is {statuscode}",
        "body": "Worth {estimatedvalue}, closes {estimatedclosedate}",
        "link": "record",
    },
    {
        "table": "email",
        "message": "Create",
        "recipients": ["to", "context.initiatinguserid"],
        "title": "Email: {subject}",
        "body": "From {from} to {to}",
        "link": "record",
    },
    {
        "table": "opportunity",
        "message": "Delete",
        "recipients": ["ownerid", "context.userid"],
        "title": "{name} was deleted",
        "body": "It was worth {estimatedvalue}",
        "link": "record",
    },
    {
        "table": "contact",
        "message": "Update",
        "recipients": ["ownerid"],
        "title": "{fullname}",
        "body": "{description}",
        "link": "record",
    },
]


def send_and_collect(
    api: Functions, fcm: LocalFcmServer, key: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[Answer, list[dict[str, Any]]]:
    """Send, then the messages the local FCM server received for that send.

    The one place these tests depend on how ``/send`` delivers: when delivery moves behind an
    asynchronous fan-out, only this needs to wait for it.
    """
    fcm.clear()
    answer, final = send_and_deliver(api, body, key, headers=headers)
    if final is not None:  # 202: accepted, delivered by the fan-out; its final counts at the top
        merged = {**answer.json, **final["counts"], "recipients": final["recipients"]}
        answer = replace(answer, json=merged)
    return answer, [entry["message"] for entry in fcm.messages()]


def set_rules(api: Functions, key: str, rules: list[dict[str, Any]] = RULES) -> Answer:
    response = api.post("/register/rules", {"rules": rules}, key=key)
    assert response.status_code == 200, response.json
    return response


def opportunity_update() -> dict[str, Any]:
    body = copy.deepcopy(example("opportunity-update.json"))
    target = body["InputParameters"][0]["value"]
    target["Attributes"].append({"key": "estimatedclosedate", "value": date(1767225600000)})
    return body


def opportunity_delete() -> dict[str, Any]:
    return event(
        "opportunity",
        "Delete",
        pre_image={
            "name": "Fabrikam renewal",
            "ownerid": user(BOB, "Bob Stone"),
            "estimatedvalue": money(125000.0),
        },
        pre_formatted={"estimatedvalue": "125.000,00 \u20ac"},
        UserId=CAROL,
    )


def contact_long_memo() -> dict[str, Any]:
    return event(
        "contact",
        "Update",
        {"description": LONG_MEMO + "\u00e9" * 2000, "ownerid": user(BOB, "Bob Stone")},
    )


PREVIEWED = {
    "a standard table": opportunity_update,
    "an activity with parties": email_create,
    "a delete with a pre-image": opportunity_delete,
    "a long memo and no title column": contact_long_memo,
}


@pytest.mark.parametrize("kind", sorted(PREVIEWED))
def test_the_preview_equals_what_the_send_then_delivers(
    api: Functions, fcm: LocalFcmServer, kind: str
) -> None:
    key = register(api)
    subscribe(api, key, BOB, "bob-laptop", "bob-phone")
    subscribe(api, key, ALICE, "alice-laptop")
    subscribe(api, key, CAROL, "carol-laptop")
    set_rules(api, key)
    body = PREVIEWED[kind]()

    previewed = api.post("/register/rules/preview", body, key=key, headers=HOST)
    answer, messages = send_and_collect(api, fcm, key, body, HOST)

    assert previewed.status_code == 200
    (shown,) = [p for p in previewed.json["previews"] if p["sends"]]
    assert answer.status_code == 202
    assert answer.json["recipients"] == shown["recipients"]
    assert answer.json["sent"] == shown["devices"] == len(messages) > 0
    for message in messages:
        assert message["webpush"]["notification"]["title"] == shown["title"]
        assert message["webpush"]["notification"]["body"] == shown["body"]
        assert message["webpush"].get("fcm_options", {}).get("link") == shown["link"]


def test_what_the_previews_render(api: Functions, fcm: LocalFcmServer) -> None:
    key = register(api)
    subscribe(api, key, BOB, "bob-laptop")
    set_rules(api, key)

    shown = {
        kind: api.post("/register/rules/preview", make(), key=key, headers=HOST).json["previews"][0]
        for kind, make in PREVIEWED.items()
    }

    assert shown["a standard table"]["title"] == "Fabrikam renewal 2026 is In Progress"
    assert shown["a standard table"]["body"] == "Worth $125,000.00, closes 1/1/2026"
    assert shown["a standard table"]["link"].startswith("https://contoso.crm4.dynamics.com/")
    assert shown["an activity with parties"]["body"] == (
        "From Alice Ng to Bob Stone; Dana Diaz; someone@fabrikam.example"
    )
    assert shown["an activity with parties"]["recipients"] == 2  # Bob (to), Alice (initiating)
    assert shown["a delete with a pre-image"]["title"] == "Fabrikam renewal was deleted"
    assert shown["a delete with a pre-image"]["body"] == "It was worth 125.000,00 \u20ac"
    assert shown["a delete with a pre-image"]["link"] is None
    assert shown["a long memo and no title column"]["title"] == "Contact updated"
    assert shown["a long memo and no title column"]["body"].endswith("\u2026")
    assert fcm.messages() == []


def test_a_preview_sends_and_stores_nothing(
    api: Functions, store: Any, fcm: LocalFcmServer
) -> None:
    key = register(api)
    subscribe(api, key, BOB, "bob-laptop")
    set_rules(api, key)
    before = stored_state(store)

    response = api.post("/register/rules/preview", opportunity_update(), key=key, headers=HOST)

    assert response.json["previews"][0]["devices"] == 1
    assert fcm.messages() == []
    assert _without_times(stored_state(store)) == _without_times(before)


def _without_times(documents: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str]]:
    return sorted(
        (path, json.dumps({k: v for k, v in fields.items() if not k.endswith("_at")}, default=str))
        for path, fields in documents
    )


def test_a_preview_from_a_plain_description(api: Functions) -> None:
    key = register(api)
    set_rules(api, key)

    response = api.post(
        "/register/rules/preview",
        {
            "table": "contact",
            "message": "Update",
            "record_id": CONTACT_ID,
            "target": {
                "fullname": "Dana Diaz",
                "ownerid": {"Id": BOB, "LogicalName": "systemuser", "Name": "Bob Stone"},
            },
        },
        key=key,
        headers={"x-ms-dynamics-organization": "contoso"},  # a bare name: no link
    )

    assert response.status_code == 200
    (shown,) = response.json["previews"]
    assert shown == {
        "rule": 4,
        "table": "contact",
        "message": "update",
        "applies": True,
        "sends": True,
        "title": "Dana Diaz",
        "body": "",
        "link": None,
        "recipients": 1,
        "devices": 0,
        "teams_skipped": 0,
        "missing": ["description"],
    }


def test_a_preview_shows_rules_refused_for_their_stage(api: Functions) -> None:
    key = register(api)
    set_rules(api, key)

    response = api.post(
        "/register/rules/preview", opportunity_update() | {"Stage": 20}, key=key, headers=HOST
    )

    (shown,) = response.json["previews"]
    assert shown["applies"] is False
    assert shown["sends"] is False
    assert shown["reason_code"] == "stage"
    assert shown["title"] == "Fabrikam renewal 2026 is In Progress"


def test_a_canary_in_column_values_reaches_no_log_line_and_no_stored_document(
    api: Functions, store: Any, fcm: LocalFcmServer, capfd: pytest.CaptureFixture[str]
) -> None:
    key = register(api)
    subscribe(api, key, BOB, "bob-laptop")
    set_rules(api, key)
    body = email_create()
    target = body["InputParameters"][0]["value"]
    target["Attributes"][0]["value"] = f"{CANARY}-subject"
    target["Attributes"][2]["value"]["Entities"][0]["Attributes"][1]["value"]["Name"] = (
        f"{CANARY}-party"
    )
    target["FormattedValues"].append({"key": "subject", "value": f"{CANARY}-formatted"})
    bad_preview = {"table": "contact", "message": "Update", "target": {CANARY: [CANARY]}}

    previewed = api.post("/register/rules/preview", body, key=key, headers=HOST)
    refused = api.post("/register/rules/preview", bad_preview | {"stage": CANARY}, key=key)
    answer, messages = send_and_collect(api, fcm, key, body, HOST)

    # The canary did travel (the preview answered it, FCM received it)...
    assert CANARY in previewed.text
    assert any(CANARY in json.dumps(m) for m in messages)
    assert answer.status_code == 202
    assert refused.status_code == 422
    assert CANARY not in refused.text
    # ...and reached no log line and no document.
    out, err = capfd.readouterr()
    assert '"event": "api_call"' in out  # the audit records were captured
    assert CANARY not in out
    assert CANARY not in err
    assert [path for path, fields in all_documents(store) if CANARY in repr(fields)] == []


def test_recipients_that_name_nobody_answer_200_and_the_audit_record_says_so(
    api: Functions, fcm: LocalFcmServer, capfd: pytest.CaptureFixture[str]
) -> None:
    key = register(api)
    subscribe(api, key, BOB, "bob-laptop")
    set_rules(api, key)
    body = event("contact", "Update", {"fullname": "Dana Diaz", "ownerid": ref("team", TEAM)})
    capfd.readouterr()

    answer, messages = send_and_collect(api, fcm, key, body)

    assert answer.status_code == 200
    assert answer.json["matched"] is True
    assert answer.json["recipients"] == 0
    assert answer.json["teams_skipped"] == 1
    assert answer.json["reason_code"] == "no_recipients"
    assert messages == []
    records = [
        json.loads(line) for line in capfd.readouterr().out.splitlines() if "api_call" in line
    ]
    (record,) = [r for r in records if r["function"] == "send"]
    assert record["reason_code"] == "no_recipients"
    assert record["counts"]["recipients"] == 0
    assert record["counts"]["teams_skipped"] == 1


def _german_row() -> dict[str, Any]:
    row = example("notification-create.json")
    row["OrganizationId"] = ORG
    row["InputParameters"][0]["value"]["FormattedValues"][0]["value"] = "Hoch"
    return row


def _no_request_ids() -> dict[str, Any]:
    return opportunity_update() | {"RequestId": None, "OperationId": None}


# Each variation, and what it must come to: ("sent", devices) or ("no-op", reason_code).
VARIATIONS: dict[str, tuple[Any, tuple[str, Any]]] = {
    "opportunity update": (opportunity_update, ("sent", 1)),
    "stage 20 (pre-operation)": (lambda: opportunity_update() | {"Stage": 20}, ("no-op", "stage")),
    "stage 10 (pre-validation)": (lambda: opportunity_update() | {"Stage": 10}, ("no-op", "stage")),
    "depth 2 (a plug-in chain)": (lambda: opportunity_update() | {"Depth": 2}, ("no-op", "depth")),
    "no RequestId nor OperationId": (_no_request_ids, ("sent", 1)),
    "email with parties": (email_create, ("sent", 1)),  # Bob; Alice has no browser
    "delete with a pre-image": (opportunity_delete, ("sent", 2)),
    "delete without a pre-image": (
        lambda: event("opportunity", "Delete", UserId=CAROL),
        ("sent", 1),
    ),
    "delete without a pre-image by a user with no browser": (
        lambda: event("opportunity", "Delete", UserId=ALICE),
        ("sent", 0),
    ),
    "very long memo": (contact_long_memo, ("sent", 1)),
    "contact update without the title column": (
        lambda: event("contact", "Update", {"telephone1": "1", "ownerid": user(BOB)}),
        ("sent", 1),
    ),
    "contact owned by a team": (
        lambda: event("contact", "Update", {"fullname": "x", "ownerid": ref("team", TEAM)}),
        ("no-op", "no_recipients"),
    ),
    "a table no rule names": (lambda: event("account", "Update", {}), ("no-op", "no_rule")),
    "every column type with German labels": (
        lambda: event(
            "contact",
            "Update",
            {
                "fullname": "Jürgen Groß",
                "description": None,
                "gendercode": choice(1),
                "birthdate": date(320716800000),
                "creditlimit": money(1000.5),
                "donotemail": True,
                "numberofchildren": 2,
                "parentcustomerid": ref("account", CONTACT_ID, "Fabrikam GmbH"),
                "ownerid": user(BOB, "Bob Stone"),
            },
            {"gendercode": "Männlich", "donotemail": "Nicht zulassen", "creditlimit": "1.000,50 €"},
        ),
        ("sent", 1),
    ),
    "notification row with a German urgency label": (_german_row, ("sent", 1)),
}


@pytest.mark.parametrize("name", list(VARIATIONS))
def test_real_shaped_events_become_a_message_or_a_documented_no_op(
    api: Functions, fcm: LocalFcmServer, name: str
) -> None:
    key = register(api)
    subscribe(api, key, BOB, "bob-laptop")
    subscribe(api, key, CAROL, "carol-laptop")
    set_rules(api, key)
    make, (outcome, expected) = VARIATIONS[name]

    answer, messages = send_and_collect(api, fcm, key, make(), HOST)

    assert answer.status_code == (202 if outcome == "sent" else 200), answer.json
    if outcome == "sent":
        assert answer.json["sent"] == expected == len(messages)
    else:
        assert answer.json["reason_code"] == expected
        assert messages == []


def test_the_german_row_is_sent_with_the_urgency_header(
    api: Functions, fcm: LocalFcmServer
) -> None:
    key = register(api)
    subscribe(api, key, BOB, "bob-laptop")

    _, messages = send_and_collect(api, fcm, key, _german_row())

    assert messages[0]["webpush"]["headers"]["Urgency"] == "high"


def test_saving_a_rule_for_stage_20_answers_a_warning(api: Functions) -> None:
    key = register(api)
    rules = [RULES[0], RULES[1] | {"stage": 20}]

    response = set_rules(api, key, rules)

    assert response.json == {
        "rules": 2,
        "warnings": [
            "Rule 2 runs at stage 20, before the change is committed: "
            "it can notify about a save that is then rolled back."
        ],
    }
    stored = api.request("GET", "/register/rules", key=key).json["rules"]
    assert [(r["stage"], r["max_depth"]) for r in stored] == [(40, 1), (20, 1)]


def test_a_bare_organization_header_links_through_the_registered_url(api: Functions) -> None:
    key = register(api)
    set_rules(api, key)
    bare = {"x-ms-dynamics-organization": "contoso"}

    def link() -> Any:
        response = api.post("/register/rules/preview", opportunity_update(), key=key, headers=bare)
        return response.json["previews"][0]["link"]

    assert link() is None
    organization = registration()["organization"] | {"url": "https://contoso.crm.dynamics.com/"}
    updated = api.post("/register", registration(organization=organization), key=key)
    assert updated.status_code == 200
    assert link() == (
        "https://contoso.crm.dynamics.com/main.aspx?etn=opportunity"
        "&id=0dd00000-0000-4000-8000-000000000042&pagetype=entityrecord"
    )


def test_a_url_with_a_path_is_refused_without_echo(api: Functions) -> None:
    organization = registration()["organization"] | {"url": f"https://x.example/{CANARY}"}

    response = api.post("/register", registration(organization=organization))

    assert response.status_code == 422
    assert CANARY not in response.text
