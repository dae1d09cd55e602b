"""Checking rows in worker processes gives exactly the result of checking them in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine

from parcours.ingest import ImportKind, ImportReport
from parcours.store.schema import DebtorRow, InvoiceRow
from tests.ingest.test_import import (
    DEBTOR_HEADER,
    GOOD_DEBTORS,
    INVOICE_HEADER,
    count,
    run_import,
    write_csv,
)


def _debtor_rows() -> list[str]:
    rows = [
        f"D{n},Name {n},n{n}@telenet.be,0475 12 34 {n % 100:02d},nl,BE,,,,1980," for n in range(60)
    ]
    rows[5] = "D5,Bad Mail,jan@@x.be,,,,,,,,"
    rows[17] = "D17,Too Few"
    rows[23] = "D3,Repeats a ref from an earlier batch,,,,,,,,,"
    rows[41] = "D41,Bad Phone And Year,,0475,,BE,,,,19x0,"
    return rows


def _summary(report: ImportReport) -> str:
    """The report as JSON text, without what differs by design (file and creditor names)."""
    data = report.as_dict()
    del data["file"], data["creditor"]
    return json.dumps(data).replace(report.creditor, "CREDITOR")


@pytest.mark.parametrize("kind", [ImportKind.DEBTORS, ImportKind.INVOICES])
def test_worker_processes_report_and_store_the_same_as_one_process(
    engine: Engine, tmp_path: Path, kind: ImportKind
) -> None:
    results = {}
    for parallel in (False, True):
        creditor = f"c-{parallel}"
        debtors = write_csv(tmp_path, f"d{parallel}.csv", DEBTOR_HEADER, _debtor_rows())
        report = run_import(
            engine, ImportKind.DEBTORS, debtors, creditor=creditor, batch_size=7, parallel=parallel
        )
        if kind is ImportKind.INVOICES:
            invoices = [f"F{n},D{n % 60},{n}.50,EUR,2026-10-01,2026-10-31," for n in range(1, 80)]
            invoices[9] = "F10,D10,10.001,EUR,2026-10-01,2026-10-31,"
            invoices[30] = "F5,D30,1.00,EUR,2026-10-01,2026-10-31,"
            invoices[50] = "F51,D404,1.00,EUR,2026-10-01,2026-10-31,"
            path = write_csv(tmp_path, f"i{parallel}.csv", INVOICE_HEADER, invoices)
            report = run_import(
                engine, kind, path, creditor=creditor, batch_size=7, parallel=parallel
            )
        results[parallel] = _summary(report)
    assert results[True] == results[False]
    assert json.loads(results[True])["rejected"] >= 3
    model = DebtorRow if kind is ImportKind.DEBTORS else InvoiceRow
    assert count(engine, model) % 2 == 0  # both creditors stored the same number of rows


def test_a_clean_file_checked_by_workers_is_stored_whole(engine: Engine, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "d.csv", DEBTOR_HEADER, GOOD_DEBTORS)
    report = run_import(engine, ImportKind.DEBTORS, path, parallel=True)
    assert (report.inserted, report.rejected, report.exit_code) == (3, 0, 0)
    assert count(engine, DebtorRow) == 3
