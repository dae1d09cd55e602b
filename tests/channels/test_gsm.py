"""GSM 03.38 alphabet detection and SMS segment counting: the table, the limits, the pairs."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parcours.channels.gsm import (
    GSM_BASIC,
    GSM_EXTENSION,
    MULTI_PART,
    SINGLE,
    characters_forcing_ucs2,
    encoding,
    gsm_friendly,
    segments,
    split,
    units,
)

GSM_CHARS = sorted(GSM_BASIC | GSM_EXTENSION)
gsm_text = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=700)
# Mostly GSM, some other BMP letters, some emoji: every path of the counter.
any_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(GSM_CHARS),
        st.sampled_from("êçâîôûëïœ’«»–"),
        st.sampled_from(["😀", "👍", "𝄞", "€", "[", "]"]),
    ),
    max_size=500,
)


@st.composite
def near_a_boundary(draw: st.DrawFn) -> str:
    """A two-unit character just before a part boundary, then a tail rich in such pairs."""
    ucs2 = draw(st.booleans())
    filler = (MULTI_PART["UCS-2"] if ucs2 else MULTI_PART["GSM-7"]) * draw(st.integers(1, 3))
    filler += draw(st.integers(min_value=-3, max_value=0))
    letters = ["ê", "😀", "a"] if ucs2 else ["a", "€", "["]
    tail = draw(st.text(alphabet=st.sampled_from(letters), min_size=1, max_size=200))
    text = ("ê" if ucs2 else "a") * filler + ("😀" if ucs2 else "€") + tail
    if draw(st.booleans()):  # fill the last part to the brim: a unit lost shows as a part
        used = len(text) + sum(c in "😀€[" for c in text)
        text += ("ê" if ucs2 else "a") * (-used % MULTI_PART["UCS-2" if ucs2 else "GSM-7"])
    return text


long_text = st.one_of(any_text, near_a_boundary())


def test_the_tables_are_the_standard_ones() -> None:
    """127 basic characters (128 codes less the escape) and 10 extension characters."""
    assert len(GSM_BASIC) == 127
    assert len(GSM_EXTENSION) == 10
    assert not GSM_BASIC & GSM_EXTENSION
    assert "\x1b" not in GSM_BASIC
    # The classic traps: $ is basic (0x02) while ¤ sits at 0x24; ` is not GSM at all.
    assert {"$", "¤", "@", "_", "£", "¥", "§", "¡", "¿"} <= GSM_BASIC
    assert "`" not in GSM_BASIC | GSM_EXTENSION


@pytest.mark.parametrize(
    ("char", "expected"),
    [
        ("é", "GSM-7"),
        ("è", "GSM-7"),
        ("à", "GSM-7"),
        ("ù", "GSM-7"),
        ("É", "GSM-7"),
        ("Ç", "GSM-7"),  # 0x09 is the capital C cedilla
        ("ç", "UCS-2"),  # ... so "reçu" and "ça" force UCS-2
        ("ê", "UCS-2"),
        ("â", "UCS-2"),
        ("î", "UCS-2"),
        ("ô", "UCS-2"),
        ("û", "UCS-2"),
        ("ë", "UCS-2"),  # Dutch "financiële"
        ("ï", "UCS-2"),  # Dutch "geïnd"
        ("ä", "GSM-7"),
        ("ö", "GSM-7"),
        ("ü", "GSM-7"),
        ("€", "GSM-7"),
        ("’", "UCS-2"),
        ("\u202f", "UCS-2"),
        ("\t", "UCS-2"),
    ],
)
def test_french_and_dutch_letters(char: str, expected: str) -> None:
    assert encoding(f"Payez {char} avant le 20/12") == expected


def test_reminder_texts() -> None:
    """A plain French reminder with € stays GSM; an accented word flips it to UCS-2."""
    plain = "Demo Energy: il reste 157,00 € à payer avant le 20/12. Payez ici: https://p.example/x"
    assert encoding(plain) == "GSM-7"
    assert units(plain) == len(plain) + 1  # the euro sign costs an escape
    assert encoding(plain.replace("payer", "régler dès réception du reçu")) == "UCS-2"
    assert characters_forcing_ucs2("Reçu prêt, ça ira") == ("ç", "ê")


def test_gsm_friendly_keeps_the_words_and_drops_the_typography() -> None:
    text = "L\u2019échéance\u00a0: 1\u202f234,56\u00a0€ \u2013 «\u00a0merci\u00a0»\u2026"
    friendly = gsm_friendly(text)
    assert friendly == 'L\'échéance : 1 234,56 € - " merci "...'
    assert encoding(friendly) == "GSM-7"
    assert gsm_friendly("reçu") == "reçu"  # letters are the author's call


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # 160 septets
        ("€" * 81, 2),
        ("ê" * 70, 1),
        ("ê" * 71, 2),
        ("ê" * 134, 2),
        ("ê" * 135, 3),
        ("😀" * 35, 1),  # 70 UTF-16 code units
        ("😀" * 36, 2),
    ],
)
def test_segment_limits(text: str, expected: int) -> None:
    assert segments(text) == expected == len(split(text))


def test_an_escape_pair_is_never_cut() -> None:
    """152 letters then €: the pair would straddle septets 153/154, so part one holds 152."""
    text = "a" * 152 + "€" + "a" * 152  # 306 septets: two full parts if pairs could be cut
    assert units(text) == 306
    assert segments(text) == 3
    assert split(text) == ("a" * 152, "€" + "a" * 151, "a")


def test_a_surrogate_pair_is_never_cut() -> None:
    text = "ê" * 66 + "😀" + "ê" * 66  # 134 code units = 2 x 67, but the emoji starts at 67
    assert units(text) == 134
    assert segments(text) == 3
    assert split(text)[0] == "ê" * 66


@given(st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")))
def test_ascii_letters_are_gsm(text: str) -> None:
    assert encoding(text) == "GSM-7"
    assert units(text) == len(text)


@given(st.integers(min_value=0, max_value=2000))
def test_plain_gsm_text_follows_the_formula(length: int) -> None:
    expected = 1 if length <= 160 else -(-length // 153)
    assert segments("x" * length) == expected


@settings(max_examples=150)
@given(long_text, st.sampled_from([*GSM_CHARS, "ê", "😀", "’"]))
def test_segments_never_decrease_when_text_grows(text: str, extra: str) -> None:
    assert segments(text + extra) >= segments(text)


@settings(max_examples=150)
@given(long_text)
def test_split_is_lossless_fits_and_agrees_with_segments(text: str) -> None:
    parts = split(text)
    enc = encoding(text)
    assert "".join(parts) == text
    assert len(parts) == segments(text)
    limit = SINGLE[enc] if len(parts) == 1 else MULTI_PART[enc]

    def width(chars: str) -> int:
        wide = (lambda c: c in GSM_EXTENSION) if enc == "GSM-7" else (lambda c: ord(c) > 0xFFFF)
        return sum(2 if wide(c) else 1 for c in chars)

    assert all(width(part) <= limit for part in parts)
    # Greedy: each part but the last is full, short only when the next pair did not fit.
    for part, following in itertools.pairwise(parts):
        assert width(part) + width(following[0]) > limit


@given(gsm_text)
def test_gsm_text_units_count_escapes_twice(text: str) -> None:
    assert encoding(text) == "GSM-7"
    assert units(text) == len(text) + sum(c in GSM_EXTENSION for c in text)
    assert characters_forcing_ucs2(text) == ()


@given(any_text)
def test_ucs2_is_forced_exactly_by_the_reported_characters(text: str) -> None:
    forcing = characters_forcing_ucs2(text)
    assert (encoding(text) == "UCS-2") == bool(forcing)
    assert all(c not in GSM_BASIC | GSM_EXTENSION for c in forcing)
    if forcing:
        assert units(text) == len(text.encode("utf-16-le")) // 2
