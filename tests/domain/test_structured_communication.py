"""Belgian structured communication: mod-97 check digits, formats accepted, errors detected."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parcours.domain import InvalidStructuredCommunication, StructuredCommunication
from parcours.domain.structured_communication import structured_communication_digits

bases = st.integers(min_value=0, max_value=10**10 - 1)


def test_domain_md_example_base_gives_check_digits_02() -> None:
    communication = StructuredCommunication.from_base(1234567890)
    assert communication.digits == "123456789002"
    assert communication.formatted == "+++123/4567/89002+++"
    assert str(communication) == "+++123/4567/89002+++"
    assert communication.base == 1234567890


@pytest.mark.parametrize("base", [0, 97, 97 * 12345, 97 * 103092783])
def test_remainder_zero_gives_check_digits_97(base: int) -> None:
    assert base % 97 == 0
    assert StructuredCommunication.from_base(base).digits[10:] == "97"


@pytest.mark.parametrize("base", [0, 97])
def test_check_digits_00_are_never_valid(base: int) -> None:
    with pytest.raises(InvalidStructuredCommunication):
        StructuredCommunication(f"{base:010d}00")


@pytest.mark.parametrize(
    "text",
    [
        "+++123/4567/89002+++",
        "***123/4567/89002***",
        "123456789002",
        "123/4567/89002",
        " +++123/4567/89002+++ ",
    ],
)
def test_parse_accepts_plus_star_and_bare_forms(text: str) -> None:
    assert StructuredCommunication.parse(text).digits == "123456789002"


@pytest.mark.parametrize(
    "text",
    [
        "+++123/4567/89003+++",  # wrong check digits
        "12345678900",  # eleven digits
        "1234567890020",  # thirteen digits
        "+++123/4567/8900A+++",
        "",
    ],
)
def test_parse_rejects_malformed_or_failing_communications(text: str) -> None:
    with pytest.raises(InvalidStructuredCommunication):
        StructuredCommunication.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("١٢٣٤٥٦٧٨٩٠٠٢", id="arabic-indic"),
        pytest.param("+++１２３/４５６７/８９００２+++", id="full-width"),
        pytest.param("²²²²²²²²²²²²", id="superscript"),
    ],
)
def test_only_ascii_digits_make_a_communication(text: str) -> None:
    """Banks match the twelve ASCII digits; other scripts' digits must be refused, cleanly."""
    with pytest.raises(InvalidStructuredCommunication):
        StructuredCommunication.parse(text)


@pytest.mark.parametrize("base", [-1, 10**10])
def test_from_base_rejects_bases_outside_ten_digits(base: int) -> None:
    with pytest.raises(InvalidStructuredCommunication, match="outside"):
        StructuredCommunication.from_base(base)


@given(bases)
def test_every_base_round_trips_through_formatted_and_parse(base: int) -> None:
    communication = StructuredCommunication.from_base(base)
    formatted = communication.formatted
    assert len(formatted) == 20
    assert formatted.startswith("+++") and formatted.endswith("+++")
    parsed = StructuredCommunication.parse(formatted)
    assert parsed == communication
    assert parsed.base == base
    assert int(parsed.digits[10:]) == (base % 97 or 97)


@given(bases)
def test_fast_path_digits_equal_the_validated_value_object(base: int) -> None:
    assert structured_communication_digits(base) == StructuredCommunication.from_base(base).digits


@given(bases, st.integers(min_value=0, max_value=11), st.integers(min_value=1, max_value=9))
def test_every_single_digit_substitution_is_detected(base: int, position: int, shift: int) -> None:
    """97 is prime and divides neither 1..9 nor any power of ten, so one wrong digit is caught.

    In the base, a change by d·10^k changes the remainder; in the check digits, only one
    two-digit value is valid for a base. Either way the altered communication is refused.
    """
    digits = StructuredCommunication.from_base(base).digits
    replaced = str((int(digits[position]) + shift) % 10)
    altered = digits[:position] + replaced + digits[position + 1 :]
    assert altered != digits
    with pytest.raises(InvalidStructuredCommunication):
        StructuredCommunication(altered)
