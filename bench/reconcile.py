"""Benchmark: import and reconcile a camt.053 statement of 100,000 entries against about
1,000,000 open invoices on SQLite, against a naive line-by-line reconciler.

Prints one JSON line: the seconds to parse, match and book the whole file in one
transaction (`import_statement`, the command's own path) and where they went
(`seconds_by_phase`: parse; known, the lines imported before; match, by structured
communication, in the text too, and by reference; fuzzy, the scored match; allocate, the
payments spread over invoices in memory; payments, their rows and the invoices' paid
amounts; events, a journey event per payment and the cases paid off; lines, the statement
lines stored; reversals; commit), the share of lines matched by structured communication,
by free text / reference, by fuzzy score, and left unmatched; the load average (the
machine may be shared); and the naive run (one ORM query per line for its
communication, then per candidate case, one ORM insert per payment) on `--sample` lines,
extrapolated, as a ratio.

The portfolio (generated, imported; no payments, so every invoice is open) is built once
and cached under bench/data; each run copies it.

    python bench/reconcile.py                      # 100,000 lines, ~1,000,000 invoices
    python bench/reconcile.py --debtors 30000 --lines 10000
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from machine import memory_reference, speed_reference, written_out
from parcours.payments.camt import parse_camt, write_camt
from parcours.runtime.payments import import_statement
from parcours.sim.statement import synthetic_statement
from parcours.store.db import checkpoints_done, connect
from parcours.store.migrate import head_revision, upgrade
from parcours.store.schema import CaseRow, DebtorRow, InvoiceRow, PaymentRow
from parcours.store.uow import UnitOfWork

NOW = dt.datetime(2026, 12, 4, 8, 0, tzinfo=dt.UTC)
DAY = dt.date(2026, 12, 3)
TARGET_SECONDS = 10.0


def portfolio_db(data_dir: Path, debtors: int) -> Path:
    """A SQLite file with the generated portfolio's debtors and invoices (cached)."""
    from parcours.ingest import ImportKind, import_file
    from parcours.ingest.importer import ImportOptions, report_allows_commit
    from parcours.sim.portfolio import generate_portfolio

    path = data_dir / f"reconcile-{debtors}-{head_revision()}.db"
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    folder = data_dir / f"reconcile-portfolio-{debtors}"
    if not (folder / "invoices.csv").exists():
        generate_portfolio(folder, debtors=debtors, seed=5, as_of=DAY, survey_share=0.0)
    building = path.with_suffix(".building")
    building.unlink(missing_ok=True)
    engine = connect(f"sqlite:///{building}")
    upgrade(engine)
    for kind in (ImportKind.DEBTORS, ImportKind.INVOICES):
        with UnitOfWork(engine) as uow:
            creditor = uow.creditors.by_name("bench") or uow.creditors.add("bench", NOW)
            options = ImportOptions(creditor_id=creditor.id, creditor_name="bench", now=NOW)
            report = import_file(uow.connection(), kind, folder / f"{kind.value}.csv", options)
            assert report_allows_commit(report)
            assert not report.errors
            uow.commit()
    # The imports leave their checkpoints to a thread: wait for it, and empty the
    # write-ahead log into the file before it is renamed (its log would not follow it).
    checkpoints_done()
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    building.rename(path)
    return path


def naive(url: str, creditor_id: Any, lines: list[Any]) -> float:
    """Line by line through the ORM: the invoice by its communication, else each case
    with that open amount and its debtor's name compared; one insert per payment."""
    from rapidfuzz import fuzz
    from sqlalchemy.orm import Session

    engine = connect(url)
    started = time.perf_counter()
    with Session(engine) as session:
        for n, line in enumerate(lines):
            invoice = None
            if line.structured:
                invoice = session.scalars(
                    select(InvoiceRow).where(
                        InvoiceRow.creditor_id == creditor_id,
                        InvoiceRow.structured_communication == line.structured,
                    )
                ).first()
            if invoice is None and line.counterparty_name:
                for candidate in session.scalars(
                    select(InvoiceRow).where(
                        InvoiceRow.creditor_id == creditor_id,
                        InvoiceRow.amount_minor == line.amount_minor,
                        InvoiceRow.paid_minor < InvoiceRow.amount_minor,
                    )
                ).all()[:20]:
                    name = session.scalars(
                        select(DebtorRow.name)
                        .join(CaseRow, CaseRow.debtor_id == DebtorRow.id)
                        .where(CaseRow.id == candidate.case_id)
                    ).first()
                    if name and fuzz.token_set_ratio(name, line.counterparty_name) > 85:
                        invoice = candidate
                        break
            if invoice is None:
                continue
            session.add(
                PaymentRow(
                    id=uuid.uuid4(), creditor_id=creditor_id,
                    case_id=invoice.case_id, invoice_id=invoice.id, ref=f"naive-{n}",
                    amount_minor=line.amount_minor, currency="EUR", paid_at=NOW,
                    source="statement", source_digest=n, created_at=NOW,
                )
            )  # fmt: skip
            invoice.paid_minor += line.amount_minor
        session.commit()
    seconds = time.perf_counter() - started
    engine.dispose()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--debtors", type=int, default=297_000, help="~3.37 invoices each")
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2_000, help="lines for the naive run")
    parser.add_argument("--data-dir", type=Path, default=Path("bench/data"))
    args = parser.parse_args()
    source = portfolio_db(args.data_dir, args.debtors)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "reconcile.db"
        shutil.copyfile(source, db)
        url = f"sqlite:///{db}"
        engine = connect(url)
        with UnitOfWork(engine) as uow:
            creditor = uow.creditors.by_name("bench")
            assert creditor is not None
            invoices = (
                uow.connection().execute(select(func.count()).select_from(InvoiceRow)).scalar_one()
            )
            if not invoices:  # a figure against an empty portfolio would mean nothing
                raise SystemExit(f"{source} holds no invoices: delete it to build it again")
            statement, mix = synthetic_statement(
                uow.connection(), creditor.id, args.lines, DAY, seed=11
            )
        data = write_camt([statement])
        started = time.perf_counter()
        parsed = parse_camt(data)
        parse_seconds = time.perf_counter() - started
        # Only the naive run's sample stays in memory, and the copy is on disk: the import
        # runs as it would in the command, not beside a second statement being written.
        sample = parsed[0].lines[: args.sample]
        del parsed, statement
        gc.collect()
        written_out(db)
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        [report] = import_statement(engine, creditor.id, data, NOW, actor="bench")
        seconds = time.perf_counter() - started
        # Not in `seconds`: the write-ahead log's copy into the database file, which a
        # background thread does after the commit (it runs beside what comes next).
        checkpoint = checkpoints_done()
        load_after = os.getloadavg()[0]
        engine.dispose()
        naive_db = Path(tmp) / "naive.db"
        shutil.copyfile(source, naive_db)
        naive_seconds = naive(f"sqlite:///{naive_db}", creditor.id, sample)
    lines = report.lines
    booked = report.booked
    naive_total = naive_seconds * lines / len(sample)
    print(
        json.dumps(
            {
                "bench": "reconcile",
                "lines": lines,
                "open_invoices": invoices,
                "statement_mb": round(len(data) / 1e6, 1),
                "seconds": round(seconds, 2),
                "seconds_by_phase": {k: round(v, 2) for k, v in report.seconds.items()},
                "checkpoint_after_seconds": round(checkpoint, 2),
                "parse_seconds": round(parse_seconds, 2),
                "lines_per_s": round(lines / seconds),
                "share_ogm": round(booked.get("ogm", 0) / lines, 3),
                "share_text_or_ref": round(
                    (booked.get("ogm_text", 0) + booked.get("ref", 0)) / lines, 3
                ),
                "share_fuzzy": round(booked.get("fuzzy", 0) / lines, 3),
                "share_unmatched": round(report.unmatched / lines, 3),
                "payers_mix": dict(mix),
                "target_seconds": TARGET_SECONDS,
                "meets_target": seconds <= TARGET_SECONDS,
                "load_average_1m": [round(load_before, 2), round(load_after, 2)],
                "speed_reference_seconds": speed_reference(),
                "memory_reference_seconds": memory_reference(),
                "naive_sample": len(sample),
                "naive_seconds_extrapolated": round(naive_total, 1),
                "speedup_vs_naive": round(naive_total / seconds, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
