"""One debtor or invoice from the API, checked and stored exactly as a CSV row would be.

The fields go through the CSV import's own `RowParser` (same normalisation, same
messages), and are written with the same columns and content digest, so a debtor sent by
the API and re-imported from a file is "unchanged", and a case is opened the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, and_, select

from parcours.domain.structured_communication import structured_communication_digits
from parcours.ingest.rows import OPTIONAL, REQUIRED, ImportKind, ImportOptions, ParsedRow, RowParser
from parcours.store.bulk import DEBTOR_FIELDS, INVOICE_FIELDS, PortfolioWriter
from parcours.store.schema import DebtorRow

__all__ = [
    "FieldProblem",
    "RowRejected",
    "Stored",
    "check_debtor",
    "check_invoice",
    "store_debtor",
    "store_invoice",
]

Stored = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    detail: str


class RowRejected(ValueError):
    """The row breaks the import's rules; `problems` name each field."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.detail}" for p in problems))
        self.problems = problems


def _check(kind: ImportKind, values: Mapping[str, str | None], options: ImportOptions) -> ParsedRow:
    columns = (*REQUIRED[kind], *OPTIONAL[kind])
    parser = RowParser(kind, columns, options)
    cells = parser.cells([values.get(name) or "" for name in columns])
    parsed, errors = parser.parse_batch([(1, cells)])
    if errors:
        raise RowRejected([FieldProblem(e.field, e.reason) for e in errors])
    return parsed[0]


def check_debtor(ref: str, values: Mapping[str, str | None], options: ImportOptions) -> ParsedRow:
    """A debtor's fields (named as the CSV columns) checked as an import row would be."""
    return _check(ImportKind.DEBTORS, {**values, "debtor_ref": ref}, options)


def check_invoice(ref: str, values: Mapping[str, str | None], options: ImportOptions) -> ParsedRow:
    """An invoice's fields (named as the CSV columns) checked as an import row would be."""
    return _check(ImportKind.INVOICES, {**values, "invoice_ref": ref}, options)


def store_debtor(connection: Connection, row: ParsedRow, options: ImportOptions) -> Stored:
    """Insert or update one checked debtor within the caller's transaction."""
    writer = PortfolioWriter(connection, options.creditor_id)
    now = writer.timestamp(options.now)
    found = writer.debtors_by_ref([row.ref]).get(row.ref)
    if found is None:
        writer.insert(
            "debtors",
            ("id", "creditor_id", "ref", *DEBTOR_FIELDS, "name_key", "source_digest",
             "created_at", "updated_at"),
            [(writer.new_id(), writer.creditor_key, row.ref, *row.values,
              row.extra[0], row.digest, now, now)],
        )  # fmt: skip
        return "created"
    key, digest, erased = found
    if erased:
        raise RowRejected([FieldProblem("debtor_ref", f"{row.ref!r} was erased (GDPR)")])
    if digest == row.digest:
        return "unchanged"
    columns = (*DEBTOR_FIELDS, "name_key", "source_digest", "updated_at")
    writer.update("debtors", columns, [(*row.values, row.extra[0], row.digest, now, key)])
    return "updated"


def store_invoice(connection: Connection, row: ParsedRow, options: ImportOptions) -> Stored:
    """Insert or update one checked invoice, opening a case for its debtor when none is
    open (`C-<debtor_ref>`, then `-2`, `-3`… as the CSV import names them)."""
    writer = PortfolioWriter(connection, options.creditor_id)
    now = writer.timestamp(options.now)
    debtor_ref = row.extra[0]
    found = writer.invoices_by_ref([row.ref]).get(row.ref)
    if found is not None and found[1] == row.digest:
        return "unchanged"
    if connection.dialect.name == "postgresql":
        # Two invoices for one new debtor at once must not both open a case.
        d = DebtorRow
        connection.execute(
            select(d.id)
            .where(and_(d.creditor_id == options.creditor_id, d.ref == debtor_ref))
            .with_for_update()
        )
    debtor = writer.debtor_cases([debtor_ref]).get(debtor_ref)
    if debtor is None:
        raise RowRejected(
            [FieldProblem("debtor_ref", f"{debtor_ref!r} is not a debtor: create it first")]
        )
    debtor_id, erased, open_case, case_count = debtor
    if erased:
        raise RowRejected([FieldProblem("debtor_ref", f"{debtor_ref!r} was erased (GDPR)")])
    if open_case is None:
        open_case = writer.new_id()
        case_ref = f"C-{debtor_ref}" + (f"-{case_count + 1}" if case_count else "")
        writer.insert(
            "cases",
            ("id", "creditor_id", "debtor_id", "ref", "status", "opened_at"),
            [(open_case, writer.creditor_key, debtor_id, case_ref, "open", now)],
        )
    if found is None:
        base = writer.reserve_ogm_bases(1)
        writer.insert(
            "invoices",
            ("id", "creditor_id", "ref", *INVOICE_FIELDS, "structured_communication",
             "source_digest", "created_at", "updated_at"),
            [(writer.new_id(), writer.creditor_key, row.ref, open_case, *row.values,
              structured_communication_digits(base), row.digest, now, now)],
        )  # fmt: skip
        return "created"
    writer.update(
        "invoices",
        (*INVOICE_FIELDS, "source_digest", "updated_at"),
        [(open_case, *row.values, row.digest, now, found[0])],
    )
    return "updated"
