"""Payments in bulk: what reconciliation looks up (structured communications, references,
IBANs, amounts, open invoices) and what booking writes (payments, statement lines,
events), inside the caller's transaction.

Lookups hand their keys over at once and join once — a statement of 100,000 lines
against a million invoices costs a handful of indexed joins, not 100,000 queries. On
SQLite the keys travel as one JSON array (text and numbers) or as literals (blob ids),
parsed in C; on PostgreSQL they are staged in a temporary table. Writes go in bulk too:
COPY on PostgreSQL, INSERTs of many rows on SQLite.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast
from uuid import UUID

from sqlalchemy import Connection

from parcours.domain.arrangements import Instalment
from parcours.store.bulk import Key, sqlite_literal
from parcours.store.messages import MessageStore

__all__ = ["AMOUNT_HITS", "NAME_HITS", "CaseInfo", "PaymentStore"]

# An amount shared by more open cases than this says nothing about who paid.
AMOUNT_HITS: Final = 20
NAME_HITS: Final = 20  # likewise for a name (homonyms)
_INLINE: Final = 50  # case ids listed in the query itself up to this many

Row = tuple[Any, ...]


@dataclass(slots=True)
class CaseInfo:
    """An open case as booking sees it; `invoices` are (id, open minor, due date), oldest
    first, and shrink as payments of the same import are allocated."""

    case: Key
    debtor: Key
    ref: str
    name: str
    status: str
    currency: str
    invoices: list[tuple[Key, int, dt.date]] = field(default_factory=list)
    name_key: str | None = None  # the debtor's, as stored (`name_key` of `name`)

    @property
    def balance_minor(self) -> int:
        return sum(open_minor for _, open_minor, _ in self.invoices)


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _second(row: Row) -> Any:
    return row[1]


def _case_of_event(row: Row) -> tuple[bool, Any]:
    """Sort key: an event's case (events of no case last, in their order)."""
    return (row[1] is None, row[1] or row[0])


class PaymentStore(MessageStore):
    """Bulk reads and writes of one creditor's payments."""

    def __init__(self, connection: Connection, creditor_id: UUID) -> None:
        super().__init__(connection, creditor_id)
        # Invoices' rowids on SQLite, remembered as they are read: an update by rowid
        # goes straight to the table, not through the index of ids first.
        self._rowids: dict[Key, int] = {}

    def _staged(self, table: str, column_type: str, values: Iterable[Any]) -> int:
        """Values in a one-column temporary table (`v`), for a join; returns how many."""
        self.connection.exec_driver_sql(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {table} (v {column_type} PRIMARY KEY)"
        )
        self.connection.exec_driver_sql(f"DELETE FROM {table}")
        rows = [(v,) for v in set(values)]
        self.writer.insert(table, ("v",), rows)
        if not self.sqlite and len(rows) > _INLINE:
            # Without statistics PostgreSQL guesses the table's size and may scan.
            self.connection.exec_driver_sql(f"ANALYZE {table}")
        return len(rows)

    def _values(
        self, table: str, column_type: str, values: Iterable[str | int]
    ) -> tuple[str, list[Any]] | None:
        """These distinct values as a subquery for `IN`, with its parameters: a JSON array
        on SQLite, read in C (staging 100,000 rows through the driver costs a second per
        lookup), a staged temporary table on PostgreSQL; None when there are none."""
        unique = list(set(values))
        if not unique:
            return None
        if self.sqlite:
            return "(SELECT value FROM json_each(?))", [json.dumps(unique)]
        self._staged(table, column_type, unique)
        return f"(SELECT v FROM {table})", []

    def _rowid(self, table: str) -> str:
        return f"{table}.rowid" if self.sqlite else "NULL"

    def _ids(self, table: str, keys: Iterable[Key]) -> int:
        return self._staged(table, "BLOB" if self.sqlite else "uuid", keys)

    def date(self, value: dt.date) -> Any:
        return value.isoformat() if self.sqlite else value

    # -- reconciliation lookups -----------------------------------------------------------

    @property
    def _x(self) -> str:
        """Join in the order written on SQLite (`CROSS JOIN`): the looked-up keys first
        (an `IN` list, or staged ids), then an index probe per key. Without statistics
        its planner may otherwise scan the tenant's million invoices through any
        creditor-led index."""
        return " CROSS JOIN " if self.sqlite else ", "

    def _via(self, index: str) -> str:
        return f" INDEXED BY {index}" if self.sqlite else ""

    def known_refs(self, account: str, refs: Iterable[str]) -> set[str]:
        """Bank references of this account already imported."""
        listed = self._values("pay_refs", "TEXT", refs)
        if listed is None:
            return set()
        values, params = listed
        rows = self._rows(
            "SELECT t.bank_ref FROM bank_transactions t WHERE t.creditor_id = ? "
            f"AND t.account_iban = ? AND t.bank_ref IN {values}",
            [account, *params],
        )
        return {r[0] for r in rows}

    def ogm_targets(
        self, ogms: Iterable[str]
    ) -> dict[str, tuple[Key, Key | None, Key, int | None]]:
        """Structured communication → (case, invoice, debtor, open minor on the invoice);
        the invoice is None for a case's own communication, which pays all its invoices."""
        listed = self._values("pay_ogms", "TEXT", ogms)
        if listed is None:
            return {}
        values, params = listed
        # Ids come back in storage form (bytes, or text through `_id`): no conversion.
        rows = self._rows(
            f"SELECT i.structured_communication, {self._id('i.case_id')}, {self._id('i.id')}, "
            f"{self._id('c.debtor_id')}, i.amount_minor - i.paid_minor, {self._rowid('i')} "
            f"FROM invoices i{self._x}cases c "
            f"WHERE i.creditor_id = ? AND i.structured_communication IN {values} "
            "AND c.id = i.case_id AND c.creditor_id = i.creditor_id",
            params,
        )
        if self.sqlite:
            self._rowids.update((invoice, rowid) for _, _, invoice, _, _, rowid in rows)
        found: dict[str, tuple[Key, Key | None, Key, int | None]] = {
            ogm: (case, invoice, debtor, open_minor)
            for ogm, case, invoice, debtor, open_minor, _ in rows
        }
        for ogm, case, debtor in self._rows(
            f"SELECT c.structured_communication, {self._id('c.id')}, {self._id('c.debtor_id')} "
            f"FROM cases c WHERE c.creditor_id = ? AND c.structured_communication IN {values}",
            params,
        ):
            found[ogm] = (case, None, debtor, None)
        return found

    def paid_off(self, cases: Iterable[Key]) -> list[Key]:
        """Those of `cases` with no open invoice left."""
        wanted = set(cases)
        among = self._among_cases(wanted)
        if among is None:
            return []
        clause, params = among
        owing = {
            self._key(case)
            for (case,) in self._rows(
                f"SELECT DISTINCT {self._id('i.case_id')} "
                f"FROM invoices i{self._via('ix_invoices_case_id')} "
                f"WHERE i.creditor_id = ? AND i.case_id {clause} AND i.paid_minor < i.amount_minor",
                params,
            )
        }
        return sorted(wanted - owing)

    def ref_targets(self, refs: Iterable[str]) -> dict[str, Key]:
        """Invoice or case reference (as written, or upper-cased) → case."""
        listed = self._values("pay_refs", "TEXT", refs)
        if listed is None:
            return {}
        values, params = listed
        found: dict[str, Key] = {}
        for ref, case in self._rows(
            f"SELECT i.ref, {self._id('i.case_id')} FROM invoices i "
            f"WHERE i.creditor_id = ? AND i.ref IN {values}",
            params,
        ):
            found[ref] = self._key(case)
        for ref, case in self._rows(
            f"SELECT c.ref, {self._id('c.id')} FROM cases c "
            f"WHERE c.creditor_id = ? AND c.ref IN {values}",
            params,
        ):
            found[ref] = self._key(case)
        return found

    def iban_cases(self, ibans: Iterable[str]) -> dict[str, list[Key]]:
        """IBAN → the open cases of the debtors who paid from it before (learned from
        earlier matched statement lines)."""
        listed = self._values("pay_ibans", "TEXT", ibans)
        if listed is None:
            return {}
        values, params = listed
        found: dict[str, set[Key]] = {}
        for iban, case in self._rows(
            f"SELECT DISTINCT t.counterparty_iban, {self._id('open_case.id')} "
            f"FROM bank_transactions t{self._via('ix_bank_transactions_iban')}{self._x}cases paid"
            f"{self._x}cases open_case{self._via('uq_cases_creditor_id_debtor_id_id')} "
            f"WHERE t.creditor_id = ? AND t.counterparty_iban IN {values} "
            "AND t.status = 'matched' "
            "AND paid.id = t.case_id AND paid.creditor_id = t.creditor_id "
            "AND open_case.creditor_id = paid.creditor_id "
            "AND open_case.debtor_id = paid.debtor_id AND open_case.status = 'open'",
            params,
        ):
            found.setdefault(iban, set()).add(self._key(case))
        return {iban: sorted(cases) for iban, cases in found.items()}

    def amount_cases(self, amounts: Iterable[int]) -> dict[int, list[tuple[Key, str, str | None]]]:
        """Amount → (open case, debtor's name, its `name_key`) of the open invoices issued
        for exactly that amount; amounts of more than AMOUNT_HITS open invoices are left
        out.

        One scan of the open invoices, once per import whatever its size, that counts each
        amount's invoices and lists the cases of the rare ones. (An index on the amount
        would make every invoice import of a million invoices seconds slower.)"""
        listed = self._values("pay_amounts", "BIGINT", amounts)
        if listed is None:
            return {}
        values, params = listed
        rare = (
            "FROM invoices i WHERE i.creditor_id = ? AND i.paid_minor < i.amount_minor "
            f"AND i.amount_minor IN {values} "
            f"GROUP BY i.amount_minor HAVING COUNT(*) <= {int(AMOUNT_HITS)}"
        )
        found: dict[int, dict[Key, tuple[str, str | None]]] = {}
        if self.sqlite:
            # The rare amounts' invoices by rowid, then each with its case and debtor's
            # name by rowid: integers travel in the JSON list where blob ids cannot.
            rowids = [
                int(rowid)
                for (listed,) in self._rows(f"SELECT group_concat(i.rowid) {rare}", params)
                for rowid in listed.split(",")
            ]
            if not rowids:
                return {}
            for amount, case, name, key in self._rows(
                "SELECT i.amount_minor, i.case_id, d.name, d.name_key FROM invoices i "
                "CROSS JOIN cases c CROSS JOIN debtors d "
                "WHERE +i.creditor_id = ? AND i.rowid IN (SELECT value FROM json_each(?)) "
                "AND c.id = i.case_id AND c.creditor_id = i.creditor_id "
                "AND d.id = c.debtor_id AND d.creditor_id = c.creditor_id",
                [json.dumps(rowids)],
            ):
                found.setdefault(amount, {})[case] = (name, key)
        else:
            hits = [
                (int(amount), case)
                for amount, cases in self._rows(
                    f"SELECT i.amount_minor, array_agg(i.case_id::text) {rare}", params
                )
                for case in cases
            ]
            names = self.case_names(c for _, c in hits)
            for amount, case in hits:
                if case in names:
                    found.setdefault(amount, {})[case] = names[case]
        return {
            amount: [(case, name, key) for case, (name, key) in sorted(cases.items())]
            for amount, cases in found.items()
        }

    def _among_cases(self, keys: Iterable[Key]) -> tuple[str, list[Key]] | None:
        """`IN (...)` for these case ids: bound for a few (a payment from the API or a
        PSP); for many (a statement), literals on SQLite, a staged table on PostgreSQL."""
        unique = list(set(keys))
        if not unique:
            return None
        if len(unique) <= _INLINE:
            return f"IN ({', '.join('?' * len(unique))})", unique
        if self.sqlite:
            # Blob literals in the statement: SQLite parses 100,000 of them faster than
            # the driver stages them in a table (and it has no function to decode hex).
            blobs = cast(list[bytes], unique)
            return "IN (" + ", ".join([f"X'{key.hex()}'" for key in blobs]) + ")", []
        self._ids("pay_cases", unique)
        return "IN (SELECT v FROM pay_cases)", []

    def name_cases(self, keys: Iterable[str]) -> dict[str, list[tuple[Key, str]]]:
        """Name key → (open case, debtor's name) of the debtors with that name; names
        shared by more than NAME_HITS cases are left out."""
        listed = self._values("pay_names", "TEXT", (k for k in keys if k))
        if listed is None:
            return {}
        values, params = listed
        found: dict[str, dict[Key, str]] = {}
        for key, case, name in self._rows(
            f"SELECT d.name_key, {self._id('c.id')}, d.name "
            f"FROM debtors d{self._x}cases c{self._via('uq_cases_creditor_id_debtor_id_id')} "
            f"WHERE d.creditor_id = ? AND d.name_key IN {values} "
            "AND c.creditor_id = d.creditor_id AND c.debtor_id = d.id AND c.status = 'open'",
            params,
        ):
            found.setdefault(key, {})[self._key(case)] = name
        return {
            key: sorted(cases.items()) for key, cases in found.items() if len(cases) <= NAME_HITS
        }

    def case_names(self, keys: Iterable[Key]) -> dict[Key, tuple[str, str | None]]:
        """The debtor's name and `name_key` of each of these cases."""
        among = self._among_cases(keys)
        if among is None:
            return {}
        clause, params = among
        return {
            self._key(case): (name, key)
            for case, name, key in self._rows(
                f"SELECT {self._id('c.id')}, d.name, d.name_key FROM cases c JOIN debtors d "
                "ON d.id = c.debtor_id AND d.creditor_id = c.creditor_id "
                f"WHERE c.creditor_id = ? AND c.id {clause}",
                params,
            )
        }

    def cases(self, keys: Iterable[Key]) -> dict[Key, CaseInfo]:
        """Open invoices, debtor and name of these cases (any status)."""
        among = self._among_cases(keys)
        if among is None:
            return {}
        clause, params = among
        # Ids come back in storage form (bytes, or text through `_id`): no conversion.
        infos: dict[Key, CaseInfo] = {
            case: CaseInfo(case, debtor, ref, name, status, "", [], key)
            for case, debtor, ref, name, status, key in self._rows(
                f"SELECT {self._id('c.id')}, {self._id('c.debtor_id')}, c.ref, d.name, c.status, "
                "d.name_key FROM cases c JOIN debtors d "
                "ON d.id = c.debtor_id AND d.creditor_id = c.creditor_id "
                f"WHERE c.creditor_id = ? AND c.id {clause}",
                params,
            )
        }
        days: dict[Any, dt.date] = {}  # due dates repeat: each parsed once
        rows = self._rows(
            f"SELECT {self._id('i.case_id')}, {self._id('i.id')}, "
            f"i.amount_minor - i.paid_minor, i.due_date, i.currency, {self._rowid('i')} "
            f"FROM invoices i{self._via('ix_invoices_case_id')} "
            f"WHERE i.creditor_id = ? AND i.case_id {clause} AND i.paid_minor < i.amount_minor "
            "ORDER BY i.due_date, i.ref",
            params,
        )
        if self.sqlite:
            self._rowids.update((invoice, rowid) for _, invoice, _, _, _, rowid in rows)
        for case, invoice, open_minor, due, currency, _ in rows:
            day = days.get(due)
            if day is None:
                day = days[due] = _date(due)
            info = infos[case]
            info.invoices.append((invoice, open_minor, day))
            info.currency = currency
        return infos

    def case_by_ref(self, ref: str) -> Key | None:
        rows = self._rows(
            f"SELECT {self._id('id')} FROM cases WHERE creditor_id = ? AND ref = ?", [ref]
        )
        return self._key(rows[0][0]) if rows else None

    def case_key(self, case_text: str) -> Key:
        return uuid.UUID(case_text).bytes if self.sqlite else case_text

    def currency(self) -> str | None:
        """The creditor's collection currency: that of its invoices."""
        rows = self._rows("SELECT currency FROM invoices WHERE creditor_id = ? LIMIT 1")
        return str(rows[0][0]) if rows else None

    # -- reversals ------------------------------------------------------------------------

    def reversible(self, account: str, e2e: Sequence[str]) -> dict[str, tuple[Key, Key]]:
        """End-to-end id → (statement line, case) of matched credits of this account."""
        listed = self._values("pay_refs", "TEXT", e2e)
        if listed is None:
            return {}
        values, params = listed
        return {
            e: (self._key(t), self._key(c))
            for e, t, c in self._rows(
                f"SELECT t.end_to_end_id, {self._id('t.id')}, {self._id('t.case_id')} "
                f"FROM bank_transactions t WHERE t.creditor_id = ? AND t.end_to_end_id IN {values} "
                "AND t.account_iban = ? AND t.status = 'matched' AND t.amount_minor > 0",
                [*params, account],
            )
        }

    def matched_by_structured(
        self, account: str, structured: str, amount_minor: int
    ) -> tuple[Key, Key] | None:
        """The latest matched credit of this account with this reference and amount."""
        rows = self._rows(
            f"SELECT {self._id('id')}, {self._id('case_id')} FROM bank_transactions "
            "WHERE creditor_id = ? AND account_iban = ? AND structured = ? AND amount_minor = ? "
            "AND status = 'matched' ORDER BY booked_on DESC LIMIT 1",
            [account, structured, amount_minor],
        )
        return (self._key(rows[0][0]), self._key(rows[0][1])) if rows else None

    def reverse_payments(self, case: Key, transaction: Key, at: dt.datetime) -> list[Key]:
        """Mark the payments booked from a statement line reversed; returns their invoices.
        (Found through the case's index: reversals are rare, no index of their own.)"""
        m = self.mark
        invoices = [
            self._key(r[0])
            for r in self._rows(
                f"SELECT {self._id('invoice_id')} FROM payments WHERE creditor_id = ? "
                "AND case_id = ? AND transaction_id = ? AND reversed_at IS NULL "
                "AND invoice_id IS NOT NULL",
                [case, transaction],
            )
        ]
        self.connection.exec_driver_sql(
            f"UPDATE payments SET reversed_at = {m} WHERE creditor_id = {m} AND case_id = {m} "
            f"AND transaction_id = {m} AND reversed_at IS NULL",
            (self.writer.timestamp(at), self.writer.creditor_key, case, transaction),
        )
        self.connection.exec_driver_sql(
            f"UPDATE bank_transactions SET status = 'reversal', reason = {m} "
            f"WHERE creditor_id = {m} AND id = {m}",
            ("reversed by the bank", self.writer.creditor_key, transaction),
        )
        return invoices

    def reopen(self, case: Key) -> None:
        """A case whose payment was reversed owes again: its finished journey starts over
        (the law's facts — reminders, fees — come from what was sent, so nothing resets)."""
        m = self.mark
        self.connection.exec_driver_sql(
            f"DELETE FROM enrolments WHERE creditor_id = {m} AND case_id = {m} "
            "AND exit_reason = 'paid'",
            (self.writer.creditor_key, case),
        )
        self.connection.exec_driver_sql(
            f"UPDATE cases SET status = 'open', closed_at = NULL WHERE creditor_id = {m} "
            f"AND id = {m}",
            (self.writer.creditor_key, case),
        )

    # -- writes ---------------------------------------------------------------------------

    def statement_exists(self, account: str, ref: str, digest: str) -> bool:
        return bool(
            self._rows(
                "SELECT 1 FROM statements WHERE creditor_id = ? AND account_iban = ? "
                "AND statement_ref = ? AND digest = ?",
                [account, ref, digest],
            )
        )

    def add_statement(self, values: dict[str, Any]) -> Key:
        w = self.writer
        key = w.new_id()
        row = {"id": key, "creditor_id": w.creditor_key, **values}
        row["report"] = json.dumps(row["report"])
        row["imported_at"] = w.timestamp(row["imported_at"])
        row["created_on"] = self.date(row["created_on"])
        w.insert("statements", tuple(row), [tuple(row.values())])
        return key

    def set_statement_report(self, statement: Key, report: dict[str, Any]) -> None:
        m = self.mark
        self.connection.exec_driver_sql(
            f"UPDATE statements SET report = {m} WHERE creditor_id = {m} AND id = {m}",
            (json.dumps(report), self.writer.creditor_key, statement),
        )

    TRANSACTION_COLUMNS: Final = (
        "id", "statement_id", "account_iban", "bank_ref", "booked_on",
        "value_on", "amount_minor", "currency", "reversal", "structured", "text",
        "counterparty_name", "counterparty_iban", "end_to_end_id", "bank_code", "status",
        "method", "score", "case_id", "reason", "matched_at", "matched_by",
    )  # fmt: skip

    def _insert(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        """INSERT rows of `columns` after this creditor's id."""
        self.writer.insert(
            table, ("creditor_id", *columns), rows, leading=(self.writer.creditor_key,)
        )

    def add_transactions(self, rows: Sequence[Row]) -> None:
        """Statement lines, in TRANSACTION_COLUMNS order without the creditor."""
        self._insert("bank_transactions", self.TRANSACTION_COLUMNS, rows)

    PAYMENT_COLUMNS: Final = (
        "id", "case_id", "invoice_id", "ref", "amount_minor", "currency",
        "paid_at", "source", "source_digest", "created_at", "transaction_id",
    )  # fmt: skip

    def add_payments(self, rows: Sequence[Row]) -> None:
        """Payments, in PAYMENT_COLUMNS order without the creditor.

        Written in the order of their cases: the indexes and the checks of the foreign
        keys then walk the B-trees in order, not at random (a third faster for a
        statement). Ids keep the order they were made in."""
        self._insert("payments", self.PAYMENT_COLUMNS, sorted(rows, key=_second))

    def add_paid(self, amounts: dict[Key, int]) -> None:
        """Add to `paid_minor` of these invoices, in the order of the table (or of their
        ids, which walks its index in order): on SQLite, those read in this transaction
        by their rowid, straight from the table."""
        if not amounts:
            return
        m, creditor, rowids = self.mark, self.writer.creditor_key, self._rowids
        by_rowid, by_id = [], []
        for invoice, amount in amounts.items():
            rowid = rowids.get(invoice)
            if rowid is None:
                by_id.append((invoice, amount))
            else:
                by_rowid.append((rowid, amount))
        if by_rowid:
            by_rowid.sort()
            self.connection.exec_driver_sql(
                "UPDATE invoices SET paid_minor = paid_minor + ? WHERE rowid = ? "
                f"AND creditor_id = {sqlite_literal(creditor)}",
                [(amount, rowid) for rowid, amount in by_rowid],
            )
        if by_id:
            by_id.sort()
            self.connection.exec_driver_sql(
                f"UPDATE invoices SET paid_minor = paid_minor + {m} WHERE id = {m} "
                f"AND creditor_id = {m}",
                [(amount, invoice, creditor) for invoice, amount in by_id],
            )

    def add_events(
        self, rows: Sequence[tuple[Key, Key | None, str, dt.datetime, dict[str, Any] | str]]
    ) -> None:
        """(case, debtor, type, occurred at, payload: a dict, or its JSON text).

        Ids follow the order of `rows`; the rows are written in the order of their cases
        (see `add_payments`)."""
        w, new_id = self.writer, self.writer.new_id
        stamps: dict[dt.datetime, Any] = {}
        out = []
        for case, debtor, kind, at, payload in rows:
            stamp = stamps.get(at)
            if stamp is None:
                stamp = stamps[at] = w.timestamp(at)
            text = payload if type(payload) is str else json.dumps(payload)
            out.append((new_id(), case, debtor, kind, stamp, stamp, text))
        if len(out) > 1:
            out.sort(key=_case_of_event)
        self._insert(
            "events",
            ("id", "case_id", "debtor_id", "type", "occurred_at", "recorded_at", "payload"),
            out,
        )

    def audit(
        self, actor: str, action: str, subject: str, details: dict[str, Any], at: dt.datetime
    ) -> None:
        """Evidence of who did what (no personal data in `details`)."""
        self.writer.audit([(actor, action, subject, details)], at)

    def payment_exists(self, ref: str) -> bool:
        return bool(self._rows("SELECT 1 FROM payments WHERE creditor_id = ? AND ref = ?", [ref]))

    # -- arrangements -----------------------------------------------------------------------

    def cancel_pending_promises(self, case: Key, at: dt.datetime) -> None:
        m = self.mark
        self.connection.exec_driver_sql(
            f"UPDATE promises SET state = 'cancelled', settled_at = {m} "
            f"WHERE creditor_id = {m} AND case_id = {m} AND state = 'pending'",
            (self.writer.timestamp(at), self.writer.creditor_key, case),
        )

    def pending_promises(self) -> list[tuple[Key, Key, Key, int, dt.date, int]]:
        """(promise, case, debtor, amount, date, paid to the case since it was made).

        From the promises (SQLite's `CROSS JOIN` keeps that order): without statistics
        its planner would probe them from each of the creditor's million cases."""
        join = " CROSS JOIN " if self.sqlite else " JOIN "
        rows = self._rows(
            f"SELECT {self._id('p.id')}, {self._id('p.case_id')}, {self._id('c.debtor_id')}, "
            "p.amount_minor, p.due_on, COALESCE(SUM(pay.amount_minor), 0) FROM promises p"
            f"{join}cases c ON c.id = p.case_id AND c.creditor_id = p.creditor_id "
            "LEFT JOIN payments pay ON pay.case_id = p.case_id "
            "AND pay.creditor_id = p.creditor_id AND pay.reversed_at IS NULL "
            "AND pay.created_at >= p.made_at "
            "WHERE p.creditor_id = ? AND p.state = 'pending' "
            "GROUP BY p.id, p.case_id, c.debtor_id, p.amount_minor, p.due_on"
        )
        return [
            (self._key(p), self._key(c), self._key(d), int(a), _date(due), int(paid))
            for p, c, d, a, due, paid in rows
        ]

    def settle_promises(self, updates: Sequence[tuple[str, Key]], at: dt.datetime) -> None:
        if updates:
            m, stamp, creditor = self.mark, self.writer.timestamp(at), self.writer.creditor_key
            self.connection.exec_driver_sql(
                f"UPDATE promises SET state = {m}, settled_at = {m} "
                f"WHERE id = {m} AND creditor_id = {m}",
                [(state, stamp, promise, creditor) for state, promise in updates],
            )

    def running_plan(self, case: Key) -> bool:
        return bool(
            self._rows(
                "SELECT 1 FROM payment_plans WHERE creditor_id = ? AND case_id = ? "
                "AND state IN ('active', 'missed')",
                [case],
            )
        )

    def add_plan(
        self,
        case: Key,
        total_minor: int,
        currency: str,
        schedule: Sequence[Any],
        source: str,
        at: dt.datetime,
    ) -> Key:
        """A plan and its instalments (objects with number, due_on, amount_minor)."""
        w = self.writer
        plan = w.new_id()
        w.insert(
            "payment_plans",
            ("id", "creditor_id", "case_id", "total_minor", "currency", "created_at", "source"),
            [(plan, w.creditor_key, case, total_minor, currency, w.timestamp(at), source)],
        )
        w.insert(
            "plan_instalments",
            ("plan_id", "number", "creditor_id", "due_on", "amount_minor"),
            [
                (plan, i.number, w.creditor_key, self.date(i.due_on), i.amount_minor)
                for i in schedule
            ],
        )
        return plan

    def running_plans(self) -> list[tuple[Key, Key, Key, str, int, list[Instalment], int]]:
        """(plan, case, debtor, state, paid last seen, instalments, paid to the case since
        the plan began) of the active and missed plans."""
        rows = self._rows(
            f"SELECT {self._id('pl.id')}, {self._id('pl.case_id')}, {self._id('c.debtor_id')}, "
            "pl.state, pl.paid_minor, COALESCE(SUM(pay.amount_minor), 0) FROM payment_plans pl "
            "JOIN cases c ON c.id = pl.case_id AND c.creditor_id = pl.creditor_id "
            "LEFT JOIN payments pay ON pay.case_id = pl.case_id "
            "AND pay.creditor_id = pl.creditor_id AND pay.reversed_at IS NULL "
            "AND pay.created_at >= pl.created_at "
            "WHERE pl.creditor_id = ? AND pl.state IN ('active', 'missed') "
            "GROUP BY pl.id, pl.case_id, c.debtor_id, pl.state, pl.paid_minor"
        )
        if not rows:
            return []
        schedules: dict[Key, list[Instalment]] = {}
        for plan, number, due, amount in self._rows(
            f"SELECT {self._id('i.plan_id')}, i.number, i.due_on, i.amount_minor "
            "FROM plan_instalments i JOIN payment_plans pl ON pl.id = i.plan_id "
            "WHERE pl.creditor_id = ? AND pl.state IN ('active', 'missed') "
            "ORDER BY i.plan_id, i.number"
        ):
            schedules.setdefault(self._key(plan), []).append(
                Instalment(int(number), _date(due), int(amount))
            )
        return [
            (self._key(p), self._key(c), self._key(d), state, int(seen),
             schedules.get(self._key(p), []), int(paid))
            for p, c, d, state, seen, paid in rows
        ]  # fmt: skip

    def update_plans(self, updates: Sequence[tuple[str, int, Key]], at: dt.datetime) -> None:
        if updates:
            m, stamp, creditor = self.mark, self.writer.timestamp(at), self.writer.creditor_key
            self.connection.exec_driver_sql(
                f"UPDATE payment_plans SET state = {m}, paid_minor = {m}, "
                f"settled_at = CASE WHEN {m} IN ('completed', 'broken') THEN {m} ELSE NULL END "
                f"WHERE id = {m} AND creditor_id = {m}",
                [(s, paid, s, stamp, plan, creditor) for s, paid, plan in updates],
            )

    def plan_of(self, case: Key) -> tuple[Key, str, int, str, list[Instalment]] | None:
        """The case's latest plan: (id, state, total, currency, instalments)."""
        rows = self._rows(
            f"SELECT {self._id('id')}, state, total_minor, currency FROM payment_plans "
            "WHERE creditor_id = ? AND case_id = ? ORDER BY created_at DESC LIMIT 1",
            [case],
        )
        if not rows:
            return None
        plan, state, total, currency = rows[0]
        instalments = [
            Instalment(int(n), _date(due), int(amount))
            for n, due, amount in self._rows(
                "SELECT number, due_on, amount_minor FROM plan_instalments "
                "WHERE creditor_id = ? AND plan_id = ? ORDER BY number",
                [self._key(plan)],
            )
        ]
        return self._key(plan), state, int(total), currency, instalments

    def add_dispute(
        self, case: Key, reason: str, evidence: str | None, source: str, at: dt.datetime
    ) -> Key:
        w = self.writer
        dispute = w.new_id()
        w.insert(
            "disputes",
            ("id", "creditor_id", "case_id", "reason", "evidence", "opened_at", "opened_by"),
            [(dispute, w.creditor_key, case, reason, evidence, w.timestamp(at), source)],
        )
        return dispute

    def open_dispute_of(self, case: Key) -> Key | None:
        rows = self._rows(
            f"SELECT {self._id('id')} FROM disputes WHERE creditor_id = ? AND case_id = ? "
            "AND state = 'open'",
            [case],
        )
        return self._key(rows[0][0]) if rows else None

    def resolve_dispute(
        self,
        dispute: Key,
        outcome: str,
        actor: str,
        note: str | None,
        adjustment_minor: int | None,
        at: dt.datetime,
    ) -> None:
        m = self.mark
        self.connection.exec_driver_sql(
            f"UPDATE disputes SET state = {m}, resolved_at = {m}, resolved_by = {m}, "
            f"resolution = {m}, adjustment_minor = {m} WHERE creditor_id = {m} AND id = {m}",
            (outcome, self.writer.timestamp(at), actor, note, adjustment_minor,
             self.writer.creditor_key, dispute),
        )  # fmt: skip

    def close_case(self, case: Key, reason: str, at: dt.datetime) -> None:
        """Close a case and end its journey with `reason`."""
        m, stamp, creditor = self.mark, self.writer.timestamp(at), self.writer.creditor_key
        self.connection.exec_driver_sql(
            f"UPDATE cases SET status = 'closed', closed_at = {m} "
            f"WHERE creditor_id = {m} AND id = {m}",
            (stamp, creditor, case),
        )
        self.connection.exec_driver_sql(
            f"UPDATE enrolments SET done = {'1' if self.sqlite else 'true'}, exit_reason = {m}, "
            f"wake_at = NULL WHERE creditor_id = {m} AND case_id = {m}",
            (reason, creditor, case),
        )

    # -- the unmatched queue --------------------------------------------------------------

    def transactions(
        self, *, status: str | None = None, ref: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Statement lines (newest first) with their case's ref when matched."""
        where, params = [], []
        if status is not None:
            where.append("t.status = ?")
            params.append(status)
        if ref is not None:
            where.append("t.bank_ref = ?")
            params.append(ref)
        clause = "".join(f" AND {w}" for w in where)
        rows = self._rows(
            f"SELECT {self._id('t.id')}, t.bank_ref, t.account_iban, t.booked_on, t.amount_minor, "
            "t.currency, t.structured, t.text, t.counterparty_name, t.counterparty_iban, "
            "t.status, t.method, t.score, t.reason, c.ref FROM bank_transactions t "
            "LEFT JOIN cases c ON c.id = t.case_id AND c.creditor_id = t.creditor_id "
            f"WHERE t.creditor_id = ?{clause} "
            f"ORDER BY t.booked_on DESC, t.bank_ref LIMIT {int(limit)}",
            params,
        )
        names = (
            "id", "ref", "account", "booked_on", "amount_minor", "currency", "structured",
            "text", "name", "iban", "status", "method", "score", "reason", "case_ref",
        )  # fmt: skip
        out = []
        for r in rows:
            item = dict(zip(names, r, strict=True))
            item["id"] = self._key(item["id"])
            item["booked_on"] = _date(item["booked_on"])
            out.append(item)
        return out

    def settle_transaction(
        self, transaction: Key, case: Key, method: str, actor: str, at: dt.datetime
    ) -> None:
        m = self.mark
        self.connection.exec_driver_sql(
            f"UPDATE bank_transactions SET status = 'matched', method = {m}, case_id = {m}, "
            f"reason = NULL, matched_at = {m}, matched_by = {m} "
            f"WHERE creditor_id = {m} AND id = {m}",
            (method, case, self.writer.timestamp(at), actor, self.writer.creditor_key, transaction),
        )
