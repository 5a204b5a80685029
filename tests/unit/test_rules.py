"""Event rules over Dataverse bodies in the real shape: every event becomes the expected
notification or a documented no-op, never a validation error for the data it carries."""

from __future__ import annotations

from typing import Any

import pytest

from push365.dataverse import parse_execution_context
from push365.errors import ValidationFailed
from push365.model import validate
from push365.notifications.dataverse import NothingToSend, dedup_key, send_from_context
from push365.notifications.model import FCM_PAYLOAD_LIMIT, Rule, RuleSet, SendRequest
from push365.notifications.rules import default_title, record_url, truncate
from push365.notifications.service import payload_size
from tests.conftest import example
from tests.dataverse_events import (
    ALICE,
    BOB,
    CAROL,
    CONTACT_ID,
    ORG,
    RECORD_ID,
    TEAM,
    choice,
    choices,
    date,
    email_create,
    event,
    money,
    parties,
    party,
    ref,
    user,
)

HOST = "contoso.crm4.dynamics.com"
LONG_MEMO = "Lorem ipsum dolor sit amet. " * 180  # 5,040 characters


def rule(**fields: Any) -> dict[str, Any]:
    return {"table": "contact", "message": "Update", "recipients": ["ownerid"]} | fields


def outcome(
    body: dict[str, Any], *rules: dict[str, Any], host: str | None = HOST, **options: Any
) -> SendRequest | NothingToSend:
    context = parse_execution_context(body)
    return send_from_context(context, [validate(Rule, r) for r in rules], host, **options)


def sent(body: dict[str, Any], *rules: dict[str, Any], **options: Any) -> SendRequest:
    result = outcome(body, *rules, **options)
    assert isinstance(result, SendRequest), getattr(result, "answer", lambda: result)()
    return result


def nothing(body: dict[str, Any], *rules: dict[str, Any]) -> dict[str, object]:
    result = outcome(body, *rules)
    assert isinstance(result, NothingToSend)
    return result.answer()


# --- the examples as they are -------------------------------------------------------------


def test_the_opportunity_example_renders_formatted_values_and_a_record_link() -> None:
    request = sent(
        example("opportunity-update.json"),
        rule(
            table="opportunity",
            title="{name} is {statuscode}",
            body="Worth {estimatedvalue}, owner {ownerid}{missing}",
            link="record",
        ),
    )

    assert request.recipients == [BOB]
    assert request.title == "Fabrikam renewal 2026 is In Progress"
    assert request.body == "Worth $125,000.00, owner Bob Stone"
    assert request.link == (
        f"https://{HOST}/main.aspx?etn=opportunity"
        "&id=0dd00000-0000-4000-8000-000000000042&pagetype=entityrecord"
    )


def test_the_notification_row_example_reads_urgency_by_value() -> None:
    request = sent(example("notification-create.json"))

    assert request.urgency == "high"
    assert request.ttl_seconds == 3600
    assert request.recipients == [ALICE, BOB]


# --- long values: shortened, never a 422 --------------------------------------------------


def test_a_long_memo_and_a_long_title_are_cut_with_an_ellipsis_and_fit_fcm() -> None:
    body = event(
        "contact",
        "Update",
        {"description": LONG_MEMO, "fullname": "N" * 4000, "ownerid": user(BOB)},
    )

    request = sent(body, rule(title="{fullname}", body="{description}"))

    assert len(request.title) <= 1024
    assert request.title.endswith("\u2026")
    assert request.body.startswith("Lorem ipsum")
    assert request.body.endswith("\u2026")
    assert payload_size(request.web_push(), None) <= FCM_PAYLOAD_LIMIT


def test_multibyte_text_is_shortened_by_bytes_body_first() -> None:
    body = event(
        "contact",
        "Update",
        {"fullname": "\U0001f600" * 300, "description": "\u00e9" * 4000, "ownerid": user(BOB)},
    )

    request = sent(body, rule(title="{fullname}", body="{description}"))

    assert request.title == "\U0001f600" * 300  # 1,200 bytes: kept whole
    assert 0 < len(request.body) < 4000
    assert request.body.endswith("\u2026")
    assert payload_size(request.web_push(), None) <= FCM_PAYLOAD_LIMIT


def test_an_oversized_title_alone_is_shortened_until_the_message_fits() -> None:
    body = event("contact", "Update", {"fullname": "\U0001f600" * 1500, "ownerid": user(BOB)})

    receipt_url = "https://europe-west1-push365.cloudfunctions.net/receipt"

    request = sent(
        body, rule(title="{fullname}", body="x" * 100, link="record"), receipt_url=receipt_url
    )

    assert request.body == ""
    assert request.title.endswith("\u2026")
    assert (
        FCM_PAYLOAD_LIMIT - 8 < payload_size(request.web_push(), receipt_url) <= FCM_PAYLOAD_LIMIT
    )


def test_truncation_never_leaves_a_combining_mark_without_its_base() -> None:
    assert truncate("cafe\u0301 au lait", 5) == "cafe\u2026"
    assert truncate("short", 5) == "short"


# --- missing columns, default titles ------------------------------------------------------


def test_an_update_without_the_templated_column_gets_a_default_title() -> None:
    body = event("contact", "Update", {"telephone1": "+1 555 0199", "ownerid": user(BOB)})

    request = sent(body, rule(title="{fullname}", body="{fullname} now at {telephone1}"))

    assert request.title == "Contact updated"
    assert request.body == "now at +1 555 0199"  # never the placeholder text


def test_default_titles_name_the_table_and_the_message() -> None:
    assert default_title("incident", "Create") == "Case created"
    assert default_title("phonecall", "Delete") == "Phone call deleted"
    assert default_title("new_projecttask", "Assign") == "Projecttask assigned"
    assert default_title("new_thing", "new_CustomAction") == "Custom action (Thing)"
    assert default_title("none", "devkit_DebugCustomApi") == "Debug custom api"


def test_a_post_image_fills_columns_the_update_did_not_touch() -> None:
    body = event(
        "contact",
        "Update",
        {"telephone1": "+1 555 0199"},
        post_image={"fullname": "Dana Diaz", "ownerid": user(BOB, "Bob Stone")},
    )

    request = sent(body, rule(title="{fullname} changed"))

    assert request.title == "Dana Diaz changed"
    assert request.recipients == [BOB]


# --- every column type --------------------------------------------------------------------

EVERY_TYPE: dict[str, Any] = {
    "name": "Fabrikam",
    "numberofemployees": 250,
    "exchangerate": 1.25,
    "donotemail": True,
    "creditonhold": False,
    "revenue": money(125000.0),
    "creditlimit": money(5000.5),
    "industrycode": choice(7),
    "new_regions": choices(1, 3),
    "new_tags": choices(2),
    "primarycontactid": ref("contact", CONTACT_ID, "Dana Diaz"),
    "parentaccountid": ref("account", RECORD_ID),
    "createdon": date(1764400000000),
    "new_duedate": date(1764374400000),  # midnight UTC: a date-only column
    "new_unknown": {"__type": "Whatever:x", "Value": 1},
    "new_nothing": None,
    "ownerid": user(BOB, "Bob Stone"),
}
EVERY_TYPE_FORMATTED = {
    "donotemail": "Do Not Allow",
    "revenue": "$125,000.00",
    "industrycode": "Consulting",
    "new_regions": "North; South",
}
EVERY_TYPE_RENDERED = {
    "name": "Fabrikam",
    "numberofemployees": "250",
    "exchangerate": "1.25",
    "donotemail": "Do Not Allow",
    "creditonhold": "false",
    "revenue": "$125,000.00",
    "creditlimit": "5000.5",
    "industrycode": "Consulting",
    "new_regions": "North; South",
    "new_tags": "",  # a choice without a label: never a bare number
    "primarycontactid": "Dana Diaz",
    "parentaccountid": RECORD_ID,
    "createdon": "11/29/2025 7:06 AM UTC",
    "new_duedate": "11/29/2025",
    "new_unknown": "",
    "new_nothing": "",
}


@pytest.mark.parametrize("column", sorted(EVERY_TYPE_RENDERED))
def test_every_column_type_renders_as_a_user_reads_it(column: str) -> None:
    body = event("account", "Update", EVERY_TYPE, EVERY_TYPE_FORMATTED)

    request = sent(
        body, rule(table="account", title="T", body=f"<{{{column}}}>"), language_code=1033
    )

    assert request.body == f"<{EVERY_TYPE_RENDERED[column]}>"


@pytest.mark.parametrize(
    ("language_code", "expected"),
    [
        (1033, "11/29/2025 7:06 AM UTC"),
        (1031, "29.11.2025 07:06 UTC"),
        (2057, "29/11/2025 07:06 UTC"),
        (1036, "29/11/2025 07:06 UTC"),
        (1041, "2025/11/29 07:06 UTC"),
        (None, "2025-11-29 07:06 UTC"),
    ],
)
def test_dates_follow_the_organization_language(language_code: int | None, expected: str) -> None:
    body = event(
        "account",
        "Update",
        {"createdon": date(1764400000000), "ownerid": user(BOB)},
        {"createdon": "2025-11-29T07:06:40-00:00"},
    )

    request = sent(
        body, rule(table="account", title="T", body="{createdon}"), language_code=language_code
    )

    assert request.body == expected


def test_choices_render_their_non_english_label_and_urgency_is_read_by_value() -> None:
    row = example("notification-create.json")
    target = row["InputParameters"][0]["value"]
    target["FormattedValues"] = [{"key": "p365_urgency", "value": "Hoch"}]

    assert sent(row).urgency == "high"

    body = event("incident", "Update", {"statuscode": choice(2), "ownerid": user(BOB)})
    body["InputParameters"][0]["value"]["FormattedValues"] = [
        {"key": "statuscode", "value": "In Bearbeitung"}
    ]
    assert sent(body, rule(table="incident", title="{statuscode}")).title == "In Bearbeitung"


@pytest.mark.parametrize(("value", "urgency"), [(0, "low"), (1, "normal"), (3, "very-low")])
def test_every_urgency_value_and_an_unknown_one(value: int, urgency: str) -> None:
    row = example("notification-create.json")
    attributes = row["InputParameters"][0]["value"]["Attributes"]
    next(a for a in attributes if a["key"] == "p365_urgency")["value"] = choice(value)
    assert sent(row).urgency == urgency

    next(a for a in attributes if a["key"] == "p365_urgency")["value"] = choice(100000007)
    assert sent(row).urgency is None


# --- activities and their parties ---------------------------------------------------------


def test_activity_parties_render_by_name_and_their_users_are_recipients() -> None:
    request = sent(
        email_create(party(ref("team", TEAM, "Sales"))),
        rule(
            table="email",
            message="Create",
            recipients=["to"],
            title="{subject}",
            body="From {from} to {to}",
        ),
    )

    assert request.body == (
        "From Alice Ng to Bob Stone; Dana Diaz; someone@fabrikam.example; Sales"
    )
    assert request.recipients == [BOB]  # the contact, the address and the team are not users


def test_a_custom_activity_with_party_lists() -> None:
    body = event(
        "new_sitevisit",
        "Update",
        {
            "requiredattendees": parties(party(user(BOB, "Bob Stone")), party(user(CAROL))),
            "scheduledstart": date(1764403200000),
        },
    )

    request = sent(
        body,
        rule(
            table="new_sitevisit",
            recipients=["requiredattendees"],
            title="Visit at {scheduledstart}",
            body="{requiredattendees}",
        ),
        language_code=1031,
    )

    assert request.recipients == [BOB, CAROL]
    assert request.title == "Visit at 29.11.2025 08:00 UTC"
    assert request.body == "Bob Stone"  # a party without a name or address shows nothing


# --- recipients ---------------------------------------------------------------------------


def test_an_owner_that_is_a_team_is_skipped_counted_and_a_documented_no_op() -> None:
    body = event("contact", "Update", {"fullname": "Dana", "ownerid": ref("team", TEAM)})

    answer = nothing(body, rule(title="{fullname}"))

    assert answer["matched"] is True
    assert answer["recipients"] == 0
    assert answer["teams_skipped"] == 1
    assert answer["reason_code"] == "no_recipients"
    assert "team" in str(answer["reason"])


def test_context_users_and_fixed_ids_are_recipients() -> None:
    body = event("contact", "Update", {"fullname": "Dana"}, InitiatingUserId=ALICE, UserId=CAROL)

    request = sent(
        body,
        rule(
            recipients=["context.initiatinguserid", "context.userid", BOB.upper(), "ownerid"],
            title="{fullname}",
        ),
    )

    assert request.recipients == [ALICE, CAROL, BOB]


def test_rule_recipients_are_validated_without_echo() -> None:
    with pytest.raises(ValidationFailed) as error:
        validate(Rule, rule(recipients=["context.somethingelse"], title="t"))
    assert [d["field"] for d in error.value.details] == ["recipients.0"]
    assert "somethingelse" not in str(error.value.details)
    with pytest.raises(ValidationFailed):
        validate(Rule, rule(recipients=["owner id"], title="t"))
    assert validate(Rule, rule(recipients=["Context.UserId"], title="t")).recipients == [
        "context.userid"
    ]


# --- Delete -------------------------------------------------------------------------------


def test_a_delete_with_a_pre_image_notifies_the_owner_without_a_link() -> None:
    body = event(
        "opportunity",
        "Delete",
        pre_image={"name": "Fabrikam renewal", "ownerid": user(BOB, "Bob Stone")},
    )

    request = sent(
        body,
        rule(
            table="opportunity",
            message="Delete",
            title="{name} was deleted",
            body="Owner {ownerid}",
            link="record",
        ),
    )

    assert request.recipients == [BOB]
    assert request.title == "Fabrikam renewal was deleted"
    assert request.link is None  # a deleted record has no page


def test_a_delete_without_a_pre_image_can_notify_the_user_who_deleted() -> None:
    body = event("opportunity", "Delete", InitiatingUserId=ALICE)
    delete_rule = rule(
        table="opportunity",
        message="Delete",
        recipients=["context.initiatinguserid"],
        title="{name} was deleted",
    )

    request = sent(body, delete_rule)

    assert request.recipients == [ALICE]
    assert request.title == "Opportunity deleted"


def test_a_delete_without_a_pre_image_naming_the_owner_is_a_documented_no_op() -> None:
    body = event("opportunity", "Delete")

    answer = nothing(body, rule(table="opportunity", message="Delete", title="{name}"))

    assert answer["matched"] is True
    assert answer["reason_code"] == "no_recipients"


# --- stage and depth ----------------------------------------------------------------------


def test_a_pre_operation_event_does_not_meet_a_default_rule() -> None:
    body = example("opportunity-update.json") | {"Stage": 20}
    default = rule(table="opportunity", title="{name}")

    assert nothing(body, default) == {
        "matched": False,
        "reason": "The rules for this table and message are for another stage.",
        "reason_code": "stage",
    }
    assert sent(body, default | {"stage": 20}).title == "Fabrikam renewal 2026"


def test_a_plugin_chain_event_does_not_meet_a_depth_1_rule() -> None:
    body = example("opportunity-update.json") | {"Depth": 2}
    default = rule(table="opportunity", title="{name}")

    assert nothing(body, default)["reason_code"] == "depth"
    assert sent(body, default | {"max_depth": 2}).title == "Fabrikam renewal 2026"


def test_the_first_rule_whose_stage_fits_is_the_one_sent() -> None:
    body = example("opportunity-update.json") | {"Stage": 20}

    request = sent(
        body,
        rule(table="opportunity", title="committed {name}"),
        rule(table="opportunity", title="pre-operation {name}", stage=20),
    )

    assert request.title == "pre-operation Fabrikam renewal 2026"


def test_an_event_no_rule_names_says_why() -> None:
    assert nothing(example("opportunity-update.json"))["reason_code"] == "no_rule"


def test_saving_a_rule_before_the_commit_warns() -> None:
    rules = validate(
        RuleSet, {"rules": [rule(title="a"), rule(title="b", stage=20), rule(title="c", stage=10)]}
    )

    warnings = rules.warnings()

    assert len(warnings) == 2
    assert warnings[0].startswith("Rule 2 runs at stage 20")
    assert warnings[1].startswith("Rule 3 runs at stage 10")


# --- links --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "url", "expected"),
    [
        ("contoso.crm4.dynamics.com", None, "https://contoso.crm4.dynamics.com"),
        ("https://contoso.crm4.dynamics.com/", None, "https://contoso.crm4.dynamics.com"),
        ("contoso", None, None),
        ("contoso", "https://contoso.crm.dynamics.com", "https://contoso.crm.dynamics.com"),
        (None, "https://contoso.crm.dynamics.com", "https://contoso.crm.dynamics.com"),
        ("not a host/../", None, None),
        (None, None, None),
    ],
)
def test_record_links_from_either_form_of_the_organization_header(
    host: str | None, url: str | None, expected: str | None
) -> None:
    link = record_url(host, url, "contact", RECORD_ID)

    if expected is None:
        assert link is None
    else:
        assert link == f"{expected}/main.aspx?etn=contact&id={RECORD_ID}&pagetype=entityrecord"


def test_a_link_template_that_does_not_render_an_https_url_is_left_out() -> None:
    body = event(
        "contact", "Update", {"websiteurl": "http://insecure.example", "ownerid": user(BOB)}
    )

    assert sent(body, rule(title="t", link="{websiteurl}")).link is None
    assert sent(body, rule(title="t", link="https://x.example/{missing}")).link == (
        "https://x.example/"
    )


# --- p365_notification rows ---------------------------------------------------------------


def test_a_notification_row_skips_what_is_not_a_user_id_and_defaults_its_title() -> None:
    row = example("notification-create.json")
    attributes = row["InputParameters"][0]["value"]["Attributes"]
    for attribute in attributes:
        if attribute["key"] == "p365_recipients":
            attribute["value"] = f"not-a-guid; {BOB}, ,{{{CAROL}}}"
        if attribute["key"] == "p365_title":
            attribute["value"] = "   "
        if attribute["key"] == "p365_link":
            attribute["value"] = "javascript:alert(1)"
        if attribute["key"] == "p365_body":
            attribute["value"] = LONG_MEMO

    request = sent(row)

    assert request.recipients == [BOB, CAROL]
    assert request.title == "Notification"
    assert request.link is None
    assert request.body.endswith("\u2026")


def test_a_notification_row_owned_by_a_team_is_a_documented_no_op() -> None:
    row = example("notification-create.json")
    for attribute in row["InputParameters"][0]["value"]["Attributes"]:
        if attribute["key"] == "p365_recipients":
            attribute["value"] = ""
        if attribute["key"] == "ownerid":
            attribute["value"] = ref("team", TEAM)

    assert nothing(row) == NothingToSend(True, teams_skipped=1, reason=_NO_RECIPIENTS).answer()


_NO_RECIPIENTS = (
    "no_recipients",
    "The rule's recipients name no system user in this event "
    "(teams are skipped: their members are not known).",
)


# --- dedup keys ---------------------------------------------------------------------------


def test_events_without_request_and_operation_ids_never_share_a_dedup_key() -> None:
    def key(**changes: Any) -> str:
        body = example("opportunity-update.json") | {"RequestId": None, "OperationId": None}
        return dedup_key(parse_execution_context(body | changes))

    first = key()
    assert key() == first  # Dataverse's retry: the identical body
    assert key(OperationCreatedOn="/Date(1764400000001)/") != first
    assert key(CorrelationId="11111111-2222-4333-8444-555555555555") != first
    assert first.startswith("dataverse:")
    assert ORG not in first


def test_the_dedup_key_uses_the_request_id_when_there_is_one() -> None:
    body = example("opportunity-update.json")

    assert dedup_key(parse_execution_context(body)) == (
        "dataverse:28413205-cc2c-43a1-80ab-0b9354245540:3281f2dc-9720-4fac-855e-cff7be23949c"
        ":0dd00000-0000-4000-8000-000000000042:update:40"
    )
