"""The pages a confirmation link opens: fixed texts in English or German, no script, nothing of
the request (the token stays in the URL: the form posts back to the URL it was opened at).

Opening the link (``GET``) confirms nothing: mail scanners and link previews fetch links, and
an address must be confirmed by the person it belongs to. The page's button sends the ``POST``
that confirms.
"""

from __future__ import annotations

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
    "button{font-size:1rem;padding:.6rem 1.2rem}"
)

_TEXTS = {
    "en": {
        "title": "Push365: confirm your address",
        "ask": "This address was given to Push365 as an administrator of a Dynamics 365 "
        "organization. Confirm it to receive Push365's messages about that organization.",
        "button": "Confirm my address",
        "ignore": "If you know nothing of this, close this page: without confirmation Push365 "
        "sends no other mail to this address.",
        "done_title": "Push365: address confirmed",
        "done": "Your address is confirmed: Push365's messages about the organization now reach "
        "it, starting with what was registered.",
        "unknown_title": "Push365: link not valid",
        "unknown": "This link is not valid, or it was used already.",
    },
    "de": {
        "title": "Push365: Adresse bestätigen",
        "ask": "Diese Adresse wurde bei Push365 als Administrator einer Dynamics-365-Organisation "
        "angegeben. Bestätigen Sie sie, um Nachrichten von Push365 zu dieser Organisation zu "
        "erhalten.",
        "button": "Adresse bestätigen",
        "ignore": "Wenn Sie nichts davon wissen, schließen Sie diese Seite: ohne Bestätigung "
        "sendet Push365 keine weitere E-Mail an diese Adresse.",
        "done_title": "Push365: Adresse bestätigt",
        "done": "Ihre Adresse ist bestätigt: Nachrichten von Push365 zu der Organisation erreichen "
        "sie ab jetzt, zuerst die Angaben zur Registrierung.",
        "unknown_title": "Push365: Link ungültig",
        "unknown": "Dieser Link ist ungültig oder wurde schon verwendet.",
    },
}


def language_of(accept_language: str | None) -> str:
    """German when the browser's first language is German, else English."""
    first = (accept_language or "").split(",", 1)[0].strip().lower()
    return "de" if first[:2] == "de" else "en"


def _page(language: str, title: str, *body: str) -> str:
    return (
        f"<!doctype html><html lang='{language}'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        "<meta name='robots' content='noindex'>"
        f"<title>{title}</title><style>{_STYLE}</style></head><body><h1>{title}</h1>"
        + "".join(body)
        + "</body></html>"
    )


def confirm_form(language: str) -> str:
    """What the link opens: a button that confirms (a POST to the same URL)."""
    texts = _TEXTS[language]
    return _page(
        language,
        texts["title"],
        f"<p>{texts['ask']}</p>",
        f"<form method='post'><button type='submit'>{texts['button']}</button></form>",
        f"<p>{texts['ignore']}</p>",
    )


def confirmed(language: str) -> str:
    """After the button: the address is confirmed."""
    texts = _TEXTS[language]
    return _page(language, texts["done_title"], f"<p>{texts['done']}</p>")


def unknown(language: str) -> str:
    """After the button, for a link that is not (or no longer) valid."""
    texts = _TEXTS[language]
    return _page(language, texts["unknown_title"], f"<p>{texts['unknown']}</p>")
