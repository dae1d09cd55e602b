"""Collection KPIs from plain counts and sums: no database, no clock.

The store (`parcours.store.analytics`) and the simulator both reduce their data to a
`KpiSums` per group — amounts in minor units, counts of cases, messages, answers — and
`kpi_row` turns it into the figures a strategist reads. What each figure counts is
written on `KpiRow`; the definitions follow `DOMAIN.md` ("KPIs (definitions)") and say
what was chosen where it is silent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from typing import Any, Final

from parcours.domain.money import currency_exponent

__all__ = [
    "BUCKETS",
    "CLOSED",
    "CURRENT",
    "DELINQUENT",
    "DPD_BUCKETS",
    "WINDOWS",
    "ChannelCosts",
    "CsatSummary",
    "JourneyEdge",
    "JourneyMap",
    "KpiRow",
    "KpiSums",
    "NodeStats",
    "WeekRow",
    "cei",
    "contact_cost",
    "csat_summary",
    "cure_and_roll",
    "dpd_bucket",
    "dso",
    "histogram_mean",
    "histogram_median",
    "kpi_row",
    "rate",
]

WINDOWS: Final = (30, 60, 90, 120)  # days after placement the collection rate is read at
CURRENT: Final = "current"  # nothing past due (paid, or not yet due)
CLOSED: Final = "closed"  # closed while something was still open (e.g. a dispute upheld)
# Days-past-due buckets as (first day, last day or None, label), in order of severity.
DPD_BUCKETS: Final = ((1, 30, "1-30"), (31, 60, "31-60"), (61, 90, "61-90"), (91, None, "90+"))
DELINQUENT: Final = tuple(label for _, _, label in DPD_BUCKETS)
BUCKETS: Final = (CURRENT, *DELINQUENT)
_SEVERITY: Final = {label: i for i, label in enumerate(BUCKETS)}


def rate(numerator: float, denominator: float) -> float | None:
    """numerator ÷ denominator, None when there is nothing to divide by."""
    return numerator / denominator if denominator else None


def dpd_bucket(days_past_due: int) -> str:
    """The bucket of a case `days_past_due` days after its oldest open due date."""
    if days_past_due <= 0:
        return CURRENT
    for first, last, label in DPD_BUCKETS:
        if days_past_due >= first and (last is None or days_past_due <= last):
            return label
    raise AssertionError("the last bucket is open-ended")  # pragma: no cover


def histogram_mean(histogram: Mapping[int, int]) -> float | None:
    """Mean of integer values given as value → how many."""
    n = sum(histogram.values())
    return sum(v * c for v, c in histogram.items()) / n if n else None


def histogram_median(histogram: Mapping[int, int]) -> float | None:
    """Median of integer values given as value → how many (the mean of the two middle
    values for an even count), exact without expanding the values."""
    n = sum(histogram.values())
    if not n:
        return None
    ordered = sorted((v, c) for v, c in histogram.items() if c)

    def nth(k: int) -> int:  # the k-th smallest value, from 0
        seen = 0
        for value, count in ordered:
            seen += count
            if k < seen:
                return value
        raise AssertionError("k is below n")  # pragma: no cover

    if n % 2:
        return float(nth(n // 2))
    return (nth(n // 2 - 1) + nth(n // 2)) / 2


def dso(receivables_minor: int, sales_minor: int, days: int) -> float | None:
    """Days sales outstanding: receivables ÷ credit sales of the period x its days."""
    return receivables_minor / sales_minor * days if sales_minor > 0 else None


def cei(begin_minor: int, sales_minor: int, end_minor: int, end_current_minor: int) -> float | None:
    """Collection effectiveness index: (begin AR + sales - end AR) ÷ (begin AR + sales -
    end current AR); 1 means everything that could be collected was."""
    collectible = begin_minor + sales_minor - end_current_minor
    return (begin_minor + sales_minor - end_minor) / collectible if collectible > 0 else None


def cure_and_roll(transitions: Mapping[tuple[str, str], int]) -> tuple[float | None, float | None]:
    """(cure rate, roll rate) from counts of cases by (bucket at start, state at end).

    Of the cases delinquent at the start, the cure rate is the share current at the end
    (nothing past due: paid, or back within terms) and the roll rate the share in a
    worse bucket at the end. Cases closed unpaid are neither.
    """
    delinquent = cured = rolled = 0
    for (start, end), count in transitions.items():
        if start not in DELINQUENT:
            continue
        delinquent += count
        if end == CURRENT:
            cured += count
        elif end in _SEVERITY and _SEVERITY[end] > _SEVERITY[start]:
            rolled += count
    return rate(cured, delinquent), rate(rolled, delinquent)


@dataclass(frozen=True, slots=True)
class CsatSummary:
    """Satisfaction answers (1-5): how many, the mean, the count of each score, and the
    NPS-style shares — 5 is a promoter, 1 and 2 are detractors."""

    answers: int
    mean: float | None
    counts: tuple[int, int, int, int, int]  # of scores 1..5
    promoters: float | None
    detractors: float | None

    @property
    def net_score(self) -> float | None:
        """Promoters minus detractors, as a share (-1 … 1)."""
        if self.promoters is None or self.detractors is None:
            return None
        return self.promoters - self.detractors


def csat_summary(counts: Sequence[int]) -> CsatSummary:
    """Summarise the number of answers of each score 1..5."""
    if len(counts) != 5 or any(c < 0 for c in counts):
        raise ValueError("counts: five non-negative counts, of the scores 1 to 5")
    n = sum(counts)
    total = sum(score * c for score, c in enumerate(counts, start=1))
    as_tuple = (counts[0], counts[1], counts[2], counts[3], counts[4])
    return CsatSummary(
        n, rate(total, n), as_tuple, rate(counts[4], n), rate(counts[0] + counts[1], n)
    )


@dataclass(frozen=True, slots=True)
class ChannelCosts:
    """What one contact costs the creditor, in major units of `currency`.

    The defaults are assumptions for Belgium in 2026, not quotes: an e-mail through a
    bulk provider, one SMS segment, a printed and posted A4 letter (a Belgian stamp is
    above €1.50), an agent's call attempt (about five minutes at €30 an hour), an agent's
    chat minute. Pass the creditor's own prices with `from_mapping`.
    """

    currency: str = "EUR"
    email: Decimal = Decimal("0.002")
    sms_unit: Decimal = Decimal("0.08")  # per segment the carrier bills
    letter: Decimal = Decimal("1.80")
    call: Decimal = Decimal("2.50")  # per call attempt, answered or not
    chat_minute: Decimal = Decimal("0.50")
    minutes_per_chat_answer: Decimal = Decimal("3")  # agent time per chat answer

    def __post_init__(self) -> None:
        currency_exponent(self.currency)  # rejects an unknown currency
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "currency" and (not isinstance(value, Decimal) or value < 0):
                raise ValueError(f"{f.name}: a non-negative Decimal, got {value!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ChannelCosts:
        """Costs from configuration (numbers or strings); unnamed ones keep the default."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown channel cost(s): {', '.join(sorted(unknown))}")
        parsed: dict[str, Any] = {}
        for key, value in values.items():
            parsed[key] = value if key == "currency" else Decimal(str(value))
        return replace(cls(), **parsed)


def contact_cost(
    costs: ChannelCosts,
    messages: Mapping[str, int],
    sms_units: int,
    calls: int,
    chat_answers: int,
) -> Decimal:
    """What these contacts cost: e-mails and letters each, SMS by billed segment, call
    attempts each (a message on the `phone` channel counts as a call), chat by agent
    minute. Messages on the `chat` channel cost nothing beyond the agent's time."""
    return (
        costs.email * messages.get("email", 0)
        + costs.letter * messages.get("letter", 0)
        + costs.sms_unit * sms_units
        + costs.call * (calls + messages.get("phone", 0))
        + costs.chat_minute * costs.minutes_per_chat_answer * chat_answers
    )


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = out.get(k, 0) + v
        return out
    if isinstance(a, tuple):
        return tuple(x + y for x, y in zip(a, b, strict=True))
    return a + b


@dataclass(slots=True)
class KpiSums:
    """Additive facts of a group of cases; `kpi_row` derives the KPIs from them.

    Amounts are minor units of one currency; counts are of cases unless named otherwise.
    """

    cases: int = 0
    placed_minor: int = 0  # owed at placement
    collected_minor: int = 0  # paid since placement
    # Per window N: placed and collected within N days, over what was placed at least
    # N days ago (younger placements cannot be read at N days yet).
    matured_placed_minor: dict[int, int] = field(default_factory=dict)
    matured_collected_minor: dict[int, int] = field(default_factory=dict)
    cases_placed: int = 0  # with something owed at placement
    cases_paid: int = 0  # of those, paid in full
    days_to_pay: dict[int, int] = field(default_factory=dict)  # days → cases paid in full
    receivables_minor: int = 0  # open at the end of the period
    receivables_current_minor: int = 0  # of which not yet due
    receivables_begin_minor: int = 0  # open at the start of the period
    sales_minor: int = 0  # invoiced during the period
    transitions: dict[tuple[str, str], int] = field(default_factory=dict)
    promises_made: int = 0
    promises_kept: int = 0
    promises_broken: int = 0
    plans_made: int = 0
    plans_completed: int = 0
    plans_broken: int = 0
    messages: dict[str, int] = field(default_factory=dict)  # sent, by channel
    sms_units: int = 0
    calls: int = 0  # call attempts closed by an agent
    call_conversations: int = 0  # of which the right person was spoken to
    contacted: int = 0  # cases sent at least one message or called
    responded: int = 0  # of those, with a click, a reply or a chat question
    opted_out: int = 0  # cases with an opt-out
    complained: int = 0  # cases with a complaint
    disputed: int = 0  # cases with a dispute opened
    csat: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    agent_answers: int = 0  # chat messages of agents
    late_answers: int = 0  # of which after the persona's answer time
    overdue_waiting: int = 0  # conversations waiting past their answer time now

    def __add__(self, other: KpiSums) -> KpiSums:
        return KpiSums(
            **{f.name: _add(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)}
        )

    @classmethod
    def total(cls, parts: Iterable[KpiSums]) -> KpiSums:
        out = cls()
        for part in parts:
            out = out + part
        return out


@dataclass(frozen=True, slots=True)
class KpiRow:
    """The KPIs of one group (e.g. {"persona": "occasional"}; {} for the whole portfolio).

    - collection_rate: collected ÷ placed. Placed = each invoice's amount less what was
      paid on it before the day it was placed; collected = payments on invoices from that
      day to `now` (reversed payments and dispute adjustments are not money collected;
      overpayments kept as a credit are not counted).
    - collection_rate_at[N]: collected within N days of placement ÷ placed, over the
      invoices placed at least N days before `now`; None when there are none yet.
    - paid_rate: cases paid in full ÷ cases with something owed at placement.
    - days_to_pay_mean / _median: over cases paid in full, the day of the payment that
      completed them - the oldest due date of what was placed (negative: before it).
    - dso_days: receivables at the end ÷ invoiced during the period x its days.
    - cei: collection effectiveness index over the period (see `cei`).
    - cure_rate / roll_rate: see `cure_and_roll`; buckets by days past the oldest open
      due date, at the start and at the end of the period.
    - promise_kept_rate: promises kept ÷ promises kept or broken (pending and
      cancelled ones are not judged yet, or not at all).
    - right_party_rate: call attempts where the right person was spoken to (the agent's
      disposition: conversation, promise or dispute) ÷ call attempts.
    - response_rate: cases that clicked, replied or asked in chat ÷ cases contacted.
    - contacts: messages sent plus call attempts; per case and per major unit collected.
    - cost: `ChannelCosts` applied to messages, SMS segments, calls and chat answers;
      cost_to_collect = cost ÷ collected (in major units).
    - complaint_rate, opt_out_rate, dispute_rate: cases with at least one ÷ cases (as
      the simulator reports them).
    - sla_breaches: agents' chat answers given late + conversations waiting past due.
    """

    group: dict[str, str]
    currency: str
    period_days: int
    cases: int
    placed_minor: int
    collected_minor: int
    collection_rate: float | None
    collection_rate_at: dict[int, float | None]
    paid_rate: float | None
    days_to_pay_mean: float | None
    days_to_pay_median: float | None
    cases_paid: int
    receivables_minor: int
    dso_days: float | None
    cei: float | None
    cure_rate: float | None
    roll_rate: float | None
    delinquent_at_start: int
    transitions: dict[tuple[str, str], int]  # (bucket at start, at end) -> cases
    promises_made: int
    promises_kept: int
    promises_broken: int
    promise_kept_rate: float | None
    plans_made: int
    plans_completed: int
    plans_broken: int
    messages: dict[str, int]
    calls: int
    call_conversations: int
    right_party_rate: float | None
    contacted: int
    responded: int
    response_rate: float | None
    contacts: int
    contacts_per_case: float | None
    contacts_per_unit_collected: float | None
    cost: Decimal
    cost_to_collect: float | None
    csat: CsatSummary
    complaints: int
    complaint_rate: float | None
    opted_out: int
    opt_out_rate: float | None
    disputed: int
    dispute_rate: float | None
    agent_answers: int
    late_answers: int
    overdue_waiting: int
    sla_breaches: int


def kpi_row(
    group: Mapping[str, str],
    sums: KpiSums,
    *,
    currency: str,
    costs: ChannelCosts | None = None,
    period_days: int = 30,
) -> KpiRow:
    """The KPIs of one group from its sums (see `KpiRow` for what each one counts)."""
    costs = costs or ChannelCosts(currency=currency)
    if costs.currency != currency:
        raise ValueError(f"channel costs are in {costs.currency}, the amounts in {currency}")
    collected = Decimal(sums.collected_minor).scaleb(-currency_exponent(currency))
    contacts = sum(sums.messages.values()) + sums.calls
    cost = contact_cost(costs, sums.messages, sums.sms_units, sums.calls, sums.agent_answers)
    cure, roll = cure_and_roll(sums.transitions)
    delinquent = sum(c for (start, _), c in sums.transitions.items() if start in DELINQUENT)
    at = {
        n: rate(sums.matured_collected_minor.get(n, 0), sums.matured_placed_minor.get(n, 0))
        for n in WINDOWS
    }
    return KpiRow(
        group=dict(group),
        currency=currency,
        period_days=period_days,
        cases=sums.cases,
        placed_minor=sums.placed_minor,
        collected_minor=sums.collected_minor,
        collection_rate=rate(sums.collected_minor, sums.placed_minor),
        collection_rate_at=at,
        paid_rate=rate(sums.cases_paid, sums.cases_placed),
        days_to_pay_mean=histogram_mean(sums.days_to_pay),
        days_to_pay_median=histogram_median(sums.days_to_pay),
        cases_paid=sums.cases_paid,
        receivables_minor=sums.receivables_minor,
        dso_days=dso(sums.receivables_minor, sums.sales_minor, period_days),
        cei=cei(
            sums.receivables_begin_minor,
            sums.sales_minor,
            sums.receivables_minor,
            sums.receivables_current_minor,
        ),
        cure_rate=cure,
        roll_rate=roll,
        delinquent_at_start=delinquent,
        transitions=dict(sums.transitions),
        promises_made=sums.promises_made,
        promises_kept=sums.promises_kept,
        promises_broken=sums.promises_broken,
        promise_kept_rate=rate(sums.promises_kept, sums.promises_kept + sums.promises_broken),
        plans_made=sums.plans_made,
        plans_completed=sums.plans_completed,
        plans_broken=sums.plans_broken,
        messages=dict(sums.messages),
        calls=sums.calls,
        call_conversations=sums.call_conversations,
        right_party_rate=rate(sums.call_conversations, sums.calls),
        contacted=sums.contacted,
        responded=sums.responded,
        response_rate=rate(sums.responded, sums.contacted),
        contacts=contacts,
        contacts_per_case=rate(contacts, sums.cases),
        contacts_per_unit_collected=float(contacts / collected) if collected else None,
        cost=cost,
        cost_to_collect=float(cost / collected) if collected else None,
        csat=csat_summary(sums.csat),
        complaints=sums.complained,
        complaint_rate=rate(sums.complained, sums.cases),
        opted_out=sums.opted_out,
        opt_out_rate=rate(sums.opted_out, sums.cases),
        disputed=sums.disputed,
        dispute_rate=rate(sums.disputed, sums.cases),
        agent_answers=sums.agent_answers,
        late_answers=sums.late_answers,
        overdue_waiting=sums.overdue_waiting,
        sla_breaches=sums.late_answers + sums.overdue_waiting,
    )


@dataclass(slots=True)
class NodeStats:
    """One node of a journey map.

    - reached: cases with an outbox decision at the node or standing there now (wait
      and branch nodes leave no decisions: for them only `current` and `exited` count);
    - current / exited (with `exit_reasons`): enrolments standing there now, or that left
      the journey there;
    - outbox: the node's decisions by status; sent: those sent, by channel (fees as `fee`);
    - touches / touched_cases: contacts made from the node (one per step, whatever the
      channels) and the cases they reached;
    - outcomes: of those touches, how many were followed — before the case's next touch
      and within the window — by each kind of event (delivered, opened, clicked, replied,
      chatted, conversation, paid, paid_in_full, promised, plan, disputed, bounced,
      opted_out) and how many by no action of the debtor at all (`stalled`).
    """

    node_id: str
    reached: int = 0
    current: int = 0
    exited: int = 0
    exit_reasons: dict[str, int] = field(default_factory=dict)
    outbox: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    touches: int = 0
    touched_cases: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JourneyEdge:
    """Cases that went from `source` to `target` ("(start)" for the journey's entry)."""

    source: str
    target: str
    cases: int


@dataclass(frozen=True, slots=True)
class JourneyMap:
    """Counts to draw on a journey's diagram: per node and per edge."""

    journey: str  # key@version
    window_days: int
    nodes: list[NodeStats]
    edges: list[JourneyEdge]

    def node(self, node_id: str) -> NodeStats | None:
        return next((n for n in self.nodes if n.node_id == node_id), None)


@dataclass(slots=True)
class WeekRow:
    """What happened in one week (Monday's date, UTC), by the date of each fact."""

    week: str
    currency: str = ""
    placed_minor: int = 0  # invoices placed that week
    collected_minor: int = 0  # payments dated that week (no adjustments, none reversed)
    messages: dict[str, int] = field(default_factory=dict)
    sms_units: int = 0
    calls: int = 0
    cost: Decimal = Decimal(0)
    promises_made: int = 0
    promises_kept: int = 0  # found kept that week
    promises_broken: int = 0
    csat: CsatSummary = field(default_factory=lambda: csat_summary((0, 0, 0, 0, 0)))
    agent_answers: int = 0
    late_answers: int = 0
    opt_outs: int = 0
