"""What a debtor chose on their page steers the journey: the channel to try first, and no
reminder before the due date when they declined it — in the planner, the gate and a tick."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select, update

from parcours.domain.journey import SendNode
from parcours.journeys.facts import CHANNEL_BITS
from parcours.journeys.library import Library
from parcours.journeys.planner import _channels
from parcours.journeys.policy import ContactFacts, check_send
from parcours.runtime.tick import run_tick
from parcours.store.schema import DebtorRow, OutboxRow
from parcours.store.uow import UnitOfWork
from tests.runtime.test_dispatch import DAY_TWO, journeys
from tests.runtime.test_tick import START, load, rows

CHANNELS = ("email", "sms", "letter", "phone")


def node(channels: tuple[str, ...], fallback: tuple[str, ...], mode: str = "first") -> SendNode:
    return SendNode.model_validate(
        {"id": "s", "type": "send", "template": "t", "channels": channels,
         "fallback": fallback, "mode": mode, "next": "x"}
    )  # fmt: skip


def test_the_preferred_channel_goes_first_when_the_step_offers_it() -> None:
    step = node(("email", "sms"), ("letter",))
    every = sum(CHANNEL_BITS.values())
    assert _channels(step, every) == ("email",)
    assert _channels(step, every, CHANNEL_BITS["sms"]) == ("sms",)
    assert _channels(step, every, CHANNEL_BITS["letter"]) == ("letter",)  # a fallback too
    assert _channels(step, every, CHANNEL_BITS["phone"]) == ("email",)  # not offered
    unreachable = every & ~CHANNEL_BITS["sms"]
    assert _channels(step, unreachable, CHANNEL_BITS["sms"]) == ("email",)
    both = node(("email", "sms"), (), "all")
    assert _channels(both, every, CHANNEL_BITS["sms"]) == ("email", "sms")


@given(
    st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=4, unique=True),
    st.integers(0, 15),
    st.sampled_from((0, *(CHANNEL_BITS[c] for c in CHANNELS))),
)
def test_a_preference_never_picks_a_channel_the_step_or_the_debtor_does_not_allow(
    offered: list[str], reachable: int, preferred: int
) -> None:
    step = node(tuple(offered[:1]), tuple(offered[1:]))
    chosen = _channels(step, reachable, preferred)
    assert set(chosen) <= set(offered)
    assert all(reachable & CHANNEL_BITS[c] for c in chosen)
    if chosen and preferred & reachable and any(CHANNEL_BITS[c] == preferred for c in offered):
        assert chosen == tuple(c for c in offered if CHANNEL_BITS[c] == preferred)
    assert bool(chosen) == bool(_channels(step, reachable))  # reachable or not, as before


def test_the_gate_keeps_quiet_before_the_due_date_when_asked() -> None:
    monday = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
    facts = ContactFacts(
        balance_minor=100, reachable=frozenset({"sms"}), pre_due_declined=True,
        due_on=dt.date(2026, 12, 10),
    )  # fmt: skip
    assert check_send(facts, "sms", monday).verdict == "skip"
    on_due = dt.datetime(2026, 12, 10, 9, 0, tzinfo=dt.UTC)
    assert check_send(facts, "sms", on_due).verdict == "send"
    willing = ContactFacts(
        balance_minor=100, reachable=frozenset({"sms"}), due_on=dt.date(2026, 12, 10)
    )
    assert check_send(willing, "sms", monday).verdict == "send"


def ticks(
    engine: Engine, tmp_path: Path, answers: dict[str, bool], library: Library,
    days: Iterable[dt.datetime],
) -> None:  # fmt: skip
    """Load the test portfolio, give these debtors their answer to "remind me before due
    dates", and run a tick on each day."""
    load(engine, tmp_path)
    with engine.begin() as connection:
        for ref, answer in answers.items():
            connection.execute(
                update(DebtorRow).where(DebtorRow.ref == ref).values(remind_before_due=answer)
            )
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.by_name("acme")
        assert creditor is not None
        for day in days:
            run_tick(uow.connection(), creditor.id, library, day)
        uow.commit()


def test_a_tick_sends_no_pre_due_nudge_to_who_declined_it(engine: Engine, tmp_path: Path) -> None:
    # The second tick is three days before the due date.
    ticks(engine, tmp_path, {"D1": False, "D2": True}, journeys(), [START, DAY_TWO])
    outcomes = rows(engine, OutboxRow.status, OutboxRow.reason)
    assert ("skipped", "the debtor asked for no reminder before the due date") in outcomes
    assert sum(status == "queued" for status, _ in outcomes) == 2  # D2 and D3 as before


def test_who_asked_for_reminders_before_due_dates_gets_one_on_a_journey_without_it(
    engine: Engine, tmp_path: Path
) -> None:
    """The built-in universal ladder (letters from due date + 7) sends the courtesy message
    three days before the due date to the debtor who asked for it on their page, and to
    nobody else; the ladder then goes on as before for everyone."""
    from parcours.journeys.library import load_library
    from parcours.store.schema import CaseRow, EnrolmentRow

    library = load_library()
    assert library.latest("universal").version == 2
    days = [START + dt.timedelta(days=n) for n in range(12)]
    ticks(engine, tmp_path, {"D2": True, "D3": False}, library, days)
    with engine.connect() as connection:
        debtor_of = dict(
            tuple(r) for r in connection.execute(select(CaseRow.id, DebtorRow.ref).join(DebtorRow))
        )
    sent = sorted(
        (debtor_of[case], template, status, not_before.date())
        for case, template, status, not_before in rows(
            engine, OutboxRow.case_id, OutboxRow.template, OutboxRow.status, OutboxRow.not_before
        )
    )
    due = (DAY_TWO + dt.timedelta(days=3)).date()
    pre_due = [s for s in sent if s[1] == "pre_due"]
    assert [(d, status, day) for d, _, status, day in pre_due] == [
        ("D2", "queued", due - dt.timedelta(days=3))
    ]
    firsts = {d for d, template, *_ in sent if template == "reminder_1"}
    assert firsts == {"D1", "D2", "D3"}
    assert {v for (v,) in rows(engine, EnrolmentRow.journey_version)} == {2}
