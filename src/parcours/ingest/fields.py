"""Parsers for one CSV field each; they return the normalized value or raise `FieldError`.

Library-backed where a standard exists: emval (a Rust port of email-validator's rules,
about ten times faster, which matters at a million rows), phonenumbers (libphonenumber's
metadata) for E.164, zoneinfo for IANA time zones.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from functools import lru_cache

import emval
import phonenumbers

from parcours.domain.errors import DomainError
from parcours.domain.money import currency_exponent, parse_amount

__all__ = [
    "LANGUAGES",
    "FieldError",
    "parse_birth_year",
    "parse_country",
    "parse_currency",
    "parse_date",
    "parse_email",
    "parse_language",
    "parse_money",
    "parse_phone",
    "parse_text",
    "parse_timestamp",
    "parse_timezone",
]

LANGUAGES = ("fr", "nl", "en")
_CONTROL = re.compile(r"[\x00\r\n]")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EMAIL = emval.EmailValidator(
    allow_smtputf8=True,
    allow_empty_local=False,
    allow_quoted_local=False,
    allow_domain_literal=False,
    deliverable_address=False,
)


class FieldError(ValueError):
    """A field's value is unusable; the message says why, quoting the value."""


def parse_text(value: str, max_length: int) -> str:
    if len(value) > max_length:
        raise FieldError(f"is longer than {max_length} characters ({len(value)})")
    if _CONTROL.search(value):
        raise FieldError("contains a line break or NUL character")
    return value


def parse_email(value: str) -> str:
    """A deliverable-looking address, with its domain lower-cased."""
    try:
        checked = _EMAIL.validate_email(value)
    except SyntaxError as exc:
        raise FieldError(f"{value!r} is not a valid email address ({_tail(exc)})") from None
    if "." not in checked.ascii_domain:
        raise FieldError(f"{value!r} is not a valid email address (domain has no dot)")
    return str(checked.normalized)


def parse_phone(value: str, region: str) -> str:
    """A phone number valid for `region` (ISO 3166 alpha-2), in E.164."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise FieldError(f"{value!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise FieldError(f"{value!r} is not a valid phone number for {region}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_language(value: str) -> str:
    """fr, nl or en; accepts tags like `nl-BE` and `FR`."""
    primary = value.replace("_", "-").split("-", 1)[0].lower()
    if primary not in LANGUAGES:
        raise FieldError(f"{value!r} is not one of the supported languages {', '.join(LANGUAGES)}")
    return primary


def parse_country(value: str) -> str:
    """An ISO 3166 alpha-2 code that libphonenumber knows (it parses phones by region)."""
    code = value.upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise FieldError(f"{value!r} is not an ISO 3166 country code like BE")
    return code


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def parse_timezone(value: str) -> str:
    if value not in _time_zones():
        raise FieldError(f"{value!r} is not an IANA time zone like Europe/Brussels")
    return value


def parse_birth_year(value: str, today: dt.date) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) != 4:
        raise FieldError(f"{value!r} is not a four-digit year")
    year = int(value)
    if not 1900 <= year <= today.year - 16:
        raise FieldError(f"{value!r} is not between 1900 and {today.year - 16}")
    return year


@lru_cache(maxsize=8192)  # a portfolio has few distinct dates and millions of rows
def parse_date(value: str) -> str:
    """An ISO date `YYYY-MM-DD`, returned unchanged (it is also the storage form)."""
    if _ISO_DATE.fullmatch(value) is None:
        raise FieldError(f"{value!r} is not an ISO date (YYYY-MM-DD)")
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise FieldError(f"{value!r} is not a calendar date") from None
    return value


def parse_timestamp(value: str, default_zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """An ISO date or date-time; without an offset it is local time in `default_zone`."""
    try:
        if len(value) == 10:
            parsed = dt.datetime.combine(dt.date.fromisoformat(parse_date(value)), dt.time())
        else:
            parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise FieldError(f"{value!r} is not an ISO date or date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=default_zone)
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 falls before year 1 in UTC
        raise FieldError(f"{value!r} is out of the range of dates") from None


def parse_currency(value: str) -> str:
    code = value.upper()
    try:
        currency_exponent(code)
    except DomainError:
        raise FieldError(f"{value!r} is not an ISO 4217 currency code like EUR") from None
    return code


def parse_money(value: str, currency: str) -> int:
    """A positive amount in minor units; '.' is the decimal separator."""
    if "," in value:
        raise FieldError(f"{value!r} uses ',': write amounts with '.' as decimal separator")
    try:
        return parse_amount(value, currency)
    except DomainError as exc:
        raise FieldError(str(exc)) from None


def _tail(exc: SyntaxError) -> str:
    # emval prefixes its reasons with "Invalid Email Address: " or "Invalid Domain: ".
    text = str(exc.msg if exc.msg else exc)
    return text.split(": ", 1)[-1].rstrip(".")
