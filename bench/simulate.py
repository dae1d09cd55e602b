"""Benchmark: a simulated replay through the real engine, against a naive per-case loop.

Prints one JSON line. A generated portfolio of `--debtors` debtors is imported and
classified once into a template database (cached under bench/data, not timed); one run
of `--strategy` then simulates `--days` days on a fresh copy: each day the real tick
(planner, policy gate, outbox), the real dispatcher through the recording provider, the
behaviour model, and the feedback through the production paths (camt.053 statements
reconciled, events, promises, plans, disputes, answers). Reported: debtor-days per
second and the share of the run's time spent in

- planner: `journeys.planner.plan` and `compile_journeys`, called by the tick;
- gate: the policy gate's verdicts (`GateFacts.check_send`, `check_fee`, chat services),
  in the tick and again at dispatch;
- messages: composing each message (`dispatch._compose`: its facts, signed links);
- storage: everything else of the engine — reading facts, writing the outbox, policy log,
  enrolments, events, payments, the statement import and reconciliation, commits;
- model: `Population.day`; driver: the simulator's own glue.

The run is cut by debtor into `--shards` parts (default: one per CPU) simulated in
parallel processes, each on its own database (`sim.shards`: the figures are those of the
run done whole, but for a rare one-day shift). `seconds` is the wall clock;
`work_seconds` and the shares sum the parts.

The naive baseline runs the same kind of days the way a classic dunning job does — for
each case, one ORM query for its invoices, one for what it was already sent, an ORM
insert per letter of a three-step ladder, and each payment booked by an ORM update and
insert — on `--naive-debtors` debtors for `--naive-days` days, with the same model;
the ratio compares the (wall) time per debtor-day.

    python bench/simulate.py                                    # 100,000 debtors x 120 days
    python bench/simulate.py --debtors 20000 --days 30 --naive-debtors 500 --naive-days 10
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TARGET_SECONDS = 90.0
TARGET_DEBTORS = 100_000
TARGET_DAYS = 120
AS_OF = dt.date(2026, 11, 30)


def portfolio(data_dir: Path, debtors: int) -> Path:
    """Generate (once, cached) the portfolio to simulate."""
    from parcours.sim.portfolio import generate_portfolio

    out = data_dir / f"sim-portfolio-{debtors}"
    if not (out / "manifest.json").exists():
        generate_portfolio(out, debtors=debtors, seed=11, as_of=AS_OF)
    return out


@contextlib.contextmanager
def timed_parts(seconds: dict[str, float]) -> Iterator[None]:
    """Time the planner, the gate and message composition where the engine calls them
    (module attributes wrapped for the run, restored after)."""
    from parcours.runtime import dispatch, tick

    def wrap(owner: Any, name: str, part: str) -> tuple[Any, str, Any]:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[part] = seconds.get(part, 0.0) + time.perf_counter() - started

        setattr(owner, name, timed)
        return owner, name, original

    patched = [
        wrap(tick, "plan", "planner"),
        wrap(tick, "compile_journeys", "planner"),
        wrap(tick.GateFacts, "check_send", "gate"),
        wrap(tick, "check_fee", "gate"),
        wrap(dispatch, "service_verdict", "gate"),
        wrap(dispatch, "_compose", "messages"),
    ]
    try:
        yield
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)


def _part(job: tuple[Any, str, int, int, Path]) -> tuple[Any, dict[str, float]]:
    """One part of the run (in a worker process), with its planner, gate and message
    seconds."""
    from parcours.journeys.library import load_library
    from parcours.sim.run import run_seed, strategy

    shard, name, days, seed, work = job
    chosen = strategy(name, load_library())
    parts: dict[str, float] = dict.fromkeys(("planner", "gate", "messages"), 0.0)
    with timed_parts(parts):
        run = run_seed(shard.placement, chosen, days=days, seed=seed, work=work, shard=shard)
    return run, parts


def ours(
    placement: Any, name: str, days: int, seed: int, work: Path, shards: int
) -> dict[str, Any]:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from parcours.sim.shards import merge, split

    pieces = split(placement, shards)  # each part's database is made once (not timed)
    jobs = [(piece, name, days, seed, work) for piece in pieces]
    started = time.perf_counter()
    if shards == 1:
        results = [_part(jobs[0])]
    else:
        with ProcessPoolExecutor(shards, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_part, jobs))
    seconds = time.perf_counter() - started
    run = merge([(piece, result) for piece, (result, _) in zip(pieces, results, strict=True)])
    parts = {k: sum(p[k] for _, p in results) for k in ("planner", "gate", "messages")}
    t = run.timings  # seconds of work, summed over the parts
    engine = t.get("tick", 0.0) + t.get("dispatch", 0.0) + t.get("feedback", 0.0)
    split_seconds = {
        "planner": parts["planner"],
        "gate": parts["gate"],
        "messages": parts["messages"],
        "storage": engine - parts["planner"] - parts["gate"] - parts["messages"],
        "model": t.get("model", 0.0),
        "driver": t.get("driver", 0.0),
    }
    work_seconds = t.get("total", seconds)
    split_seconds["other"] = max(0.0, work_seconds - sum(split_seconds.values()))
    fed = run.engine
    return {
        "seconds": seconds,
        "work_seconds": work_seconds,
        "shares": {k: round(v / work_seconds, 3) for k, v in split_seconds.items()},
        "part_seconds": {k: round(v, 2) for k, v in split_seconds.items()},
        "loop_seconds": {k: round(v, 2) for k, v in t.items()},
        "messages": fed.get("fed_messages", 0),
        "calls": fed.get("fed_calls", 0),
        "payments": fed.get("fed_payments_booked", 0),
        "outbox_rows": sum(fed.get("outbox", {}).values()),
        "gate_decisions": fed.get("gate_decisions", 0),
        "collected_share": round(
            float(run.collected_at[days].sum()) / float(run.placed_minor.sum()), 4
        ),
    }


def naive(placement: Any, days: int, sample: int, seed: int, work: Path) -> dict[str, Any]:
    """A classic dunning job day by day, one case at a time, through the ORM."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from naive import ladder_letter
    from parcours.sim.behaviour import Contacts, Population
    from parcours.store.db import connect
    from parcours.store.repositories import new_id
    from parcours.store.schema import CaseRow, InvoiceRow, PaymentRow

    path = work / "naive.db"
    shutil.copyfile(placement.database, path)
    engine = connect(f"sqlite:///{path}")
    creditor = placement.creditor_id
    refs = placement.case_refs[:sample]
    population = Population.create(
        list(placement.latent[:sample]),
        placement.placed_minor[:sample],
        placement.due_day[:sample],
        seed,
    )
    letters = paid = 0
    started = time.perf_counter()
    with Session(engine) as session:
        for day in range(days):
            now = placement.tick_time(day)
            contacted: list[int] = []
            case_of: dict[int, Any] = {}
            for i, ref in enumerate(refs):
                case = session.scalars(
                    select(CaseRow).where(CaseRow.creditor_id == creditor, CaseRow.ref == ref)
                ).one()
                case_of[i] = case
                if ladder_letter(session, case, now, sent=True) is not None:
                    contacted.append(i)
                    letters += 1
            outcome = population.day(day, Contacts.build(contacted, "letter", tone="firm"))
            for i, amount in zip(
                outcome.payments.debtor.tolist(),
                outcome.payments.amount_minor.tolist(),
                strict=True,
            ):
                case = case_of[i]
                left = int(amount)
                for invoice in session.scalars(
                    select(InvoiceRow)
                    .where(InvoiceRow.creditor_id == creditor, InvoiceRow.case_id == case.id)
                    .order_by(InvoiceRow.due_date)
                ).all():
                    part = min(left, invoice.amount_minor - invoice.paid_minor)
                    if part <= 0:
                        continue
                    invoice.paid_minor += part
                    left -= part
                    session.add(
                        PaymentRow(
                            id=new_id(), creditor_id=creditor, case_id=case.id,
                            invoice_id=invoice.id, ref=f"naive-{seed}-{day}-{i}-{invoice.id}",
                            amount_minor=part, currency=placement.currency, paid_at=now,
                            source="statement", source_digest=0, created_at=now,
                        )
                    )  # fmt: skip
                    paid += 1
                session.flush()
            session.commit()
    seconds = time.perf_counter() - started
    engine.dispose()
    return {
        "debtors": len(refs),
        "days": days,
        "seconds": round(seconds, 2),
        "letters": letters,
        "payments": paid,
        "us_per_debtor_day": round(seconds / (len(refs) * days) * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--debtors", type=int, default=TARGET_DEBTORS)
    parser.add_argument("--days", type=int, default=TARGET_DAYS)
    parser.add_argument("--strategy", default="persona")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--naive-debtors", type=int, default=1_000)
    parser.add_argument("--naive-days", type=int, default=30)
    parser.add_argument("--data-dir", type=Path, default=Path("bench/data"))
    parser.add_argument(
        "--shards", type=int, default=os.cpu_count() or 1, help="parts run in parallel"
    )
    args = parser.parse_args()

    from parcours.settings import Settings
    from parcours.sim.run import prepare

    started = time.perf_counter()
    folder = portfolio(args.data_dir, args.debtors)
    placement = prepare(folder, args.data_dir / "sim-work", settings=Settings())
    prepared = time.perf_counter() - started
    with tempfile.TemporaryDirectory(dir=args.data_dir) as tmp:
        work = Path(tmp)
        ours_result = ours(placement, args.strategy, args.days, args.seed, work, args.shards)
        naive_result = naive(placement, args.naive_days, args.naive_debtors, args.seed, work)
    seconds = float(ours_result["seconds"])
    debtor_days = len(placement) * args.days
    per_day_us = seconds / debtor_days * 1e6
    # The target is for 100,000 debtors x 120 days: smaller runs are scaled to it.
    target = TARGET_SECONDS * debtor_days / (TARGET_DEBTORS * TARGET_DAYS)
    print(
        json.dumps(
            {
                "bench": "simulate",
                "database": "sqlite",
                "strategy": args.strategy,
                "debtors": len(placement),
                "days": args.days,
                "debtor_days": debtor_days,
                "shards": args.shards,
                "seconds": round(seconds, 1),
                "work_seconds": round(float(ours_result["work_seconds"]), 1),
                "debtor_days_per_s": round(debtor_days / seconds),
                "us_per_debtor_day": round(per_day_us, 1),
                "target_seconds": round(target, 1),
                "meets_target": seconds <= target,
                "over_target": round(seconds / target, 2),
                "shares": ours_result["shares"],
                "part_seconds": ours_result["part_seconds"],
                "loop_seconds": ours_result["loop_seconds"],
                "messages": ours_result["messages"],
                "calls": ours_result["calls"],
                "payments_booked": ours_result["payments"],
                "outbox_rows": ours_result["outbox_rows"],
                "gate_decisions": ours_result["gate_decisions"],
                "collected_share": ours_result["collected_share"],
                "prepare_seconds_untimed": round(prepared, 1),
                "naive": naive_result,
                "ratio_to_naive": round(per_day_us / float(naive_result["us_per_debtor_day"]), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
