"""PDF letters: what the debtor reads (text extracted with pypdf), names in any European
alphabet (embedded DejaVu Sans), where the address sits and that nothing else is inked in
the envelope window (page rasterised by pdftoppm), long letters and accounts flowing onto
more pages, the EPC QR code as a phone would scan it (decoded by zbar), the mail-house
batch and its manifest, and the provider's write-once files."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import shutil
import subprocess
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
from babel.numbers import format_currency
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pypdf import PdfReader

from parcours.channels import letter as letter_module
from parcours.channels.base import Outcome, Provider
from parcours.channels.content import (
    Address,
    Channel,
    EmailBody,
    FeeLine,
    InvoiceLine,
    LetterBody,
    MessageContent,
)
from parcours.channels.letter import (
    MANIFEST_COLUMNS,
    LetterConfig,
    LetterError,
    LetterProvider,
    MissingPostalAddress,
    epc_payment_for,
    render_batch,
    render_letter,
    render_letter_pdf,
)
from parcours.payments.epc import parse_epc_payload, qr_png
from tests.channels.conftest import make_content
from tests.channels.test_epc import zbar_decode_raw

PDFTOPPM = shutil.which("pdftoppm")  # Debian package poppler-utils
needs_pdftoppm = pytest.mark.skipif(PDFTOPPM is None, reason="pdftoppm (poppler-utils) missing")
MM_PER_POINT = 25.4 / 72

BODIES = {
    "fr": LetterBody(
        subject="Rappel : facture INV-2026-0042",
        salutation="Madame, Monsieur,",
        paragraphs=(
            "Sauf erreur de notre part, les factures ci-dessous restent impayées.",
            "Si vous avez déjà payé, ne tenez pas compte de ce courrier.",
        ),
        closing="Veuillez agréer nos salutations distinguées.",
    ),
    "nl": LetterBody(
        subject="Herinnering: factuur INV-2026-0042",
        salutation="Geachte heer Peeters,",
        paragraphs=("Tenzij wij ons vergissen, zijn de onderstaande facturen nog open.",),
        closing="Met vriendelijke groeten,",
    ),
    "en": LetterBody(
        subject="Reminder: invoice INV-2026-0042",
        salutation="Dear Mr Peeters,",
        paragraphs=("According to our records the invoices below are still unpaid.",),
        closing="Yours faithfully,",
    ),
}

# What Babel writes for each language; the conftest's message owes 84.50 + 40.00 on its
# invoices and 7.50 of reminder fee: 132.00 in all.
EXPECTED = {
    "fr": {
        "total": "132,00 €",
        "fee": "7,50 €",
        "zero": "0,00 €",
        "pay_by": "À payer au plus tard le 20 décembre 2026",
        "place_date": "Bruxelles, le 5 décembre 2026",
        "labels": ("Reste dû", "Total à payer", "Communication structurée", "Frais de rappel"),
        "no_fee_label": "Frais et indemnités",
    },
    "nl": {
        "total": "€ 132,00",
        "fee": "€ 7,50",
        "zero": "€ 0,00",
        "pay_by": "Te betalen uiterlijk op 20 december 2026",
        "place_date": "Bruxelles, 5 december 2026",
        "labels": ("Nog te betalen", "Totaal te betalen", "Gestructureerde mededeling"),
        "no_fee_label": "Kosten en vergoedingen",
    },
    "en": {
        "total": "132,00 €",
        "fee": "7,50 €",
        "zero": "0,00 €",
        "pay_by": "Please pay by 20 December 2026",
        "place_date": "Bruxelles, 5 December 2026",
        "labels": ("Still open", "Total to pay", "Structured communication", "Reminder fee"),
        "no_fee_label": "Fees and indemnities",
    },
}


def letter_content(**changes: Any) -> MessageContent:
    return make_content(channel=Channel.LETTER, **changes)


def normalise(text: str) -> str:
    """Babel separates amounts with no-break spaces; compare with plain spaces."""
    return text.replace("\u00a0", " ").replace("\u202f", " ")


def pdf_pages_text(pdf: bytes) -> list[str]:
    return [normalise(page.extract_text()) for page in PdfReader(io.BytesIO(pdf)).pages]


def pdf_text(pdf: bytes) -> str:
    return "\n".join(pdf_pages_text(pdf))


def flat(text: str) -> str:
    """Text with every run of spaces and line breaks as one space (labels may wrap)."""
    return " ".join(text.split())


# --- one letter ------------------------------------------------------------------------


def test_a_letter_shows_the_address_the_account_and_how_to_pay() -> None:
    content = letter_content()
    text = pdf_text(render_letter(content, BODIES["fr"]))
    for expected in (
        "Dennis Peeters",
        "Kerkstraat 12 bus 3",
        "9000 Gent",
        "Demo Energy SA",
        "Rue de la Loi 16",
        "N° d'entreprise 0123.456.749",
        "aide@demo-energy.example",
        "+32 2 555 01 00",
        "Bruxelles, le 5 décembre 2026",
        "C-D0000042",
        "Rappel : facture INV-2026-0042",
        "Madame, Monsieur,",
        "les factures ci-dessous restent impayées.",
        "Veuillez agréer nos salutations distinguées.",
        "INV-2026-0042 1 oct. 2026 31 oct. 2026 84,50 € 84,50 €",
        "INV-2026-0051 1 nov. 2026 30 nov. 2026 120,00 € 40,00 €",
        "Frais de rappel",
        "Code de droit économique, art. XIX.4, § 2",
        "Total à payer 132,00 €",
        "À payer au plus tard le 20 décembre 2026",
        "BE71 0961 2345 6769",
        "GKCCBEBB",
        "+++123/4567/89002+++",
        "https://pay.parcours.example/p/tok3n",
    ):
        assert expected in text, expected
    assert "BELGI" not in text.upper().replace("BELGIAN", "")  # no country line at home


@pytest.mark.parametrize("language", ["fr", "nl", "en"])
def test_labels_amounts_and_dates_follow_the_language(language: str) -> None:
    expected = EXPECTED[language]
    text = flat(pdf_text(render_letter(letter_content(language=language), BODIES[language])))
    assert expected["total"] in text
    assert expected["fee"] in text
    assert expected["pay_by"] in text
    assert expected["place_date"] in text
    for label in expected["labels"]:
        assert label in text
    assert BODIES[language].subject in text and BODIES[language].closing in text
    other_languages = {"fr", "nl", "en"} - {language}
    for other in other_languages:
        assert EXPECTED[other]["pay_by"] not in text


@pytest.mark.parametrize("language", ["fr", "nl", "en"])
def test_without_fees_a_fee_line_shows_zero(language: str) -> None:
    content = letter_content(language=language, fees=())
    text = flat(pdf_text(render_letter(content, BODIES[language])))
    expected = EXPECTED[language]
    # The fee line: its label, why nothing is charged, and the zero amount in its column.
    line = text[text.index(expected["no_fee_label"]) :]
    assert line.split(". ", 1)[1].startswith(expected["zero"] + " ")
    assert content.total_minor == 12450
    assert ("124,50 €" if language != "nl" else "€ 124,50") in text


def test_every_fee_has_its_own_line_with_its_legal_basis() -> None:
    fees = (
        FeeLine("reminder_fee", 750, "CDE art. XIX.4, § 2"),
        FeeLine("flat_indemnity", 2000, "CDE art. XIX.4, § 1er"),
        FeeLine("late_interest", 123, "Loi du 2 août 2002, art. 5"),
    )
    text = flat(pdf_text(render_letter(letter_content(fees=fees), BODIES["fr"])))
    for label, basis, amount in (
        ("Frais de rappel", "CDE art. XIX.4, § 2", "7,50 €"),
        ("Indemnité forfaitaire", "CDE art. XIX.4, § 1er", "20,00 €"),
        ("Intérêts de retard", "Loi du 2 août 2002, art. 5", "1,23 €"),
    ):
        assert f"{label} {basis} {amount}" in text
    assert "Total à payer 153,23 €" in text  # 124.50 + 7.50 + 20.00 + 1.23
    assert "Frais et indemnités" not in text


def test_a_foreign_address_ends_with_the_country_in_capitals_in_the_letters_language() -> None:
    address = Address("Anna Schmidt", "Hauptstraße 5", "52062", "Aachen", "DE")
    fr = pdf_text(render_letter(letter_content(address=address), BODIES["fr"]))
    nl = pdf_text(render_letter(letter_content(address=address, language="nl"), BODIES["nl"]))
    assert "52062 Aachen\nALLEMAGNE" in fr
    assert "52062 Aachen\nDUITSLAND" in nl


def test_names_are_printed_as_text_not_markup() -> None:
    address = Address("<b>Tom & Jerry</b>", "Rue <i> 1", "1000", "Bruxelles", "BE")
    text = pdf_text(render_letter(letter_content(address=address), BODIES["fr"]))
    assert "<b>Tom & Jerry</b>" in text and "Rue <i> 1" in text


def test_the_address_sits_inside_the_envelope_window() -> None:
    """Sheet x 105-185 mm, baselines y 52-82 mm from the top: see letter.py."""
    page = PdfReader(io.BytesIO(render_letter(letter_content(), BODIES["fr"]))).pages[0]
    height = float(page.mediabox.height)
    found: dict[str, tuple[float, float]] = {}

    def visit(text: str, cm: list[float], tm: list[float], *_: Any) -> None:
        # The text matrix times the CTM gives PDF user space: points from the bottom left.
        x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        found.setdefault(text.strip(), (x * MM_PER_POINT, (height - y) * MM_PER_POINT))

    page.extract_text(visitor_text=visit)
    for line in ("Dennis Peeters", "Kerkstraat 12 bus 3", "9000 Gent"):
        x, y = found[line]
        assert 105 <= x <= 185 and 52 <= y <= 82, (line, x, y)
    x, y = found["Demo Energy SA"]  # the letterhead stays out of the window
    assert x < 95 or y < 50


def _raster(pdf: bytes, page: int = 1, dpi: int = 200) -> Image.Image:
    """One page as pdftoppm draws it, in grey levels."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "letter.pdf"
        source.write_bytes(pdf)
        command = [PDFTOPPM or "pdftoppm", "-r", str(dpi), "-gray", "-png"]
        command += ["-f", str(page), "-l", str(page), str(source), f"{folder}/page"]
        # Our own fixed arguments and temporary files: nothing untrusted reaches the shell.
        subprocess.run(command, check=True)  # noqa: S603
        [png] = Path(folder).glob("page*.png")
        with Image.open(png) as image:
            return image.copy()


def _inked_box(image: Image.Image, dpi: int, area: tuple[float, float, float, float]) -> Any:
    """The bounding box (left, top, right, bottom, in mm) of the dark pixels in `area`
    (left, top, right, bottom, in mm), or None when nothing is inked there."""
    px = dpi / 25.4
    left, top, right, bottom = (round(v * px) for v in area)
    box = image.crop((left, top, right, bottom)).point(lambda v: 255 if v < 128 else 0).getbbox()
    if box is None:
        return None
    return ((box[0] + left) / px, (box[1] + top) / px, (box[2] + left) / px, (box[3] + top) / px)


@needs_pdftoppm
@pytest.mark.parametrize(
    "address",
    [
        Address("Dennis Peeters", "Kerkstraat 12 bus 3", "9000", "Gent", "BE"),
        Address(
            "Maximiliaan-Alexander Vandenbroucke-Van der Sype de Ghellinck d'Elseghem",
            "Onze-Lieve-Vrouw-van-Vaakstraat-en-Omliggende-Wegen 1234 bus 56",
            "8000",
            "Brugge",
            "NL",
        ),
    ],
    ids=["short", "long"],
)
def test_only_the_address_is_inked_in_the_window(address: Address) -> None:
    """bpost: nothing but the address in the window (x 95-195, y 50-95 mm); the address
    itself, long or short, stays in the block seen in every position (x 105-185, y 52-82)."""
    dpi = 150
    image = _raster(render_letter(letter_content(address=address), BODIES["fr"]), dpi=dpi)
    box = _inked_box(image, dpi, (95, 50, 195, 95))
    assert box is not None
    left, top, right, bottom = box
    slack = 25.4 / dpi  # one pixel
    assert left >= 105 - slack and right <= 185 + slack, box
    assert top >= 52 - slack and bottom <= 82 + slack, box
    # Every character of the address is printed, wherever its lines were broken.
    printed = "".join(
        pdf_text(render_letter(letter_content(address=address), BODIES["fr"])).split()
    )
    for part in (address.name, address.street, f"{address.postcode} {address.city}"):
        assert "".join(part.split()) in printed


def test_a_letter_without_postal_address_is_refused() -> None:
    with pytest.raises(MissingPostalAddress):
        render_letter(letter_content(address=None), BODIES["fr"])


def test_a_letter_in_another_language_is_refused_clearly() -> None:
    with pytest.raises(LetterError, match="'de'"):
        render_letter(letter_content(language="de"), BODIES["fr"])


# --- names in every European alphabet --------------------------------------------------

# Latin-1 and Latin Extended-A letters, Greek and Cyrillic: every alphabet a European
# name is written in (DejaVu Sans has them all).
EUROPEAN_LETTERS = (
    "".join(
        chr(code)
        for start, end in ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0xFF), (0x100, 0x17F))
        for code in range(start, end + 1)
        if chr(code) not in "×÷ŉ"  # not letters, or a deprecated ligature readers decompose
    )
    + "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩάέήίόύώαβγδεζηθικλμνξοπρςστυφχψω"
    + "".join(chr(code) for code in range(0x410, 0x450))
    + "ЁёЄєІіЇїЎўҐґ"
)


def _fonts_of(pdf: bytes) -> set[tuple[str, str, bool, bool]]:
    """Each font the pages use: (base font, subtype, embedded, has a ToUnicode map)."""
    found = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descriptor = font.get("/FontDescriptor")
            embedded = descriptor is not None and "/FontFile2" in descriptor.get_object()
            found.add(
                (str(font["/BaseFont"]), str(font["/Subtype"]), embedded, "/ToUnicode" in font)
            )
    return found


def test_european_names_print_as_written_in_an_embedded_font() -> None:
    address = Address("Łukasz Żółć", "Ærøskøbingvej 3", "5970", "Ærøskøbing", "DK")
    others = ("Þórunn Guðmundsdóttir", "Ștefan Țăran", "Çağrı Işıkoğlu", "Γιώργος Παπαδόπουλος")
    body = dataclasses.replace(BODIES["fr"], salutation=", ".join(("Пётр Чайковский", *others)))
    with structlog.testing.capture_logs() as logs:
        pdf = render_letter(letter_content(address=address), body)
    text = pdf_text(pdf)
    assert "Łukasz Żółć\nÆrøskøbingvej 3\n5970 Ærøskøbing\nDANEMARK" in text
    for name in ("Пётр Чайковский", *others):
        assert name in text
    fonts = _fonts_of(pdf)
    assert {name.split("+")[-1] for name, *_ in fonts} == {"DejaVuSans", "DejaVuSans-Bold"}
    assert all(
        subtype == "/TrueType" and embedded and mapped for _, subtype, embedded, mapped in fonts
    )
    assert not [entry for entry in logs if entry["event"] == "letter.glyphs_missing"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words=st.lists(st.text(EUROPEAN_LETTERS, min_size=1, max_size=12), min_size=1, max_size=3))
def test_any_name_in_a_european_alphabet_is_printed_as_written(words: list[str]) -> None:
    name = " ".join(words)
    address = Address(name, "Rue 1", "1000", "Bruxelles", "BE")
    lines = pdf_text(render_letter(letter_content(address=address), BODIES["fr"])).splitlines()
    assert name in lines


def test_a_character_the_font_lacks_is_reported_without_the_text() -> None:
    address = Address("山田太郎", "Rue 1", "1000", "Bruxelles", "BE")
    with structlog.testing.capture_logs() as logs:
        render_letter(letter_content(address=address), BODIES["fr"])
    [warning] = [entry for entry in logs if entry["event"] == "letter.glyphs_missing"]
    assert warning["letters"] == 1 and "山田" not in repr(logs)


def test_a_missing_font_is_an_installation_fault_not_a_bad_letter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(letter_module, "FONT_DIRECTORIES", (tmp_path,))
    letter_module._fonts.cache_clear()
    try:
        with pytest.raises(letter_module.FontNotInstalled, match="fonts-dejavu-core"):
            render_letter(letter_content(), BODIES["fr"])
    finally:
        monkeypatch.undo()
        letter_module._fonts.cache_clear()
    assert not issubclass(letter_module.FontNotInstalled, LetterError)  # not failed for good
    assert "Dennis Peeters" in pdf_text(render_letter(letter_content(), BODIES["fr"]))


# --- the words, and letters longer than a page -----------------------------------------


def test_line_breaks_inside_a_paragraph_are_kept() -> None:
    body = dataclasses.replace(
        BODIES["fr"], paragraphs=("Première ligne\nDeuxième ligne", "Seul paragraphe")
    )
    lines = pdf_text(render_letter(letter_content(), body)).splitlines()
    first = lines.index("Première ligne")
    assert lines[first + 1 : first + 3] == ["Deuxième ligne", "Seul paragraphe"]


def test_a_long_letter_goes_on_overleaf_with_the_payment_box_whole() -> None:
    content = letter_content()
    pdf = render_letter(content, _long_body())
    pages = pdf_pages_text(pdf)
    assert len(pages) == 2
    assert "Madame, Monsieur," in pages[0] and "Dennis Peeters" in pages[0]
    box = ("Comment payer ?", "BE71 0961 2345 6769", "+++123/4567/89002+++", "Scannez ce code")
    for part in (*box, "Veuillez agréer nos salutations distinguées."):
        assert part in pages[1] and part not in pages[0], part
    if PDFTOPPM is not None:  # the QR code went along with the box
        [data] = _qr_from_pdf_page(pdf, page=2)
        payment = epc_payment_for(content)
        assert payment is not None and data == payment.payload().encode("utf-8")


def test_a_long_account_repeats_its_header_and_lists_every_invoice_once() -> None:
    day = dt.date(2026, 10, 1)
    invoices = tuple(InvoiceLine(f"INV-{i:04d}", day, day, 1000 + i, 1000 + i) for i in range(70))
    content = letter_content(invoices=invoices)
    pdf = render_letter_pdf(content, BODIES["fr"])
    pages = pdf_pages_text(pdf.pdf)
    assert pdf.pages == len(pages) >= 3
    text = "\n".join(pages)
    for i in range(70):
        assert text.count(f"INV-{i:04d} 1 oct. 2026 1 oct. 2026") == 1
    header = "Facture Date Échéance Montant Reste dû"
    for page in pages:
        if "INV-0" in page:  # a page of the account (the subject names INV-2026-0042)
            assert header in page and page.index(header) < page.index("INV-0")
    total = format_currency(Decimal(content.total_minor) / 100, "EUR", locale="fr_BE")
    assert f"Total à payer {normalise(total)}" in text
    assert pages[-1].rstrip().endswith("Demo Energy SA")


FEES = st.builds(
    FeeLine,
    st.sampled_from(["reminder_fee", "flat_indemnity", "late_interest"]),
    st.integers(1, 10**7),
    st.sampled_from(["CDE art. XIX.4, § 2", "Loi du 2 août 2002, art. 5", "Art. 1153 C. civ."]),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fees=st.lists(FEES, max_size=5), language=st.sampled_from(["fr", "nl", "en"]))
def test_every_fee_has_its_line_and_the_total_adds_them_up(
    fees: list[FeeLine], language: str
) -> None:
    content = letter_content(fees=tuple(fees), language=language)
    text = flat(pdf_text(render_letter(content, BODIES[language])))
    locale = letter_module.LOCALES[language]

    def money(minor: int) -> str:
        return normalise(format_currency(Decimal(minor) / 100, "EUR", locale=locale))

    for fee in fees:
        label = letter_module.FEE_LABELS[fee.kind][language]
        line = f"{label} {fee.legal_basis} {money(fee.amount_minor)}"
        assert text.count(line) >= fees.count(fee), line
    total_label = letter_module.LABELS[language]["total"]
    assert f"{total_label} {money(12450 + sum(fee.amount_minor for fee in fees))}" in text
    assert (letter_module.LABELS[language]["no_fees"] in text) == (not fees)


@settings(max_examples=200, deadline=None)
@given(
    text=st.lists(
        st.sampled_from("ab Ééçxyz-WMi\u00a0\n.,") | st.sampled_from(EUROPEAN_LETTERS)
    ).map("".join),
    width=st.floats(20, 400),
)
def test_wrapping_keeps_every_character_and_each_line_fits(text: str, width: float) -> None:
    lines = letter_module._wrap(text, letter_module.REGULAR, 9.5, width)
    for line in lines:
        assert len(line) <= 1 or letter_module._width(line, letter_module.REGULAR, 9.5) <= width
    assert "".join("".join(lines).split(" ")) == "".join(text.replace("\n", "").split(" "))
    assert len(lines) >= text.count("\n") + 1


def test_the_same_letter_gives_the_same_bytes() -> None:
    assert render_letter(letter_content(), BODIES["fr"]) == render_letter(
        letter_content(), BODIES["fr"]
    )


# --- the QR code, as a phone reads it --------------------------------------------------


def _qr_from_pdf_page(pdf: bytes, page: int = 1) -> list[bytes]:
    return zbar_decode_raw(_raster(pdf, page))


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(
            "pdf",
            marks=pytest.mark.skipif(
                PDFTOPPM is None, reason="pdftoppm (poppler-utils) not installed"
            ),
        ),
        "png",  # the same payment rendered on its own, for machines without pdftoppm
    ],
)
def test_the_qr_code_pays_the_total_to_the_creditor_with_the_ogm(source: str) -> None:
    content = letter_content(language="nl")
    payment = epc_payment_for(content)
    assert payment is not None
    if source == "pdf":
        [data] = _qr_from_pdf_page(render_letter(content, BODIES["nl"]))
    else:
        [data] = zbar_decode_raw(Image.open(io.BytesIO(qr_png(payment))))
    scanned = parse_epc_payload(data.decode("utf-8"))
    assert scanned.iban == "BE71096123456769"
    assert scanned.bic == "GKCCBEBB"
    assert scanned.name == "Demo Energy SA"
    assert scanned.amount_minor == content.total_minor == 13200
    assert scanned.structured_reference == "123456789002"
    assert scanned.remittance_text is None
    assert data == payment.payload().encode("utf-8")


def test_no_qr_code_when_there_is_nothing_to_pay_or_not_in_euro() -> None:
    assert epc_payment_for(letter_content(invoices=(), fees=())) is None
    assert epc_payment_for(letter_content(currency="USD")) is None
    content = letter_content(currency="USD", language="en")
    text = pdf_text(render_letter(content, BODIES["en"]))
    assert "Scan this code" not in text and "132,00 US$" in text


# --- batches for the mail house --------------------------------------------------------


def _long_body() -> LetterBody:
    paragraph = "Nous restons à votre disposition pour toute question concernant ce dossier. " * 8
    return dataclasses.replace(BODIES["fr"], paragraphs=(paragraph,) * 4)  # two pages


def _batch_items() -> list[tuple[MessageContent, LetterBody]]:
    items: list[tuple[MessageContent, LetterBody]] = []
    for i, language in enumerate(["fr", "nl", "en", "fr", "nl"]):
        content = letter_content(
            attempt_id=f"attempt-{i}",
            case_ref=f"C-{i:04d}",
            language=language,
            address=Address(f"Debtor Number{i}", f"Straat {i}", f"900{i}", "Gent", "BE"),
        )
        items.append((content, _long_body() if i in (1, 2) else BODIES[language]))
    items.insert(3, (letter_content(attempt_id="no-address", address=None), BODIES["fr"]))
    return items


def _check_batch(result: Any, duplex: bool) -> None:
    rows = result.rows
    assert [row.attempt_id for row in rows] == [f"attempt-{i}" for i in range(5)]
    assert result.skipped == ("no-address",)
    assert [row.page_count for row in rows] == [1, 2, 2, 1, 1]
    pages = pdf_pages_text(result.pdf_path.read_bytes())
    assert len(pages) == result.total_pages
    for row, following in zip(rows, [*rows[1:], None], strict=True):
        step = 2 * row.sheet_count if duplex else row.page_count
        if following is not None:
            assert following.first_page == row.first_page + step
            for blank in range(row.first_page + row.page_count, following.first_page):
                assert pages[blank - 1].strip() == ""  # the verso left blank
        assert row.sheet_count == (-(-row.page_count // 2) if duplex else row.page_count)
        if duplex:
            assert row.first_page % 2 == 1  # a recto
        first = pages[row.first_page - 1]
        assert row.recipient_name in first and row.case_ref in first
    assert rows[-1].first_page + rows[-1].page_count - 1 == result.total_pages
    with result.manifest_path.open(newline="", encoding="utf-8") as file:
        manifest = list(csv.DictReader(file))
    assert tuple(manifest[0]) == MANIFEST_COLUMNS
    assert [
        (m["attempt_id"], int(m["first_page"]), int(m["page_count"]), int(m["sheet_count"]))
        for m in manifest
    ] == [(r.attempt_id, r.first_page, r.page_count, r.sheet_count) for r in rows]
    assert manifest[2]["recipient_name"] == "Debtor Number2" and manifest[2]["postcode"] == "9002"
    assert manifest[2]["city"] == "Gent" and manifest[2]["country"] == "BE"


def test_a_duplex_batch_starts_each_letter_on_a_recto_and_the_manifest_agrees(
    tmp_path: Path,
) -> None:
    with structlog.testing.capture_logs() as logs:
        result = render_batch(_batch_items(), tmp_path, name="run-1")
    _check_batch(result, duplex=True)
    assert result.pdf_path == tmp_path / "run-1.pdf" and result.letter_pages == 7
    assert result.sheets == 5 and result.total_pages == 9  # 1+blank, 2, 2, 1+blank, 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-1.csv", "run-1.pdf"]
    logged = repr(logs)
    for secret in ("Debtor", "Number", "Straat", "9001", "Gent"):  # nothing personal logged
        assert secret not in logged
    assert logs and logs[0]["letters"] == 5


def test_a_simplex_batch_adds_no_blank_pages(tmp_path: Path) -> None:
    result = render_batch(_batch_items(), tmp_path, duplex=False)
    _check_batch(result, duplex=False)
    assert result.total_pages == result.letter_pages == result.sheets == 7


@pytest.mark.parametrize("caller_takes_pending", [False, True])
def test_a_batch_prepared_by_two_processes_is_the_same_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caller_takes_pending: bool
) -> None:
    """Byte for byte the one-process batch: with chunks of one letter and the caller
    taking none of the pending ones, every letter but the first was prepared by the
    spawned worker; with the default sharing, whoever prepares what."""
    serial = render_batch(_batch_items(), tmp_path / "serial")
    monkeypatch.setattr(letter_module, "_CHUNK", 1)
    monkeypatch.setattr(letter_module, "_CALLER_TAKES_PENDING", caller_takes_pending)
    with structlog.testing.capture_logs() as logs:
        pooled = render_batch(_batch_items(), tmp_path / "pooled", workers=2)
    if not caller_takes_pending:
        assert logs[-1]["prepared_by_workers"] == 4
    _check_batch(pooled, duplex=True)
    assert [row.first_page for row in pooled.rows] == [1, 3, 5, 7, 9]
    assert pooled.rows == serial.rows and pooled.total_pages == serial.total_pages == 9
    assert pooled.pdf_path.read_bytes() == serial.pdf_path.read_bytes()
    assert pooled.manifest_path.read_bytes() == serial.manifest_path.read_bytes()


def test_a_batch_in_an_unsupported_language_is_refused_before_any_work(tmp_path: Path) -> None:
    items = [*_batch_items(), (letter_content(attempt_id="de", language="de"), BODIES["fr"])]
    with pytest.raises(LetterError, match="'de'"):
        render_batch(items, tmp_path, workers=2)
    assert list(tmp_path.iterdir()) == []


def test_a_batch_with_no_postal_address_at_all_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(LetterError):
        render_batch([(letter_content(address=None), BODIES["fr"])], tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- the provider ----------------------------------------------------------------------


def test_the_provider_writes_the_pdf_once_per_attempt(tmp_path: Path) -> None:
    provider: Provider = LetterProvider(LetterConfig(output_dir=tmp_path / "out"))
    assert (provider.name, provider.channel) == ("letter", Channel.LETTER)
    assert provider.Config.model_validate({"output_dir": str(tmp_path)})
    content = letter_content()
    first = provider.send(content, BODIES["fr"])
    target = tmp_path / "out" / f"{content.attempt_id}.pdf"
    assert first.outcome is Outcome.SENT and first.units == 1 and first.detail is None
    written = target.read_bytes()
    assert "+++123/4567/89002+++" in pdf_text(written)
    again = provider.send(content, _long_body())
    assert (again.outcome, again.detail, again.units) == (Outcome.SENT, "already written", 0)
    assert target.read_bytes() == written
    assert [p.name for p in (tmp_path / "out").iterdir()] == [target.name]  # no temp files
    provider.close()


def test_the_provider_counts_pages(tmp_path: Path) -> None:
    provider = LetterProvider(LetterConfig(output_dir=tmp_path))
    result = provider.send(letter_content(), _long_body())
    assert result.outcome is Outcome.SENT and result.units == 2
    assert render_letter_pdf(letter_content(), _long_body()).pages == 2


@pytest.mark.parametrize(
    ("changes", "rendered", "detail"),
    [
        ({"address": None}, BODIES["fr"], "no postal address"),
        ({"attempt_id": "../escape"}, BODIES["fr"], "the attempt id is not a safe file name"),
        ({}, EmailBody("s", "t", "<p>t</p>"), "expected a LetterBody, got EmailBody"),
        (
            {"language": "de"},
            BODIES["fr"],
            "UnsupportedLanguage: no letter labels for language 'de'",
        ),
    ],
)
def test_what_can_never_be_posted_is_a_permanent_failure(
    tmp_path: Path, changes: dict[str, Any], rendered: Any, detail: str
) -> None:
    result = LetterProvider(LetterConfig(output_dir=tmp_path)).send(
        letter_content(**changes), rendered
    )
    assert (result.outcome, result.detail) == (Outcome.PERMANENT, detail)
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_directory_is_a_transient_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = LetterProvider(LetterConfig(output_dir=blocker / "out")).send(
        letter_content(), BODIES["fr"]
    )
    assert result.outcome is Outcome.TRANSIENT
    assert result.detail == "cannot write the letter (NotADirectoryError)"
