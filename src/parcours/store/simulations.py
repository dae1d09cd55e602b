"""Saved simulation comparisons of a creditor (`parcours simulate --save`), newest first.

The report is the `SimulationReport.as_dict()` of `parcours.sim.report`: per strategy,
arm and persona every figure's mean, 95 % interval and per-seed values, and each
strategy's paired difference to the baseline. Every query names the creditor.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, insert, select

from parcours.store.repositories import new_id
from parcours.store.schema import SimulationRunRow

__all__ = ["LABEL_CHARS", "SimulationRun", "SimulationStore"]

LABEL_CHARS: Final = 200


@dataclass(frozen=True, slots=True)
class SimulationRun:
    id: uuid.UUID
    created_at: dt.datetime
    label: str
    days: int
    seeds: int
    cases: int
    report: dict[str, Any] | None  # None in listings


class SimulationStore:
    def __init__(self, connection: Connection, creditor_id: uuid.UUID) -> None:
        self.connection = connection
        self.creditor_id = creditor_id

    def save(self, report: dict[str, Any], at: dt.datetime, label: str = "") -> uuid.UUID:
        """Store a report; its label defaults to the strategies compared."""
        strategies = report.get("strategies") or {}
        label = (label or " vs ".join(strategies) or "simulation")[:LABEL_CHARS]
        run_id = new_id()
        # Through JSON once: numpy scalars and dates become plain values, NaN refused.
        plain = json.loads(json.dumps(report, default=str, allow_nan=False))
        self.connection.execute(
            insert(SimulationRunRow).values(
                id=run_id,
                creditor_id=self.creditor_id,
                created_at=at,
                label=label,
                days=int(report["days"]),
                seeds=len(report.get("seeds") or ()),
                cases=int(report.get("cases") or 0),
                report=plain,
            )
        )
        return run_id

    def list(self, limit: int = 50) -> list[SimulationRun]:
        t = SimulationRunRow
        rows = self.connection.execute(
            select(t.id, t.created_at, t.label, t.days, t.seeds, t.cases)
            .where(t.creditor_id == self.creditor_id)
            .order_by(t.created_at.desc(), t.id.desc())
            .limit(limit)
        )
        return [SimulationRun(*row, report=None) for row in rows]

    def get(self, run_id: uuid.UUID) -> SimulationRun | None:
        t = SimulationRunRow
        row = self.connection.execute(
            select(t.id, t.created_at, t.label, t.days, t.seeds, t.cases, t.report).where(
                t.creditor_id == self.creditor_id, t.id == run_id
            )
        ).first()
        return None if row is None else SimulationRun(*row)
