"""Money: parsing amounts into minor units per ISO 4217 currency, and currency-safe arithmetic."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parcours.domain import InvalidAmount, Money, currency_exponent, is_iso_currency, parse_amount
from parcours.domain.errors import DomainError, InvalidCurrency

# The whole part takes at most 15 digits, so amounts stay below 10**15 major units.
MAX_WHOLE = 10**15 - 1
CURRENCIES = ("EUR", "JPY", "BHD")


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("1234.50", "EUR", 123450),
        ("0.01", "EUR", 1),
        ("7", "EUR", 700),
        ("7.5", "EUR", 750),
        ("7.500", "EUR", 750),  # trailing zeros beyond the exponent change nothing
        ("1500", "JPY", 1500),
        ("1500.0", "JPY", 1500),
        ("1.234", "BHD", 1234),
        ("0.001", "BHD", 1),
        ("12.5", "BHD", 12500),
    ],
)
def test_parse_amount_gives_minor_units_for_the_currency_exponent(
    text: str, currency: str, minor: int
) -> None:
    assert parse_amount(text, currency) == minor
    assert Money.parse(text, currency) == Money(minor, currency)


def test_currency_exponents_come_from_iso_4217() -> None:
    assert [currency_exponent(c) for c in CURRENCIES] == [2, 0, 3]


@pytest.mark.parametrize(
    "text",
    [
        "1234,50",  # comma as decimal separator
        "1,234.50",  # thousands separator
        "-5.00",
        "+5.00",
        "1e3",
        "1E3",
        "0",
        "0.00",
        "000",
        "",
        " 5.00",
        "5.",
        ".50",
        "5.00 EUR",
        "1.001",  # three decimals for EUR
    ],
)
def test_parse_amount_rejects_what_is_not_a_plain_positive_decimal(text: str) -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(text, "EUR")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("١٢٣", id="arabic-indic"),
        pytest.param("１２.５０", id="full-width"),
        pytest.param("12.٥٠", id="ascii-whole-arabic-fraction"),
    ],
)
def test_parse_amount_accepts_only_ascii_digits(text: str) -> None:
    """A CSV amount in another script's digits is a data error, not 123.00 EUR."""
    with pytest.raises(InvalidAmount):
        parse_amount(text, "EUR")


@pytest.mark.parametrize(("text", "currency"), [("1.5", "JPY"), ("1.0001", "BHD"), ("0.5", "JPY")])
def test_parse_amount_rejects_more_decimals_than_the_currency_has(text: str, currency: str) -> None:
    with pytest.raises(InvalidAmount, match="decimals"):
        parse_amount(text, currency)


@pytest.mark.parametrize("currency", ["XYZ", "DEM", "eur", "", "EURO"])
def test_unknown_lower_case_and_historic_currencies_are_refused(currency: str) -> None:
    assert not is_iso_currency(currency)
    with pytest.raises(InvalidCurrency):
        parse_amount("1.00", currency)
    with pytest.raises(InvalidCurrency):
        Money(100, currency)


def test_domain_errors_are_value_errors_so_callers_can_catch_either() -> None:
    assert issubclass(InvalidAmount, DomainError)
    assert issubclass(InvalidCurrency, ValueError)


def test_money_adds_and_subtracts_within_one_currency() -> None:
    a, b = Money(1050, "EUR"), Money(250, "EUR")
    assert a + b == Money(1300, "EUR")
    assert a - b == Money(800, "EUR")
    assert -b == Money(-250, "EUR")
    assert Money.zero("JPY") == Money(0, "JPY")


@pytest.mark.parametrize(("left", "right"), [("EUR", "JPY"), ("BHD", "EUR"), ("JPY", "BHD")])
def test_money_arithmetic_refuses_mixed_currencies(left: str, right: str) -> None:
    with pytest.raises(InvalidCurrency, match=f"{left}.*{right}"):
        Money(100, left) + Money(100, right)
    with pytest.raises(InvalidCurrency):
        Money(100, left) - Money(100, right)


def test_amount_is_an_exact_decimal_in_major_units() -> None:
    assert Money(123450, "EUR").amount == Decimal("1234.50")
    assert Money(1500, "JPY").amount == Decimal("1500")
    assert Money(1, "BHD").amount == Decimal("0.001")


@st.composite
def money(draw: st.DrawFn) -> Money:
    currency = draw(st.sampled_from(CURRENCIES))
    limit = (MAX_WHOLE + 1) * 10 ** currency_exponent(currency) - 1
    return Money(draw(st.integers(min_value=1, max_value=limit)), currency)


@given(money())
def test_formatted_amount_parses_back_to_the_same_minor_units(m: Money) -> None:
    assert parse_amount(format(m.amount), m.currency) == m.minor
    assert parse_amount(format(m.amount, "f"), m.currency) == m.minor


@given(money())
def test_str_shows_exactly_the_currency_decimals(m: Money) -> None:
    exponent = currency_exponent(m.currency)
    fraction = rf"\.\d{{{exponent}}}" if exponent else ""
    text = str(m)
    assert re.fullmatch(rf"\d+{fraction} {m.currency}", text), text
    assert Money.parse(text.removesuffix(f" {m.currency}"), m.currency) == m


@given(money(), money())
def test_addition_then_subtraction_returns_the_original_amount(a: Money, b: Money) -> None:
    if a.currency != b.currency:
        with pytest.raises(InvalidCurrency):
            a + b
        return
    assert (a + b) - b == a
    assert (a + b).minor == a.minor + b.minor
