"""Portfolio import on SQLite and PostgreSQL: what is stored, what is refused and why."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from parcours.domain import StructuredCommunication
from parcours.ingest import ImportKind, ImportReport, import_file
from parcours.ingest.importer import ImportOptions, report_allows_commit
from parcours.store.schema import CaseRow, DebtorRow, InvoiceRow, PaymentRow
from parcours.store.uow import UnitOfWork
from tests.conftest import NOW

DEBTOR_HEADER = (
    "debtor_ref,name,email,phone,language,country,street,postcode,city,birth_year,timezone"
)
INVOICE_HEADER = "invoice_ref,debtor_ref,amount,currency,issue_date,due_date,description"
PAYMENT_HEADER = "invoice_ref,amount,paid_at"

GOOD_DEBTORS = [
    "D1,Jan Peeters,jan.peeters@telenet.be,0475 12 34 56,nl,BE,Kerkstraat 1,2000,Antwerpen,1980,Europe/Brussels",
    "D2,Marie Dubois,,+32 486 11 22 33,fr,BE,,,,,",
    "D3,Dennis Jacobs,dennis@gmail.com,,en,,,,,1982,",
]
GOOD_INVOICES = [
    "F1,D1,120.50,EUR,2026-10-01,2026-10-31,Electricity October",
    "F2,D1,12,EUR,2026-11-01,2026-11-30,",
    "F3,D3,99.99,EUR,2026-11-01,2026-12-15,Mobile",
]


def write_csv(tmp_path: Path, name: str, header: str, rows: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def run_import(
    engine: Engine,
    kind: ImportKind,
    path: Path,
    *,
    creditor: str = "acme",
    strict: bool = False,
    now: dt.datetime = NOW,
    batch_size: int = 5000,
    parallel: bool | None = False,
) -> ImportReport:
    """Import as the CLI does: one transaction, committed only when the report allows."""
    with UnitOfWork(engine) as uow:
        owner = uow.creditors.by_name(creditor) or uow.creditors.add(creditor, now)
        options = ImportOptions(
            creditor_id=owner.id,
            creditor_name=creditor,
            now=now,
            strict=strict,
            batch_size=batch_size,
            parallel=parallel,
        )
        report = import_file(uow.connection(), kind, path, options)
        if report_allows_commit(report):
            uow.commit()
            report.stored = True
    return report


def count(engine: Engine, model: type) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(model)).scalar_one())


def load_portfolio(engine: Engine, tmp_path: Path) -> None:
    for kind, header, rows in (
        (ImportKind.DEBTORS, DEBTOR_HEADER, GOOD_DEBTORS),
        (ImportKind.INVOICES, INVOICE_HEADER, GOOD_INVOICES),
    ):
        report = run_import(engine, kind, write_csv(tmp_path, f"{kind}.csv", header, rows))
        assert report.exit_code == 0, report.errors


def errors_of(report: ImportReport) -> set[tuple[int, str]]:
    return {(e.line, e.field) for e in report.errors}


# -- what valid files store ------------------------------------------------------------------


def test_valid_portfolio_is_stored_with_cases_and_structured_communications(
    engine: Engine, tmp_path: Path
) -> None:
    load_portfolio(engine, tmp_path)
    assert count(engine, DebtorRow) == 3
    assert count(engine, CaseRow) == 2  # D1 and D3 have invoices; D2 has none yet
    with engine.connect() as connection:
        rows = connection.execute(
            select(InvoiceRow.ref, InvoiceRow.amount_minor, InvoiceRow.structured_communication)
        ).all()
        phone = connection.execute(select(DebtorRow.phone).where(DebtorRow.ref == "D1")).scalar()
    assert {ref: minor for ref, minor, _ in rows} == {"F1": 12050, "F2": 1200, "F3": 9999}
    communications = [StructuredCommunication(digits) for _, _, digits in rows]
    assert len({c.digits for c in communications}) == 3
    assert phone == "+32475123456"


def test_payments_reduce_the_balance(engine: Engine, tmp_path: Path) -> None:
    load_portfolio(engine, tmp_path)
    payments = write_csv(
        tmp_path,
        "p.csv",
        "payment_ref,invoice_ref,amount,paid_at",
        ["P1,F1,20.50,2026-10-15", "P2,F1,100,2026-11-02T09:30:00+01:00"],
    )
    report = run_import(engine, ImportKind.PAYMENTS, payments)
    assert (report.exit_code, report.inserted) == (0, 2)
    with engine.connect() as connection:
        paid = connection.execute(
            select(InvoiceRow.paid_minor).where(InvoiceRow.ref == "F1")
        ).scalar_one()
    assert paid == 12050


def test_reimport_reports_unchanged_and_updated_without_duplicates(
    engine: Engine, tmp_path: Path
) -> None:
    load_portfolio(engine, tmp_path)
    again = run_import(
        engine, ImportKind.INVOICES, write_csv(tmp_path, "i.csv", INVOICE_HEADER, GOOD_INVOICES)
    )
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    changed = [GOOD_INVOICES[0].replace("120.50", "130.00"), *GOOD_INVOICES[1:]]
    update = run_import(
        engine, ImportKind.INVOICES, write_csv(tmp_path, "i2.csv", INVOICE_HEADER, changed)
    )
    assert (update.inserted, update.updated, update.unchanged) == (0, 1, 2)
    assert count(engine, InvoiceRow) == 3
    with engine.connect() as connection:
        amount = connection.execute(
            select(InvoiceRow.amount_minor).where(InvoiceRow.ref == "F1")
        ).scalar_one()
    assert amount == 13000


def test_payment_reimport_without_payment_ref_books_nothing_twice(
    engine: Engine, tmp_path: Path
) -> None:
    load_portfolio(engine, tmp_path)
    path = write_csv(tmp_path, "p.csv", PAYMENT_HEADER, ["F1,20.50,2026-10-15", "F2,12,2026-11-20"])
    first, second = (run_import(engine, ImportKind.PAYMENTS, path) for _ in range(2))
    assert (first.inserted, second.inserted, second.unchanged) == (2, 0, 2)
    assert count(engine, PaymentRow) == 2


def test_semicolon_separated_files_with_bom_are_read(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffdebtor_ref;name\nD1;Jan\nD2;Marie\n".encode())
    report = run_import(engine, ImportKind.DEBTORS, path)
    assert (report.exit_code, report.inserted) == (0, 2)


def test_unknown_columns_are_ignored_with_a_warning(engine: Engine, tmp_path: Path) -> None:
    report = run_import(
        engine,
        ImportKind.DEBTORS,
        write_csv(tmp_path, "d.csv", "debtor_ref,name,shoe_size", ["D1,Jan,44"]),
    )
    assert report.exit_code == 0
    assert report.warnings == ["ignored unknown column(s): shoe_size"]


def test_tenants_share_references_without_seeing_each_other(engine: Engine, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "d.csv", DEBTOR_HEADER, GOOD_DEBTORS)
    a = run_import(engine, ImportKind.DEBTORS, path, creditor="alpha")
    b = run_import(engine, ImportKind.DEBTORS, path, creditor="beta")
    assert (a.inserted, b.inserted) == (3, 3)
    invoices = write_csv(tmp_path, "i.csv", INVOICE_HEADER, GOOD_INVOICES)
    assert run_import(engine, ImportKind.INVOICES, invoices, creditor="alpha").inserted == 3
    # beta's import sees only beta's debtors, and opens beta's own cases
    report = run_import(engine, ImportKind.INVOICES, invoices, creditor="beta")
    assert (report.inserted, report.side_effects["cases_opened"]) == (3, 2)


# -- every rejection reason, with line and field ---------------------------------------------

DEBTOR_REJECTIONS = [
    (",No Ref,,,,,,,,,", "debtor_ref", "is required but empty"),
    ("D" + "9" * 70 + ",Long Ref,,,,,,,,,", "debtor_ref", "longer than 64"),
    ("D1,Duplicate,,,,,,,,,", "debtor_ref", "appears again (first on line 2)"),
    ("D9,,,,,,,,,,", "name", "is required but empty"),
    ("D9," + "x" * 201 + ",,,,,,,,,", "name", "longer than 200"),
    ("D9,Bad Mail,jan@@x.be,,,,,,,,", "email", "not a valid email address"),
    ("D9,Bad Mail,jan@localhost,,,,,,,,", "email", "not a valid email address"),
    ("D9,Bad Phone,,call me,,,,,,,", "phone", "not a phone number"),
    ("D9,Bad Phone,,0475 12,,BE,,,,,", "phone", "not a valid phone number for BE"),
    ("D9,Wrong Country Phone,,0475 12 34 56,,LU,,,,,", "phone", "not a valid phone number for LU"),
    ("D9,Bad Language,,,de,,,,,,", "language", "not one of the supported languages"),
    ("D9,Bad Country,,,,XX,,,,,", "country", "not an ISO 3166 country code"),
    ("D9,Bad Year,,,,,,,,19x0,", "birth_year", "not a four-digit year"),
    ("D9,Too Young,,,,,,,,2020,", "birth_year", "not between 1900"),
    ("D9,Bad Zone,,,,,,,,,Europe/Bruxelles", "timezone", "not an IANA time zone"),
    ("D9,No Postcode,,,,BE,Kerkstraat 1,,Gent,,", "postcode", "rest of the postal address"),
    ("D9,Too Few Fields", "row", "has 2 fields where the header has 11"),
]


@pytest.mark.parametrize(("row", "field", "reason"), DEBTOR_REJECTIONS)
def test_each_bad_debtor_row_is_rejected_and_the_good_ones_stored(
    engine: Engine, tmp_path: Path, row: str, field: str, reason: str
) -> None:
    path = write_csv(tmp_path, "d.csv", DEBTOR_HEADER, [GOOD_DEBTORS[0], row, GOOD_DEBTORS[1]])
    report = run_import(engine, ImportKind.DEBTORS, path)
    assert report.exit_code == 2
    assert report.stored
    assert [(e.line, e.field) for e in report.errors] == [(3, field)]
    assert reason in report.errors[0].reason
    assert (report.inserted, report.rejected) == (2, 1)
    assert count(engine, DebtorRow) == 2


INVOICE_REJECTIONS = [
    (",D1,10.00,EUR,2026-11-01,2026-11-30,", "invoice_ref", "is required but empty"),
    ("F1,D1,10.00,EUR,2026-11-01,2026-11-30,", "invoice_ref", "appears again (first on line 2)"),
    ("F9,,10.00,EUR,2026-11-01,2026-11-30,", "debtor_ref", "is required but empty"),
    ("F9,D404,10.00,EUR,2026-11-01,2026-11-30,", "debtor_ref", "not a debtor of acme"),
    ("F9,D1,,EUR,2026-11-01,2026-11-30,", "amount", "is required but empty"),
    ('F9,D1,"10,50",EUR,2026-11-01,2026-11-30,', "amount", "'.' as decimal separator"),
    ("F9,D1,-10.00,EUR,2026-11-01,2026-11-30,", "amount", "is not a number like 1234.50"),
    ("F9,D1,0.00,EUR,2026-11-01,2026-11-30,", "amount", "not a positive amount"),
    ("F9,D1,10.005,EUR,2026-11-01,2026-11-30,", "amount", "more than 2 decimals for EUR"),
    ("F9,D1,1e3,EUR,2026-11-01,2026-11-30,", "amount", "is not a number like 1234.50"),
    ("F9,D1,10.5,JPY,2026-11-01,2026-11-30,", "amount", "more than 0 decimals for JPY"),
    ("F9,D1,10.00,,2026-11-01,2026-11-30,", "currency", "is required but empty"),
    ("F9,D1,10.00,EURO,2026-11-01,2026-11-30,", "currency", "not an ISO 4217 currency"),
    ("F9,D1,10.00,EUR,01/11/2026,2026-11-30,", "issue_date", "not an ISO date"),
    ("F9,D1,10.00,EUR,2026-02-30,2026-11-30,", "issue_date", "not a calendar date"),
    ("F9,D1,10.00,EUR,2026-11-01,,", "due_date", "is required but empty"),
    ("F9,D1,10.00,EUR,2026-11-01,2026-10-30,", "due_date", "before the issue date"),
    ("F9,D1,10.00,EUR,2026-11-01,2026-11-30," + "x" * 501, "description", "longer than 500"),
]


@pytest.mark.parametrize(("row", "field", "reason"), INVOICE_REJECTIONS)
def test_each_bad_invoice_row_is_rejected_and_the_good_ones_stored(
    engine: Engine, tmp_path: Path, row: str, field: str, reason: str
) -> None:
    load_portfolio(engine, tmp_path)
    rows = [GOOD_INVOICES[0], row, "F10,D2,5.00,EUR,2026-11-01,2026-11-30,"]
    report = run_import(
        engine, ImportKind.INVOICES, write_csv(tmp_path, "x.csv", INVOICE_HEADER, rows)
    )
    assert report.exit_code == 2
    assert [(e.line, e.field) for e in report.errors] == [(3, field)]
    assert reason in report.errors[0].reason
    assert (report.inserted, report.unchanged, report.rejected) == (1, 1, 1)
    assert count(engine, InvoiceRow) == 4


PAYMENT_REJECTIONS = [
    ("P9,,10.00,2026-11-05,", "invoice_ref", "is required but empty"),
    ("P9,F404,10.00,2026-11-05,", "invoice_ref", "not an invoice of acme"),
    ("P9,F1,,2026-11-05,", "amount", "is required but empty"),
    ("P9,F1,10.001,2026-11-05,", "amount", "more than 2 decimals for EUR"),
    ("P9,F1,-5,2026-11-05,", "amount", "is not a number like 1234.50"),
    ("P9,F1,10.00,,", "paid_at", "is required but empty"),
    ("P9,F1,10.00,yesterday,", "paid_at", "not an ISO date or date-time"),
    ("P9,F1,10.00,0001-01-01T00:00:00+05:00,", "paid_at", "out of the range of dates"),
    ("P9,F1,10.00,2027-01-01,", "paid_at", "is in the future"),
    ("P9,F1,10.00,2026-11-05,GBP", "currency", "differs from the invoice's currency EUR"),
    ("P9,F1,10.00,2026-11-05,ZZZ", "currency", "not an ISO 4217 currency"),
    ("P1,F2,1.00,2026-11-05,", "payment_ref", "appears again (first on line 2)"),
]


@pytest.mark.parametrize(("row", "field", "reason"), PAYMENT_REJECTIONS)
def test_each_bad_payment_row_is_rejected_and_the_good_ones_stored(
    engine: Engine, tmp_path: Path, row: str, field: str, reason: str
) -> None:
    load_portfolio(engine, tmp_path)
    header = "payment_ref,invoice_ref,amount,paid_at,currency"
    rows = ["P1,F1,20.00,2026-11-05,EUR", row, "P2,F2,2.00,2026-11-06,"]
    report = run_import(engine, ImportKind.PAYMENTS, write_csv(tmp_path, "p.csv", header, rows))
    assert report.exit_code == 2
    assert [(e.line, e.field) for e in report.errors] == [(3, field)]
    assert reason in report.errors[0].reason
    assert (report.inserted, report.rejected) == (2, 1)
    assert count(engine, PaymentRow) == 2


def test_a_repeated_payment_without_ref_is_rejected(engine: Engine, tmp_path: Path) -> None:
    load_portfolio(engine, tmp_path)
    rows = ["F1,20.00,2026-11-05", "F1,20.00,2026-11-05"]
    report = run_import(
        engine, ImportKind.PAYMENTS, write_csv(tmp_path, "p.csv", PAYMENT_HEADER, rows)
    )
    assert [(e.line, e.field) for e in report.errors] == [(3, "row")]
    assert "repeats the payment of line 2" in report.errors[0].reason


def test_rows_are_checked_across_batches(engine: Engine, tmp_path: Path) -> None:
    rows = [f"D{n},Name {n},,,,,,,,," for n in range(25)] + ["D3,Again,,,,,,,,,"]
    report = run_import(
        engine, ImportKind.DEBTORS, write_csv(tmp_path, "d.csv", DEBTOR_HEADER, rows), batch_size=7
    )
    assert (report.inserted, report.rejected) == (25, 1)
    assert report.errors[0].reason == "'D3' appears again (first on line 5)"


def test_strict_mode_stores_nothing_when_a_row_is_bad(engine: Engine, tmp_path: Path) -> None:
    rows = [*GOOD_DEBTORS, "D9,Bad Mail,jan@@x.be,,,,,,,,"]
    report = run_import(
        engine, ImportKind.DEBTORS, write_csv(tmp_path, "d.csv", DEBTOR_HEADER, rows), strict=True
    )
    assert (report.exit_code, report.stored, report.inserted) == (2, False, 0)
    assert errors_of(report) == {(5, "email")}
    assert count(engine, DebtorRow) == 0


# -- files that cannot be imported at all ----------------------------------------------------


def _file_cases(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("debtor_ref,name\nD1,Jan\nD2,Ren\xe9\n".encode("latin-1"))
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    xlsx = tmp_path / "book.csv"
    xlsx.write_bytes(b"PK\x03\x04rest-of-a-zip")
    return {
        "wrong encoding": (latin1, "not UTF-8 text: line 3 has byte 0xe9"),
        "empty file": (empty, "is empty"),
        "header only": (
            write_csv(tmp_path, "h.csv", DEBTOR_HEADER, []),
            "has a header but no rows",
        ),
        "missing column": (
            write_csv(tmp_path, "m.csv", "debtor_ref,email", ["D1,a@b.be"]),
            "lacks required column(s) name",
        ),
        "another kind": (
            write_csv(tmp_path, "i.csv", INVOICE_HEADER, GOOD_INVOICES),
            "looks like a invoices file",
        ),
        "spreadsheet": (xlsx, "is a ZIP archive"),
        "repeated column": (
            write_csv(tmp_path, "r.csv", "debtor_ref,name,name", ["D1,Jan,Jan"]),
            "repeats column(s) name",
        ),
        "broken quoting": (
            write_csv(tmp_path, "q.csv", "debtor_ref,name", ['D1,"Jan', "D2,Marie"]),
            "broken CSV",
        ),
        "missing file": (tmp_path / "nope.csv", "cannot open"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong encoding",
        "empty file",
        "header only",
        "missing column",
        "another kind",
        "spreadsheet",
        "repeated column",
        "broken quoting",
        "missing file",
    ],
)
def test_unusable_files_get_one_clear_message_and_store_nothing(
    engine: Engine, tmp_path: Path, case: str
) -> None:
    path, message = _file_cases(tmp_path)[case]
    report = run_import(engine, ImportKind.DEBTORS, path)
    assert report.file_error is not None
    assert message in report.file_error
    assert (report.exit_code, report.stored) == (2, False)
    assert count(engine, DebtorRow) == 0


@pytest.mark.parametrize("parallel", [False, True], ids=["in-process", "workers"])
def test_an_encoding_error_late_in_the_file_rolls_back_earlier_batches(
    engine: Engine, tmp_path: Path, parallel: bool
) -> None:
    path = tmp_path / "late.csv"
    good = "".join(f"D{n},Name {n}\n" for n in range(30))
    path.write_bytes(b"debtor_ref,name\n" + good.encode() + "D99,Ren\xe9\n".encode("latin-1"))
    report = run_import(engine, ImportKind.DEBTORS, path, batch_size=10, parallel=parallel)
    assert report.file_error is not None and "line 32" in report.file_error
    assert count(engine, DebtorRow) == 0


# -- invariants ------------------------------------------------------------------------------

_GOOD = st.sampled_from(
    ["{ref},Jan Peeters,jan@telenet.be,0475 12 34 56,nl,BE,,,,1980,", "{ref},Marie,,,fr,,,,,,"]
)
_BAD = st.sampled_from(
    ["{ref},,,,,,,,,,", "{ref},Jan,bad@,,,,,,,,", "{ref},Jan,,999,,,,,,,", "{ref},Jan,,,xx,,,,,,"]
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.tuples(st.booleans(), _GOOD, _BAD), min_size=1, max_size=30))
def test_stored_rows_are_exactly_the_valid_ones_and_reimport_changes_nothing(
    engine: Engine, tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[bool, str, str]]
) -> None:
    """Whatever the mix, valid rows are stored once, invalid rows are reported by line."""
    tmp = tmp_path_factory.mktemp("prop")
    creditor = f"c{tmp.name}"
    lines = [(good if ok else bad).format(ref=f"R{n}") for n, (ok, good, bad) in enumerate(rows)]
    path = write_csv(tmp, "d.csv", DEBTOR_HEADER, lines)
    first = run_import(engine, ImportKind.DEBTORS, path, creditor=creditor, batch_size=4)
    valid = sum(ok for ok, _, _ in rows)
    assert first.inserted == valid
    assert {e.line for e in first.errors} == {n + 2 for n, (ok, _, _) in enumerate(rows) if not ok}
    second = run_import(engine, ImportKind.DEBTORS, path, creditor=creditor, batch_size=4)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, valid)


def test_rejections_written_as_csv_name_line_field_and_reason(
    engine: Engine, tmp_path: Path
) -> None:
    rows = ["D1,Jan,bad@,,,,,,,,"]
    report = run_import(
        engine, ImportKind.DEBTORS, write_csv(tmp_path, "d.csv", DEBTOR_HEADER, rows)
    )
    out = tmp_path / "errors.csv"
    report.write_errors_csv(out)
    with out.open(encoding="utf-8") as handle:
        assert list(csv.reader(handle))[1][:2] == ["2", "email"]


def test_a_generated_portfolio_imports_without_a_single_rejection(
    engine: Engine, tmp_path: Path
) -> None:
    """The generator's files are what real imports look like: all of it must go in."""
    from parcours.sim.portfolio import generate_portfolio

    summary = generate_portfolio(tmp_path, debtors=300, seed=3, as_of=dt.date(2026, 11, 30))
    for kind in ImportKind:
        report = run_import(engine, kind, tmp_path / f"{kind.value}.csv")
        assert report.errors == []
        assert report.file_error is None
    assert count(engine, DebtorRow) == summary.debtors
    assert count(engine, InvoiceRow) == summary.invoices
    assert count(engine, PaymentRow) == summary.payments
