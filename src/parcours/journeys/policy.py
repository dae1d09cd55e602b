"""The policy gate: may this message go out on this channel now, and if not, when?

One pure function, `check_send`, applied when a send is planned and again at send time
against live facts: payment, dispute, legal hold, objection, vulnerability, consent,
rolling contact caps and quiet hours in the debtor's time zone. `explain` lays out the
same reasoning, plus what Book XIX (`law.py`) allows to charge, for people.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from parcours.domain.journey import ChannelName, FeeKind
from parcours.journeys.law import (
    FeeDecision,
    LawConfig,
    allowed_fee,
    fee_wait_end,
    flat_indemnity_cap,
    public_holidays,
)

__all__ = [
    "CHANNELS",
    "DEFAULT_POLICY",
    "WRITTEN_CHANNELS",
    "ContactFacts",
    "ContactWindow",
    "GateDecision",
    "PolicyConfig",
    "Verdict",
    "check_fee",
    "check_send",
    "check_service",
    "explain",
    "in_contact_window",
    "is_contact_day",
    "next_allowed_time",
]

CHANNELS: Final[tuple[ChannelName, ...]] = ("email", "sms", "letter", "phone", "chat")
WRITTEN_CHANNELS: Final = frozenset({"email", "sms", "letter", "chat"})
Verdict = Literal["send", "delay", "skip", "review"]
_DAYS_AHEAD: Final = 400  # more than a year of searching means the configuration is wrong


def _aware(moment: dt.datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment!r}")


@dataclass(frozen=True, slots=True)
class ContactWindow:
    """Local wall-clock hours when the debtor may be contacted: start <= time < end."""

    start: dt.time = dt.time(8, 0)
    end: dt.time = dt.time(21, 0)

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("a contact window is in local wall-clock time: no tzinfo")
        if not self.start < self.end:
            raise ValueError(f"contact window {self.start}–{self.end} is empty")

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The rules of the gate. Defaults: DOMAIN.md (US Reg F hours and caps, Book XIX)."""

    # No Belgian rule on contact hours is known: the conservative Reg F window applies
    # everywhere unless a country has its own entry in `country_windows`.
    window: ContactWindow = field(default_factory=ContactWindow)
    country_windows: Mapping[str, ContactWindow] = field(
        default_factory=lambda: MappingProxyType({})
    )
    contact_on_sundays: bool = False
    contact_on_public_holidays: bool = False
    default_timezone: str = "Europe/Brussels"
    default_country: str = "BE"
    # Written messages (email, SMS, letter, chat together) per person, rolling window.
    max_written: int = 3
    written_window: dt.timedelta = dt.timedelta(days=7)
    # Call attempts per debt, rolling window; no call this long after a conversation.
    max_calls: int = 7
    call_window: dt.timedelta = dt.timedelta(days=7)
    no_call_after_conversation: dt.timedelta = dt.timedelta(days=7)
    law: LawConfig = field(default_factory=LawConfig)
    # Messages held back by quiet hours go out spread over this much of the next window
    # (by attempt id), not all at its first minute; 0 disables it.
    spread_after_quiet_hours: dt.timedelta = dt.timedelta(hours=2)

    def __post_init__(self) -> None:
        windows = {country.upper(): w for country, w in self.country_windows.items()}
        object.__setattr__(self, "country_windows", MappingProxyType(windows))
        for window in (self.window, *windows.values()):
            length = dt.datetime.combine(dt.date.min, window.end) - dt.datetime.combine(
                dt.date.min, window.start
            )
            if not dt.timedelta(0) <= self.spread_after_quiet_hours < length:
                raise ValueError(f"the spread after quiet hours must fit in the {window} window")
        if self.max_written < 1 or self.max_calls < 1:
            raise ValueError("max_written and max_calls must be at least 1")
        spans = (self.written_window, self.call_window, self.no_call_after_conversation)
        if any(span < dt.timedelta(0) for span in spans):
            raise ValueError("cap windows cannot be negative")
        ZoneInfo(self.default_timezone)  # fails early on an unknown zone

    def window_for(self, country: str) -> ContactWindow:
        """The contact window of `country`, or the default one."""
        return self.country_windows.get(country.upper(), self.window)


DEFAULT_POLICY: Final = PolicyConfig()


@dataclass(frozen=True, slots=True)
class ContactFacts:
    """The live facts of one case at decision time."""

    balance_minor: int
    disputed: bool = False
    legal_hold: bool = False
    contact_objection: bool = False  # the debtor objected to being contacted
    plan_running: bool = False  # a payment plan without arrears: collection pauses
    question_open: bool = False  # the debtor's question waits for an agent: it pauses too
    # The debtor declined reminders before the due date (on their page): nothing goes out
    # before `due_on` (the oldest open due date).
    pre_due_declined: bool = False
    due_on: dt.date | None = None
    vulnerable: bool = False
    paid: bool = False  # settled, whatever the balance says; a balance <= 0 is paid too
    timezone: str | None = None  # IANA name; None: the policy's default
    country: str | None = None  # ISO 3166 alpha-2; None: the policy's default
    # Channels with a contact point that exists and is not opted out.
    reachable: frozenset[str] = frozenset()
    # (channel, when) of this person's recent messages, all debts together.
    recent_contacts: tuple[tuple[str, dt.datetime], ...] = ()
    recent_calls: tuple[dt.datetime, ...] = ()  # call attempts on this debt
    last_conversation_at: dt.datetime | None = None  # last right-party phone conversation
    # Book XIX facts, for `check_fee` and `explain`.
    reminders_sent: int = 0
    first_reminder: tuple[dt.datetime, bool] | None = None  # (sent at, electronic)
    fees_charged_minor: int = 0  # reminder fees, postage excluded
    indemnity_charged_minor: int = 0
    interest_charged_minor: int = 0

    def __post_init__(self) -> None:
        unknown = {*self.reachable, *(c for c, _ in self.recent_contacts)} - set(CHANNELS)
        if unknown:
            raise ValueError(f"unknown channel(s): {', '.join(sorted(unknown))}")
        for _, when in self.recent_contacts:
            _aware(when, "recent_contacts")
        for when in self.recent_calls:
            _aware(when, "recent_calls")
        if self.last_conversation_at is not None:
            _aware(self.last_conversation_at, "last_conversation_at")
        if self.first_reminder is not None:
            _aware(self.first_reminder[0], "first_reminder")

    @property
    def is_paid(self) -> bool:
        return self.paid or self.balance_minor <= 0


@dataclass(frozen=True, slots=True)
class GateDecision:
    """What to do with one planned message: send now, delay until `not_before`, skip it,
    or hold it for an agent's review."""

    verdict: Verdict
    not_before: dt.datetime | None
    reason: str


def _zone(facts: ContactFacts, config: PolicyConfig) -> ZoneInfo:
    return ZoneInfo(facts.timezone or config.default_timezone)


def _country(facts: ContactFacts, config: PolicyConfig) -> str:
    return (facts.country or config.default_country).upper()


def _local(moment: dt.datetime, zone: ZoneInfo) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}"


def _span(span: dt.timedelta) -> str:
    if span % dt.timedelta(days=1) == dt.timedelta(0):
        return f"{span.days} days"
    return f"{span.total_seconds() / 3600:g} hours"


def is_contact_day(day: dt.date, country: str, config: PolicyConfig) -> bool:
    """Whether contact is allowed at all on this local date (Sundays, public holidays)."""
    if day.weekday() == 6 and not config.contact_on_sundays:
        return False
    return config.contact_on_public_holidays or day not in public_holidays(country, day.year)


def in_contact_window(
    moment: dt.datetime, zone: ZoneInfo, country: str, config: PolicyConfig
) -> bool:
    """Whether `moment` falls in the contact window, on an allowed day, in local time."""
    _aware(moment, "moment")
    local = moment.astimezone(zone)
    window = config.window_for(country)
    return window.start <= local.time() < window.end and is_contact_day(
        local.date(), country, config
    )


def _wall_instants(day: dt.date, wall: dt.time, zone: ZoneInfo) -> list[dt.datetime]:
    """The UTC instants the clock in `zone` shows `wall` on `day`: two in a DST overlap,
    and for a time inside a DST gap the instant one gap later (fold=0, PEP 495)."""
    naive = dt.datetime.combine(day, wall)
    return sorted({naive.replace(tzinfo=zone, fold=f).astimezone(dt.UTC) for f in (0, 1)})


def next_allowed_time(
    now: dt.datetime, zone: ZoneInfo, country: str, config: PolicyConfig = DEFAULT_POLICY
) -> dt.datetime:
    """`now` (in UTC) if contact is allowed then, else the start of the next window on an
    allowed day. Windows are local wall-clock times, so they move with DST changes."""
    _aware(now, "now")
    if in_contact_window(now, zone, country, config):
        return now.astimezone(dt.UTC)
    start = config.window_for(country).start
    day = now.astimezone(zone).date()
    for _ in range(_DAYS_AHEAD):
        if is_contact_day(day, country, config):
            for candidate in _wall_instants(day, start, zone):
                if candidate >= now and in_contact_window(candidate, zone, country, config):
                    return candidate
        day += dt.timedelta(days=1)
    raise ValueError(f"no contact window within {_DAYS_AHEAD} days for {country}")


def _free_from(times: Iterable[dt.datetime], limit: int, span: dt.timedelta) -> dt.datetime | None:
    """The first instant at which one more contact keeps at most `limit` of them in any
    rolling `span` (None: no constraint).

    A contact at c counts at t while c > t - span, wherever c lies (a contact recorded
    after t counts too, which is conservative). With the contacts newest first, one more
    is allowed once the `limit`-th newest no longer counts: at that contact + span.
    """
    newest_first = sorted(times, reverse=True)
    if len(newest_first) < limit:
        return None
    return newest_first[limit - 1] + span


def _holds(facts: ContactFacts) -> list[str]:
    reasons = []
    if facts.disputed:
        reasons.append("disputed: collection paused")
    if facts.legal_hold:
        reasons.append("legal hold")
    if facts.contact_objection:
        reasons.append("contact objection")
    if facts.plan_running:
        reasons.append("payment plan running: collection paused")
    if facts.question_open:
        reasons.append("question waiting for an answer")
    return reasons


def _written(facts: ContactFacts) -> list[dt.datetime]:
    return [when for channel, when in facts.recent_contacts if channel in WRITTEN_CHANNELS]


def check_send(
    facts: ContactFacts,
    channel: ChannelName,
    now: dt.datetime,
    config: PolicyConfig = DEFAULT_POLICY,
) -> GateDecision:
    """The gate's verdict on sending one message on `channel` at `now`.

    Checks in order: paid (skip); disputed, legal hold, contact objection, payment plan
    running, question waiting for an answer (skip); before the due date when the debtor
    declined pre-due reminders (skip); vulnerable (review by an agent);
    channel not reachable (skip); contact caps and quiet hours (delay). A delay's
    `not_before` satisfies every cap and the window at once: the caps only loosen as
    time passes, so the window is sought from the moment they allow.
    """
    _aware(now, "now")
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    if facts.is_paid:
        return GateDecision("skip", None, "paid")
    holds = _holds(facts)
    if holds:
        return GateDecision("skip", None, "; ".join(holds))
    if (
        facts.pre_due_declined
        and facts.due_on is not None
        and now.astimezone(_zone(facts, config)).date() < facts.due_on
    ):
        return GateDecision("skip", None, "the debtor asked for no reminder before the due date")
    if facts.vulnerable:
        return GateDecision("review", None, "vulnerable: agent review")
    if channel not in facts.reachable:
        return GateDecision("skip", None, f"no consent or contact point for {channel}")

    zone, country = _zone(facts, config), _country(facts, config)
    # (from when the constraint allows a send, what it is, what it implies for the slot)
    blocks: list[tuple[dt.datetime, str, str]] = []
    if channel in WRITTEN_CHANNELS:
        free = _free_from(_written(facts), config.max_written, config.written_window)
        if free is not None and free > now:
            what = f"cap: {config.max_written} messages in {_span(config.written_window)}"
            blocks.append((free, what, ", next slot"))
    else:
        free = _free_from(facts.recent_calls, config.max_calls, config.call_window)
        if free is not None and free > now:
            what = f"call cap: {config.max_calls} calls in {_span(config.call_window)}"
            blocks.append((free, what, ", next slot"))
        talked = facts.last_conversation_at
        if talked is not None and talked + config.no_call_after_conversation > now:
            free = talked + config.no_call_after_conversation
            blocks.append((free, f"conversation on {_local(talked, zone)}", ": no call before"))

    earliest = max([now, *(free for free, _, _ in blocks)])
    at = next_allowed_time(earliest, zone, country, config)
    if not blocks:
        if at == now:
            return GateDecision("send", None, "allowed")
        return GateDecision("delay", at, f"quiet hours: next window {_local(at, zone)}")
    slot = _local(at, zone)
    return GateDecision("delay", at, "; ".join(f"{what}{then} {slot}" for _, what, then in blocks))


def check_service(
    facts: ContactFacts,
    channel: ChannelName,
    now: dt.datetime,
    config: PolicyConfig = DEFAULT_POLICY,
) -> GateDecision:
    """The gate's verdict on a service message the debtor asked for (such as the notice
    that an agent answered their question) on `channel` at `now`.

    It is not collection: a paid, disputed or paused case still gets it, the contact
    caps do not hold it back (it still counts toward them for what follows), and it needs
    no review for vulnerability (an agent wrote the answer). What protects the person
    still holds: a legal hold or a contact objection (skip), no consent or contact point
    on the channel (skip), quiet hours (delay).
    """
    _aware(now, "now")
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    holds = [h for h in ("legal hold", "contact objection") if h in _holds(facts)]
    if holds:
        return GateDecision("skip", None, "; ".join(holds))
    if channel not in facts.reachable:
        return GateDecision("skip", None, f"no consent or contact point for {channel}")
    zone = _zone(facts, config)
    at = next_allowed_time(now, zone, _country(facts, config), config)
    if at == now:
        return GateDecision("send", None, "allowed (service message)")
    return GateDecision("delay", at, f"quiet hours: next window {_local(at, zone)}")


def check_fee(
    facts: ContactFacts,
    kind: FeeKind,
    now: dt.datetime,
    config: PolicyConfig = DEFAULT_POLICY,
    *,
    by_post: bool = False,
    postage_minor: int | None = None,
) -> FeeDecision:
    """What the gate lets a `fee` node charge now: nothing on a paid, disputed or held
    case, otherwise what Book XIX allows."""
    if facts.is_paid:
        return FeeDecision(0, "paid")
    holds = [h for h in _holds(facts) if h != "contact objection"]
    if holds:
        return FeeDecision(0, "; ".join(holds))
    return allowed_fee(
        kind,
        balance_minor=facts.balance_minor,
        reminders_sent=facts.reminders_sent,
        first_reminder=facts.first_reminder,
        fees_charged_minor=facts.fees_charged_minor,
        indemnity_charged_minor=facts.indemnity_charged_minor,
        interest_charged_minor=facts.interest_charged_minor,
        now=now,
        zone=_zone(facts, config),
        country=_country(facts, config),
        config=config.law,
        by_post=by_post,
        postage_minor=postage_minor,
    )


def _iso(moment: dt.datetime | None, zone: ZoneInfo) -> str | None:
    return None if moment is None else moment.astimezone(zone).isoformat()


def _cap_use(
    times: list[dt.datetime], limit: int, span: dt.timedelta, now: dt.datetime, zone: ZoneInfo
) -> dict[str, Any]:
    free = _free_from(times, limit, span)
    return {
        "used": sum(1 for when in times if when > now - span),
        "max": limit,
        "window": _span(span),
        "full_until": _iso(free if free is not None and free > now else None, zone),
    }


def explain(
    facts: ContactFacts, now: dt.datetime, config: PolicyConfig = DEFAULT_POLICY
) -> dict[str, Any]:
    """The gate's reasoning for one case at `now`, as plain data (times in local ISO
    format): holds, per-channel verdicts, caps used, and the fees the law allows."""
    _aware(now, "now")
    zone, country = _zone(facts, config), _country(facts, config)
    holds = (["paid"] if facts.is_paid else []) + _holds(facts)
    if facts.vulnerable:
        holds.append("vulnerable: agent review")
    channels = {}
    for channel in CHANNELS:
        decision = check_send(facts, channel, now, config)
        channels[channel] = {
            "verdict": decision.verdict,
            "not_before": _iso(decision.not_before, zone),
            "reason": decision.reason,
        }
    written = _written(facts)
    talked = facts.last_conversation_at
    no_call_until = None if talked is None else talked + config.no_call_after_conversation
    wait_end = None
    if facts.first_reminder is not None:
        sent_at, electronic = facts.first_reminder
        wait_end = fee_wait_end(
            sent_at,
            electronic,
            zone,
            country,
            wait_days=config.law.wait_days,
            paper_working_days=config.law.paper_working_days,
        )
    fees = {}
    for kind in FeeKind:
        decision_fee = check_fee(facts, kind, now, config)
        fees[kind.value] = {
            "amount_minor": decision_fee.amount_minor,
            "reason": decision_fee.reason,
        }
    return {
        "now": _iso(now, zone),
        "timezone": zone.key,
        "country": country,
        "holds": holds,
        "window": {
            "hours": str(config.window_for(country)),
            "open_now": in_contact_window(now, zone, country, config),
            "next_allowed": _iso(next_allowed_time(now, zone, country, config), zone),
        },
        "channels": channels,
        "caps": {
            "written": _cap_use(written, config.max_written, config.written_window, now, zone),
            "calls": _cap_use(
                list(facts.recent_calls), config.max_calls, config.call_window, now, zone
            ),
            "no_call_before": _iso(
                no_call_until if no_call_until is not None and no_call_until > now else None,
                zone,
            ),
        },
        "law": {
            "balance_minor": max(facts.balance_minor, 0),
            "reminders_sent": facts.reminders_sent,
            "first_reminder": _iso(facts.first_reminder[0], zone) if facts.first_reminder else None,
            "wait_ends": None if wait_end is None else wait_end.isoformat(),
            "flat_indemnity_cap_minor": flat_indemnity_cap(facts.balance_minor),
            "fees": fees,
        },
    }
