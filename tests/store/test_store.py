"""The store on SQLite and PostgreSQL: schema, append-only logs, tenancy, erasure, UTC times."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import DBAPIError, StatementError

from parcours.domain import AuditEntry, Creditor, Event, EventType, Money
from parcours.ingest import ImportKind, ImportReport, import_file
from parcours.ingest.importer import ImportOptions
from parcours.store.migrate import schema_is_current
from parcours.store.repositories import new_id
from parcours.store.schema import Base, CreditorRow, DebtorRow
from parcours.store.uow import UnitOfWork

NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)
DEBTOR_HEADER = "debtor_ref,name,email,phone,street,postcode,city,birth_year"
INVOICE_HEADER = "invoice_ref,debtor_ref,amount,currency,issue_date,due_date"
PAYMENT_HEADER = "invoice_ref,amount,paid_at,payment_ref"


@dataclass(frozen=True, slots=True)
class Portfolio:
    """One debtor `D1` with invoice `I1` (case `C-D1`) and one partial payment `P1`."""

    creditor: str
    debtor_name: str
    email: str
    amount: str
    paid: str


def make_portfolio(
    creditor: str,
    *,
    debtor_name: str = "Alice Martin",
    email: str = "alice@example.be",
    amount: str = "100.00",
    paid: str = "30.50",
) -> Portfolio:
    return Portfolio(creditor, debtor_name, email, amount, paid)


def write_csv(path: Path, header: str, *rows: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join((header, *rows)) + "\n", encoding="utf-8")
    return path


def debtor_row(p: Portfolio) -> str:
    return f"D1,{p.debtor_name},{p.email},0470123456,Rue Haute 1,1000,Bruxelles,1980"


def import_rows(engine: Engine, creditor: Creditor, kind: ImportKind, path: Path) -> ImportReport:
    """Import one file for `creditor` in its own unit of work, committed when allowed."""
    with UnitOfWork(engine) as uow:
        report = import_file(uow.connection(), kind, path, ImportOptions(creditor.id, "x", NOW))
        if report.file_error is None:
            uow.commit()
    return report


def store_portfolio(engine: Engine, directory: Path, p: Portfolio) -> Creditor:
    """Create the creditor and import its debtor, invoice and payment; fail on any rejection."""
    folder = directory / p.creditor
    files = [
        (ImportKind.DEBTORS, write_csv(folder / "debtors.csv", DEBTOR_HEADER, debtor_row(p))),
        (
            ImportKind.INVOICES,
            write_csv(
                folder / "invoices.csv",
                INVOICE_HEADER,
                f"I1,D1,{p.amount},EUR,2026-01-01,2026-01-31",
            ),
        ),
        (
            ImportKind.PAYMENTS,
            write_csv(folder / "payments.csv", PAYMENT_HEADER, f"I1,{p.paid},2026-02-15,P1"),
        ),
    ]
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.add(p.creditor, NOW)
        options = ImportOptions(creditor.id, creditor.name, NOW)
        for kind, path in files:
            report = import_file(uow.connection(), kind, path, options)
            assert (report.errors, report.file_error) == ([], None), report.as_dict()
        uow.commit()
    return creditor


def test_migrations_create_every_table_and_leave_the_schema_current(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert schema_is_current(engine)


def test_migrated_schema_matches_the_declarative_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def _append_one(engine: Engine, table: str) -> str:
    """Append an event or an audit entry; return its id in the form the table stores."""
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.add("Append Only", NOW)
        if table == "events":
            event = Event(new_id(), creditor.id, EventType.CASE_OPENED, NOW, payload={"n": 1})
            uow.events.append(event, NOW)
            entry_id = event.id
        else:
            entry = AuditEntry(new_id(), NOW, "test", "case.viewed", creditor.id, "case:C1")
            uow.audit.append(entry)
            entry_id = entry.id
        uow.commit()
    with engine.connect() as connection:
        stored = connection.execute(text(f"SELECT id FROM {table}")).scalar_one()
    # SQLite keeps 16 raw bytes, PostgreSQL a native uuid.
    assert (UUID(bytes=stored) if isinstance(stored, bytes) else stored) == entry_id
    return str(stored)


@pytest.mark.parametrize("table", ["events", "audit_log"])
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {table} SET creditor_id = creditor_id",
        "DELETE FROM {table}",
    ],
    ids=["update", "delete"],
)
def test_event_and_audit_logs_refuse_update_and_delete(
    engine: Engine, table: str, statement: str
) -> None:
    _append_one(engine, table)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text(statement.format(table=table)))
    with engine.connect() as connection:
        assert connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 1


@pytest.mark.parametrize("table", ["events", "audit_log"])
def test_event_and_audit_logs_accept_inserts(engine: Engine, table: str) -> None:
    _append_one(engine, table)
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.by_name("Append Only")
        assert creditor is not None
        uow.audit.append(AuditEntry(new_id(), NOW, "test", "again", creditor.id, "case:C1"))
        uow.events.append(Event(new_id(), creditor.id, EventType.PROMISE_MADE, NOW), NOW)
        uow.commit()
    with engine.connect() as connection:
        assert connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 2


@pytest.fixture
def two_tenants(engine: Engine, tmp_path: Path) -> tuple[Creditor, Creditor]:
    """Two creditors whose debtor, case, invoice and payment share the same refs."""
    first = store_portfolio(
        engine,
        tmp_path,
        make_portfolio("Alpha", debtor_name="Alice Alpha", email="alice@alpha.be", amount="100.00"),
    )
    second = store_portfolio(
        engine,
        tmp_path,
        make_portfolio(
            "Beta", debtor_name="Bob Beta", email="bob@beta.be", amount="250.00", paid="50.00"
        ),
    )
    return first, second


def test_case_queries_only_see_the_creditors_own_cases(
    engine: Engine, two_tenants: tuple[Creditor, Creditor]
) -> None:
    alpha, beta = two_tenants
    with UnitOfWork(engine) as uow:
        for creditor, balance in ((alpha, 6950), (beta, 20000)):
            summaries = uow.cases.list(creditor)
            assert [(s.ref, s.debtor_ref, s.invoices) for s in summaries] == [("C-D1", "D1", 1)]
            assert summaries[0].balance == {"EUR": Money(balance, "EUR")}
            found = uow.cases.get(creditor, "C-D1")
            assert found is not None
            case, debtor_ref = found
            assert case.creditor_id == creditor.id
            assert debtor_ref == "D1"
            assert case.balances() == {"EUR": Money(balance, "EUR")}
            status = uow.cases.status(creditor)
            assert (status.debtors, status.cases, status.invoices, status.payments) == (1, 1, 1, 1)
            assert status.open_amount == {"EUR": Money(balance, "EUR")}
            assert uow.cases.list(creditor, debtor_ref="D1") == summaries


def test_debtor_get_and_export_only_see_the_creditors_own_debtor(
    engine: Engine, two_tenants: tuple[Creditor, Creditor]
) -> None:
    alpha, beta = two_tenants
    with UnitOfWork(engine) as uow:
        for creditor, name, email in (
            (alpha, "Alice Alpha", "alice@alpha.be"),
            (beta, "Bob Beta", "bob@beta.be"),
        ):
            debtor = uow.debtors.get(creditor, "D1")
            assert debtor is not None
            assert (debtor.creditor_id, debtor.name) == (creditor.id, name)
            assert debtor.email is not None and debtor.email.value == email
            exported = uow.debtors.export(creditor, "D1")
            assert exported is not None
            assert exported["creditor"] == creditor.name
            ids = {str(creditor.id)}
            assert {exported["debtor"]["creditor_id"]} == ids
            for part in ("cases", "invoices", "payments"):
                assert len(exported[part]) == 1
                assert {row["creditor_id"] for row in exported[part]} == ids


def test_erasing_one_creditors_debtor_leaves_the_other_creditors_same_ref_intact(
    engine: Engine, two_tenants: tuple[Creditor, Creditor]
) -> None:
    alpha, beta = two_tenants
    with UnitOfWork(engine) as uow:
        erased = uow.debtors.erase(alpha, "D1", NOW)
        uow.commit()
    assert erased is not None and erased.creditor_id == alpha.id
    with UnitOfWork(engine) as uow:
        other = uow.debtors.get(beta, "D1")
        assert other is not None
        assert not other.erased
        assert other.name == "Bob Beta"
        assert other.email is not None and other.email.value == "bob@beta.be"


def test_lookups_for_an_unknown_ref_return_none(
    engine: Engine, two_tenants: tuple[Creditor, Creditor]
) -> None:
    alpha, _ = two_tenants
    with UnitOfWork(engine) as uow:
        assert uow.cases.get(alpha, "C-NOPE") is None
        assert uow.debtors.get(alpha, "NOPE") is None
        assert uow.debtors.export(alpha, "NOPE") is None
        assert uow.debtors.erase(alpha, "NOPE", NOW) is None
        assert uow.cases.list(alpha, debtor_ref="NOPE") == []


def test_erase_anonymises_personal_fields_and_keeps_the_books(
    engine: Engine, tmp_path: Path
) -> None:
    creditor = store_portfolio(engine, tmp_path, make_portfolio("Gamma"))
    with UnitOfWork(engine) as uow:
        before = uow.debtors.export(creditor, "D1")
        uow.debtors.erase(creditor, "D1", NOW)
        uow.commit()
    with UnitOfWork(engine) as uow:
        debtor = uow.debtors.get(creditor, "D1")
        after = uow.debtors.export(creditor, "D1")
        status = uow.cases.status(creditor)
    assert debtor is not None and after is not None and before is not None
    assert debtor.erased and debtor.erased_at == NOW
    assert (debtor.email, debtor.mobile, debtor.postal, debtor.birth_year) == (None,) * 4
    assert debtor.name != "Alice Martin"
    row = after["debtor"]
    for field in ("email", "phone", "street", "postcode", "city", "birth_year"):
        assert row[field] is None, field
    serialised = json.dumps(after)
    for personal in ("Alice", "Martin", "alice@example.be", "+32470123456", "Rue Haute"):
        assert personal not in serialised
    for part in ("cases", "invoices", "payments"):
        assert after[part] == before[part]
    assert [i["amount_minor"] for i in after["invoices"]] == [10000]
    assert [p["amount_minor"] for p in after["payments"]] == [3050]
    assert status.open_amount == {"EUR": Money(6950, "EUR")}


def test_an_erased_debtor_is_not_re_imported(engine: Engine, tmp_path: Path) -> None:
    p = make_portfolio("Delta")
    creditor = store_portfolio(engine, tmp_path, p)
    with UnitOfWork(engine) as uow:
        uow.debtors.erase(creditor, "D1", NOW)
        uow.commit()
    again = write_csv(tmp_path / "again.csv", DEBTOR_HEADER, debtor_row(p))
    report = import_rows(engine, creditor, ImportKind.DEBTORS, again)
    assert [(e.line, e.field) for e in report.errors] == [(2, "debtor_ref")]
    assert (report.inserted, report.updated) == (0, 0)
    with UnitOfWork(engine) as uow:
        debtor = uow.debtors.get(creditor, "D1")
    assert debtor is not None and debtor.erased and debtor.email is None


def test_export_returns_the_debtor_cases_invoices_and_payments(
    engine: Engine, tmp_path: Path
) -> None:
    creditor = store_portfolio(engine, tmp_path, make_portfolio("Epsilon"))
    with UnitOfWork(engine) as uow:
        exported = uow.debtors.export(creditor, "D1")
    assert exported is not None
    json.dumps(exported)  # JSON-ready without a fallback encoder
    assert exported["debtor"]["ref"] == "D1"
    assert exported["debtor"]["email"] == "alice@example.be"
    assert "source_digest" not in exported["debtor"]
    assert [c["ref"] for c in exported["cases"]] == ["C-D1"]
    assert [(i["ref"], i["paid_minor"]) for i in exported["invoices"]] == [("I1", 3050)]
    assert [p["ref"] for p in exported["payments"]] == ["P1"]
    assert exported["payments"][0]["invoice_id"] == exported["invoices"][0]["id"]


def test_unit_of_work_keeps_nothing_without_commit(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        uow.creditors.add("Forgotten", NOW)
        assert uow.creditors.by_name("Forgotten") is not None
    with pytest.raises(RuntimeError, match="boom"), UnitOfWork(engine) as uow:
        uow.creditors.add("Failed", NOW)
        raise RuntimeError("boom")
    with UnitOfWork(engine) as uow:
        assert uow.creditors.all() == []


def test_unit_of_work_keeps_what_was_committed(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        uow.creditors.add("Kept", NOW)
        uow.commit()
    with UnitOfWork(engine) as uow:
        assert [c.name for c in uow.creditors.all()] == ["Kept"]


def test_utc_datetime_refuses_naive_datetimes(engine: Engine) -> None:
    naive = dt.datetime(2026, 12, 1, 10, 0)  # noqa: DTZ001 - the point of the test
    with UnitOfWork(engine) as uow:
        uow.session.add(CreditorRow(id=new_id(), name="Naive", created_at=naive))
        with pytest.raises(StatementError, match="naive datetimes") as raised:
            uow.session.flush()
    assert isinstance(raised.value.orig, ValueError)


@pytest.mark.parametrize("offset_hours", [0, 2, -5])
def test_utc_datetime_returns_the_same_instant_as_aware_utc(
    engine: Engine, offset_hours: int
) -> None:
    zone = dt.timezone(dt.timedelta(hours=offset_hours))
    written = dt.datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=zone)
    with UnitOfWork(engine) as uow:
        uow.creditors.add("Clock", written)
        uow.commit()
    with UnitOfWork(engine) as uow:
        read = uow.session.scalars(select(CreditorRow.created_at)).one()
    assert read == written
    assert read.tzinfo is dt.UTC
    assert read.replace(tzinfo=None) == written.astimezone(dt.UTC).replace(tzinfo=None)


def test_bulk_imported_timestamps_read_back_as_aware_utc(engine: Engine, tmp_path: Path) -> None:
    creditor = store_portfolio(engine, tmp_path, make_portfolio("Zeta"))
    with UnitOfWork(engine) as uow:
        found = uow.cases.get(creditor, "C-D1")
        created = uow.session.scalars(select(DebtorRow.created_at)).one()
    assert found is not None
    assert found[0].opened_at == NOW and found[0].opened_at.tzinfo is dt.UTC
    assert created == NOW and created.tzinfo is dt.UTC
