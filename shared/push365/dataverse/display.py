"""Dataverse values as a user reads them: dates in the organization's language, activity parties
by name.

A webhook's ``FormattedValues`` show a date as ISO text and carry nothing for activity parties,
so those two are rendered here from the raw values.
"""

from __future__ import annotations

from datetime import UTC, datetime

# Date and time patterns by LCID, then by primary language (the LCID's low 10 bits).
_BY_LCID = {
    1033: ("{m}/{d}/{Y}", "{h12}:{M} {p}"),  # en-US
    4105: ("{Y}-{m2}-{d2}", "{H}:{M}"),  # en-CA
    1053: ("{Y}-{m2}-{d2}", "{H}:{M}"),  # sv-SE
}
_BY_LANGUAGE = {
    0x09: ("{d2}/{m2}/{Y}", "{H}:{M}"),  # English outside the US
    0x07: ("{d2}.{m2}.{Y}", "{H}:{M}"),  # German
    0x0C: ("{d2}/{m2}/{Y}", "{H}:{M}"),  # French
    0x0A: ("{d2}/{m2}/{Y}", "{H}:{M}"),  # Spanish
    0x10: ("{d2}/{m2}/{Y}", "{H}:{M}"),  # Italian
    0x16: ("{d2}/{m2}/{Y}", "{H}:{M}"),  # Portuguese
    0x13: ("{d2}-{m2}-{Y}", "{H}:{M}"),  # Dutch
    0x11: ("{Y}/{m2}/{d2}", "{H}:{M}"),  # Japanese
    0x04: ("{Y}/{m}/{d}", "{H}:{M}"),  # Chinese
    0x12: ("{Y}. {m2}. {d2}.", "{H}:{M}"),  # Korean
}
_DOTTED = ("{d2}.{m2}.{Y}", "{H}:{M}")
for _language in (0x05, 0x06, 0x0B, 0x14, 0x15, 0x19, 0x1F, 0x0E, 0x22):
    # Czech, Danish, Finnish, Norwegian, Polish, Russian, Turkish, Hungarian-ish, Ukrainian
    _BY_LANGUAGE[_language] = _DOTTED
_DEFAULT = ("{Y}-{m2}-{d2}", "{H}:{M}")


def format_datetime(moment: datetime, language_code: int | None) -> str:
    """A date column's value in the organization's language, in UTC.

    A value at exactly midnight UTC is shown as a date alone (Dataverse sends "date only"
    columns that way); any other time is followed by ``UTC``: a webhook does not carry the
    user's time zone.
    """
    moment = moment.astimezone(UTC)
    date_pattern, time_pattern = _patterns(language_code)
    parts = {
        "Y": f"{moment.year:04d}",
        "m": str(moment.month),
        "m2": f"{moment.month:02d}",
        "d": str(moment.day),
        "d2": f"{moment.day:02d}",
        "H": f"{moment.hour:02d}",
        "h12": str((moment.hour % 12) or 12),
        "M": f"{moment.minute:02d}",
        "p": "AM" if moment.hour < 12 else "PM",
    }
    date = date_pattern.format(**parts)
    if (moment.hour, moment.minute, moment.second, moment.microsecond) == (0, 0, 0, 0):
        return date
    return f"{date} {time_pattern.format(**parts)} UTC"


def _patterns(language_code: int | None) -> tuple[str, str]:
    if language_code is None:
        return _DEFAULT
    if language_code in _BY_LCID:
        return _BY_LCID[language_code]
    return _BY_LANGUAGE.get(language_code & 0x3FF, _DEFAULT)
