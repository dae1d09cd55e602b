"""Money as integer minor units plus an ISO 4217 currency: no floats anywhere.

Currency data (which codes are in use, how many decimals each has) comes from Babel's CLDR
tables rather than a hand-kept list; it is pure data, read once.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from babel import numbers as babel_numbers
from babel.core import get_global

from parcours.domain.errors import InvalidAmount, InvalidCurrency

__all__ = ["Money", "currency_exponent", "is_iso_currency", "parse_amount"]

# Digits, an optional "." and digits: no sign, no exponent, no thousands separator.
_AMOUNT = re.compile(r"([0-9]{1,15})(?:\.([0-9]{1,6}))?")


@lru_cache(maxsize=1)
def _currencies_in_use() -> frozenset[str]:
    today = dt.datetime.now(dt.UTC).date()
    codes: set[str] = set()
    for territory in get_global("territory_currencies"):
        codes.update(babel_numbers.get_territory_currencies(territory, today, tender=True))
    return frozenset(codes)


def is_iso_currency(code: str) -> bool:
    """True for an ISO 4217 code that is legal tender somewhere today."""
    return code in _currencies_in_use()


@lru_cache(maxsize=256)
def currency_exponent(code: str) -> int:
    """Number of decimals of the currency's minor unit (EUR 2, JPY 0, BHD 3)."""
    if not is_iso_currency(code):
        raise InvalidCurrency(f"{code!r} is not an ISO 4217 currency in use")
    return int(babel_numbers.get_currency_precision(code))


def parse_amount(text: str, currency: str) -> int:
    """Parse a positive decimal amount ("1234.50") into minor units of `currency`."""
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise InvalidAmount(f"{text!r} is not a number like 1234.50 ('.' as decimal separator)")
    whole, fraction = match.group(1), match.group(2) or ""
    exponent = currency_exponent(currency)
    fraction = fraction.rstrip("0")
    if len(fraction) > exponent:
        raise InvalidAmount(f"{text!r} has more than {exponent} decimals for {currency}")
    minor = int(whole) * int(10**exponent) + (int(fraction.ljust(exponent, "0")) if exponent else 0)
    if minor <= 0:
        raise InvalidAmount(f"{text!r} is not a positive amount")
    return minor


@dataclass(frozen=True, slots=True, order=True)
class Money:
    """An amount in minor units (cents for EUR) of one currency."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        currency_exponent(self.currency)  # rejects unknown currencies

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """A positive amount written with '.' as decimal separator."""
        return cls(parse_amount(text, currency), currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @property
    def amount(self) -> Decimal:
        """The amount as an exact Decimal in major units."""
        return Decimal(self.minor).scaleb(-currency_exponent(self.currency))

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise InvalidCurrency(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __str__(self) -> str:
        exponent = currency_exponent(self.currency)
        return f"{self.amount:.{exponent}f} {self.currency}"
