"""Booking money: bank statements reconciled line by line, PSP and API payments, manual
matches — each payment a journey event at once, in one transaction per statement file.

Reconciliation order (DOMAIN.md): the structured communication given as such, then one
found in the free text, then an invoice or case reference in the text, then a scored
match on amount, IBAN and name; what is left waits in the unmatched queue for a person.
A line already imported (same account and bank reference) is never booked twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any, Final, cast

from rapidfuzz import fuzz
from sqlalchemy import Connection, Engine

from parcours.domain.names import name_key, normalise_name
from parcours.payments.reconcile import (
    Candidate,
    allocate,
    choose,
    classify_line,
    ogms_in_text,
    refs_in_text,
)
from parcours.payments.statements import Statement, StatementError, StatementLine
from parcours.runtime.batch import Stopwatch, cycle_collection_paused
from parcours.store.bulk import Key
from parcours.store.db import checkpoint_in_background
from parcours.store.payments import CaseInfo, PaymentStore

__all__ = [
    "MatchError",
    "PaymentBooker",
    "StatementReport",
    "book_payment",
    "import_statement",
    "match_line",
    "read_statements",
]

UTC: Final = dt.UTC
# Cases with the line's amount whose debtor's name is closest to the payer's: scored.
FUZZY_SHORTLIST: Final = 3


class MatchError(ValueError):
    """A manual match or a payment that cannot be booked as asked."""


def read_statements(data: bytes) -> list[Statement]:
    """camt.053 (XML) or CODA (fixed 128-character records), told apart by content."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:200]
    if head.startswith(b"<"):
        from parcours.payments.camt import parse_camt

        return parse_camt(data)
    if head[:1] == b"0":
        from parcours.payments.coda import parse_coda

        return parse_coda(data)
    raise StatementError(
        "neither a camt.053 XML document nor a CODA file (which starts with a record 0)"
    )


@dataclass
class StatementReport:
    """What importing one statement did: counts and amounts, never names."""

    format: str
    account: str
    statement: str
    lines: int = 0
    already_imported: int = 0
    booked: Counter[str] = field(default_factory=Counter)  # by method
    booked_minor: int = 0
    credit_minor: int = 0  # overpayments kept as a credit on the case
    unmatched: int = 0
    unmatched_minor: int = 0
    ignored: Counter[str] = field(default_factory=Counter)  # by reason
    reversals: int = 0
    cases_paid: int = 0
    # Wall seconds per phase (parse, match, fuzzy, book, ..., commit): for the benchmark,
    # never stored (the stored report stays the same for the same file).
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "account": self.account,
            "statement": self.statement,
            "lines": self.lines,
            "already_imported": self.already_imported,
            "booked": sum(self.booked.values()),
            "booked_by": dict(self.booked),
            "booked_minor": self.booked_minor,
            "credit_minor": self.credit_minor,
            "unmatched": self.unmatched,
            "unmatched_minor": self.unmatched_minor,
            "ignored": dict(self.ignored),
            "reversals": self.reversals,
            "cases_paid": self.cases_paid,
        }


class PaymentBooker:
    """Allocates payments over their cases' open invoices and writes them in bulk.

    Two paths: a payment on one invoice that it does not overpay goes straight to it
    (`book_invoice`, no case read — most bank transfers); anything else is allocated
    over the case's open invoices (`book`), read once, each allocation shrinking them in
    memory so that two payments of one import for one case follow each other. Which
    cases are paid off is asked of the database once, after the writes.
    """

    def __init__(self, store: PaymentStore, now: dt.datetime) -> None:
        self.store = store
        self.now = now
        w = store.writer
        self._created = w.timestamp(now)
        self.payments: list[tuple[Any, ...]] = []
        self.paid: Counter[Key] = Counter()
        self.events: list[tuple[Key, Key | None, str, dt.datetime, dict[str, Any] | str]] = []
        self.touched: dict[Key, Key | None] = {}  # case → debtor
        self._owed_nothing: set[Key] = set()  # cases with nothing open before (a credit)
        self._new_id = w.new_id
        self._stamps: dict[dt.datetime, Any] = {}  # paid_at → storage form
        self._tails: dict[tuple[str, str, str | None], str] = {}  # payloads' JSON tails

    def _payment(
        self, case: Key, invoice: Key | None, ref: str, amount: int, currency: str,
        paid_at: Any, source: str, transaction: Key | None,
    ) -> None:  # fmt: skip
        digest = int.from_bytes(blake2b(ref.encode(), digest_size=7).digest())
        self.payments.append(
            (self._new_id(), case, invoice, ref, amount, currency, paid_at, source,
             digest, self._created, transaction)
        )  # fmt: skip
        if invoice is not None:
            self.paid[invoice] += amount

    def _event(
        self, case: Key, debtor: Key | None, amount: int, currency: str, source: str,
        method: str | None, credit: int,
    ) -> None:  # fmt: skip
        payload: dict[str, Any] | str
        if credit:
            payload = {"amount_minor": amount, "currency": currency}
            payload |= {"source": source, "method": method or source, "credit_minor": credit}
        else:
            # The JSON text json.dumps would write, its constant tail made once per kind.
            tail = self._tails.get((currency, source, method))
            if tail is None:
                tail = json.dumps(
                    {"currency": currency, "source": source, "method": method or source}
                )
                self._tails[(currency, source, method)] = tail = tail[1:]
            payload = f'{{"amount_minor": {int(amount)}, {tail}'
        self.events.append((case, debtor, "payment.booked", self.now, payload))
        self.touched[case] = debtor

    def _stamp(self, paid_at: dt.datetime) -> Any:
        stamp = self._stamps.get(paid_at)
        if stamp is None:
            stamp = self._stamps[paid_at] = self.store.writer.timestamp(paid_at)
        return stamp

    def book_invoice(
        self, case: Key, debtor: Key | None, invoice: Key, amount_minor: int, currency: str,
        paid_at: dt.datetime, ref: str, source: str, *, transaction: Key | None = None,
        method: str | None = None,
    ) -> None:  # fmt: skip
        """Book a payment no larger than what is open on `invoice`."""
        at = self._stamp(paid_at)
        self._payment(case, invoice, ref, amount_minor, currency, at, source, transaction)
        self._event(case, debtor, amount_minor, currency, source, method, 0)

    def book(
        self,
        case: CaseInfo,
        amount_minor: int,
        currency: str,
        paid_at: dt.datetime,
        ref: str,
        source: str,
        *,
        invoice: Key | None = None,
        transaction: Key | None = None,
        method: str | None = None,
    ) -> int:
        """Book `amount_minor` on the case (on `invoice` first when given); returns the
        part kept as a credit (an overpayment)."""
        if case.case not in self.touched and not case.invoices:
            self._owed_nothing.add(case.case)
        invoices = case.invoices
        if invoice is not None:
            invoices = [i for i in invoices if i[0] == invoice] + [
                i for i in invoices if i[0] != invoice
            ]
        if invoices and invoices[0][0] == invoice:
            first = min(amount_minor, invoices[0][1])
            rest, credit = allocate(amount_minor - first, invoices[1:])
            allocations = [(invoices[0][0], first), *rest]
        else:
            allocations, credit = allocate(amount_minor, invoices)
        paid_now = dict(allocations)
        case.invoices = [
            (key, open_minor - paid_now.get(key, 0), due)
            for key, open_minor, due in invoices
            if open_minor - paid_now.get(key, 0) > 0
        ]
        at = self._stamp(paid_at)
        parts = [*allocations, *([(None, credit)] if credit else [])]
        for n, (invoice_key, part) in enumerate(parts):
            part_ref = ref if len(parts) == 1 else f"{ref}#{n + 1}"
            self._payment(case.case, invoice_key, part_ref, part, currency, at, source, transaction)
        self._event(case.case, case.debtor, amount_minor, currency, source, method, credit)
        return credit

    def flush(self, lap: Callable[[str], None] | None = None) -> int:
        """Write what was booked; returns how many cases this made fully paid. `lap`
        times the phases (payments, events)."""
        store = self.store
        store.add_payments(self.payments)
        store.add_paid(dict(self.paid))
        if lap:
            lap("payments")
        paid_off = store.paid_off(c for c in self.touched if c not in self._owed_nothing)
        for case in paid_off:
            self.events.append((case, self.touched[case], "case.paid", self.now, {}))
        store.add_events(self.events)
        if lap:
            lap("events")
        self.payments, self.events, self.paid, self.touched = [], [], Counter(), {}
        self._owed_nothing = set()
        return len(paid_off)


def _paid_at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), UTC)


@dataclass(slots=True)
class _Line:
    line: StatementLine
    key: Key
    case: Key | None = None
    invoice: Key | None = None
    debtor: Key | None = None
    open_minor: int | None = None  # what the matched invoice had open before this import
    method: str | None = None
    score: float | None = None
    status: str = "unmatched"
    reason: str | None = None


# SQLite reads the database file through a memory map of up to this size during an
# import: looking a statement up touches some 100,000 pages of invoices at random, each
# otherwise a read() call and a copy (a third of the time of the lookups).
MAPPED_BYTES: Final = 1 << 30


@contextmanager
def _file_mapped(connection: Connection) -> Iterator[None]:
    """On SQLite, memory-map the database file while the block runs (outside any
    transaction), then restore the connection's own setting."""
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    assert raw is not None
    (before,) = raw.execute("PRAGMA mmap_size").fetchone()
    raw.execute(f"PRAGMA mmap_size={MAPPED_BYTES}")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA mmap_size={int(before)}")


def import_statement(
    engine: Engine, creditor_id: Any, data: bytes, now: dt.datetime, *, actor: str = "cli"
) -> list[StatementReport]:
    """Read, reconcile and book every statement of a file, in one transaction: a file that
    cannot be read raises StatementError and books nothing."""
    started = time.perf_counter()
    with cycle_collection_paused(), ThreadPoolExecutor(1) as hasher:
        # hashlib lets go of the interpreter while it hashes: the digest is made on the
        # other core while the file is parsed.
        hashing = hasher.submit(hashlib.sha256, data)
        statements = read_statements(data)
        parsed = time.perf_counter()
        digest = hashing.result().hexdigest()
        with engine.connect() as connection, _file_mapped(connection), connection.begin():
            checkpoint_in_background(connection)  # SQLite: the commit returns sooner
            reports = [
                import_one(connection, creditor_id, statement, digest, now, actor)
                for statement in statements
            ]
            committing = time.perf_counter()
        # Let go of the file's lines before the cycle collector comes back: its first
        # collection would walk them all.
        del statements
    if reports:
        reports[0].seconds = {"parse": parsed - started, **reports[0].seconds}
        reports[-1].seconds["commit"] = time.perf_counter() - committing
    return reports


def import_one(
    connection: Connection,
    creditor_id: Any,
    statement: Statement,
    digest: str,
    now: dt.datetime,
    actor: str,
) -> StatementReport:
    store = PaymentStore(connection, creditor_id)
    account = statement.account_iban
    report = StatementReport(statement.format, account, statement.statement_id)
    report.lines = len(statement.lines)
    lap = Stopwatch(report.seconds).lap
    if store.statement_exists(account, statement.statement_id, digest):
        report.already_imported = report.lines  # the very same file: nothing to do
        return report
    known = store.known_refs(account, (line.ref for line in statement.lines))
    fresh = [line for line in statement.lines if line.ref not in known]
    report.already_imported = report.lines - len(fresh)
    statement_key = store.add_statement(
        {
            "format": statement.format,
            "account_iban": account,
            "statement_ref": statement.statement_id,
            "created_on": statement.created_on,
            "currency": statement.currency,
            "opening_minor": statement.opening_minor,
            "closing_minor": statement.closing_minor,
            "digest": digest,
            "imported_at": now,
            "report": {},
        }
    )
    currency = store.currency() or statement.currency
    w = store.writer
    lines = [_Line(line, w.new_id()) for line in fresh]
    credits, reversals = [], []
    for item in lines:
        if item.line.reversal:
            reversals.append(item)
            continue
        why = classify_line(item.line, currency)
        if why is None:
            credits.append(item)
        else:
            item.status, item.reason = (
                "ignored",
                _IGNORED.get(why, why).format(currency=item.line.currency, ours=currency),
            )
            report.ignored[why] += 1
    lap("known")
    fuzzy = _match(store, credits)
    lap("match")
    infos = _match_fuzzy(store, fuzzy)
    lap("fuzzy")
    booker = PaymentBooker(store, now)
    whole = _whole_cases(credits)
    # The cases read for scoring are read once: nothing was written since.
    infos = {case: infos[case] for case in whole if case in infos} | store.cases(
        case for case in whole if case not in infos
    )
    days: dict[dt.date, dt.datetime] = {}
    for item in credits:
        if item.case is None:
            report.unmatched += 1
            report.unmatched_minor += item.line.amount_minor
            continue
        credit = 0
        paid_at = days.get(item.line.booked_on)
        if paid_at is None:
            paid_at = days[item.line.booked_on] = _paid_at(item.line.booked_on)
        ref = f"bank:{account}:{item.line.ref}"
        if item.case in whole:
            credit = booker.book(
                infos[item.case], item.line.amount_minor, item.line.currency, paid_at, ref,
                "statement", invoice=item.invoice, transaction=item.key, method=item.method,
            )  # fmt: skip
        else:
            assert item.invoice is not None
            booker.book_invoice(
                item.case, item.debtor, item.invoice, item.line.amount_minor,
                item.line.currency, paid_at, ref, "statement", transaction=item.key,
                method=item.method,
            )  # fmt: skip
        item.status = "matched"
        report.booked[item.method or "?"] += 1
        report.booked_minor += item.line.amount_minor
        report.credit_minor += credit
    lap("allocate")
    report.cases_paid = booker.flush(lap)
    store.add_transactions(
        _transaction_rows(
            store, statement_key, account, credits + [i for i in lines if i.status == "ignored"],
            now, actor,
        )
    )  # fmt: skip
    lap("lines")
    for item in reversals:
        _reverse(store, account, item, now, report)
    store.add_transactions(_transaction_rows(store, statement_key, account, reversals, now, actor))
    store.set_statement_report(statement_key, report.as_dict())
    lap("reversals")
    return report


_IGNORED: Final = {
    "debit": "a debit: money going out is not a payment to collect",
    "foreign currency": "foreign currency {currency}: refused, the creditor collects in {ours}",
    "zero amount": "a zero amount",
    "psp payout": "a payout of the payment service: its payments were booked from its webhooks",
}


def _whole_cases(lines: list[_Line]) -> set[Key]:
    """Cases whose payments of this import need all their open invoices: a payment with
    no invoice (a case's own communication, a reference, a score), or more than its
    invoice has open, counting the payments before it."""
    whole: set[Key] = set()
    left: dict[Key, int] = {}
    for item in lines:
        if item.case is None:
            continue
        if item.invoice is None or item.open_minor is None:
            whole.add(item.case)
            continue
        remaining = left.get(item.invoice, item.open_minor) - item.line.amount_minor
        left[item.invoice] = remaining
        if remaining < 0:
            whole.add(item.case)
    return whole


def _transaction_rows(
    store: PaymentStore, statement: Key, account: str, items: list[_Line], now: dt.datetime,
    actor: str,
) -> list[tuple[Any, ...]]:  # fmt: skip
    """The statement lines as stored, in TRANSACTION_COLUMNS order without the creditor."""
    stamp = store.writer.timestamp(now)
    days: dict[dt.date | None, Any] = {None: None}  # a statement has few distinct days
    rows = []
    for item in items:
        line = item.line
        booked, valued = days.get(line.booked_on), days.get(line.value_on, days)
        if booked is None:
            booked = days[line.booked_on] = store.date(line.booked_on)
        if valued is days:
            assert line.value_on is not None
            valued = days[line.value_on] = store.date(line.value_on)
        matched = item.case is not None and item.status in ("matched", "reversal")
        rows.append(
            (item.key, statement, account, line.ref, booked, valued, line.amount_minor,
             line.currency, line.reversal, line.structured, line.text or None,
             line.counterparty_name, line.counterparty_iban, line.end_to_end_id, line.bank_code,
             item.status, item.method, item.score, item.case, item.reason,
             stamp if matched else None, actor if matched else None)
        )  # fmt: skip
    return rows


def _match(store: PaymentStore, lines: list[_Line]) -> list[_Line]:
    """Find each line's case by structured communication, in the text too, then by
    reference; returns the lines left for a score (`_match_fuzzy`)."""
    texts = {id(item): ogms_in_text(item.line.text) for item in lines if item.line.text}
    wanted = {item.line.structured for item in lines if item.line.structured}
    wanted.update(o for found in texts.values() for o in found)
    targets = store.ogm_targets(wanted)
    rest = []
    for item in lines:
        structured = item.line.structured
        if structured and structured in targets:
            item.case, item.invoice, item.debtor, item.open_minor = targets[structured]
            item.method = "ogm"
            continue
        hits = {targets[o] for o in texts.get(id(item), ()) if o in targets}
        if len(hits) == 1:
            (item.case, item.invoice, item.debtor, item.open_minor) = hits.pop()
            item.method = "ogm_text"
        elif len({hit[0] for hit in hits}) == 1:  # several invoices of one case
            item.case, item.method = next(iter(hits))[0], "ogm_text"
        else:
            rest.append(item)
    if not rest:
        return []
    tokens = {id(item): refs_in_text(item.line.text) for item in rest}
    refs = store.ref_targets({t for found in tokens.values() for t in found})
    fuzzy = []
    for item in rest:
        cases = {refs[t] for t in tokens[id(item)] if t in refs}
        if len(cases) == 1:
            item.case, item.method = cases.pop(), "ref"
        else:
            fuzzy.append(item)
    return fuzzy


def _match_fuzzy(store: PaymentStore, lines: list[_Line]) -> dict[Key, CaseInfo]:
    """Candidates by the payer's IBAN (known from earlier matches), name (the debtors
    whose name has the same words) and amount, scored on amount, IBAN and name; an
    ambiguous or weak best waits for a person. Returns the cases it read.

    Among the cases with an invoice of the line's amount, only the few whose debtor's
    name is closest to the payer's are read in full and scored."""
    if not lines:
        return {}
    by_iban = store.iban_cases(
        {i.line.counterparty_iban for i in lines if i.line.counterparty_iban}
    )
    # Names compared as word sets: a debtor's stored name key (its normalised words,
    # sorted) scores as its normalised name does.
    by_amount = {
        amount: [
            (case, key if key is not None else normalise_name(name)) for case, name, key in cases
        ]
        for amount, cases in store.amount_cases({i.line.amount_minor for i in lines}).items()
    }
    payers = {id(i): name_key(i.line.counterparty_name or "") for i in lines}
    by_name = store.name_cases(set(payers.values()))
    ratio = fuzz.token_set_ratio
    wanted: dict[int, set[Key]] = {}
    for item in lines:
        found = set(by_iban.get(item.line.counterparty_iban or "", ()))
        found.update(case for case, _ in by_name.get(payers[id(item)], ()))
        named = by_amount.get(item.line.amount_minor, ())
        payer = normalise_name(item.line.counterparty_name or "")
        if named and payer:
            close = sorted(((ratio(payer, name), case) for case, name in named), reverse=True)
            found.update(case for similarity, case in close[:FUZZY_SHORTLIST] if similarity >= 50)
        elif len(named) == 1:
            found.add(named[0][0])
        wanted[id(item)] = found
    infos = store.cases({c for found in wanted.values() for c in found})
    ibans: dict[Key, str] = {}
    for iban, cases in by_iban.items():
        for case in cases:
            ibans[case] = iban
    offered: dict[Key, Candidate | None] = {}  # a case offered to several lines: built once
    for item in lines:
        candidates = []
        for case in sorted(wanted[id(item)]):
            if case not in offered:
                info = infos.get(case)
                offered[case] = (
                    Candidate(
                        case_id=case,
                        invoices=tuple(info.invoices),
                        debtor_name=info.name,
                        iban=ibans.get(case),
                        refs=frozenset({info.ref}),
                        name_key=info.name_key,
                    )
                    if info is not None and info.invoices
                    else None
                )
            candidate = offered[case]
            if candidate is not None:
                candidates.append(candidate)
        best = choose(item.line, candidates) if candidates else None
        if best is None:
            item.reason = (
                f"{len(candidates)} possible cases, none clearly ahead"
                if candidates
                else "no structured communication, reference or candidate with this amount"
            )
            continue
        item.case = cast(Key, best.candidate.case_id)
        item.method, item.score = "fuzzy", round(best.score, 3)
    return infos


def _reverse(
    store: PaymentStore, account: str, item: _Line, now: dt.datetime, report: StatementReport
) -> None:
    line = item.line
    found = None
    if line.end_to_end_id:
        found = store.reversible(account, [line.end_to_end_id]).get(line.end_to_end_id)
    if found is None and line.structured:
        found = store.matched_by_structured(account, line.structured, abs(line.amount_minor))
    if found is None:
        item.reason = "a reversal of a payment not booked here: check it by hand"
        report.unmatched += 1
        return
    original, case = found
    invoices = store.reverse_payments(case, original, now)
    store.writer.refresh_paid(invoices)
    store.reopen(case)
    infos = store.cases([case])
    debtor = infos[case].debtor
    store.add_events(
        [(case, debtor, "payment.reversed", now, {"amount_minor": abs(line.amount_minor)})]
    )
    item.status, item.case, item.method = "reversal", case, "reversal"
    item.reason = "reverses an earlier payment: the case owes again"
    report.reversals += 1


def match_line(
    engine: Engine, creditor_id: Any, bank_ref: str, case_ref: str, now: dt.datetime, actor: str
) -> tuple[int, str]:
    """Book an unmatched statement line on a case by hand; returns (amount, currency)."""
    with engine.begin() as connection:
        store = PaymentStore(connection, creditor_id)
        found = store.transactions(ref=bank_ref, limit=2)
        if not found:
            raise MatchError(f"no statement line with reference {bank_ref!r}")
        if len(found) > 1:
            raise MatchError(f"several accounts have a line {bank_ref!r}: give the account")
        line = found[0]
        if line["status"] != "unmatched":
            raise MatchError(f"line {bank_ref} is {line['status']}, not waiting for a match")
        case = store.case_by_ref(case_ref)
        if case is None:
            raise MatchError(f"no case {case_ref!r} for this creditor")
        info = store.cases([case])[case]
        booker = PaymentBooker(store, now)
        booker.book(
            info, int(line["amount_minor"]), str(line["currency"]), _paid_at(line["booked_on"]),
            f"bank:{line['account']}:{bank_ref}", "statement", transaction=line["id"],
            method="manual",
        )  # fmt: skip
        booker.flush()
        store.settle_transaction(line["id"], case, "manual", actor, now)
        store.audit(actor, "payment.matched", case_ref, {"bank_ref": bank_ref}, now)
        return int(line["amount_minor"]), str(line["currency"])


def book_payment(
    connection: Connection,
    creditor_id: Any,
    case: Key,
    amount_minor: int,
    currency: str,
    paid_at: dt.datetime,
    ref: str,
    source: str,
    now: dt.datetime,
) -> bool:
    """Book one payment (PSP, API) on a case; False when `ref` was booked before (a
    webhook or request repeated), so the same payment is never booked twice."""
    store = PaymentStore(connection, creditor_id)
    if store.payment_exists(ref) or store.payment_exists(f"{ref}#1"):
        return False
    infos = store.cases([case])
    if case not in infos:
        raise MatchError("no such case for this creditor")
    info = infos[case]
    if info.currency and currency != info.currency:
        raise MatchError(f"currency {currency} differs from the case's {info.currency}")
    booker = PaymentBooker(store, now)
    booker.book(info, amount_minor, currency, paid_at, ref, source)
    booker.flush()
    return True
