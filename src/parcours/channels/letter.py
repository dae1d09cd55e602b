"""PDF letters drawn with ReportLab: one A4 letter per message, or one PDF of many letters
plus a CSV manifest for a mail house, and the "letter" provider.

A letter shows the creditor's letterhead, the debtor's postal address in the envelope
window, place and date, subject, the message's words (`LetterBody`; a paragraph's `\\n`
line breaks are kept), the account (each open invoice, every fee on its own line with
its legal basis, a 0,00 € fee line when there is none, the total), the pay-by date, how
to pay (IBAN, BIC, the structured communication as printed, the pay link) and the EPC QR
code for the total. Fixed labels come in French, Dutch and English; amounts and dates are
formatted by Babel for fr_BE, nl_BE or en_BE. A letter too long for one page goes on
onto the next; the payment box is never split and the closing stays with it.

Why the canvas, not platypus nor HTML. WeasyPrint spent about 90 ms of CPU per page on
CSS cascade and layout, which capped a two-core machine at ~11 letter pages a second.
The letter is one column of a dozen blocks at fixed places, so it is drawn directly on a
ReportLab canvas by `_Writer`: a cursor that wraps text with the font's own advance
widths, breaks pages between lines and rows, and keeps the payment box whole. Platypus
would add a markup parser (a name like "<b>Tom & Jerry</b>" would need escaping or be
read as markup) and a generic frame/flowable layout that costs several times more than
these few blocks need. Text is drawn as text with an embedded TrueType font (DejaVu Sans,
Debian package fonts-dejavu-core): it covers the Latin, Greek and Cyrillic alphabets, so
any European name prints as written, and the PDF keeps a ToUnicode map for extraction.
The QR code is drawn from segno's module matrix as filled rectangles (one path of
horizontal runs, inside its four-module quiet zone): exact, and no image to encode.

Window position. bpost fixes where an address may be on an envelope (within 125 x 100 mm,
15 mm free to its right, 30 mm free under the window, nothing else in the window) but
not one window position. We lay out for the right-window envelope most used for
Belgian business mail: DL (110 x 220 mm) or C5/6 (114 x 229 mm) with a 100 x 45 mm
window 20 mm from the right edge and 15 mm from the bottom, the A4 sheet folded in three
(99 mm panels). On the sheet the window then spans x 95-195 mm and y 50-95 mm; the
folded sheet can slide about 11 mm down and 5 mm sideways in a DL, so the address block
sits at x 105-185 mm, y 52-82 mm (`WINDOW`), visible in every position. Nothing else
(not the sender's address) is printed in that area.

Batch PDFs for a mail house start every letter on a new sheet: with duplex printing a
blank page follows a letter with an odd page count, and the manifest gives each letter's
first page, its page count and its sheet count. One process draws a batch on one canvas
at about 10 ms of CPU per letter page (two thirds of it preparing the letter: Babel's
formats and, above all, segno choosing the QR code's mask); with `workers` > 1, spawned
processes prepare part of the letters while this one draws (see `_views`).
"""

from __future__ import annotations

import csv
import io
import math
import multiprocessing
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import phonenumbers
import structlog
from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency
from pydantic import BaseModel, ConfigDict
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped]
from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]

from parcours.channels.base import Outcome, SendResult
from parcours.channels.content import Channel, LetterBody, MessageContent, Rendered
from parcours.channels.file import write_once
from parcours.domain.errors import DomainError
from parcours.domain.money import currency_exponent
from parcours.payments.epc import (
    MAX_AMOUNT_MINOR,
    EpcPayment,
    belgian_transfer,
    format_iban,
    qr_code,
)

__all__ = [
    "LOCALES",
    "MANIFEST_COLUMNS",
    "BatchResult",
    "FontNotInstalled",
    "LetterConfig",
    "LetterError",
    "LetterPdf",
    "LetterProvider",
    "ManifestRow",
    "MissingPostalAddress",
    "UnsupportedLanguage",
    "epc_payment_for",
    "render_batch",
    "render_letter",
    "render_letter_pdf",
]

log = structlog.get_logger(__name__)

LOCALES: dict[str, str] = {"fr": "fr_BE", "nl": "nl_BE", "en": "en_BE"}
HOME_COUNTRY = "BE"  # letters are posted in Belgium: no country line for Belgian addresses

LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "place_date": "{place}, le {date}",
        "case": "Votre dossier :",
        "company": "N° d'entreprise",
        "help": "Une question ?",
        "invoice": "Facture",
        "issued": "Date",
        "due": "Échéance",
        "amount": "Montant",
        "open": "Reste dû",
        "no_fees": "Frais et indemnités",
        "no_fees_basis": "Aucun frais ni aucune indemnité ne vous est réclamé.",
        "total": "Total à payer",
        "pay_by": "À payer au plus tard le {date}",
        "how_to_pay": "Comment payer ?",
        "beneficiary": "Bénéficiaire",
        "communication": "Communication structurée",
        "pay_online": "Payer en ligne",
        "scan": "Scannez ce code avec votre app bancaire : tout est déjà rempli.",
    },
    "nl": {
        "place_date": "{place}, {date}",
        "case": "Uw dossier:",
        "company": "Ondernemingsnummer",
        "help": "Een vraag?",
        "invoice": "Factuur",
        "issued": "Datum",
        "due": "Vervaldag",
        "amount": "Bedrag",
        "open": "Nog te betalen",
        "no_fees": "Kosten en vergoedingen",
        "no_fees_basis": "Er worden u geen kosten of vergoedingen aangerekend.",
        "total": "Totaal te betalen",
        "pay_by": "Te betalen uiterlijk op {date}",
        "how_to_pay": "Hoe betalen?",
        "beneficiary": "Begunstigde",
        "communication": "Gestructureerde mededeling",
        "pay_online": "Online betalen",
        "scan": "Scan deze code met uw bankapp: alles is al ingevuld.",
    },
    "en": {
        "place_date": "{place}, {date}",
        "case": "Your case:",
        "company": "Enterprise number",
        "help": "Questions?",
        "invoice": "Invoice",
        "issued": "Issued",
        "due": "Due",
        "amount": "Amount",
        "open": "Still open",
        "no_fees": "Fees and indemnities",
        "no_fees_basis": "No fee or indemnity is charged to you.",
        "total": "Total to pay",
        "pay_by": "Please pay by {date}",
        "how_to_pay": "How to pay",
        "beneficiary": "Beneficiary",
        "communication": "Structured communication",
        "pay_online": "Pay online",
        "scan": "Scan this code with your banking app: everything is filled in.",
    },
}

FEE_LABELS: dict[str, dict[str, str]] = {
    "reminder_fee": {"fr": "Frais de rappel", "nl": "Herinneringskosten", "en": "Reminder fee"},
    "flat_indemnity": {
        "fr": "Indemnité forfaitaire",
        "nl": "Forfaitaire schadevergoeding",
        "en": "Flat-rate indemnity",
    },
    "late_interest": {
        "fr": "Intérêts de retard",
        "nl": "Verwijlintresten",
        "en": "Late-payment interest",
    },
}

_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class LetterError(DomainError):
    """A message cannot become a letter."""


class MissingPostalAddress(LetterError):
    """The debtor has no postal address: nothing can be posted."""


class UnsupportedLanguage(LetterError):
    """The letter's fixed parts exist in French, Dutch and English only."""


class FontNotInstalled(RuntimeError):
    """The letter font (DejaVu Sans) is not on this machine: an installation fault, not a
    fault of the message, so it is not a `DomainError` and no letter fails for good."""


# --- geometry (PDF points; y measured from the top of the sheet) ----------------------

MM = 72 / 25.4
PAGE_WIDTH, PAGE_HEIGHT = 210 * MM, 297 * MM
LEFT, RIGHT, TOP, BOTTOM = 20 * MM, 192 * MM, 15 * MM, 277 * MM  # margins 20/18/15/20 mm
WIDTH = RIGHT - LEFT
HEAD_HEIGHT = 82 * MM  # letterhead and window, first page only
SENDER_WIDTH = 72 * MM
WINDOW = (105 * MM, 52 * MM, 80 * MM, 30 * MM)  # x, y, width, height
ADDRESS_SIZES = (10.0, 9.5, 9.0, 8.5, 8.0, 7.5, 7.0)  # shrink a long address to fit

REGULAR, BOLD = "DejaVuSans", "DejaVuSans-Bold"
FONT_FILES = {REGULAR: "DejaVuSans.ttf", BOLD: "DejaVuSans-Bold.ttf"}
FONT_DIRECTORIES = (  # Debian/Ubuntu (fonts-dejavu-core), Fedora, Arch, Alpine
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu-sans-fonts"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/share/fonts/dejavu"),
)

Color = tuple[float, float, float]
INK: Color = (0x11 / 255, 0x11 / 255, 0x11 / 255)
MUTED: Color = (0x33 / 255, 0x33 / 255, 0x33 / 255)
FAINT: Color = (0x44 / 255, 0x44 / 255, 0x44 / 255)
RULE: Color = (0xBB / 255, 0xBB / 255, 0xBB / 255)
QR_INK: Color = (0.0, 0.0, 0.0)  # the most contrast for a phone's camera

# The account table: column widths as fractions of the text width, cell padding.
COLUMNS = (0.30, 0.18, 0.18, 0.17, 0.17)
CELL_X, CELL_Y = 1.5 * MM, 0.8 * MM
# The payment box: padding, the QR code's cell and side, the key column of the details.
BOX_X, BOX_Y = 3 * MM, 2.5 * MM
QR_CELL, QR_SIDE = 36 * MM, 32 * MM
KEY_WIDTH = 44 * MM
QUIET_ZONE = 4  # modules of light margin around the QR code, as ISO/IEC 18004 asks


# --- what the letter shows ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _InvoiceRow:
    ref: str
    issued: str
    due: str
    amount: str
    open: str


@dataclass(frozen=True, slots=True)
class _FeeRow:
    label: str
    basis: str
    amount: str


@dataclass(frozen=True, slots=True)
class _Qr:
    """A QR code as the dark horizontal runs of its matrix: (row, first column, length)."""

    size: int  # modules per side, quiet zone not included
    runs: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True, slots=True)
class _LetterView:
    index: int
    lang: str
    labels: dict[str, str]
    creditor_name: str
    creditor_lines: tuple[str, ...]
    company_number: str | None
    help_email: str
    help_phone: str
    address_lines: tuple[str, ...]
    place_date: str
    case_ref: str
    subject: str
    salutation: str
    paragraphs: tuple[str, ...]
    closing: str
    invoices: tuple[_InvoiceRow, ...]
    fees: tuple[_FeeRow, ...]
    total: str
    pay_by: str
    iban: str
    bic: str | None
    communication: str
    pay_link: str
    qr: _Qr | None


@lru_cache(maxsize=8)
def _locale(name: str) -> Locale:
    return Locale.parse(name)


def _money(minor: int, currency: str, locale: str) -> str:
    amount = Decimal(minor).scaleb(-currency_exponent(currency))
    return str(format_currency(amount, currency, locale=_locale(locale)))


def _phone(number: str) -> str:
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return number
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL))


def epc_payment_for(content: MessageContent) -> EpcPayment | None:
    """The EPC QR payment for the message's total, or None when no QR code can carry it
    (a currency other than EUR, nothing to pay, or more than the QR code's maximum)."""
    total = content.total_minor
    if content.currency != "EUR" or not 1 <= total <= MAX_AMOUNT_MINOR:
        return None
    creditor = content.creditor
    return belgian_transfer(
        name=creditor.name,
        iban=creditor.iban,
        bic=creditor.bic,
        amount_minor=total,
        communication=content.structured_communication,
    )


def _qr(payment: EpcPayment) -> _Qr:
    """The payment's QR code (level M, via `payments.epc`) as runs of dark modules."""
    runs: list[tuple[int, int, int]] = []
    matrix = list(qr_code(payment).matrix_iter(scale=1, border=0))
    for row, modules in enumerate(matrix):
        start = -1
        for column, dark in enumerate([*modules, False]):
            if dark and start < 0:
                start = column
            elif not dark and start >= 0:
                runs.append((row, start, column - start))
                start = -1
    return _Qr(size=len(matrix), runs=tuple(runs))


def _view(index: int, content: MessageContent, body: LetterBody) -> _LetterView:
    address = content.address
    if address is None:
        raise MissingPostalAddress("the debtor has no postal address")
    if content.language not in LABELS:
        raise UnsupportedLanguage(f"no letter labels for language {content.language!r}")
    lang = content.language
    labels = LABELS[lang]
    locale = LOCALES[lang]

    def money(minor: int) -> str:
        return _money(minor, content.currency, locale)

    def date(day: Any, form: str = "medium") -> str:
        return str(format_date(day, form, locale=_locale(locale)))

    address_lines = [address.name, address.street, f"{address.postcode} {address.city}".strip()]
    if address.country and address.country != HOME_COUNTRY:
        country = _locale(locale).territories.get(address.country, address.country)
        address_lines.append(country.upper())
    fees = tuple(
        _FeeRow(
            label=FEE_LABELS.get(fee.kind, {}).get(lang, fee.kind),
            basis=fee.legal_basis,
            amount=money(fee.amount_minor),
        )
        for fee in content.fees
    ) or (_FeeRow(labels["no_fees"], labels["no_fees_basis"], money(0)),)
    creditor = content.creditor
    payment = epc_payment_for(content)
    return _LetterView(
        index=index,
        lang=lang,
        labels=labels,
        creditor_name=creditor.name,
        creditor_lines=(
            creditor.address.street,
            f"{creditor.address.postcode} {creditor.address.city}".strip(),
        ),
        company_number=creditor.company_number,
        help_email=creditor.help_email,
        help_phone=_phone(creditor.help_phone),
        address_lines=tuple(address_lines),
        place_date=labels["place_date"].format(
            place=creditor.address.city, date=date(content.sent_on, "long")
        ),
        case_ref=content.case_ref,
        subject=body.subject,
        salutation=body.salutation,
        paragraphs=body.paragraphs,
        closing=body.closing,
        invoices=tuple(
            _InvoiceRow(
                ref=invoice.ref,
                issued=date(invoice.issued_on),
                due=date(invoice.due_on),
                amount=money(invoice.amount_minor),
                open=money(invoice.open_minor),
            )
            for invoice in content.invoices
        ),
        fees=fees,
        total=money(content.total_minor),
        pay_by=labels["pay_by"].format(date=date(content.pay_by, "long")),
        iban=format_iban(creditor.iban),
        bic=creditor.bic,
        communication=content.structured_communication.formatted,
        pay_link=content.pay_link,
        qr=None if payment is None else _qr(payment),
    )


# --- fonts and text -------------------------------------------------------------------


@lru_cache(maxsize=1)
def _fonts() -> frozenset[int]:
    """Register DejaVu Sans (regular and bold) with ReportLab, once per process, and
    return the code points it has glyphs for."""
    for directory in FONT_DIRECTORIES:
        paths = {name: directory / file for name, file in FONT_FILES.items()}
        if all(path.is_file() for path in paths.values()):
            break
    else:
        raise FontNotInstalled(
            "DejaVu Sans is not installed (Debian package fonts-dejavu-core); looked in "
            + ", ".join(str(directory) for directory in FONT_DIRECTORIES)
        )
    fonts = {name: TTFont(name, str(path)) for name, path in paths.items()}
    for font in fonts.values():
        pdfmetrics.registerFont(font)
    regular = set(fonts[REGULAR].face.charToGlyph)
    return frozenset(regular & set(fonts[BOLD].face.charToGlyph))


def _width(text: str, font: str, size: float) -> float:
    return float(pdfmetrics.stringWidth(text, font, size))


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """The lines of `text` within `width`: its own line breaks kept, then words wrapped
    at plain spaces (Babel's no-break spaces hold amounts together), and a word longer
    than a line cut after its last hyphen that fits, or else where it must."""
    space = _width(" ", font, size)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line: list[str] = []
        used = 0.0
        for word in paragraph.split(" "):
            advance = _width(word, font, size)
            if line and used + space + advance <= width:
                line.append(word)
                used += space + advance
                continue
            if line:
                lines.append(" ".join(line))
            while advance > width and len(word) > 1:
                cut = len(word) - 1
                while cut > 1 and _width(word[:cut], font, size) > width:
                    cut -= 1
                hyphen = word.rfind("-", 1, cut)  # a compound street name breaks after a hyphen
                cut = hyphen + 1 if hyphen > 0 else cut
                lines.append(word[:cut])
                word = word[cut:]
                advance = _width(word, font, size)
            line, used = [word], advance
        lines.append(" ".join(line).rstrip(" "))
    return lines


@dataclass(frozen=True, slots=True)
class _Style:
    font: str
    size: float
    leading: float
    color: Color = INK

    def baseline(self, top: float) -> float:
        """Where a line that starts at `top` sits: centred in its leading, as CSS does
        (DejaVu Sans: ascent 0.76 em, descent 0.24 em)."""
        return top + (self.leading - self.size) / 2 + 0.76 * self.size


def _style(font: str, size: float, line_height: float = 1.35, color: Color = INK) -> _Style:
    return _Style(font, size, size * line_height, color)


BODY = _style(REGULAR, 9.5)
BODY_BOLD = _style(BOLD, 9.5)
CREDITOR = _style(BOLD, 11, 1.3)
SENDER = _style(REGULAR, 8, 1.3, MUTED)
CASE = _style(REGULAR, 8.5, color=MUTED)
SUBJECT = _style(BOLD, 10.5)
TABLE = _style(REGULAR, 8.5)
TABLE_BOLD = _style(BOLD, 8.5)
BASIS = _style(REGULAR, 7, color=FAINT)
KEY = _style(REGULAR, 9.5, color=MUTED)
OGM = _style(BOLD, 10.5)
LINK = _style(REGULAR, 8)
CAPTION = _style(REGULAR, 6.5, 1.2)


# --- drawing --------------------------------------------------------------------------


class _Writer:
    """Draws letters on one canvas, top to bottom, with a cursor `y` (from the top of
    the sheet) that moves to the next page when a block does not fit.

    Text goes into one open text object until a line, a frame or a new page needs the
    canvas: fewer BT/ET pairs to write, and the cells of a table row stay one line for
    text extraction (a reader joins the pieces of one text object by their positions)."""

    def __init__(self, canvas: Any) -> None:
        self.canvas = canvas
        self.pages = 1  # pages begun in the whole document
        self.y = TOP
        self._text: Any = None  # the open text object
        self._font: tuple[str, float] | None = None
        self._fill: Color | None = None

    # low level

    def flush(self) -> None:
        """Close the open text object, before drawing shapes or ending the page."""
        if self._text is not None:
            self.canvas.drawText(self._text)
            self._text = None

    def new_page(self) -> None:
        self.flush()
        self.canvas.showPage()
        self.pages += 1
        self.y = TOP
        self._font = self._fill = None  # a new page starts with a fresh graphics state

    def fits(self, height: float) -> bool:
        return self.y + height <= BOTTOM

    def need(self, height: float) -> None:
        """Go to the next page unless `height` fits below the cursor (or the cursor is at
        the top already: a block taller than a page is then drawn as it comes)."""
        if not self.fits(height) and self.y > TOP:
            self.new_page()

    def reset_fill(self) -> None:
        """Forget the fill colour (after a restored graphics state, say)."""
        self._fill = None

    def fill(self, color: Color) -> None:
        if color != self._fill:
            (self._text or self.canvas).setFillColorRGB(*color)
            self._fill = color

    def text(self, x: float, top: float, text: str, style: _Style, align: str = "left") -> None:
        """One line whose box starts at `top`; `x` is its left edge, or its right edge
        when `align` is "right", or its centre when "centre"."""
        if self._text is None:
            self._text = self.canvas.beginText()
            self._font = None
        if (style.font, style.size) != self._font:
            self._text.setFont(style.font, style.size)
            self._font = (style.font, style.size)
        self.fill(style.color)
        if align != "left":
            width = _width(text, style.font, style.size)
            x -= width if align == "right" else width / 2
        self._text.setTextOrigin(x, PAGE_HEIGHT - style.baseline(top))
        self._text.textOut(text)

    def lines(self, x: float, top: float, lines: Iterable[str], style: _Style) -> float:
        """Lines at a fixed place (no page break); returns where they end."""
        for line in lines:
            self.text(x, top, line, style)
            top += style.leading
        return top

    def rule(self, x1: float, x2: float, y: float, width: float, color: Color) -> None:
        self.flush()
        self.canvas.setLineWidth(width)
        self.canvas.setStrokeColorRGB(*color)
        self.canvas.line(x1, PAGE_HEIGHT - y, x2, PAGE_HEIGHT - y)

    # blocks that flow

    def paragraph(
        self,
        text: str,
        style: _Style,
        *,
        after: float = 0.0,
        align: str = "left",
        keep: int = 2,
    ) -> None:
        """Wrapped text at the cursor, page breaks between lines; `keep` lines at least
        go together, so a paragraph's first line is never left alone at a page's foot."""
        lines = _wrap(text, style.font, style.size, WIDTH)
        self.need(style.leading * min(keep, len(lines)))
        x = RIGHT if align == "right" else LEFT
        for line in lines:
            self.need(style.leading)
            self.text(x, self.y, line, style, align)
            self.y += style.leading
        self.y += after


def _draw_head(writer: _Writer, view: _LetterView) -> None:
    """The letterhead at the top left and the address in the envelope window."""
    top = writer.lines(LEFT, TOP, _wrapped([view.creditor_name], CREDITOR, SENDER_WIDTH), CREDITOR)
    top += 1 * MM
    sender = [*view.creditor_lines]
    if view.company_number:
        sender.append(f"{view.labels['company']} {view.company_number}")
    top = writer.lines(LEFT, top, _wrapped(sender, SENDER, SENDER_WIDTH), SENDER)
    top += 1.5 * MM
    help_lines = [view.labels["help"], view.help_email]
    top = writer.lines(LEFT, top, _wrapped(help_lines, SENDER, SENDER_WIDTH), SENDER)
    writer.lines(LEFT, top, [view.help_phone], SENDER)  # never wrapped, as it is dialled
    x, y, width, height = WINDOW
    writer.lines(x, y, *_fit_address(view.address_lines, width, height))
    writer.y = TOP + HEAD_HEIGHT


def _wrapped(texts: Iterable[str], style: _Style, width: float) -> list[str]:
    return [line for text in texts for line in _wrap(text, style.font, style.size, width)]


def _fit_address(lines: Sequence[str], width: float, height: float) -> tuple[list[str], _Style]:
    """The address in the window: each element on its own line if a size allows it (the
    sorting machines read lines), else wrapped; shrunk until it fits the window."""
    fallback: tuple[list[str], _Style] | None = None
    for size in ADDRESS_SIZES:
        style = _style(REGULAR, size, 1.3)
        wrapped = _wrapped(lines, style, width)
        if len(wrapped) * style.leading <= height:
            if len(wrapped) == len(lines):
                return wrapped, style
            fallback = fallback or (wrapped, style)
    if fallback is not None:
        return fallback
    style = _style(REGULAR, ADDRESS_SIZES[-1], 1.3)
    return _wrapped(lines, style, width), style


def _columns() -> list[tuple[float, float]]:
    """Each account column's left and right edge."""
    edges, x = [], LEFT
    for share in COLUMNS:
        edges.append((x, x + share * WIDTH))
        x += share * WIDTH
    return edges


def _draw_account(writer: _Writer, view: _LetterView) -> None:
    """The account table: invoices, one line per fee with its legal basis, the total.
    Rows never split; a row that does not fit starts a page under a repeated header."""
    columns = _columns()
    labels = view.labels
    header = (labels["invoice"], labels["issued"], labels["due"], labels["amount"], labels["open"])
    header_height = TABLE_BOLD.leading + 2 * 1 * MM

    def draw_header() -> None:
        top = writer.y + 1 * MM
        for number, ((left, right), label) in enumerate(zip(columns, header, strict=True)):
            if number >= 3:
                writer.text(right - CELL_X, top, label, TABLE_BOLD, "right")
            else:
                writer.text(left + CELL_X, top, label, TABLE_BOLD)
        writer.y += header_height
        writer.rule(LEFT, RIGHT, writer.y, 0.6, INK)

    def row(cells: Sequence[Sequence[tuple[str, _Style]]], height: float, last: bool) -> None:
        """`cells`: the first four columns' lines (the first may span them all), then the
        amounts' columns; the row is drawn at the cursor, on a new page if it must."""
        if not writer.fits(height):
            writer.new_page()
            draw_header()
        spans = columns if len(cells) == 5 else [(LEFT, columns[3][1]), columns[4]]
        amounts = len(spans) - (2 if len(spans) == 5 else 1)  # right-aligned from here on
        for number, ((left, right), lines) in enumerate(zip(spans, cells, strict=True)):
            top = writer.y + CELL_Y
            for text, style in lines:
                if number >= amounts:
                    writer.text(right - CELL_X, top, text, style, "right")
                else:
                    writer.text(left + CELL_X, top, text, style)
                top += style.leading
        writer.y += height
        if not last:
            writer.rule(LEFT, RIGHT, writer.y, 0.3, RULE)

    writer.y += 3 * MM
    writer.need(header_height + 2 * (TABLE.leading + 2 * CELL_Y))
    draw_header()
    inner = [right - left - 2 * CELL_X for left, right in columns]
    for invoice in view.invoices:
        texts = (invoice.ref, invoice.issued, invoice.due, invoice.amount, invoice.open)
        cells = [
            [(line, TABLE) for line in _wrap(text, REGULAR, TABLE.size, width)]
            for text, width in zip(texts, inner, strict=True)
        ]
        height = max(len(cell) for cell in cells) * TABLE.leading + 2 * CELL_Y
        row(cells, height, last=False)
    span = columns[3][1] - LEFT - 2 * CELL_X
    for fee in view.fees:
        described = [(line, TABLE) for line in _wrap(fee.label, REGULAR, TABLE.size, span)]
        described += [(line, BASIS) for line in _wrap(fee.basis, REGULAR, BASIS.size, span)]
        height = sum(style.leading for _, style in described) + 2 * CELL_Y
        row([described, [(fee.amount, TABLE)]], height, last=False)
    total_height = TABLE_BOLD.leading + 2 * CELL_Y
    writer.need(total_height)
    writer.rule(LEFT, RIGHT, writer.y, 0.6, INK)
    row([[(labels["total"], TABLE_BOLD)], [(view.total, TABLE_BOLD)]], total_height, last=True)
    writer.y += 2 * MM


@dataclass(frozen=True, slots=True)
class _Pair:
    """A key and its value in the payment box, each wrapped in its column."""

    keys: list[str]
    values: list[str]
    style: _Style  # the value's

    @property
    def height(self) -> float:
        return max(len(self.keys) * KEY.leading, len(self.values) * self.style.leading)


def _payment_pairs(view: _LetterView, width: float) -> list[_Pair]:
    labels = view.labels
    rows: list[tuple[str, str, _Style]] = [
        (labels["beneficiary"], view.creditor_name, BODY),
        ("IBAN", view.iban, BODY),
    ]
    if view.bic:
        rows.append(("BIC", view.bic, BODY))
    rows += [
        (labels["amount"], view.total, BODY),
        (labels["communication"], view.communication, OGM),
        (labels["pay_online"], view.pay_link, LINK),
    ]
    return [
        _Pair(
            _wrap(key, KEY.font, KEY.size, KEY_WIDTH - 2 * MM),
            _wrap(value, style.font, style.size, width - KEY_WIDTH),
            style,
        )
        for key, value, style in rows
    ]


def _draw_payment(writer: _Writer, view: _LetterView, tail: float) -> None:
    """The framed "how to pay" box with the QR code on its right, kept on one page with
    the `tail` (closing and signature) that follows it."""
    pairs = _payment_pairs(view, WIDTH - (QR_CELL if view.qr else 0.0) - 2 * BOX_X)
    heading = BODY_BOLD.leading + 1.5 * MM
    height = 2 * BOX_Y + heading + sum(pair.height for pair in pairs)
    caption: list[str] = []
    if view.qr is not None:
        caption = _wrap(view.labels["scan"], CAPTION.font, CAPTION.size, QR_CELL - 2 * BOX_X)
        height = max(height, 2 * BOX_Y + QR_SIDE + 1 * MM + len(caption) * CAPTION.leading)
    writer.need(height + tail)
    box_top = writer.y
    writer.text(LEFT + BOX_X, box_top + BOX_Y, view.labels["how_to_pay"], BODY_BOLD)
    top = box_top + BOX_Y + heading
    for pair in pairs:  # the key's lines, then the value's, as a reader takes them
        writer.lines(LEFT + BOX_X, top, pair.keys, KEY)
        writer.lines(LEFT + BOX_X + KEY_WIDTH, top, pair.values, pair.style)
        top += pair.height
    if view.qr is not None:
        writer.flush()  # the caption reads as a block of its own, not as the details' tail
        centre = RIGHT - QR_CELL / 2
        top = box_top + BOX_Y + QR_SIDE + 1 * MM
        for text in caption:
            writer.text(centre, top, text, CAPTION, "centre")
            top += CAPTION.leading
        _draw_qr(writer, view.qr, centre - QR_SIDE / 2, box_top + BOX_Y)
    writer.flush()
    canvas = writer.canvas
    canvas.setLineWidth(0.6)
    canvas.setStrokeColorRGB(*INK)
    canvas.rect(LEFT, PAGE_HEIGHT - box_top - height, WIDTH, height, stroke=1, fill=0)
    writer.y = box_top + height


def _draw_qr(writer: _Writer, qr: _Qr, left: float, top: float) -> None:
    """The QR code in a `QR_SIDE` square, quiet zone included, drawn in module units (a
    transform scales one module to its size): one path of whole-module rectangles for the
    dark runs, filled at once with the nonzero rule, so the runs join without seams. The
    operators are written directly, as ReportLab's path object would format each of the
    thousands of coordinates as a float one by one."""
    module = QR_SIDE / (qr.size + 2 * QUIET_ZONE)
    writer.flush()
    canvas = writer.canvas
    canvas.saveState()
    # Module (column, row) from the code's top-left corner, rows going down the page.
    origin_x = left + QUIET_ZONE * module
    origin_y = PAGE_HEIGHT - top - QUIET_ZONE * module
    canvas.transform(module, 0, 0, -module, origin_x, origin_y)
    canvas.setFillColorRGB(*QR_INK)
    canvas.addLiteral(
        "\n".join(f"{column} {row} {length} 1 re" for row, column, length in qr.runs) + "\nf"
    )
    canvas.restoreState()
    writer.reset_fill()


def _draw_letter(writer: _Writer, view: _LetterView) -> tuple[int, int]:
    """One letter from a fresh page on; returns its first and last page (0-based)."""
    first = writer.pages - 1
    _draw_head(writer, view)
    writer.paragraph(view.place_date, BODY, after=2 * MM, align="right")
    writer.paragraph(f"{view.labels['case']} {view.case_ref}", CASE, after=4 * MM)
    writer.paragraph(view.subject, SUBJECT, after=4 * MM)
    writer.paragraph(view.salutation, BODY, after=2.5 * MM)
    for text in view.paragraphs:
        writer.paragraph(text, BODY, after=2.5 * MM)
    _draw_account(writer, view)
    writer.paragraph(view.pay_by, BODY_BOLD, after=3 * MM)
    closing = _wrap(view.closing, BODY.font, BODY.size, WIDTH)
    signature = _wrap(view.creditor_name, BODY_BOLD.font, BODY_BOLD.size, WIDTH)
    tail = 4 * MM + len(closing) * BODY.leading + 2 * MM + len(signature) * BODY.leading
    _draw_payment(writer, view, tail)
    writer.y += 4 * MM
    writer.paragraph(view.closing, BODY, after=2 * MM)
    writer.paragraph(view.creditor_name, BODY_BOLD)
    return first, writer.pages - 1


@dataclass(frozen=True, slots=True)
class _Part:
    """A run of letters rendered as one PDF: its bytes, each letter's pages, its size."""

    pdf: bytes
    ranges: list[tuple[int, int]]
    pages: int


def _lacks_glyphs(view: _LetterView) -> bool:
    """True when a name or address line has a character the font has no glyph for."""
    covered = _fonts()
    return not all(
        covered.issuperset(map(ord, text)) for text in (*view.address_lines, view.creditor_name)
    )


def _render_part(views: Iterable[_LetterView], duplex: bool, lang: str | None) -> _Part:
    """Letters one after the other in one PDF, each from a new page (a recto when
    `duplex`: a blank verso follows a letter that ends on a recto). `views` may be a
    generator: each letter is drawn as soon as it comes."""
    _fonts()
    buffer = io.BytesIO()
    canvas = Canvas(
        buffer,
        pagesize=(PAGE_WIDTH, PAGE_HEIGHT),
        invariant=1,  # the same letters give the same bytes: no dates, no random ids
        pageCompression=1,
        initialFontName=REGULAR,  # else an unused, unembedded Helvetica would be listed
        lang=lang,
    )
    canvas.setTitle("Letter")  # no personal data in the metadata
    canvas.setCreator("parcours")
    writer = _Writer(canvas)
    ranges: list[tuple[int, int]] = []
    lacking = 0
    for number, view in enumerate(views):
        if number:
            writer.new_page()
            if duplex and writer.pages % 2 == 0:
                writer.new_page()  # the previous letter ended on a recto: its verso stays blank
        lacking += _lacks_glyphs(view)
        ranges.append(_draw_letter(writer, view))
    writer.flush()
    canvas.showPage()
    canvas.save()
    if lacking:  # how many letters, never which text
        log.warning("letter.glyphs_missing", letters=lacking)
    return _Part(buffer.getvalue(), ranges, writer.pages)


_Item = tuple[int, MessageContent, LetterBody]
_CHUNK = 8  # letters per task sent to a worker: few round trips, a short wait at the end
_CALLER_TAKES_PENDING = True  # tests turn it off to have every chunk built by the workers


def _build_views(chunk: Sequence[_Item]) -> list[_LetterView]:
    """What a worker does: the views (Babel's formats, the QR code's matrix) of a chunk."""
    return [_view(index, content, body) for index, content, body in chunk]


@dataclass(slots=True)
class _Sharing:
    """How many letters the workers prepared, for the batch's log line."""

    by_workers: int = 0


def _views(items: Sequence[_Item], workers: int, sharing: _Sharing) -> Iterator[_LetterView]:
    """The letters' views in order, built by this process and `workers - 1` others.

    Building a view (the QR code's mask selection above all) costs about twice as much
    CPU as drawing it, so with more than one worker the views are what is shared out,
    and this process alone draws, on one canvas: no PDFs to join, and the page count
    that decides each blank verso is always at hand. The chunks are handed to spawned
    workers (not forked: the caller may hold threads and connections) from the last
    one backwards, while this process takes them from the first one forwards: a chunk
    that no worker has started yet, it builds itself; one that a worker holds, it waits
    for, unless no worker has delivered anything yet (it is still starting up, which
    takes about a second). The two ends meet where the work is shared evenly, whatever
    the machine's other load, and a small batch is done before the workers start.
    """
    chunks = [items[start : start + _CHUNK] for start in range(0, len(items), _CHUNK)]
    if workers < 2 or len(chunks) < 2:
        for chunk in chunks:
            yield from _build_views(chunk)
        return
    pool = ProcessPoolExecutor(workers - 1, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {
            number: pool.submit(_build_views, chunks[number])
            for number in range(len(chunks) - 1, 0, -1)
        }
        delivered = threading.Event()  # a worker is up: it has built a chunk

        def on_done(future: Future[list[_LetterView]]) -> None:
            if not future.cancelled():  # cancelling a future also calls this
                delivered.set()

        for future in futures.values():
            future.add_done_callback(on_done)
        yield from _build_views(chunks[0])
        for number in range(1, len(chunks)):
            future = futures[number]
            if _CALLER_TAKES_PENDING and (
                future.cancel() or (not future.done() and not delivered.is_set())
            ):
                yield from _build_views(chunks[number])
            else:
                views = future.result()
                sharing.by_workers += len(views)
                yield from views
    finally:
        # Chunks not started are dropped; one a worker still holds is left to finish.
        pool.shutdown(wait=not _CALLER_TAKES_PENDING, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class LetterPdf:
    pdf: bytes
    pages: int


def render_letter_pdf(content: MessageContent, body: LetterBody) -> LetterPdf:
    """One letter as a PDF, with its page count."""
    part = _render_part([_view(0, content, body)], duplex=False, lang=content.language)
    return LetterPdf(pdf=part.pdf, pages=part.pages)


def render_letter(content: MessageContent, body: LetterBody) -> bytes:
    """One A4 letter as a PDF."""
    return render_letter_pdf(content, body).pdf


@dataclass(frozen=True, slots=True)
class ManifestRow:
    """One letter of a batch, as the mail house's manifest lists it."""

    attempt_id: str
    case_ref: str
    first_page: int  # 1-based, in the batch PDF
    page_count: int
    sheet_count: int
    recipient_name: str = field(repr=False)
    postcode: str = field(repr=False)
    city: str = field(repr=False)
    country: str = field(repr=False)


MANIFEST_COLUMNS = (
    "attempt_id",
    "case_ref",
    "first_page",
    "page_count",
    "sheet_count",
    "recipient_name",
    "postcode",
    "city",
    "country",
)


@dataclass(frozen=True, slots=True)
class BatchResult:
    pdf_path: Path
    manifest_path: Path
    rows: tuple[ManifestRow, ...]
    total_pages: int  # blank versos included
    skipped: tuple[str, ...]  # attempt ids of letters without a postal address

    @property
    def letter_pages(self) -> int:
        return sum(row.page_count for row in self.rows)

    @property
    def sheets(self) -> int:
        return sum(row.sheet_count for row in self.rows)


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _manifest_csv(rows: Sequence[ManifestRow]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(MANIFEST_COLUMNS)
    for row in rows:
        writer.writerow([getattr(row, column) for column in MANIFEST_COLUMNS])
    return buffer.getvalue().encode("utf-8")


def render_batch(
    items: Sequence[tuple[MessageContent, LetterBody]],
    directory: Path | str,
    *,
    name: str = "letters",
    duplex: bool = True,
    workers: int = 1,
) -> BatchResult:
    """Write `<name>.pdf` (every letter from a new sheet, recto) and `<name>.csv` (the
    mail house's manifest) in `directory`. Letters without a postal address are skipped
    and listed in the result; the two files replace older ones atomically. With
    `workers` > 1, that many processes prepare the letters (see `_views`); a batch of
    less than a few hundred letters gains nothing from it."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    kept: list[_Item] = []
    skipped: list[str] = []
    for content, body in items:
        if content.address is None:
            skipped.append(content.attempt_id)
            continue
        if content.language not in LABELS:  # refused before any work is shared out
            raise UnsupportedLanguage(f"no letter labels for language {content.language!r}")
        kept.append((len(kept), content, body))
    if not kept:
        raise LetterError("no letter in the batch has a postal address")
    languages = {content.language for _, content, _ in kept}
    lang = languages.pop() if len(languages) == 1 else None
    sharing = _Sharing()
    part = _render_part(_views(kept, max(1, workers), sharing), duplex, lang)
    rows: list[ManifestRow] = []
    for (_, content, _), (first, last) in zip(kept, part.ranges, strict=True):
        address = content.address
        assert address is not None  # letters without one were skipped above
        pages = last - first + 1
        rows.append(
            ManifestRow(
                attempt_id=content.attempt_id,
                case_ref=content.case_ref,
                first_page=first + 1,
                page_count=pages,
                sheet_count=math.ceil(pages / 2) if duplex else pages,
                recipient_name=address.name,
                postcode=address.postcode,
                city=address.city,
                country=address.country,
            )
        )
    pdf_path, manifest_path = folder / f"{name}.pdf", folder / f"{name}.csv"
    _write_atomically(pdf_path, part.pdf)
    _write_atomically(manifest_path, _manifest_csv(rows))
    log.info(
        "letter.batch_written",
        letters=len(rows),
        pages=part.pages,
        skipped=len(skipped),
        prepared_by_workers=sharing.by_workers,
    )
    return BatchResult(
        pdf_path=pdf_path,
        manifest_path=manifest_path,
        rows=tuple(rows),
        total_pages=part.pages,
        skipped=tuple(skipped),
    )


# --- the provider ---------------------------------------------------------------------


class LetterConfig(BaseModel):
    """Where the letter provider writes `<attempt_id>.pdf`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    output_dir: Path


class LetterProvider:
    """Writes each letter as `<attempt_id>.pdf` for printing; an attempt is written once."""

    name: ClassVar[str] = "letter"
    channel: ClassVar[Channel] = Channel.LETTER
    Config: ClassVar[type[BaseModel]] = LetterConfig

    def __init__(self, config: LetterConfig) -> None:
        self._directory = config.output_dir

    def send(self, content: MessageContent, rendered: Rendered) -> SendResult:
        if not isinstance(rendered, LetterBody):
            return SendResult(
                Outcome.PERMANENT, detail=f"expected a LetterBody, got {type(rendered).__name__}"
            )
        if content.address is None:
            return SendResult(Outcome.PERMANENT, detail="no postal address")
        if not _SAFE_ID.fullmatch(content.attempt_id):
            return SendResult(Outcome.PERMANENT, detail="the attempt id is not a safe file name")
        path = self._directory / f"{content.attempt_id}.pdf"
        if path.exists():
            # Nothing new was printed, so nothing is billed.
            return SendResult(
                Outcome.SENT, provider_ref=path.name, detail="already written", units=0
            )
        try:
            letter = render_letter_pdf(content, rendered)
        except DomainError as error:
            return SendResult(Outcome.PERMANENT, detail=f"{type(error).__name__}: {error}")
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            written = write_once(path, letter.pdf)
        except OSError as error:
            return SendResult(
                Outcome.TRANSIENT, detail=f"cannot write the letter ({type(error).__name__})"
            )
        if not written:
            return SendResult(
                Outcome.SENT, provider_ref=path.name, detail="already written", units=0
            )
        log.info("letter.written", attempt_id=content.attempt_id, pages=letter.pages)
        return SendResult(Outcome.SENT, provider_ref=path.name, units=letter.pages)

    def close(self) -> None:
        """Nothing is kept open between letters."""


def join_letters(
    letters: Sequence[tuple[Path, ManifestRow]],
    directory: Path | str,
    *,
    name: str = "letters",
    duplex: bool = True,
) -> BatchResult:
    """The day's print batch from letters already written (the very PDFs that were
    "sent"): one PDF, each letter from a new sheet (a blank verso after an odd page count
    when `duplex`), and the mail house's CSV manifest. `letters` carry their manifest
    rows with page and sheet numbers still to fill."""
    from pypdf import PdfReader, PdfWriter

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    writer = PdfWriter()
    rows: list[ManifestRow] = []
    for path, row in letters:
        reader = PdfReader(path)
        first = len(writer.pages) + 1
        for page in reader.pages:
            writer.add_page(page)
        pages = len(reader.pages)
        if duplex and pages % 2:
            box = reader.pages[-1].mediabox
            writer.add_blank_page(width=float(box.width), height=float(box.height))
        sheets = (pages + 1) // 2 if duplex else pages
        rows.append(replace(row, first_page=first, page_count=pages, sheet_count=sheets))
    if not rows:
        raise LetterError("no letter to print")
    buffer = io.BytesIO()
    writer.write(buffer)
    pdf_path, manifest_path = folder / f"{name}.pdf", folder / f"{name}.csv"
    _write_atomically(pdf_path, buffer.getvalue())
    _write_atomically(manifest_path, _manifest_csv(rows))
    return BatchResult(pdf_path, manifest_path, tuple(rows), len(writer.pages), ())
