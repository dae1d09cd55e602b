"""Benchmark: letter pages per second when a batch of letters becomes one mail-house PDF.

Times `render_batch` (ReportLab) on N varied letters (three languages, with and without
fees, one to four invoices) in one process and in a pool of two processes, against the
naive baseline: the former WeasyPrint layout (its HTML template and stylesheet are kept
below, frozen), one `HTML(string=...).write_pdf()` per letter, sequentially, re-parsing
the stylesheet each time. Each figure is the best of `--repeat` runs (other processes
share the machine) with the CPU milliseconds per page of that run, pool workers
included. Pages per second count the letters' own pages, not the blank versos added for
duplex printing. Prints one JSON line.

    python bench/dispatch_letter.py                 # 120 letters, naive run on 20, best of 3
    python bench/dispatch_letter.py --letters 400 --naive 40 --repeat 5
"""

# The baseline's HTML template and stylesheet below are kept verbatim, long lines included.
# ruff: noqa: E501

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime as dt
import json
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from parcours.channels.content import (
    Address,
    Channel,
    FeeLine,
    InvoiceLine,
    LetterBody,
    MessageContent,
)
from parcours.channels.letter import _view, epc_payment_for, render_batch, render_letter
from parcours.channels.render import SAMPLE_CREDITOR
from parcours.domain.structured_communication import StructuredCommunication
from parcours.observability import configure_logging
from parcours.payments.epc import qr_svg

TARGET_PAGES_PER_S = 20.0

CREDITOR = SAMPLE_CREDITOR

BODIES = {
    "fr": LetterBody(
        subject="Rappel : factures impayées",
        salutation="Madame, Monsieur,",
        paragraphs=(
            "Sauf erreur de notre part, les factures ci-dessous restent impayées. Nous vous "
            "remercions de régler le total avant la date indiquée.",
            "Si vous avez déjà payé, ne tenez pas compte de ce courrier. En cas de difficulté, "
            "contactez-nous : nous pouvons convenir d'un plan de paiement.",
        ),
        closing="Veuillez agréer, Madame, Monsieur, nos salutations distinguées.",
    ),
    "nl": LetterBody(
        subject="Herinnering: onbetaalde facturen",
        salutation="Geachte mevrouw, geachte heer,",
        paragraphs=(
            "Tenzij wij ons vergissen, zijn de onderstaande facturen nog niet betaald. Wij "
            "vragen u het totaal te betalen vóór de vermelde datum.",
            "Hebt u intussen betaald, dan mag u deze brief als onbestaand beschouwen. Hebt u "
            "het moeilijk, neem dan contact op: een afbetalingsplan is mogelijk.",
        ),
        closing="Met vriendelijke groeten,",
    ),
    "en": LetterBody(
        subject="Reminder: unpaid invoices",
        salutation="Dear customer,",
        paragraphs=(
            "According to our records the invoices below are still unpaid. Please pay the "
            "total by the date shown.",
            "If you have already paid, please disregard this letter. If you are having "
            "difficulties, contact us: we can agree on a payment plan.",
        ),
        closing="Yours faithfully,",
    ),
}


def letters(n: int) -> list[tuple[MessageContent, LetterBody]]:
    """N deterministic, varied letters."""
    items = []
    for i in range(n):
        language = ("fr", "nl", "en")[i % 3]
        invoices = tuple(
            InvoiceLine(
                f"INV-2026-{i:05d}-{j}",
                dt.date(2026, 9, 1) + dt.timedelta(days=10 * j),
                dt.date(2026, 10, 1) + dt.timedelta(days=10 * j),
                5_000 + 1_337 * j + i,
                5_000 + 1_337 * j + i - (2_000 if j == 1 else 0),
            )
            for j in range(1 + i % 4)
        )
        fees = (
            ()
            if i % 2
            else (FeeLine("reminder_fee", 750, "Code de droit économique, art. XIX.4, § 2"),)
        )
        content = MessageContent(
            attempt_id=f"bench{i:08d}",
            case_ref=f"C-{i:08d}",
            debtor_ref=f"D{i:08d}",
            channel=Channel.LETTER,
            template="reminder_2",
            language=language,
            persona=None,
            creditor=CREDITOR,
            debtor_name=f"Debtor {i}",
            email=None,
            mobile=None,
            address=Address(f"Debtor {i}", f"Kerkstraat {i % 200 + 1}", "9000", "Gent", "BE"),
            invoices=invoices,
            fees=fees,
            currency="EUR",
            pay_by=dt.date(2026, 12, 20),
            structured_communication=StructuredCommunication.from_base(10_000 + i),
            pay_link=f"https://pay.parcours.example/p/{i:08d}",
            opt_out_link=f"https://pay.parcours.example/o/{i:08d}",
            reminder=True,
            sent_on=dt.date(2026, 12, 5),
        )
        items.append((content, BODIES[language]))
    return items


# --- the naive baseline: the WeasyPrint letter this module replaced ---------------------

BASELINE_CSS = """\
/* One A4 letter per <section>; the address sits in the window of a Belgian right-window
   DL envelope (see letter.py for the geometry). Sizes in mm from the sheet's edges. */
/* No running footer: page margin boxes cost about 6 % of the layout time, and the
   letterhead and the case reference already identify the letter. */
@page {
  size: A4;
  margin: 15mm 18mm 20mm 20mm;
}

html { font: 9.5pt/1.35 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #111; }
p { margin: 0; }

.letter.next { break-before: page; }
.letter.recto { break-before: recto; }

/* 82 mm of the first page: letterhead on the left, the window on the right. */
.head { position: relative; height: 82mm; }
.sender { width: 72mm; font-size: 8pt; line-height: 1.3; color: #333; }
.sender .creditor { font-size: 11pt; font-weight: bold; color: #111; margin-bottom: 1mm; }
.sender .help { margin-top: 1.5mm; }
.sender .phone { white-space: nowrap; }
/* Sheet x 105–185 mm, y 52–82 mm: inside the window whatever the folded sheet's play. */
.window {
  position: absolute;
  left: 85mm;
  top: 37mm;
  width: 80mm;
  height: 30mm;
  font-size: 10pt;
  line-height: 1.3;
}

.place-date { text-align: right; margin-bottom: 2mm; }
.case { font-size: 8.5pt; color: #333; margin-bottom: 4mm; }
.subject { font-size: 10.5pt; font-weight: bold; margin: 0 0 4mm; }
.salutation { margin-bottom: 2.5mm; }
.para { margin-bottom: 2.5mm; }

/* Fixed table layout: automatic layout measures every cell twice. */
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
.account { margin: 3mm 0 2mm; font-size: 8.5pt; }
.account th { text-align: left; border-bottom: 0.6pt solid #111; padding: 1mm 1.5mm; }
.account td { padding: 0.8mm 1.5mm; border-bottom: 0.3pt solid #bbb; vertical-align: top; }
.account th:nth-child(1) { width: 30%; }
.account th:nth-child(4), .account th:nth-child(5) { width: 17%; }
.account .num { text-align: right; white-space: nowrap; }
.account .basis { display: block; font-size: 7pt; color: #444; }
.account tfoot td { font-weight: bold; border-top: 0.6pt solid #111; border-bottom: none; }

.pay-by { font-weight: bold; margin: 2mm 0 3mm; }

.payment { border: 0.6pt solid #111; break-inside: avoid; }
.payment > tbody > tr > td, .payment > tr > td { vertical-align: top; padding: 2.5mm 3mm; }
.payment .how { font-weight: bold; margin-bottom: 1.5mm; }
.payment .kv th { width: 44mm; padding: 0 2mm 0.6mm 0; text-align: left; font-weight: normal; color: #333; vertical-align: top; }
.payment .kv td { padding: 0 0 0.6mm; vertical-align: top; }
.payment .ogm { font-weight: bold; font-size: 10.5pt; }
.payment .link { font-size: 8pt; }
.payment .qr { width: 36mm; text-align: center; font-size: 6.5pt; line-height: 1.2; }
.payment .qr img { width: 32mm; height: 32mm; display: block; margin: 0 auto 1mm; }

.closing { margin-top: 4mm; break-before: avoid; }
.signature { margin-top: 2mm; font-weight: bold; }
"""

BASELINE_HTML = """\
<!DOCTYPE html>
<html lang="{{ letters[0].lang }}">
<head>
<meta charset="utf-8">
<title>{{ title }}</title>
</head>
<body>
{% for l in letters %}
<section class="letter{% if not loop.first %} next{% if duplex %} recto{% endif %}{% endif %}" id="letter-{{ l.index }}" lang="{{ l.lang }}">
  <header class="head">
    <div class="sender">
      <p class="creditor">{{ l.creditor_name }}</p>
      {% for line in l.creditor_lines %}<p>{{ line }}</p>{% endfor %}
      {% if l.company_number %}<p>{{ l.labels.company }} {{ l.company_number }}</p>{% endif %}
      <p class="help">{{ l.labels.help }}<br>{{ l.help_email }}<br><span class="phone">{{ l.help_phone }}</span></p>
    </div>
    <div class="window">{% for line in l.address_lines %}<p>{{ line }}</p>{% endfor %}</div>
  </header>

  <p class="place-date">{{ l.place_date }}</p>
  <p class="case">{{ l.labels.case }} {{ l.case_ref }}</p>
  <h1 class="subject">{{ l.subject }}</h1>

  <p class="salutation">{{ l.salutation }}</p>
  {% for paragraph in l.paragraphs %}<p class="para">{{ paragraph }}</p>{% endfor %}

  <table class="account">
    <thead><tr>
      <th>{{ l.labels.invoice }}</th><th>{{ l.labels.issued }}</th><th>{{ l.labels.due }}</th>
      <th class="num">{{ l.labels.amount }}</th><th class="num">{{ l.labels.open }}</th>
    </tr></thead>
    <tbody>
      {% for row in l.invoices %}<tr>
        <td>{{ row.ref }}</td><td>{{ row.issued }}</td><td>{{ row.due }}</td>
        <td class="num">{{ row.amount }}</td><td class="num">{{ row.open }}</td>
      </tr>{% endfor %}
      {% for fee in l.fees %}<tr class="fee">
        <td colspan="4">{{ fee.label }}<span class="basis">{{ fee.basis }}</span></td>
        <td class="num">{{ fee.amount }}</td>
      </tr>{% endfor %}
    </tbody>
    <tfoot><tr><td colspan="4">{{ l.labels.total }}</td><td class="num">{{ l.total }}</td></tr></tfoot>
  </table>

  <p class="pay-by">{{ l.pay_by }}</p>

  <table class="payment">
    <tr>
      <td class="details">
        <p class="how">{{ l.labels.how_to_pay }}</p>
        <table class="kv">
          <tr><th>{{ l.labels.beneficiary }}</th><td>{{ l.creditor_name }}</td></tr>
          <tr><th>IBAN</th><td>{{ l.iban }}</td></tr>
          {% if l.bic %}<tr><th>BIC</th><td>{{ l.bic }}</td></tr>{% endif %}
          <tr><th>{{ l.labels.amount }}</th><td>{{ l.total }}</td></tr>
          <tr><th>{{ l.labels.communication }}</th><td class="ogm">{{ l.communication }}</td></tr>
          <tr><th>{{ l.labels.pay_online }}</th><td class="link">{{ l.pay_link }}</td></tr>
        </table>
      </td>
      {% if l.qr %}<td class="qr"><img src="{{ l.qr }}" alt="EPC QR"><p>{{ l.labels.scan }}</p></td>{% endif %}
    </tr>
  </table>

  <p class="closing">{{ l.closing }}</p>
  <p class="signature">{{ l.creditor_name }}<span id="end-{{ l.index }}"></span></p>
</section>
{% endfor %}
</body>
</html>
"""


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the pool's workers): on a
    shared machine it says what the work costs when the wall clock also shows waiting."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _baseline_view(content: MessageContent, body: LetterBody) -> dict[str, Any]:
    """What the former template read: the same view, the QR code as an SVG data URI."""
    view = dataclasses.asdict(_view(0, content, body))
    payment = epc_payment_for(content)
    if payment is not None:
        svg = base64.b64encode(qr_svg(payment).encode("utf-8")).decode("ascii")
        view["qr"] = f"data:image/svg+xml;base64,{svg}"
    return view


def _naive(items: list[tuple[MessageContent, LetterBody]]) -> dict[str, float] | None:
    """One HTML document and one write_pdf() per letter, stylesheet inlined and re-parsed;
    None when WeasyPrint is not installed."""
    try:
        import jinja2
        from weasyprint import HTML  # type: ignore[import-untyped]
    except ImportError:
        return None
    environment = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    template = environment.from_string(BASELINE_HTML)
    pages = 0
    cpu = _cpu_seconds()
    start = time.perf_counter()
    for content, body in items:
        html = template.render(letters=[_baseline_view(content, body)], title="Letter")
        html = html.replace("</head>", f"<style>{BASELINE_CSS}</style></head>", 1)
        document = HTML(string=html).render()
        document.write_pdf()
        pages += len(document.pages)
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu
    return {
        "letters": len(items),
        "seconds": round(seconds, 3),
        "cpu_ms_per_page": round(1000 * cpu / pages, 1),
        "letter_pages": pages,
        "pages_per_s": round(pages / seconds, 2),
    }


# --- ours -----------------------------------------------------------------------------


def _batch(items: list[tuple[MessageContent, LetterBody]], workers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        cpu = _cpu_seconds()
        start = time.perf_counter()
        result = render_batch(items, Path(folder), workers=workers)
        seconds = time.perf_counter() - start
        while multiprocessing.active_children():  # reap a worker still finishing a chunk,
            time.sleep(0.01)  # so that its CPU time is counted too
        cpu = _cpu_seconds() - cpu
        size = result.pdf_path.stat().st_size
    return {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),  # this process and its workers
        "cpu_ms_per_page": round(1000 * cpu / result.letter_pages, 1),
        "letter_pages": result.letter_pages,
        "pdf_pages": result.total_pages,
        "sheets": result.sheets,
        "pages_per_s": round(result.letter_pages / seconds, 2),
        "pdf_bytes": size,
    }


def _best(runs: list[dict[str, float] | None]) -> dict[str, float] | None:
    """The fastest run (the one least disturbed by the machine's other work)."""
    done = [run for run in runs if run is not None]
    return max(done, key=lambda run: run["pages_per_s"]) if done else None


def measure(n: int, naive_sample: int = 20, repeat: int = 3) -> dict[str, object]:
    """Letter pages per second: batch in one process, batch in two, naive per letter."""
    items = letters(n)
    render_letter(*items[0])  # imports and fonts, outside the timings
    serial = _best([_batch(items, workers=1) for _ in range(repeat)])
    pooled = _best([_batch(items, workers=2) for _ in range(repeat)])
    assert serial is not None
    assert pooled is not None
    naive = _best([_naive(items[: min(n, naive_sample)]) for _ in range(repeat)])
    best = max(serial["pages_per_s"], pooled["pages_per_s"])
    return {
        "bench": "dispatch_letter",
        "engine": "reportlab canvas",
        "letters": n,
        "repeat": repeat,
        "batch_1_process": serial,
        "batch_2_processes": pooled,
        "naive_weasyprint": naive,
        "best_pages_per_s": best,
        "ratio_best_batch_to_naive": None
        if naive is None
        else round(best / naive["pages_per_s"], 2),
        "target_pages_per_s": TARGET_PAGES_PER_S,
        "meets_target": best >= TARGET_PAGES_PER_S,
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letters", type=int, default=120)
    parser.add_argument("--naive", type=int, default=20, help="letters in the naive run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    args = parser.parse_args()
    configure_logging("WARNING")  # stdout carries the JSON line only
    print(json.dumps(measure(args.letters, args.naive, args.repeat)))


if __name__ == "__main__":
    main()
