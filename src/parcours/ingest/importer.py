"""Stream a portfolio CSV into the store in batches: check, look up, insert or update.

Rows are checked in two phases: field by field (`rows.RowParser`), then against the store
(known debtor, invoice currency) once per batch with a few set-based queries
(`store.bulk`). The caller owns the transaction: nothing here commits, so a file-level
failure or a `--strict` rejection rolls everything back.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection

from parcours.domain.structured_communication import structured_communication_digits
from parcours.ingest.checking import CheckedBatch, checked_batches, checked_in_workers, paused_gc
from parcours.ingest.csvfile import CsvFile, open_csv
from parcours.ingest.fields import FieldError, parse_money
from parcours.ingest.report import FileRejected, ImportReport, RowError
from parcours.ingest.rows import (
    OPTIONAL,
    REQUIRED,
    ImportKind,
    ImportOptions,
    ParsedRow,
    RowParser,
    digest,
)
from parcours.store.bulk import (
    DEBTOR_FIELDS,
    INVOICE_FIELDS,
    PAYMENT_FIELDS,
    Key,
    PortfolioWriter,
)
from parcours.store.db import checkpoint_in_background
from parcours.store.schema import DebtorRow, InvoiceRow, PaymentRow

__all__ = ["ImportKind", "ImportOptions", "import_file", "report_allows_commit"]

# Files from this size on are read and checked by a second process.
PARALLEL_FROM_BYTES = 2 * 1024 * 1024
_MODELS: dict[ImportKind, type[DebtorRow] | type[InvoiceRow] | type[PaymentRow]] = {
    ImportKind.DEBTORS: DebtorRow,
    ImportKind.INVOICES: InvoiceRow,
    ImportKind.PAYMENTS: PaymentRow,
}


def import_file(
    connection: Connection,
    kind: ImportKind,
    path: Path,
    options: ImportOptions,
    *,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import one CSV of `kind` for one creditor within the caller's transaction.

    The caller commits only when `report_allows_commit(report)`.
    """
    report = ImportReport(
        kind=kind.value, file=path.name, creditor=options.creditor_name, strict=options.strict
    )
    try:
        csv_file = open_csv(path, REQUIRED[kind])
    except FileRejected as exc:
        report.file_error = str(exc)
        return report
    checkpoint_in_background(connection)  # SQLite: the commit of many rows returns sooner
    with paused_gc():
        try:
            _check_header(kind, csv_file, report)
            store = _Store(kind, options, PortfolioWriter(connection, options.creditor_id))
            workers = _workers(kind, path, options)
            if workers:
                checked = checked_in_workers(path, kind, options, workers)
            else:
                parser = RowParser(kind, csv_file.header.columns, options)
                checked = checked_batches(csv_file, parser, options.batch_size)
            seen: dict[str, int] = {}
            for batch in checked:
                rows = _first_occurrences(batch, seen, report)
                if not (options.strict and report.errors):
                    store.store(rows, report)
                if progress is not None:
                    progress(batch.position)
            if report.rows == 0:
                raise FileRejected(f"{path.name} has a header but no rows")
        except FileRejected as exc:
            report.file_error = str(exc)
        finally:
            csv_file.close()
    if options.strict and report.errors:
        report.inserted = report.updated = report.unchanged = 0
        report.side_effects.clear()
    return report


def _workers(kind: ImportKind, path: Path, options: ImportOptions) -> int:
    """How many processes should check rows while this one stores them (0: none)."""
    parallel = options.parallel
    if parallel is None:
        parallel = path.stat().st_size >= PARALLEL_FROM_BYTES and (os.cpu_count() or 1) > 1
    if not parallel:
        return 0
    # A debtor row costs about three times an invoice row to check (phone validation),
    # so two checkers keep up with one storer; for other kinds storing is the slower side.
    return 2 if kind is ImportKind.DEBTORS else 1


def report_allows_commit(report: ImportReport) -> bool:
    """True when the rows written may be committed (no file error, not a strict reject)."""
    return report.file_error is None and not (report.strict and report.errors)


def _check_header(kind: ImportKind, csv_file: CsvFile, report: ImportReport) -> None:
    columns = set(csv_file.header.columns)
    missing = [c for c in REQUIRED[kind] if c not in columns]
    if missing:
        for other, required in REQUIRED.items():
            if other is not kind and set(required) <= columns:
                raise FileRejected(
                    f"{csv_file.path.name} looks like a {other.value} file, not {kind.value}: "
                    f"use `parcours import {other.value}`"
                )
        raise FileRejected(
            f"{csv_file.path.name} lacks required column(s) {', '.join(missing)} "
            f"(found: {', '.join(csv_file.header.columns)})"
        )
    unknown = columns - set(REQUIRED[kind]) - set(OPTIONAL[kind])
    if unknown:
        report.warnings.append(f"ignored unknown column(s): {', '.join(sorted(unknown))}")


def _first_occurrences(
    batch: CheckedBatch, seen: dict[str, int], report: ImportReport
) -> list[ParsedRow]:
    """The batch's rows whose key was not seen earlier in the file; later ones are refused.

    A ref repeated in one file is ambiguous, so only its first row can be stored; a
    repeated row reports that alone, not its other problems.
    """
    report.rows += batch.rows
    repeated: set[int] = set()
    for line, field, value in batch.keys:
        first = seen.setdefault(value, line)
        if first != line:
            repeated.add(line)
            report.errors.append(RowError(line, field, _repeated(field, value, first)))
    if not repeated:
        report.errors.extend(batch.errors)
        return batch.parsed
    report.errors.extend(e for e in batch.errors if e.line not in repeated)
    return [row for row in batch.parsed if row.line not in repeated]


def _repeated(field: str, value: str, first: int) -> str:
    if field == "row":
        return (
            f"repeats the payment of line {first} (same invoice_ref, amount and paid_at; "
            "add a payment_ref column if both are real)"
        )
    return f"{value!r} appears again (first on line {first})"


class _Store:
    """Phase two: check rows against the store and write them, one batch at a time."""

    def __init__(self, kind: ImportKind, options: ImportOptions, writer: PortfolioWriter) -> None:
        self.options = options
        self.writer = writer
        self.now = writer.timestamp(options.now)
        # On a creditor's first load of a kind nothing can exist yet: skip the lookups
        # (refs repeated inside the file never reach this point).
        self.first_load = not writer.has_rows(_MODELS[kind])
        self.store: Callable[[list[ParsedRow], ImportReport], None] = {
            ImportKind.DEBTORS: self._store_debtors,
            ImportKind.INVOICES: self._store_invoices,
            ImportKind.PAYMENTS: self._store_payments,
        }[kind]

    def _store_debtors(self, batch: list[ParsedRow], report: ImportReport) -> None:
        existing = {} if self.first_load else self.writer.debtors_by_ref([p.ref for p in batch])
        inserts, updates = [], []
        creditor, now = self.writer.creditor_key, self.now
        for p in batch:
            found = existing.get(p.ref)
            if found is None:
                inserts.append(
                    (self.writer.new_id(), creditor, p.ref, *p.values, p.extra[0],
                     p.digest, now, now)
                )  # fmt: skip
            elif found[2]:
                report.errors.append(
                    RowError(
                        p.line, "debtor_ref", f"{p.ref!r} was erased (GDPR) and is not re-imported"
                    )
                )
            elif found[1] == p.digest:
                report.unchanged += 1
            else:
                updates.append((*p.values, p.extra[0], p.digest, now, found[0]))
        self.writer.insert(
            "debtors",
            (
                "id",
                "creditor_id",
                "ref",
                *DEBTOR_FIELDS,
                "name_key",
                "source_digest",
                "created_at",
                "updated_at",
            ),
            inserts,
        )
        self.writer.update(
            "debtors", (*DEBTOR_FIELDS, "name_key", "source_digest", "updated_at"), updates
        )
        report.inserted += len(inserts)
        report.updated += len(updates)

    def _store_invoices(self, batch: list[ParsedRow], report: ImportReport) -> None:
        debtors = self.writer.debtor_cases(list({p.extra[0] for p in batch}))
        existing = {} if self.first_load else self.writer.invoices_by_ref([p.ref for p in batch])
        creditor, now = self.writer.creditor_key, self.now
        new_cases: dict[str, Key] = {}
        case_rows, inserts, updates = [], [], []
        for p in batch:
            debtor_ref = p.extra[0]
            debtor = debtors.get(debtor_ref)
            if debtor is None:
                report.errors.append(
                    RowError(
                        p.line,
                        "debtor_ref",
                        f"{debtor_ref!r} is not a debtor of {self.options.creditor_name} "
                        "(import the debtors first)",
                    )
                )
                continue
            debtor_id, erased, open_case, case_count = debtor
            if erased:
                report.errors.append(
                    RowError(p.line, "debtor_ref", f"{debtor_ref!r} was erased (GDPR)")
                )
                continue
            if open_case is not None:
                case_id = open_case
            elif debtor_ref in new_cases:
                case_id = new_cases[debtor_ref]
            else:
                case_id = new_cases[debtor_ref] = self.writer.new_id()
                case_ref = f"C-{debtor_ref}" + (f"-{case_count + 1}" if case_count else "")
                case_rows.append((case_id, creditor, debtor_id, case_ref, "open", now))
            found = existing.get(p.ref)
            if found is None:
                inserts.append((p, case_id))
            elif found[1] == p.digest:
                report.unchanged += 1
            else:
                updates.append((case_id, *p.values, p.digest, now, found[0]))
        self.writer.insert(
            "cases", ("id", "creditor_id", "debtor_id", "ref", "status", "opened_at"), case_rows
        )
        first_base = self.writer.reserve_ogm_bases(len(inserts)) if inserts else 0
        rows = [
            (
                self.writer.new_id(),
                creditor,
                p.ref,
                case_id,
                *p.values,
                structured_communication_digits(first_base + n),
                p.digest,
                now,
                now,
            )
            for n, (p, case_id) in enumerate(inserts)
        ]
        self.writer.insert(
            "invoices",
            (
                "id",
                "creditor_id",
                "ref",
                *INVOICE_FIELDS,
                "structured_communication",
                "source_digest",
                "created_at",
                "updated_at",
            ),
            rows,
        )
        self.writer.update("invoices", (*INVOICE_FIELDS, "source_digest", "updated_at"), updates)
        report.inserted += len(rows)
        report.updated += len(updates)
        report.side_effects["cases_opened"] += len(case_rows)

    def _store_payments(self, batch: list[ParsedRow], report: ImportReport) -> None:
        invoices = self.writer.invoices_by_ref(list({p.extra[0] for p in batch}))
        existing = {} if self.first_load else self.writer.payments_by_ref([p.ref for p in batch])
        creditor, now = self.writer.creditor_key, self.now
        inserts, updates, touched = [], [], []
        for p in batch:
            invoice_ref, amount_text, currency = p.extra
            invoice = invoices.get(invoice_ref)
            if invoice is None:
                report.errors.append(
                    RowError(
                        p.line,
                        "invoice_ref",
                        f"{invoice_ref!r} is not an invoice of {self.options.creditor_name} "
                        "(import the invoices first)",
                    )
                )
                continue
            invoice_id, _, invoice_currency, case_id = invoice
            if currency is not None and currency != invoice_currency:
                report.errors.append(
                    RowError(
                        p.line,
                        "currency",
                        f"{currency} differs from the invoice's currency {invoice_currency}",
                    )
                )
                continue
            try:
                minor = parse_money(amount_text, invoice_currency)
            except FieldError as exc:
                report.errors.append(RowError(p.line, "amount", str(exc)))
                continue
            paid_at = self.writer.timestamp(p.values[0])
            values = (case_id, invoice_id, minor, invoice_currency, paid_at)
            content = digest(*values)
            found = existing.get(p.ref)
            if found is None:
                touched.append(invoice_id)
                inserts.append(
                    (self.writer.new_id(), creditor, p.ref, *values, "import", content, now)
                )
            elif found[1] == content:
                report.unchanged += 1
            else:
                touched.extend((invoice_id, found[2]))
                updates.append((*values, content, found[0]))
        self.writer.insert(
            "payments",
            ("id", "creditor_id", "ref", *PAYMENT_FIELDS, "source", "source_digest", "created_at"),
            inserts,
        )
        self.writer.update("payments", (*PAYMENT_FIELDS, "source_digest"), updates)
        self.writer.refresh_paid(touched)
        report.inserted += len(inserts)
        report.updated += len(updates)
