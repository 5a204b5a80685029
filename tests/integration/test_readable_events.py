"""Events as real traffic carries them, through the real functions and store: lookups named from
the images and from Push365's own directory of users, custom APIs, stage 0, optional template
segments and text decoded twice; each previewed exactly as the send then delivers it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from devstack.fcm_server import LocalFcmServer
from tests.dataverse_events import (
    ALICE,
    BOB,
    NO_ID,
    choice,
    custom_api,
    event,
    system,
    user,
)
from tests.integration.conftest import Functions, register
from tests.integration.test_rules import HOST, send_and_collect, set_rules
from tests.integration.test_send import subscribe

CYRILLIC = "АаБб"
CYRILLIC_READ_AS_1252 = "Ð\x90Ð°Ð\u2018Ð±"

RULES: list[dict[str, Any]] = [
    {
        "table": "account",
        "message": "Update",
        "recipients": ["ownerid"],
        "title": "{name} updated[ by {modifiedby}]",
        "body": "Owner {ownerid}[, status {statuscode}][, since {new_since}]",
        "link": "record",
        "stage": "any",
    },
    {
        "table": "none",
        "message": "devkit_DebugCustomApi",
        "recipients": ["input.Assignee", "context.initiatinguserid"],
        "title": "{input.Text}[ ({input.RecordId})]",
        "body": "{output.Result}[ at {input.When}]",
        "link": "record",
    },
]


def account_update(**context: Any) -> dict[str, Any]:
    """The Target's lookups without names; the post-image names the owner only: the user who
    changed it is named from the directory."""
    return event(
        "account",
        "Update",
        {
            "telephone1": "+1 555 0100",
            "modifiedby": user(ALICE),
            "ownerid": user(BOB),
            "statuscode": choice(1),
            "new_since": system("DateTime", "/Date(1700000000000)/"),
        },
        post_image={"name": CYRILLIC_READ_AS_1252, "ownerid": user(BOB, "Bob Stone")},
        **context,
    )


def debug_api() -> dict[str, Any]:
    return custom_api(
        "devkit_DebugCustomApi",
        {
            "Text": "Hello from the API",
            "RecordId": system("Guid", NO_ID),
            "When": system("DateTime", "/Date(1700000000000)/"),
            "Assignee": user(BOB),
        },
        {"Result": "Done"},
        InitiatingUserId=ALICE,
    )


EVENTS: dict[str, tuple[Callable[[], dict[str, Any]], str, str]] = {
    "an update named from the images and the directory": (
        account_update,
        f"{CYRILLIC} updated by Alice Ng",
        "Owner Bob Stone, since 11/14/2023 10:13 PM UTC",
    ),
    "a stage 0 update (a workflow's) for a rule of any stage": (
        lambda: account_update(Stage=0, Mode=1),
        f"{CYRILLIC} updated by Alice Ng",
        "Owner Bob Stone, since 11/14/2023 10:13 PM UTC",
    ),
    "an unbound custom API": (
        debug_api,
        "Hello from the API",
        "Done at 11/14/2023 10:13 PM UTC",
    ),
}


@pytest.mark.parametrize("kind", list(EVENTS))
def test_real_traffic_reads_well_and_the_preview_equals_the_send(
    api: Functions, fcm: LocalFcmServer, kind: str
) -> None:
    key = register(api)
    users = [{"id": ALICE, "full_name": "Alice Ng"}, {"id": BOB, "full_name": "Bob Stone"}]
    assert api.post("/register/users", {"users": users}, key=key).status_code == 200
    subscribe(api, key, BOB, "bob-laptop")
    set_rules(api, key, RULES)
    make, title, body = EVENTS[kind]

    previewed = api.post("/register/rules/preview", make(), key=key, headers=HOST)
    answer, messages = send_and_collect(api, fcm, key, make(), HOST)

    assert previewed.status_code == 200, previewed.json
    (shown,) = [p for p in previewed.json["previews"] if p["sends"]]
    assert (shown["title"], shown["body"]) == (title, body)
    assert answer.status_code == 202, answer.json
    assert answer.json["sent"] == len(messages) == 1
    notification = messages[0]["webpush"]["notification"]
    assert (notification["title"], notification["body"]) == (title, body)
    assert messages[0]["webpush"].get("fcm_options", {}).get("link") == shown["link"]


def test_the_preview_shows_missing_columns_and_what_a_custom_api_rule_sees(
    api: Functions,
) -> None:
    key = register(api)
    set_rules(api, key, RULES)

    update = api.post("/register/rules/preview", account_update(), key=key, headers=HOST)
    custom = api.post("/register/rules/preview", debug_api(), key=key, headers=HOST)

    (shown,) = update.json["previews"]
    # no directory entry yet: a title never shows the id but what it is; a choice without a
    # label is missing, and its optional segment goes
    assert shown["title"] == f"{CYRILLIC} updated by a user"
    assert shown["body"] == "Owner Bob Stone, since 11/14/2023 10:13 PM UTC"
    assert shown["missing"] == ["statuscode"]
    (api_shown,) = custom.json["previews"]
    assert api_shown["link"] is None
    assert api_shown["missing"] == ["input.RecordId"]  # a GUID is never a title's text
    assert api_shown["input"] == ["Assignee", "RecordId", "Text", "When"]
    assert api_shown["output"] == ["Result"]
    assert api_shown["bound"] is False


def test_rules_for_custom_messages_and_any_stage_are_stored_as_sent(api: Functions) -> None:
    key = register(api)

    response = set_rules(api, key, RULES)

    assert response.json["rules"] == 2
    assert response.json["warnings"][0].startswith("Rule 1 runs at any stage")
    stored = api.request("GET", "/register/rules", key=key).json["rules"]
    assert [(r["table"], r["message"], r["stage"]) for r in stored] == [
        ("account", "update", "any"),
        ("none", "devkit_debugcustomapi", 40),
    ]
