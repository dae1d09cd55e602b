"""EPC QR codes ("GiroCode", EPC069-12): a SEPA credit transfer a banking app can scan.

The payload is always version 002, character set 1 (UTF-8), identification SCT: twelve
lines at most, joined by LF, with trailing empty lines left off.

    BCD / 002 / 1 / SCT / BIC (optional) / name (≤ 70) / IBAN / EUR<amount> (optional) /
    purpose (≤ 4) / structured reference (≤ 35) / remittance text (≤ 140) / info (≤ 70)

The structured reference and the remittance text exclude each other. The whole payload
is at most 331 bytes, which is what a QR code of version 13 holds at error correction
level M: the guideline's two limits are the same limit.

Where the Belgian structured communication (OGM/VCS) goes
----------------------------------------------------------
Decision: in the **structured reference** line (line 10), as its **twelve bare digits**
(`123456789002`, no `+++`, no slashes), with the remittance text line left empty.

Evidence:
- Febelfin, "Conditions pour proposer des virements" (febelfin.be): the structured
  communication's paper format is `+++123/1234/12345+++`, its *digital* format is the
  twelve digits; anything added to the communication turns the transfer into a transfer
  with a free communication. So the plus signs and slashes are print-only, and the OGM
  must travel alone.
- Belgian banks' SEPA credit-transfer XML (Febelfin implementation guide, BEIG CT, and
  e.g. XMLdation's notes on the `BBA` issuer): the OGM is carried as *structured*
  remittance information (CreditorReferenceInformation, type SCOR, issuer BBA, the
  twelve digits), not in the unstructured text. EPC069-12 maps line 10 to AT-05
  structured remittance information: the same slot.
- Odoo's SEPA QR module (account_qr_code_sepa) validates a Belgian OGM with the
  mod-97 rule, strips `+++`/`***` and slashes, and writes the twelve digits to line 10
  with line 11 empty; only a reference it cannot validate goes to the text line.
- Users of Dolibarr (PR #38880) and letspeppol (issue #274, fixed by PR #286) reported
  that with the OGM in the text line their Belgian banking apps filled it in as a free
  message rather than as a structured communication; both projects moved it to line 10.
- Febelfin (2025, "Automatic bank transfer via QR code: a straightforward sector
  solution"): almost all banks in Belgium read this standard QR code in their apps.
Not verified here: a scan with the KBC, Belfius, ING, BNP Paribas Fortis and Argenta
apps themselves (no phone in this workplace). `belgian_transfer(..., placement=...)`
keeps the text-line placement available should one app prove to need it.

Reading the QR code back: the payload is written as raw UTF-8 bytes in byte mode, with
no ECI designator, as segno's own EPC helper and the generators banks accept do; the
character set line tells the app how to read the bytes.
"""

from __future__ import annotations

import enum
import io
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

import segno

from parcours.domain.errors import DomainError, InvalidStructuredCommunication
from parcours.domain.structured_communication import StructuredCommunication

__all__ = [
    "IBAN_LENGTHS",
    "MAX_AMOUNT_MINOR",
    "MAX_PAYLOAD_BYTES",
    "MAX_QR_VERSION",
    "EpcPayloadTooLarge",
    "EpcPayment",
    "InvalidEpcPayment",
    "OgmPlacement",
    "belgian_transfer",
    "format_iban",
    "iban_problem",
    "is_valid_iban",
    "parse_epc_payload",
    "qr_code",
    "qr_png",
    "qr_svg",
]

SERVICE_TAG: Final = "BCD"
VERSION: Final = "002"
CHARSET_UTF8: Final = "1"
IDENTIFICATION: Final = "SCT"
MAX_AMOUNT_MINOR: Final = 99_999_999_999  # EUR 999,999,999.99
MAX_PAYLOAD_BYTES: Final = 331  # what QR version 13 holds at level M, in byte mode
MAX_QR_VERSION: Final = 13
ERROR_CORRECTION: Final = "M"

# IBAN length per country, from the SWIFT IBAN registry (ISO 13616).
IBAN_LENGTHS: Final[dict[str, int]] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
}  # fmt: skip

_IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]+")
_BIC = re.compile(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_PURPOSE = re.compile(r"[A-Z0-9]{1,4}")
_RF_REFERENCE = re.compile(r"RF[0-9]{2}[A-Z0-9]{1,21}")
_OGM_DIGITS = re.compile(r"[0-9]{12}")
_AMOUNT = re.compile(r"EUR([0-9]{1,9})(?:\.([0-9]{1,2}))?")


class InvalidEpcPayment(DomainError):
    """A field of an EPC QR payment breaks the guideline; `field` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class EpcPayloadTooLarge(InvalidEpcPayment):
    """The payload does not fit a QR code of version 13 at error correction level M."""


def _mod97(text: str) -> int:
    """ISO 7064 MOD 97-10 of an alphanumeric string (letters count as 10..35)."""
    remainder = 0
    for char in text:
        for digit in str(int(char, 36)):
            remainder = (remainder * 10 + int(digit)) % 97
    return remainder


def iban_problem(iban: str) -> str | None:
    """Why `iban` (electronic form: no spaces, upper case) is not an IBAN, or None."""
    if not _IBAN_SHAPE.fullmatch(iban):
        return "not an IBAN in electronic form (two letters, two digits, letters and digits)"
    country = iban[:2]
    expected = IBAN_LENGTHS.get(country)
    if expected is None:
        return f"{country} is not a country that uses IBANs"
    if len(iban) != expected:
        return f"an IBAN from {country} has {expected} characters, not {len(iban)}"
    if _mod97(iban[4:] + iban[:4]) != 1:
        return "the check digits do not match (mod 97)"
    return None


def is_valid_iban(iban: str) -> bool:
    """True for an IBAN in electronic form with the right length and check digits."""
    return iban_problem(iban) is None


def format_iban(iban: str) -> str:
    """The IBAN as printed: groups of four (`BE71 0961 2345 6769`)."""
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def _rf_reference_valid(reference: str) -> bool:
    return _mod97(reference[4:] + reference[:4]) == 1


def _text_problem(value: str, max_chars: int) -> str | None:
    if not value.strip():
        return "must not be blank"
    if value != value.strip():
        return "must not start or end with spaces (apps trim them)"
    if len(value) > max_chars:
        return f"at most {max_chars} characters, got {len(value)}"
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            return f"contains a control or unassigned character U+{ord(char):04X}"
    return None


def _format_amount(amount_minor: int) -> str:
    euros, cents = divmod(amount_minor, 100)
    return f"EUR{euros}.{cents:02d}"


@dataclass(frozen=True, slots=True)
class EpcPayment:
    """A validated SEPA credit transfer, ready to become an EPC QR payload.

    `amount_minor` is in euro cents (None leaves the amount to the payer).
    `structured_reference` is an ISO 11649 `RF…` reference or a Belgian structured
    communication as twelve digits; `remittance_text` is free text. At most one of them.
    `information` is the beneficiary-to-originator note some apps show to the payer.
    """

    name: str
    iban: str
    amount_minor: int | None = None
    bic: str | None = None
    purpose: str | None = None
    structured_reference: str | None = None
    remittance_text: str | None = None
    information: str | None = None

    def __post_init__(self) -> None:
        if (problem := _text_problem(self.name, 70)) is not None:
            raise InvalidEpcPayment("name", problem)
        if (problem := iban_problem(self.iban)) is not None:
            raise InvalidEpcPayment("iban", problem)
        if self.bic is not None and not _BIC.fullmatch(self.bic):
            raise InvalidEpcPayment("bic", "a BIC has 8 or 11 letters and digits (AAAABBCC[DDD])")
        if self.amount_minor is not None:
            if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
                raise InvalidEpcPayment("amount", "must be an integer number of cents")
            if not 1 <= self.amount_minor <= MAX_AMOUNT_MINOR:
                raise InvalidEpcPayment("amount", "must be from EUR 0.01 to EUR 999999999.99")
        if self.purpose is not None and not _PURPOSE.fullmatch(self.purpose):
            raise InvalidEpcPayment("purpose", "a purpose code has 1 to 4 upper-case letters")
        if self.structured_reference is not None and self.remittance_text is not None:
            raise InvalidEpcPayment("remittance", "give a structured reference or a text, not both")
        if self.structured_reference is not None:
            self._check_structured_reference(self.structured_reference)
        if self.remittance_text is not None and (
            problem := _text_problem(self.remittance_text, 140)
        ):
            raise InvalidEpcPayment("remittance_text", problem)
        if self.information is not None and (problem := _text_problem(self.information, 70)):
            raise InvalidEpcPayment("information", problem)
        size = len(self.payload().encode("utf-8"))
        if size > MAX_PAYLOAD_BYTES:
            raise EpcPayloadTooLarge(
                "payload",
                f"{size} bytes in UTF-8, at most {MAX_PAYLOAD_BYTES} fit a QR code of "
                f"version {MAX_QR_VERSION} at level {ERROR_CORRECTION}; shorten the name or text",
            )

    @staticmethod
    def _check_structured_reference(reference: str) -> None:
        if _RF_REFERENCE.fullmatch(reference):
            if not _rf_reference_valid(reference):
                raise InvalidEpcPayment(
                    "structured_reference", "the RF reference's check digits do not match"
                )
            return
        if _OGM_DIGITS.fullmatch(reference):
            try:
                StructuredCommunication(reference)
            except InvalidStructuredCommunication:
                raise InvalidEpcPayment(
                    "structured_reference",
                    "the Belgian structured communication fails its mod-97 check",
                ) from None
            return
        raise InvalidEpcPayment(
            "structured_reference",
            "expected an ISO 11649 reference (RF + 2 check digits + up to 21 letters or "
            "digits) or a Belgian structured communication as 12 digits",
        )

    def lines(self) -> tuple[str, ...]:
        """The payload's lines, trailing empty ones left off."""
        lines = [
            SERVICE_TAG,
            VERSION,
            CHARSET_UTF8,
            IDENTIFICATION,
            self.bic or "",
            self.name,
            self.iban,
            "" if self.amount_minor is None else _format_amount(self.amount_minor),
            self.purpose or "",
            self.structured_reference or "",
            self.remittance_text or "",
            self.information or "",
        ]
        while lines[-1] == "":
            lines.pop()
        return tuple(lines)

    def payload(self) -> str:
        """The text the QR code holds (lines joined by LF)."""
        return "\n".join(self.lines())


def parse_epc_payload(payload: str) -> EpcPayment:
    """Read back an EPC QR payload of version 002 in UTF-8 (LF or CRLF line ends)."""
    lines = payload.replace("\r\n", "\n").split("\n")
    if not 7 <= len(lines) <= 12:
        raise InvalidEpcPayment("payload", f"expected 7 to 12 lines, got {len(lines)}")
    lines += [""] * (12 - len(lines))
    tag, version, charset, identification, bic, name, iban, amount, purpose = lines[:9]
    reference, text, information = lines[9:]
    if tag != SERVICE_TAG:
        raise InvalidEpcPayment("service_tag", f"expected {SERVICE_TAG!r}")
    if version != VERSION:
        raise InvalidEpcPayment("version", f"only version {VERSION} is read, got {version!r}")
    if charset != CHARSET_UTF8:
        raise InvalidEpcPayment("charset", f"only character set 1 (UTF-8) is read, got {charset!r}")
    if identification != IDENTIFICATION:
        raise InvalidEpcPayment("identification", f"expected {IDENTIFICATION!r}")
    amount_minor: int | None = None
    if amount:
        match = _AMOUNT.fullmatch(amount)
        if match is None:
            raise InvalidEpcPayment("amount", "expected EUR followed by an amount like 84.50")
        euros, cents = match.group(1), (match.group(2) or "0").ljust(2, "0")
        amount_minor = int(euros) * 100 + int(cents)
    return EpcPayment(
        name=name,
        iban=iban,
        amount_minor=amount_minor,
        bic=bic or None,
        purpose=purpose or None,
        structured_reference=reference or None,
        remittance_text=text or None,
        information=information or None,
    )


class OgmPlacement(enum.StrEnum):
    """Which line carries a Belgian structured communication (see the module docstring)."""

    STRUCTURED = "structured"  # line 10, twelve digits: what Belgian banks read
    TEXT = "text"  # line 11, as printed (+++123/4567/89002+++): a fallback only


def belgian_transfer(
    *,
    name: str,
    iban: str,
    amount_minor: int | None,
    communication: StructuredCommunication,
    bic: str | None = None,
    information: str | None = None,
    placement: OgmPlacement = OgmPlacement.STRUCTURED,
) -> EpcPayment:
    """A transfer paid with a Belgian structured communication, placed as decided above."""
    if placement is OgmPlacement.STRUCTURED:
        return EpcPayment(
            name=name,
            iban=iban,
            amount_minor=amount_minor,
            bic=bic,
            structured_reference=communication.digits,
            information=information,
        )
    return EpcPayment(
        name=name,
        iban=iban,
        amount_minor=amount_minor,
        bic=bic,
        remittance_text=communication.formatted,
        information=information,
    )


def qr_code(payment: EpcPayment) -> segno.QRCode:
    """The QR code of a payment: byte mode, UTF-8, level M, version 13 at most."""
    data = payment.payload().encode("utf-8")
    code = segno.make_qr(data, error=ERROR_CORRECTION, boost_error=False, mode="byte")
    version = code.version
    if not isinstance(version, int) or version > MAX_QR_VERSION:
        raise EpcPayloadTooLarge(
            "payload", f"needs QR version {version}, the EPC guideline allows {MAX_QR_VERSION}"
        )
    return code


def qr_svg(payment: EpcPayment) -> str:
    """The QR code as SVG markup (quiet zone included, no fixed size: CSS sizes it)."""
    buffer = io.BytesIO()
    qr_code(payment).save(
        buffer, kind="svg", scale=1, border=4, xmldecl=False, svgns=True, omitsize=True
    )
    return buffer.getvalue().decode("utf-8")


def qr_png(payment: EpcPayment, *, scale: int = 4) -> bytes:
    """The QR code as PNG bytes, `scale` pixels per module, quiet zone included."""
    buffer = io.BytesIO()
    qr_code(payment).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()
