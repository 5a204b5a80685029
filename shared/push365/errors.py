"""Errors that a request can end in. Each carries its HTTP status and a stable code.

Messages are fixed texts written here, never built from request values, so an error can
never echo what a caller sent (notification content included).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar


class Push365Error(Exception):
    """Base class: an expected failure with a status, a code and a safe message."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    default_message: ClassVar[str] = "The request is not valid."

    def __init__(self, message: str | None = None, details: Sequence[dict[str, Any]] = ()) -> None:
        self.message = message or self.default_message
        self.details = list(details)
        super().__init__(self.message)


class InvalidJson(Push365Error):
    status, code, default_message = 400, "invalid_json", "The body is not valid JSON."


class Unauthorized(Push365Error):
    status, code = 401, "unauthorized"
    default_message = "A valid API key is required in header X-Push365-Key or query parameter code."


class QueryKeyRefused(Push365Error):
    """The key came in query parameter ``code`` to an organization that accepts it only in the
    header: a URL's query string is kept in the platform's own request logs."""

    status, code = 401, "query_key_refused"
    default_message = (
        "This organization accepts its API key only in header X-Push365-Key "
        "(a query string is kept in request logs)."
    )


class Forbidden(Push365Error):
    status, code = 403, "forbidden"
    default_message = "The body belongs to another organization than the API key."


class CurrentKeyRequired(Push365Error):
    """The previous key (during its overlap after a rotation) was used for something only the
    current key may do: it keeps the Dataverse webhooks working, and administers nothing."""

    status, code = 403, "current_key_required"
    default_message = (
        "Only the current API key may do this; during its overlap the previous key only sends, "
        "syncs users and subscribes or unsubscribes browsers."
    )


class NotFound(Push365Error):
    status, code, default_message = 404, "not_found", "No such route."


class MethodNotAllowed(Push365Error):
    status, code, default_message = 405, "method_not_allowed", "Method not allowed on this route."

    def __init__(self, allowed: Sequence[str]) -> None:
        super().__init__(f"Allowed methods: {', '.join(sorted(allowed))}." if allowed else None)
        self.allowed = sorted(allowed)


class Conflict(Push365Error):
    status, code = 409, "conflict"
    default_message = "This organization is already registered; send its API key to update it."


class TokenHeld(Push365Error):
    """The browser token is an active subscription of another organization (which one is not
    said): a token belongs to one organization until it unsubscribes it."""

    status, code = 409, "token_held"
    default_message = (
        "This browser token is subscribed by another organization; it can be subscribed here "
        "once that subscription ends."
    )


class PayloadTooLarge(Push365Error):
    status, code, default_message = 413, "payload_too_large", "The body is larger than allowed."


class UnsupportedMediaType(Push365Error):
    status, code = 415, "unsupported_media_type"
    default_message = "The body must be sent with Content-Type: application/json."


class ValidationFailed(Push365Error):
    status, code, default_message = 422, "validation_failed", "The body does not match the schema."


class StoreUnavailable(Push365Error):
    """The database did not answer; 503 makes Dataverse retry once."""

    status, code = 503, "store_unavailable"
    default_message = "The data store is unavailable; try again."


class MessageTooLarge(Push365Error):
    """Checked before anything is stored or sent."""

    status, code = 413, "message_too_large"
    default_message = "The notification is larger than FCM's 4096-byte payload limit."


class QueueUnavailable(Push365Error):
    """The fan-out queue did not take a notification; 503 makes Dataverse retry once."""

    status, code = 503, "queue_unavailable"
    default_message = "The delivery queue is unavailable; try again."


class PublishOutcomeUnknown(QueueUnavailable):
    """The queue's answer did not come in time: the message may have been stored all the same.

    The same answer as :class:`QueueUnavailable` (``503 queue_unavailable``) wherever it is
    raised; ``send`` tells the two apart only for a send without a dedup key (then it answers
    ``202``: a retry could only make a second notification).
    """


class NotificationNotFound(Push365Error):
    status, code = 404, "notification_not_found"
    default_message = "No notification of this organization has this id."


class UnknownReceipt(Push365Error):
    status, code, default_message = 404, "unknown_receipt", "No delivery has this receipt."


class PurgeDisabled(Push365Error):
    """No admin key is configured: purge answers nobody."""

    status, code = 403, "purge_disabled"
    default_message = "Purge is disabled: PUSH365_ADMIN_KEY is not set."


class SignupCodeRequired(Push365Error):
    """Creating an organization needs an operator-issued signup code."""

    status, code = 401, "signup_code_required"
    default_message = "Registering an organization needs a signup code in X-Push365-Signup-Code."


class SignupCodeInvalid(Push365Error):
    """Unknown, used, expired, or issued for another organization: one answer for all."""

    status, code = 403, "signup_code_invalid"
    default_message = "The signup code is not valid for this organization."


class TooManyRequests(Push365Error):
    """A throttle said no; ``Retry-After`` says when to try again."""

    status, code = 429, "too_many_requests"
    default_message = "Too many attempts; try again after Retry-After seconds."

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after


class QuotaExceeded(TooManyRequests):
    """The organization (or, on a route without a key, the caller) used up a documented quota of
    this route (README "Quotas"); ``Retry-After`` says when its window ends."""

    status, code = 429, "quota_exceeded"
    default_message = "This route's quota is used up for now; try again after Retry-After seconds."


class QuotaExceededRetryable(QuotaExceeded):
    """The same refusal for a Dataverse webhook body: Dataverse retries a 502/503/504 once and
    never a 429, so a webhook over quota gets one more chance (its retry may land in the next
    window) instead of none."""

    status, code = 503, "quota_exceeded_webhook"
    default_message = "This route's quota is used up for now; try again after Retry-After seconds."


class UnknownConfirmation(Push365Error):
    """A confirmation link Push365 did not issue, or one already used."""

    status, code = 404, "unknown_confirmation"
    default_message = "No address waits for this confirmation."


class BadRequest(Push365Error):
    """A request the HTTP layer could not read (a malformed request line, headers or body)."""

    status, code, default_message = 400, "bad_request", "The request could not be read."


class HeadersTooLarge(Push365Error):
    """The request's headers are larger than the server reads."""

    status, code = 431, "headers_too_large"
    default_message = "The request's headers are too large."


class InternalError(Push365Error):
    """Nothing a caller did: a 500 that says nothing else."""

    status, code, default_message = 500, "internal", "Internal error."


HTTP_ERRORS: dict[int, type[Push365Error]] = {
    400: BadRequest,
    404: NotFound,
    413: PayloadTooLarge,
    431: HeadersTooLarge,
    500: InternalError,
}
"""The error-table entry for a status the HTTP layer answers by itself."""


def for_status(status: int, allowed: Sequence[str] = ()) -> Push365Error:
    """The error-table answer for a status a server or framework produced on its own
    (``allowed``: the methods the route takes, for a 405)."""
    if status == 405:
        return MethodNotAllowed(allowed)
    error = HTTP_ERRORS.get(status)
    if error is not None:
        return error()
    return InternalError() if status >= 500 else BadRequest()
