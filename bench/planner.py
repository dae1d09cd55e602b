"""Benchmark: the pure planner on a million enrolled cases (about 20 % due), and one full
tick on a million enrolled cases (about 20 % due) against a naive per-case dunning run.

Prints one JSON line. The pure part times one `plan()` call over all enrolments (the
planner selects the due ones itself) spread over the library's journeys. The tick part
times one full tick of the real engine in a fresh process — settle promises and plans,
enrol, select the due cases, read their facts, plan, gate, write the outbox rows (the
decisions with their verdicts), the policy log (moves) and the enrolments, commit —
with the time of each part (`enrolments` stages them; their UPDATE runs beside the
gate, and `enrolments_wait` is what the tick waits for it after). On SQLite the commit
leaves the copy of the write-ahead log into the database file (a checkpoint) to a
background thread: its time is printed apart (`checkpoint_after_seconds`), as it runs
beside what follows a tick. `speed_reference_seconds` and `memory_reference_seconds`
tell the machine's speed then (bench/machine.py).

Its database (`--tick-cases`, built once per schema revision and cached under bench/data;
building a million cases takes several minutes) holds a generated portfolio that
arrived in two halves a day apart, each imported, classified and ticked on arrival
(2026-12-01 and 12-02, 07:00 UTC), the messages those ticks queued recorded as sent.
The timed tick runs on 12-05 at 07:00 UTC: the first half's four-day waits after their
first reminder end then, with the waits anchored on due dates of both halves — about
20 % of the enrolled cases are due. In the same run the
naive universal ladder (per case: one ORM query for its invoices, one for what was sent,
one insert) runs on `--sample` cases and is extrapolated to every case, as a ratio.

    python bench/planner.py                                # SQLite, target 10 s
    python bench/planner.py --database postgresql          # PostgreSQL, target 15 s
    python bench/planner.py --cases 100000 --tick-cases 100000 --repeat 1
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from machine import memory_reference, speed_reference, written_out
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
    parser.add_argument("--tick-cases", type=int, default=1_000_000, help="0: skip the tick")
    parser.add_argument("--sample", type=int, default=5_000, help="cases for the naive run")
    parser.add_argument("--data-dir", type=Path, default=Path("bench/data"))
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--skip-pure", action="store_true", help="time only the tick")
    parser.add_argument("--profile", type=Path, help="children: cProfile output file")
    parser.add_argument("--child", choices=["tick", "naive"])
    parser.add_argument("--db", help="database URL (children)")
    parser.add_argument("--at")
    args = parser.parse_args()
    if args.child:
        at = dt.datetime.fromisoformat(args.at)
        if args.child == "tick":
            print(json.dumps(child_tick(args.db, at, args.profile), default=str))
        else:
            print(json.dumps(child_naive(args.db, at, args.sample), default=str))
        return
    tick = (
        tick_bench(
            args.data_dir,
            args.tick_cases,
            args.sample,
            args.repeat,
            postgres=args.database == "postgresql",
            profile=args.profile,
        )
        if args.tick_cases
        else None
    )
    if args.skip_pure:
        print(json.dumps({"bench": "planner", "tick": tick}))
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
                "tick": tick,
            }
        )
    )


# -- the full tick on a stored portfolio ------------------------------------------------------


FIRST_TICK = dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)
ARRIVALS = (FIRST_TICK, FIRST_TICK + dt.timedelta(days=1))  # each half ticked on arrival
TIMED_TICK = FIRST_TICK + dt.timedelta(days=4)
DISPATCHED_WITHIN = dt.timedelta(hours=4)  # after each build tick, see `_mark_sent`
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
# Parts of the tick, in order (`TickResult.timings`), and the commit after them.
PARTS = (
    "settle", "enrol", "due", "read_facts", "plan", "enrolments", "gate", "enrolments_wait",
    "outbox", "policy_log", "write", "commit",
)  # fmt: skip
BUILD = "tick3"  # the cached databases' layout (two arrivals, attempt ids led by their
# case); older builds are not reused


def _schema_head() -> str:
    from parcours.store.migrate import head_revision

    return head_revision()


def split_portfolio(folder: Path) -> list[Path]:
    """The generated portfolio in two halves by debtor (first and second half of the
    file), each with its debtors' invoices and payments: what arrives on each day."""
    import csv

    halves = [folder / "half-1", folder / "half-2"]
    if all((h / "payments.csv").exists() for h in halves):
        return halves
    for half in halves:
        half.mkdir(exist_ok=True)
    with (folder / "debtors.csv").open(newline="") as fh:
        total = sum(1 for _ in fh) - 1
    debtor_half: dict[str, int] = {}
    invoice_half: dict[str, int] = {}
    for name, key, parent, lookup in (
        ("debtors", "debtor_ref", None, debtor_half),
        ("invoices", "invoice_ref", "debtor_ref", invoice_half),
        ("payments", "payment_ref", "invoice_ref", None),
    ):
        with (folder / f"{name}.csv").open(newline="") as source:
            reader = csv.reader(source)
            header = next(reader)
            outs = [(h / f"{name}.csv").open("w", newline="") for h in halves]
            writers = [csv.writer(out, lineterminator="\n") for out in outs]
            for w in writers:
                w.writerow(header)
            at_key = header.index(key)
            at_parent = header.index(parent) if parent else None
            for n, row in enumerate(reader):
                if at_parent is None:
                    half = 0 if n < total // 2 else 1
                else:
                    owner = debtor_half if name == "invoices" else invoice_half
                    half = owner[row[at_parent]]
                if lookup is not None:
                    lookup[row[at_key]] = half
                writers[half].writerow(row)
            for out in outs:
                out.close()
    return halves


def _mark_sent(connection: Any, creditor_id: Any, until: dt.datetime) -> int:
    """What a dispatcher would have sent by `until`: the messages due by then recorded
    as sent when due (the history the next tick reads: reminders, caps, fees). Sending
    itself is timed by bench/dispatch.py."""
    from sqlalchemy import update

    from parcours.store.schema import OutboxRow

    o = OutboxRow

    done = connection.execute(
        update(o)
        .where(
            o.creditor_id == creditor_id,
            o.kind == "send",
            o.status.in_(("queued", "delayed")),
            o.not_before <= until,
        )
        .values(status="sent", sent_at=o.not_before)
    )
    return int(done.rowcount)


def build_portfolio_db(url: str, folder: Path, cases: int) -> None:
    """The generated portfolio arriving in two halves a day apart, each imported,
    classified and ticked on arrival: the timed tick's start."""
    from parcours.ingest import ImportKind, import_file
    from parcours.ingest.importer import ImportOptions, report_allows_commit
    from parcours.personas.catalog import load_catalog
    from parcours.runtime.personas import ClassifyPolicy, classify_portfolio
    from parcours.runtime.tick import run_tick
    from parcours.sim.portfolio import generate_portfolio
    from parcours.store.db import connect
    from parcours.store.migrate import upgrade
    from parcours.store.uow import UnitOfWork

    as_of = dt.date(2026, 11, 30)
    if not (folder / "payments.csv").exists():
        generate_portfolio(folder, debtors=cases, seed=5, as_of=as_of, survey_share=0.0)
    engine = connect(url)
    upgrade(engine)
    for half, at in zip(split_portfolio(folder), ARRIVALS, strict=True):
        for kind in (ImportKind.DEBTORS, ImportKind.INVOICES, ImportKind.PAYMENTS):
            with UnitOfWork(engine) as uow:
                creditor = uow.creditors.by_name("bench") or uow.creditors.add("bench", at)
                options = ImportOptions(creditor_id=creditor.id, creditor_name="bench", now=at)
                report = import_file(uow.connection(), kind, half / f"{kind.value}.csv", options)
                assert report_allows_commit(report)
                assert not report.errors
                uow.commit()
        with UnitOfWork(engine) as uow:
            creditor = uow.creditors.by_name("bench")
            assert creditor is not None
            policy = ClassifyPolicy(at.date(), at, "Europe/Brussels", "engaged", 0.5, 50)
            classify_portfolio(uow.connection(), creditor, load_catalog(), policy)
            started = time.perf_counter()
            result = run_tick(uow.connection(), creditor.id, load_library(), at)
            sent = _mark_sent(uow.connection(), creditor.id, at + DISPATCHED_WITHIN)
            uow.commit()
            print(
                f"built: {half.name} ticked at {at:%Y-%m-%d %H:%M} in "
                f"{time.perf_counter() - started:.1f} s: {result.as_dict()}, {sent} sent",
                file=sys.stderr,
            )
    if engine.dialect.name == "postgresql":
        with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")  # what autovacuum would have done
    engine.dispose()


def tick_database(data_dir: Path, cases: int) -> Path:
    """A SQLite file with `cases` enrolled cases before the timed tick, built once; a
    build of an older schema revision is upgraded rather than built again. Either way it
    is compacted (VACUUM) last, so that its layout — and the figure — does not depend on
    which migrations a cached database went through."""
    from parcours.store.db import checkpoints_done, connect
    from parcours.store.migrate import upgrade

    path = data_dir / f"{BUILD}-{cases}-{_schema_head()}.db"
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    building = path.with_suffix(".building")
    building.unlink(missing_ok=True)
    older = sorted(data_dir.glob(f"{BUILD}-{cases}-*.db"))
    if older:
        shutil.copyfile(older[-1], building)
        engine = connect(f"sqlite:///{building}")
        upgrade(engine)
        engine.dispose()
    else:
        build_portfolio_db(f"sqlite:///{building}", data_dir / f"tick-portfolio-{cases}", cases)
    # The build's commits leave their checkpoints to a thread: wait for it, so that the
    # connection below is the last one and closes with the write-ahead log in the file
    # (the log would not follow the rename).
    checkpoints_done()
    with contextlib.closing(sqlite3.connect(building)) as db:
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    building.rename(path)
    return path


def pg_tick_database(data_dir: Path, cases: int) -> str:
    """The same on PostgreSQL: a template database, built (or upgraded) once, then
    vacuumed as autovacuum would (an upgrade that rewrote rows leaves dead ones: their
    space becomes free for the tick's updates, as in a database in service — VACUUM FULL
    would pack the pages and slow those updates down, 2.7 -> 3.6 s)."""
    from parcours.store.db import connect
    from parcours.store.migrate import upgrade

    prefix = f"parcours_bench_{BUILD}_{cases}_"
    name = f"{prefix}{_schema_head()}"
    building = f"{name}_building"
    admin = connect(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        found = {
            row[0]
            for row in connection.exec_driver_sql(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{prefix}%",)
            )
        }
        if name not in found:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {building} WITH (FORCE)")
            older = sorted(d for d in found if d[len(prefix) :].isdigit() and d != name)
            template = f" TEMPLATE {older[-1]}" if older else ""
            connection.exec_driver_sql(f"CREATE DATABASE {building}{template}")
    if name not in found:
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{building}"
        if older:
            engine = connect(url)
            upgrade(engine)
            engine.dispose()
        else:
            build_portfolio_db(url, data_dir / f"tick-portfolio-{cases}", cases)
        compacting = connect(url, isolation_level="AUTOCOMMIT")
        with compacting.connect() as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
        compacting.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql(f"ALTER DATABASE {building} RENAME TO {name}")
    admin.dispose()
    return name


def child_tick(url: str, at: dt.datetime, profile: Path | None = None) -> dict[str, object]:
    from parcours.runtime.tick import run_tick
    from parcours.store.db import checkpoints_done, connect
    from parcours.store.uow import UnitOfWork

    library = load_library()
    engine = connect(url)
    profiler = None
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started, cpu = time.perf_counter(), time.process_time()
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.by_name("bench")
        assert creditor is not None
        result = run_tick(uow.connection(), creditor.id, library, at)
        committing = time.perf_counter()
        uow.commit()
        done = time.perf_counter()
    # SQLite: the copy of the write-ahead log into the database file, which the tick
    # leaves to a background thread (it runs beside the dispatch that follows a tick).
    checkpoint = checkpoints_done()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    return {
        "seconds": done - started,
        "cpu_seconds": time.process_time() - cpu,
        "parts": {**result.timings, "commit": done - committing},
        "checkpoint_after": checkpoint,
        **result.as_dict(),
    }


def child_naive(url: str, at: dt.datetime, sample: int) -> dict[str, object]:
    """A classic dunning run of the universal ladder: per case, one query for its
    invoices, one for what was already sent, one insert — through the ORM."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from naive import ladder_letter
    from parcours.store.db import connect
    from parcours.store.schema import CaseRow

    engine = connect(url)
    started = time.perf_counter()
    decided = 0
    with Session(engine) as session:
        cases = session.scalars(select(CaseRow).where(CaseRow.status == "open").limit(sample)).all()
        for case in cases:
            if ladder_letter(session, case, at, sent=False) is not None:
                decided += 1
        session.rollback()  # measured, not kept
    return {"seconds": time.perf_counter() - started, "cases": len(cases), "decided": decided}


def tick_bench(
    data_dir: Path,
    cases: int,
    sample: int,
    repeat: int,
    *,
    postgres: bool = False,
    profile: Path | None = None,
) -> dict[str, object]:
    import subprocess
    import tempfile

    def child(*args: str) -> dict[str, object]:
        output = subprocess.run(
            [sys.executable, __file__, *args], check=True, capture_output=True, text=True
        ).stdout
        return dict(json.loads(output.strip().splitlines()[-1]))

    at = TIMED_TICK.isoformat()
    profiling = ("--profile", str(profile)) if profile else ()
    runs = []
    if postgres:
        from parcours.store.db import connect

        source = pg_tick_database(data_dir, cases)
        work = f"{source}_work"
        admin = connect(PG_ADMIN, isolation_level="AUTOCOMMIT")

        def fresh() -> str:
            with admin.connect() as connection:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {work} WITH (FORCE)")
                connection.exec_driver_sql(f"CREATE DATABASE {work} TEMPLATE {source}")
            return PG_ADMIN.rsplit("/", 1)[0] + f"/{work}"

        for _ in range(repeat):
            runs.append(child("--child", "tick", "--db", fresh(), "--at", at, *profiling))
        naive = child("--child", "naive", "--db", fresh(), "--at", at, "--sample", str(sample))
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {work} WITH (FORCE)")
        admin.dispose()
    else:
        path = tick_database(data_dir, cases)
        with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
            work_path = Path(tmp) / "tick.db"
            url = f"sqlite:///{work_path}"
            for _ in range(repeat):
                shutil.copyfile(path, work_path)
                written_out(work_path)
                runs.append(child("--child", "tick", "--db", url, "--at", at, *profiling))
            shutil.copyfile(path, work_path)
            naive = child("--child", "naive", "--db", url, "--at", at, "--sample", str(sample))
    ours = sorted(runs, key=lambda r: float(r["seconds"]))[(len(runs) - 1) // 2]  # type: ignore[arg-type]
    seconds = float(ours["seconds"])  # type: ignore[arg-type]
    naive_all = float(naive["seconds"]) / int(naive["cases"]) * cases  # type: ignore[arg-type]
    due = int(ours["due"])  # type: ignore[call-overload]
    target = (15.0 if postgres else 10.0) * cases / 1_000_000
    parts: dict[str, float] = ours["parts"]  # type: ignore[assignment]
    return {
        "database": "postgresql" if postgres else "sqlite",
        "enrolled": cases,
        "at": at,
        "due": due,
        "due_share": round(due / cases, 3),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(float(ours["cpu_seconds"]), 2),  # type: ignore[arg-type]
        "all_seconds": [round(float(r["seconds"]), 2) for r in runs],  # type: ignore[arg-type]
        "parts": {part: round(parts.get(part, 0.0), 2) for part in PARTS},
        # Not in `seconds`: done by a background thread after the commit (SQLite).
        "checkpoint_after_seconds": round(float(ours.get("checkpoint_after", 0.0)), 2),  # type: ignore[arg-type]
        "us_per_due_case": round(seconds / max(due, 1) * 1e6, 1),
        "decisions": ours["decisions"],
        "verdicts": ours["verdicts"],
        "outbox_rows": ours["outbox_rows"],
        "target_seconds": target,
        "meets_target": seconds <= target,
        "naive_sample": naive["cases"],
        "naive_seconds_all_cases": round(naive_all, 1),
        "ratio_to_naive": round(seconds / naive_all, 3),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "speed_reference_seconds": speed_reference(),
        "memory_reference_seconds": memory_reference(),
    }


if __name__ == "__main__":
    main()
