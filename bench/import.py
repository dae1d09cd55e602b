"""Benchmark: import a synthetic portfolio (debtors + invoices) end to end, per database.

Prints one JSON line. Each import runs in a fresh child process so its peak RSS is its
own, `--repeat` times per database, and the median run is reported (this machine is
shared and its timings vary by about 10 %). The same run times a naive baseline —
`csv.reader` + `executemany` of the raw rows into unindexed text tables, no validation —
and reports our time as a ratio of it.

    python bench/import.py                      # 300,000 debtors, ~1,000,000 invoices
    python bench/import.py --debtors 20000 --db sqlite --repeat 1
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
import zoneinfo
from pathlib import Path

from parcours.ingest import ImportKind, import_file
from parcours.ingest.importer import ImportOptions, report_allows_commit
from parcours.store.db import checkpoints_done, connect
from parcours.store.migrate import upgrade
from parcours.store.uow import UnitOfWork

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH = "postgresql://postgres@127.0.0.1:5432/parcours_bench"
AS_OF = dt.date(2026, 12, 1)
TARGET_ROWS_PER_S = {"sqlite": 50_000, "postgresql": 30_000}


def portfolio(data_dir: Path, debtors: int, invoices: int) -> Path:
    """Generate (once, cached on disk) the portfolio to import."""
    out = data_dir / f"portfolio-{debtors}-{invoices}"
    if not (out / "manifest.json").exists():
        # Imported here: the import's worker processes re-import this module.
        from parcours.sim.portfolio import generate_portfolio

        generate_portfolio(
            out, debtors=debtors, seed=42, as_of=AS_OF, invoices_per_debtor=invoices / debtors
        )
    return out


def fresh_database(kind: str, workdir: Path) -> str:
    if kind == "sqlite":
        path = workdir / "bench.db"
        path.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        admin = connect(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql("DROP DATABASE IF EXISTS parcours_bench WITH (FORCE)")
            connection.exec_driver_sql("CREATE DATABASE parcours_bench")
        admin.dispose()
        url = PG_BENCH
    engine = connect(url)
    upgrade(engine)
    engine.dispose()
    return url


def child_parcours(url: str, folder: Path) -> dict[str, float]:
    """parcours' own import: parse, validate, store, commit."""
    engine = connect(url)
    now = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
    rows, started = 0, time.perf_counter()
    for kind in (ImportKind.DEBTORS, ImportKind.INVOICES):
        with UnitOfWork(engine) as uow:
            creditor = uow.creditors.by_name("bench") or uow.creditors.add("bench", now)
            options = ImportOptions(
                creditor_id=creditor.id,
                creditor_name="bench",
                now=now,
                default_zone=zoneinfo.ZoneInfo("Europe/Brussels"),
            )
            report = import_file(uow.connection(), kind, folder / f"{kind.value}.csv", options)
            if report.errors or not report_allows_commit(report):
                raise SystemExit(
                    f"benchmark data rejected: {report.errors[:3]} {report.file_error}"
                )
            uow.commit()
            rows += report.rows
    seconds = time.perf_counter() - started
    # SQLite: the last commit's checkpoint, which a background thread does after it (the
    # first one's ran beside the second import): not in `seconds`, printed apart.
    return {"seconds": seconds, "rows": rows, "checkpoint_after": checkpoints_done()}


def child_baseline(url: str, folder: Path) -> dict[str, float]:
    """The naive loader: csv.reader + executemany, no validation, no indexes."""
    engine = connect(url)
    marker = "?" if engine.dialect.name == "sqlite" else "%s"
    raw = engine.raw_connection()
    cursor = raw.cursor()
    rows, started = 0, time.perf_counter()
    for name in ("debtors", "invoices"):
        with (folder / f"{name}.csv").open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            table = f"raw_{name}"
            cursor.execute(f"CREATE TABLE {table} ({', '.join(f'{c} TEXT' for c in header)})")
            insert = f"INSERT INTO {table} VALUES ({', '.join([marker] * len(header))})"
            batch: list[list[str]] = []
            for row in reader:
                batch.append(row)
                if len(batch) == 5000:
                    cursor.executemany(insert, batch)
                    rows += len(batch)
                    batch = []
            if batch:
                cursor.executemany(insert, batch)
                rows += len(batch)
    raw.commit()
    raw.close()
    return {"seconds": time.perf_counter() - started, "rows": rows}


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median time (the lower middle one for an even count)."""
    return sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2]


def run_child(which: str, url: str, folder: Path) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", which, "--url", url, "--folder", str(folder)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--debtors", type=int, default=300_000)
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--data-dir", type=Path, default=Path("bench/data"))
    parser.add_argument("--child", choices=["parcours", "baseline"])
    parser.add_argument("--url")
    parser.add_argument("--folder", type=Path)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per database; the median is reported"
    )
    args = parser.parse_args()

    if args.child:
        work = child_parcours if args.child == "parcours" else child_baseline
        result = work(args.url, args.folder)
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # The largest of the row-checking worker processes (they have ended by now).
        result["worker_peak_rss_mib"] = (
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        )
        print(json.dumps(result))
        return

    folder = portfolio(args.data_dir, args.debtors, args.invoices)
    manifest = json.loads((folder / "manifest.json").read_text())
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            runs = [
                run_child("parcours", fresh_database(kind, Path(tmp)), folder)
                for _ in range(args.repeat)
            ]
            naive_runs = [
                run_child("baseline", fresh_database(kind, Path(tmp)), folder)
                for _ in range(args.repeat)
            ]
            ours, naive = _median(runs), _median(naive_runs)
            rate = ours["rows"] / ours["seconds"]
            results.append(
                {
                    "db": kind,
                    "rows": int(ours["rows"]),
                    "seconds": round(ours["seconds"], 2),
                    "rows_per_s": round(rate),
                    "checkpoint_after_seconds": round(ours.get("checkpoint_after", 0.0), 2),
                    "all_rows_per_s": [round(r["rows"] / r["seconds"]) for r in runs],
                    "target_rows_per_s": TARGET_ROWS_PER_S[kind],
                    "meets_target": rate >= TARGET_ROWS_PER_S[kind],
                    "peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs)),
                    "worker_peak_rss_mib": round(max(r["worker_peak_rss_mib"] for r in runs)),
                    "baseline_seconds": round(naive["seconds"], 2),
                    "baseline_rows_per_s": round(naive["rows"] / naive["seconds"]),
                    "ratio_to_baseline": round(ours["seconds"] / naive["seconds"], 2),
                }
            )
    print(
        json.dumps(
            {
                "bench": "import",
                "debtors": manifest["files"]["debtors.csv"],
                "invoices": manifest["files"]["invoices.csv"],
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
