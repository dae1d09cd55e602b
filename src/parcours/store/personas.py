"""Persona data in the store: feature inputs read in bulk, survey responses, models,
assignment history and each debtor's current assignment. Every query names the tenant.

Bulk reads go straight to the driver's cursor (SQLAlchemy's per-row result processing
costs several times the fetch itself at a million rows); ids travel in storage form
(16 bytes on SQLite, text on PostgreSQL), as in `store.bulk`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import numpy as np
from sqlalchemy import Connection, delete, func, insert, select, update

from parcours.domain.persona import AssignmentSource
from parcours.store.bulk import Key, PortfolioWriter
from parcours.store.repositories import new_id
from parcours.store.schema import (
    DebtorPersonaRow,
    DebtorRow,
    PersonaAssignmentRow,
    PersonaModelRow,
    SurveyResponseRow,
)

__all__ = [
    "FeatureInputs",
    "PersonaStore",
    "StoredAssignment",
    "StoredResponse",
    "persona_references",
]

Row = tuple[Any, ...]
I64 = np.ndarray[Any, np.dtype[np.int64]]
_FETCH: Final = 262_144


@dataclass(frozen=True)
class FeatureInputs:
    """What the feature builder needs, one entry per (not erased) debtor, ordered by ref.

    `invoices` are columns (owner row, amount, paid, issue day, due day, payment count,
    last payment in UTC seconds or 0), days counted from 1970-01-01.
    """

    keys: list[Key]
    refs: list[str]
    objected: list[bool]
    languages: Sequence[str]
    has_email: list[bool]
    phones: Sequence[str | None]
    has_address: list[bool]
    birth_years: Sequence[int | None]
    engagement: np.ndarray[Any, np.dtype[np.float64]]
    invoices: tuple[I64, I64, I64, I64, I64, I64, I64]


@dataclass(frozen=True)
class StoredResponse:
    debtor_key: Key
    survey_version: str
    answers: dict[str, str]
    persona: str
    confidence: float
    answered_at: dt.datetime


@dataclass(frozen=True)
class StoredAssignment:
    persona: str | None
    source: str
    confidence: float
    model_version: str | None
    assigned_at: dt.datetime
    survey_candidate: bool
    reasons: list[list[Any]]


class _KeyFinder:
    """Rows of debtor ids, by binary search over the sorted ids (no million-entry dict)."""

    def __init__(self, keys: Sequence[Key], key_type: str) -> None:
        self.key_type = key_type
        ids = np.array(keys, dtype=key_type)
        self.order = np.argsort(ids, kind="stable")
        self.sorted = ids[self.order]

    def rows(self, wanted: Any) -> tuple[I64, Any]:
        """(row of each wanted id, whether it was found)."""
        if len(self.sorted) == 0:
            return np.zeros(len(wanted), dtype=np.int64), np.zeros(len(wanted), dtype=bool)
        position = np.minimum(np.searchsorted(self.sorted, wanted), len(self.sorted) - 1)
        found = self.sorted[position] == wanted
        return self.order[position].astype(np.int64), found


def _key(value: Any) -> Key:
    return bytes(value) if isinstance(value, bytes | memoryview) else str(value)


class PersonaStore:
    """Persona reads and writes for one creditor inside the caller's transaction."""

    def __init__(self, connection: Connection, creditor_id: UUID) -> None:
        self.connection = connection
        self.creditor_id = creditor_id
        self.writer = PortfolioWriter(connection, creditor_id)
        self.sqlite = connection.dialect.name == "sqlite"

    # -- bulk reads for features ---------------------------------------------------------

    def _chunks(self, sql: str, params: dict[str, Any]) -> Iterator[Sequence[Row]]:
        """Rows of `sql` (write `{name}` for a parameter) in chunks, from the driver."""
        marked = sql.format(**{k: (f":{k}" if self.sqlite else f"%({k})s") for k in params})
        cursor = self.connection.connection.cursor()
        try:
            cursor.execute(marked, params)
            while rows := cursor.fetchmany(_FETCH):
                yield rows
        finally:
            cursor.close()

    def _id(self, column: str) -> str:
        return column if self.sqlite else f"{column}::text"

    def _day(self, column: str) -> str:
        """Days since 1970-01-01 of a DATE column."""
        if self.sqlite:
            return f"CAST(julianday({column}) - 2440587.5 AS INTEGER)"
        return f"({column} - DATE '1970-01-01')"

    def _seconds(self, column: str) -> str:
        """UTC seconds since the epoch of a timestamp column (NULL stays NULL)."""
        if self.sqlite:
            return f"CAST(ROUND((julianday({column}) - 2440587.5) * 86400) AS INTEGER)"
        return f"CAST(EXTRACT(EPOCH FROM {column}) AS BIGINT)"

    def feature_inputs(self, engagement_events: Sequence[str]) -> FeatureInputs:
        """Debtor and invoice columns of every debtor not erased, ordered by ref;
        `engagement_events` are the event types counted as engagement."""
        params = {"c": self.writer.creditor_key}
        rows = [
            row
            for chunk in self._chunks(
                f"SELECT {self._id('id')}, ref, language, email IS NOT NULL, phone, "
                "street IS NOT NULL AND postcode IS NOT NULL, birth_year, profiling_objection "
                "FROM debtors WHERE creditor_id = {c} AND erased_at IS NULL ORDER BY ref",
                params,
            )
            for row in chunk
        ]
        if not rows:
            empty = np.zeros(0, dtype=np.int64)
            nothing = (empty, empty, empty, empty, empty, empty, empty)
            return FeatureInputs([], [], [], [], [], [], [], [], np.zeros(0), nothing)
        keys, refs, languages, has_email, phones, has_address, years, objected = zip(
            *rows, strict=True
        )
        del rows
        finder = _KeyFinder(keys, "S16" if self.sqlite else "U36")
        types = ", ".join(f"'{t}'" for t in engagement_events if t.replace(".", "").isalnum())
        debtor = self._id("COALESCE(e.debtor_id, c.debtor_id)")
        counted = self._table(
            f"SELECT {debtor}, COUNT(*) FROM events e "
            "LEFT JOIN cases c ON c.id = e.case_id AND c.creditor_id = e.creditor_id "
            f"WHERE e.creditor_id = {{c}} AND e.type IN ({types}) GROUP BY 1",
            finder.key_type,
            ("n",),
        )
        owner, found = finder.rows(counted["key"])
        engagement = np.zeros(len(keys))
        engagement[owner[found]] = counted["n"][found]
        return FeatureInputs(
            keys=list(keys),
            refs=list(refs),
            objected=[bool(o) for o in objected],
            languages=languages,
            has_email=[bool(e) for e in has_email],
            phones=phones,
            has_address=[bool(a) for a in has_address],
            birth_years=years,
            engagement=engagement,
            invoices=self._invoice_columns(finder),
        )

    def _table(self, sql: str, key_type: str, columns: Sequence[str]) -> Any:
        """Rows of `sql` (an id, then integers) as a structured numpy array, converted in C
        chunk by chunk (no per-value Python)."""
        layout = np.dtype([("key", key_type)] + [(name, np.int64) for name in columns])
        parts = [
            np.array(chunk, dtype=layout)
            for chunk in self._chunks(sql, {"c": self.writer.creditor_key})
        ]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=layout)

    def _invoice_columns(self, finder: _KeyFinder) -> tuple[I64, I64, I64, I64, I64, I64, I64]:
        """Per invoice of the debtors in `finder`: their row, amount, paid, issue day, due
        day, payment count and last payment (UTC seconds, 0 when none)."""
        table = self._table(
            f"SELECT {self._id('c.debtor_id')}, i.amount_minor, i.paid_minor, "
            f"{self._day('i.issue_date')}, {self._day('i.due_date')}, COALESCE(p.n, 0), "
            f"COALESCE({self._seconds('p.last_paid')}, 0) "
            "FROM invoices i "
            "JOIN cases c ON c.id = i.case_id AND c.creditor_id = i.creditor_id "
            "LEFT JOIN (SELECT invoice_id, COUNT(*) AS n, MAX(paid_at) AS last_paid "
            "           FROM payments WHERE creditor_id = {c} GROUP BY invoice_id) p "
            "       ON p.invoice_id = i.id "
            "WHERE i.creditor_id = {c}",
            finder.key_type,
            ("a", "p", "i", "d", "n", "l"),
        )
        owner, found = finder.rows(table["key"])
        if not found.all():  # invoices of erased debtors are left out
            table, owner = table[found], owner[found]
        return (
            owner, table["a"], table["p"], table["i"], table["d"], table["n"], table["l"],
        )  # fmt: skip

    # -- debtors -------------------------------------------------------------------------

    def debtor_keys_by_ref(self) -> dict[str, Key]:
        d = DebtorRow
        return {
            ref: _key(k)
            for ref, k in self.connection.execute(
                select(d.ref, self.writer.raw_id(d.id)).where(
                    d.creditor_id == self.creditor_id, d.erased_at.is_(None)
                )
            )
        }

    def set_objection(self, debtor_id: UUID, objects: bool, now: dt.datetime) -> bool:
        """Record or withdraw an objection to profiling; True when it changed."""
        d = DebtorRow
        result = self.connection.execute(
            update(d)
            .where(
                d.creditor_id == self.creditor_id,
                d.id == debtor_id,
                d.profiling_objection != objects,
            )
            .values(profiling_objection=objects, profiling_objection_at=now if objects else None)
        )
        return bool(result.rowcount)

    def objection_at(self, debtor_id: UUID) -> dt.datetime | None:
        d = DebtorRow
        return self.connection.execute(
            select(d.profiling_objection_at).where(
                d.creditor_id == self.creditor_id, d.id == debtor_id
            )
        ).scalar()

    # -- survey responses ----------------------------------------------------------------

    def response_keys(self, survey_version: str) -> set[tuple[Key, dt.datetime]]:
        """(debtor, answered_at) of the responses stored for this survey version."""
        t = SurveyResponseRow
        return {
            (_key(d), at)
            for d, at in self.connection.execute(
                select(self.writer.raw_id(t.debtor_id), t.answered_at).where(
                    t.creditor_id == self.creditor_id, t.survey_version == survey_version
                )
            )
        }

    def add_responses(
        self, rows: Iterable[StoredResponse], now: dt.datetime, source: str = "import"
    ) -> int:
        """Store scored responses; `source` says where they came from (import, page)."""
        w = self.writer
        values = [
            (
                w.new_id(), w.creditor_key, r.debtor_key, r.survey_version, json.dumps(r.answers),
                w.timestamp(r.answered_at), source, r.persona, round(r.confidence, 6),
                w.timestamp(now),
            )
            for r in rows
        ]  # fmt: skip
        w.insert(
            "survey_responses",
            (
                "id", "creditor_id", "debtor_id", "survey_version", "answers", "answered_at",
                "source", "persona", "confidence", "recorded_at",
            ),
            values,
        )  # fmt: skip
        return len(values)

    def latest_responses(self) -> dict[Key, StoredResponse]:
        """Each debtor's most recent survey response."""
        t = SurveyResponseRow
        latest: dict[Key, StoredResponse] = {}
        for key, version, answers, persona, confidence, at in self.connection.execute(
            select(
                self.writer.raw_id(t.debtor_id), t.survey_version, t.answers, t.persona,
                t.confidence, t.answered_at,
            )
            .where(t.creditor_id == self.creditor_id)
            .order_by(t.answered_at, t.recorded_at)
        ):  # fmt: skip
            latest[_key(key)] = StoredResponse(_key(key), version, answers, persona, confidence, at)
        return latest

    def newest_response_at(self) -> dt.datetime | None:
        t = SurveyResponseRow
        return self.connection.execute(
            select(func.max(t.recorded_at)).where(t.creditor_id == self.creditor_id)
        ).scalar()

    # -- models --------------------------------------------------------------------------

    def add_model(
        self,
        version: str,
        algorithm: str,
        trained_at: dt.datetime,
        labelled: int,
        params: dict[str, Any],
        metrics: dict[str, Any],
    ) -> None:
        self.connection.execute(
            insert(PersonaModelRow).values(
                id=new_id(),
                creditor_id=self.creditor_id,
                version=version,
                algorithm=algorithm,
                trained_at=trained_at,
                labelled=labelled,
                params=params,
                metrics=metrics,
            )
        )

    def latest_model(self, version: str | None = None) -> Any:
        """The newest model row, or the one of `version`: (version, params, trained_at,
        labelled, metrics), or None."""
        t = PersonaModelRow
        query = select(t.version, t.params, t.trained_at, t.labelled, t.metrics).where(
            t.creditor_id == self.creditor_id
        )
        if version is not None:
            query = query.where(t.version == version)
        return self.connection.execute(query.order_by(t.trained_at.desc()).limit(1)).first()

    def survey_candidates(self, limit: int) -> tuple[int, list[tuple[str, float]]]:
        """How many debtors are survey candidates, and the least certain ones (ref,
        confidence) first."""
        p, d = DebtorPersonaRow, DebtorRow
        where = (p.creditor_id == self.creditor_id, p.survey_candidate.is_(True))
        total = self.connection.execute(select(func.count()).where(*where)).scalar_one()
        rows = self.connection.execute(
            select(d.ref, p.confidence)
            .join(d, (d.id == p.debtor_id) & (d.creditor_id == p.creditor_id))
            .where(*where)
            .order_by(p.confidence, d.ref)
            .limit(limit)
        )
        return int(total), [(ref, float(confidence)) for ref, confidence in rows]

    # -- assignments ---------------------------------------------------------------------

    def current(self) -> dict[Key, tuple[str | None, str, str | None, bool]]:
        """debtor → (persona, source, model version, survey candidate) now in force."""
        t = DebtorPersonaRow
        return {
            _key(k): (p, s, v, bool(c))
            for k, p, s, v, c in self.connection.execute(
                select(
                    self.writer.raw_id(t.debtor_id), t.persona, t.source, t.model_version,
                    t.survey_candidate,
                ).where(t.creditor_id == self.creditor_id)
            )
        }  # fmt: skip

    _HISTORY: Final = (
        "id", "creditor_id", "debtor_id", "persona", "confidence", "source", "model_version",
        "survey_candidate", "assigned_at", "reasons",
    )  # fmt: skip
    _CURRENT: Final = (
        "debtor_id", "creditor_id", "assignment_id", "persona", "source", "model_version",
        "confidence", "survey_candidate",
    )  # fmt: skip

    def history_row(
        self,
        debtor_key: Key,
        persona: str | None,
        confidence: float,
        source: AssignmentSource,
        model_version: str | None,
        survey_candidate: bool,
        assigned_at: Any,
        reasons_json: str,
    ) -> Row:
        """A row for `store_assignments`; `assigned_at` from `writer.timestamp`."""
        return (
            self.writer.new_id(), self.writer.creditor_key, debtor_key, persona,
            round(confidence, 6), source.value, model_version, survey_candidate, assigned_at,
            reasons_json,
        )  # fmt: skip

    def store_assignments(self, rows: Sequence[Row], replacing: Sequence[Key]) -> None:
        """Append history rows and make them current (`replacing`: debtors that had one)."""
        w = self.writer
        w.insert("persona_assignments", self._HISTORY, rows)
        if replacing:
            marker = "?" if self.sqlite else "%s"
            self.connection.exec_driver_sql(
                f"DELETE FROM debtor_personas WHERE creditor_id = {marker} "
                f"AND debtor_id = {marker}",
                [(w.creditor_key, key) for key in replacing],
            )
        w.insert(
            "debtor_personas",
            self._CURRENT,
            [(r[2], r[1], r[0], r[3], r[5], r[6], r[4], r[7]) for r in rows],
        )

    def assign_one(
        self,
        debtor_id: UUID,
        persona: str | None,
        source: AssignmentSource,
        reasons: list[list[Any]],
        now: dt.datetime,
    ) -> None:
        """Make one assignment current at once (operator decision or objection)."""
        assignment_id = new_id()
        common = {
            "creditor_id": self.creditor_id,
            "debtor_id": debtor_id,
            "persona": persona,
            "confidence": 1.0,
            "source": source.value,
            "model_version": None,
            "survey_candidate": False,
        }
        self.connection.execute(
            insert(PersonaAssignmentRow).values(
                id=assignment_id, assigned_at=now, reasons=reasons, **common
            )
        )
        t = DebtorPersonaRow
        self.connection.execute(
            delete(t).where(t.creditor_id == self.creditor_id, t.debtor_id == debtor_id)
        )
        self.connection.execute(insert(t).values(assignment_id=assignment_id, **common))

    def history(self, debtor_id: UUID) -> list[StoredAssignment]:
        """A debtor's assignments, newest first."""
        a = PersonaAssignmentRow
        rows = self.connection.execute(
            select(
                a.persona, a.source, a.confidence, a.model_version, a.assigned_at,
                a.survey_candidate, a.reasons,
            )
            .where(a.creditor_id == self.creditor_id, a.debtor_id == debtor_id)
            .order_by(a.assigned_at.desc(), a.id.desc())
        )  # fmt: skip
        return [StoredAssignment(*row) for row in rows]


def persona_references(connection: Connection) -> list[tuple[str, list[str]]]:
    """Everything stored that names a persona, described for an error message.

    Deliberately across tenants: the persona catalog is one per installation, so a
    persona may only be removed when no creditor's data still refers to it.
    """
    refs: list[tuple[str, list[str]]] = []
    t = DebtorPersonaRow
    for persona, count in connection.execute(
        select(t.persona, func.count()).where(t.persona.is_not(None)).group_by(t.persona)
    ):
        refs.append((f"{count:,} debtors' current assignments", [str(persona)]))
    r = SurveyResponseRow
    for persona, count in connection.execute(select(r.persona, func.count()).group_by(r.persona)):
        refs.append((f"{count:,} stored survey responses", [persona]))
    for version, params in connection.execute(
        select(PersonaModelRow.version, PersonaModelRow.params)
    ):
        refs.append((f"persona model {version}", list(params.get("classes", []))))
    return refs
