"""Book XIX: indemnity bands, the 14-day wait after the first reminder, fee and interest caps."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parcours.domain.journey import FeeKind
from parcours.journeys.law import (
    FLAT_INDEMNITY_MAX_MINOR,
    REMINDER_FEE_CAP_MINOR,
    FeeDecision,
    LawConfig,
    allowed_fee,
    fee_wait_end,
    flat_indemnity_cap,
    is_working_day,
    max_late_interest_minor,
)

BRUSSELS = ZoneInfo("Europe/Brussels")
LAW = LawConfig()


def at(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> dt.datetime:
    """A Brussels wall-clock time."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=BRUSSELS)


def fee(
    kind: FeeKind,
    now: dt.datetime,
    *,
    balance_minor: int = 30_000,
    reminders_sent: int = 2,
    first_reminder: tuple[dt.datetime, bool] | None = (at(2026, 12, 1), True),
    fees_charged_minor: int = 0,
    indemnity_charged_minor: int = 0,
    config: LawConfig = LAW,
    **extra: object,
) -> FeeDecision:
    return allowed_fee(
        kind,
        balance_minor=balance_minor,
        reminders_sent=reminders_sent,
        first_reminder=first_reminder,
        fees_charged_minor=fees_charged_minor,
        indemnity_charged_minor=indemnity_charged_minor,
        now=now,
        zone=BRUSSELS,
        config=config,
        **extra,  # type: ignore[arg-type]
    )


# --- art. XIX.4 flat indemnity ------------------------------------------------------------


@pytest.mark.parametrize(
    ("balance", "cap"),
    [
        (1, 2_000),  # any debt up to €150 → €20
        (10_000, 2_000),  # €100 → €20
        (15_000, 2_000),  # €150.00 → €20, the last cent of the first band
        (15_001, 3_000),  # €150.01 → €30: the law's jump between bands 1 and 2
        (15_019, 3_001),  # 10 % of €0.19 is 1.9 cents: rounded down
        (30_000, 4_500),  # €300 → €30 + 10 % of €150 = €45
        (30_005, 4_500),  # €45.005 → €45.00 (in the debtor's favour)
        (50_000, 6_500),  # €500 → €30 + €35 = €65: continuous with band 3
        (50_001, 6_500),  # €500.01 → €65 + 0.05 cent
        (50_020, 6_501),
        (100_000, 9_000),  # €1,000 → €65 + 5 % of €500 = €90
        (3_919_999, 199_999),  # €39,199.99 → €65 + €1,934.9995 → €1,999.99
        (3_920_000, 200_000),  # €39,200 is where the €2,000 maximum is reached
        (5_000_000, 200_000),  # €50,000 → capped at €2,000
        (0, 0),  # nothing owed, nothing to charge
        (-500, 0),  # overpaid
    ],
)
def test_flat_indemnity_cap_follows_the_xix4_bands(balance: int, cap: int) -> None:
    assert flat_indemnity_cap(balance) == cap


def _cap_by_the_text(balance_minor: int) -> int:
    """The bands written out with Decimal euros, independently of the cent arithmetic."""
    euros = Decimal(balance_minor) / 100
    if euros <= 150:
        cap = Decimal(20)
    elif euros <= 500:
        cap = 30 + (euros - 150) * Decimal("0.10")
    else:
        cap = min(65 + (euros - 500) * Decimal("0.05"), Decimal(2000))
    return int((cap * 100).quantize(Decimal(1), rounding=ROUND_DOWN))


BALANCES = st.integers(min_value=1, max_value=10_000_000)


@given(BALANCES)
def test_flat_indemnity_cap_matches_the_bands_written_in_euros(balance: int) -> None:
    assert flat_indemnity_cap(balance) == _cap_by_the_text(balance)


@given(BALANCES, BALANCES)
def test_flat_indemnity_cap_never_decreases_and_stays_within_20_and_2000_euros(
    a: int, b: int
) -> None:
    low, high = sorted((a, b))
    assert flat_indemnity_cap(low) <= flat_indemnity_cap(high)
    assert 2_000 <= flat_indemnity_cap(high) <= FLAT_INDEMNITY_MAX_MINOR


@given(st.integers(min_value=15_001, max_value=50_000 - 10))
def test_flat_indemnity_grows_by_one_cent_per_ten_cents_in_band_two(balance: int) -> None:
    assert flat_indemnity_cap(balance + 10) == flat_indemnity_cap(balance) + 1


@given(st.integers(min_value=50_001, max_value=3_920_000 - 20))
def test_flat_indemnity_grows_by_one_cent_per_twenty_cents_in_band_three(balance: int) -> None:
    assert flat_indemnity_cap(balance + 20) == flat_indemnity_cap(balance) + 1


# --- late interest --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("balance", "days", "rate", "interest"),
    [
        (100_000, 365, Decimal("4.0"), 12_000),  # €1,000 at 12 % for a year = €120
        (100_000, 30, Decimal("4.0"), 986),  # 12 % * 30/365 = €9.863… → €9.86
        (100_000, 1, Decimal("2.5"), 28),  # 10.5 %/365 = €0.2876… → €0.28
        (100_000, 0, Decimal("4.0"), 0),
        (100_000, -3, Decimal("4.0"), 0),
        (0, 30, Decimal("4.0"), 0),
    ],
)
def test_late_interest_is_simple_interest_at_the_reference_rate_plus_eight_points(
    balance: int, days: int, rate: Decimal, interest: int
) -> None:
    assert max_late_interest_minor(balance, days, rate) == interest


@given(
    st.integers(min_value=1, max_value=10**9),
    st.integers(min_value=1, max_value=3_650),
    st.decimals(min_value=0, max_value=20, places=2),
)
def test_late_interest_is_the_exact_amount_rounded_down(
    balance: int, days: int, rate: Decimal
) -> None:
    exact = Decimal(balance) * (rate + 8) / 100 * days / 365
    got = max_late_interest_minor(balance, days, rate)
    assert got <= exact < got + 1
    assert max_late_interest_minor(balance, days + 1, rate) >= got


# --- the 14-day wait ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "electronic", "first_fee_day"),
    [
        # Email on Tue 1 Dec: the 14 days are 2..15 Dec, fees from Wed 16 Dec.
        (at(2026, 12, 1, 10), True, dt.date(2026, 12, 16)),
        # Sent late in the evening: the Brussels date counts, not the UTC one.
        (dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.UTC), True, dt.date(2026, 12, 16)),
        # Letter posted Fri 4 Dec: working days Mon 7, Tue 8, Wed 9 → 9..22 Dec, fees 23 Dec.
        (at(2026, 12, 4, 16), False, dt.date(2026, 12, 23)),
        # Letter posted Wed 23 Dec: Thu 24; Fri 25 (Christmas), Sat, Sun skipped; Mon 28;
        # Tue 29 is the 3rd working day → 29 Dec..11 Jan, fees from 12 Jan 2027.
        (at(2026, 12, 23, 9), False, dt.date(2027, 1, 12)),
        # Letter posted Thu 31 Dec: 1 Jan (holiday of the next year), weekend → Mon 4,
        # Tue 5, Wed 6 Jan → fees from 20 Jan.
        (at(2026, 12, 31, 9), False, dt.date(2027, 1, 20)),
        # Email on Christmas Day: holidays do not matter for electronic reminders.
        (at(2026, 12, 25, 9), True, dt.date(2027, 1, 9)),
    ],
)
def test_fee_wait_end_counts_14_full_days_from_the_right_start(
    sent: dt.datetime, electronic: bool, first_fee_day: dt.date
) -> None:
    assert fee_wait_end(sent, electronic, BRUSSELS) == first_fee_day


def test_fee_wait_end_uses_the_public_holidays_of_the_given_country() -> None:
    """Mon 7 Dec 2026 is no holiday in Belgium; 8 Dec (Immaculate Conception) is one in
    Italy, so a letter posted in Italy on Fri 4 Dec starts its 14 days a day later."""
    sent = dt.datetime(2026, 12, 4, 16, tzinfo=ZoneInfo("Europe/Rome"))
    rome = ZoneInfo("Europe/Rome")
    assert fee_wait_end(sent, False, rome, "BE") == dt.date(2026, 12, 23)
    assert fee_wait_end(sent, False, rome, "IT") == dt.date(2026, 12, 24)


def test_fee_wait_end_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        fee_wait_end(dt.datetime(2026, 12, 1, 10), True, BRUSSELS)  # noqa: DTZ001


SENT_TIMES = st.datetimes(
    min_value=dt.datetime(2025, 1, 1),  # noqa: DTZ001
    max_value=dt.datetime(2028, 12, 31),  # noqa: DTZ001
    timezones=st.just(dt.UTC),
)


@given(SENT_TIMES)
def test_paper_reminder_starts_on_the_third_working_day_after_sending(sent: dt.datetime) -> None:
    sent_on = sent.astimezone(BRUSSELS).date()
    start = fee_wait_end(sent, False, BRUSSELS) - dt.timedelta(days=14)
    between = [sent_on + dt.timedelta(days=i) for i in range(1, (start - sent_on).days + 1)]
    assert is_working_day(start, "BE")
    assert sum(is_working_day(day, "BE") for day in between) == 3
    electronic = fee_wait_end(sent, True, BRUSSELS)
    assert electronic == sent_on + dt.timedelta(days=15)
    assert start >= electronic - dt.timedelta(days=12)  # at least 2 days later than email


# --- which fee, when ------------------------------------------------------------------------


def test_no_fee_of_any_kind_before_a_first_reminder() -> None:
    for kind in FeeKind:
        decision = fee(kind, at(2027, 3, 1), reminders_sent=0, first_reminder=None)
        assert decision == FeeDecision(
            0, "no reminder yet: the first reminder is free and starts the wait"
        )


def test_no_fee_until_the_wait_is_over_then_fees_apply_from_midnight_local_time() -> None:
    """Email on 1 Dec: nothing on 15 Dec at 23:59 Brussels, the indemnity on 16 Dec 00:00."""
    for kind in FeeKind:
        early = fee(kind, at(2026, 12, 15, 23, 59))
        assert early == FeeDecision(0, "wait not over: fees allowed from 2026-12-16")
    assert fee(FeeKind.FLAT_INDEMNITY, at(2026, 12, 16, 0, 0)).amount_minor == 4_500
    assert fee(FeeKind.REMINDER_FEE, at(2026, 12, 16, 0, 0)).amount_minor == 750


def test_the_first_reminder_never_carries_a_fee() -> None:
    decision = fee(FeeKind.REMINDER_FEE, at(2027, 2, 1), reminders_sent=1)
    assert decision == FeeDecision(0, "the first reminder is free")


def test_a_further_reminder_by_post_may_add_its_postage() -> None:
    now = at(2027, 2, 1)
    assert fee(FeeKind.REMINDER_FEE, now, by_post=True, postage_minor=165).amount_minor == 915
    configured = LawConfig(postage_minor=120)
    assert fee(FeeKind.REMINDER_FEE, now, by_post=True, config=configured).amount_minor == 870
    assert fee(FeeKind.REMINDER_FEE, now, config=configured).amount_minor == 750  # by email


def test_each_further_reminder_carries_one_fee_only() -> None:
    now = at(2027, 2, 1)
    charged_once = fee(FeeKind.REMINDER_FEE, now, reminders_sent=2, fees_charged_minor=750)
    assert charged_once == FeeDecision(0, "every further reminder already carries its fee")
    assert (
        fee(FeeKind.REMINDER_FEE, now, reminders_sent=3, fees_charged_minor=750).amount_minor == 750
    )
    assert (
        fee(FeeKind.REMINDER_FEE, now, reminders_sent=3, fees_charged_minor=1_000).amount_minor
        == 500
    )


def test_the_flat_indemnity_is_the_cap_minus_what_was_charged() -> None:
    now = at(2027, 2, 1)
    assert fee(FeeKind.FLAT_INDEMNITY, now, balance_minor=100_000).amount_minor == 9_000
    part = fee(FeeKind.FLAT_INDEMNITY, now, balance_minor=100_000, indemnity_charged_minor=4_000)
    assert part.amount_minor == 5_000
    full = fee(FeeKind.FLAT_INDEMNITY, now, balance_minor=100_000, indemnity_charged_minor=9_000)
    assert full == FeeDecision(0, "indemnity already charged up to the cap €90.00")


def test_late_interest_runs_from_the_end_of_the_wait_on_the_configured_rate() -> None:
    """Email on 1 Dec → interest from 16 Dec; on 15 Jan that is 30 days."""
    config = LawConfig(reference_rate_percent=Decimal("4.0"))
    start = fee(FeeKind.LATE_INTEREST, at(2026, 12, 16), balance_minor=100_000, config=config)
    assert start.amount_minor == 0
    later = fee(FeeKind.LATE_INTEREST, at(2027, 1, 15), balance_minor=100_000, config=config)
    assert later.amount_minor == 986
    paid_part = fee(
        FeeKind.LATE_INTEREST,
        at(2027, 1, 15),
        balance_minor=100_000,
        config=config,
        interest_charged_minor=900,
    )
    assert paid_part.amount_minor == 86


def test_a_paid_case_owes_no_fee() -> None:
    for kind in FeeKind:
        assert fee(kind, at(2027, 2, 1), balance_minor=0).amount_minor == 0


@settings(max_examples=200)
@given(
    balance=st.integers(min_value=-100, max_value=10_000_000),
    reminders=st.integers(min_value=0, max_value=8),
    sent=SENT_TIMES,
    electronic=st.booleans(),
    days_later=st.integers(min_value=0, max_value=60),
    by_post=st.booleans(),
    postage=st.integers(min_value=0, max_value=500),
)
def test_reminder_fees_stay_within_750_cents_plus_postage_each_and_never_come_early(
    balance: int,
    reminders: int,
    sent: dt.datetime,
    electronic: bool,
    days_later: int,
    by_post: bool,
    postage: int,
) -> None:
    """Charging the reminder fee after every reminder, as a fee node would, never adds up
    to more than €7.50 per further reminder plus postage, and nothing before the wait."""
    now = sent + dt.timedelta(days=days_later)
    wait_end = fee_wait_end(sent, electronic, BRUSSELS)
    charged = 0
    for sent_so_far in range(1, reminders + 1):
        decision = fee(
            FeeKind.REMINDER_FEE,
            now,
            balance_minor=balance,
            reminders_sent=sent_so_far,
            first_reminder=(sent, electronic),
            fees_charged_minor=charged,
            by_post=by_post,
            postage_minor=postage,
        )
        extra = postage if by_post else 0
        assert 0 <= decision.amount_minor <= REMINDER_FEE_CAP_MINOR + extra
        if sent_so_far == 1 or balance <= 0 or now.astimezone(BRUSSELS).date() < wait_end:
            assert decision.amount_minor == 0
        if decision.amount_minor:
            charged += decision.amount_minor - extra
    assert charged <= max(reminders - 1, 0) * REMINDER_FEE_CAP_MINOR


def test_law_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="negative"):
        LawConfig(postage_minor=-1)
    with pytest.raises(ValueError, match="paper_working_days"):
        LawConfig(paper_working_days=0)
