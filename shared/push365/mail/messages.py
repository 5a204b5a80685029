"""The messages, each a plain-text and an HTML part, in the organization's language when a
translation exists (English otherwise).

Every value placed in a message is escaped for HTML, and no message has a slot for an API key
or for notification content: they cannot leak into mail by mistake. Every subject is a fixed
text: nothing a caller chose (an organization's name) reaches a subject line, and the one
message to an address that did not opt in (the confirmation request) names the organization by
its id only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from html import escape

# LCIDs carry their language in the low 10 bits (1033 en-US, 2057 en-GB: 0x09; 1031 de-DE: 0x07).
_LANGUAGES = {0x09: "en", 0x07: "de"}


def language_of(lcid: int) -> str:
    """The language a message is written in for an organization's LCID."""
    return _LANGUAGES.get(lcid & 0x3FF, "en")


@dataclass(frozen=True)
class Rendered:
    """A message's subject and parts."""

    subject: str
    text: str
    html: str


def _render(subject: str, paragraphs: list[str], rows: Mapping[str, str] | None = None) -> Rendered:
    text_rows = [f"  {key}: {value}" for key, value in (rows or {}).items()]
    text = "\n\n".join(paragraphs) + ("\n\n" + "\n".join(text_rows) if text_rows else "") + "\n"
    html_rows = "".join(
        f"<tr><th align='left'>{escape(key)}</th><td>{escape(value)}</td></tr>"
        for key, value in (rows or {}).items()
    )
    html = (
        "<html><body>"
        + "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
        + (f"<table>{html_rows}</table>" if html_rows else "")
        + "</body></html>"
    )
    return Rendered(subject, text, html)


def registration_confirmed(
    language: str,
    organization: str,
    unique_name: str,
    organization_id: str,
    urls: Mapping[str, str],
) -> Rendered:
    """What was registered, and how to register the Dataverse webhooks. Never the key."""
    rows = {"Organization": organization, "Unique name": unique_name, "Id": organization_id}
    rows |= {f"Webhook: {name}": url for name, url in urls.items()}
    if language == "de":
        return _render(
            "Push365: Ihre Organisation ist registriert",
            [
                f"Die Organisation {organization} ist bei Push365 registriert.",
                "Registrieren Sie die Webhooks im Plugin Registration Tool mit der "
                "Authentifizierung HttpHeader und dem Header X-Push365-Key. Den Schlüssel "
                "hat die Registrierung einmal angezeigt; er wird nie per E-Mail versandt.",
            ],
            rows,
        )
    return _render(
        "Push365: your organization is registered",
        [
            f"The organization {organization} is registered with Push365.",
            "Register the webhooks below in the Plugin Registration Tool with authentication "
            "HttpHeader and the header X-Push365-Key. The key was shown once when you registered; "
            "it is never sent by mail.",
        ],
        rows,
    )


def confirm_address(language: str, organization_id: str, link: str) -> Rendered:
    """Asks an administrator's address to confirm it wants Push365's mail (double opt-in).

    The one message an address that did not opt in gets: it carries no text the registering
    caller chose (the organization is named by its id), only fixed text and the link."""
    rows = {"Organization id": organization_id, "Link": link}
    if language == "de":
        return _render(
            "Push365: Adresse bestätigen",
            [
                "Diese Adresse wurde bei Push365 als Administrator einer Dynamics-365-"
                "Organisation angegeben.",
                "Öffnen Sie den Link und bestätigen Sie dort mit der Schaltfläche, um Nachrichten "
                "von Push365 zu erhalten. Ohne Bestätigung sendet Push365 keine weitere E-Mail an "
                "diese Adresse. Wenn Sie nichts davon wissen, ignorieren Sie diese Nachricht.",
            ],
            rows,
        )
    return _render(
        "Push365: confirm your address",
        [
            "This address was given to Push365 as an administrator of a Dynamics 365 organization.",
            "Open the link and confirm with its button to receive Push365's messages. Without "
            "confirmation Push365 sends no other mail to this address. If you know nothing of "
            "this, ignore this message.",
        ],
        rows,
    )


def key_rotated(
    language: str, organization: str, when: datetime, previous_until: datetime | None
) -> Rendered:
    """The key was replaced; until when the previous one keeps working."""
    moment = when.strftime("%Y-%m-%d %H:%M UTC")
    until = previous_until.strftime("%Y-%m-%d %H:%M UTC") if previous_until else None
    if language == "de":
        old = (
            f"Der vorige Schlüssel funktioniert noch bis {until}, sofern er nicht widerrufen wird."
            if until
            else "Der alte Schlüssel funktioniert seitdem nicht mehr."
        )
        return _render(
            "Push365: neuer API-Schlüssel",
            [
                f"Am {moment} wurde ein neuer API-Schlüssel für {organization} ausgegeben.",
                old + " Aktualisieren Sie die Webhook-Registrierungen in Dynamics.",
            ],
        )
    old = (
        f"The previous key keeps working until {until}, unless it is revoked."
        if until
        else "The old key stopped working at that moment."
    )
    return _render(
        "Push365: new API key",
        [
            f"A new API key was issued for {organization} at {moment}.",
            old + " Update the webhook registrations in Dynamics.",
        ],
    )


def key_revoked(language: str, organization: str, when: datetime) -> Rendered:
    """The previous key was revoked before its overlap ended."""
    moment = when.strftime("%Y-%m-%d %H:%M UTC")
    if language == "de":
        return _render(
            "Push365: vorheriger API-Schlüssel widerrufen",
            [
                f"Am {moment} wurde der vorherige API-Schlüssel von {organization} widerrufen; "
                "nur der aktuelle Schlüssel funktioniert noch.",
                "Wenn Sie das nicht waren, erzeugen Sie sofort einen neuen Schlüssel.",
            ],
        )
    return _render(
        "Push365: the previous API key was revoked",
        [
            f"The previous API key of {organization} was revoked at {moment}; only the current "
            "key works now.",
            "If this was not you, rotate the key at once.",
        ],
    )


def admins_replaced(language: str, organization: str, when: datetime, count: int) -> Rendered:
    """The administrator list was replaced (sent to the administrators confirmed before)."""
    moment = when.strftime("%Y-%m-%d %H:%M UTC")
    rows = {"Administrators now": str(count)}
    if language == "de":
        return _render(
            "Push365: Administratoren geändert",
            [
                f"Am {moment} wurde die Liste der Administratoren von {organization} ersetzt. "
                "Neue Adressen erhalten Nachrichten erst nach ihrer Bestätigung.",
                "Wenn Sie das nicht waren, erzeugen Sie sofort einen neuen Schlüssel.",
            ],
            rows,
        )
    return _render(
        "Push365: the administrators were changed",
        [
            f"The administrator list of {organization} was replaced at {moment}. New addresses "
            "get Push365's mail only once they confirm it.",
            "If this was not you, rotate the key at once.",
        ],
        rows,
    )


def delivery_alert(
    language: str, organization: str, reason: str, devices: int, failed: int
) -> Rendered:
    """FCM keeps rejecting this organization's messages."""
    rows = {"Devices": str(devices), "Failed": str(failed), "Reason": reason}
    if language == "de":
        return _render(
            "Push365: Zustellprobleme",
            [
                f"Firebase Cloud Messaging lehnt Benachrichtigungen von {organization} ab.",
                "Diese Warnung wird höchstens einmal am Tag gesendet.",
            ],
            rows,
        )
    return _render(
        "Push365: delivery problems",
        [
            f"Firebase Cloud Messaging is rejecting notifications of {organization}.",
            "This alert is sent at most once a day.",
        ],
        rows,
    )


def data_erased(
    language: str, organization: str, scope: str, counts: Mapping[str, int]
) -> Rendered:
    """Confirmation of an erasure, with counts."""
    rows = {kind: str(count) for kind, count in counts.items()}
    whole = scope == "organization"
    if language == "de":
        what = (
            "Die Organisation und alle ihre Daten wurden"
            if whole
            else "Die Daten eines Benutzers wurden"
        )
        return _render("Push365: Daten gelöscht", [f"{what} gelöscht."], rows)
    what = "The organization and all its data were" if whole else "A user's data were"
    return _render("Push365: data erased", [f"{what} erased."], rows)
