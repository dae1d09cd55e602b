"""What messages say, read in bulk for a dispatch batch: each case's debtor, its open
invoices, the fees booked on it and the structured communication that pays it all.

A case with several open invoices gets its own structured communication the first time a
message needs one (from the creditor's counter, so it is unique among the creditor's
invoices and cases): one transfer then pays everything and is matched to the case.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from parcours.domain.structured_communication import structured_communication_digits
from parcours.store.bulk import Key
from parcours.store.journeys import JourneyStore

__all__ = ["CaseMessageFacts", "MessageStore", "OpenInvoice"]


@dataclass(frozen=True, slots=True)
class OpenInvoice:
    ref: str
    issued_on: dt.date
    due_on: dt.date
    amount_minor: int
    open_minor: int
    currency: str
    structured_communication: str


@dataclass(slots=True)
class CaseMessageFacts:
    case_ref: str
    case_text: str
    structured_communication: str | None  # the case's own, for several invoices
    debtor_ref: str
    name: str
    language: str
    email: str | None  # None when absent or opted out
    mobile: str | None
    street: str | None
    postcode: str | None
    city: str | None
    country: str | None
    timezone: str | None
    persona: str | None
    invoices: list[OpenInvoice] = field(default_factory=list)
    fees: dict[str, int] = field(default_factory=dict)  # fee kind → minor units booked

    @property
    def paying_communication(self) -> str | None:
        """The twelve digits that pay the whole balance: the only open invoice's, else the
        case's."""
        if len(self.invoices) == 1:
            return self.invoices[0].structured_communication
        return self.structured_communication


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


class MessageStore(JourneyStore):
    """Message facts of a creditor's cases, inside the caller's transaction."""

    def message_facts(self, cases: Sequence[Key]) -> dict[Key, CaseMessageFacts]:
        self._stage("tick_cases", cases)
        case = self._id("t.id")
        out: dict[Key, CaseMessageFacts] = {}
        for row in self._rows(
            f"SELECT {case}, c.ref, c.structured_communication, d.ref, d.name, d.language, "
            "CASE WHEN d.email_consent <> 'opted_out' THEN d.email END, "
            "CASE WHEN d.phone_consent <> 'opted_out' THEN d.phone END, "
            "CASE WHEN d.postal_consent <> 'opted_out' THEN d.street END, "
            "d.postcode, d.city, d.country, d.timezone, (SELECT e.persona FROM enrolments e "
            "WHERE e.case_id = c.id AND e.creditor_id = c.creditor_id) "
            f"FROM tick_cases t{self._then}cases c{self._then}debtors d "
            "WHERE c.id = t.id AND c.creditor_id = ? AND d.id = c.debtor_id "
            "AND d.creditor_id = c.creditor_id"
        ):
            key = self._key(row[0])
            out[key] = CaseMessageFacts(row[1], self.text(row[0]), *row[2:])
        for key, ref, issued, due, amount, paid, currency, digits in self._rows(
            f"SELECT {case}, i.ref, i.issue_date, i.due_date, i.amount_minor, i.paid_minor, "
            "i.currency, i.structured_communication FROM tick_cases t "
            f"{self._then}invoices i WHERE i.case_id = t.id AND i.creditor_id = ? "
            "AND i.paid_minor < i.amount_minor ORDER BY i.due_date, i.ref"
        ):
            out[self._key(key)].invoices.append(
                OpenInvoice(
                    ref, _date(issued), _date(due), int(amount), int(amount) - int(paid),
                    currency, digits,
                )
            )  # fmt: skip
        for key, kind, amount in self._rows(
            f"SELECT {case}, o.template, SUM(o.amount_minor) FROM tick_cases t "
            f"{self._then}cases c{self._then}outbox o{self._by_debtor} "
            "WHERE c.id = t.id AND c.creditor_id = ? AND o.creditor_id = c.creditor_id "
            "AND o.debtor_id = c.debtor_id AND o.case_id = c.id AND o.kind = 'fee' "
            "AND o.status = 'sent' GROUP BY t.id, o.template"
        ):
            if amount:
                out[self._key(key)].fees[kind] = int(amount)
        self._give_case_communications(out)
        return out

    def _give_case_communications(self, facts: dict[Key, CaseMessageFacts]) -> None:
        """A structured communication for each case with several open invoices and none."""
        needing = [
            k for k, f in facts.items() if len(f.invoices) > 1 and not f.structured_communication
        ]
        if not needing:
            return
        first = self.writer.reserve_ogm_bases(len(needing))
        rows = []
        for offset, key in enumerate(needing):
            digits = structured_communication_digits(first + offset)
            facts[key].structured_communication = digits
            rows.append((digits, key, self.writer.creditor_key))
        m = self.mark
        self.connection.exec_driver_sql(
            f"UPDATE cases SET structured_communication = {m} WHERE id = {m} AND creditor_id = {m}",
            rows,
        )

    # -- dispatch claims and results -------------------------------------------------------

    _CLAIMED = (
        "o.attempt_id, {case}, {debtor}, o.channel, o.template, o.journey, o.node_id, o.step, "
        "o.reminder, o.attempts"
    )

    def _claimed_rows(
        self, where: str, params: Sequence[Any], index: str | None = None
    ) -> list[tuple[Any, ...]]:
        """Rows of the creditor's outbox matching `where`; SQLite is told to use `index`
        (without statistics it may take the creditor's whole outbox instead)."""
        from parcours.channels.content import Channel

        columns = self._CLAIMED.format(case=self._id("o.case_id"), debtor=self._id("o.debtor_id"))
        via = f" INDEXED BY {index}" if index and self.sqlite else ""
        rows = self._rows(
            f"SELECT {self._id('o.id')}, {columns} FROM outbox o{via} "
            f"WHERE o.creditor_id = ? AND {where}",
            params,
        )
        return [
            (
                self._key(r[0]),
                r[1],
                self._key(r[2]),
                self._key(r[3]),
                Channel(r[4]),
                r[5],
                r[6],
                r[7],
                int(r[8]),
                bool(r[9]),
                int(r[10]),
            )
            for r in rows
        ]

    def claim(
        self, token: str, now: dt.datetime, limit: int, lease_end: dt.datetime
    ) -> list[tuple[Any, ...]]:
        """Take up to `limit` due messages under `token` until `lease_end`: queued or
        delayed ones whose time has come, and claims whose lease expired (their holder
        died). Rows another dispatcher holds are skipped (PostgreSQL) or waited for
        (SQLite's single writer), never taken twice."""
        m = self.mark
        lock = "" if self.sqlite else " FOR UPDATE SKIP LOCKED"
        self.connection.exec_driver_sql(
            f"UPDATE outbox SET claim = {m}, not_before = {m} WHERE id IN ("
            f"SELECT id FROM outbox WHERE creditor_id = {m} AND status IN ('queued', 'delayed') "
            f"AND kind = 'send' AND not_before <= {m} "
            f"ORDER BY not_before LIMIT {int(limit)}{lock})",
            (
                token,
                self.writer.timestamp(lease_end),
                self.writer.creditor_key,
                self.writer.timestamp(now),
            ),
        )
        return self._claimed_rows("o.claim = ?", [token])

    def _settle(self, outbox_id: Key, token: str | None, sets: str, params: Sequence[Any]) -> None:
        m = self.mark
        guard = f" AND claim = {m}" if token is not None else ""
        self.connection.exec_driver_sql(
            f"UPDATE outbox SET {sets}, claim = NULL WHERE id = {m} AND creditor_id = {m}{guard}",
            (*params, outbox_id, self.writer.creditor_key, *([token] if token else [])),
        )

    def release(
        self,
        outbox_id: Key,
        token: str,
        status: str,
        reason: str | None,
        not_before: dt.datetime | None,
    ) -> None:
        """Give a claimed row back: delayed, skipped, held for review, or queued again."""
        m = self.mark
        w = self.writer
        if not_before is None:
            self._settle(outbox_id, token, f"status = {m}, reason = {m}", (status, reason))
        else:
            self._settle(
                outbox_id, token, f"status = {m}, reason = {m}, not_before = {m}",
                (status, reason, w.timestamp(not_before)),
            )  # fmt: skip

    def mark_sent(
        self, token: str, sent: Sequence[tuple[Key, dt.datetime, str | None, int, str | None]]
    ) -> None:
        """Record claimed rows as sent: (outbox id, at, provider ref, units, reason) each,
        in one statement the driver runs per row (a batch of a dispatch records at once)."""
        if not sent:
            return
        m, w = self.mark, self.writer
        self.connection.exec_driver_sql(
            f"UPDATE outbox SET status = 'sent', sent_at = {m}, provider_ref = {m}, "
            f"units = {m}, reason = {m}, attempts = attempts + 1, claim = NULL "
            f"WHERE id = {m} AND creditor_id = {m} AND claim = {m}",
            [
                (w.timestamp(at), ref, units, reason, outbox_id, w.creditor_key, token)
                for outbox_id, at, ref, units, reason in sent
            ],
        )

    def retry_later(self, outbox_id: Key, token: str, at: dt.datetime, reason: str | None) -> None:
        m = self.mark
        self._settle(
            outbox_id, token,
            f"status = 'delayed', not_before = {m}, reason = {m}, attempts = attempts + 1",
            (self.writer.timestamp(at), reason),
        )  # fmt: skip

    def mark_failed(self, outbox_id: Key, token: str | None, reason: str) -> None:
        m = self.mark
        self._settle(
            outbox_id, token, f"status = 'failed', reason = {m}, attempts = attempts + 1", (reason,)
        )

    def step_channels(
        self, case: Key, debtor: Key, journey: str, node_id: str, step: int
    ) -> dict[str, str]:
        """Channel → status of the messages of one journey step of a case."""
        return {
            channel: status
            for channel, status in self._rows(
                f"SELECT channel, status FROM outbox{self._by_debtor} WHERE creditor_id = ? "
                "AND debtor_id = ? AND case_id = ? AND journey = ? AND node_id = ? AND step = ? "
                "AND kind = 'send'",
                [debtor, case, journey, node_id, step],
            )
            if channel is not None
        }

    def find_attempt(
        self, attempt_id: str | None, provider_ref: str | None
    ) -> tuple[Any, ...] | None:
        """The outbox row a carrier's report is about, by attempt id or carrier reference."""
        if attempt_id:
            found = self._claimed_rows("o.attempt_id = ?", [attempt_id])
        elif provider_ref:
            found = self._claimed_rows(
                "o.provider_ref = ?", [provider_ref], "ix_outbox_provider_ref"
            )
        else:
            return None
        return found[0] if found else None

    def add_event(
        self, case: Key, debtor: Key, kind: str, at: dt.datetime, payload: dict[str, Any]
    ) -> None:
        w = self.writer
        w.insert(
            "events",
            (
                "id",
                "creditor_id",
                "case_id",
                "debtor_id",
                "type",
                "occurred_at",
                "recorded_at",
                "payload",
            ),
            [
                (
                    w.new_id(),
                    w.creditor_key,
                    case,
                    debtor,
                    kind,
                    w.timestamp(at),
                    w.timestamp(at),
                    json.dumps(payload),
                )
            ],
        )

    def opt_out(self, debtor: Key, column: str, at: dt.datetime) -> None:
        """The debtor opted out of a channel (STOP, unsubscribe link): never again there."""
        m = self.mark
        self.connection.exec_driver_sql(
            f"UPDATE debtors SET {column} = 'opted_out', updated_at = {m} "
            f"WHERE id = {m} AND creditor_id = {m}",
            (self.writer.timestamp(at), debtor, self.writer.creditor_key),
        )

    # -- agent tasks -----------------------------------------------------------------------

    def open_tasks(self, now: dt.datetime, limit: int, offset: int = 0) -> list[tuple[Any, ...]]:
        """Agent tasks whose time has come, oldest first: (attempt id, case ref, channel,
        script, journey, created_at, case, debtor) — before the gate looks at them again
        (`runtime.tasks.due_tasks`)."""
        return [
            (*row[:6], self._key(row[6]), self._key(row[7]))
            for row in self._rows(
                "SELECT o.attempt_id, c.ref, o.channel, o.template, o.journey, o.created_at, "
                "o.case_id, o.debtor_id FROM outbox o "
                "JOIN cases c ON c.id = o.case_id AND c.creditor_id = o.creditor_id "
                "WHERE o.creditor_id = ? AND o.kind = 'task' "
                "AND o.status IN ('queued', 'delayed') AND o.not_before <= ? "
                f"ORDER BY o.not_before, o.attempt_id LIMIT {int(limit)} OFFSET {int(offset)}",
                [self.writer.timestamp(now)],
            )
        ]

    def task(self, attempt_id: str) -> tuple[Any, ...] | None:
        """(outbox id, case, debtor, channel, script, status) of one agent task."""
        rows = self._rows(
            f"SELECT {self._id('o.id')}, {self._id('o.case_id')}, {self._id('o.debtor_id')}, "
            "o.channel, o.template, o.status FROM outbox o "
            "WHERE o.creditor_id = ? AND o.kind = 'task' AND o.attempt_id = ?",
            [attempt_id],
        )
        if not rows:
            return None
        outbox_id, case, debtor, channel, script, status = rows[0]
        return self._key(outbox_id), self._key(case), self._key(debtor), channel, script, status

    def close_task(self, outbox_id: Key, at: dt.datetime, reason: str) -> None:
        self._settle(
            outbox_id, None, f"status = 'sent', sent_at = {self.mark}, reason = {self.mark}",
            (self.writer.timestamp(at), reason),
        )  # fmt: skip

    def add_promise(
        self,
        case: Key,
        amount_minor: int,
        currency: str,
        due_on: dt.date,
        at: dt.datetime,
        *,
        source: str = "agent",
    ) -> None:
        w = self.writer
        w.insert(
            "promises",
            (
                "id", "creditor_id", "case_id", "amount_minor", "currency", "due_on", "made_at",
                "source",
            ),
            [
                (
                    w.new_id(), w.creditor_key, case, amount_minor, currency,
                    due_on.isoformat() if self.sqlite else due_on, w.timestamp(at), source,
                )
            ],
        )  # fmt: skip

    # -- inbound SMS -----------------------------------------------------------------------

    def last_sms_to(self, number: str) -> str | None:
        """The attempt id of the latest SMS sent to `number` (a reply answers it)."""
        rows = self._rows(
            "SELECT o.attempt_id FROM outbox o JOIN debtors d "
            "ON d.id = o.debtor_id AND d.creditor_id = o.creditor_id "
            "WHERE o.creditor_id = ? AND d.phone = ? AND o.channel = 'sms' AND o.status = 'sent' "
            "ORDER BY o.sent_at DESC LIMIT 1",
            [number],
        )
        return str(rows[0][0]) if rows else None

    def opt_out_number(self, number: str, at: dt.datetime) -> int:
        """Every debtor of the creditor with this mobile number: no more SMS or calls."""
        m = self.mark
        result = self.connection.exec_driver_sql(
            f"UPDATE debtors SET phone_consent = 'opted_out', updated_at = {m} "
            f"WHERE creditor_id = {m} AND phone = {m}",
            (self.writer.timestamp(at), self.writer.creditor_key, number),
        )
        return int(result.rowcount)

    def case_debtor(self, case_text: str) -> tuple[Key, Key] | None:
        """(case, debtor) in storage form for a case id from a link, in this tenant only."""
        case = uuid.UUID(case_text).bytes if self.sqlite else case_text
        rows = self._rows(
            f"SELECT {self._id('c.debtor_id')} FROM cases c WHERE c.creditor_id = ? AND c.id = ?",
            [case],
        )
        return (case, self._key(rows[0][0])) if rows else None

    def letters_sent(self, start: dt.datetime, end: dt.datetime) -> list[tuple[Any, ...]]:
        """Letters sent in [start, end): (attempt id, case ref, name, postcode, city,
        country), in the order they went."""
        return self._rows(
            "SELECT o.attempt_id, c.ref, d.name, COALESCE(d.postcode, ''), "
            "COALESCE(d.city, ''), COALESCE(d.country, '') FROM outbox o "
            "JOIN cases c ON c.id = o.case_id AND c.creditor_id = o.creditor_id "
            "JOIN debtors d ON d.id = o.debtor_id AND d.creditor_id = o.creditor_id "
            "WHERE o.creditor_id = ? AND o.channel = 'letter' AND o.status = 'sent' "
            "AND o.sent_at >= ? AND o.sent_at < ? ORDER BY o.sent_at, o.attempt_id",
            [self.writer.timestamp(start), self.writer.timestamp(end)],
        )
