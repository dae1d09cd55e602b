"""What the integrator API keeps and reads: API keys (hashed, scoped, revocable), stored
responses of idempotent requests, opaque cursors, and the case views it serves — every
query filtered on the creditor the key belongs to.

Keys are `pk_live_` followed by 40 random base-62 characters (238 bits). Only their
SHA-256 is stored. A slow password hash (argon2, bcrypt) protects guessable secrets; a
key this random cannot be guessed, so a fast hash loses nothing and keeps verification at
microseconds on every request. A plain hash rather than an HMAC with the server's secret
keeps the keys valid when that secret (which signs debtors' links) is rotated.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import functools
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import (
    ARRAY,
    Connection,
    Engine,
    LargeBinary,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    select,
    tuple_,
    type_coerce,
    update,
)

from parcours.domain.money import currency_exponent
from parcours.store.bulk import Key, PortfolioWriter
from parcours.store.repositories import new_id
from parcours.store.schema import (
    ApiKeyRow,
    BankTransactionRow,
    CaseRow,
    CreditorRow,
    DebtorRow,
    DisputeRow,
    EnrolmentRow,
    EventRow,
    IdempotencyKeyRow,
    InvoiceRow,
    OutboxRow,
    PaymentPlanRow,
    PaymentRow,
    PlanInstalmentRow,
    PromiseRow,
)

__all__ = [
    "CURSOR_MAX",
    "IDEMPOTENCY_TTL",
    "KEY_PREFIX",
    "SCOPES",
    "ApiKey",
    "BookedPart",
    "CursorError",
    "IdempotencyKeys",
    "IntegratorStore",
    "KeyVerifier",
    "NewApiKey",
    "Page",
    "PaymentTarget",
    "Principal",
    "StoredResponse",
    "api_keys",
    "create_api_key",
    "decode_cursor",
    "encode_cursor",
    "expire_idempotency_keys",
    "format_minor",
    "key_digest",
    "revoke_api_key",
]

KEY_PREFIX: Final = "pk_live_"
SCOPES: Final = ("read", "write", "payments")
IDEMPOTENCY_TTL: Final = dt.timedelta(hours=24)
CURSOR_MAX: Final = 1000  # characters; a cursor holds at most a few references
_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_KEY_LENGTH: Final = 40
_SHOWN: Final = 8  # characters after `pk_live_` that name a key to people
_KEY_CHARS: Final = frozenset(_ALPHABET)
# Verified keys kept in memory; cleared whole when full (a flood of keys is not kept).
_CACHE_MAX: Final = 10_000
_TOUCH_EVERY: Final = dt.timedelta(minutes=1)  # last_used_at is kept to the minute


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as people see it: never the key itself, only its prefix."""

    id: uuid.UUID
    creditor_id: uuid.UUID
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @property
    def shown(self) -> str:
        return f"{KEY_PREFIX}{self.prefix}…"


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just made: `secret` is the only time the clear key exists outside the caller."""

    key: ApiKey
    secret: str


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified key speaks for: one creditor, with some scopes."""

    key_id: uuid.UUID
    prefix: str
    creditor_id: uuid.UUID
    creditor_name: str
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        """How the audit log names what this key did."""
        return f"api:{self.prefix}"


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _well_formed(key: str) -> bool:
    body = key[len(KEY_PREFIX) :]
    return key.startswith(KEY_PREFIX) and len(body) == _KEY_LENGTH and _KEY_CHARS.issuperset(body)


def _key_columns() -> tuple[Any, ...]:
    k = ApiKeyRow
    return (
        k.id, k.creditor_id, k.name, k.prefix, k.scopes, k.created_at, k.last_used_at,
        k.revoked_at,
    )  # fmt: skip


def _api_key(row: Any) -> ApiKey:
    return ApiKey(
        row.id, row.creditor_id, row.name, row.prefix, tuple(row.scopes), row.created_at,
        row.last_used_at, row.revoked_at,
    )  # fmt: skip


def create_api_key(
    connection: Connection,
    creditor_id: uuid.UUID,
    name: str,
    scopes: Iterable[str],
    now: dt.datetime,
) -> NewApiKey:
    """Make a key for the creditor; the clear key is returned once and never stored."""
    chosen = tuple(dict.fromkeys(scopes))
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown or not chosen:
        raise ValueError(
            f"scopes: {', '.join(unknown) or 'none given'} — choose from {', '.join(SCOPES)}"
        )
    if not name.strip() or len(name) > 80:
        raise ValueError("name: give the key a name of 1 to 80 characters")
    taken = True
    while taken:  # a repeated 8-character prefix: about one chance in 10^14
        secret = KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_KEY_LENGTH))
        prefix = secret[len(KEY_PREFIX) : len(KEY_PREFIX) + _SHOWN]
        taken = (
            connection.execute(select(func.count()).where(ApiKeyRow.prefix == prefix)).scalar_one()
            > 0
        )
    key = ApiKey(new_id(), creditor_id, name.strip(), prefix, chosen, now, None, None)
    connection.execute(
        insert(ApiKeyRow).values(
            id=key.id, creditor_id=creditor_id, name=key.name, prefix=prefix,
            hash=key_digest(secret), scopes=list(chosen), created_at=now,
        )
    )  # fmt: skip
    return NewApiKey(key, secret)


def api_keys(connection: Connection, creditor_id: uuid.UUID) -> list[ApiKey]:
    """The creditor's keys, revoked ones included, oldest first."""
    rows = connection.execute(
        select(*_key_columns())
        .where(ApiKeyRow.creditor_id == creditor_id)
        .order_by(ApiKeyRow.created_at, ApiKeyRow.prefix)
    )
    return [_api_key(r) for r in rows]


def revoke_api_key(
    connection: Connection, creditor_id: uuid.UUID, prefix: str, now: dt.datetime
) -> ApiKey | None:
    """Revoke the creditor's key with this prefix (`pk_live_` and a trailing `…` may be
    given too, or the whole key); None when it has no such key. Servers' caches drop it
    within their time to live (10 s)."""
    prefix = prefix.removeprefix(KEY_PREFIX).rstrip("…")[:_SHOWN]
    row = connection.execute(
        select(*_key_columns()).where(
            ApiKeyRow.creditor_id == creditor_id, ApiKeyRow.prefix == prefix
        )
    ).first()
    if row is None:
        return None
    key = _api_key(row)
    if key.revoked_at is not None:
        return key
    connection.execute(update(ApiKeyRow).where(ApiKeyRow.id == key.id).values(revoked_at=now))
    return dataclasses.replace(key, revoked_at=now)


class KeyVerifier:
    """Checks bearer keys, keeping verified ones in memory for `ttl` seconds.

    The hot path (a key seen in the last seconds) is one SHA-256 and a dictionary lookup
    keyed by that digest; the clear key is never kept. A miss reads the key by its prefix
    and compares digests in constant time. With `ttl` 0 every request reads the store.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def cached(self, presented: str) -> Principal | None:
        """The principal of a key verified in the last `ttl` seconds, else None (which
        says nothing about the key: `verify` it)."""
        found = self._cache.get(key_digest(presented)) if _well_formed(presented) else None
        return found[1] if found is not None and found[0] > self._clock() else None

    def verify(self, presented: str, now: dt.datetime) -> Principal | None:
        """The principal of a valid, unrevoked key; None otherwise."""
        if not _well_formed(presented):
            return None
        digest = key_digest(presented)
        moment = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > moment:
            return cached[1]
        principal = self._load(presented[len(KEY_PREFIX) :][:_SHOWN], digest, now)
        with self._lock:
            if principal is None:
                self._cache.pop(digest, None)
            elif self.ttl > 0:
                if len(self._cache) >= _CACHE_MAX:
                    self._cache.clear()
                self._cache[digest] = (moment + self.ttl, principal)
        return principal

    def forget(self) -> None:
        """Drop every cached key (after a revocation in this process)."""
        with self._lock:
            self._cache.clear()

    def _load(self, prefix: str, digest: str, now: dt.datetime) -> Principal | None:
        k, c = ApiKeyRow, CreditorRow
        with self.engine.connect() as connection:
            row = connection.execute(
                select(k.id, k.creditor_id, c.name, k.hash, k.scopes, k.revoked_at, k.last_used_at)
                .join(c, c.id == k.creditor_id)
                .where(k.prefix == prefix)
            ).first()
            if row is None or not hmac.compare_digest(row.hash, digest):
                return None
            if row.revoked_at is not None:
                return None
            if row.last_used_at is None or now - row.last_used_at >= _TOUCH_EVERY:
                connection.execute(update(k).where(k.id == row.id).values(last_used_at=now))
                connection.commit()
        return Principal(row.id, prefix, row.creditor_id, row.name, frozenset(row.scopes))


# -- idempotency -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredResponse:
    request: str
    request_hash: str
    status_code: int  # 0 while the first request is still running
    body: str | None
    created_at: dt.datetime

    @property
    def running(self) -> bool:
        return self.status_code == 0


class IdempotencyKeys:
    """The responses kept for one creditor's idempotency keys, inside the caller's
    transaction. A key older than IDEMPOTENCY_TTL counts as never used."""

    def __init__(self, connection: Connection, creditor_id: uuid.UUID) -> None:
        self.connection = connection
        self.creditor_id = creditor_id

    def _this(self, key: str) -> Any:
        t = IdempotencyKeyRow
        return and_(t.creditor_id == self.creditor_id, t.key == key)

    def get(self, key: str, now: dt.datetime) -> StoredResponse | None:
        t = IdempotencyKeyRow
        row = self.connection.execute(
            select(t.request, t.request_hash, t.status_code, t.response, t.created_at).where(
                self._this(key)
            )
        ).first()
        if row is None or now - row.created_at >= IDEMPOTENCY_TTL:
            return None
        return StoredResponse(*row)

    def get_many(self, keys: Collection[str], now: dt.datetime) -> dict[str, StoredResponse]:
        t = IdempotencyKeyRow
        if not keys:
            return {}
        found = {}
        for row in self.connection.execute(
            select(t.key, t.request, t.request_hash, t.status_code, t.response, t.created_at).where(
                t.creditor_id == self.creditor_id, t.key.in_(list(keys))
            )
        ):
            key, request, digest, status, body, created = row
            stored = StoredResponse(request, digest, status, body, created)
            if now - stored.created_at < IDEMPOTENCY_TTL:
                found[key] = stored
        return found

    def insert_many(self, rows: Sequence[tuple[str, str, str, int, str]], now: dt.datetime) -> None:
        """(key, request, request hash, status, body) answered now; expired records of
        these keys are replaced."""
        if not rows:
            return
        t = IdempotencyKeyRow
        self.connection.execute(
            delete(t).where(
                t.creditor_id == self.creditor_id,
                t.key.in_([r[0] for r in rows]),
                t.created_at <= now - IDEMPOTENCY_TTL,
            )
        )
        self.connection.execute(
            insert(t),
            [
                {
                    "creditor_id": self.creditor_id, "key": k, "request": request,
                    "request_hash": digest, "status_code": status, "response": body,
                    "created_at": now,
                }
                for k, request, digest, status, body in rows
            ],
        )  # fmt: skip

    def insert(
        self,
        key: str,
        request: str,
        request_hash: str,
        now: dt.datetime,
        status_code: int = 0,
        body: str | None = None,
    ) -> None:
        """Record the key (an expired record of it is replaced); a key recorded since by
        another request raises the database's IntegrityError."""
        t = IdempotencyKeyRow
        self.connection.execute(
            delete(t).where(self._this(key), t.created_at <= now - IDEMPOTENCY_TTL)
        )
        self.connection.execute(
            insert(t).values(
                creditor_id=self.creditor_id, key=key, request=request,
                request_hash=request_hash, status_code=status_code, response=body, created_at=now,
            )
        )  # fmt: skip

    def complete(self, key: str, status_code: int, body: str) -> None:
        self.connection.execute(
            update(IdempotencyKeyRow)
            .where(self._this(key))
            .values(status_code=status_code, response=body)
        )

    def discard(self, key: str) -> None:
        self.connection.execute(delete(IdempotencyKeyRow).where(self._this(key)))


def expire_idempotency_keys(connection: Connection, now: dt.datetime) -> int:
    """Delete every idempotency key older than 24 hours (all creditors); returns how many.

    The worker calls it now and then; expired keys are ignored even before."""
    t = IdempotencyKeyRow
    result = connection.execute(delete(t).where(t.created_at <= now - IDEMPOTENCY_TTL))
    return int(result.rowcount or 0)


# -- cursors -----------------------------------------------------------------------------


class CursorError(ValueError):
    """A cursor that this API did not hand out (or from another listing)."""


def encode_cursor(*values: str | int) -> str:
    """An opaque cursor holding the sort key of the last item of a page."""
    raw = json.dumps(list(values), separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str, *kinds: type) -> tuple[Any, ...]:
    """The values of a cursor, checked against the types its listing expects."""
    if len(text) > CURSOR_MAX:
        raise CursorError("is not a cursor from this listing (too long)")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError):
        raise CursorError("is not a cursor from this listing") from None
    if (
        not isinstance(values, list)
        or len(values) != len(kinds)
        or not all(type(v) is k for v, k in zip(values, kinds, strict=True))
    ):
        raise CursorError("is not a cursor from this listing")
    return tuple(values)


def format_minor(minor: int, currency: str) -> str:
    """Minor units as the decimal string the API speaks ("12.30")."""
    exponent = currency_exponent(currency)
    sign, digits = ("-", str(-minor)) if minor < 0 else ("", str(minor))
    if not exponent:
        return sign + digits
    digits = digits.rjust(exponent + 1, "0")
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]}"


# -- what the API reads ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaymentTarget:
    case: Key  # storage form, as the payment writers take it
    case_ref: str
    currency: str | None  # None: the case has no invoice
    invoice: Key | None


@dataclass(frozen=True, slots=True)
class BookedPart:
    ref: str
    amount_minor: int
    currency: str
    paid_at: dt.datetime
    created_at: dt.datetime
    invoice_ref: str | None  # None: kept as a credit on the case
    case_ref: str
    reversed: bool


@dataclass(slots=True)
class Page:
    """A page of a listing and the cursor of the next one (None on the last page)."""

    items: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None


def _at(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class IntegratorStore:
    """The API's reads and its few writes of one creditor's data."""

    def __init__(self, connection: Connection, creditor_id: uuid.UUID) -> None:
        self.connection = connection
        self.creditor_id = creditor_id
        self.writer = PortfolioWriter(connection, creditor_id)
        self.sqlite = connection.dialect.name == "sqlite"

    # -- payments --------------------------------------------------------------------------

    def payment_targets(
        self, invoice_refs: Collection[str], case_refs: Collection[str], *, lock: bool = True
    ) -> tuple[dict[str, PaymentTarget], dict[str, PaymentTarget]]:
        """The cases payments go to, by invoice reference and by case reference (unknown
        references are absent).

        With `lock` those cases stay locked until commit (PostgreSQL), taken in id order,
        so that payments to one case are allocated one after the other, never over the
        same open amount, and two transactions never wait on each other in a circle.
        """
        q = _payment_queries(self.sqlite)
        by_invoice: dict[str, PaymentTarget] = {}
        by_case: dict[str, PaymentTarget] = {}
        if invoice_refs:
            for case, ref, currency, invoice, invoice_ref in self.connection.execute(
                q.invoice_targets, {"creditor": self.creditor_id, "refs": list(invoice_refs)}
            ):
                by_invoice[invoice_ref] = PaymentTarget(
                    self._key(case), ref, currency, self._key(invoice)
                )
        if case_refs:
            for case, ref, found in self.connection.execute(
                q.case_targets, {"creditor": self.creditor_id, "refs": list(case_refs)}
            ):
                by_case[ref] = PaymentTarget(self._key(case), ref, found, None)
        cases = sorted({t.case for t in (*by_invoice.values(), *by_case.values())}, key=str)
        if lock and cases and not self.sqlite:
            self.connection.exec_driver_sql(
                "SELECT 1 FROM cases WHERE creditor_id = %s AND id = ANY(%s::uuid[]) "
                "ORDER BY id FOR UPDATE",
                (str(self.creditor_id), cases),
            )
        return by_invoice, by_case

    def _key(self, value: Any) -> Key:
        return bytes(value) if isinstance(value, bytes | memoryview) else str(value)

    def _parts(self, query: Any, params: dict[str, Any]) -> list[tuple[BookedPart, Key]]:
        rows = self.connection.execute(query, {"creditor": self.creditor_id, **params})
        return [
            (BookedPart(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7])), self._key(r[8]))
            for r in rows
        ]

    def booked(self, refs: Collection[str]) -> dict[str, list[BookedPart]]:
        """The parts of the payments booked under these references: one part `ref`, or
        `ref#1`, `ref#2`… when it was split over invoices. A `ref` holds no `#`."""
        wanted = set(refs)
        if not wanted:
            return {}
        q = _payment_queries(self.sqlite)
        found: dict[str, list[BookedPart]] = {}
        split: dict[str, Key] = {}
        exact = [*wanted, *(f"{r}#1" for r in wanted)]
        for part, case in self._parts(q.parts_by_ref, {"refs": exact}):
            if part.ref in wanted:
                found[part.ref] = [part]
            else:
                split[part.ref[:-2]] = case
        if split:
            cases = [
                uuid.UUID(bytes=k) if isinstance(k, bytes) else uuid.UUID(k) for k in split.values()
            ]
            for part, _ in self._parts(q.parts_by_case, {"cases": cases}):
                base, mark, number = part.ref.rpartition("#")
                if mark and base in split and number.isdigit():
                    found.setdefault(base, []).append(part)
        return {ref: _in_order(parts, ref) for ref, parts in found.items()}

    def parts(self, part_refs: Collection[str]) -> list[BookedPart]:
        """Payments by their exact references (parts just booked)."""
        query = _payment_queries(self.sqlite).parts_by_ref
        return [part for part, _ in self._parts(query, {"refs": list(part_refs)})]

    # -- cases -----------------------------------------------------------------------------

    def case_row(self, case_ref: str) -> Any:
        c, d = CaseRow, DebtorRow
        return self.connection.execute(
            select(
                c.id, c.ref, c.status, c.opened_at, c.closed_at, c.debtor_id, d.ref.label("debtor")
            )
            .join(d, and_(d.id == c.debtor_id, d.creditor_id == c.creditor_id))
            .where(c.creditor_id == self.creditor_id, c.ref == case_ref)
        ).first()

    def case_currency(self, case_ref: str) -> str | None:
        c, i = CaseRow, InvoiceRow
        return self.connection.execute(
            select(i.currency)
            .join(c, and_(c.id == i.case_id, c.creditor_id == i.creditor_id))
            .where(c.creditor_id == self.creditor_id, c.ref == case_ref)
            .limit(1)
        ).scalar_one_or_none()

    def case_state(self, case_ref: str) -> dict[str, Any] | None:
        """Everything an integrator needs to know about a case now."""
        case = self.case_row(case_ref)
        if case is None:
            return None
        tenant, key = self.creditor_id, case.id
        i = InvoiceRow
        invoices = self.connection.execute(
            select(
                i.ref, i.amount_minor, i.paid_minor, i.currency, i.issue_date, i.due_date,
                i.structured_communication, i.description,
            )
            .where(i.creditor_id == tenant, i.case_id == key)
            .order_by(i.due_date, i.ref)
        ).all()  # fmt: skip
        currency = invoices[0].currency if invoices else None
        p = PaymentRow
        credit = self.connection.execute(
            select(func.coalesce(func.sum(p.amount_minor), 0)).where(
                p.creditor_id == tenant, p.case_id == key, p.invoice_id.is_(None),
                p.reversed_at.is_(None),
            )
        ).scalar_one()  # fmt: skip
        balance = sum(max(r.amount_minor - r.paid_minor, 0) for r in invoices)
        money = (lambda m: format_minor(int(m), currency)) if currency else str
        return {
            "ref": case.ref,
            "debtor_ref": case.debtor,
            "status": case.status,
            "opened_at": case.opened_at,
            "closed_at": case.closed_at,
            "currency": currency,
            "balance": money(balance),
            "credit": money(int(credit)),
            "invoices": [
                {
                    "ref": r.ref,
                    "amount": money(r.amount_minor),
                    "paid": money(r.paid_minor),
                    "open": money(max(r.amount_minor - r.paid_minor, 0)),
                    "issue_date": r.issue_date,
                    "due_date": r.due_date,
                    "structured_communication": r.structured_communication,
                    "description": r.description,
                }
                for r in invoices
            ],
            "promise": self._promise(key, money),
            "plan": self._plan(key, money),
            "dispute": self._dispute(key, money),
            "journey": self._enrolment(key),
        }

    def _promise(self, case: uuid.UUID, money: Callable[[int], str]) -> dict[str, Any] | None:
        t = PromiseRow
        row = self.connection.execute(
            select(t.amount_minor, t.due_on, t.made_at, t.state, t.source, t.settled_at)
            .where(t.creditor_id == self.creditor_id, t.case_id == case)
            .order_by(t.made_at.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        return {
            "amount": money(row.amount_minor), "due_on": row.due_on, "made_at": row.made_at,
            "state": row.state, "source": row.source, "settled_at": row.settled_at,
        }  # fmt: skip

    def _plan(self, case: uuid.UUID, money: Callable[[int], str]) -> dict[str, Any] | None:
        t, n = PaymentPlanRow, PlanInstalmentRow
        plan = self.connection.execute(
            select(t.id, t.total_minor, t.state, t.created_at, t.source, t.paid_minor)
            .where(t.creditor_id == self.creditor_id, t.case_id == case)
            .order_by(t.created_at.desc())
            .limit(1)
        ).first()
        if plan is None:
            return None
        instalments = self.connection.execute(
            select(n.number, n.due_on, n.amount_minor)
            .where(n.creditor_id == self.creditor_id, n.plan_id == plan.id)
            .order_by(n.number)
        ).all()
        return {
            "id": str(plan.id),
            "total": money(plan.total_minor),
            "paid": money(plan.paid_minor),
            "state": plan.state,
            "source": plan.source,
            "created_at": plan.created_at,
            "instalments": [
                {"number": r.number, "due_on": r.due_on, "amount": money(r.amount_minor)}
                for r in instalments
            ],
        }

    def _dispute(self, case: uuid.UUID, money: Callable[[int], str]) -> dict[str, Any] | None:
        # The debtor's evidence and the agent's note are words about a person: not served.
        t = DisputeRow
        row = self.connection.execute(
            select(
                t.id, t.reason, t.state, t.opened_at, t.opened_by, t.resolved_at,
                t.adjustment_minor,
            )
            .where(t.creditor_id == self.creditor_id, t.case_id == case)
            .order_by(t.opened_at.desc())
            .limit(1)
        ).first()  # fmt: skip
        if row is None:
            return None
        return {
            "id": str(row.id), "reason": row.reason, "state": row.state,
            "opened_at": row.opened_at, "opened_by": row.opened_by,
            "resolved_at": row.resolved_at,
            "adjustment": None if row.adjustment_minor is None else money(row.adjustment_minor),
        }  # fmt: skip

    def _enrolment(self, case: uuid.UUID) -> dict[str, Any] | None:
        t = EnrolmentRow
        row = self.connection.execute(
            select(
                t.journey_key, t.journey_version, t.node_id, t.persona, t.enrolled_at,
                t.wake_at, t.done, t.exit_reason,
            ).where(t.creditor_id == self.creditor_id, t.case_id == case)
        ).first()  # fmt: skip
        if row is None:
            return None
        return {
            "journey": row.journey_key, "version": row.journey_version, "step": row.node_id,
            "persona": row.persona, "enrolled_at": row.enrolled_at, "wake_at": row.wake_at,
            "done": bool(row.done), "exit_reason": row.exit_reason,
        }  # fmt: skip

    def cases(self, after: str | None, limit: int, status: str | None) -> Page:
        """Cases in reference order, a page at a time."""
        c, d, i = CaseRow, DebtorRow, InvoiceRow
        query = (
            select(c.id, c.ref, c.status, c.opened_at, c.closed_at, d.ref.label("debtor"))
            .join(d, and_(d.id == c.debtor_id, d.creditor_id == c.creditor_id))
            .where(c.creditor_id == self.creditor_id)
            .order_by(c.ref)
            .limit(limit + 1)
        )
        if after is not None:
            query = query.where(c.ref > after)
        if status is not None:
            query = query.where(c.status == status)
        rows = self.connection.execute(query).all()
        page = rows[:limit]
        totals: dict[uuid.UUID, tuple[int, str]] = {}
        if page:
            open_minor = func.sum(
                func.max(i.amount_minor - i.paid_minor, 0)
                if self.sqlite
                else func.greatest(i.amount_minor - i.paid_minor, 0)
            )
            for case, owed, currency in self.connection.execute(
                select(i.case_id, open_minor, func.min(i.currency))
                .where(i.creditor_id == self.creditor_id, i.case_id.in_([r.id for r in page]))
                .group_by(i.case_id)
            ):
                totals[case] = (int(owed), currency)
        items = []
        for r in page:
            owed, currency = totals.get(r.id, (0, None))
            items.append(
                {
                    "ref": r.ref, "debtor_ref": r.debtor, "status": r.status,
                    "opened_at": r.opened_at, "closed_at": r.closed_at, "currency": currency,
                    "balance": format_minor(owed, currency) if currency else "0",
                }
            )  # fmt: skip
        more = len(rows) > limit
        return Page(items, encode_cursor(page[-1].ref) if more else None)

    def timeline(
        self, case: uuid.UUID, after: tuple[dt.datetime, uuid.UUID] | None, limit: int
    ) -> Page:
        """Events, payments and messages of a case, oldest first, a page at a time.

        Each kind is read up to one past the page in (time, id) order and the three merged:
        the page's items are the first `limit` of the merge, whatever their kinds.
        """
        tenant = self.creditor_id
        e, p, o, inv = EventRow, PaymentRow, OutboxRow, InvoiceRow

        def page_of(at: Any, key: Any, query: Any) -> list[Any]:
            if after is not None:
                query = query.where(_after((at, key), after))
            return list(self.connection.execute(query.order_by(at, key).limit(limit + 1)))

        items: list[tuple[dt.datetime, uuid.UUID, dict[str, Any]]] = []
        for r in page_of(
            e.occurred_at, e.id,
            select(e.id, e.occurred_at, e.type, e.payload).where(
                e.creditor_id == tenant, e.case_id == case
            ),
        ):  # fmt: skip
            items.append(
                (r.occurred_at, r.id, {"kind": "event", "type": r.type, "data": r.payload})
            )
        for r in page_of(
            p.paid_at, p.id,
            select(
                p.id, p.paid_at, p.ref, p.amount_minor, p.currency, p.source, p.reversed_at,
                inv.ref.label("invoice"),
            )
            .outerjoin(inv, and_(inv.id == p.invoice_id, inv.creditor_id == p.creditor_id))
            .where(p.creditor_id == tenant, p.case_id == case),
        ):  # fmt: skip
            data = {
                "ref": r.ref, "amount": format_minor(r.amount_minor, r.currency),
                "currency": r.currency, "source": r.source, "invoice_ref": r.invoice,
                "reversed": r.reversed_at is not None,
            }  # fmt: skip
            items.append((r.paid_at, r.id, {"kind": "payment", "type": "payment", "data": data}))
        for r in page_of(
            o.created_at, o.id,
            select(
                o.id, o.created_at, o.kind, o.channel, o.template, o.status, o.sent_at,
                o.amount_minor,
            ).where(o.creditor_id == tenant, o.case_id == case),
        ):  # fmt: skip
            data = {
                "channel": r.channel, "template": r.template, "status": r.status,
                "sent_at": r.sent_at and _at(r.sent_at), "amount_minor": r.amount_minor,
            }  # fmt: skip
            kind = "message" if r.kind == "send" else r.kind
            items.append((r.created_at, r.id, {"kind": kind, "type": kind, "data": data}))
        items.sort(key=lambda item: (item[0], item[1].bytes))
        chosen = items[:limit]
        page = [{"at": at, "id": str(key), **rest} for at, key, rest in chosen]
        more = len(items) > limit
        last = chosen[-1] if chosen else None
        cursor = encode_cursor(_at(last[0]), str(last[1])) if more and last else None
        return Page(page, cursor)

    def unmatched(self, after: tuple[dt.date, uuid.UUID] | None, limit: int) -> Page:
        """Statement lines waiting for a person, oldest first, a page at a time."""
        t = BankTransactionRow
        query = (
            select(
                t.id, t.bank_ref, t.account_iban, t.booked_on, t.amount_minor, t.currency,
                t.structured, t.text, t.counterparty_name, t.counterparty_iban, t.reason,
            )
            .where(t.creditor_id == self.creditor_id, t.status == "unmatched")
            .order_by(t.booked_on, t.id)
            .limit(limit + 1)
        )  # fmt: skip
        if after is not None:
            query = query.where(_after((t.booked_on, t.id), after))
        rows = self.connection.execute(query).all()
        page = rows[:limit]
        items = [
            {
                "id": str(r.id), "bank_ref": r.bank_ref, "account": r.account_iban,
                "booked_on": r.booked_on, "amount": format_minor(r.amount_minor, r.currency),
                "currency": r.currency, "structured_communication": r.structured,
                "text": r.text, "counterparty_name": r.counterparty_name,
                "counterparty_iban": r.counterparty_iban, "reason": r.reason,
            }
            for r in page
        ]  # fmt: skip
        more = len(rows) > limit
        cursor = encode_cursor(page[-1].booked_on.isoformat(), str(page[-1].id)) if more else None
        return Page(items, cursor)

    # -- writes ----------------------------------------------------------------------------

    def record_event(
        self,
        case: uuid.UUID,
        debtor: uuid.UUID,
        kind: str,
        occurred_at: dt.datetime,
        now: dt.datetime,
        payload: dict[str, Any],
    ) -> uuid.UUID:
        """An event on the case, recorded now (so the next tick sees it) whenever it
        happened."""
        key = new_id()
        self.connection.execute(
            insert(EventRow).values(
                id=key, creditor_id=self.creditor_id, case_id=case, debtor_id=debtor, type=kind,
                occurred_at=occurred_at, recorded_at=now, payload=payload,
            )
        )  # fmt: skip
        return key

    def audit(
        self, actor: str, action: str, subject: str, details: dict[str, Any], at: dt.datetime
    ) -> None:
        """Evidence of what a key did (refs and amounts only, no personal data)."""
        self.writer.audit([(actor, action, subject, details)], at)

    def invoice(self, ref: str) -> dict[str, Any] | None:
        i, c, d = InvoiceRow, CaseRow, DebtorRow
        row = self.connection.execute(
            select(
                i.ref, d.ref.label("debtor"), c.ref.label("case"), i.amount_minor, i.paid_minor,
                i.currency, i.issue_date, i.due_date, i.description, i.structured_communication,
            )
            .join(c, and_(c.id == i.case_id, c.creditor_id == i.creditor_id))
            .join(d, and_(d.id == c.debtor_id, d.creditor_id == c.creditor_id))
            .where(i.creditor_id == self.creditor_id, i.ref == ref)
        ).first()  # fmt: skip
        if row is None:
            return None
        return {
            "ref": row.ref, "debtor_ref": row.debtor, "case_ref": row.case,
            "amount": format_minor(row.amount_minor, row.currency),
            "paid": format_minor(row.paid_minor, row.currency), "currency": row.currency,
            "issue_date": row.issue_date, "due_date": row.due_date,
            "description": row.description,
            "structured_communication": row.structured_communication,
        }  # fmt: skip

    def debtor(self, ref: str) -> dict[str, Any] | None:
        d = DebtorRow
        row = self.connection.execute(
            select(
                d.ref, d.name, d.language, d.country, d.timezone, d.birth_year, d.email, d.phone,
                d.street, d.postcode, d.city, d.erased_at,
            ).where(d.creditor_id == self.creditor_id, d.ref == ref)
        ).first()  # fmt: skip
        if row is None:
            return None
        return {k: v for k, v in row._mapping.items() if k != "erased_at"}


def _after(columns: Sequence[Any], values: Sequence[Any]) -> Any:
    """`(columns) > (values)` with each value bound as its column's type (a UUID is 16
    bytes on SQLite, a time is UTC text there)."""
    bound = [bindparam(None, v, type_=c.type) for c, v in zip(columns, values, strict=True)]
    return tuple_(*columns) > tuple_(*bound)


def _in_order(parts: list[BookedPart], ref: str) -> list[BookedPart]:
    return sorted(parts, key=lambda p: 0 if p.ref == ref else int(p.ref[len(ref) + 1 :]))


@dataclass(frozen=True, slots=True)
class _PaymentQueries:
    invoice_targets: Any
    case_targets: Any
    parts_by_ref: Any
    parts_by_case: Any


@functools.cache
def _payment_queries(sqlite: bool) -> _PaymentQueries:
    """The payment path's queries, built once per dialect (building a statement costs
    more than running it on a batch): a list of refs is one parameter on PostgreSQL (the
    same SQL whatever the count, prepared once), an expanding IN on SQLite."""

    def raw(column: Any) -> Any:  # an id in storage form, as the payment writers take it
        return type_coerce(column, LargeBinary()) if sqlite else cast(column, Text)

    def among(column: Any, name: str) -> Any:
        if sqlite:
            return column.in_(bindparam(name, expanding=True))
        return column == any_(bindparam(name, type_=ARRAY(Text)))

    c, i, p = CaseRow, InvoiceRow, PaymentRow
    creditor: Any = bindparam("creditor")
    currency = (
        select(i.currency)
        .where(i.case_id == c.id, i.creditor_id == c.creditor_id)
        .limit(1)
        .scalar_subquery()
    )
    # References by key look-ups per row: a few rows, never a join over all cases.
    invoice_ref = (
        select(i.ref).where(i.id == p.invoice_id, i.creditor_id == p.creditor_id).scalar_subquery()
    )
    case_ref = (
        select(c.ref).where(c.id == p.case_id, c.creditor_id == p.creditor_id).scalar_subquery()
    )
    parts = select(
        p.ref, p.amount_minor, p.currency, p.paid_at, p.created_at, invoice_ref, case_ref,
        p.reversed_at.is_not(None), raw(p.case_id),
    )  # fmt: skip
    return _PaymentQueries(
        invoice_targets=select(raw(c.id), c.ref, i.currency, raw(i.id), i.ref)
        .join(i, and_(i.case_id == c.id, i.creditor_id == c.creditor_id))
        .where(i.creditor_id == creditor, among(i.ref, "refs")),
        case_targets=select(raw(c.id), c.ref, currency).where(
            c.creditor_id == creditor, among(c.ref, "refs")
        ),
        parts_by_ref=parts.where(p.creditor_id == creditor, among(p.ref, "refs")),
        parts_by_case=parts.where(
            p.creditor_id == creditor, p.case_id.in_(bindparam("cases", expanding=True))
        ),
    )
