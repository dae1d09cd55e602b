"""Benchmark: the pure planner on a million enrolled cases (about 20 % due), and one full
tick on SQLite against a naive per-case dunning run.

Prints one JSON line. The pure part times one `plan()` call over all enrolments (the
planner selects the due ones itself) spread over the library's journeys. The tick part
(`--tick-cases`, built once and cached under bench/data: generated portfolio, import,
personas, a first tick) times the next tick two days later in a fresh process — read
facts, plan, gate, write decisions, outbox rows and the policy log, commit — and the
naive run of the universal ladder on `--sample` cases (one query per case for invoices,
one for what was sent, one ORM insert), extrapolated to every case, as a ratio.

    python bench/planner.py                          # 1,000,000 cases; tick on 100,000
    python bench/planner.py --cases 100000 --tick-cases 20000 --repeat 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import numpy as np

from parcours.journeys.facts import CHANNEL_BITS, CaseFacts
from parcours.journeys.library import load_library
from parcours.journeys.planner import Enrolments, compile_journeys, plan

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
TARGET_CASES_PER_S = 500_000


def scenario(cases: int, due_share: float, seed: int) -> tuple[object, Enrolments, CaseFacts]:
    library = load_library()
    journeys = list(library)
    program = compile_journeys(journeys)
    rng = np.random.default_rng(seed)
    facts = CaseFacts.empty([f"case-{i:08d}" for i in range(cases)])
    today = (NOW.date() - dt.date(1970, 1, 1)).days
    due = rng.random(cases) < due_share
    # Due cases: their due date passed a while ago (reminders are due); the others were
    # enrolled today for an invoice due in the coming weeks (waiting for a date).
    facts.due_day[:] = np.where(
        due, today - rng.integers(8, 40, cases), today + rng.integers(5, 30, cases)
    )
    facts.balance_minor[:] = rng.integers(2_000, 200_000, cases)
    facts.reachable[:] = np.where(
        rng.random(cases) < 0.9,
        CHANNEL_BITS["email"] | CHANNEL_BITS["sms"] | CHANNEL_BITS["letter"],
        CHANNEL_BITS["letter"],
    )
    journey = rng.integers(0, len(journeys), cases)
    facts.persona = [journeys[j].persona for j in journey.tolist()]
    start = int(NOW.timestamp()) - 86_400
    enrolments = Enrolments.start(program, journey, start)
    # Settle everybody at yesterday's tick, so that today only the due ones move.
    _, enrolments = plan(program, enrolments, facts, NOW - dt.timedelta(days=1))
    # Today a share of them is due: their dates have come (the invoice fell due weeks ago
    # and their last step was long enough ago), so they move on to reminders.
    due = rng.random(cases) < due_share
    facts.due_day[due] = today - rng.integers(8, 40, int(due.sum()))
    enrolments.entered_at[due] -= 30 * 86_400
    enrolments.wake_at[due] = int(NOW.timestamp())
    return program, enrolments, facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--due-share", type=float, default=0.2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tick-cases", type=int, default=100_000, help="0: skip the tick")
    parser.add_argument("--sample", type=int, default=5_000, help="cases for the naive run")
    parser.add_argument("--tick-days", type=int, default=3, help="days after the first tick")
    parser.add_argument("--data-dir", type=Path, default=Path("bench/data"))
    parser.add_argument("--child", choices=["tick", "naive"])
    parser.add_argument("--db", help="database URL (children)")
    parser.add_argument(
        "--postgres", action="store_true", help="time the tick on PostgreSQL, not SQLite"
    )
    parser.add_argument("--at")
    args = parser.parse_args()
    if args.child:
        at = dt.datetime.fromisoformat(args.at)
        if args.child == "tick":
            print(json.dumps(child_tick(args.db, at), default=str))
        else:
            print(json.dumps(child_naive(args.db, at, args.sample), default=str))
        return
    program, enrolments, facts = scenario(args.cases, args.due_share, seed=1)
    timings = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        decisions, after = plan(program, enrolments, facts, NOW)  # type: ignore[arg-type]
        timings.append(time.perf_counter() - started)
    moved = int((after.step != enrolments.step).sum() + (after.done != enrolments.done).sum())
    seconds = sorted(timings)[(len(timings) - 1) // 2]
    due = int(((enrolments.wake_at <= int(NOW.timestamp())) & ~enrolments.done).sum())
    print(
        json.dumps(
            {
                "bench": "planner",
                "cases": args.cases,
                "due": due,
                "moved": moved,
                "decisions": len(decisions),
                "seconds": round(seconds, 3),
                "all_seconds": [round(t, 3) for t in timings],
                "due_cases_per_s": round(due / seconds),
                "enrolled_cases_per_s": round(args.cases / seconds),
                "target_cases_per_s": TARGET_CASES_PER_S,
                "meets_target": due / seconds >= TARGET_CASES_PER_S,
                "tick": (
                    tick_bench(
                        args.data_dir,
                        args.tick_cases,
                        args.sample,
                        args.repeat,
                        args.tick_days,
                        postgres=args.postgres,
                    )
                    if args.tick_cases
                    else None
                ),
            }
        )
    )


# -- the full tick on SQLite -------------------------------------------------------------------


FIRST_TICK = dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _schema_head() -> str:
    from parcours.store.migrate import head_revision

    return head_revision()


def build_portfolio_db(url: str, folder: Path, cases: int) -> None:
    """Generated portfolio imported, personas classified, a first tick: the tick's start."""
    from parcours.ingest import ImportKind, import_file
    from parcours.ingest.importer import ImportOptions, report_allows_commit
    from parcours.personas.catalog import load_catalog
    from parcours.runtime.personas import ClassifyPolicy, classify_portfolio
    from parcours.runtime.tick import run_tick
    from parcours.sim.portfolio import generate_portfolio
    from parcours.store.db import connect
    from parcours.store.migrate import upgrade
    from parcours.store.uow import UnitOfWork

    first = FIRST_TICK
    as_of = dt.date(2026, 11, 30)
    if not (folder / "debtors.csv").exists():
        generate_portfolio(folder, debtors=cases, seed=5, as_of=as_of, survey_share=0.0)
    engine = connect(url)
    upgrade(engine)
    for kind in (ImportKind.DEBTORS, ImportKind.INVOICES, ImportKind.PAYMENTS):
        with UnitOfWork(engine) as uow:
            creditor = uow.creditors.by_name("bench") or uow.creditors.add("bench", first)
            options = ImportOptions(creditor_id=creditor.id, creditor_name="bench", now=first)
            report = import_file(uow.connection(), kind, folder / f"{kind.value}.csv", options)
            assert report_allows_commit(report)
            assert not report.errors
            uow.commit()
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.by_name("bench")
        assert creditor is not None
        policy = ClassifyPolicy(as_of, first, "Europe/Brussels", "engaged", 0.5, 50)
        classify_portfolio(uow.connection(), creditor, load_catalog(), policy)
        run_tick(uow.connection(), creditor.id, load_library(), first)
        uow.commit()
    engine.dispose()


def tick_database(data_dir: Path, cases: int) -> tuple[Path, dt.datetime]:
    """A SQLite file with `cases` enrolled cases after their first tick (built once per
    schema version, cached)."""
    path = data_dir / f"tick-{cases}-{_schema_head()}.db"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        building = path.with_suffix(".building")
        building.unlink(missing_ok=True)
        build_portfolio_db(f"sqlite:///{building}", data_dir / f"tick-portfolio-{cases}", cases)
        building.rename(path)
    return path, FIRST_TICK


def pg_tick_database(data_dir: Path, cases: int) -> tuple[str, dt.datetime]:
    """The same on PostgreSQL: a template database, built once per schema version."""
    from parcours.store.db import connect

    name = f"parcours_bench_tick_{cases}_{_schema_head()}"
    admin = connect(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.exec_driver_sql(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).first()
        if not exists:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}_building")
            connection.exec_driver_sql(f"CREATE DATABASE {name}_building")
    if not exists:
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}_building"
        build_portfolio_db(url, data_dir / f"tick-portfolio-{cases}", cases)
        with admin.connect() as connection:
            connection.exec_driver_sql(f"ALTER DATABASE {name}_building RENAME TO {name}")
    admin.dispose()
    return name, FIRST_TICK


def child_tick(url: str, at: dt.datetime) -> dict[str, object]:
    from parcours.runtime.tick import run_tick
    from parcours.store.db import connect
    from parcours.store.uow import UnitOfWork

    library = load_library()
    engine = connect(url)
    started, cpu = time.perf_counter(), time.process_time()
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.by_name("bench")
        assert creditor is not None
        result = run_tick(uow.connection(), creditor.id, library, at)
        uow.commit()
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        **result.as_dict(),
    }


def child_naive(url: str, at: dt.datetime, sample: int) -> dict[str, object]:
    """A classic dunning run of the universal ladder: per case, one query for its
    invoices, one for what was already sent, one insert — through the ORM."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from parcours.store.db import connect
    from parcours.store.repositories import new_id
    from parcours.store.schema import CaseRow, InvoiceRow, OutboxRow

    ladder = ((35, "formal_notice"), (21, "reminder_2"), (7, "reminder_1"))
    engine = connect(url)
    started = time.perf_counter()
    decided = 0
    with Session(engine) as session:
        cases = session.scalars(select(CaseRow).where(CaseRow.status == "open").limit(sample)).all()
        for case in cases:
            invoices = session.scalars(
                select(InvoiceRow).where(
                    InvoiceRow.creditor_id == case.creditor_id, InvoiceRow.case_id == case.id
                )
            ).all()
            open_ = [i for i in invoices if i.paid_minor < i.amount_minor]
            if not open_:
                continue
            late = (at.date() - min(i.due_date for i in open_)).days
            level = next((name for days, name in ladder if late >= days), None)
            if level is None:
                continue
            attempt = f"naive-{case.id}-{level}"
            done = session.scalars(
                select(OutboxRow.id).where(OutboxRow.attempt_id == attempt)
            ).first()
            if done is None:
                session.add(
                    OutboxRow(
                        id=new_id(), attempt_id=attempt, creditor_id=case.creditor_id,
                        case_id=case.id, debtor_id=case.debtor_id, journey="naive@1",
                        node_id=level, step=0, kind="send", channel="letter", template=level,
                        reminder=True, status="queued", not_before=at, created_at=at,
                    )
                )  # fmt: skip
                session.flush()
                decided += 1
        session.rollback()  # measured, not kept
    return {"seconds": time.perf_counter() - started, "cases": len(cases), "decided": decided}


def tick_bench(
    data_dir: Path, cases: int, sample: int, repeat: int, days: int, *, postgres: bool = False
) -> dict[str, object]:
    import shutil
    import subprocess
    import sys
    import tempfile

    def child(*args: str) -> dict[str, object]:
        output = subprocess.run(
            [sys.executable, __file__, *args], check=True, capture_output=True, text=True
        ).stdout
        return dict(json.loads(output.strip().splitlines()[-1]))

    runs = []
    if postgres:
        from parcours.store.db import connect

        source, first = pg_tick_database(data_dir, cases)
        at = first + dt.timedelta(days=days)
        work = f"{source}_work"
        admin = connect(PG_ADMIN, isolation_level="AUTOCOMMIT")

        def fresh() -> str:
            with admin.connect() as connection:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {work} WITH (FORCE)")
                connection.exec_driver_sql(f"CREATE DATABASE {work} TEMPLATE {source}")
            return PG_ADMIN.rsplit("/", 1)[0] + f"/{work}"

        for _ in range(repeat):
            runs.append(child("--child", "tick", "--db", fresh(), "--at", at.isoformat()))
        naive = child(
            "--child", "naive", "--db", fresh(), "--at", at.isoformat(), "--sample", str(sample)
        )
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {work} WITH (FORCE)")
        admin.dispose()
    else:
        path, first = tick_database(data_dir, cases)
        at = first + dt.timedelta(days=days)
        with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
            work_path = Path(tmp) / "tick.db"
            url = f"sqlite:///{work_path}"
            for _ in range(repeat):
                shutil.copyfile(path, work_path)
                runs.append(child("--child", "tick", "--db", url, "--at", at.isoformat()))
            shutil.copyfile(path, work_path)
            naive = child(
                "--child", "naive", "--db", url, "--at", at.isoformat(), "--sample", str(sample)
            )
    ours = sorted(runs, key=lambda r: float(r["seconds"]))[(len(runs) - 1) // 2]  # type: ignore[arg-type]
    naive_all = float(naive["seconds"]) / int(naive["cases"]) * cases  # type: ignore[arg-type]
    due = int(ours["due"])  # type: ignore[call-overload]
    target = (15.0 if postgres else 10.0) * cases / 1_000_000
    return {
        "database": "postgresql" if postgres else "sqlite",
        "enrolled": cases,
        "due": due,
        "due_share": round(due / cases, 3),
        "seconds": round(float(ours["seconds"]), 2),  # type: ignore[arg-type]
        "cpu_seconds": round(float(ours["cpu_seconds"]), 2),  # type: ignore[arg-type]
        "all_seconds": [round(float(r["seconds"]), 2) for r in runs],  # type: ignore[arg-type]
        "us_per_due_case": round(float(ours["seconds"]) / max(due, 1) * 1e6, 1),  # type: ignore[arg-type]
        "outbox_rows": ours["outbox_rows"],
        "target_seconds": target,
        "naive_sample": naive["cases"],
        "naive_seconds_all_cases": round(naive_all, 1),
        "ratio_to_naive": round(float(ours["seconds"]) / naive_all, 3),  # type: ignore[arg-type]
    }


if __name__ == "__main__":
    main()
