"""Text that was decoded twice: UTF-8 bytes read as Windows-1252 (or Latin-1) on the way in.

Some senders (and some libraries that relay Dataverse bodies) decode UTF-8 as Windows-1252, so
"АаБб" arrives as "Ð", U+0090, "Ð°Ð", U+2018, "Ð±" and "€" as "â", U+201A, "¬" (or, done twice,
as "Ã¢â", U+0080, U+009A, "Â¬"). ftfy recognises this; its repair is taken only when it is a
whole-text round trip (encode as Windows-1252 or Latin-1, decode as UTF-8, possibly twice), never
one of its partial or heuristic fixes: correct text in any script is left exactly as it came,
and text whose lost bytes cannot be known is left alone rather than guessed at.
"""

from __future__ import annotations

import re

# A lead byte of a 2- to 4-byte UTF-8 sequence read as Windows-1252 (Â..ô), followed by what a
# continuation byte (0x80-0xBF) reads as in Windows-1252 or Latin-1. Text without such a pair
# cannot be mojibake of this kind, and does not pay for importing ftfy.
_SUSPECT = re.compile(
    "[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192"
    "\u02c6\u02dc\u2013\u2014\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039"
    "\u203a\u20ac\u2122]"
)
_ROUND_TRIP = {
    ("encode", "sloppy-windows-1252"),
    ("encode", "windows-1252"),
    ("encode", "latin-1"),
    ("decode", "utf-8"),
}


def repair_mojibake(text: str) -> str:
    """``text`` with UTF-8-read-as-Windows-1252 undone when that is unambiguous, else as is."""
    if not _SUSPECT.search(text):
        return text
    return _repaired(text)


def _repaired(text: str) -> str:
    # (no cache: it would keep callers' text, titles and bodies, in the process between requests)
    import ftfy  # only for text that looks decoded twice

    fixed = ftfy.fix_encoding_and_explain(text)
    steps = fixed.explanation or []
    if not steps or any(tuple(step) not in _ROUND_TRIP for step in steps):
        return text
    return fixed.text
