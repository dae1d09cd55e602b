"""The naive baseline the engine's benchmarks compare against: the universal ladder run
the way classic dunning modules run it — per case, one ORM query for its invoices, one
for what was already sent, and one ORM insert per letter (`bench/planner.py`,
`bench/simulate.py`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.store.repositories import new_id
from parcours.store.schema import InvoiceRow, OutboxRow

LADDER = ((35, "formal_notice"), (21, "reminder_2"), (7, "reminder_1"))  # days late → letter


def ladder_letter(session: Session, case: Any, at: dt.datetime, *, sent: bool) -> str | None:
    """Add the ladder's letter due for `case` at `at` (queued, or already `sent`), unless
    nothing is open, nothing is due yet or that letter went before; returns its step."""
    invoices = session.scalars(
        select(InvoiceRow).where(
            InvoiceRow.creditor_id == case.creditor_id, InvoiceRow.case_id == case.id
        )
    ).all()
    open_ = [i for i in invoices if i.paid_minor < i.amount_minor]
    if not open_:
        return None
    late = (at.date() - min(i.due_date for i in open_)).days
    level = next((step for days, step in LADDER if late >= days), None)
    if level is None:
        return None
    attempt = f"naive-{case.id}-{level}"
    if session.scalars(select(OutboxRow.id).where(OutboxRow.attempt_id == attempt)).first():
        return None
    session.add(
        OutboxRow(
            id=new_id(), attempt_id=attempt, creditor_id=case.creditor_id, case_id=case.id,
            debtor_id=case.debtor_id, journey="naive@1", node_id=level, step=0, kind="send",
            channel="letter", template=level, reminder=True,
            status="sent" if sent else "queued", not_before=at, created_at=at,
            sent_at=at if sent else None,
        )
    )  # fmt: skip
    session.flush()
    return level
