"""Bank statements booked on SQLite and PostgreSQL: matching by structured communication,
free text, reference and score; the unmatched queue; part, over and reversed payments;
re-imports; bad files; and a payment that stops the journey at the next tick."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from parcours.ingest import ImportKind
from parcours.payments.camt import write_camt
from parcours.payments.coda import write_coda
from parcours.payments.statements import Statement, StatementError, StatementLine
from parcours.runtime.payments import MatchError, import_statement, match_line
from parcours.sim.statement import for_coda, synthetic_statement
from parcours.store.schema import (
    BankTransactionRow,
    CaseRow,
    EnrolmentRow,
    EventRow,
    InvoiceRow,
    OutboxRow,
    PaymentRow,
    StatementRow,
)
from parcours.store.uow import UnitOfWork
from tests.runtime.test_tick import START, count, load, rows, tick

ACCOUNT = "BE71096123456769"
DAY = dt.date(2026, 12, 3)
NOW = dt.datetime(2026, 12, 4, 8, 0, tzinfo=dt.UTC)


def creditor(engine: Engine) -> Any:
    with UnitOfWork(engine) as uow:
        found = uow.creditors.by_name("acme")
        assert found is not None
        return found.id


def ogm(engine: Engine, invoice_ref: str) -> str:
    with engine.connect() as connection:
        return str(
            connection.execute(
                select(InvoiceRow.structured_communication).where(InvoiceRow.ref == invoice_ref)
            ).scalar_one()
        )


def paid(engine: Engine, invoice_ref: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(InvoiceRow.paid_minor).where(InvoiceRow.ref == invoice_ref)
            ).scalar_one()
        )


def line(ref: str, amount: int, **fields: Any) -> StatementLine:
    return StatementLine(ref=ref, booked_on=DAY, amount_minor=amount, currency="EUR", **fields)


def statement(*lines: StatementLine, sid: str = "2026-12-03") -> Statement:
    return Statement(
        format="camt.053.001.08",
        account_iban=ACCOUNT,
        statement_id=sid,
        created_on=DAY,
        currency="EUR",
        opening_minor=0,
        closing_minor=sum(x.amount_minor for x in lines),
        lines=list(lines),
    )


def book(engine: Engine, *lines: StatementLine, now: dt.datetime = NOW) -> Any:
    [report] = import_statement(engine, creditor(engine), write_camt([statement(*lines)]), now)
    return report


@pytest.fixture
def loaded(engine: Engine, tmp_path: Path) -> Engine:
    load(engine, tmp_path)
    return engine


def test_a_structured_communication_pays_its_invoice(loaded: Engine) -> None:
    report = book(loaded, line("L1", 12_000, structured=ogm(loaded, "F1")))
    assert report.booked == {"ogm": 1} and report.cases_paid == 1
    assert paid(loaded, "F1") == 12_000
    types = [t for (t,) in rows(loaded, EventRow.type)]
    assert types.count("payment.booked") == 1 and types.count("case.paid") == 1
    [(status, method)] = rows(loaded, BankTransactionRow.status, BankTransactionRow.method)
    assert (status, method) == ("matched", "ogm")


def test_the_same_statement_twice_books_nothing_twice(loaded: Engine) -> None:
    first = line("L1", 12_000, structured=ogm(loaded, "F1"))
    book(loaded, first)
    again = book(loaded, first, line("L2", 8_000, structured=ogm(loaded, "F2")))
    assert again.already_imported == 1 and again.booked == {"ogm": 1}
    assert count(loaded, PaymentRow) == 2 and paid(loaded, "F1") == 12_000
    assert count(loaded, BankTransactionRow) == 2 and count(loaded, StatementRow) == 2


def test_text_references_and_scores_find_the_case(loaded: Engine) -> None:
    f2 = ogm(loaded, "F2")
    report = book(
        loaded,
        line("T1", 8_000, text=f"facture +++{f2[:3]}/{f2[3:7]}/{f2[7:]}+++ merci"),
        line("T2", 30_000, text="payment for file c-d3"),
        line("T3", 12_000, text="paiement", counterparty_name="MARTIN ALICE"),
    )
    assert report.booked == {"ogm_text": 1, "ref": 1, "fuzzy": 1}
    assert (paid(loaded, "F1"), paid(loaded, "F2"), paid(loaded, "F3")) == (12_000, 8_000, 30_000)
    scores = [s for m, s in rows(loaded, BankTransactionRow.method, BankTransactionRow.score)]
    assert any(s is not None and s >= 0.7 for s in scores)


def test_what_nobody_recognises_waits_for_a_person(loaded: Engine) -> None:
    report = book(loaded, line("U1", 4_321, text="virement", counterparty_name="Someone Else"))
    assert report.unmatched == 1 and not report.booked
    [(status, reason)] = rows(loaded, BankTransactionRow.status, BankTransactionRow.reason)
    assert status == "unmatched" and reason
    who = creditor(loaded)
    with pytest.raises(MatchError, match="no case"):
        match_line(loaded, who, "U1", "C-NOPE", NOW, "agent:ann")
    with pytest.raises(MatchError, match="no statement line"):
        match_line(loaded, who, "U9", "C-D2", NOW, "agent:ann")
    assert match_line(loaded, who, "U1", "C-D2", NOW, "agent:ann") == (4_321, "EUR")
    assert paid(loaded, "F2") == 4_321
    [(status, method)] = rows(loaded, BankTransactionRow.status, BankTransactionRow.method)
    assert (status, method) == ("matched", "manual")
    with pytest.raises(MatchError, match="matched"):
        match_line(loaded, who, "U1", "C-D2", NOW, "agent:ann")


def test_part_and_over_payments(loaded: Engine) -> None:
    report = book(
        loaded,
        line("P1", 5_000, structured=ogm(loaded, "F1")),
        line("P2", 10_000, structured=ogm(loaded, "F2")),
    )
    assert report.booked_minor == 15_000 and report.credit_minor == 2_000
    assert report.cases_paid == 1  # Bruno's; Alice still owes 70.00
    assert (paid(loaded, "F1"), paid(loaded, "F2")) == (5_000, 8_000)
    credits = [
        a for i, a in rows(loaded, PaymentRow.invoice_id, PaymentRow.amount_minor) if i is None
    ]
    assert credits == [2_000]


def test_debits_and_foreign_currencies_are_not_booked(loaded: Engine) -> None:
    report = book(
        loaded,
        line("D1", -5_000, text="bank fees"),
        dataclasses.replace(line("X1", 12_000, structured=ogm(loaded, "F1")), currency="USD"),
    )
    assert report.ignored == {"debit": 1, "foreign currency": 1} and not report.booked
    reasons = {r for (r,) in rows(loaded, BankTransactionRow.reason)}
    assert any("USD" in r and "EUR" in r for r in reasons)
    assert paid(loaded, "F1") == 0


def test_a_reversal_makes_the_case_owe_again(loaded: Engine, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    tick(loaded, START, outbox)
    original = line("R1", 12_000, structured=ogm(loaded, "F1"), end_to_end_id="E2E-1")
    book(loaded, original)
    tick(loaded, START + dt.timedelta(days=4), outbox)
    assert ("paid",) in rows(loaded, EnrolmentRow.exit_reason)
    report = book(
        loaded,
        line("R2", -12_000, reversal=True, end_to_end_id="E2E-1"),
        now=NOW + dt.timedelta(days=1),
    )
    assert report.reversals == 1 and paid(loaded, "F1") == 0
    assert ("payment.reversed",) in rows(loaded, EventRow.type)
    result, _ = tick(loaded, START + dt.timedelta(days=5), outbox)
    assert result.enrolled == 1  # Alice's case is back in a journey


def test_a_bad_file_books_nothing(loaded: Engine) -> None:
    good = write_camt([statement(line("B1", 12_000, structured=ogm(loaded, "F1")))])
    with pytest.raises(StatementError):
        import_statement(loaded, creditor(loaded), good[: len(good) // 2], NOW)
    with pytest.raises(StatementError):
        import_statement(loaded, creditor(loaded), b"hello", NOW)
    assert count(loaded, StatementRow) == 0 and count(loaded, BankTransactionRow) == 0
    assert paid(loaded, "F1") == 0


def test_coda_statements_are_booked_the_same_way(loaded: Engine) -> None:
    coda = write_coda([for_coda(statement(line("C1", 8_000, structured=ogm(loaded, "F2"))))])
    [report] = import_statement(loaded, creditor(loaded), coda, NOW)
    assert report.format == "coda" and report.booked == {"ogm": 1}
    assert paid(loaded, "F2") == 8_000


def test_a_payment_by_statement_stops_the_journey_at_the_next_tick(
    loaded: Engine, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    for day in range(0, 3):
        tick(loaded, START + dt.timedelta(days=day), outbox)
    book(loaded, line("S1", 12_000, structured=ogm(loaded, "F1")))
    for day in range(3, 40):
        tick(loaded, START + dt.timedelta(days=day), outbox)
    with loaded.connect() as connection:
        alice = connection.execute(select(CaseRow.id).where(CaseRow.ref == "C-D1")).scalar_one()
    after = NOW
    sent = rows(loaded, OutboxRow.case_id, OutboxRow.status, OutboxRow.sent_at)
    assert not [r for r in sent if r[0] == alice and r[1] == "sent" and r[2] >= after]
    exits = dict(rows(loaded, EnrolmentRow.case_id, EnrolmentRow.exit_reason))
    assert exits[alice] == "paid"


def test_a_name_finds_its_debtor_when_the_amount_is_common(
    loaded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if thousands of invoices had this amount: the amount alone names nobody.
    monkeypatch.setattr("parcours.store.payments.AMOUNT_HITS", 0)
    report = book(
        loaded,
        line("N1", 8_000, text="facture", counterparty_name="PEETERS BRUNO"),
        line("N2", 8_000, text="facture", counterparty_name="Somebody Else"),
    )
    assert report.booked == {"fuzzy": 1} and report.unmatched == 1
    assert paid(loaded, "F2") == 8_000


def test_erasing_a_debtor_clears_what_their_bank_said_of_them(loaded: Engine) -> None:
    book(loaded, line("G1", 12_000, text="Alice pays", counterparty_name="MARTIN ALICE"))
    with UnitOfWork(loaded) as uow:
        owner = uow.creditors.by_name("acme")
        assert owner is not None
        uow.debtors.erase(owner, "D1", NOW)
        uow.commit()
    [(name, text, amount)] = rows(
        loaded,
        BankTransactionRow.counterparty_name,
        BankTransactionRow.text,
        BankTransactionRow.amount_minor,
    )
    assert (name, text, amount) == (None, None, 12_000)


def test_a_psp_payout_is_not_booked_again(loaded: Engine) -> None:
    report = book(loaded, line("M1", 20_000, text="Settlement", counterparty_name="Mollie B.V."))
    assert report.ignored == {"psp payout": 1} and not report.booked and not report.unmatched
    [(status, reason)] = rows(loaded, BankTransactionRow.status, BankTransactionRow.reason)
    assert status == "ignored" and "webhooks" in reason


# -- a statement of hundreds of lines ----------------------------------------------------
# Large enough for the bulk paths: lookups of more than 50 cases, inserts of several
# statements' worth of rows, the fuzzy scan over every open invoice.

BULK_DAY = dt.date(2026, 12, 3)


def bulk_portfolio(engine: Engine, folder: Path) -> Any:
    """A generated portfolio of 150 debtors (about 500 open invoices); its creditor."""
    from parcours.ingest import import_file
    from parcours.ingest.importer import ImportOptions, report_allows_commit
    from parcours.sim.portfolio import generate_portfolio

    if not (folder / "invoices.csv").exists():
        generate_portfolio(folder, debtors=150, seed=5, as_of=BULK_DAY, survey_share=0.0)
    for kind in (ImportKind.DEBTORS, ImportKind.INVOICES):
        with UnitOfWork(engine) as uow:
            owner = uow.creditors.by_name("bulk") or uow.creditors.add("bulk", NOW)
            options = ImportOptions(creditor_id=owner.id, creditor_name="bulk", now=NOW)
            report = import_file(uow.connection(), kind, folder / f"{kind.value}.csv", options)
            assert report_allows_commit(report) and not report.errors
            uow.commit()
    return owner.id


def bulk_statement(engine: Engine, owner: Any) -> Statement:
    """The simulator's mix of payers (structured communication, typed in the text, name
    and amount, unknown), then lines that take the other paths: two payments of one
    invoice of which the second pays more than is left, a payment with an end-to-end id,
    a debit and a foreign currency."""
    with engine.connect() as connection:
        made, _ = synthetic_statement(connection, owner, 300, BULK_DAY, seed=3)
        first, second = connection.execute(
            select(InvoiceRow.structured_communication, InvoiceRow.amount_minor)
            .where(InvoiceRow.creditor_id == owner)
            .order_by(InvoiceRow.due_date.desc(), InvoiceRow.ref)
            .limit(2)
        ).all()
    extra = [
        line("X-1", first[1] - 100, structured=first[0]),
        line("X-2", 5_000, structured=first[0]),
        line("X-3", second[1], structured=second[0], end_to_end_id="E2E-BULK"),
        line("X-4", -2_500, text="bank fees"),
        dataclasses.replace(line("X-5", 1_000, structured=second[0]), currency="USD"),
    ]
    return dataclasses.replace(made, lines=[*made.lines, *extra])


def outcome(engine: Engine) -> dict[str, list[Any]]:
    """What an import stored, by references only (ids differ between databases)."""
    t, p, i, e, c = BankTransactionRow, PaymentRow, InvoiceRow, EventRow, CaseRow
    with engine.connect() as connection:
        cases = dict(connection.execute(select(c.id, c.ref)).all())
        invoices = dict(connection.execute(select(i.id, i.ref)).all())
        lines = dict(connection.execute(select(t.id, t.bank_ref)).all())

        def each(*columns: Any) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in connection.execute(select(*columns)).all()]

        return {
            "lines": sorted(
                (ref, status, method, score, cases.get(case), reason, amount)
                for ref, status, method, score, case, reason, amount in each(
                    t.bank_ref, t.status, t.method, t.score, t.case_id, t.reason, t.amount_minor
                )
            ),
            "payments": sorted(
                (ref, cases[case], invoices.get(invoice), amount, lines.get(line_id), gone)
                for ref, case, invoice, amount, line_id, gone in each(
                    p.ref,
                    p.case_id,
                    p.invoice_id,
                    p.amount_minor,
                    p.transaction_id,
                    p.reversed_at.is_not(None),
                )
            ),
            "paid": sorted(each(i.ref, i.paid_minor)),
            "events": sorted(
                (cases.get(case), kind, sorted(payload.items()))
                for case, kind, payload in each(e.case_id, e.type, e.payload)
            ),
            "closed": sorted(each(c.ref, c.status)),
        }


def test_a_large_statement_books_each_line_once_and_every_cent_where_it_belongs(
    engine: Engine, tmp_path: Path
) -> None:
    owner = bulk_portfolio(engine, tmp_path / "portfolio")
    data = write_camt([bulk_statement(engine, owner)])
    [report] = import_statement(engine, owner, data, NOW)
    assert report.lines == 305 and report.already_imported == 0
    assert report.ignored == {"debit": 1, "foreign currency": 1}
    assert sum(report.booked.values()) + report.unmatched + 2 == report.lines
    assert {"ogm", "ogm_text", "fuzzy"} <= set(report.booked) and report.unmatched
    stored = outcome(engine)
    assert len(stored["lines"]) == report.lines
    # Each matched line is paid out exactly, over its case's invoices and a credit.
    paid_by_line: Counter[str] = Counter()
    for _ref, _case, _invoice, amount, line_ref, _gone in stored["payments"]:
        paid_by_line[line_ref] += amount
    matched = {r: a for r, s, _m, _sc, _c, _re, a in stored["lines"] if s == "matched"}
    assert paid_by_line == Counter(matched) and len(matched) == sum(report.booked.values())
    # An invoice's paid amount is the sum of its payments, and never more than it owes.
    per_invoice: Counter[str] = Counter()
    for _ref, _case, invoice, amount, _line, _gone in stored["payments"]:
        if invoice is not None:
            per_invoice[invoice] += amount
    owed = dict(rows(engine, InvoiceRow.ref, InvoiceRow.amount_minor))
    assert all(per_invoice[ref] == paid <= owed[ref] for ref, paid in stored["paid"])
    # One journey event per booked payment, on the line's case, for its amount.
    booked_events = Counter(
        (case, dict(payload)["amount_minor"])
        for case, kind, payload in stored["events"]
        if kind == "payment.booked"
    )
    by_line = Counter((c, a) for _r, s, _m, _sc, c, _re, a in stored["lines"] if s == "matched")
    assert booked_events == by_line
    # case.paid exactly for the touched cases left owing nothing.
    paid_off = {case for _ref, case, *_ in stored["payments"]} - set(cases_owing(engine))
    paid_events = {case for case, kind, _ in stored["events"] if kind == "case.paid"}
    assert paid_events == paid_off and report.cases_paid == len(paid_events)
    # The same file again books nothing; a reversal by end-to-end id undoes its line.
    [again] = import_statement(engine, owner, data, NOW)
    assert again.already_imported == again.lines and outcome(engine) == stored
    reversal = line("X-9", -1, reversal=True, end_to_end_id="E2E-BULK")
    [undone] = import_statement(engine, owner, write_camt([statement(reversal, sid="bulk-2")]), NOW)
    assert undone.reversals == 1


def cases_owing(engine: Engine) -> list[str]:
    """The refs of the cases with an invoice still open."""
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(CaseRow.ref)
                .join(InvoiceRow, InvoiceRow.case_id == CaseRow.id)
                .where(InvoiceRow.paid_minor < InvoiceRow.amount_minor)
                .distinct()
            ).scalars()
        )


@pytest.mark.postgres
def test_a_large_statement_books_the_same_on_sqlite_and_postgresql(
    sqlite_template: Path, pg_url: str, tmp_path: Path
) -> None:
    """SQLite takes its own paths (JSON lists, literals, rowids, several rows an INSERT),
    PostgreSQL the staged tables and COPY: the same file books the same."""
    import shutil

    from sqlalchemy import text

    from parcours.store.db import connect
    from parcours.store.schema import Base

    shutil.copyfile(sqlite_template, tmp_path / "bulk.db")
    results, data = [], b""
    for url in (f"sqlite:///{tmp_path / 'bulk.db'}", pg_url):
        engine = connect(url)
        if url == pg_url:
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
            with engine.begin() as connection:
                connection.execute(text(f"TRUNCATE {tables} CASCADE"))
        owner = bulk_portfolio(engine, tmp_path / "portfolio")
        data = data or write_camt([bulk_statement(engine, owner)])  # one file for both
        [report] = import_statement(engine, owner, data, NOW)
        results.append((report.as_dict(), outcome(engine)))
        engine.dispose()
    assert results[0][0]["booked"] > 200
    assert results[0] == results[1]
