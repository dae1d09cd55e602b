"""Benchmark: compute features, classify and store every debtor of a portfolio (SQLite).

Prints one JSON line. Set-up (not timed, cached under bench/data): a generated portfolio
imported into a SQLite file with the survey answers of 5 % of the debtors and a model
trained on them. Each timed run copies that file and runs, in a fresh child process so
that its peak RSS is its own, the real classification run: features from the store,
prediction, decisions, history and current assignments stored and committed. It then
runs again on the unchanged portfolio (the daily case: nothing to write).

The same run times a naive baseline on a sample of debtors — per debtor: ORM queries
for invoices and payments, features in Python, scikit-learn on one row, one ORM insert —
and reports our time as a ratio of the baseline extrapolated to the whole portfolio.

    python bench/personas.py                    # 1,000,000 debtors (set-up ~6 min once)
    python bench/personas.py --debtors 50000 --repeat 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zoneinfo
from pathlib import Path
from typing import Any

AS_OF = dt.date(2026, 12, 1)
NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
TARGET_SECONDS_PER_MILLION = 60.0
TARGET_RSS_MIB = 2048
ZONE = "Europe/Brussels"


def _policy() -> Any:
    from parcours.runtime.personas import ClassifyPolicy

    return ClassifyPolicy(
        today=AS_OF,
        now=NOW,
        zone=ZONE,
        default_persona="engaged",
        min_confidence=0.5,
        min_labels=50,
        retrain=False,
    )


def template(data_dir: Path, debtors: int) -> tuple[Path, dict[str, float]]:
    """The imported portfolio with survey answers and a trained model (built once)."""
    from parcours.ingest import ImportKind, import_file
    from parcours.ingest.importer import ImportOptions, report_allows_commit
    from parcours.personas.catalog import load_catalog
    from parcours.runtime.personas import compute_features, import_survey_answers, train_and_store
    from parcours.sim.portfolio import generate_portfolio
    from parcours.store.db import connect
    from parcours.store.migrate import upgrade
    from parcours.store.uow import UnitOfWork

    path = data_dir / f"personas-{debtors}.db"
    info = data_dir / f"personas-{debtors}.json"
    if path.exists() and info.exists():
        return path, json.loads(info.read_text())
    data_dir.mkdir(parents=True, exist_ok=True)
    folder = data_dir / f"personas-portfolio-{debtors}"
    generate_portfolio(folder, debtors=debtors, seed=42, as_of=AS_OF, survey_share=0.05)
    path.unlink(missing_ok=True)
    engine = connect(f"sqlite:///{path}")
    upgrade(engine)
    zone = zoneinfo.ZoneInfo(ZONE)
    catalog = load_catalog()
    for kind in (ImportKind.DEBTORS, ImportKind.INVOICES, ImportKind.PAYMENTS):
        with UnitOfWork(engine) as uow:
            creditor = uow.creditors.by_name("bench") or uow.creditors.add("bench", NOW)
            options = ImportOptions(
                creditor_id=creditor.id, creditor_name="bench", now=NOW, default_zone=zone
            )
            report = import_file(uow.connection(), kind, folder / f"{kind.value}.csv", options)
            if report.errors or not report_allows_commit(report):
                raise SystemExit(f"benchmark data rejected: {report.errors[:3]}")
            uow.commit()
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.by_name("bench")
        assert creditor is not None
        survey = import_survey_answers(
            uow.connection(), creditor, folder / "survey_answers.csv", catalog, NOW, zone
        )
        started = time.perf_counter()
        features = compute_features(uow.connection(), creditor.id, AS_OF, ZONE)
        model = train_and_store(uow.connection(), creditor.id, catalog, features, NOW, 50)
        training = time.perf_counter() - started
        assert model is not None
        uow.commit()
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    details = {"survey_answers": survey.inserted, "training_seconds": round(training, 2)}
    info.write_text(json.dumps(details))
    return path, details


def child_parcours(db: Path) -> dict[str, Any]:
    """The real run, twice: first on a portfolio never classified, then unchanged."""
    from parcours.personas.catalog import load_catalog
    from parcours.runtime.personas import classify_portfolio
    from parcours.store.db import connect
    from parcours.store.uow import UnitOfWork

    engine = connect(f"sqlite:///{db}")
    catalog = load_catalog()
    results = []
    for _ in range(2):
        started = time.perf_counter()
        with UnitOfWork(engine) as uow:
            creditor = uow.creditors.by_name("bench")
            assert creditor is not None
            result = classify_portfolio(uow.connection(), creditor, catalog, _policy())
            uow.commit()
        results.append((time.perf_counter() - started, result))
    (first_seconds, first), (again_seconds, again) = results
    return {
        "debtors": first.debtors,
        "seconds": first_seconds,
        "stages": first.timings,
        "changed": first.changed,
        "rerun_seconds": again_seconds,
        "rerun_changed": again.changed,
        "model_version": first.model_version,
    }


def child_baseline(db: Path, sample: int) -> dict[str, Any]:
    """The naive way, on `sample` debtors: one ORM round trip after another."""
    import numpy as np
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from parcours.personas.features import FEATURES
    from parcours.personas.model import transform
    from parcours.runtime.personas import latest_model
    from parcours.store.db import connect
    from parcours.store.repositories import new_id
    from parcours.store.schema import (
        CaseRow,
        CreditorRow,
        DebtorRow,
        InvoiceRow,
        PaymentRow,
        PersonaAssignmentRow,
    )

    engine = connect(f"sqlite:///{db}")
    with Session(engine) as session:
        creditor = session.scalars(select(CreditorRow).where(CreditorRow.name == "bench")).one()
        model = latest_model(session.connection(), creditor.id)
        assert model is not None
        from sklearn.linear_model import LogisticRegression

        classifier = LogisticRegression()
        classifier.classes_ = np.array(model.classes)
        classifier.coef_ = model.coef
        classifier.intercept_ = model.intercept
        debtors = session.scalars(
            select(DebtorRow).where(DebtorRow.creditor_id == creditor.id).limit(sample)
        ).all()
        started = time.perf_counter()
        today = AS_OF
        for debtor in debtors:
            invoices = session.scalars(
                select(InvoiceRow)
                .join(CaseRow, (CaseRow.id == InvoiceRow.case_id))
                .where(CaseRow.creditor_id == creditor.id, CaseRow.debtor_id == debtor.id)
            ).all()
            row = dict.fromkeys((f.name for f in FEATURES), 0.0)
            late, assessed = 0, 0
            for invoice in invoices:
                payments = session.scalars(
                    select(PaymentRow).where(PaymentRow.invoice_id == invoice.id)
                ).all()
                last = max((p.paid_at.date() for p in payments), default=None)
                settled = invoice.paid_minor >= invoice.amount_minor
                if invoice.due_date < today or settled:
                    assessed += 1
                    days = (
                        (last - invoice.due_date).days
                        if settled and last
                        else (today - invoice.due_date).days
                    )
                    late += days > 0
                row["billed_total"] += invoice.amount_minor / 100
            row["invoices"] = len(invoices)
            row["invoices_due"] = assessed
            row["late_share"] = late / assessed if assessed else 0.0
            row["has_email"] = float(debtor.email is not None)
            row["age"] = float(today.year - debtor.birth_year) if debtor.birth_year else 45.0
            values = np.array([[row[f.name] for f in FEATURES]])
            z = (transform(values) - model.mean) / model.scale
            probabilities = classifier.predict_proba(z)[0]
            best = int(probabilities.argmax())
            session.add(
                PersonaAssignmentRow(
                    id=new_id(),
                    creditor_id=creditor.id,
                    debtor_id=debtor.id,
                    persona=model.classes[best],
                    confidence=float(probabilities[best]),
                    source="model",
                    model_version=model.version,
                    survey_candidate=False,
                    assigned_at=NOW,
                    reasons=[],
                )
            )
            session.flush()
        session.commit()
        seconds = time.perf_counter() - started
    return {"debtors": len(debtors), "seconds": seconds}


def child_predict(db: Path) -> dict[str, Any]:
    """The pure model prediction on the whole feature matrix (features computed first)."""
    from parcours.runtime.personas import compute_features, latest_model
    from parcours.store.db import connect

    engine = connect(f"sqlite:///{db}")
    with engine.connect() as connection:
        creditor_id = connection.exec_driver_sql("SELECT id FROM creditors").scalar_one()
        from uuid import UUID

        creditor = UUID(bytes=creditor_id)
        features = compute_features(connection, creditor, AS_OF, ZONE)
        model = latest_model(connection, creditor)
    assert model is not None
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        model.predict(features.values)
        timings.append(time.perf_counter() - started)
    return {"predict_seconds": min(timings), "rows": len(features)}


def run_child(*args: str) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--debtors", type=int, default=1_000_000)
    parser.add_argument("--data-dir", type=Path, default=Path("bench/data"))
    parser.add_argument("--repeat", type=int, default=3, help="runs; the median is reported")
    parser.add_argument("--sample", type=int, default=2000, help="debtors for the baseline")
    parser.add_argument("--child", choices=["parcours", "baseline", "predict"])
    parser.add_argument("--db", type=Path)
    args = parser.parse_args()

    if args.child:
        if args.child == "parcours":
            result = child_parcours(args.db)
        elif args.child == "baseline":
            result = child_baseline(args.db, args.sample)
        else:
            result = child_predict(args.db)
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result, default=str))
        return

    source, details = template(args.data_dir, args.debtors)
    runs = []
    with tempfile.TemporaryDirectory(dir=args.data_dir) as tmp:
        work = Path(tmp) / "run.db"
        for _ in range(args.repeat):
            shutil.copyfile(source, work)
            runs.append(run_child("--child", "parcours", "--db", str(work)))
        predict = run_child("--child", "predict", "--db", str(source))
        shutil.copyfile(source, work)
        naive = run_child("--child", "baseline", "--db", str(work), "--sample", str(args.sample))
    ours = sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2]
    naive_total = naive["seconds"] / naive["debtors"] * ours["debtors"]
    target = TARGET_SECONDS_PER_MILLION * ours["debtors"] / 1_000_000
    peak = max(r["peak_rss_mib"] for r in runs)
    print(
        json.dumps(
            {
                "bench": "personas",
                "db": "sqlite",
                "debtors": ours["debtors"],
                "survey_answers": details["survey_answers"],
                "seconds": round(ours["seconds"], 2),
                "all_seconds": [round(r["seconds"], 2) for r in runs],
                "stages": {k: round(v, 2) for k, v in ours["stages"].items()},
                "predict_seconds": round(predict["predict_seconds"], 3),
                "rerun_unchanged_seconds": round(ours["rerun_seconds"], 2),
                "rerun_changed": ours["rerun_changed"],
                "target_seconds": round(target, 1),
                "meets_target": ours["seconds"] <= target and peak < TARGET_RSS_MIB,
                "peak_rss_mib": round(peak),
                "training_seconds": details["training_seconds"],
                "baseline_sample": naive["debtors"],
                "baseline_seconds_extrapolated": round(naive_total, 1),
                "ratio_to_baseline": round(ours["seconds"] / naive_total, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
