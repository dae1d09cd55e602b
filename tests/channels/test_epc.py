"""EPC QR payloads: validation names the field, the parser reads back what was built, and
the real zbar decoder reads the rendered QR code back to the exact payload bytes."""

from __future__ import annotations

import io
from ctypes import c_void_p, cast
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image
from pyzbar import pyzbar
from pyzbar.wrapper import (
    ZBarSymbol,
    zbar_image_scanner_set_config,
    zbar_image_set_data,
    zbar_image_set_format,
    zbar_image_set_size,
    zbar_scan_image,
)

from parcours.domain.structured_communication import StructuredCommunication
from parcours.payments.epc import (
    IBAN_LENGTHS,
    MAX_AMOUNT_MINOR,
    EpcPayloadTooLarge,
    EpcPayment,
    InvalidEpcPayment,
    OgmPlacement,
    belgian_transfer,
    format_iban,
    is_valid_iban,
    parse_epc_payload,
    qr_code,
    qr_png,
    qr_svg,
)

# zbar >= 0.22: return a symbol's bytes as they are instead of guessing their encoding
# (its guess reads some UTF-8 pairs, such as "É", as Shift-JIS). A banking app reads the
# bytes in the character set the payload's third line names; so does this helper.
ZBAR_CFG_BINARY = 4


def zbar_decode_raw(image: Image.Image) -> list[bytes]:
    """Every QR code zbar finds in `image`, as raw bytes."""
    pixels, width, height = pyzbar._pixel_data(image)
    with pyzbar._image_scanner() as scanner:
        zbar_image_scanner_set_config(scanner, ZBarSymbol.QRCODE, ZBAR_CFG_BINARY, 1)
        with pyzbar._image() as zimage:
            zbar_image_set_format(zimage, pyzbar._FOURCC["L800"])
            zbar_image_set_size(zimage, width, height)
            zbar_image_set_data(zimage, cast(pixels, c_void_p), len(pixels), None)
            zbar_scan_image(scanner, zimage)
            return [d.data for d in pyzbar._decode_symbols(pyzbar._symbols_for_image(zimage))]


def decode_png(png: bytes) -> list[bytes]:
    return zbar_decode_raw(Image.open(io.BytesIO(png)))


OGM = StructuredCommunication.from_base(1234567890)  # +++123/4567/89002+++


def make_payment(**changes: Any) -> EpcPayment:
    fields: dict[str, Any] = {
        "name": "Demo Energy SA",
        "iban": "BE71096123456769",
        "amount_minor": 9200,
        "bic": "GKCCBEBB",
        "structured_reference": OGM.digits,
    }
    fields.update(changes)
    return EpcPayment(**fields)


# --- strategies ------------------------------------------------------------------------

_TEXT_CHARS = st.characters(
    codec="utf-8", exclude_categories=("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")
)


def texts(max_size: int) -> st.SearchStrategy[str]:
    return st.text(_TEXT_CHARS, min_size=1, max_size=max_size).filter(
        lambda s: s == s.strip() and bool(s)
    )


@st.composite
def ibans(draw: st.DrawFn) -> str:
    """A valid IBAN of any registered country (random BBAN, computed check digits)."""
    country = draw(st.sampled_from(sorted(IBAN_LENGTHS)))
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    size = IBAN_LENGTHS[country] - 4
    bban = draw(st.text(alphabet, min_size=size, max_size=size))
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


@st.composite
def rf_references(draw: st.DrawFn) -> str:
    body = draw(st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=21))
    numeric = "".join(str(int(c, 36)) for c in body + "RF00")
    return f"RF{98 - int(numeric) % 97:02d}{body}"


@st.composite
def payments(draw: st.DrawFn) -> EpcPayment:
    remittance = draw(st.sampled_from(["ogm", "rf", "text", "none"]))
    reference = text = None
    if remittance == "ogm":
        reference = StructuredCommunication.from_base(draw(st.integers(0, 10**10 - 1))).digits
    elif remittance == "rf":
        reference = draw(rf_references())
    elif remittance == "text":
        text = draw(texts(140))
    try:
        return EpcPayment(
            name=draw(texts(70)),
            iban=draw(ibans()),
            amount_minor=draw(st.none() | st.integers(1, MAX_AMOUNT_MINOR)),
            bic=draw(
                st.none() | st.from_regex(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?", fullmatch=True)
            ),
            purpose=draw(st.none() | st.from_regex(r"[A-Z0-9]{1,4}", fullmatch=True)),
            structured_reference=reference,
            remittance_text=text,
            information=draw(st.none() | texts(70)),
        )
    except EpcPayloadTooLarge:
        assume(False)
        raise


# --- the payload -----------------------------------------------------------------------


def test_belgian_transfer_puts_the_ogm_as_twelve_digits_in_the_structured_line() -> None:
    payment = belgian_transfer(
        name="Demo Energy SA",
        iban="BE71096123456769",
        bic="GKCCBEBB",
        amount_minor=9200,
        communication=OGM,
    )
    assert payment.payload() == (
        "BCD\n002\n1\nSCT\nGKCCBEBB\nDemo Energy SA\nBE71096123456769\nEUR92.00\n\n123456789002"
    )
    lines = payment.lines()
    assert lines[9] == "123456789002" and len(lines) == 10  # no text line, no info line


def test_the_text_placement_is_kept_as_a_fallback_with_the_printed_form() -> None:
    payment = belgian_transfer(
        name="Demo Energy SA",
        iban="BE71096123456769",
        amount_minor=9200,
        communication=OGM,
        placement=OgmPlacement.TEXT,
    )
    assert payment.lines()[4] == ""  # BIC left out: optional in version 002
    assert payment.lines()[9:] == ("", "+++123/4567/89002+++")


def test_amounts_are_written_with_two_decimals_from_cents() -> None:
    assert make_payment(amount_minor=1).lines()[7] == "EUR0.01"
    assert make_payment(amount_minor=8450).lines()[7] == "EUR84.50"
    assert make_payment(amount_minor=MAX_AMOUNT_MINOR).lines()[7] == "EUR999999999.99"


def test_trailing_empty_lines_are_left_off_but_inner_ones_kept() -> None:
    payment = make_payment(structured_reference=None, information="Merci")
    assert payment.lines()[-4:] == ("", "", "", "Merci")
    assert make_payment(structured_reference=None, amount_minor=None, bic=None).lines() == (
        "BCD",
        "002",
        "1",
        "SCT",
        "",
        "Demo Energy SA",
        "BE71096123456769",
    )


@settings(max_examples=100, suppress_health_check=[HealthCheck.filter_too_much])
@given(payments())
def test_a_payload_parses_back_to_the_same_payment(payment: EpcPayment) -> None:
    assert parse_epc_payload(payment.payload()) == payment


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(payments())
def test_zbar_reads_the_png_back_to_the_exact_payload(payment: EpcPayment) -> None:
    code = qr_code(payment)
    assert code.error == "M" and isinstance(code.version, int) and code.version <= 13
    [data] = decode_png(qr_png(payment))
    assert data == payment.payload().encode("utf-8")
    assert parse_epc_payload(data.decode("utf-8")) == payment


def test_the_parser_accepts_crlf_line_ends() -> None:
    payment = make_payment(information="Dossier C-1")
    assert parse_epc_payload(payment.payload().replace("\n", "\r\n")) == payment


# --- errors name the field -------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": " Demo"}, "name"),
        ({"name": "x" * 71}, "name"),
        ({"name": "Demo\nEnergy"}, "name"),
        ({"iban": "BE71096123456768"}, "iban"),  # one digit off
        ({"iban": "BE7109612345676"}, "iban"),  # Belgian IBANs have 16 characters
        ({"iban": "be71096123456769"}, "iban"),
        ({"iban": "BE71 0961 2345 6769"}, "iban"),
        ({"iban": "ZZ71096123456769"}, "iban"),
        ({"bic": "GKCCBE"}, "bic"),
        ({"bic": "GKCCBEBBX"}, "bic"),
        ({"amount_minor": 0}, "amount"),
        ({"amount_minor": -5}, "amount"),
        ({"amount_minor": MAX_AMOUNT_MINOR + 1}, "amount"),
        ({"amount_minor": True}, "amount"),
        ({"purpose": "GDDSX"}, "purpose"),
        ({"purpose": "gdds"}, "purpose"),
        ({"structured_reference": "123456789003"}, "structured_reference"),  # mod 97
        ({"structured_reference": "+++123/4567/89002+++"}, "structured_reference"),
        ({"structured_reference": "RF19539007547034"}, "structured_reference"),
        ({"structured_reference": "INV-2026-0042"}, "structured_reference"),
        ({"remittance_text": "Facture 42"}, "remittance"),  # both remittances
        ({"structured_reference": None, "remittance_text": "y" * 141}, "remittance_text"),
        ({"information": "z" * 71}, "information"),
    ],
)
def test_bad_input_raises_an_error_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEpcPayment) as raised:
        make_payment(**changes)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


def test_a_valid_rf_reference_is_accepted() -> None:
    assert make_payment(structured_reference="RF18539007547034").lines()[9] == "RF18539007547034"


def test_a_payload_beyond_version_13_fails_clearly() -> None:
    # 70 three-byte characters plus 140 two-byte ones: 490 bytes, more than 331.
    with pytest.raises(EpcPayloadTooLarge) as raised:
        make_payment(name="€" * 70, structured_reference=None, remittance_text="é" * 140)
    assert raised.value.field == "payload"
    assert "331" in str(raised.value) and "version 13" in str(raised.value)


def test_a_331_byte_payload_fits_version_13_at_level_m_and_one_more_byte_does_not() -> None:
    fields: dict[str, Any] = {
        "name": "N" * 70,
        "iban": "LC14BOSL123456789012345678901234",  # the longest IBAN: 32 characters
        "bic": "GKCCBEBBXXX",
        "purpose": "GDDS",
        "structured_reference": None,
        "information": "I" * 70,
        "amount_minor": MAX_AMOUNT_MINOR,
    }
    payment = make_payment(**fields, remittance_text="T" * 108)
    assert len(payment.payload().encode()) == 331
    code = qr_code(payment)
    assert code.designator == "13-M"
    assert decode_png(qr_png(payment)) == [payment.payload().encode()]
    with pytest.raises(EpcPayloadTooLarge):
        make_payment(**fields, remittance_text="T" * 109)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ("BCD\n001\n1\nSCT\n\nDemo\nBE71096123456769", "version"),
        ("BCD\n002\n2\nSCT\n\nDemo\nBE71096123456769", "charset"),
        ("XYZ\n002\n1\nSCT\n\nDemo\nBE71096123456769", "service_tag"),
        ("BCD\n002\n1\nINST\n\nDemo\nBE71096123456769", "identification"),
        ("BCD\n002\n1\nSCT\n\nDemo\nBE71096123456769\n84.50", "amount"),
        ("BCD\n002\n1\nSCT\n\nDemo\nBE71096123456769\nEUR84,50", "amount"),
        ("BCD\n002\n1\nSCT\n\nDemo", "payload"),
        ("BCD\n002\n1\nSCT\n\nDemo\nBE71096123456769" + "\n" * 6, "payload"),
        ("BCD\n002\n1\nSCT\n\nDemo\nBE71096123456769\nEUR1\n\n123456789002\nFacture", "remittance"),
    ],
)
def test_the_parser_names_what_is_wrong(payload: str, field: str) -> None:
    with pytest.raises(InvalidEpcPayment) as raised:
        parse_epc_payload(payload)
    assert raised.value.field == field


def test_the_parser_reads_amounts_with_zero_one_or_two_decimals() -> None:
    base = "BCD\n002\n1\nSCT\n\nDemo\nBE71096123456769\n"
    assert parse_epc_payload(base + "EUR12").amount_minor == 1200
    assert parse_epc_payload(base + "EUR12.3").amount_minor == 1230
    assert parse_epc_payload(base + "EUR12.34").amount_minor == 1234


# --- IBANs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "iban",
    [
        "BE71096123456769",
        "DE89370400440532013000",
        "NL91ABNA0417164300",
        "FR1420041010050500013M02606",
        "GB29NWBK60161331926819",
        "LU280019400644750000",
        "NO9386011117947",
    ],
)
def test_published_example_ibans_are_valid(iban: str) -> None:
    assert is_valid_iban(iban)


@given(ibans(), st.data())
def test_changing_one_digit_of_an_iban_is_always_caught(iban: str, data: st.DataObject) -> None:
    """MOD 97-10 catches every single substituted digit (not every substituted letter:
    letters count as two digits)."""
    digits = [i for i in range(2, len(iban)) if iban[i].isdigit()]
    position = data.draw(st.sampled_from(digits))
    replacement = data.draw(st.sampled_from("0123456789").filter(lambda c: c != iban[position]))
    assert is_valid_iban(iban)
    assert not is_valid_iban(iban[:position] + replacement + iban[position + 1 :])


def test_ibans_print_in_groups_of_four() -> None:
    assert format_iban("BE71096123456769") == "BE71 0961 2345 6769"
    assert format_iban("FR1420041010050500013M02606") == "FR14 2004 1010 0505 0001 3M02 606"


# --- pictures --------------------------------------------------------------------------


def test_the_svg_is_a_sizeless_svg_with_its_quiet_zone() -> None:
    svg = qr_svg(make_payment())
    assert svg.startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in svg
    assert "width=" not in svg.split(">", 1)[0]
    side = qr_code(make_payment()).symbol_size(scale=1, border=4)[0]
    assert f'viewBox="0 0 {side} {side}"' in svg
