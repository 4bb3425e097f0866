"""GSM-7: keep texts in the 160-character alphabet and count the segments they cost (pure).

One character outside GSM-7 (ë, ï, curly quotes, emoji) turns a whole SMS into UCS-2: 70
characters a segment instead of 160, and residents pay per segment.
"""

from __future__ import annotations

import math
import unicodedata

BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: Characters that cost two septets (an escape and the character).
EXTENDED = frozenset("^{}\\[~]|€\f")
_ALPHABET = BASIC | EXTENDED
_LOOKALIKES = {
    "‘": "'",
    "’": "'",
    "‚": "'",
    "‛": "'",
    "′": "'",
    "`": "'",
    "´": "'",
    "“": '"',
    "”": '"',
    "„": '"',
    "‟": '"',
    "″": '"',
    "«": '"',
    "»": '"',
    "–": "-",
    "—": "-",
    "‐": "-",
    "‑": "-",
    "−": "-",
    "…": "...",
    "•": "-",
    "·": "-",
    "\u00a0": " ",
    "\u2009": " ",
    "\u202f": " ",
    "\t": " ",
    "ç": "Ç",
    "€": "€",
}


def _to_gsm(char: str) -> str:
    if char in BASIC or char in EXTENDED:
        return char
    if char in _LOOKALIKES:
        return _LOOKALIKES[char]
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    if base and all(c in BASIC for c in base):
        return base
    return "?" if unicodedata.category(char)[0] not in "CZ" else ""


def sanitize(text: str) -> str:
    """The closest GSM-7 text: ë→e, curly quotes straight, emoji to "?"."""
    if is_gsm(text):
        return text
    return "".join(_to_gsm(char) for char in text)


def is_gsm(text: str) -> bool:
    return _ALPHABET.issuperset(text)


def segments(text: str) -> int:
    """How many SMS segments the text costs (GSM-7 153/160, else UCS-2 67/70)."""
    if is_gsm(text):
        septets = len(text) + sum(text.count(char) for char in EXTENDED)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word with "..." when it has to be cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 3].rsplit(" ", 1)[0] if " " in text[: limit - 3] else text[: limit - 3]
    return cut.rstrip(" ,.;:") + "..."
