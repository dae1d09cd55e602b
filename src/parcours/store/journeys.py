"""Journey data in the store: enrolments, the facts of due cases, the outbox, the policy
log and ticks — read and written in bulk, every query naming the tenant.

Ids travel in storage form (16 bytes on SQLite, text on PostgreSQL) as in `store.bulk`.
The cases of a tick are put in a temporary table so that facts are read with joins, not
with one query per case or a parameter list the database would cap.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple
from uuid import UUID

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection

from parcours.store.bulk import Key, PortfolioWriter

__all__ = ["DueBatch", "JourneyStore", "OutboxEntry"]

Row = tuple[Any, ...]
_FEW: Final = 2_000  # staged cases always joined case by case below this
_WORK_MEM: Final = "256MB"  # per hash or sort of a tick's queries on PostgreSQL
# The columns of the due cases' staged rows after their id and debtor (see `due`).
_DUE_FIELDS: Final = (
    "journey_key", "journey_version", "node_id", "persona", "entered", "enrolled", "wake",
    "step", "arms", "stored",
)  # fmt: skip
EVENT_TYPES: Final = (
    "payment.booked",
    "promise.made",
    "promise.broken",
    "message.replied",
    "message.clicked",
    "message.opened",
    "message.delivered",
    "message.bounced",
    "call.conversation",
    "dispute.opened",
    "dispute.closed",
    # Holds recorded by the creditor (API) or an agent.
    "legal_hold.set",
    "legal_hold.lifted",
    "contact_objection",
    "vulnerability.flagged",
    # A chat question pauses collection until an agent answers it (runtime.chat).
    "question.asked",
    "question.answered",
)
# The events that wake a case before its time: those a `wait_event` node can wait for
# (the tick's `_EVENTS`) and those that can settle its balance (the planner ends a paid
# case). Any other event (a delivery report, an opened e-mail, a hold, a call) changes
# nothing the planner does for a case that is not due: it is read when the case is.
WAKE_TYPES: Final = (
    "payment.booked",
    "promise.made",
    "promise.broken",
    "message.replied",
    "message.clicked",
    "message.bounced",
    "dispute.closed",
)


def _uuid_text(raw: bytes) -> str:
    """16 bytes as UUID text, as `str(UUID(bytes=raw))` writes it (without the object)."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class DueBatch:
    """The due enrolments of a tick as columns (times in UTC seconds since the epoch)."""

    case: list[Key]
    debtor: list[Key]
    journey: list[tuple[str, int]]  # (key, version)
    node_id: list[str]
    persona: list[str | None]  # the persona the case's journey was chosen for
    entered_at: npt.NDArray[np.int64]
    enrolled_at: npt.NDArray[np.int64]
    wake_at: npt.NDArray[np.int64]  # -1: none
    step: npt.NDArray[np.int64]
    arms: list[str]  # JSON text, parsed only where an arm is drawn
    case_text: list[str]  # the case UUID as text: seeds sticky splits, names attempts
    # Where each enrolment is stored, for its update: the row id on SQLite (no lookup in
    # the key's index), the case id on PostgreSQL.
    stored: list[Any]

    def __len__(self) -> int:
        return len(self.case)


def _first(row: Sequence[Any]) -> Any:
    return row[0]


def _last(row: Sequence[Any]) -> Any:
    return row[-1]


def _debtor_of_entry(entry: OutboxEntry) -> Key:
    return entry.debtor_id


class OutboxEntry(NamedTuple):
    """One decision for the outbox (a tuple: a tick makes hundreds of thousands)."""

    attempt_id: str
    case_id: Key
    debtor_id: Key
    journey: str
    node_id: str
    step: int
    kind: str
    channel: str | None
    template: str | None
    reminder: bool
    amount_minor: int | None
    status: str
    not_before: dt.datetime
    reason: str | None
    sent_at: dt.datetime | None = None  # set for what takes effect at once (fees)
    # The gate's verdict when decided, kept (`OutboxRow`); "queued": none yet, the gate
    # judges it when due. The reason defaults to `reason`.
    plan_verdict: str = "queued"
    plan_reason: str | None = None


class JourneyStore:
    """Journey reads and writes for one creditor inside the caller's transaction."""

    def __init__(self, connection: Connection, creditor_id: UUID) -> None:
        self.connection = connection
        self.creditor_id = creditor_id
        self.writer = PortfolioWriter(connection, creditor_id)
        self.sqlite = connection.dialect.name == "sqlite"
        self.mark = "?" if self.sqlite else "%s"
        self.false = "0" if self.sqlite else "false"
        self._few = True  # the staged cases are a small part of the portfolio

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Rows of `sql`, whose first parameter is the creditor, then `params`."""
        return self._select(sql, (self.writer.creditor_key, *params))

    def _select(self, sql: str, params: Sequence[Any]) -> list[Row]:
        with self._cursor(sql, params) as cursor:
            return [tuple(r) for r in cursor.fetchall()]

    def _execute(self, sql: str, params: Sequence[Any]) -> None:
        with self._cursor(sql, params):
            pass

    @contextlib.contextmanager
    def _cursor(self, sql: str, params: Sequence[Any]) -> Iterator[Any]:
        """The driver's cursor having run `sql` (`?` marks), closed after."""
        cursor = self.connection.connection.cursor()
        try:
            cursor.execute(sql.replace("?", self.mark), tuple(params))
            yield cursor
        finally:
            cursor.close()

    def _key(self, value: Any) -> Key:
        return bytes(value) if isinstance(value, bytes | memoryview) else str(value)

    def text(self, key: Any) -> str:
        """An id in storage form as UUID text."""
        return _uuid_text(bytes(key)) if self.sqlite else str(key)

    def _id(self, column: str) -> str:
        return column if self.sqlite else f"{column}::text"

    def utc(self, value: Any) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)

    # -- ticks -----------------------------------------------------------------------------

    def last_tick(self) -> dt.datetime | None:
        rows = self._rows("SELECT at FROM ticks WHERE creditor_id = ?")
        return self.utc(rows[0][0]) if rows else None

    def record_tick(self, at: dt.datetime) -> None:
        self.connection.exec_driver_sql(
            f"DELETE FROM ticks WHERE creditor_id = {self.mark}", (self.writer.creditor_key,)
        )
        self.writer.insert(
            "ticks", ("creditor_id", "at"), [(self.writer.creditor_key, self.writer.timestamp(at))]
        )

    # -- enrolment -------------------------------------------------------------------------

    def unenrolled_cases(self) -> list[tuple[Key, Key, str | None, bool]]:
        """Open cases with no enrolment: (case id, debtor id, debtor's persona, objected).

        Each enrolment belongs to one case of the creditor, so when there are as many
        enrolments as cases every case has one, and nothing is scanned (two counts from
        the indexes instead of a probe per case)."""
        cases, enrolments = self._rows(
            "SELECT (SELECT COUNT(*) FROM cases WHERE creditor_id = ?), "
            "(SELECT COUNT(*) FROM enrolments WHERE creditor_id = ?)",
            [self.writer.creditor_key],
        )[0]
        if int(cases) == int(enrolments):
            return []
        rows = self._rows(
            f"SELECT {self._id('c.id')}, {self._id('c.debtor_id')}, p.persona, "
            "d.profiling_objection "
            "FROM cases c "
            "JOIN debtors d ON d.id = c.debtor_id AND d.creditor_id = c.creditor_id "
            "LEFT JOIN debtor_personas p ON p.debtor_id = d.id AND p.creditor_id = d.creditor_id "
            "WHERE c.creditor_id = ? AND c.status = 'open' AND NOT EXISTS (SELECT 1 FROM "
            "enrolments e WHERE e.case_id = c.id AND e.creditor_id = c.creditor_id) "
            "AND d.erased_at IS NULL"
        )
        return [
            (self._key(c), self._key(d), persona, bool(objected))
            for c, d, persona, objected in rows
        ]

    def enrol(
        self,
        cases: Iterable[tuple[Key, Key, str, int, str | None, str, dict[str, str]]],
        now: dt.datetime,
    ) -> int:
        """Insert enrolments (case, debtor, journey key, version, persona, start node,
        arms)."""
        at = self.writer.timestamp(now)
        rows = [
            (
                case, self.writer.creditor_key, debtor, key, version, persona, start, at, at,
                at, 0, False, json.dumps(arms),
            )
            for case, debtor, key, version, persona, start, arms in cases
        ]  # fmt: skip
        self.writer.insert(
            "enrolments",
            (
                "case_id", "creditor_id", "debtor_id", "journey_key", "journey_version",
                "persona", "node_id", "entered_at", "enrolled_at", "wake_at", "step", "done",
                "arms",
            ),
            rows,
        )  # fmt: skip
        return len(rows)

    def enrol_holdout(
        self, cases: Iterable[tuple[Key, Key, str | None, dict[str, str]]], now: dt.datetime
    ) -> int:
        """Cases an experiment holds out (case, debtor, persona, arms): enrolled as done
        (reason holdout), arm recorded."""
        at = self.writer.timestamp(now)
        rows = [
            (
                case, self.writer.creditor_key, debtor, "holdout", 1, persona, "holdout", at,
                at, None, 0, True, "holdout", json.dumps(arms),
            )
            for case, debtor, persona, arms in cases
        ]  # fmt: skip
        self.writer.insert(
            "enrolments",
            (
                "case_id", "creditor_id", "debtor_id", "journey_key", "journey_version",
                "persona", "node_id", "entered_at", "enrolled_at", "wake_at", "step", "done",
                "exit_reason", "arms",
            ),
            rows,
        )  # fmt: skip
        return len(rows)

    # -- due cases and their facts ---------------------------------------------------------

    def indexed_by(self, index: str) -> str:
        """SQLite's `INDEXED BY` when the staged cases are few: without statistics on the
        tick's temporary tables its planner may scan the whole tenant and probe them."""
        return f" INDEXED BY {index}" if self.sqlite and self._few else ""

    @property
    def _then(self) -> str:
        """How the fact queries join: case by case from the staged cases when they are a
        small part of the portfolio (SQLite's `CROSS JOIN` fixes the order, PostgreSQL's
        joins are limited to nested loops: `_probing`); otherwise the planner chooses —
        scanning a table once beats probing it for most of its rows."""
        return " CROSS JOIN " if self.sqlite and self._few else ", "

    @contextlib.contextmanager
    def _probing(self) -> Iterator[None]:
        """PostgreSQL, for the fact queries of a few staged cases: neither hash nor merge
        joins, which read every row of the tenant's tables (a million debtors hashed to
        join 200,000 cases); each staged case is looked up through the indexes instead
        (the facts of 200,000 cases of a million: 4.7 -> 3.6 s)."""
        if self.sqlite or not self._few:
            yield
            return
        for method in ("hashjoin", "mergejoin"):
            self.connection.exec_driver_sql(f"SET LOCAL enable_{method} = off")
        yield  # after an error, the rollback ends what SET LOCAL set
        for method in ("hashjoin", "mergejoin"):
            self.connection.exec_driver_sql(f"RESET enable_{method}")

    @property
    def _by_debtor(self) -> str:
        return self.indexed_by("ix_outbox_debtor")

    def epoch(self, column: str) -> str:
        """SQL for a timestamp column as whole UTC seconds since the epoch (NULL stays)."""
        if self.sqlite:
            # unixepoch() (SQLite 3.38) reads the text a third faster than strftime.
            if sqlite3.sqlite_version_info >= (3, 38):
                return f"unixepoch({column})"
            return f"CAST(strftime('%s', {column}) AS INTEGER)"
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS BIGINT)"

    def _work_mem(self) -> None:
        """PostgreSQL: memory for this transaction's hashes and sorts of a whole tick's
        cases (the default 4 MB spills them to disk in batches)."""
        if not self.sqlite:
            self.connection.exec_driver_sql(f"SET LOCAL work_mem = '{_WORK_MEM}'")

    def due(self, now: dt.datetime, since: dt.datetime | None) -> DueBatch:
        """Active enrolments whose wake time has come, or whose case had one of the
        `WAKE_TYPES` events since the last tick (it may end a wait early, or the case),
        in the order of their case ids.

        The database writes them into the temporary table the fact reads join
        (`facts(..., staged=True)`), each with its position, from its own query: the
        tick's cases never travel back through the driver to be staged."""
        arms = "e.arms" if self.sqlite else "e.arms::text"
        columns = (
            "SELECT e.case_id AS id, e.debtor_id AS debtor, e.journey_key, e.journey_version, "
            f"e.node_id, e.persona, {self.epoch('e.entered_at')} AS entered, "
            f"{self.epoch('e.enrolled_at')} AS enrolled, "
            f"COALESCE({self.epoch('e.wake_at')}, -1) AS wake, e.step, {arms} AS arms, "
            f"{'e.rowid' if self.sqlite else 'NULL'} AS stored"
        )
        # `done = false`, not `NOT done`: the (creditor, done, wake_at) index serves it.
        sql = (
            f"{columns} FROM enrolments e "
            f"WHERE e.creditor_id = ? AND e.done = {self.false} AND e.wake_at <= ?"
        )
        key = self.writer.creditor_key
        params: list[Any] = [key, self.writer.timestamp(now)]
        self._work_mem()
        if since is not None:
            # A second query driven by the events recorded since the last tick (for the
            # enrolments the first one left out), joined by UNION ALL rather than OR: each
            # side uses its own index instead of a scan of every active enrolment.
            types = ", ".join(f"'{t}'" for t in WAKE_TYPES)
            sql += (
                f" UNION ALL {columns} FROM (SELECT DISTINCT ev.case_id FROM events ev "
                f"WHERE ev.creditor_id = ? AND ev.recorded_at > ? AND ev.type IN ({types})) w "
                "CROSS JOIN enrolments e "
                f"WHERE e.case_id = w.case_id AND e.creditor_id = ? AND e.done = {self.false} "
                "AND (e.wake_at IS NULL OR e.wake_at > ?)"
            )
            params += [key, self.writer.timestamp(since), key, self.writer.timestamp(now)]
        self.connection.exec_driver_sql("DROP TABLE IF EXISTS tick_case_rows")
        if self.sqlite:
            # The position is the row id, given in the order of the SELECT: one sort,
            # none for the window function nor for reading back (measured on 200,000
            # due cases: 1.5 -> 0.9 s). Row ids are the largest one + 1: a row at -1
            # makes the first 0; it goes after.
            self.connection.exec_driver_sql(
                "CREATE TEMPORARY TABLE tick_case_rows "
                f"(pos INTEGER PRIMARY KEY, id, debtor, {', '.join(_DUE_FIELDS)})"
            )
            self.connection.exec_driver_sql("INSERT INTO tick_case_rows (pos) VALUES (-1)")
            self._execute(
                f"INSERT INTO tick_case_rows SELECT NULL, due.* FROM ({sql}) due ORDER BY id",
                params,
            )
            self.connection.exec_driver_sql("DELETE FROM tick_case_rows WHERE pos = -1")
        else:
            self._execute(
                "CREATE TEMPORARY TABLE tick_case_rows AS "
                # pos is an INTEGER as in `_stage_rows`: PostgreSQL refuses to run a
                # prepared fact query whose result type changed.
                "SELECT CAST(row_number() OVER (ORDER BY id) - 1 AS INTEGER) AS pos, due.* "
                f"FROM ({sql}) due",
                params,
            )
        rows = self._select(
            f"SELECT {self._id('id')}, {self._id('debtor')}, {', '.join(_DUE_FIELDS)} "
            "FROM tick_case_rows ORDER BY pos",
            (),
        )
        n = len(rows)
        self._index_staged(n)
        fields = list(zip(*rows, strict=True)) if rows else [()] * (2 + len(_DUE_FIELDS))
        (
            case, debtor, keys, versions, nodes, personas, entered, enrolled, wake, step,
            arm_texts, stored,
        ) = fields  # fmt: skip
        ints = [np.fromiter(c, dtype=np.int64, count=n) for c in (entered, enrolled, wake, step)]
        if self.sqlite:
            cases = list(case)  # bytes already (BLOB)
            texts = [_uuid_text(c) for c in cases]
            debtors: list[Key] = list(debtor)
        else:
            cases, texts, debtors = list(case), list(case), list(debtor)
        return DueBatch(
            case=list(cases), debtor=debtors, journey=list(zip(keys, versions, strict=True)),
            node_id=list(nodes), persona=list(personas), entered_at=ints[0],
            enrolled_at=ints[1], wake_at=ints[2], step=ints[3],
            arms=[a or "{}" for a in arm_texts], case_text=texts,
            stored=list(stored) if self.sqlite else cases,
        )  # fmt: skip

    def _stage(self, table: str, keys: Iterable[Key]) -> None:
        """Put a tick's ids in a temporary table for the fact queries to join."""
        kind = "BLOB" if self.sqlite else "uuid"
        self.connection.exec_driver_sql(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {table} (id {kind} PRIMARY KEY)"
        )
        self.connection.exec_driver_sql(f"DELETE FROM {table}")
        rows = [(k,) for k in set(keys)]
        self.writer.insert(table, ("id",), rows)  # COPY on PostgreSQL
        if table == "tick_cases":
            self._few = self._a_few(len(rows))

    def _a_few(self, staged: int) -> bool:
        """Whether `staged` cases are few enough to be read case by case through the
        indexes: under half of the active enrolments (measured on a million enrolments
        with a fifth of them staged, probing beats scanning every table by about two)."""
        return staged < _FEW or staged * 2 < self._active()

    def _active(self) -> int:
        return int(
            self._rows(
                f"SELECT COUNT(*) FROM enrolments WHERE creditor_id = ? AND done = {self.false}"
            )[0][0]
        )

    def _stage_rows(self, cases: Sequence[Key], debtors: Sequence[Key]) -> None:
        """Put these cases and their debtors in the temporary table the fact reads join,
        with the case's position in `cases` (facts come back by position: no lookup per
        row), as `due` does for a tick's."""
        kind = "BLOB" if self.sqlite else "uuid"
        self.connection.exec_driver_sql("DROP TABLE IF EXISTS tick_case_rows")
        self.connection.exec_driver_sql(
            "CREATE TEMPORARY TABLE tick_case_rows "
            f"(pos INTEGER PRIMARY KEY, id {kind} NOT NULL, debtor {kind} NOT NULL)"
        )
        self.writer.insert(
            "tick_case_rows",
            ("pos", "id", "debtor"),
            [(i, c, d) for i, (c, d) in enumerate(zip(cases, debtors, strict=True))],
        )
        self._index_staged(len(cases))

    def _index_staged(self, n: int) -> None:
        """After `n` cases are staged: few are read in the table's order (see `_then`),
        their ids need no index, which would cost more to fill than it saves; many are
        joined as the planner chooses: indexed, after the rows are in."""
        self._few = self._a_few(n)
        if not self._few:
            self._work_mem()
            for column in ("id", "debtor"):
                self.connection.exec_driver_sql(
                    f"CREATE INDEX tick_case_rows_{column} ON tick_case_rows ({column})"
                )
            if not self.sqlite:
                # Without statistics PostgreSQL takes a temporary table for bigger than it
                # is and may hash a whole table of the tenant rather than the staged cases
                # (40 ms; measured with 200,000 cases: their debtors 1.47 -> 1.23 s).
                self.connection.exec_driver_sql("ANALYZE tick_case_rows")

    def facts(
        self,
        cases: Sequence[Key],
        debtors: Sequence[Key],
        written_since: dt.datetime,
        *,
        staged: bool = False,
    ) -> dict[str, list[Row]]:
        """Facts of these cases (each once; `debtors[i]` is the debtor of `cases[i]`) by
        kind, each row led by the case's position in `cases`: balance and oldest due
        date, debtor, promise, plan, events (latest per type), and every message sent to
        the debtor (in no order), with whether it was this case's and whether it went
        at or after `written_since` (the contact caps' window).

        A few cases are read case by case through the indexes; many are read by the
        joins the planner chooses (see `_then`). `staged`: these are the cases `due`
        just returned, and staged.
        """
        if not staged:
            self._stage_rows(cases, debtors)
        with self._probing():
            return self._read_staged(written_since)

    def _read_staged(self, written_since: dt.datetime) -> dict[str, list[Row]]:
        day = (
            "CAST(julianday(MIN(i.due_date)) - 2440587.5 AS INTEGER)"
            if self.sqlite
            else ("(MIN(i.due_date) - DATE '1970-01-01')")
        )
        promise_day = (
            "CAST(julianday(MIN(p.due_on)) - 2440587.5 AS INTEGER)"
            if self.sqlite
            else "(MIN(p.due_on) - DATE '1970-01-01')"
        )
        out: dict[str, list[Row]] = {}
        out["balance"] = self._rows(
            f"SELECT t.pos, COALESCE(SUM(i.amount_minor - i.paid_minor), 0), {day} "
            f"FROM tick_case_rows t{self._then}invoices i WHERE i.case_id = t.id "
            "AND i.creditor_id = ? AND i.paid_minor < i.amount_minor GROUP BY t.pos"
        )
        # Reachable channels as CHANNEL_BITS (e-mail 1, letter 4, phone 8), and the phone
        # number when the phone is reachable (SMS needs a mobile one: bit 2 if so).
        out["debtor"] = self._rows(
            "SELECT t.pos, "
            "CASE WHEN d.email IS NOT NULL AND d.email_consent <> 'opted_out' THEN 1 ELSE 0 END "
            "+ CASE WHEN d.street IS NOT NULL AND d.postcode IS NOT NULL "
            "AND d.postal_consent <> 'opted_out' THEN 4 ELSE 0 END "
            "+ CASE WHEN d.phone IS NOT NULL AND d.phone_consent <> 'opted_out' THEN 8 ELSE 0 END, "
            "CASE WHEN d.phone IS NOT NULL AND d.phone_consent <> 'opted_out' THEN d.phone END, "
            "d.vulnerable, d.timezone, d.country, p.persona, d.preferred_channel, "
            "d.remind_before_due "
            f"FROM tick_case_rows t{self._then}debtors d "
            "LEFT JOIN debtor_personas p ON p.debtor_id = d.id AND p.creditor_id = d.creditor_id "
            "WHERE d.id = t.debtor AND d.creditor_id = ?"
        )
        # The latest promise and plan of each case (made_at / created_at break no ties:
        # a case has one pending promise and one running plan at most).
        out["promise"] = self._rows(
            f"SELECT t.pos, p.state, {promise_day} FROM tick_case_rows t "
            f"{self._then}promises p WHERE p.case_id = t.id AND p.creditor_id = ? "
            "AND p.made_at = (SELECT MAX(q.made_at) FROM promises q "
            "WHERE q.case_id = p.case_id AND q.creditor_id = p.creditor_id) "
            "GROUP BY t.pos, p.state"
        )
        out["plan"] = self._rows(
            "SELECT t.pos, pl.state FROM tick_case_rows t "
            f"{self._then}payment_plans pl WHERE pl.case_id = t.id AND pl.creditor_id = ? "
            "AND pl.created_at = (SELECT MAX(q.created_at) FROM payment_plans q "
            "WHERE q.case_id = pl.case_id AND q.creditor_id = pl.creditor_id)"
        )
        types = ", ".join(f"'{t}'" for t in EVENT_TYPES)
        out["events"] = self._rows(
            f"SELECT t.pos, e.type, {self.epoch('MAX(e.occurred_at)')} FROM tick_case_rows t "
            f"{self._then}events e{self.indexed_by('ix_events_case_id_occurred_at')} "
            "WHERE e.case_id = t.id AND e.creditor_id = ? "
            f"AND e.type IN ({types}) GROUP BY t.pos, e.type"
        )
        # Through the debtor: (creditor, debtor) is indexed, the case id is not (the
        # dispatch index would scan every message ever sent).
        out["sent"] = self._select(
            f"SELECT t.pos, o.case_id = t.id, o.channel, {self.epoch('o.sent_at')}, "
            "o.reminder, o.kind, o.amount_minor, o.template, o.sent_at >= ? "
            f"FROM tick_case_rows t{self._then}outbox o{self._by_debtor} "
            "WHERE o.creditor_id = ? AND o.debtor_id = t.debtor AND o.status = 'sent'",
            (self.writer.timestamp(written_since), self.writer.creditor_key),
        )
        return out

    # -- writes ----------------------------------------------------------------------------

    def add_outbox(self, entries: Sequence[OutboxEntry], now: dt.datetime) -> int:
        """Insert decisions, each with the gate's verdict at planning time. The attempt
        id is unique: a tick computed twice (two workers) fails on commit instead of
        deciding anything twice."""
        rows = self.outbox_rows(entries, now)
        self.insert_outbox(rows)
        return len(rows)

    def outbox_rows(self, entries: Sequence[OutboxEntry], now: dt.datetime) -> list[Row]:
        """The rows `insert_outbox` writes for `entries` (no database work: a tick makes
        them while the database writes its enrolments).

        In the order of their debtors (ids follow that order): the index by debtor then
        takes them in order, not at random."""
        entries = sorted(entries, key=_debtor_of_entry)
        w = self.writer
        new_id, stamp, creditor, created = w.new_id, w.timestamp, w.creditor_key, w.timestamp(now)
        return [
            (
                new_id(), aid, creditor, case, debtor, journey, node, step, kind, channel,
                template, reminder, amount, status, stamp(not_before), reason, verdict,
                reason if why is None else why, created, stamp(sent_at) if sent_at else None,
            )
            for (
                aid, case, debtor, journey, node, step, kind, channel, template, reminder,
                amount, status, not_before, reason, sent_at, verdict, why,
            ) in entries
        ]  # fmt: skip

    _OUTBOX_COLUMNS = (
        "id", "attempt_id", "creditor_id", "case_id", "debtor_id", "journey", "node_id",
        "step", "kind", "channel", "template", "reminder", "amount_minor", "status",
        "not_before", "reason", "plan_verdict", "plan_reason", "created_at", "sent_at",
    )  # fmt: skip

    def insert_outbox(self, rows: Sequence[Row]) -> None:
        """Insert rows made by `outbox_rows`."""
        self.writer.insert("outbox", self._OUTBOX_COLUMNS, rows)

    def log_policy(
        self, rows: Sequence[tuple[Key, str, str, str, str | None, str]], at: dt.datetime
    ) -> None:
        """(case, attempt id, stage, verdict, channel, reason) into the append-only log,
        in the order of their cases (the log's index is by case): decisions at send time
        and moves (a tick's own verdicts are on its outbox rows)."""
        rows = sorted(rows, key=_first)
        w = self.writer
        new_id, creditor, stamp = w.new_id, w.creditor_key, w.timestamp(at)
        w.insert(
            "policy_log",
            (
                "id",
                "creditor_id",
                "case_id",
                "attempt_id",
                "at",
                "stage",
                "verdict",
                "channel",
                "reason",
            ),
            [(new_id(), creditor, c, a, stamp, s, v, ch, r) for c, a, s, v, ch, r in rows],
        )

    _ENROLMENT_SETS = (
        "journey_key", "journey_version", "persona", "node_id", "entered_at", "wake_at", "step",
        "done", "exit_reason", "arms",
    )  # fmt: skip

    def drop_tasks(self, ended: Sequence[tuple[Key, Key, str]], now: dt.datetime) -> int:
        """Skip the open agent tasks planned before `now` for these (case, debtor, exit
        reason): their journey ended. Returns how many."""
        if not ended:
            return 0
        m, w = self.mark, self.writer
        cursor = self.connection.exec_driver_sql(
            f"UPDATE outbox SET status = 'skipped', reason = {m}, claim = NULL "
            f"WHERE creditor_id = {m} AND debtor_id = {m} AND case_id = {m} AND kind = 'task' "
            f"AND status IN ('queued', 'delayed') AND created_at < {m}",
            [
                (f"journey ended: {reason}", w.creditor_key, debtor, case, w.timestamp(now))
                for case, debtor, reason in ended
            ],
        )
        return max(int(cursor.rowcount), 0)

    def stage_enrolments(self, rows: Sequence[Row]) -> None:
        """Put where the cases that moved now stand into a temporary table, for
        `apply_enrolments`: (journey key, version, persona, node, entered_at, wake_at,
        step, done, exit_reason, arms json, `DueBatch.stored`) each; the times as whole
        UTC seconds since the epoch (wake_at -1: none), which the UPDATE turns into
        timestamps — beside the gate, not in Python.

        PostgreSQL gets them by COPY (a statement per row costs a round trip each);
        SQLite in the order of their row ids, which is its table's key."""
        kind = "INTEGER PRIMARY KEY" if self.sqlite else "uuid NOT NULL"
        flag, stamp = ("int", "int") if self.sqlite else ("boolean", "bigint")
        types = ("text", "int", "text", "text", stamp, stamp, "int", flag, "text", "text")
        columns = ", ".join(f"{c} {t}" for c, t in zip(self._ENROLMENT_SETS, types, strict=True))
        self.connection.exec_driver_sql(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS tick_moves ({columns}, stored {kind})"
        )
        self.connection.exec_driver_sql("DELETE FROM tick_moves")
        if self.sqlite:
            rows = sorted(rows, key=_last)
        self.writer.insert("tick_moves", (*self._ENROLMENT_SETS, "stored"), rows)

    def apply_enrolments(self) -> None:
        """Write what `stage_enrolments` staged, in one UPDATE: the database does all of
        it in one statement, without the caller's Python — the tick runs it in a thread
        while its gate judges (a statement per row would wait for Python's lock at each).

        SQLite walks the staged rows in the order of the enrolments' row ids and finds
        each enrolment by it: in order, not at random, and without the key's index. The
        `+` keep it that way: used by an index, the creditor or the staged rows' key would
        let it scan every enrolment and probe the staged rows for each."""
        m, w = self.mark, self.writer
        values = {c: f"m.{c}" for c in self._ENROLMENT_SETS}
        if self.sqlite:
            # SQLAlchemy's text form (the times are whole seconds).
            stamp = "strftime('%Y-%m-%d %H:%M:%S', {}, 'unixepoch') || '.000000'"
            where = f"enrolments.rowid = +m.stored AND +enrolments.creditor_id = {m}"
        else:
            stamp, values["arms"] = "to_timestamp({})", "m.arms::json"
            where = f"enrolments.case_id = m.stored AND enrolments.creditor_id = {m}"
        values["entered_at"] = stamp.format("m.entered_at")
        wake = stamp.format("m.wake_at")
        values["wake_at"] = f"CASE WHEN m.wake_at < 0 THEN NULL ELSE {wake} END"
        sets = ", ".join(f"{c} = {v}" for c, v in values.items())
        self.connection.exec_driver_sql(
            f"UPDATE enrolments SET {sets} FROM tick_moves m WHERE {where}", (w.creditor_key,)
        )

    def wake_reclassified(self, now: dt.datetime) -> int:
        """Make due at `now` the active enrolments whose debtor's persona is no longer the
        one their journey was chosen for: the next tick moves them (reclassification)."""
        result = self.connection.exec_driver_sql(
            f"UPDATE enrolments SET wake_at = {self.mark} "
            f"WHERE creditor_id = {self.mark} AND done = {self.false} "
            "AND COALESCE(persona, '') <> COALESCE(("
            "SELECT p.persona FROM cases c JOIN debtor_personas p "
            "ON p.debtor_id = c.debtor_id AND p.creditor_id = c.creditor_id "
            "WHERE c.id = enrolments.case_id AND c.creditor_id = enrolments.creditor_id), '')",
            (self.writer.timestamp(now), self.writer.creditor_key),
        )
        return int(result.rowcount)

    # -- dispatch --------------------------------------------------------------------------

    def dispatchable(self, now: dt.datetime, limit: int) -> list[Row]:
        """Queued or delayed sends whose time has come: (id, attempt, case, debtor, channel,
        template, journey, node, reminder), ids in storage form."""
        rows = self._rows(
            f"SELECT {self._id('o.id')}, o.attempt_id, {self._id('o.case_id')}, "
            f"{self._id('o.debtor_id')}, o.channel, o.template, o.journey, o.node_id, o.reminder "
            "FROM outbox o WHERE o.creditor_id = ? AND o.kind = 'send' "
            "AND o.status IN ('queued', 'delayed') AND o.not_before <= ? "
            f"ORDER BY o.not_before LIMIT {int(limit)}",
            [self.writer.timestamp(now)],
        )
        return [(self._key(r[0]), r[1], self._key(r[2]), self._key(r[3]), *r[4:]) for r in rows]

    def set_status(
        self,
        outbox_id: Any,
        status: str,
        reason: str | None,
        at: dt.datetime | None,
        not_before: dt.datetime | None = None,
    ) -> None:
        w = self.writer
        m = self.mark
        sets = f"status = {m}, reason = {m}, sent_at = {m}"
        params: list[Any] = [status, reason, w.timestamp(at) if at else None]
        if not_before is not None:
            sets += f", not_before = {m}"
            params.append(w.timestamp(not_before))
        self.connection.exec_driver_sql(
            f"UPDATE outbox SET {sets} WHERE id = {m} AND creditor_id = {m}",
            (*params, outbox_id, w.creditor_key),
        )


def enrolment_nodes(
    connection: Connection, creditor_id: UUID, key: str, version: int
) -> dict[str, int]:
    """Active enrolments of one journey version, counted by node."""
    store = JourneyStore(connection, creditor_id)
    return {
        node: int(count)
        for node, count in store._rows(
            "SELECT node_id, COUNT(*) FROM enrolments WHERE creditor_id = ? AND NOT done "
            "AND journey_key = ? AND journey_version = ? GROUP BY node_id",
            [key, version],
        )
    }


def migrate_enrolments(
    connection: Connection,
    creditor_id: UUID,
    key: str,
    source: int,
    target: int,
    nodes: dict[str, str],
    now: dt.datetime,
) -> int:
    """Move active enrolments from key@source to key@target, node by node (`nodes` maps
    every old node id in use to its new one). Timers and steps are kept; the case is
    looked at again on the next tick."""
    store = JourneyStore(connection, creditor_id)
    m = store.mark
    moved = 0
    for old, new in nodes.items():
        result = connection.exec_driver_sql(
            f"UPDATE enrolments SET journey_version = {m}, node_id = {m}, wake_at = {m} "
            f"WHERE creditor_id = {m} AND NOT done AND journey_key = {m} "
            f"AND journey_version = {m} AND node_id = {m}",
            (target, new, store.writer.timestamp(now), store.writer.creditor_key, key, source, old),
        )
        moved += int(result.rowcount)
    return moved
