"""Agent tasks: the calls and follow-ups journeys ask for, and what the agent reports.

A call ends with a disposition, and each feeds the journey as an event of the case:

- `right_party` — a conversation with the debtor: no other call for 7 days (the gate);
- `no_answer` — an attempt, counted in the call cap (7 per 7 days per debt);
- `wrong_number` — the number is not the debtor's: it is never used again (SMS or call);
- `promise` — the debtor promised an amount by a date: a pending promise, which the
  journeys wait on (`promise_made`, the promise date anchor);
- `dispute` — the debtor contests the debt: recorded for the dispute workflow.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, Final

from sqlalchemy import Connection, Engine

from parcours.journeys.policy import DEFAULT_POLICY, PolicyConfig
from parcours.store.messages import MessageStore

__all__ = ["Disposition", "TaskError", "complete_task", "due_tasks"]

_PAGES: Final = 10  # pages of tasks `due_tasks` reads at most to fill its list


class Disposition(enum.StrEnum):
    RIGHT_PARTY = "right_party"
    NO_ANSWER = "no_answer"
    WRONG_NUMBER = "wrong_number"
    PROMISE = "promise"
    DISPUTE = "dispute"


_EVENTS = {
    Disposition.RIGHT_PARTY: "call.conversation",
    Disposition.NO_ANSWER: "call.no_answer",
    Disposition.WRONG_NUMBER: "call.wrong_number",
    Disposition.PROMISE: "promise.made",
    Disposition.DISPUTE: "dispute.opened",
}


class TaskError(ValueError):
    """The task does not exist, is done, or the disposition lacks what it needs."""


def complete_task(
    engine: Engine,
    creditor_id: Any,
    attempt_id: str,
    disposition: Disposition,
    now: dt.datetime,
    *,
    promise: tuple[int, str, dt.date] | None = None,
) -> str:
    """Close an agent task with its disposition; returns what was recorded."""
    if disposition is Disposition.PROMISE and promise is None:
        raise TaskError("a promise needs its amount and date")
    if promise is not None and promise[2] < now.date():
        raise TaskError(f"the promise date {promise[2]} is in the past")
    with engine.begin() as connection:
        store = MessageStore(connection, creditor_id)
        found = store.task(attempt_id)
        if found is None:
            raise TaskError(f"no agent task {attempt_id!r}")
        outbox_id, case, debtor, _, script, status = found
        if status not in ("queued", "delayed"):
            raise TaskError(f"task {attempt_id} is already {status}")
        store.close_task(outbox_id, now, disposition.value)
        payload: dict[str, Any] = {"attempt_id": attempt_id, "script": script}  # no notes:
        # events never hold personal data, and an agent's words may.
        if disposition is Disposition.PROMISE:
            assert promise is not None
            amount, currency, due_on = promise
            store.add_promise(case, amount, currency, due_on, now)
            payload |= {"amount_minor": amount, "due_on": due_on.isoformat()}
        if disposition is Disposition.WRONG_NUMBER:
            store.opt_out(debtor, "phone_consent", now)
        store.add_event(case, debtor, _EVENTS[disposition], now, payload)
    return f"{attempt_id}: {disposition.value}"


def due_tasks(
    connection: Connection,
    creditor_id: Any,
    now: dt.datetime,
    limit: int,
    policy: PolicyConfig = DEFAULT_POLICY,
) -> list[tuple[Any, ...]]:
    """The agent tasks to do now, oldest first: (attempt id, case ref, channel, script,
    journey, created_at). A call passes the policy gate again on the live facts, as a
    message does at send time: no call to a case paid, disputed or held since it was
    planned, at night, or within a week of a conversation (it waits, listed later)."""
    store = MessageStore(connection, creditor_id)
    out: list[tuple[Any, ...]] = []
    # Page on, so that tasks the gate holds back (a case on hold keeps its place at the
    # head of the queue) do not fill the list; a bounded number of pages (at night every
    # call waits: no need to read them all).
    for page in range(_PAGES):
        found = store.open_tasks(now, limit, page * limit)
        barred = _barred(store, found, now, policy)
        out += [row[:6] for row in found if row[0] not in barred]
        if len(out) >= limit or len(found) < limit:
            break
    return out[:limit]


def _barred(
    store: MessageStore, found: list[tuple[Any, ...]], now: dt.datetime, policy: PolicyConfig
) -> set[str]:
    """Attempt ids of the calls among `found` that the gate does not let through now."""
    from parcours.runtime.tick import _read_facts

    calls = [row for row in found if row[2] == "phone"]
    if not calls:
        return set()
    cases = list(dict.fromkeys(row[6] for row in calls))
    debtor_of = {row[6]: row[7] for row in calls}
    gate = _read_facts(
        store, cases, [debtor_of[c] for c in cases], [store.text(c) for c in cases], now, policy
    )
    position = {case: i for i, case in enumerate(cases)}
    return {
        row[0]
        for row in calls
        if gate.check_send(
            position[row[6]], "phone", gate.recent.get(row[7], []), now, policy
        ).verdict
        != "send"
    }
