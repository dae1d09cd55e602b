"""A run split by debtor into parts simulated in parallel, with the same results but for
rare one-day shifts.

A debtor's behaviour depends only on its own random numbers (drawn at its place in the
whole portfolio, see `Population.create`) and on what the engine does to it, which
depends only on its own cases: caps, quiet hours, arms and attempt ids are per person
or per case. So the portfolio can be cut by debtor, each part simulated on its own copy
of the template database (holding only its debtors) in its own process, and the parts'
rows put back in place: the figures of one run, in a fraction of the time.

Not yet exact: in about one run in eight of 300 debtors, one debtor's step comes a day
apart in a part and in the whole (the same attempt id, sent on day 23 in one, day 24 in
the other). Something the engine reads depends on the rest of the database (the size
that picks how facts are read, or an order among rows at one instant); the behaviour
model itself is exact (tests/sim/test_behaviour.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from parcours.sim.behaviour import IntArray
from parcours.sim.report import SeedRun

__all__ = ["Shard", "merge", "split"]


@dataclasses.dataclass(frozen=True)
class Shard:
    """One part of a placement: its own template database and its rows' places (`ids`)
    among the `universe` rows of the whole."""

    placement: Any  # sim.run.Placement, restricted to the part's rows
    ids: IntArray
    universe: int


def _part(ref: str, shards: int) -> int:
    """The part of a debtor: by its reference, so all its cases go together."""
    return zlib.crc32(ref.encode()) % shards


def split(placement: Any, shards: int) -> list[Shard]:
    """The placement cut into `shards` parts by debtor (each database made once, kept
    beside the template)."""
    n = len(placement)
    if shards <= 1:
        return [Shard(placement, np.arange(n, dtype=np.int64), n)]
    part_of = np.array([_part(ref, shards) for ref in placement.debtor_refs], dtype=np.int64)
    out = []
    for k in range(shards):
        ids = np.flatnonzero(part_of == k)
        database = placement.database.with_name(
            f"{placement.database.stem}-part{k + 1}of{shards}.db"
        )
        if not database.exists():
            _keep_only(placement.database, database, lambda ref, k=k: _part(ref, shards) == k)
        pick = ids.tolist()
        out.append(
            Shard(
                dataclasses.replace(
                    placement,
                    database=database,
                    case_refs=[placement.case_refs[i] for i in pick],
                    debtor_refs=[placement.debtor_refs[i] for i in pick],
                    persona=[placement.persona[i] for i in pick],
                    latent=[placement.latent[i] for i in pick],
                    placed_minor=placement.placed_minor[ids],
                    due_day=placement.due_day[ids],
                    communication=[placement.communication[i] for i in pick],
                ),
                ids,
                n,
            )
        )
    return out


def _keep_only(template: Path, target: Path, keep: Any) -> None:
    """Copy the template without the debtors `keep` refuses (and all that hangs on them:
    every table with a debtor, case or invoice column, cases and invoices included),
    checked by SQLite's foreign keys."""
    building = target.with_suffix(".building")
    building.unlink(missing_ok=True)
    with (
        contextlib.closing(sqlite3.connect(template)) as source,
        contextlib.closing(sqlite3.connect(building)) as raw,
    ):
        source.backup(raw)
        raw.execute("PRAGMA foreign_keys=OFF")
        raw.execute("CREATE TEMPORARY TABLE gone_debtors (id BLOB PRIMARY KEY)")
        raw.executemany(
            "INSERT INTO gone_debtors VALUES (?)",
            [(i,) for i, ref in raw.execute("SELECT id, ref FROM debtors") if not keep(ref)],
        )
        raw.execute(
            "CREATE TEMPORARY TABLE gone_cases AS SELECT id FROM cases "
            "WHERE debtor_id IN (SELECT id FROM gone_debtors)"
        )
        raw.execute(
            "CREATE TEMPORARY TABLE gone_invoices AS SELECT id FROM invoices "
            "WHERE case_id IN (SELECT id FROM gone_cases)"
        )
        # Append-only tables guard themselves with triggers: off while the copy is cut.
        triggers = raw.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='trigger'"
        ).fetchall()
        for name, _ in triggers:
            raw.execute(f"DROP TRIGGER {name}")
        by = {"invoice_id": "gone_invoices", "case_id": "gone_cases", "debtor_id": "gone_debtors"}
        tables = [t for (t,) in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            columns = {row[1] for row in raw.execute(f"PRAGMA table_info({table})")}
            for column, gone in by.items():
                if column in columns:
                    raw.execute(f"DELETE FROM {table} WHERE {column} IN (SELECT id FROM {gone})")
        raw.execute("DELETE FROM debtors WHERE id IN (SELECT id FROM gone_debtors)")
        for _, sql in triggers:
            raw.execute(sql)
        raw.commit()
        dangling = raw.execute("PRAGMA foreign_key_check").fetchall()
        if dangling:  # a table this does not know points at a debtor that is gone
            raise RuntimeError(f"splitting {template.name} left dangling rows: {dangling[:3]}")
        raw.execute("VACUUM")
    building.rename(target)


def merge(parts: Sequence[tuple[Shard, SeedRun]]) -> SeedRun:
    """The parts' runs as one: each row back in its place, the engine's counts and the
    seconds of each part summed (seconds of work, not of the clock)."""
    if len(parts) == 1:
        return parts[0][1]
    shard, first = parts[0]
    n = shard.universe

    def rows(name: str) -> Any:
        sample = getattr(first, name)
        whole = np.zeros((n, *sample.shape[1:]), dtype=sample.dtype)
        for s, run in parts:
            whole[s.ids] = getattr(run, name)
        return whole

    def listed(name: str) -> list[Any]:
        whole: list[Any] = [None] * n
        for s, run in parts:
            for i, value in zip(s.ids.tolist(), getattr(run, name), strict=True):
                whole[i] = value
        return whole

    collected = {}
    for window in first.collected_at:
        collected[window] = np.zeros(n, dtype=first.collected_at[window].dtype)
        for s, run in parts:
            collected[window][s.ids] = run.collected_at[window]
    engine: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for _, run in parts:
        _add(engine, run.engine)
        for key, value in run.timings.items():
            timings[key] = round(timings.get(key, 0.0) + value, 3)
    arrays = (
        "placed_minor", "due_day", "paid_day", "contacts", "sms_units", "complaints",
        "opted_out", "disputed", "promises", "plans", "csat",
    )  # fmt: skip
    return dataclasses.replace(
        first,
        persona=listed("persona"),
        arm=listed("arm") if first.arm is not None else None,
        collected_at=collected,
        engine=engine,
        timings=timings,
        **{name: rows(name) for name in arrays},
    )


def _add(total: dict[str, Any], more: dict[str, Any]) -> None:
    """Sum nested dicts of counts into `total`."""
    for key, value in more.items():
        if isinstance(value, dict):
            _add(total.setdefault(key, {}), value)
        else:
            total[key] = total.get(key, 0) + value
