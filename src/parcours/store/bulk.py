"""Set-based reads and writes for portfolio imports: one query per batch, never per row.

Rows arrive as tuples of plain values already in storage form (ids from `new_id`,
dates as ISO strings, money in minor units). SQLite gets `executemany`; PostgreSQL gets
`COPY`, which is several times faster than multi-row INSERT for large loads.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from typing import Any, Final
from uuid import UUID

import uuid_utils
from sqlalchemy import (
    ColumnElement,
    Connection,
    LargeBinary,
    Text,
    any_,
    bindparam,
    cast,
    exists,
    func,
    literal_column,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute

from parcours.store.schema import CaseRow, CreditorRow, DebtorRow, InvoiceRow, PaymentRow

__all__ = ["PortfolioWriter"]

Row = tuple[Any, ...]
Key = bytes | str  # an id in storage form: 16 bytes on SQLite, text on PostgreSQL

DEBTOR_FIELDS = (
    "name",
    "language",
    "country",
    "timezone",
    "birth_year",
    "email",
    "phone",
    "street",
    "postcode",
    "city",
)
INVOICE_FIELDS = ("case_id", "amount_minor", "currency", "issue_date", "due_date", "description")
PAYMENT_FIELDS = ("case_id", "invoice_id", "amount_minor", "currency", "paid_at")


@lru_cache(maxsize=4096)
def _sqlite_timestamp(value: dt.datetime) -> str:
    """The text form SQLAlchemy's SQLite DateTime reads back (bulk rows share a few
    instants, such as the run's clock: cached)."""
    utc = value.astimezone(dt.UTC)
    return utc.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


_ROWS: Final = 64  # rows per INSERT on SQLite
_VARIABLES: Final = 999  # parameters per statement: SQLite's smallest limit


def sqlite_literal(value: Any) -> str | None:
    """`value` as an SQLite literal stored exactly as the bound value would be, or None
    when it is better bound (floats, large integers, text with NUL, other types)."""
    kind = type(value)
    if value is None:
        return "NULL"
    if kind is bool:
        return "1" if value else "0"
    if kind is int and -(1 << 63) <= value < (1 << 63):
        return str(value)
    if kind is str and "\x00" not in value:
        return "'" + str(value).replace("'", "''") + "'"
    if kind is bytes:
        return f"X'{value.hex()}'"
    return None


def _to_uuid(key: bytes | str) -> UUID:
    return UUID(bytes=key) if isinstance(key, bytes) else UUID(key)


def _new_bytes_id() -> bytes:
    """A new time-ordered UUID (v7) as SQLite stores it."""
    return bytes(uuid_utils.uuid7().bytes)


def _new_text_id() -> str:
    """A new time-ordered UUID (v7) as PostgreSQL's COPY reads it."""
    return str(uuid_utils.uuid7())


class PortfolioWriter:
    """Bulk access to one creditor's portfolio inside the caller's transaction."""

    def __init__(self, connection: Connection, creditor_id: UUID) -> None:
        self.connection = connection
        self.creditor_id = creditor_id
        self.dialect = connection.dialect.name
        # Ids travel in storage form: 16 bytes for SQLite, text for PostgreSQL's COPY.
        sqlite = self.dialect == "sqlite"
        self.creditor_key: Key = creditor_id.bytes if sqlite else str(creditor_id)
        self.new_id: Callable[[], Key] = _new_bytes_id if sqlite else _new_text_id
        self._marker = "?" if self.dialect == "sqlite" else "%s"

    # -- storage forms -------------------------------------------------------------------

    def key(self, value: UUID) -> Key:
        """An id in the storage form the bulk path takes (see `creditor_key`)."""
        return value.bytes if self.dialect == "sqlite" else str(value)

    def timestamp(self, value: dt.datetime) -> Any:
        """A UTC timestamp in the form this database's bulk path takes."""
        if self.dialect != "sqlite":
            return value.astimezone(dt.UTC)
        return _sqlite_timestamp(value)

    # -- lookups -------------------------------------------------------------------------

    def raw_id(self, column: Any) -> Any:
        """An id column read in storage form, skipping SQLAlchemy's per-row UUID objects."""
        if self.dialect == "sqlite":
            return type_coerce(column, LargeBinary())
        return cast(column, Text)

    def _among(
        self, column: InstrumentedAttribute[str], refs: Sequence[str]
    ) -> ColumnElement[bool]:
        """`column IN refs` with one parameter whatever the batch size: an array on
        PostgreSQL, a JSON array on SQLite (whose parameter count is capped)."""
        if self.dialect == "postgresql":
            return column == any_(bindparam(None, list(refs), type_=ARRAY(Text)))
        listed = func.json_each(bindparam(None, json.dumps(list(refs)), type_=Text))
        return column.in_(select(literal_column("value")).select_from(listed))

    def has_rows(self, model: type[DebtorRow] | type[InvoiceRow] | type[PaymentRow]) -> bool:
        """Whether the creditor has any row of this kind (a first load skips lookups)."""
        query = select(exists().where(model.creditor_id == self.creditor_id))
        return bool(self.connection.execute(query).scalar())

    def debtors_by_ref(self, refs: Sequence[str]) -> dict[str, tuple[Key, int, bool]]:
        """ref → (id, source digest, erased) for the refs that exist."""
        t = DebtorRow
        rows = self.connection.execute(
            select(t.ref, self.raw_id(t.id), t.source_digest, t.erased_at.is_not(None)).where(
                t.creditor_id == self.creditor_id, self._among(t.ref, refs)
            )
        )
        return {ref: (id_, digest, erased) for ref, id_, digest, erased in rows}

    def debtor_cases(self, refs: Sequence[str]) -> dict[str, tuple[Key, bool, Key | None, int]]:
        """debtor ref → (debtor id, erased, open case id or None, number of cases)."""
        d, c = DebtorRow, CaseRow
        rows = self.connection.execute(
            select(d.ref, self.raw_id(d.id), d.erased_at.is_not(None), self.raw_id(c.id), c.status)
            .outerjoin(c, (c.debtor_id == d.id) & (c.creditor_id == d.creditor_id))
            .where(d.creditor_id == self.creditor_id, self._among(d.ref, refs))
        )
        found: dict[str, tuple[Key, bool, Key | None, int]] = {}
        for ref, debtor_id, erased, case_id, status in rows:
            _, _, open_case, count = found.get(ref, (debtor_id, erased, None, 0))
            if status == "open":
                open_case = case_id
            found[ref] = (debtor_id, erased, open_case, count + (case_id is not None))
        return found

    def invoices_by_ref(self, refs: Sequence[str]) -> dict[str, tuple[Key, int, str, Key]]:
        """ref → (id, source digest, currency, case id)."""
        t = InvoiceRow
        rows = self.connection.execute(
            select(
                t.ref, self.raw_id(t.id), t.source_digest, t.currency, self.raw_id(t.case_id)
            ).where(t.creditor_id == self.creditor_id, self._among(t.ref, refs))
        )
        return {ref: (id_, digest, currency, case) for ref, id_, digest, currency, case in rows}

    def payments_by_ref(self, refs: Sequence[str]) -> dict[str, tuple[Key, int, Key]]:
        """ref → (id, source digest, invoice id)."""
        t = PaymentRow
        rows = self.connection.execute(
            select(t.ref, self.raw_id(t.id), t.source_digest, self.raw_id(t.invoice_id)).where(
                t.creditor_id == self.creditor_id, self._among(t.ref, refs)
            )
        )
        return {ref: (i, digest, inv) for ref, i, digest, inv in rows}

    # -- writes --------------------------------------------------------------------------

    def reserve_ogm_bases(self, count: int) -> int:
        """Reserve `count` consecutive structured-communication bases; returns the first.

        The UPDATE locks the creditor's row until commit, so concurrent imports for the
        same creditor cannot hand out the same numbers.
        """
        t = CreditorRow
        end = self.connection.execute(
            update(t)
            .where(t.id == self.creditor_id)
            .values(next_ogm_base=t.next_ogm_base + count)
            .returning(t.next_ogm_base)
        ).scalar_one()
        return int(end) - count

    def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Row], *, leading: Row = ()
    ) -> None:
        """INSERT `rows`, each after the `leading` values (the same for every row, such as
        the creditor), into `columns`. PostgreSQL gets COPY; SQLite several rows a
        statement, through `_sqlite_insert`."""
        if not rows:
            return
        if self.dialect == "postgresql":
            raw = self.connection.connection.driver_connection
            assert raw is not None
            with (
                raw.cursor() as cursor,
                cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
            ):
                if leading:
                    for row in rows:
                        copy.write_row((*leading, *row))
                else:
                    for row in rows:
                        copy.write_row(row)
            return
        literals: list[str] = []
        for value in leading:
            literal = sqlite_literal(value)
            if literal is None:  # bound with each row after all
                rows, literals = [(*leading, *row) for row in rows], []
                break
            literals.append(literal)
        self._sqlite_insert(table, columns, rows, literals)

    def _sqlite_insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Row], leading: list[str]
    ) -> None:
        """INSERT on SQLite, `leading` literals first in each row.

        A column with the same value in every row (the creditor, the statement, its day,
        no end-to-end id ...) is written once, as a literal: the driver binds a None, a
        bool or bytes at some 0.3 µs each. Rows go in groups of up to `_ROWS` per
        INSERT, in order, which halves the driver's cost per row, and spreads over as
        many rows the set-up of the table's CHECK constraints that SQLite does for each
        run of a statement."""
        values: list[str] = list(leading)
        bound: list[int] = []
        first, last, middle = rows[0], rows[-1], rows[len(rows) // 2]
        for n, value in enumerate(first):
            literal = sqlite_literal(value) if len(rows) > 1 else None
            # A column of one value: a glance at two rows, then every row compared in C,
            # for numbers their type too (1 == True == 1.0, each stored differently).
            if (
                literal is not None
                and last[n] == value
                and middle[n] == value
                and (column := list(map(itemgetter(n), rows))).count(value) == len(rows)
                and (type(value) not in (int, bool) or len(set(map(type, column))) == 1)
            ):
                values.append(literal)
            else:
                values.append("?")
                bound.append(n)
        width = len(bound)
        flat: list[Any] = []
        if width == 1:
            flat = list(map(itemgetter(bound[0]), rows))
        elif width == len(first):
            flat = list(chain.from_iterable(rows))
        elif width:
            flat = list(chain.from_iterable(map(itemgetter(*bound), rows)))
        one = f"({', '.join(values)})"
        per = max(1, min(_ROWS, _VARIABLES // max(width, 1)))
        head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        whole = len(rows) // per * per
        if whole:
            step = per * width
            self.connection.exec_driver_sql(
                head + ", ".join([one] * per),
                [tuple(flat[i : i + step]) for i in range(0, whole * width, step)]
                if width
                else [()] * (whole // per),
            )
        if whole < len(rows):
            rest = len(rows) - whole
            self.connection.exec_driver_sql(
                head + ", ".join([one] * rest), tuple(flat[whole * width :])
            )

    def audit(
        self, entries: Sequence[tuple[str, str, str, dict[str, Any]]], at: dt.datetime
    ) -> None:
        """Audit entries (actor, action, subject, details) of this creditor, all at `at`;
        `details` never holds personal data."""
        stamp = self.timestamp(at)
        self.insert(
            "audit_log",
            ("id", "at", "actor", "action", "creditor_id", "subject", "details"),
            [
                (self.new_id(), stamp, actor, action, self.creditor_key, subject,
                 json.dumps(details))
                for actor, action, subject, details in entries
            ],
        )  # fmt: skip

    def update(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        """UPDATE by id; each row is the new values of `columns` followed by the id."""
        if not rows:
            return
        assignments = ", ".join(f"{column} = {self._marker}" for column in columns)
        self.connection.exec_driver_sql(
            f"UPDATE {table} SET {assignments} "
            f"WHERE id = {self._marker} AND creditor_id = {self._marker}",
            [(*row, self.creditor_key) for row in rows],
        )

    def refresh_paid(self, invoice_ids: Iterable[Key]) -> None:
        """Recompute `paid_minor` of these invoices (ids in storage form) from their payments."""
        ids = [_to_uuid(i) for i in set(invoice_ids) if i is not None]
        if not ids:
            return
        p, i = PaymentRow, InvoiceRow
        paid = (
            select(func.coalesce(func.sum(p.amount_minor), 0))
            .where(p.invoice_id == i.id, p.reversed_at.is_(None))
            .scalar_subquery()
        )
        self.connection.execute(
            update(i)
            .where(i.creditor_id == self.creditor_id, i.id.in_(bindparam("ids", expanding=True)))
            .values(paid_minor=paid),
            {"ids": ids},
        )
