"""People's names as payers write them and banks pass them on: compared without case,
accents, titles, legal forms or punctuation, and looked up by their sorted words.

Light on purpose (standard library only): the import's parse workers compute every
debtor's `name_key`, and reconciliation looks payers up by it.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Final

__all__ = ["name_key", "normalise_name"]

# Words that say what a payer is, not who: courtesy titles (FR, NL, EN), legal forms of
# companies (BE, FR, NL, DE, UK) and the "and" of joint accounts ("Dhr. en Mevr. Peeters").
_NOT_A_NAME: Final = frozenset(
    {
        # titles
        "m", "mr", "mme", "mlle", "mm", "mrs", "ms", "miss", "dr", "prof", "me", "sir",
        "madam", "monsieur", "madame", "mademoiselle", "dhr", "mevr", "mw", "mej", "hr",
        "heer", "mevrouw", "mijnheer", "ir", "fam", "familie", "famille",
        # legal forms
        "bv", "bvba", "nv", "vzw", "cv", "cvba", "commv", "vof", "srl", "sprl", "sa",
        "scrl", "sc", "scs", "asbl", "snc", "sas", "sarl", "gmbh", "ag", "ltd", "llc",
        "inc", "plc",
        # joint accounts
        "en", "et", "and",
    }
)  # fmt: skip
_APOSTROPHES: Final = str.maketrans("", "", "'’`´")
# Initials written with dots ("s.a.", "n.v", "b.v.b.a.") become one word, so that legal
# forms are recognised; a lone "m. dupont" stays two words.
_DOTTED: Final = re.compile(r"\b[^\W\d_](?:\.[^\W\d_])+\b\.?")
_NON_WORD: Final = re.compile(r"[\W_]+")


@lru_cache(maxsize=65536)
def normalise_name(name: str) -> str:
    """A name as compared: case-folded, accents stripped, titles and legal forms dropped,
    punctuation gone, single spaces; word order kept."""
    text = name.casefold()
    if not text.isascii():
        text = "".join(
            c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
        )
    text = text.translate(_APOSTROPHES)
    if "." in text:
        text = _DOTTED.sub(lambda m: m.group().replace(".", "") + " ", text)
    return " ".join(w for w in _NON_WORD.sub(" ", text).split() if w not in _NOT_A_NAME)


def name_key(name: str) -> str:
    """The normalised name's words sorted: the same key for "Peeters Jan" and "Jan
    Peeters", for an index of payers' names."""
    return " ".join(sorted(normalise_name(name).split()))
