"""Saved simulation comparisons: stored as plain JSON, listed newest first, and never
visible to another creditor — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import Engine

from parcours.store.simulations import SimulationStore
from parcours.store.uow import UnitOfWork

AT = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)


def report(days: int) -> dict[str, object]:
    return {
        "days": days,
        "seeds": [1, 2, 3],
        "cases": 1_000,
        "strategies": {"persona": "each persona's journey", "universal": "the ladder"},
        "groups": [{"persona": "(all)", "metrics": {"rate": {"mean": np.float64(0.5)}}}],
        "start": dt.date(2026, 8, 7),
    }


def test_runs_are_kept_per_creditor_newest_first(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        acme = uow.creditors.add("acme", AT)
        other = uow.creditors.add("other", AT)
        mine = SimulationStore(uow.connection(), acme.id)
        first = mine.save(report(30), AT)
        second = mine.save(report(120), AT + dt.timedelta(hours=1), label="x" * 300)
        theirs = SimulationStore(uow.connection(), other.id).save(report(60), AT)
        uow.commit()
    with engine.connect() as connection:
        mine = SimulationStore(connection, acme.id)
        listed = mine.list()
        assert [r.id for r in listed] == [second, first]
        assert [r.label for r in listed] == ["x" * 200, "persona vs universal"]
        assert (listed[1].days, listed[1].seeds, listed[1].cases) == (30, 3, 1_000)
        assert all(r.report is None for r in listed)
        got = mine.get(first)
        assert got is not None and got.report is not None
        # numpy figures and dates come back as plain JSON values
        assert got.report["groups"][0]["metrics"]["rate"]["mean"] == 0.5
        assert got.report["start"] == "2026-08-07"
        assert mine.get(theirs) is None  # another creditor's run
        assert [r.id for r in SimulationStore(connection, other.id).list()] == [theirs]


def test_a_report_with_nan_is_refused(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        acme = uow.creditors.add("acme", AT)
        bad = {**report(30), "cases": 1, "groups": [{"mean": float("nan")}]}
        with pytest.raises(ValueError, match="not JSON compliant"):
            SimulationStore(uow.connection(), acme.id).save(bad, AT)
