"""KPIs, the journey map and experiment results of one creditor, read from stored facts.

Everything is set-based: the creditor's cases are reduced once, in SQL, to one row per
case in a temporary table (its persona, journey, node, experiment arm, week of
placement, and what it owed and paid when); each fact table (outbox, events, promises,
plans, answers, chat) is then aggregated by the requested groups in one query joined
to it. No query per case, every query names the creditor, and only group totals come
back to Python, where `parcours.analytics` turns them into KPIs.

`now` is the cut-off: facts dated after it are ignored, so a portfolio can be read as it
stood on a past day — except the current journey node and promise, plan and
conversation states, which the store keeps only as they are now.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final
from uuid import UUID

from sqlalchemy import Connection

from parcours.analytics.experiments import (
    ArmSums,
    ExperimentResult,
    MeanSummary,
    RatioSummary,
    experiment_result,
)
from parcours.analytics.kpis import (
    CLOSED,
    CURRENT,
    DPD_BUCKETS,
    WINDOWS,
    ChannelCosts,
    JourneyEdge,
    JourneyMap,
    KpiRow,
    KpiSums,
    NodeStats,
    WeekRow,
    contact_cost,
    csat_summary,
    kpi_row,
)
from parcours.store.bulk import PortfolioWriter

__all__ = [
    "COMPLAINT_EVENTS",
    "DIMENSIONS",
    "RESPONSE_EVENTS",
    "START",
    "experiment_results",
    "journey_map",
    "portfolio_kpis",
    "weekly_activity",
]

Row = tuple[Any, ...]
DIMENSIONS: Final = ("persona", "journey", "node", "arm", "week")
# Labels of a missing dimension value.
_NONE: Final = {
    "persona": "(none)",
    "journey": "(not enrolled)",
    "node": "(not enrolled)",
    "arm": "(not in experiment)",
    "week": "(none)",
}
# A debtor answering a contact: a click (a pay link or the page), a reply, a chat question.
RESPONSE_EVENTS: Final = ("message.clicked", "message.replied", "question.asked")
# No part of parcours records complaints yet; an agent tool or integration that does
# should use this event type (kept apart from disputes, which contest the debt itself).
COMPLAINT_EVENTS: Final = ("complaint.made",)
# An agent's call disposition meaning the right person was spoken to.
_RIGHT_PARTY: Final = ("right_party", "promise", "dispute")
START: Final = "(start)"  # the source of a journey map's entry edges
# What happened after a touch, from the case's events (see `journey_map`).
_OUTCOMES: Final = {
    "delivered": ("message.delivered",),
    "opened": ("message.opened",),
    "clicked": ("message.clicked",),
    "replied": ("message.replied",),
    "chatted": ("question.asked",),
    "conversation": ("call.conversation",),
    "paid": ("payment.booked",),
    "paid_in_full": ("case.paid",),
    "promised": ("promise.made",),
    "plan": ("plan.created",),
    "disputed": ("dispute.opened",),
    "bounced": ("message.bounced",),
    "opted_out": ("message.opted_out",),
}
# Any of these after a touch means the debtor did something; none of them is "stalled".
_ACTED: Final = (
    "opened", "clicked", "replied", "chatted", "conversation", "paid", "promised", "plan",
    "disputed",
)  # fmt: skip
# An outbox row that reached the debtor: a message sent, or a call attempt an agent closed.
_CHANNELS: Final = ("email", "sms", "letter", "phone", "chat")  # ChannelName
_CONTACTED: Final = (
    "{o}.status = 'sent' AND {o}.sent_at <= :now "
    "AND ({o}.kind = 'send' OR ({o}.kind = 'task' AND {o}.channel = 'phone'))"
)
_CURRENCY: Final = re.compile(r"^[A-Z]{3}$")
_KEY: Final = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")
_JOURNEY: Final = re.compile(r"^([a-z][a-z0-9_\-]{0,63})@([0-9]{1,9})$")
_EPOCH: Final = dt.date(1970, 1, 1)
_WORK_MEM: Final = "256MB"  # per sort or hash of an analytics query on PostgreSQL
_MARKER: Final = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


def _day(value: dt.datetime | dt.date) -> int:
    """Days since the epoch of a UTC instant or a date (as the SQL computes them)."""
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC).date()
    return (value - _EPOCH).days


def _aware(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None:
        raise ValueError("now: an aware datetime")
    return now.astimezone(dt.UTC)


class _Sql:
    """The creditor's key, a raw cursor, and the few places SQLite and PostgreSQL differ."""

    def __init__(self, connection: Connection, creditor_id: UUID) -> None:
        self.connection = connection
        self.writer = PortfolioWriter(connection, creditor_id)
        self.creditor = self.writer.creditor_key
        self.sqlite = connection.dialect.name == "sqlite"
        # SQLite joins in the order written with CROSS JOIN: the fact table first, each
        # row probing the staged cases by key (its planner has no statistics on them);
        # PostgreSQL plans it as any inner join.
        self.then = " CROSS JOIN "
        self.scan = ""  # set by `measure`

    def prepare(self) -> None:
        """Give PostgreSQL the memory to hash a million cases for this transaction only
        (`SET LOCAL`): with the default 4 MB, hashing the distinct cases of four million
        outbox rows spills to disk and takes minutes instead of seconds. Then measure
        the creditor's share of the database (see `measure`)."""
        if not self.sqlite:
            self.run(f"SET LOCAL work_mem = '{_WORK_MEM}'")
        self.measure()

    def measure(self) -> None:
        """On SQLite, scan the big fact tables whole (`NOT INDEXED`) when this creditor owns
        most of the database: reading a table in order beats fetching most of its rows
        one by one through the creditor's index. A small tenant keeps the index."""
        if not self.sqlite:
            return
        (ours,) = self.rows("SELECT COUNT(*) FROM cases WHERE creditor_id = :creditor")[0]
        (every,) = self.rows("SELECT COUNT(*) FROM cases")[0]
        self.scan = " NOT INDEXED" if ours * 2 >= every else ""

    def _named(self, sql: str) -> str:
        """`:name` markers in this driver's named style (`::` casts are left alone)."""
        return sql if self.sqlite else _MARKER.sub(r"%(\1)s", sql)

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        cursor = self.connection.connection.cursor()
        try:
            cursor.execute(self._named(sql), {"creditor": self.creditor, **(params or {})})
            return [tuple(r) for r in cursor.fetchall()]
        finally:
            cursor.close()

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self.connection.exec_driver_sql(
            self._named(sql), {"creditor": self.creditor, **(params or {})}
        )

    def at(self, value: dt.datetime) -> Any:
        return self.writer.timestamp(value)

    def day(self, column: str) -> str:
        """Days since the epoch of a UTC timestamp column."""
        if self.sqlite:
            return f"CAST(julianday({column}) - 2440587.5 AS INTEGER)"
        return f"((({column}) AT TIME ZONE 'UTC')::date - DATE '1970-01-01')"

    def date_day(self, column: str) -> str:
        """Days since the epoch of a date column."""
        if self.sqlite:
            return f"CAST(julianday({column}) - 2440587.5 AS INTEGER)"
        return f"({column} - DATE '1970-01-01')"

    def week(self, column: str) -> str:
        """The Monday (ISO date text) of the UTC week of a timestamp column."""
        if self.sqlite:
            return f"date({column}, 'weekday 0', '-6 days')"
        return f"to_char(date_trunc('week', ({column}) AT TIME ZONE 'UTC'), 'YYYY-MM-DD')"

    def arm(self, column: str, experiment: str) -> str:
        if not _KEY.fullmatch(experiment):
            raise ValueError(f"experiment: {experiment!r} is not an experiment key")
        if self.sqlite:
            return f"json_extract({column}, '$.\"{experiment}\"')"
        return f"({column} ->> '{experiment}')"

    def later(self, column: str, days: int) -> str:
        """A timestamp column plus whole days, comparable with stored timestamps."""
        if self.sqlite:
            return f"datetime({column}, '+{int(days)} days')"
        return f"({column} + INTERVAL '{int(days)} days')"

    @property
    def fence(self) -> str:
        """Ends a subquery that must not be merged into its parent, so that its computed
        columns are computed once per row, not at every use."""
        return " LIMIT -1" if self.sqlite else " OFFSET 0"

    def sum(self, value: str) -> str:
        """SUM of whole numbers as a 64-bit integer.

        PostgreSQL sums BIGINT through NUMERIC, several times slower and larger over a
        million cases than through DOUBLE PRECISION, which is exact for whole numbers
        below 2**53 (90 billion euros in cents) — the result is cast back at once.
        """
        if self.sqlite:
            return f"SUM({value})"
        return f"CAST(SUM(CAST({value} AS DOUBLE PRECISION)) AS BIGINT)"

    def drop(self, table: str) -> None:
        self.run(f"DROP TABLE IF EXISTS {'temp' if self.sqlite else 'pg_temp'}.{table}")

    def index(self, table: str, column: str) -> None:
        self.run(f"CREATE INDEX {table}_{column} ON {table} ({column})")
        if not self.sqlite:
            self.run(f"ANALYZE {table}")


def _bucket(days: str) -> str:
    """SQL naming the days-past-due bucket of an expression (≤ 0: current)."""
    cases = [f"WHEN {days} <= 0 THEN '{CURRENT}'"]
    for _, last, label in DPD_BUCKETS:
        cases.append(f"WHEN {days} <= {last} THEN '{label}'" if last else f"ELSE '{label}'")
    return f"CASE {' '.join(cases)} END"


def _currency(sql: _Sql, currency: str | None) -> str:
    """The currency money KPIs are read in: the one given, else the creditor's most
    used (invoices in other currencies count for days and buckets, not for amounts)."""
    if currency is None:
        found = sql.rows(
            "SELECT currency FROM invoices WHERE creditor_id = :creditor GROUP BY currency "
            "ORDER BY COUNT(*) DESC, currency LIMIT 1"
        )
        currency = str(found[0][0]) if found else "EUR"
    if not _CURRENCY.fullmatch(currency):
        raise ValueError(f"currency: {currency!r} is not an ISO currency code")
    return currency


def _stage_cases(
    sql: _Sql,
    now: dt.datetime,
    currency: str,
    period_days: int,
    experiment: str | None,
) -> None:
    """One row per case opened by `now` in the temporary table `analytics_cases`: its
    dimensions and money facts (see `KpiRow` for what they mean)."""
    today = _day(now)
    start = now - dt.timedelta(days=period_days)
    start_day = _day(start)

    def total(condition: str, value: str = "r.pay") -> str:
        return f"COALESCE({sql.sum(f'CASE WHEN {condition} THEN {value} END')}, 0)"

    windows = "".join(
        f"{total(f'r.is_real = 1 AND r.d >= r.pd AND r.d <= r.pd + {n}')} AS coll_{n}, "
        for n in WINDOWS
    )
    # One row per invoice and payment (days since the epoch computed once), then one per
    # invoice.
    rows = (
        f"SELECT i.case_id AS case_id, i.id AS invoice_id, i.amount_minor AS amount, "
        f"CASE WHEN i.currency = '{currency}' THEN 1 ELSE 0 END AS cur, "
        f"{sql.day('i.created_at')} AS pd, {sql.date_day('i.due_date')} AS dd, "
        f"{sql.date_day('i.issue_date')} AS idd, p.amount_minor AS pay, "
        f"{sql.day('p.paid_at')} AS d, "
        "CASE WHEN substr(p.ref, 1, 11) = 'adjustment:' THEN 0 ELSE 1 END AS is_real "
        "FROM invoices i LEFT JOIN payments p ON p.invoice_id = i.id "
        "AND p.creditor_id = :creditor AND p.paid_at <= :now "
        "AND (p.reversed_at IS NULL OR p.reversed_at > :now) "
        f"WHERE i.creditor_id = :creditor AND i.created_at <= :now{sql.fence}"
    )
    invoices = (
        "SELECT r.case_id AS case_id, MIN(r.amount) AS amount, MIN(r.cur) AS cur, "
        "MIN(r.pd) AS placed_day, MIN(r.dd) AS due_day, MIN(r.idd) AS issue_day, "
        f"{total('r.is_real = 1 AND r.d < r.pd')} AS hist, "
        f"{total('r.is_real = 1 AND r.d >= r.pd')} AS coll, {windows}"
        "MAX(CASE WHEN r.is_real = 1 THEN r.d END) AS last_day, "
        f"{total(f'r.d <= {start_day}')} AS settled_start, "
        f"{total('r.d IS NOT NULL')} AS settled_end "
        f"FROM ({rows}) r GROUP BY r.case_id, r.invoice_id"
    )
    cur = "v.cur = 1"
    placed = "v.amount - v.hist"
    issued = f"{cur} AND v.issue_day <= {today}"
    open_end, open_start = "v.amount - v.settled_end", "v.amount - v.settled_start"

    def case_total(condition: str, value: str) -> str:
        return sql.sum(f"CASE WHEN {condition} THEN {value} ELSE 0 END")

    matured = "".join(
        f"{case_total(f'{cur} AND v.placed_day + {n} <= {today}', placed)} AS placed_{n}, "
        f"{case_total(f'{cur} AND v.placed_day + {n} <= {today}', f'v.coll_{n}')} AS coll_{n}, "
        for n in WINDOWS
    )
    cases = (
        "SELECT v.case_id AS case_id, "
        f"{case_total(cur, placed)} AS placed, {case_total(cur, 'v.coll')} AS collected, "
        f"{matured}"
        f"{case_total('v.amount > v.hist', '1')} AS placed_invoices, "
        f"{case_total('v.amount > v.hist + v.coll', '1')} AS open_invoices, "
        "MIN(CASE WHEN v.amount > v.hist THEN v.due_day END) AS oldest_due, "
        "MAX(CASE WHEN v.amount > v.hist THEN v.last_day END) AS last_day, "
        f"{case_total(issued, open_end)} AS ar_end, "
        f"{case_total(f'{issued} AND v.due_day >= {today}', open_end)} AS ar_current, "
        f"{case_total(f'{cur} AND v.issue_day <= {start_day}', open_start)} AS ar_begin, "
        f"{case_total(f'{issued} AND v.issue_day > {start_day}', 'v.amount')} AS sales, "
        f"MIN(CASE WHEN v.placed_day <= {start_day} THEN v.placed_day END) AS placed_by_start, "
        f"MIN(CASE WHEN v.placed_day <= {start_day} AND v.amount > v.settled_start "
        "THEN v.due_day END) AS due_start, "
        "MIN(CASE WHEN v.amount > v.settled_end THEN v.due_day END) AS due_end "
        f"FROM ({invoices}) v GROUP BY v.case_id"
    )
    closed_start = "(c.closed_at IS NOT NULL AND c.closed_at <= :start)"
    closed_now = "(c.closed_at IS NOT NULL AND c.closed_at <= :now)"
    state_start = (
        f"CASE WHEN m.placed_by_start IS NULL OR {closed_start} THEN NULL "
        f"WHEN m.due_start IS NULL THEN '{CURRENT}' "
        f"ELSE {_bucket(f'({start_day} - m.due_start)')} END"
    )
    state_end = (
        f"CASE WHEN m.due_end IS NULL OR m.due_end >= {today} THEN '{CURRENT}' "
        f"WHEN {closed_now} THEN '{CLOSED}' ELSE {_bucket(f'({today} - m.due_end)')} END"
    )
    paid = "(m.placed_invoices > 0 AND m.open_invoices = 0)"
    money = ", ".join(
        f"COALESCE(m.{c}, 0) AS {c}"
        for c in (
            "placed", "collected", *(f"{k}_{n}" for n in WINDOWS for k in ("placed", "coll")),
            "sales",
        )
    )  # fmt: skip
    arm = sql.arm("e.arms", experiment) if experiment else "NULL"
    journey = (
        "CASE WHEN e.case_id IS NULL THEN NULL ELSE e.journey_key || '@' || e.journey_version END"
    )
    sql.drop("analytics_cases")
    sql.run(
        "CREATE TEMPORARY TABLE analytics_cases AS SELECT c.id AS case_id, "
        f"COALESCE(e.persona, dp.persona) AS persona, {journey} AS journey, e.node_id AS node, "
        f"{arm} AS arm, {sql.week('c.opened_at')} AS week, {money}, "
        f"CASE WHEN {closed_start} THEN 0 ELSE COALESCE(m.ar_begin, 0) END AS ar_begin, "
        f"CASE WHEN {closed_now} THEN 0 ELSE COALESCE(m.ar_end, 0) END AS ar_end, "
        f"CASE WHEN {closed_now} THEN 0 ELSE COALESCE(m.ar_current, 0) END AS ar_current, "
        f"CASE WHEN COALESCE(m.placed_invoices, 0) > 0 THEN 1 ELSE 0 END AS cases_placed, "
        f"CASE WHEN {paid} THEN 1 ELSE 0 END AS paid, "
        f"CASE WHEN {paid} THEN m.last_day - m.oldest_due END AS dtp, "
        f"{state_start} AS state_start, {state_end} AS state_end "
        "FROM cases c "
        "LEFT JOIN enrolments e ON e.case_id = c.id AND e.creditor_id = c.creditor_id "
        "LEFT JOIN debtor_personas dp ON dp.debtor_id = c.debtor_id "
        "AND dp.creditor_id = c.creditor_id "
        f"LEFT JOIN ({cases}) m ON m.case_id = c.id "
        "WHERE c.creditor_id = :creditor AND c.opened_at <= :now",
        {"now": sql.at(now), "start": sql.at(start)},
    )
    sql.index("analytics_cases", "case_id")


class _Groups:
    """KpiSums by group key (the labels of the requested dimensions)."""

    def __init__(self, dims: Sequence[str]) -> None:
        self.dims = tuple(dims)
        self.sums: dict[tuple[str, ...], KpiSums] = {}

    @property
    def select(self) -> str:
        """The dimension columns, first in each grouped query."""
        return "".join(f"a.{d}, " for d in self.dims)

    def group_and(self, *more: str) -> str:
        parts = [f"a.{d}" for d in self.dims] + list(more)
        return f" GROUP BY {', '.join(parts)}" if parts else ""

    def split(self, row: Row) -> tuple[KpiSums, Row]:
        """The sums of the row's group and the rest of the row."""
        n = len(self.dims)
        key = tuple(
            _NONE[d] if v is None else str(v) for d, v in zip(self.dims, row[:n], strict=True)
        )
        found = self.sums.get(key)
        if found is None:
            found = self.sums[key] = KpiSums()
        return found, row[n:]


def _facts_join(sql: _Sql, groups: _Groups, table: str, alias: str) -> str:
    """FROM a fact table, joined to the staged cases when grouping by them."""
    scanned = f"FROM {table} {alias}{sql.scan}"
    return f"{scanned}{sql.then}analytics_cases a" if groups.dims else scanned


def _on(groups: _Groups, case: str) -> str:
    return f" AND a.case_id = {case}" if groups.dims else ""


def _read_cases(sql: _Sql, groups: _Groups) -> None:
    columns = ", ".join(
        f"SUM(a.{c})"
        for c in (
            "placed", "collected", *(f"{k}_{n}" for n in WINDOWS for k in ("placed", "coll")),
            "cases_placed", "paid", "ar_end", "ar_current", "ar_begin", "sales",
        )
    )  # fmt: skip
    for row in sql.rows(
        f"SELECT {groups.select}COUNT(*), {columns} FROM analytics_cases a{groups.group_and()}"
    ):
        sums, rest = groups.split(row)
        values = [int(v or 0) for v in rest]
        sums.cases, sums.placed_minor, sums.collected_minor = values[:3]
        k = 3
        for n in WINDOWS:
            sums.matured_placed_minor[n], sums.matured_collected_minor[n] = values[k : k + 2]
            k += 2
        (
            sums.cases_placed, sums.cases_paid, sums.receivables_minor,
            sums.receivables_current_minor, sums.receivables_begin_minor, sums.sales_minor,
        ) = values[k:]  # fmt: skip
    for row in sql.rows(
        f"SELECT {groups.select}a.dtp, COUNT(*) FROM analytics_cases a WHERE a.dtp IS NOT NULL"
        f"{groups.group_and('a.dtp')}"
    ):
        sums, (days, count) = groups.split(row)
        sums.days_to_pay[int(days)] = int(count)
    for row in sql.rows(
        f"SELECT {groups.select}a.state_start, a.state_end, COUNT(*) FROM analytics_cases a "
        f"WHERE a.state_start IS NOT NULL{groups.group_and('a.state_start', 'a.state_end')}"
    ):
        sums, (start, end, count) = groups.split(row)
        sums.transitions[(str(start), str(end))] = int(count)


def _read_outbox(sql: _Sql, groups: _Groups, now: dt.datetime) -> None:
    """Messages sent by channel, SMS segments, call attempts and conversations — and on
    SQLite the cases contacted, in the same pass (see `_read_events`)."""
    sends = "".join(
        f"SUM(CASE WHEN o.kind = 'send' AND o.channel = '{c}' THEN 1 ELSE 0 END), "
        for c in _CHANNELS
    )
    listed = ", ".join(f"'{c}'" for c in _CHANNELS)
    right_party = ", ".join(f"'{r}'" for r in _RIGHT_PARTY)
    for row in sql.rows(
        f"SELECT {groups.select}{sends}"
        "SUM(CASE WHEN o.kind = 'send' AND (o.channel IS NULL "
        f"OR o.channel NOT IN ({listed})) THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN o.kind = 'send' AND o.channel = 'sms' THEN COALESCE(o.units, 1) "
        "ELSE 0 END), SUM(CASE WHEN o.kind = 'task' THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN o.kind = 'task' AND o.reason IN ({right_party}) THEN 1 ELSE 0 END)"
        f"{', COUNT(DISTINCT o.case_id)' if sql.sqlite else ''} "
        f"{_facts_join(sql, groups, 'outbox', 'o')} "
        f"WHERE o.creditor_id = :creditor AND {_CONTACTED.format(o='o')}"
        f"{_on(groups, 'o.case_id')}{groups.group_and()}",
        {"now": sql.at(now)},
    ):
        sums, rest = groups.split(row)
        counts = [int(v or 0) for v in rest]
        named = zip((*_CHANNELS, "other"), counts, strict=False)
        sums.messages = {channel: n for channel, n in named if n}
        k = len(_CHANNELS) + 1
        sums.sms_units, sums.calls, sums.call_conversations = counts[k : k + 3]
        if sql.sqlite:
            sums.contacted = counts[k + 3]


def _read_events(sql: _Sql, groups: _Groups, now: dt.datetime) -> None:
    """Cases that responded (a click, a reply, a chat question) of those contacted, and
    cases opting out or complaining, each counted once; cases with a dispute.

    PostgreSQL hashes the contacted and the responding cases and joins them. SQLite,
    which sorts where PostgreSQL hashes, counts the contacted cases while reading the
    outbox and checks each response against the outbox through its (creditor, debtor)
    index, in one pass over the events.
    """
    responses = ", ".join(f"'{t}'" for t in RESPONSE_EVENTS)
    complaints = ", ".join(f"'{t}'" for t in COMPLAINT_EVENTS)
    params = {"now": sql.at(now)}
    flags = (
        "COUNT(DISTINCT CASE WHEN e.type = 'message.opted_out' THEN e.case_id END), "
        f"COUNT(DISTINCT CASE WHEN e.type IN ({complaints}) THEN e.case_id END)"
    )
    kinds = f"{complaints}, 'message.opted_out'"
    if sql.sqlite:
        contacted = (
            "EXISTS (SELECT 1 FROM outbox k INDEXED BY ix_outbox_debtor "
            "WHERE k.creditor_id = e.creditor_id AND k.debtor_id = e.debtor_id "
            f"AND k.case_id = e.case_id AND {_CONTACTED.format(o='k')})"
        )
        flags = (
            f"COUNT(DISTINCT CASE WHEN e.type IN ({responses}) AND {contacted} "
            f"THEN e.case_id END), {flags}"
        )
        kinds = f"{responses}, {kinds}"
    else:
        source = (
            "FROM (SELECT DISTINCT k.case_id AS case_id FROM outbox k "
            f"WHERE k.creditor_id = :creditor AND {_CONTACTED.format(o='k')}) f "
            "LEFT JOIN (SELECT DISTINCT r.case_id AS case_id FROM events r "
            "WHERE r.creditor_id = :creditor AND r.occurred_at <= :now "
            f"AND r.type IN ({responses})) r ON r.case_id = f.case_id"
        )
        if groups.dims:
            source += " CROSS JOIN analytics_cases a WHERE a.case_id = f.case_id"
        for row in sql.rows(
            f"SELECT {groups.select}COUNT(*), "
            f"SUM(CASE WHEN r.case_id IS NULL THEN 0 ELSE 1 END) {source}{groups.group_and()}",
            params,
        ):
            sums, (contacted_cases, responded) = groups.split(row)
            sums.contacted, sums.responded = int(contacted_cases), int(responded or 0)
    for row in sql.rows(
        f"SELECT {groups.select}{flags} {_facts_join(sql, groups, 'events', 'e')} "
        "WHERE e.creditor_id = :creditor AND e.case_id IS NOT NULL AND e.occurred_at <= :now "
        f"AND e.type IN ({kinds}){_on(groups, 'e.case_id')}{groups.group_and()}",
        params,
    ):
        sums, rest = groups.split(row)
        if sql.sqlite:
            sums.responded, rest = int(rest[0]), rest[1:]
        sums.opted_out, sums.complained = int(rest[0]), int(rest[1])
    for row in sql.rows(
        f"SELECT {groups.select}COUNT(DISTINCT d.case_id) "
        f"{_facts_join(sql, groups, 'disputes', 'd')} "
        "WHERE d.creditor_id = :creditor AND d.opened_at <= :now"
        f"{_on(groups, 'd.case_id')}{groups.group_and()}",
        params,
    ):
        sums, (disputed,) = groups.split(row)
        sums.disputed = int(disputed)


def _read_arrangements(sql: _Sql, groups: _Groups, now: dt.datetime) -> None:
    for table, alias, made, good, bad in (
        ("promises", "p", "made_at", "kept", "broken"),
        ("payment_plans", "pl", "created_at", "completed", "broken"),
    ):
        for row in sql.rows(
            f"SELECT {groups.select}COUNT(*), "
            f"SUM(CASE WHEN {alias}.state = '{good}' AND {alias}.settled_at <= :now "
            "THEN 1 ELSE 0 END), "
            f"SUM(CASE WHEN {alias}.state = '{bad}' AND {alias}.settled_at <= :now "
            f"THEN 1 ELSE 0 END) {_facts_join(sql, groups, table, alias)} "
            f"WHERE {alias}.creditor_id = :creditor AND {alias}.{made} <= :now"
            f"{_on(groups, f'{alias}.case_id')}{groups.group_and()}",
            {"now": sql.at(now)},
        ):
            sums, (count, kept, broken) = groups.split(row)
            if table == "promises":
                sums.promises_made = int(count)
                sums.promises_kept, sums.promises_broken = int(kept or 0), int(broken or 0)
            else:
                sums.plans_made = int(count)
                sums.plans_completed, sums.plans_broken = int(kept or 0), int(broken or 0)


def _read_service(sql: _Sql, groups: _Groups, now: dt.datetime) -> None:
    for row in sql.rows(
        f"SELECT {groups.select}r.score, COUNT(*) "
        f"{_facts_join(sql, groups, 'csat_responses', 'r')} "
        f"WHERE r.creditor_id = :creditor AND r.at <= :now{_on(groups, 'r.case_id')}"
        f"{groups.group_and('r.score')}",
        {"now": sql.at(now)},
    ):
        sums, (score, count) = groups.split(row)
        counts = list(sums.csat)
        counts[int(score) - 1] += int(count)
        sums.csat = (counts[0], counts[1], counts[2], counts[3], counts[4])
    for row in sql.rows(
        f"SELECT {groups.select}COUNT(*), SUM(CASE WHEN m.late THEN 1 ELSE 0 END) "
        f"FROM chat_messages m{sql.then}conversations cv"
        f"{sql.then + 'analytics_cases a' if groups.dims else ''} "
        "WHERE m.creditor_id = :creditor AND m.author = 'agent' AND m.at <= :now "
        "AND cv.id = m.conversation_id AND cv.creditor_id = m.creditor_id"
        f"{_on(groups, 'cv.case_id')}{groups.group_and()}",
        {"now": sql.at(now)},
    ):
        sums, (answers, late) = groups.split(row)
        sums.agent_answers, sums.late_answers = int(answers), int(late or 0)
    for row in sql.rows(
        f"SELECT {groups.select}COUNT(*) "
        f"{_facts_join(sql, groups, 'conversations', 'cv')} "
        "WHERE cv.creditor_id = :creditor AND cv.waiting_since IS NOT NULL "
        f"AND cv.waiting_since <= :now AND cv.due_at < :now{_on(groups, 'cv.case_id')}"
        f"{groups.group_and()}",
        {"now": sql.at(now)},
    ):
        sums, (waiting,) = groups.split(row)
        sums.overdue_waiting = int(waiting)


def _dimensions(group_by: Iterable[str], experiment: str | None) -> tuple[str, ...]:
    dims = tuple(dict.fromkeys(group_by))
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"group_by: {', '.join(unknown)} not in {', '.join(DIMENSIONS)}")
    if "arm" in dims and experiment is None:
        raise ValueError("group_by arm: name the experiment")
    if "node" in dims and "journey" not in dims:  # node ids repeat across journeys
        dims = ("journey", *dims)
    return dims


def portfolio_kpis(
    connection: Connection,
    creditor_id: UUID,
    now: dt.datetime,
    group_by: Iterable[str] = (),
    *,
    costs: ChannelCosts | None = None,
    currency: str | None = None,
    experiment: str | None = None,
    period_days: int = 30,
    total: bool = False,
) -> list[KpiRow]:
    """The creditor's KPIs at `now`, one row per group of `group_by` (persona, journey,
    node, arm — of `experiment` —, week of placement), sorted by group; `total` adds
    the whole portfolio's row last (group {}).

    Money is read in `currency` (default: the creditor's most used); DSO, CEI, cure and
    roll rates look at the `period_days` days before `now`. See `KpiRow` for what each
    KPI counts.
    """
    now = _aware(now)
    if period_days < 1:
        raise ValueError("period_days: at least 1")
    dims = _dimensions(group_by, experiment)
    sql = _Sql(connection, creditor_id)
    sql.prepare()
    money = _currency(sql, currency)
    costs = costs or ChannelCosts(currency=money)
    _stage_cases(sql, now, money, period_days, experiment)
    groups = _Groups(dims)
    _read_cases(sql, groups)
    _read_outbox(sql, groups, now)
    _read_events(sql, groups, now)
    _read_arrangements(sql, groups, now)
    _read_service(sql, groups, now)
    sql.drop("analytics_cases")
    rows = [
        kpi_row(
            dict(zip(dims, key, strict=True)), sums, currency=money, costs=costs,
            period_days=period_days,
        )
        for key, sums in sorted(groups.sums.items())
    ]  # fmt: skip
    if total:
        everything = KpiSums.total(groups.sums.values())
        rows.append(kpi_row({}, everything, currency=money, costs=costs, period_days=period_days))
    return rows


# -- the journey map ------------------------------------------------------------------------


def _journey(journey: str) -> tuple[str, int]:
    match = _JOURNEY.fullmatch(journey)
    if match is None:
        raise ValueError(f"journey: {journey!r} is not key@version")
    return match.group(1), int(match.group(2))


def journey_map(
    connection: Connection,
    creditor_id: UUID,
    journey: str,
    now: dt.datetime,
    *,
    window_days: int = 7,
) -> JourneyMap:
    """How the cases of one journey version (`key@version`) went through its nodes.

    A touch is a step that reached the debtor: the messages sent at one node and step
    (however many channels), or a call attempt closed by an agent. For each node: the
    cases that reached it (an outbox decision there, or standing there now), what the
    outbox did there, and what happened after each touch until the case's next touch
    or `window_days`, whichever came first (delivered, opened, clicked, ..., stalled
    when the debtor did nothing). Edges count the cases going from one touch to the
    next, from the start to their first touch, and from their last touch to the node
    where they stand or left the journey.
    """
    now = _aware(now)
    if window_days < 1:
        raise ValueError("window_days: at least 1")
    key, version = _journey(journey)
    sql = _Sql(connection, creditor_id)
    label = f"{key}@{version}"
    nodes: dict[str, NodeStats] = {}

    def node(node_id: str) -> NodeStats:
        if node_id not in nodes:
            nodes[node_id] = NodeStats(node_id)
        return nodes[node_id]

    params = {"journey": label, "key": key, "version": version, "now": sql.at(now)}
    sql.prepare()
    # The journey's outbox rows, read once (the outbox has no index by journey).
    sql.drop("analytics_journey")
    sql.run(
        "CREATE TEMPORARY TABLE analytics_journey AS SELECT o.case_id AS case_id, "
        "o.node_id AS node_id, o.step AS step, o.kind AS kind, o.channel AS channel, "
        f"o.status AS status, o.sent_at AS sent_at FROM outbox o{sql.scan} "
        "WHERE o.creditor_id = :creditor AND o.journey = :journey AND o.created_at <= :now",
        params,
    )
    for node_id, count in sql.rows(
        "SELECT r.node_id, COUNT(*) FROM (SELECT o.case_id, o.node_id FROM analytics_journey o "
        "UNION SELECT e.case_id, e.node_id FROM enrolments e WHERE e.creditor_id = :creditor "
        "AND e.journey_key = :key AND e.journey_version = :version AND e.enrolled_at <= :now) r "
        "GROUP BY r.node_id",
        params,
    ):
        node(node_id).reached = int(count)
    for node_id, kind, channel, status, count in sql.rows(
        "SELECT o.node_id, o.kind, o.channel, o.status, COUNT(*) FROM analytics_journey o "
        "GROUP BY o.node_id, o.kind, o.channel, o.status"
    ):
        stats = node(node_id)
        stats.outbox[status] = stats.outbox.get(status, 0) + int(count)
        if status == "sent":
            what = "fee" if kind == "fee" else str(channel or kind)
            stats.sent[what] = stats.sent.get(what, 0) + int(count)
    for node_id, done, reason, count in sql.rows(
        "SELECT e.node_id, e.done, e.exit_reason, COUNT(*) FROM enrolments e "
        "WHERE e.creditor_id = :creditor AND e.journey_key = :key "
        "AND e.journey_version = :version AND e.enrolled_at <= :now "
        "GROUP BY e.node_id, e.done, e.exit_reason",
        params,
    ):
        stats = node(node_id)
        if done:
            stats.exited += int(count)
            name = str(reason or "done")
            stats.exit_reasons[name] = stats.exit_reasons.get(name, 0) + int(count)
        else:
            stats.current += int(count)

    _stage_touches(sql, now, window_days)
    types = sorted({t for kinds in _OUTCOMES.values() for t in kinds})
    flags = ", ".join(
        f"MAX(CASE WHEN e.type IN ({', '.join(repr(t) for t in kinds)}) THEN 1 ELSE 0 END) "
        f"AS {name}"
        for name, kinds in _OUTCOMES.items()
    )
    sums = ", ".join(f"SUM(f.{name})" for name in _OUTCOMES)
    acted = " OR ".join(f"f.{name} = 1" for name in _ACTED)
    listed = ", ".join(f"'{t}'" for t in types)
    for row in sql.rows(
        f"SELECT f.node_id, COUNT(*), COUNT(DISTINCT f.case_id), {sums}, "
        f"SUM(CASE WHEN {acted} THEN 0 ELSE 1 END) FROM ("
        f"SELECT t.case_id, t.node_id, t.step, t.t0, {flags} FROM analytics_touches t "
        "LEFT JOIN events e ON e.case_id = t.case_id AND e.creditor_id = :creditor "
        f"AND e.occurred_at >= t.t0 AND e.occurred_at < t.t_end AND e.type IN ({listed}) "
        "GROUP BY t.case_id, t.node_id, t.step, t.t0) f GROUP BY f.node_id"
    ):
        node_id, touches, cases, *counts = row
        stats = node(node_id)
        stats.touches, stats.touched_cases = int(touches), int(cases)
        stats.outcomes = {
            name: int(v or 0) for name, v in zip([*_OUTCOMES, "stalled"], counts, strict=True)
        }

    edges: dict[tuple[str, str], int] = {}

    def edge(source: str, target: str, count: Any) -> None:
        edges[(source, target)] = edges.get((source, target), 0) + int(count)

    for source, target, count in sql.rows(
        "SELECT t.node_id, t.next_node, COUNT(*) FROM analytics_touches t "
        "WHERE t.next_node IS NOT NULL GROUP BY t.node_id, t.next_node"
    ):
        edge(source, target, count)
    for target, count in sql.rows(
        "SELECT t.node_id, COUNT(*) FROM analytics_touches t WHERE t.is_first = 1 "
        "GROUP BY t.node_id"
    ):
        edge(START, target, count)
    for source, target, count in sql.rows(
        f"SELECT t.node_id, e.node_id, COUNT(*) FROM analytics_touches t{sql.then}enrolments e "
        "WHERE t.next_node IS NULL AND e.case_id = t.case_id AND e.creditor_id = :creditor "
        "AND e.journey_key = :key AND e.journey_version = :version "
        "AND e.node_id <> t.node_id GROUP BY t.node_id, e.node_id",
        params,
    ):
        edge(source, target, count)
    for target, count in sql.rows(
        "SELECT e.node_id, COUNT(*) FROM enrolments e WHERE e.creditor_id = :creditor "
        "AND e.journey_key = :key AND e.journey_version = :version AND e.enrolled_at <= :now "
        "AND NOT EXISTS (SELECT 1 FROM analytics_touches t WHERE t.case_id = e.case_id) "
        "GROUP BY e.node_id",
        params,
    ):
        edge(START, target, count)
    sql.drop("analytics_touches")
    sql.drop("analytics_journey")
    return JourneyMap(
        journey=label,
        window_days=window_days,
        nodes=sorted(nodes.values(), key=lambda n: n.node_id),
        edges=[JourneyEdge(s, t, c) for (s, t), c in sorted(edges.items())],
    )


def _stage_touches(sql: _Sql, now: dt.datetime, window_days: int) -> None:
    """The touches of the staged journey in `analytics_touches`: (case, node, step, first
    time, end of its window, next touch's node, first of its case)."""
    order = "PARTITION BY s.case_id ORDER BY s.t0, s.node_id, s.step"
    if sql.sqlite:
        end = (
            f"MIN(COALESCE(LEAD(s.t0) OVER ({order}), '9999'), "
            f"{sql.later('s.t0', window_days)}, :now)"
        )
    else:
        end = (
            f"LEAST(LEAD(s.t0) OVER ({order}), {sql.later('s.t0', window_days)}, "
            "CAST(:now AS timestamptz))"
        )
    sql.drop("analytics_touches")
    sql.run(
        "CREATE TEMPORARY TABLE analytics_touches AS SELECT s.case_id, s.node_id, s.step, s.t0, "
        f"{end} AS t_end, LEAD(s.node_id) OVER ({order}) AS next_node, "
        f"CASE WHEN ROW_NUMBER() OVER ({order}) = 1 THEN 1 ELSE 0 END AS is_first "
        "FROM (SELECT o.case_id AS case_id, o.node_id AS node_id, o.step AS step, "
        f"MIN(o.sent_at) AS t0 FROM analytics_journey o WHERE {_CONTACTED.format(o='o')} "
        "GROUP BY o.case_id, o.node_id, o.step) s",
        {"now": sql.at(now)},
    )
    sql.index("analytics_touches", "case_id")


# -- experiments ----------------------------------------------------------------------------


def experiment_results(
    connection: Connection,
    creditor_id: UUID,
    experiment: str,
    now: dt.datetime,
    *,
    control: str | None = None,
    currency: str | None = None,
    confidence: float = 0.95,
) -> ExperimentResult:
    """Each arm of `experiment` (as drawn on the enrolments) against the control arm,
    overall and within each persona: paid rate, collection rate, CSAT and days to pay,
    with uplift, confidence interval and p-value (see `parcours.analytics.experiments`).
    """
    now = _aware(now)
    sql = _Sql(connection, creditor_id)
    sql.prepare()
    money = _currency(sql, currency)
    _stage_cases(sql, now, money, 30, experiment)
    sums: dict[tuple[str, str], ArmSums] = {}

    def of(arm: Any, persona: Any) -> ArmSums:
        k = (str(arm), _NONE["persona"] if persona is None else str(persona))
        if k not in sums:
            sums[k] = ArmSums()
        return sums[k]

    real = "DOUBLE PRECISION"
    for arm, persona, n, placed_cases, paid, x, y, xx, yy, xy, dn, d, dd in sql.rows(
        "SELECT a.arm, a.persona, COUNT(*), SUM(a.cases_placed), SUM(a.paid), SUM(a.placed), "
        f"SUM(a.collected), SUM(CAST(a.placed AS {real}) * a.placed), "
        f"SUM(CAST(a.collected AS {real}) * a.collected), "
        f"SUM(CAST(a.placed AS {real}) * a.collected), COUNT(a.dtp), SUM(a.dtp), "
        f"SUM(CAST(a.dtp AS {real}) * a.dtp) FROM analytics_cases a WHERE a.arm IS NOT NULL "
        "GROUP BY a.arm, a.persona"
    ):
        s = of(arm, persona)
        s.cases, s.cases_placed, s.cases_paid = int(n), int(placed_cases or 0), int(paid or 0)
        s.placed_minor, s.collected_minor = int(x or 0), int(y or 0)
        s.money = RatioSummary(int(n), float(x or 0), float(y or 0), float(xx or 0),
                               float(yy or 0), float(xy or 0))  # fmt: skip
        s.days_to_pay = MeanSummary(int(dn), float(d or 0), float(dd or 0))
    for arm, persona, n, total, squares in sql.rows(
        "SELECT a.arm, a.persona, COUNT(*), SUM(r.score), SUM(r.score * r.score) "
        f"FROM csat_responses r{sql.then}analytics_cases a WHERE r.creditor_id = :creditor "
        "AND r.at <= :now AND a.case_id = r.case_id AND a.arm IS NOT NULL "
        "GROUP BY a.arm, a.persona",
        {"now": sql.at(now)},
    ):
        of(arm, persona).csat = MeanSummary(int(n), float(total), float(squares))
    sql.drop("analytics_cases")
    return experiment_result(experiment, sums, currency=money, control=control,
                             confidence=confidence)  # fmt: skip


# -- over time ------------------------------------------------------------------------------


def weekly_activity(
    connection: Connection,
    creditor_id: UUID,
    now: dt.datetime,
    *,
    weeks: int = 26,
    costs: ChannelCosts | None = None,
    currency: str | None = None,
) -> list[WeekRow]:
    """What happened in each of the last `weeks` weeks (Monday to Sunday, UTC) up to
    `now`, by the date of each fact: money placed and collected, contacts and their
    cost, promises, satisfaction answers, late chat answers and opt-outs."""
    now = _aware(now)
    if weeks < 1:
        raise ValueError("weeks: at least 1")
    sql = _Sql(connection, creditor_id)
    sql.prepare()
    money = _currency(sql, currency)
    costs = costs or ChannelCosts(currency=money)
    monday = now.date() - dt.timedelta(days=now.weekday())
    first = monday - dt.timedelta(weeks=weeks - 1)
    since = dt.datetime.combine(first, dt.time(), dt.UTC)
    out: dict[str, WeekRow] = {}
    for i in range(weeks):
        day = (first + dt.timedelta(weeks=i)).isoformat()
        out[day] = WeekRow(day)
    span = {"since": sql.at(since), "now": sql.at(now)}

    def each(query: str) -> list[Row]:
        return [r for r in sql.rows(query, span) if r[0] in out]

    for week, placed in each(
        f"SELECT {sql.week('i.created_at')}, SUM(i.amount_minor) FROM invoices i "
        f"WHERE i.creditor_id = :creditor AND i.created_at >= :since AND i.created_at <= :now "
        f"AND i.currency = '{money}' GROUP BY 1"
    ):
        out[week].placed_minor = int(placed or 0)
    for week, collected in each(
        f"SELECT {sql.week('p.paid_at')}, SUM(p.amount_minor) FROM payments p "
        "WHERE p.creditor_id = :creditor AND p.paid_at >= :since AND p.paid_at <= :now "
        "AND p.invoice_id IS NOT NULL AND (p.reversed_at IS NULL OR p.reversed_at > :now) "
        f"AND substr(p.ref, 1, 11) <> 'adjustment:' AND p.currency = '{money}' GROUP BY 1"
    ):
        out[week].collected_minor = int(collected or 0)
    for week, kind, channel, count, units in each(
        f"SELECT {sql.week('o.sent_at')}, o.kind, o.channel, COUNT(*), "
        "SUM(CASE WHEN o.channel = 'sms' THEN COALESCE(o.units, 1) ELSE 0 END) FROM outbox o "
        "WHERE o.creditor_id = :creditor AND o.status = 'sent' AND o.sent_at >= :since "
        "AND o.sent_at <= :now "
        "AND (o.kind = 'send' OR (o.kind = 'task' AND o.channel = 'phone')) "
        "GROUP BY 1, o.kind, o.channel"
    ):
        row = out[week]
        if kind == "task":
            row.calls += int(count)
        else:
            name = str(channel or "unknown")
            row.messages[name] = row.messages.get(name, 0) + int(count)
            row.sms_units += int(units or 0)
    for week, made in each(
        f"SELECT {sql.week('p.made_at')}, COUNT(*) FROM promises p "
        "WHERE p.creditor_id = :creditor AND p.made_at >= :since AND p.made_at <= :now "
        "GROUP BY 1"
    ):
        out[week].promises_made = int(made)
    for week, state, count in each(
        f"SELECT {sql.week('p.settled_at')}, p.state, COUNT(*) FROM promises p "
        "WHERE p.creditor_id = :creditor AND p.settled_at >= :since AND p.settled_at <= :now "
        "AND p.state IN ('kept', 'broken') GROUP BY 1, p.state"
    ):
        if state == "kept":
            out[week].promises_kept = int(count)
        else:
            out[week].promises_broken = int(count)
    scores: dict[str, list[int]] = {}
    for week, score, count in each(
        f"SELECT {sql.week('r.at')}, r.score, COUNT(*) FROM csat_responses r "
        "WHERE r.creditor_id = :creditor AND r.at >= :since AND r.at <= :now GROUP BY 1, r.score"
    ):
        scores.setdefault(week, [0] * 5)[int(score) - 1] += int(count)
    for week, answers, late in each(
        f"SELECT {sql.week('m.at')}, COUNT(*), SUM(CASE WHEN m.late THEN 1 ELSE 0 END) "
        "FROM chat_messages m WHERE m.creditor_id = :creditor AND m.at >= :since AND m.at <= :now "
        "AND m.author = 'agent' GROUP BY 1"
    ):
        out[week].agent_answers, out[week].late_answers = int(answers), int(late or 0)
    for week, opted in each(
        f"SELECT {sql.week('e.occurred_at')}, COUNT(*) FROM events e "
        "WHERE e.creditor_id = :creditor AND e.occurred_at >= :since "
        "AND e.occurred_at <= :now AND e.type = 'message.opted_out' "
        "GROUP BY 1"
    ):
        out[week].opt_outs = int(opted)
    for week, row in out.items():
        row.csat = csat_summary(scores.get(week, [0] * 5))
        row.cost = contact_cost(costs, row.messages, row.sms_units, row.calls, row.agent_answers)
        row.currency = money
    return [out[k] for k in sorted(out)]
