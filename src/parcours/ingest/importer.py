"""Stream a portfolio CSV into the store in batches: validate, look up, insert or update.

Each batch costs a few set-based queries whatever its size (see `store.bulk`). Rows are
checked in two phases: field by field as they are read, then against the store (known
debtor, invoice currency) once per batch. The caller owns the transaction: nothing here
commits, so a file-level failure or a `--strict` rejection rolls everything back.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import hashlib
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uuid_utils
from sqlalchemy import Connection

from parcours.domain.structured_communication import structured_communication_digits
from parcours.ingest.csvfile import CsvFile, Header, open_csv
from parcours.ingest.fields import (
    FieldError,
    parse_birth_year,
    parse_country,
    parse_currency,
    parse_date,
    parse_email,
    parse_language,
    parse_money,
    parse_phone,
    parse_text,
    parse_timestamp,
    parse_timezone,
)
from parcours.ingest.report import FileRejected, ImportReport, RowError
from parcours.store.bulk import DEBTOR_FIELDS, INVOICE_FIELDS, PAYMENT_FIELDS, PortfolioWriter

__all__ = ["ImportKind", "ImportOptions", "import_file"]


class ImportKind(enum.StrEnum):
    DEBTORS = "debtors"
    INVOICES = "invoices"
    PAYMENTS = "payments"


REQUIRED: dict[ImportKind, tuple[str, ...]] = {
    ImportKind.DEBTORS: ("debtor_ref", "name"),
    ImportKind.INVOICES: (
        "invoice_ref",
        "debtor_ref",
        "amount",
        "currency",
        "issue_date",
        "due_date",
    ),
    ImportKind.PAYMENTS: ("invoice_ref", "amount", "paid_at"),
}
OPTIONAL: dict[ImportKind, tuple[str, ...]] = {
    ImportKind.DEBTORS: (
        "email",
        "phone",
        "language",
        "country",
        "street",
        "postcode",
        "city",
        "birth_year",
        "timezone",
    ),
    ImportKind.INVOICES: ("description",),
    ImportKind.PAYMENTS: ("payment_ref", "currency"),
}
MAX_REF = 64


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """How to read rows that leave something out, and the clock to judge dates by."""

    creditor_id: Any
    creditor_name: str
    now: dt.datetime
    default_region: str = "BE"
    default_language: str = "fr"
    default_zone: zoneinfo.ZoneInfo = field(
        default_factory=lambda: zoneinfo.ZoneInfo("Europe/Brussels")
    )
    strict: bool = False
    batch_size: int = 5000


@dataclass(slots=True)
class _Parsed:
    """A row that passed the field checks: its key, storage values and content digest."""

    line: int
    ref: str
    values: tuple[Any, ...]
    digest: int
    extra: tuple[Any, ...] = ()


def import_file(
    connection: Connection,
    kind: ImportKind,
    path: Path,
    options: ImportOptions,
    *,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import one CSV of `kind` for one creditor within the caller's transaction.

    Returns the report; the caller commits only when `report_allows_commit(report)`.
    """
    report = ImportReport(
        kind=kind.value, file=path.name, creditor=options.creditor_name, strict=options.strict
    )
    try:
        csv_file = open_csv(path, REQUIRED[kind])
    except FileRejected as exc:
        report.file_error = str(exc)
        return report
    try:
        _check_header(kind, csv_file, report)
        job = _Job(kind, csv_file.header, options, PortfolioWriter(connection, options.creditor_id))
        for batch in _batches(csv_file, job, report, options.batch_size):
            if not (options.strict and report.errors):
                job.store(batch, report)
            if progress is not None:
                progress(csv_file.position())
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


def _batches(
    csv_file: CsvFile, job: _Job, report: ImportReport, size: int
) -> Iterator[list[_Parsed]]:
    width = len(csv_file.header.columns)
    batch: list[_Parsed] = []
    for line, fields in csv_file.rows():
        report.rows += 1
        if len(fields) != width:
            report.errors.append(
                RowError(line, "row", f"has {len(fields)} fields where the header has {width}")
            )
            continue
        parsed = job.parse(line, fields, report.errors)
        if parsed is not None:
            batch.append(parsed)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _digest(*values: Any) -> int:
    """A stable 64-bit digest of a row's stored content (Python's hash() is salted)."""
    text = "\x1f".join("" if v is None else str(v) for v in values)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), signed=True)


def _new_id() -> str:
    return uuid_utils.uuid7().hex


class _Job:
    """Per-kind parsing and storing, with the state one import needs across batches."""

    def __init__(
        self, kind: ImportKind, header: Header, options: ImportOptions, writer: PortfolioWriter
    ) -> None:
        self.kind = kind
        self.options = options
        self.writer = writer
        self.now = writer.timestamp(options.now)
        self.today = options.now.astimezone(options.default_zone).date()
        # ref → first line: duplicates inside one file are ambiguous, so later ones are refused.
        self.seen: dict[str, int] = {}
        columns = (*REQUIRED[kind], *OPTIONAL[kind])
        self.at = {name: header.get(name) for name in columns}
        self.parse: Callable[[int, list[str], list[RowError]], _Parsed | None] = {
            ImportKind.DEBTORS: self._parse_debtor,
            ImportKind.INVOICES: self._parse_invoice,
            ImportKind.PAYMENTS: self._parse_payment,
        }[kind]
        self.store: Callable[[list[_Parsed], ImportReport], None] = {
            ImportKind.DEBTORS: self._store_debtors,
            ImportKind.INVOICES: self._store_invoices,
            ImportKind.PAYMENTS: self._store_payments,
        }[kind]

    # -- shared field handling -----------------------------------------------------------

    def _values(self, fields: list[str]) -> dict[str, str]:
        return {name: ("" if i is None else fields[i].strip()) for name, i in self.at.items()}

    def _ref(
        self, name: str, value: str, line: int, errors: list[RowError], register: bool = True
    ) -> str | None:
        if not value:
            errors.append(RowError(line, name, "is required but empty"))
            return None
        if len(value) > MAX_REF:
            errors.append(RowError(line, name, f"is longer than {MAX_REF} characters"))
            return None
        if register:
            first = self.seen.setdefault(value, line)
            if first != line:
                errors.append(
                    RowError(line, name, f"{value!r} appears again (first on line {first})")
                )
                return None
        return value

    @staticmethod
    def _optional(
        name: str,
        v: dict[str, str],
        line: int,
        errors: list[RowError],
        parse: Callable[[str], Any],
    ) -> Any:
        """The parsed value, None when empty; a failure becomes a row error."""
        if not v[name]:
            return None
        try:
            return parse(v[name])
        except FieldError as exc:
            errors.append(RowError(line, name, str(exc)))
            return None

    def _required(
        self,
        name: str,
        v: dict[str, str],
        line: int,
        errors: list[RowError],
        parse: Callable[[str], Any],
    ) -> Any:
        if not v[name]:
            errors.append(RowError(line, name, "is required but empty"))
            return None
        return self._optional(name, v, line, errors, parse)

    # -- debtors -------------------------------------------------------------------------

    def _parse_debtor(self, line: int, fields: list[str], errors: list[RowError]) -> _Parsed | None:
        v = self._values(fields)
        before = len(errors)
        ref = self._ref("debtor_ref", v["debtor_ref"], line, errors)
        name = self._required(
            "name", v, line, errors, functools.partial(parse_text, max_length=200)
        )
        country = self._optional("country", v, line, errors, parse_country)
        region = country or self.options.default_region
        language = (
            self._optional("language", v, line, errors, parse_language)
            or self.options.default_language
        )
        email = self._optional("email", v, line, errors, parse_email)
        phone = self._optional("phone", v, line, errors, lambda t: parse_phone(t, region))
        timezone = self._optional("timezone", v, line, errors, parse_timezone)
        birth_year = self._optional(
            "birth_year", v, line, errors, lambda t: parse_birth_year(t, self.today)
        )
        address = [
            self._optional(part, v, line, errors, functools.partial(parse_text, max_length=limit))
            for part, limit in (("street", 200), ("postcode", 16), ("city", 100))
        ]
        if any(address) and not all(address):
            missing = [
                p for p, a in zip(("street", "postcode", "city"), address, strict=True) if not a
            ]
            errors.append(
                RowError(line, missing[0], "is empty but the rest of the postal address is given")
            )
        if len(errors) > before or ref is None:
            return None
        values = (
            name,
            language,
            country,
            timezone,
            birth_year,
            email,
            phone,
            *address,
        )
        return _Parsed(line, ref, values, _digest(*values))

    def _store_debtors(self, batch: list[_Parsed], report: ImportReport) -> None:
        existing = self.writer.debtors_by_ref([p.ref for p in batch])
        inserts, updates = [], []
        creditor, now = self.writer.creditor_hex, self.now
        for p in batch:
            found = existing.get(p.ref)
            if found is None:
                inserts.append((_new_id(), creditor, p.ref, *p.values, p.digest, now, now))
            elif found[2]:
                report.errors.append(
                    RowError(
                        p.line, "debtor_ref", f"{p.ref!r} was erased (GDPR) and is not re-imported"
                    )
                )
            elif found[1] == p.digest:
                report.unchanged += 1
            else:
                updates.append((*p.values, p.digest, now, found[0].hex))
        self.writer.insert(
            "debtors",
            (
                "id",
                "creditor_id",
                "ref",
                *DEBTOR_FIELDS,
                "source_digest",
                "created_at",
                "updated_at",
            ),
            inserts,
        )
        self.writer.update("debtors", (*DEBTOR_FIELDS, "source_digest", "updated_at"), updates)
        report.inserted += len(inserts)
        report.updated += len(updates)

    # -- invoices ------------------------------------------------------------------------

    def _parse_invoice(
        self, line: int, fields: list[str], errors: list[RowError]
    ) -> _Parsed | None:
        v = self._values(fields)
        before = len(errors)
        ref = self._ref("invoice_ref", v["invoice_ref"], line, errors)
        debtor_ref = self._ref("debtor_ref", v["debtor_ref"], line, errors, register=False)
        currency = self._required("currency", v, line, errors, parse_currency)
        amount = None
        if currency is not None:
            amount = self._required("amount", v, line, errors, lambda a: parse_money(a, currency))
        issue = self._required("issue_date", v, line, errors, parse_date)
        due = self._required("due_date", v, line, errors, parse_date)
        if issue and due and due < issue:
            errors.append(RowError(line, "due_date", f"{due} is before the issue date {issue}"))
        description = self._optional(
            "description", v, line, errors, functools.partial(parse_text, max_length=500)
        )
        if len(errors) > before or ref is None:
            return None
        values = (amount, currency, issue, due, description)
        return _Parsed(line, ref, values, _digest(debtor_ref, *values), (debtor_ref,))

    def _store_invoices(self, batch: list[_Parsed], report: ImportReport) -> None:
        debtors = self.writer.debtor_cases(list({p.extra[0] for p in batch}))
        existing = self.writer.invoices_by_ref([p.ref for p in batch])
        creditor, now = self.writer.creditor_hex, self.now
        new_cases: dict[str, str] = {}
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
                case_id = open_case.hex
            elif debtor_ref in new_cases:
                case_id = new_cases[debtor_ref]
            else:
                case_id = new_cases[debtor_ref] = _new_id()
                case_ref = f"C-{debtor_ref}" + (f"-{case_count + 1}" if case_count else "")
                case_rows.append((case_id, creditor, debtor_id.hex, case_ref, "open", now))
            found = existing.get(p.ref)
            if found is None:
                inserts.append((p, case_id))
            elif found[1] == p.digest:
                report.unchanged += 1
            else:
                updates.append((case_id, *p.values, p.digest, now, found[0].hex))
        self.writer.insert(
            "cases", ("id", "creditor_id", "debtor_id", "ref", "status", "opened_at"), case_rows
        )
        first_base = self.writer.reserve_ogm_bases(len(inserts)) if inserts else 0
        rows = [
            (
                _new_id(),
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

    # -- payments ------------------------------------------------------------------------

    def _parse_payment(
        self, line: int, fields: list[str], errors: list[RowError]
    ) -> _Parsed | None:
        v = self._values(fields)
        before = len(errors)
        invoice_ref = self._ref("invoice_ref", v["invoice_ref"], line, errors, register=False)
        amount = v["amount"]
        if not amount:
            errors.append(RowError(line, "amount", "is required but empty"))
        paid_at = self._required(
            "paid_at", v, line, errors, lambda t: parse_timestamp(t, self.options.default_zone)
        )
        if paid_at is not None and paid_at > self.options.now:
            errors.append(RowError(line, "paid_at", f"{v['paid_at']!r} is in the future"))
        currency = self._optional("currency", v, line, errors, parse_currency)
        if len(errors) > before or invoice_ref is None:
            return None
        ref = v["payment_ref"]
        if ref:
            if self._ref("payment_ref", ref, line, errors) is None:
                return None
        else:
            # Without a payment_ref, the row's own content is its identity on re-import.
            ref = "H" + f"{_digest(invoice_ref, amount, paid_at) & (2**63 - 1):016x}"
            first = self.seen.setdefault(ref, line)
            if first != line:
                errors.append(
                    RowError(
                        line,
                        "row",
                        f"repeats the payment of line {first} (same invoice_ref, amount and "
                        "paid_at; add a payment_ref column if both are real)",
                    )
                )
                return None
        return _Parsed(line, ref, (paid_at,), 0, (invoice_ref, amount, currency))

    def _store_payments(self, batch: list[_Parsed], report: ImportReport) -> None:
        invoices = self.writer.invoices_by_ref(list({p.extra[0] for p in batch}))
        existing = self.writer.payments_by_ref([p.ref for p in batch])
        creditor, now = self.writer.creditor_hex, self.now
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
            invoice_id, _, invoice_currency = invoice
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
            values = (invoice_id.hex, minor, invoice_currency, paid_at)
            digest = _digest(*values)
            found = existing.get(p.ref)
            if found is None:
                touched.append(invoice_id)
                inserts.append((_new_id(), creditor, p.ref, *values, "import", digest, now))
            elif found[1] == digest:
                report.unchanged += 1
            else:
                touched.extend((invoice_id, found[2]))
                updates.append((*values, digest, found[0].hex))
        self.writer.insert(
            "payments",
            ("id", "creditor_id", "ref", *PAYMENT_FIELDS, "source", "source_digest", "created_at"),
            inserts,
        )
        self.writer.update("payments", (*PAYMENT_FIELDS, "source_digest"), updates)
        self.writer.refresh_paid(touched)
        report.inserted += len(inserts)
        report.updated += len(updates)
