"""The debtor page's words in French, Dutch and English: Jinja2 templates written in
English inside `{% trans %}` blocks, translated by the Babel catalogs of
`web/locale/<lang>/LC_MESSAGES/portal.po` (compiled in memory at start, as the messages'
catalogs are), and amounts and dates formatted for the debtor's locale.
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Final

import jinja2
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency
from babel.support import NullTranslations, Translations

from parcours.domain.money import currency_exponent

__all__ = ["LANGUAGES", "LOCALES", "environment", "format_money", "pick_language"]

LANGUAGES: Final = ("fr", "nl", "en")
LOCALES: Final = {"fr": "fr_BE", "nl": "nl_BE", "en": "en_BE"}
WEB_DIR: Final = Path(__file__).resolve().parent.parent
LOCALE_DIR: Final = WEB_DIR / "locale"
TEMPLATE_DIR: Final = WEB_DIR / "templates"
DOMAIN: Final = "portal"


def pick_language(*choices: str | None) -> str:
    """The first supported language among the choices (the switcher's, the debtor's)."""
    for choice in choices:
        if choice and choice[:2].lower() in LANGUAGES:
            return choice[:2].lower()
    return "fr"


def _translations(language: str) -> NullTranslations:
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.exists():
        return NullTranslations()  # English: the templates' own words
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=LOCALES[language], domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer, domain=DOMAIN)


def format_money(minor: int, currency: str, language: str) -> str:
    exponent = currency_exponent(currency)
    return format_currency(Decimal(minor).scaleb(-exponent), currency, locale=LOCALES[language])


@cache
def environment(language: str) -> jinja2.Environment:
    """One template environment per language, built once: templates compile once."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.install_gettext_translations(_translations(language), newstyle=True)  # type: ignore[attr-defined]
    locale = LOCALES[language]

    def money(minor: int, currency: str = "EUR") -> str:
        return format_money(minor, currency, language)

    def date(day: dt.date | dt.datetime, style: str = "long") -> str:
        return format_date(day, format=style, locale=locale)

    filters: dict[str, Any] = {"money": money, "date": date}
    env.filters.update(filters)
    env.globals["lang"] = language
    return env
