"""`POST /api/v1/payments` booked in batches: the requests that arrive while one batch is
being written are booked together by the next, in one transaction.

Booking one payment alone costs some twenty round trips to the database (look-ups,
allocation, payment rows, invoice totals, events, audit, commit); a batch costs about the
same for all of its payments, so the API keeps up with a thousand payments a second on one
process while a lone request still goes out at once (a batch of one). Payments are
allocated by the statement importer's own `PaymentBooker`, one after another, so two
payments to one case in a batch see each other. A batch that the database refuses as a
whole (a reference or key taken meanwhile by another process) is booked again one
payment at a time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.concurrency import run_in_threadpool

from parcours.ingest.fields import FieldError, parse_money
from parcours.runtime.payments import PaymentBooker
from parcours.store.api import (
    BookedPart,
    IdempotencyKeys,
    IntegratorStore,
    PaymentTarget,
    Principal,
    StoredResponse,
    format_minor,
)
from parcours.store.payments import PaymentStore

__all__ = [
    "REF_PATTERN",
    "Allocation",
    "Outcome",
    "PaymentDesk",
    "PaymentIn",
    "PaymentOut",
    "PaymentRequest",
    "book_payments",
]

MAX_BATCH: Final = 200

# A reference: no space (the CSV import trims them), no control character.
REF_PATTERN: Final = r"^[^\s\x00-\x1f\x7f]+$"
# `#` numbers the parts of a payment split over several invoices.
_PAYMENT_REF = r"^[^\s\x00-\x1f\x7f#]+$"


class PaymentIn(BaseModel):
    """Money received; `ref` is yours and makes the request safe to repeat."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"ref": "PAY-2026-0001", "invoice_ref": "F1", "amount": "12.30",
                 "currency": "EUR", "paid_at": "2026-12-03T09:30:00+01:00"}
            ]
        },
    )  # fmt: skip

    ref: str = Field(min_length=1, max_length=64, pattern=_PAYMENT_REF, examples=["PAY-1"])
    invoice_ref: str | None = Field(default=None, min_length=1, max_length=64, pattern=REF_PATTERN)
    case_ref: str | None = Field(default=None, min_length=1, max_length=80, pattern=REF_PATTERN)
    amount: str = Field(
        pattern=r"^[0-9]{1,15}(\.[0-9]{1,6})?$",
        description="Decimal string with '.' (no float): as many decimals as the currency has.",
        examples=["12.30"],
    )
    currency: str = Field(pattern=r"^[A-Za-z]{3}$", examples=["EUR"])
    paid_at: AwareDatetime


class Allocation(BaseModel):
    invoice_ref: str
    amount: str


class PaymentOut(BaseModel):
    ref: str
    case_ref: str
    amount: str
    currency: str
    paid_at: dt.datetime
    booked_at: dt.datetime
    allocations: list[Allocation]
    credit: str = Field(description="What the case was overpaid by, kept as a credit.")
    reversed: bool


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """A payment request whose fields passed the checks that need no database."""

    principal: Principal
    body: PaymentIn
    currency: str  # an ISO code in use, upper case
    paid_at: dt.datetime  # UTC
    key: str | None  # the Idempotency-Key
    label: str  # method and path, kept with the key
    fingerprint: str  # of label and body, kept with the key


ProblemKind = Literal["invalid", "conflict", "reused", "running"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to one payment request: a payment (JSON) or a problem."""

    status: int
    body: str | None = None
    problem: tuple[ProblemKind, str, str] | None = None  # (kind, field, detail)
    replayed: bool = False


def _payment_out(parts: list[BookedPart], ref: str) -> PaymentOut:
    first, currency = parts[0], parts[0].currency
    return PaymentOut(
        ref=ref,
        case_ref=first.case_ref,
        amount=format_minor(sum(p.amount_minor for p in parts), currency),
        currency=currency,
        paid_at=first.paid_at,
        booked_at=first.created_at,
        allocations=[
            Allocation(invoice_ref=p.invoice_ref, amount=format_minor(p.amount_minor, currency))
            for p in parts
            if p.invoice_ref is not None
        ],
        credit=format_minor(sum(p.amount_minor for p in parts if p.invoice_ref is None), currency),
        reversed=any(p.reversed for p in parts),
    )


def _invalid(field: str, detail: str) -> Outcome:
    return Outcome(422, problem=("invalid", field, detail))


def _replay(stored: StoredResponse, request: PaymentRequest) -> Outcome:
    if stored.request != request.label or stored.request_hash != request.fingerprint:
        return Outcome(422, problem=("reused", "Idempotency-Key", "was used with another body"))
    if stored.running:
        return Outcome(409, problem=("running", "Idempotency-Key", "is still being answered"))
    return Outcome(stored.status_code, stored.body, replayed=True)


def _target(
    request: PaymentRequest,
    by_invoice: dict[str, PaymentTarget],
    by_case: dict[str, PaymentTarget],
) -> PaymentTarget | Outcome:
    body = request.body
    if body.invoice_ref is not None:
        target = by_invoice.get(body.invoice_ref)
        if target is None:
            return _invalid("invoice_ref", f"{body.invoice_ref!r} is not an invoice of yours")
        if body.case_ref is not None and target.case_ref != body.case_ref:
            return _invalid(
                "invoice_ref", f"{body.invoice_ref!r} is not an invoice of case {body.case_ref!r}"
            )
        return target
    assert body.case_ref is not None
    found = by_case.get(body.case_ref)
    return found or _invalid("case_ref", f"{body.case_ref!r} is not a case of yours")


def book_payments(
    connection: Connection, requests: list[PaymentRequest], now: dt.datetime
) -> list[Outcome | None]:
    """Answer each request within the caller's transaction; None for one that must wait
    for the next batch (its reference or key is already in this one)."""
    outcomes: list[Outcome | None] = [None] * len(requests)
    by_creditor: dict[Any, list[int]] = {}
    for n, request in enumerate(requests):
        by_creditor.setdefault(request.principal.creditor_id, []).append(n)
    for creditor, numbers in by_creditor.items():
        _book_for(connection, creditor, [(n, requests[n]) for n in numbers], now, outcomes)
    return outcomes


def _book_for(
    connection: Connection,
    creditor: Any,
    requests: list[tuple[int, PaymentRequest]],
    now: dt.datetime,
    outcomes: list[Outcome | None],
) -> None:
    store = IntegratorStore(connection, creditor)
    keys = IdempotencyKeys(connection, creditor)
    numbered = dict(requests)
    stored = keys.get_many({r.key for _, r in requests if r.key}, now)
    first_with_key: dict[str, int] = {}
    same_key: list[tuple[int, PaymentRequest, int]] = []
    todo: list[tuple[int, PaymentRequest, str]] = []
    for n, request in requests:
        if request.key is not None:
            if request.key in first_with_key:
                same_key.append((n, request, first_with_key[request.key]))
                continue
            first_with_key[request.key] = n
            if request.key in stored:
                outcomes[n] = _replay(stored[request.key], request)
                continue
        todo.append((n, request, f"api:{request.body.ref}"))
    if not todo:
        return
    by_invoice, by_case = store.payment_targets(
        {r.body.invoice_ref for _, r, _ in todo if r.body.invoice_ref is not None},
        {r.body.case_ref for _, r, _ in todo if r.body.invoice_ref is None and r.body.case_ref},
    )
    existing = store.booked({ref for _, _, ref in todo})
    first_with_ref: dict[str, int] = {}
    checked: dict[int, tuple[PaymentTarget, int]] = {}
    same_ref: list[tuple[int, PaymentRequest, str]] = []
    to_book: list[tuple[int, PaymentRequest, str, PaymentTarget, int]] = []
    for n, request, ref in todo:
        found = _check(request, by_invoice, by_case)
        if isinstance(found, Outcome):
            outcomes[n] = found
            continue
        checked[n] = found
        target, minor = found
        if ref in first_with_ref:
            same_ref.append((n, request, ref))
        elif ref in existing:
            outcomes[n] = _again(request, target, minor, existing[ref])
        else:
            first_with_ref[ref] = n
            to_book.append((n, request, ref, target, minor))
    if to_book:
        _write(connection, creditor, store, to_book, now, outcomes)
    # Requests repeating one of this batch: answered as a repeat once it is answered.
    for n, request, ref in same_ref:
        first = first_with_ref.get(ref)
        answer = outcomes[first] if first is not None else None
        if first is None or answer is None or answer.body is None:
            continue  # the next batch answers it
        target, minor = checked[n]
        if (target.case_ref, request.currency, minor) == (
            checked[first][0].case_ref,
            numbered[first].currency,
            checked[first][1],
        ):
            outcomes[n] = Outcome(200, answer.body)
        else:
            outcomes[n] = Outcome(
                409,
                problem=("conflict", "ref", f"{request.body.ref!r} was used for another payment"),
            )
    for n, request, first in same_key:
        answer = outcomes[first]
        if answer is None or answer.body is None:
            continue  # the first one failed: this one runs in the next batch
        prior = numbered[first]
        if (prior.label, prior.fingerprint) != (request.label, request.fingerprint):
            outcomes[n] = Outcome(
                422, problem=("reused", "Idempotency-Key", "was used with another body")
            )
        else:
            outcomes[n] = Outcome(answer.status, answer.body, replayed=True)
    answered = [
        (request.key, request.label, request.fingerprint, outcome.status, outcome.body)
        for n, request in requests
        if request.key is not None
        and (outcome := outcomes[n]) is not None
        and outcome.body is not None
        and not outcome.replayed
    ]
    keys.insert_many(answered, now)


def _check(
    request: PaymentRequest,
    by_invoice: dict[str, PaymentTarget],
    by_case: dict[str, PaymentTarget],
) -> tuple[PaymentTarget, int] | Outcome:
    """The request's case and amount in minor units, or why it cannot be booked."""
    target = _target(request, by_invoice, by_case)
    if isinstance(target, Outcome):
        return target
    if target.currency is not None and request.currency != target.currency:
        return _invalid(
            "currency", f"{request.currency} differs from the case's currency {target.currency}"
        )
    try:
        return target, parse_money(request.body.amount, request.currency)
    except FieldError as error:
        return _invalid("amount", str(error))


def _again(
    request: PaymentRequest, target: PaymentTarget, minor: int, parts: list[BookedPart]
) -> Outcome:
    """A reference booked before: the same payment again is answered as the first time,
    another payment under it is a conflict."""
    answer = _payment_out(parts, request.body.ref)
    same = (
        answer.case_ref == target.case_ref
        and answer.currency == request.currency
        and sum(p.amount_minor for p in parts) == minor
    )
    if same:
        return Outcome(200, answer.model_dump_json())
    return Outcome(
        409,
        problem=(
            "conflict",
            "ref",
            f"{request.body.ref!r} was used for another payment ({answer.amount} "
            f"{answer.currency} on {answer.case_ref})",
        ),
    )


def _write(
    connection: Connection,
    creditor: Any,
    store: IntegratorStore,
    to_book: list[tuple[int, PaymentRequest, str, PaymentTarget, int]],
    now: dt.datetime,
    outcomes: list[Outcome | None],
) -> None:
    payments = PaymentStore(connection, creditor)
    infos = payments.cases({target.case for _, _, _, target, _ in to_book})
    booker = PaymentBooker(payments, now)
    for _, request, ref, target, minor in to_book:
        booker.book(
            infos[target.case], minor, request.currency, request.paid_at, ref, "api",
            invoice=target.invoice,
        )  # fmt: skip
    part_refs = [row[3] for row in booker.payments]
    booker.flush()
    grouped: dict[str, list[BookedPart]] = {}
    for part in store.parts(part_refs):
        base, mark, number = part.ref.rpartition("#")
        grouped.setdefault(base if mark and number.isdigit() else part.ref, []).append(part)
    audit = []
    for n, request, ref, target, minor in to_book:
        parts = sorted(grouped[ref], key=lambda p: (len(p.ref), p.ref))
        outcomes[n] = Outcome(201, _payment_out(parts, request.body.ref).model_dump_json())
        details = {"ref": request.body.ref, "amount_minor": minor, "currency": request.currency}
        audit.append((request.principal.actor, "api.payment.booked", target.case_ref, details))
    store.writer.audit(audit, now)


def book_batch(
    engine: Engine, requests: list[PaymentRequest], now: Callable[[], dt.datetime]
) -> list[Outcome]:
    """Book a batch in one transaction; when the database refuses it as a whole (another
    process took a reference or key meanwhile, or chose this batch as a deadlock victim),
    book each request alone, once more if need be."""
    try:
        with engine.begin() as connection:
            outcomes = book_payments(connection, requests, now())
    except (IntegrityError, OperationalError):
        if len(requests) == 1:
            with engine.begin() as connection:
                outcomes = book_payments(connection, requests, now())
        else:
            return [book_batch(engine, [request], now)[0] for request in requests]
    answered = [o for o in outcomes if o is not None]
    if len(answered) == len(requests):
        return answered
    # Some waited behind a request with the same reference or key: now it is answered.
    later = [r for r, o in zip(requests, outcomes, strict=True) if o is None]
    rest = iter(book_batch(engine, later, now))
    return [o if o is not None else next(rest) for o in outcomes]


class PaymentDesk:
    """Books payment requests, batched (requests arriving while a batch is written wait
    for the next one) or one transaction per request (`batched=False`).

    On PostgreSQL two batches are written at once, so that one is parsed and allocated
    while the database works on the other; SQLite has a single writer: one at a time.
    """

    def __init__(
        self, engine: Engine, clock: Callable[[], dt.datetime], *, batched: bool = True
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.batched = batched
        self.writers = 2 if engine.dialect.name == "postgresql" else 1
        self._pending: list[tuple[PaymentRequest, asyncio.Future[Outcome]]] = []
        self._running: set[asyncio.Task[None]] = set()

    async def book(self, request: PaymentRequest) -> Outcome:
        if not self.batched:
            [outcome] = await run_in_threadpool(book_batch, self.engine, [request], self.clock)
            return outcome
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Outcome] = loop.create_future()
        self._pending.append((request, answer))
        # A writer of a loop that has ended (a test client's) will never run again.
        self._running = {t for t in self._running if t.get_loop() is loop and not t.done()}
        if len(self._running) < self.writers:
            task = loop.create_task(self._write())
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return await answer

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            requests = [request for request, _ in batch]
            try:
                outcomes = await run_in_threadpool(book_batch, self.engine, requests, self.clock)
            except Exception as error:
                for _, answer in batch:
                    if not answer.done():
                        answer.set_exception(error)
                continue
            for (_, answer), outcome in zip(batch, outcomes, strict=True):
                if not answer.done():
                    answer.set_result(outcome)
