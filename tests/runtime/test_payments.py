"""Bank statements booked on SQLite and PostgreSQL: matching by structured communication,
free text, reference and score; the unmatched queue; part, over and reversed payments;
re-imports; bad files; and a payment that stops the journey at the next tick."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from parcours.payments.camt import write_camt
from parcours.payments.coda import write_coda
from parcours.payments.statements import Statement, StatementError, StatementLine
from parcours.runtime.payments import MatchError, import_statement, match_line
from parcours.sim.statement import for_coda
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
