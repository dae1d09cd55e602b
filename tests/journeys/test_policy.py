"""The policy gate: holds, consent, rolling caps and quiet hours in the debtor's time zone.

Hypothesis drives the invariants with times drawn around DST changes and public holidays;
an independent oracle (the `holidays` calendar and wall-clock arithmetic written out here)
says what an allowed time is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
from functools import cache
from random import Random
from typing import get_args
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parcours.domain.journey import ChannelName, FeeKind
from parcours.journeys.law import LawConfig
from parcours.journeys.policy import (
    CHANNELS,
    DEFAULT_POLICY,
    WRITTEN_CHANNELS,
    ContactFacts,
    ContactWindow,
    GateDecision,
    PolicyConfig,
    check_fee,
    check_send,
    explain,
    next_allowed_time,
)

BRUSSELS = ZoneInfo("Europe/Brussels")
WEEK = dt.timedelta(days=7)
ALL = frozenset(CHANNELS)


def at(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> dt.datetime:
    """A Brussels wall-clock time."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=BRUSSELS)


def case(**changes: object) -> ContactFacts:
    """An open case in Brussels, reachable on every channel, with no history."""
    facts = ContactFacts(balance_minor=30_000, reachable=ALL)
    return dataclasses.replace(facts, **changes)  # type: ignore[arg-type]


# --- the oracle -----------------------------------------------------------------------------


@cache
def _holidays(country: str, year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays(country, years=year))


def allowed(moment: dt.datetime, zone: str | None, country: str | None) -> bool:
    """08:00 <= local time < 21:00, not a Sunday, not a public holiday (default policy)."""
    local = moment.astimezone(ZoneInfo(zone or "Europe/Brussels"))
    day = local.date()
    return (
        8 <= local.hour < 21
        and day.weekday() != 6
        and day not in _holidays(country or "BE", day.year)
    )


# --- strategies -----------------------------------------------------------------------------

ZONES = (None, "Europe/Brussels", "America/New_York", "Australia/Sydney", "Asia/Kolkata")
COUNTRIES = (None, "BE", "NL", "FR", "US", "DE")
# DST changes (EU, US, Sydney) and public holidays, as UTC instants.
LANDMARKS = (
    dt.datetime(2026, 3, 29, 1, tzinfo=dt.UTC),
    dt.datetime(2026, 10, 25, 1, tzinfo=dt.UTC),
    dt.datetime(2026, 3, 8, 7, tzinfo=dt.UTC),
    dt.datetime(2026, 11, 1, 6, tzinfo=dt.UTC),
    dt.datetime(2026, 4, 4, 16, tzinfo=dt.UTC),
    dt.datetime(2026, 10, 3, 16, tzinfo=dt.UTC),
    dt.datetime(2026, 12, 25, 12, tzinfo=dt.UTC),
    dt.datetime(2027, 1, 1, 12, tzinfo=dt.UTC),
    dt.datetime(2026, 4, 6, 12, tzinfo=dt.UTC),  # Easter Monday
    dt.datetime(2026, 5, 25, 12, tzinfo=dt.UTC),  # Whit Monday
    dt.datetime(2026, 7, 21, 12, tzinfo=dt.UTC),  # Belgian national day
    dt.datetime(2026, 7, 4, 12, tzinfo=dt.UTC),  # US Independence Day (a Saturday)
)
NEAR_LANDMARK = st.builds(
    lambda landmark, seconds: landmark + dt.timedelta(seconds=seconds),
    st.sampled_from(LANDMARKS),
    st.integers(min_value=-4 * 86_400, max_value=4 * 86_400),
)
ANY_TIME = st.datetimes(
    min_value=dt.datetime(2025, 6, 1),  # noqa: DTZ001
    max_value=dt.datetime(2027, 6, 1),  # noqa: DTZ001
    timezones=st.just(dt.UTC),
)
TIMES = st.one_of(NEAR_LANDMARK, ANY_TIME)
CHANNEL = st.sampled_from(CHANNELS)
AGO = st.integers(min_value=-3_600, max_value=10 * 86_400).map(lambda s: dt.timedelta(seconds=s))


@st.composite
def situations(
    draw: st.DrawFn, *, holds: bool | None = None
) -> tuple[ContactFacts, ChannelName, dt.datetime]:
    """Random facts, a channel and a time. `holds`: force (True) or forbid (False) a stop
    (paid, disputed, legal hold, objection); None: either."""
    now = draw(TIMES)
    flags = draw(st.lists(st.booleans(), min_size=4, max_size=4))
    if holds is False:
        flags = [False] * 4
    elif holds is True and not any(flags):
        flags[draw(st.integers(0, 3))] = True
    paid, disputed, legal_hold, objection = flags
    facts = ContactFacts(
        balance_minor=draw(st.integers(min_value=1, max_value=1_000_000)),
        paid=paid,
        disputed=disputed,
        legal_hold=legal_hold,
        contact_objection=objection,
        vulnerable=draw(st.booleans()) if holds is None else False,
        timezone=draw(st.sampled_from(ZONES)),
        country=draw(st.sampled_from(COUNTRIES)),
        reachable=frozenset(draw(st.sets(CHANNEL))) if holds is None else ALL,
        # A few contacts stamped slightly after `now` (clock skew) are included on purpose.
        recent_contacts=tuple(
            (channel, now - ago)
            for channel, ago in draw(st.lists(st.tuples(CHANNEL, AGO), max_size=6))
        ),
        recent_calls=tuple(now - ago for ago in draw(st.lists(AGO, max_size=10))),
        last_conversation_at=draw(st.none() | AGO.map(lambda ago: now - ago)),
    )
    return facts, draw(CHANNEL), now


FAST = settings(max_examples=150, deadline=None)


# --- invariants -----------------------------------------------------------------------------


@FAST
@given(situations(holds=True))
def test_never_sends_to_a_paid_disputed_held_or_objecting_case(
    situation: tuple[ContactFacts, ChannelName, dt.datetime],
) -> None:
    facts, channel, now = situation
    decision = check_send(facts, channel, now)
    assert decision.verdict == "skip" and decision.not_before is None


@FAST
@given(situations())
def test_a_send_is_always_inside_the_window_on_an_allowed_day_and_within_the_caps(
    situation: tuple[ContactFacts, ChannelName, dt.datetime],
) -> None:
    facts, channel, now = situation
    decision = check_send(facts, channel, now)
    if decision.verdict != "send":
        return
    assert allowed(now, facts.timezone, facts.country)
    assert not facts.is_paid and not facts.vulnerable and channel in facts.reachable
    if channel in WRITTEN_CHANNELS:
        written = [when for ch, when in facts.recent_contacts if ch in WRITTEN_CHANNELS]
        assert sum(now - WEEK < when for when in written) < 3
    else:
        assert sum(now - WEEK < when for when in facts.recent_calls) < 7
        talked = facts.last_conversation_at
        assert talked is None or now - talked >= WEEK


@FAST
@given(situations(holds=False))
def test_a_delay_points_to_the_first_moment_that_satisfies_every_rule(
    situation: tuple[ContactFacts, ChannelName, dt.datetime],
) -> None:
    """At `not_before` the same facts give "send"; one second earlier they do not."""
    facts, channel, now = situation
    decision = check_send(facts, channel, now)
    assert decision.verdict in ("send", "delay")
    if decision.verdict == "send":
        assert decision.not_before is None
        return
    not_before = decision.not_before
    assert not_before is not None and not_before > now
    assert not_before.utcoffset() == dt.timedelta(0)
    assert allowed(not_before, facts.timezone, facts.country)
    assert check_send(facts, channel, not_before) == GateDecision("send", None, "allowed")
    assert check_send(facts, channel, not_before - dt.timedelta(seconds=1)).verdict == "delay"


@FAST
@given(situations(), st.randoms(use_true_random=False))
def test_the_same_inputs_give_the_same_decision_whatever_the_order_of_the_history(
    situation: tuple[ContactFacts, ChannelName, dt.datetime], rnd: Random
) -> None:
    facts, channel, now = situation
    contacts, calls = list(facts.recent_contacts), list(facts.recent_calls)
    rnd.shuffle(contacts)
    rnd.shuffle(calls)
    shuffled = dataclasses.replace(
        facts, recent_contacts=tuple(contacts), recent_calls=tuple(calls)
    )
    first = check_send(facts, channel, now)
    assert check_send(facts, channel, now) == first
    assert check_send(shuffled, channel, now) == first
    # The same instant written in another zone is the same input.
    assert check_send(facts, channel, now.astimezone(ZoneInfo("Asia/Tokyo"))) == first


@settings(max_examples=60, deadline=None)
@given(
    start=TIMES,
    zone=st.sampled_from(ZONES),
    country=st.sampled_from(COUNTRIES),
    attempts=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=2 * 86_400),  # seconds after the previous one
            CHANNEL,
            st.booleans(),  # follow a delay: try again at its not_before
            st.booleans(),  # a call that reaches the debtor becomes a conversation
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_applying_decisions_in_turn_never_breaks_a_cap_or_the_quiet_hours(
    start: dt.datetime,
    zone: str | None,
    country: str | None,
    attempts: list[tuple[int, ChannelName, bool, bool]],
) -> None:
    """A stream of send attempts (and retries at each delay's not_before); every "send"
    is recorded as a contact. Then no rolling 7 days hold more than 3 written messages
    or 7 calls, no call follows a conversation within 7 days, and every send is in hours."""
    queue: list[tuple[dt.datetime, int, ChannelName, bool, bool]] = []
    moment = start
    for i, (gap, channel, retry, talks) in enumerate(attempts):
        moment += dt.timedelta(seconds=gap)
        heapq.heappush(queue, (moment, i, channel, retry, talks))
    written: list[dt.datetime] = []
    calls: list[dt.datetime] = []
    contacts: list[tuple[str, dt.datetime]] = []
    conversations: list[dt.datetime] = []
    order = len(attempts)
    while queue:
        now, _, channel, retry, talks = heapq.heappop(queue)
        facts = ContactFacts(
            balance_minor=10_000,
            timezone=zone,
            country=country,
            reachable=ALL,
            recent_contacts=tuple(contacts),
            recent_calls=tuple(calls),
            last_conversation_at=max(conversations, default=None),
        )
        decision = check_send(facts, channel, now)
        if decision.verdict == "send":
            assert allowed(now, zone, country)
            if channel == "phone":
                calls.append(now)
                if talks:
                    conversations.append(now)
            else:
                written.append(now)
                contacts.append((channel, now))
        elif retry and decision.not_before is not None:
            order += 1
            heapq.heappush(queue, (decision.not_before, order, channel, False, talks))
    written.sort()
    calls.sort()
    assert all(
        later - earlier >= WEEK for earlier, later in zip(written, written[3:], strict=False)
    )
    assert all(later - earlier >= WEEK for earlier, later in zip(calls, calls[7:], strict=False))
    for talked in conversations:
        assert not any(talked < call < talked + WEEK for call in calls)


# --- next_allowed_time ----------------------------------------------------------------------


@FAST
@given(TIMES, st.sampled_from(ZONES[1:]), st.sampled_from(COUNTRIES[1:]))
def test_next_allowed_time_is_now_or_the_first_allowed_moment_after_it(
    now: dt.datetime, zone: str, country: str
) -> None:
    got = next_allowed_time(now, ZoneInfo(zone), country, DEFAULT_POLICY)
    assert got.tzinfo is dt.UTC
    assert allowed(got, zone, country)
    if allowed(now, zone, country):
        assert got == now
        return
    assert got > now
    assert got.astimezone(ZoneInfo(zone)).time() == dt.time(8, 0)
    probe = now
    while probe < got:  # nothing allowed in between (on a half-hour grid)
        assert not allowed(probe, zone, country)
        probe += dt.timedelta(minutes=30)


@pytest.mark.parametrize(
    ("now", "expected_utc"),
    [
        # Sat 5 Dec 22:00 → Sunday skipped → Mon 7 Dec 08:00 CET.
        (at(2026, 12, 5, 22), dt.datetime(2026, 12, 7, 7, tzinfo=dt.UTC)),
        # Mon 7:59 → the same morning at 08:00.
        (at(2026, 12, 7, 7, 59), dt.datetime(2026, 12, 7, 7, tzinfo=dt.UTC)),
        # 21:00 sharp is outside (end excluded) → next morning.
        (at(2026, 12, 8, 21, 0), dt.datetime(2026, 12, 9, 7, tzinfo=dt.UTC)),
        # Christmas Eve 21:30 → 25 Dec is a holiday → Sat 26 Dec 08:00.
        (at(2026, 12, 24, 21, 30), dt.datetime(2026, 12, 26, 7, tzinfo=dt.UTC)),
        # Sat 28 Mar 22:00 CET → Sunday (DST starts) → Mon 30 Mar 08:00 CEST = 06:00 UTC.
        (at(2026, 3, 28, 22), dt.datetime(2026, 3, 30, 6, tzinfo=dt.UTC)),
        # Sat 24 Oct 21:30 CEST → Sunday (DST ends) → Mon 26 Oct 08:00 CET = 07:00 UTC.
        (at(2026, 10, 24, 21, 30), dt.datetime(2026, 10, 26, 7, tzinfo=dt.UTC)),
        # Easter Monday 6 Apr 2026 → Tue 7 Apr.
        (at(2026, 4, 6, 12), dt.datetime(2026, 4, 7, 6, tzinfo=dt.UTC)),
        # Inside the window: now itself, in UTC.
        (at(2026, 12, 7, 20, 59), dt.datetime(2026, 12, 7, 19, 59, tzinfo=dt.UTC)),
    ],
)
def test_next_allowed_time_in_brussels(now: dt.datetime, expected_utc: dt.datetime) -> None:
    assert next_allowed_time(now, BRUSSELS, "BE", DEFAULT_POLICY) == expected_utc


def test_next_allowed_time_keeps_wall_clock_hours_across_a_dst_change() -> None:
    """With Sundays allowed, Sat 28 Mar 22:00 → Sun 29 Mar 08:00 CEST: 06:00 UTC, not the
    07:00 UTC that adding 24 h to Saturday's opening would give."""
    sundays = PolicyConfig(contact_on_sundays=True)
    got = next_allowed_time(at(2026, 3, 28, 22), BRUSSELS, "BE", sundays)
    assert got == dt.datetime(2026, 3, 29, 6, tzinfo=dt.UTC)
    new_york = ZoneInfo("America/New_York")
    fall = dt.datetime(2026, 10, 31, 23, 0, tzinfo=new_york)  # Sat; DST ends Sun 1 Nov
    assert next_allowed_time(fall, new_york, "US", sundays) == dt.datetime(
        2026, 11, 1, 13, tzinfo=dt.UTC
    )


def test_a_country_can_have_its_own_window() -> None:
    config = PolicyConfig(country_windows={"nl": ContactWindow(dt.time(9), dt.time(20))})
    assert config.window_for("NL") == ContactWindow(dt.time(9), dt.time(20))
    early = at(2026, 12, 7, 8, 30)
    assert next_allowed_time(early, BRUSSELS, "BE", config) == early
    assert next_allowed_time(early, BRUSSELS, "NL", config) == dt.datetime(
        2026, 12, 7, 8, tzinfo=dt.UTC
    )
    facts = case(country="NL")
    assert check_send(facts, "sms", at(2026, 12, 7, 20, 15), config).verdict == "delay"


def test_contact_windows_and_configs_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="empty"):
        ContactWindow(dt.time(21), dt.time(8))
    with pytest.raises(ValueError, match="at least 1"):
        PolicyConfig(max_written=0)
    with pytest.raises(ValueError, match="unknown channel"):
        ContactFacts(balance_minor=1, reachable=frozenset({"pigeon"}))
    with pytest.raises(ValueError, match="timezone-aware"):
        check_send(case(), "email", dt.datetime(2026, 12, 7, 10))  # noqa: DTZ001


def test_the_default_policy_is_the_one_domain_md_describes() -> None:
    assert DEFAULT_POLICY.window == ContactWindow(dt.time(8), dt.time(21))
    assert (DEFAULT_POLICY.max_written, DEFAULT_POLICY.written_window) == (3, WEEK)
    assert (DEFAULT_POLICY.max_calls, DEFAULT_POLICY.call_window) == (7, WEEK)
    assert DEFAULT_POLICY.no_call_after_conversation == WEEK
    assert not DEFAULT_POLICY.contact_on_sundays and not DEFAULT_POLICY.contact_on_public_holidays
    assert (DEFAULT_POLICY.default_timezone, DEFAULT_POLICY.default_country) == (
        "Europe/Brussels",
        "BE",
    )
    assert set(CHANNELS) == set(get_args(ChannelName))
    assert set(CHANNELS) - {"phone"} == WRITTEN_CHANNELS


# --- check_send, one rule at a time ---------------------------------------------------------

MONDAY = at(2026, 12, 7, 10)


@pytest.mark.parametrize(
    ("changes", "decision"),
    [
        ({"balance_minor": 0}, GateDecision("skip", None, "paid")),
        ({"paid": True, "disputed": True}, GateDecision("skip", None, "paid")),
        ({"disputed": True}, GateDecision("skip", None, "disputed: collection paused")),
        ({"legal_hold": True}, GateDecision("skip", None, "legal hold")),
        ({"contact_objection": True}, GateDecision("skip", None, "contact objection")),
        (
            {"disputed": True, "legal_hold": True},
            GateDecision("skip", None, "disputed: collection paused; legal hold"),
        ),
        ({"vulnerable": True}, GateDecision("review", None, "vulnerable: agent review")),
        (
            {"vulnerable": True, "reachable": frozenset()},
            GateDecision("review", None, "vulnerable: agent review"),
        ),
        (
            {"reachable": frozenset({"email", "letter"})},
            GateDecision("skip", None, "no consent or contact point for sms"),
        ),
        ({}, GateDecision("send", None, "allowed")),
    ],
)
def test_check_send_applies_holds_then_review_then_consent(
    changes: dict[str, object], decision: GateDecision
) -> None:
    assert check_send(case(**changes), "sms", MONDAY) == decision


def test_quiet_hours_delay_to_the_next_window() -> None:
    decision = check_send(case(), "email", at(2026, 12, 5, 22))
    assert decision == GateDecision(
        "delay",
        dt.datetime(2026, 12, 7, 7, tzinfo=dt.UTC),
        "quiet hours: next window 2026-12-07 08:00 Europe/Brussels",
    )


def test_quiet_hours_follow_the_debtors_time_zone() -> None:
    """10:00 in Brussels is 04:00 in New York: the message waits for 08:00 there."""
    decision = check_send(case(timezone="America/New_York", country="US"), "sms", MONDAY)
    assert decision.verdict == "delay"
    assert decision.not_before == dt.datetime(2026, 12, 7, 13, tzinfo=dt.UTC)


def test_the_written_cap_counts_every_written_channel_and_frees_a_slot_exactly_a_week_later() -> (
    None
):
    contacts = (
        ("email", at(2026, 12, 1, 11, 15)),
        ("sms", at(2026, 12, 3, 9)),
        ("letter", at(2026, 12, 4, 9)),
        ("phone", at(2026, 12, 6, 9)),  # calls do not count against the written cap
    )
    facts = case(recent_contacts=contacts)
    decision = check_send(facts, "chat", MONDAY)
    assert decision == GateDecision(
        "delay",
        dt.datetime(2026, 12, 8, 10, 15, tzinfo=dt.UTC),
        "cap: 3 messages in 7 days, next slot 2026-12-08 11:15 Europe/Brussels",
    )
    assert check_send(facts, "phone", MONDAY).verdict == "send"
    two = case(recent_contacts=contacts[1:])
    assert check_send(two, "chat", MONDAY).verdict == "send"


def test_a_cap_that_frees_at_night_waits_for_the_next_window() -> None:
    """The oldest message went at 20:30 on Tue 1 Dec; the slot frees on Tue 8 Dec at
    20:30, half an hour before closing; if it had gone at 21:30 the slot would free
    after closing and the message waits for Wed 9 Dec 08:00."""
    inside = case(
        recent_contacts=(
            ("email", at(2026, 12, 1, 20, 30)),
            ("email", at(2026, 12, 2, 9)),
            ("email", at(2026, 12, 3, 9)),
        )
    )
    assert check_send(inside, "email", MONDAY).not_before == at(2026, 12, 8, 20, 30)
    after = case(
        recent_contacts=(
            ("email", at(2026, 12, 1, 21, 30)),  # e.g. recorded late by a provider
            ("email", at(2026, 12, 2, 9)),
            ("email", at(2026, 12, 3, 9)),
        )
    )
    decision = check_send(after, "email", MONDAY)
    assert decision == GateDecision(
        "delay",
        dt.datetime(2026, 12, 9, 7, tzinfo=dt.UTC),
        "cap: 3 messages in 7 days, next slot 2026-12-09 08:00 Europe/Brussels",
    )


def test_the_call_cap_counts_call_attempts_on_the_debt() -> None:
    calls = tuple(at(2026, 12, day, 9) for day in (1, 1, 2, 2, 3, 4, 5))
    decision = check_send(case(recent_calls=calls), "phone", MONDAY)
    assert decision == GateDecision(
        "delay",
        dt.datetime(2026, 12, 8, 8, tzinfo=dt.UTC),
        "call cap: 7 calls in 7 days, next slot 2026-12-08 09:00 Europe/Brussels",
    )
    assert check_send(case(recent_calls=calls[1:]), "phone", MONDAY).verdict == "send"
    assert check_send(case(recent_calls=calls), "email", MONDAY).verdict == "send"


def test_no_call_within_seven_days_of_a_conversation() -> None:
    facts = case(last_conversation_at=at(2026, 12, 4, 14, 5))
    decision = check_send(facts, "phone", MONDAY)
    assert decision == GateDecision(
        "delay",
        dt.datetime(2026, 12, 11, 13, 5, tzinfo=dt.UTC),
        "conversation on 2026-12-04 14:05 Europe/Brussels: no call before 2026-12-11 14:05 Europe/Brussels",
    )
    assert check_send(facts, "sms", MONDAY).verdict == "send"
    assert check_send(facts, "phone", at(2026, 12, 11, 14, 5)).verdict == "send"


def test_a_delay_satisfies_the_call_cap_and_the_conversation_rule_together() -> None:
    calls = tuple(at(2026, 12, day, 9) for day in (1, 2, 3, 4, 5, 5, 6))
    facts = case(recent_calls=calls, last_conversation_at=at(2026, 12, 3, 9, 30))
    decision = check_send(facts, "phone", MONDAY)
    assert decision.not_before == at(2026, 12, 10, 9, 30)
    assert decision.reason.startswith("call cap: 7 calls in 7 days, next slot 2026-12-10 09:30")
    assert "conversation on 2026-12-03 09:30" in decision.reason


# --- fees and explain -----------------------------------------------------------------------


def test_check_fee_charges_nothing_on_a_held_case_and_defers_to_the_law_otherwise() -> None:
    facts = case(reminders_sent=2, first_reminder=(at(2026, 11, 2), True))
    assert check_fee(facts, FeeKind.FLAT_INDEMNITY, MONDAY).amount_minor == 4_500
    assert check_fee(facts, FeeKind.REMINDER_FEE, MONDAY).amount_minor == 750
    disputed = dataclasses.replace(facts, disputed=True)
    assert (
        check_fee(disputed, FeeKind.FLAT_INDEMNITY, MONDAY).reason == "disputed: collection paused"
    )
    assert check_fee(disputed, FeeKind.FLAT_INDEMNITY, MONDAY).amount_minor == 0
    paid = dataclasses.replace(facts, balance_minor=0)
    assert check_fee(paid, FeeKind.REMINDER_FEE, MONDAY).amount_minor == 0


def test_explain_lays_out_channels_caps_holds_and_fees() -> None:
    facts = case(
        reachable=frozenset({"email", "phone"}),
        recent_contacts=(("email", at(2026, 12, 2, 9)), ("sms", at(2026, 12, 3, 9))),
        recent_calls=(at(2026, 12, 4, 9),),
        reminders_sent=2,
        first_reminder=(at(2026, 11, 27, 10), False),  # a letter on Fri 27 Nov
    )
    report = explain(facts, MONDAY, PolicyConfig(law=LawConfig(postage_minor=150)))
    assert report["timezone"] == "Europe/Brussels" and report["country"] == "BE"
    assert report["holds"] == []
    assert report["window"] == {
        "hours": "08:00-21:00",
        "open_now": True,
        "next_allowed": "2026-12-07T10:00:00+01:00",
    }
    assert report["channels"]["email"] == {
        "verdict": "send",
        "not_before": None,
        "reason": "allowed",
    }
    assert report["channels"]["sms"]["verdict"] == "skip"
    assert report["caps"]["written"] == {
        "used": 2,
        "max": 3,
        "window": "7 days",
        "full_until": None,
    }
    assert report["caps"]["calls"]["used"] == 1
    # Letter on Fri 27 Nov: Mon 30 Nov, Tue 1, Wed 2 Dec → 14 days to 15 Dec, fees 16 Dec.
    assert report["law"]["wait_ends"] == "2026-12-16"
    assert report["law"]["flat_indemnity_cap_minor"] == 4_500
    assert report["law"]["fees"]["flat_indemnity"] == {
        "amount_minor": 0,
        "reason": "wait not over: fees allowed from 2026-12-16",
    }


def test_explain_lists_every_hold() -> None:
    report = explain(case(balance_minor=0, legal_hold=True, vulnerable=True), MONDAY)
    assert report["holds"] == ["paid", "legal hold", "vulnerable: agent review"]
    assert {c["verdict"] for c in report["channels"].values()} == {"skip"}
    assert report["law"]["fees"]["flat_indemnity"]["amount_minor"] == 0
