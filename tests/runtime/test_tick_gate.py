"""The tick's gate shortcuts give the policy gate's own verdicts.

A tick judges hundreds of thousands of messages: `GateFacts.check_send` shares one
verdict among cases that differ in nothing the gate reads, and skips the cap when the
person's recent messages leave it open. Whatever the facts, the verdict must be the one
`policy.check_send` gives on the case's full `ContactFacts`.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from parcours.journeys.facts import CHANNEL_BITS, CaseFacts, PlanState
from parcours.journeys.policy import CHANNELS, PolicyConfig, check_send
from parcours.runtime.tick import GateFacts

NOW = dt.datetime(2026, 12, 4, 9, 30, tzinfo=dt.UTC)  # a Friday, 10:30 in Brussels
EPOCH = dt.date(1970, 1, 1)

case = st.fixed_dictionaries(
    {
        "balance": st.sampled_from([-100, 0, 1, 5_000]),
        "due_in": st.integers(-20, 20),
        "reachable": st.integers(0, 2 ** len(CHANNEL_BITS) - 1),
        "disputed": st.booleans(),
        "legal_hold": st.booleans(),
        "objection": st.booleans(),
        "plan": st.sampled_from(list(PlanState)),
        "question": st.booleans(),
        "pre_due_declined": st.booleans(),
        "vulnerable": st.booleans(),
        "zone": st.sampled_from([None, "Europe/Brussels", "America/New_York", "Asia/Tokyo"]),
        "country": st.sampled_from([None, "BE", "FR", "US"]),
        "calls": st.lists(st.integers(0, 10 * 86_400), max_size=8),
        "conversation": st.one_of(st.none(), st.integers(0, 10 * 86_400)),
    }
)
contact = st.tuples(st.sampled_from(CHANNELS), st.integers(-10 * 86_400, 2 * 86_400))


@settings(max_examples=300, deadline=None)
@given(
    cases=st.lists(case, min_size=1, max_size=6),
    asks=st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from(CHANNELS), st.lists(contact, max_size=5)),
        min_size=1,
        max_size=12,
    ),
    max_written=st.integers(1, 4),
)
def test_the_shared_verdict_is_the_gates_verdict_on_the_full_facts(
    cases: list[dict[str, object]],
    asks: list[tuple[int, str, list[tuple[str, int]]]],
    max_written: int,
) -> None:
    policy = PolicyConfig(max_written=max_written)
    today = (NOW.date() - EPOCH).days
    facts = CaseFacts.empty([f"case-{i}" for i in range(len(cases))])
    for i, c in enumerate(cases):
        facts.balance_minor[i] = c["balance"]
        facts.due_day[i] = today + int(c["due_in"])  # type: ignore[call-overload]
        facts.reachable[i] = c["reachable"]
        facts.disputed[i] = c["disputed"]
        facts.legal_hold[i] = c["legal_hold"]
        facts.contact_objection[i] = c["objection"]
        facts.plan[i] = c["plan"]
        facts.question_open[i] = c["question"]
        facts.pre_due_declined[i] = c["pre_due_declined"]
        facts.vulnerable[i] = c["vulnerable"]
    start = int(NOW.timestamp()) - 8 * 86_400
    gate = GateFacts(
        facts,
        [c["zone"] for c in cases],  # type: ignore[misc]
        [c["country"] for c in cases],  # type: ignore[misc]
        {},
        {},
        {i: [start + t for t in c["calls"]] for i, c in enumerate(cases) if c["calls"]},  # type: ignore[attr-defined]
        {
            i: start + int(c["conversation"])  # type: ignore[call-overload]
            for i, c in enumerate(cases)
            if c["conversation"] is not None
        },
    )
    for row, channel, sent in asks:
        row %= len(cases)
        recent = [(ch, NOW + dt.timedelta(seconds=s)) for ch, s in sent]
        shared = gate.check_send(row, channel, recent, NOW, policy)  # type: ignore[arg-type]
        own = check_send(gate.contact(row, tuple(recent)), channel, NOW, policy)  # type: ignore[arg-type]
        assert shared == own, (row, channel, recent)
