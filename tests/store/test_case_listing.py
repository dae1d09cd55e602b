"""Case listing: most urgent first, limited in SQL, balances per currency."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from parcours.ingest import ImportKind
from parcours.store.uow import UnitOfWork
from tests.ingest.test_import import INVOICE_HEADER, run_import, write_csv


def test_cases_are_listed_oldest_open_due_first_with_per_currency_balances(
    engine: Engine, tmp_path: Path
) -> None:
    debtors = write_csv(tmp_path, "d.csv", "debtor_ref,name", ["A,Ann", "B,Bob", "C,Cas", "D,Dee"])
    assert run_import(engine, ImportKind.DEBTORS, debtors).exit_code == 0
    invoices = [
        "I1,A,10.00,EUR,2026-09-01,2026-09-30,",
        "I2,B,20.00,EUR,2026-08-01,2026-08-31,",
        "I3,B,5.00,GBP,2026-10-01,2026-10-31,",
        "I4,C,30.00,EUR,2026-07-01,2026-07-31,",  # oldest, but paid below
        "I5,D,40.00,EUR,2026-11-01,2026-11-30,",
    ]
    assert (
        run_import(
            engine, ImportKind.INVOICES, write_csv(tmp_path, "i.csv", INVOICE_HEADER, invoices)
        ).exit_code
        == 0
    )
    payments = write_csv(tmp_path, "p.csv", "invoice_ref,amount,paid_at", ["I4,30.00,2026-08-05"])
    assert run_import(engine, ImportKind.PAYMENTS, payments).exit_code == 0
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.by_name("acme")
        assert creditor is not None
        listed = uow.cases.list(creditor, limit=3)
        only_b = uow.cases.list(creditor, debtor_ref="B")
    assert [s.debtor_ref for s in listed] == ["B", "A", "D"]  # C has nothing open
    assert {c: str(m.amount) for c, m in listed[0].balance.items()} == {
        "EUR": "20.00",
        "GBP": "5.00",
    }
    assert listed[0].invoices == 2
    assert [s.ref for s in only_b] == ["C-B"]
