"""How long an SMS is, in what the carrier bills: its alphabet and its number of segments.

A text made only of characters of the GSM 03.38 (3GPP TS 23.038) default alphabet travels
as 7-bit septets: 160 in one SMS, 153 per part once concatenated (the 6-octet user data
header takes the other 7). Characters of the extension table (``€ [ ] { } \\ ~ ^ |`` and
form feed) cost two septets, an escape and the character. One character outside both
tables turns the whole message into UCS-2 (UTF-16 code units): 70 in one SMS, 67 per part,
a character outside the Basic Multilingual Plane (most emoji) costing two units. A part
never ends between the two halves of an escape pair or a surrogate pair, so such a part
holds one unit less.

French and Dutch texts stay GSM-7 only with care: é è à ù ì ò É Ç ä ö ü ñ Ä Ö Ü Ñ are in
the alphabet, but ê â î ô û ë ï ç (the *lowercase* c cedilla: the standard's 0x09 is the
capital Ç), œ, á í ó ú and every capital with an accent except É Ä Ö Ü Ñ Å Ç are not.
Neither are typographic quotes and dashes or the no-break spaces Babel puts inside French
amounts ("1 234,56 €"): `gsm_friendly` swaps those for their plain forms, which keeps
the words intact, and `characters_forcing_ucs2` tells a template author what is left.
"""

from __future__ import annotations

import re
from typing import Final, Literal

__all__ = [
    "GSM_BASIC",
    "GSM_EXTENSION",
    "GSM_SUBSTITUTES",
    "MULTI_PART",
    "SINGLE",
    "Encoding",
    "characters_forcing_ucs2",
    "encoding",
    "gsm_friendly",
    "segments",
    "split",
    "units",
]

Encoding = Literal["GSM-7", "UCS-2"]

# 3GPP TS 23.038 § 6.2.1, table by table, in code order (0x1B, the escape, is left out:
# it is how extension characters are written, never a character of the text).
GSM_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# 3GPP TS 23.038 § 6.2.1.1: 0x1B followed by 0x0A, 0x14, 0x28, 0x29, 0x2F, 0x3C, 0x3D,
# 0x3E, 0x40, 0x65.
GSM_EXTENSION: Final = frozenset("\f^{}\\[~]|€")

SINGLE: Final[dict[Encoding, int]] = {"GSM-7": 160, "UCS-2": 70}
MULTI_PART: Final[dict[Encoding, int]] = {"GSM-7": 153, "UCS-2": 67}

# Typography that templates and Babel produce but the GSM alphabet lacks, replaced by the
# plain character a reader expects. Letters are never replaced: "reçu" stays "reçu".
GSM_SUBSTITUTES: Final[dict[str, str]] = {
    "\u00a0": " ",  # no-break space (Babel: before "€" in French)
    "\u202f": " ",  # narrow no-break space (Babel: thousands in French)
    "\u2009": " ",  # thin space
    "\u2018": "'",
    "\u2019": "'",  # the typographic apostrophe of French
    "\u201a": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u00ab": '"',  # «
    "\u00bb": '"',  # »
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2011": "-",  # non-breaking hyphen
    "\u2026": "...",
    "\t": " ",
}


def _char_class(chars: frozenset[str]) -> str:
    return "".join(re.escape(c) for c in sorted(chars))


_NON_GSM: Final = re.compile(f"[^{_char_class(GSM_BASIC | GSM_EXTENSION)}]")
_EXTENSION: Final = re.compile(f"[{_char_class(GSM_EXTENSION)}]")
_ASTRAL: Final = re.compile("[\U00010000-\U0010ffff]")
_SUBSTITUTE: Final = re.compile(f"[{_char_class(frozenset(GSM_SUBSTITUTES))}]")


def encoding(text: str) -> Encoding:
    """The alphabet a carrier will use: GSM-7 if every character is in it, else UCS-2."""
    return "GSM-7" if _NON_GSM.search(text) is None else "UCS-2"


def _wide(text: str) -> tuple[Encoding, re.Pattern[str]]:
    """The encoding and the pattern of the characters that take two units in it."""
    if _NON_GSM.search(text) is None:
        return "GSM-7", _EXTENSION
    return "UCS-2", _ASTRAL


def units(text: str) -> int:
    """The length of `text` in its encoding: septets (GSM-7) or UTF-16 code units (UCS-2)."""
    _, wide = _wide(text)
    return len(text) + len(wide.findall(text))


def segments(text: str) -> int:
    """How many SMS `text` is sent (and billed) as; an empty text is still one SMS."""
    enc, wide = _wide(text)
    starts = [m.start() for m in wide.finditer(text)]
    total = len(text) + len(starts)
    if total <= SINGLE[enc]:
        return 1
    per_part = MULTI_PART[enc]
    if not starts:
        return -(-total // per_part)
    # Unit offsets where a two-unit character begins: a part whose last unit would be
    # the first half of such a pair ends one unit earlier.
    pair_at = {index + before for before, index in enumerate(starts)}
    count, start = 1, 0
    while total - start > per_part:
        end = start + per_part
        if end - 1 in pair_at:
            end -= 1
        start = end
        count += 1
    return count


def split(text: str) -> tuple[str, ...]:
    """The parts `text` is sent as, none splitting an escape pair or a surrogate pair."""
    enc, wide = _wide(text)
    if len(text) + len(wide.findall(text)) <= SINGLE[enc]:
        return (text,)
    per_part = MULTI_PART[enc]
    doubles = frozenset(GSM_EXTENSION) if enc == "GSM-7" else None
    parts: list[str] = []
    begin = used = 0
    for index, char in enumerate(text):
        width = 2 if (char in doubles if doubles is not None else ord(char) > 0xFFFF) else 1
        if used + width > per_part:
            parts.append(text[begin:index])
            begin, used = index, 0
        used += width
    parts.append(text[begin:])
    return tuple(parts)


def characters_forcing_ucs2(text: str) -> tuple[str, ...]:
    """The distinct characters of `text` outside the GSM alphabet, in order of appearance."""
    return tuple(dict.fromkeys(_NON_GSM.findall(text)))


def gsm_friendly(text: str) -> str:
    """`text` with typographic spaces, quotes and dashes replaced by their GSM forms."""
    return _SUBSTITUTE.sub(lambda m: GSM_SUBSTITUTES[m.group()], text)
