"""Cloud Function ``register``: an organization, its system users, and its API key.

Routes (relative to the function URL):
    POST /            create an organization (no key; answers the key once) or update it (the
                      current key); a Dataverse body is handled as at /users
    POST /users       upsert users; or a Dataverse systemuser Create/Update/Delete body (the
                      previous key too, during its overlap: every other route takes only the
                      current key)
    POST /rotate-key  issue a new key; the previous one keeps working for the overlap window
                      (24 h; ``{"overlap_hours": 0}`` ends it at once)
    POST /revoke-previous-key  the previous key stops working now
    POST /signup-codes  (operator, header X-Push365-Admin-Key) ``{"organization_id"}`` -> a
                      single-use signup code that lets that organization id be registered
    GET  /confirm-email  ``?token=`` the page the mailed link opens: a button, nothing confirmed
    POST /confirm-email  ``?token=`` the button: the administrator confirms their address
                      (double opt-in); a form post is answered with a page, others with JSON
    POST /rules       replace the event rules that turn Dataverse events into notifications
                      (with warnings for rules that run before the change is committed)
    GET  /rules       the event rules
    POST /rules/preview  what each rule for an event (a Dataverse body, or table, message and
                      target) would send: rendered exactly as a send renders it, with recipient
                      and device counts; nothing is sent, stored or logged of it
"""

from datetime import timedelta

import flask
import functions_framework
from pydantic import Field, StrictFloat

from push365 import bootstrap
from push365.dataverse import NotHandled, is_execution_context
from push365.errors import (
    Conflict,
    Forbidden,
    SignupCodeInvalid,
    SignupCodeRequired,
    TooManyRequests,
    UnknownConfirmation,
)
from push365.mail import pages
from push365.model import InputModel, iso_utc, validate
from push365.notifications.dataverse import (
    DYNAMICS_HOST_HEADER,
    context_from_event,
    preview,
    rule_preview_answer,
)
from push365.notifications.model import RulePreviewEvent, RuleSet
from push365.notifications.rules import Surroundings
from push365.organizations.model import Registration
from push365.signup.model import SignupCodeRequest
from push365.users.dataverse import user_change_from_context
from push365.users.model import UserBatch, UserRemoval
from push365.web import Api, ApiRequest, Operation, Page, Reply, ignored, json_errors

SIGNUP_CODE_HEADER = "X-Push365-Signup-Code"
TOKEN_LIMIT = 200
FORM = "application/x-www-form-urlencoded"


class RotateKey(InputModel):
    """``POST /register/rotate-key``: how long the previous key keeps working."""

    overlap_hours: StrictFloat | None = Field(default=None, ge=0, le=168)


class ConfirmEmailQuery(InputModel):
    """``GET /register/confirm-email``."""

    token: str = Field(max_length=TOKEN_LIMIT)


def _register(request: ApiRequest) -> Reply:
    if is_execution_context(request.json_object()):
        return _users(request)  # a systemuser step registered at the function's root URL
    registration = validate(Registration, request.json_object())
    request.audit.organization_id = registration.organization.id
    outcome = bootstrap.organizations().register_as(
        registration,
        request.authenticated,
        request.header(SIGNUP_CODE_HEADER),
        caller=request.caller,
    )
    mails = outcome.confirmation_mails()
    extra = {"confirmation_mails": mails} if mails else {}
    if outcome.created:
        return 201, {
            "organization_id": outcome.organization_id,
            "api_key": outcome.api_key,
            **extra,
        }
    return 200, {"organization_id": outcome.organization_id, **extra}


def _users(request: ApiRequest) -> Reply:
    organization = request.organization
    change = request.command(UserBatch, organization, user_change_from_context)
    if isinstance(change, NotHandled):
        return ignored(change)
    if isinstance(change, UserRemoval):
        request.audit.add_users([change.id])
        removed = bootstrap.users().remove(organization.id, change.id)
        return 200, {
            "removed": int(removed.removed),
            "subscriptions_removed": removed.subscriptions_removed,
        }
    batch = change.users if isinstance(change, UserBatch) else [change]
    request.audit.add_users(user.id for user in batch)
    return 200, {"upserted": bootstrap.users().upsert(organization.id, batch)}


def _rotate_key(request: ApiRequest) -> Reply:
    organizations = bootstrap.organizations()
    organization = request.organization
    body = validate(RotateKey, request.json_object()) if request.has_body else RotateKey()
    overlap = None if body.overlap_hours is None else timedelta(hours=body.overlap_hours)
    rotated = organizations.rotate_key(organization, overlap)
    until = rotated.previous_key_valid_until
    return 200, {
        "organization_id": organization.id,
        "api_key": rotated.api_key,
        "previous_key_valid_until": iso_utc(until) if until else None,
    }


def _revoke_previous_key(request: ApiRequest) -> Reply:
    organizations = bootstrap.organizations()
    organization = request.organization
    organizations.revoke_previous_key(organization)
    return 200, {"organization_id": organization.id, "previous_key_revoked": True}


def _signup_code(request: ApiRequest) -> Reply:
    signup = bootstrap.signup()
    wanted = validate(SignupCodeRequest, request.json_object())
    request.audit.organization_id = wanted.organization_id
    issued = signup.issue(wanted.organization_id)
    return 201, {"signup_code": issued.signup_code, "expires_at": iso_utc(issued.expires_at)}


def _confirm_email_page(request: ApiRequest) -> Reply:
    # confirms nothing and reads nothing: a mail scanner fetching the link changes nothing
    return 200, Page(pages.confirm_form(pages.language_of(request.header("Accept-Language"))))


def _confirm_email(request: ApiRequest) -> Reply:
    token = request.parsed(ConfirmEmailQuery).token
    form = (request.header("Content-Type") or "").startswith(FORM)
    if not form:
        bootstrap.organizations().confirm_email(token)
        return 200, {"confirmed": True}
    language = pages.language_of(request.header("Accept-Language"))
    try:
        bootstrap.organizations().confirm_email(token)
    except UnknownConfirmation as error:
        request.audit.fault = {"code": error.code, "message": error.message}
        return error.status, Page(pages.unknown(language))
    return 200, Page(pages.confirmed(language))


def _set_rules(request: ApiRequest) -> Reply:
    organizations = bootstrap.organizations()
    organization = request.organization
    rule_set = validate(RuleSet, request.json_object())
    answer: dict[str, object] = {"rules": organizations.set_rules(organization, rule_set)}
    warnings = rule_set.warnings()
    if warnings:
        answer["warnings"] = warnings
    return 200, answer


def _preview_rules(request: ApiRequest) -> Reply:
    organization = request.organization
    event = request.command(RulePreviewEvent, organization, lambda context: context)
    context = (
        context_from_event(event, organization.id) if isinstance(event, RulePreviewEvent) else event
    )
    around = Surroundings(
        request.header(DYNAMICS_HOST_HEADER),
        organization.url,
        organization.language_code,
        bootstrap.receipt_url(),
        bootstrap.user_names(organization.id),
    )
    previews = preview(context, organization.rules, around)
    subscriptions = bootstrap.subscriptions()
    return 200, {
        "previews": [
            rule_preview_answer(
                p, subscriptions.count_devices(organization.id, p.rendered.recipients), context
            )
            for p in previews
        ]
    }


def _get_rules(request: ApiRequest) -> Reply:
    organization = request.organization
    return 200, {"rules": [rule.model_dump() for rule in organization.rules]}


api = Api(
    "register",
    {
        "/": {"POST": _register},
        "/users": {"POST": _users},
        "/rotate-key": {"POST": _rotate_key},
        "/revoke-previous-key": {"POST": _revoke_previous_key},
        "/signup-codes": {"POST": _signup_code},
        "/confirm-email": {"GET": _confirm_email_page, "POST": _confirm_email},
        "/rules": {"POST": _set_rules, "GET": _get_rules},
        "/rules/preview": {"POST": _preview_rules},
    },
    operations={
        ("/", "POST"): Operation(
            "Create an organization (no key: answers its key, once) or update it (with its current "
            "key; a Dataverse systemuser body, read as at /users, also takes the previous key).",
            body=Registration,
            dataverse=True,  # a systemuser step registered at the root: read as at /users
            auth="optional",
            quota="webhook",
            answers={201: "Created; the API key, once.", 200: "Updated."},
            errors=(Conflict, Forbidden, SignupCodeInvalid, SignupCodeRequired, TooManyRequests),
        ),
        ("/users", "POST"): Operation(
            "Create or correct system users; a Dataverse systemuser event keeps them in step.",
            body=UserBatch,
            dataverse=True,
            auth="webhook",
            quota="webhook",
        ),
        ("/rotate-key", "POST"): Operation(
            "A new API key; the previous one keeps working for the overlap window.",
            body=RotateKey,
            body_required=False,
            auth="key",
            quota="admin",
        ),
        ("/revoke-previous-key", "POST"): Operation(
            "The previous API key stops working now.", auth="key", quota="admin"
        ),
        ("/signup-codes", "POST"): Operation(
            "Issue a single-use signup code for one organization id (operator only).",
            body=SignupCodeRequest,
            auth="admin",
            quota="operator",
            answers={201: "The code, once, and when it expires."},
        ),
        ("/confirm-email", "GET"): Operation(
            "The page the link Push365 mailed opens (text/html): its button confirms the "
            "address; opening it confirms nothing.",
            query=ConfirmEmailQuery,
            auth="none",
            quota="link",
            answers={200: "The page."},
            media=("text/html",),
        ),
        ("/confirm-email", "POST"): Operation(
            "An administrator confirms their address (the button of the mailed link's page; a "
            "form post is answered with a page, any other with JSON).",
            query=ConfirmEmailQuery,
            auth="none",
            quota="link",
            errors=(UnknownConfirmation,),
            answers={200: "Confirmed: JSON, or a page for the page's form post."},
            media=("application/json", "text/html"),
        ),
        ("/rules", "POST"): Operation(
            "Replace the organization's event rules.", body=RuleSet, auth="key", quota="admin"
        ),
        ("/rules", "GET"): Operation("The organization's event rules.", auth="key", quota="read"),
        ("/rules/preview", "POST"): Operation(
            "What every rule would send for an event; nothing is sent or stored.",
            body=RulePreviewEvent,
            dataverse=True,
            auth="key",
            quota="read",
        ),
    },
)


json_errors(functions_framework.errorhandler)


@functions_framework.http
def register(request: flask.Request) -> flask.Response:
    """Entry point of the ``register`` Cloud Function."""
    return api.handle(request)
