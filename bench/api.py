"""Benchmark: payment POSTs per second through the integrator API on PostgreSQL.

Prints one JSON line. The API runs in one uvicorn worker process (uvloop, httptools) on
loopback; a load generator in this process keeps `--concurrency` HTTP/1.1 keep-alive
connections busy with `POST /api/v1/payments`, each a new payment on a random invoice of
a portfolio loaded beforehand, and checks that each is answered 201. Reported: payments
per second, p50 and p99 latency, and the same run against a naive baseline — the same app
with a new database connection per request and the API key read from the database each
time, and one transaction per payment — as a ratio (ours / naive). Ours is timed
`--repeat` times on one server and the median run reported (the machine is shared: the
load average at the end is printed with the figures).

    python bench/api.py                       # 20,000 payments, 64 connections
    python bench/api.py --requests 5000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import zoneinfo
from pathlib import Path
from typing import Any

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH = "postgresql://postgres@127.0.0.1:5432/parcours_bench_api"
NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
TARGET_POSTS_PER_S = 1_000


# -- the server (a child process) --------------------------------------------------------


def serve(url: str, port: int, mode: str) -> None:
    import uvicorn
    from pydantic import SecretStr
    from sqlalchemy.pool import NullPool

    from parcours.settings import Settings
    from parcours.store.db import connect
    from parcours.web.api import build_api_app

    settings = Settings(database_url=url, secret_key=SecretStr("bench"))
    if mode == "naive":
        engine = connect(url, poolclass=NullPool)
        app = build_api_app(engine, settings, key_ttl=0, batch_payments=False)
    else:
        engine = connect(url, pool_size=20, max_overflow=0)
        app = build_api_app(engine, settings)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


# -- set-up ------------------------------------------------------------------------------


def fresh_database(invoices: int, workdir: Path) -> str:
    """A migrated database with `invoices` debtors owing one invoice each, and a key."""
    from parcours.ingest import ImportKind, import_file
    from parcours.ingest.importer import ImportOptions, report_allows_commit
    from parcours.store.api import create_api_key
    from parcours.store.db import connect
    from parcours.store.migrate import upgrade
    from parcours.store.uow import UnitOfWork

    admin = connect(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql("DROP DATABASE IF EXISTS parcours_bench_api WITH (FORCE)")
        connection.exec_driver_sql("CREATE DATABASE parcours_bench_api")
    admin.dispose()
    engine = connect(PG_BENCH)
    upgrade(engine)
    debtors = workdir / "debtors.csv"
    debtors.write_text(
        "debtor_ref,name\n" + "".join(f"D{n},Debtor {n}\n" for n in range(invoices)),
        encoding="utf-8",
    )
    bills = workdir / "invoices.csv"
    bills.write_text(
        "invoice_ref,debtor_ref,amount,currency,issue_date,due_date\n"
        + "".join(f"F{n},D{n},1000.00,EUR,2026-11-01,2026-12-01\n" for n in range(invoices)),
        encoding="utf-8",
    )
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.add("bench", NOW)
        options = ImportOptions(
            creditor.id, "bench", NOW, default_zone=zoneinfo.ZoneInfo("Europe/Brussels")
        )
        for kind, path in ((ImportKind.DEBTORS, debtors), (ImportKind.INVOICES, bills)):
            report = import_file(uow.connection(), kind, path, options)
            if report.errors or not report_allows_commit(report):
                raise SystemExit(f"benchmark data rejected: {report.errors[:3]}")
        key = create_api_key(uow.connection(), creditor.id, "bench", ["payments"], NOW).secret
        uow.commit()
    with engine.begin() as connection:
        # Statistics, as autovacuum would have them: without, the planner takes the freshly
        # loaded tables for empty and joins them row by row.
        connection.exec_driver_sql("ANALYZE")
    engine.dispose()
    return key


def analyze() -> None:
    from parcours.store.db import connect

    engine = connect(PG_BENCH)
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")
    engine.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(mode: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", mode, "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the API server did not start")


# -- the load ----------------------------------------------------------------------------


async def _connection(
    port: int,
    key: str,
    indices: Any,
    total: int,
    invoices: int,
    tag: str,
    latencies: list[float],
    failures: list[str],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /api/v1/payments HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
    ).encode()
    pick = random.Random(hash(tag)).randrange
    try:
        for n in indices:
            if n >= total:
                return
            body = json.dumps(
                {
                    "ref": f"{tag}-{n}", "invoice_ref": f"F{pick(invoices)}", "amount": "0.01",
                    "currency": "EUR", "paid_at": "2026-12-01T08:00:00Z",
                }
            ).encode()  # fmt: skip
            started = time.perf_counter()
            writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            answer = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in answer.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            content = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not answer.startswith(b"HTTP/1.1 201"):
                failures.append(answer.split(b"\r\n", 1)[0].decode() + " " + content[:200].decode())
    finally:
        writer.close()


async def _load(
    port: int, key: str, total: int, concurrency: int, invoices: int, tag: str
) -> tuple[float, list[float], list[str]]:
    indices = itertools.count()
    latencies: list[float] = []
    failures: list[str] = []
    started = time.perf_counter()
    await asyncio.gather(
        *(
            _connection(port, key, indices, total, invoices, f"{tag}{c}", latencies, failures)
            for c in range(concurrency)
        )
    )
    return time.perf_counter() - started, latencies, failures


def run(
    mode: str, key: str, requests: int, repeat: int, args: argparse.Namespace
) -> dict[str, Any]:
    """`repeat` timed runs against one server; the median run (by rate) is reported."""
    import uvloop

    process, port = start_server(mode)
    runs = []
    try:
        # Warm up: connections, prepared statements, caches; then statistics of the tables
        # the payments fill (as autovacuum would soon have them).
        uvloop.run(_load(port, key, args.warmup, args.concurrency, args.invoices, f"w{mode}"))
        analyze()
        for n in range(repeat):
            seconds, latencies, failures = uvloop.run(
                _load(port, key, requests, args.concurrency, args.invoices, f"{mode}{n}-")
            )
            if failures:
                raise SystemExit(f"{mode}: {len(failures)} requests failed, e.g. {failures[:3]}")
            latencies.sort()
            runs.append(
                {
                    "posts_per_s": round(len(latencies) / seconds),
                    "seconds": round(seconds, 2),
                    "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
                    "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
                }
            )
    finally:
        process.terminate()
        process.wait(timeout=30)
    median = sorted(runs, key=lambda r: r["posts_per_s"])[(len(runs) - 1) // 2]
    return {**median, "all_posts_per_s": [r["posts_per_s"] for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument(
        "--baseline-requests", type=int, default=2_000, help="the naive run is slow: fewer"
    )
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs of ours; the median is reported"
    )
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--invoices", type=int, default=20_000)
    parser.add_argument("--serve", choices=["ours", "naive"])
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.serve:
        serve(PG_BENCH, args.port, args.serve)
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode, requests, repeat in (
            ("ours", args.requests, args.repeat),
            ("naive", args.baseline_requests, 1),
        ):
            key = fresh_database(args.invoices, Path(tmp))
            results[mode] = run(mode, key, requests, repeat, args)
    ours, naive = results["ours"], results["naive"]
    print(
        json.dumps(
            {
                "bench": "api",
                "db": "postgresql",
                "workers": 1,
                "concurrency": args.concurrency,
                "requests": args.requests,
                "invoices": args.invoices,
                **ours,
                "target_posts_per_s": TARGET_POSTS_PER_S,
                "meets_target": ours["posts_per_s"] >= TARGET_POSTS_PER_S,
                "load_average": [round(x, 1) for x in os.getloadavg()],
                "baseline_requests": args.baseline_requests,
                "baseline_posts_per_s": naive["posts_per_s"],
                "baseline_p50_ms": naive["p50_ms"],
                "baseline_p99_ms": naive["p99_ms"],
                "ratio_to_baseline": round(ours["posts_per_s"] / naive["posts_per_s"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
