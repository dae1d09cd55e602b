"""What a debtor's page reads and writes: one case, one debtor, inside one creditor.

Every query names the creditor; the only lookup without one is `locate`, which turns the
case id of a signed link into its creditor (a case id is a random UUID, and the link's
signature is the authority).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from parcours.store.schema import (
    CaseRow,
    ConversationRow,
    CsatRow,
    DebtorPersonaRow,
    DebtorRow,
    DisputeRow,
    EnrolmentRow,
    InvoiceRow,
    OutboxRow,
    PaymentPlanRow,
    PaymentRow,
    PlanInstalmentRow,
    PortalCheckRow,
    PromiseRow,
)

__all__ = ["CheckState", "DebtorView", "InvoiceView", "Overview", "PortalStore", "locate"]

CONSENT_COLUMNS = {"email": "email_consent", "sms": "phone_consent", "letter": "postal_consent"}


@dataclass(frozen=True, slots=True)
class InvoiceView:
    ref: str
    issued_on: dt.date
    due_on: dt.date
    amount_minor: int
    paid_minor: int
    currency: str
    structured_communication: str | None

    @property
    def open_minor(self) -> int:
        return max(self.amount_minor - self.paid_minor, 0)


@dataclass(frozen=True, slots=True)
class DebtorView:
    name: str
    language: str
    postcode: str | None
    birth_year: int | None
    has_email: bool
    has_phone: bool
    has_address: bool
    consents: dict[str, str]  # channel → unknown | granted | opted_out
    preferred_channel: str | None
    remind_before_due: bool | None
    profiling_objection: bool


@dataclass(slots=True)
class Overview:
    """Everything the main view shows, read in a handful of queries."""

    case_id: Any
    debtor_id: Any
    case_ref: str
    case_status: str
    case_communication: str | None
    debtor: DebtorView
    persona: str | None
    journey: str | None
    invoices: list[InvoiceView] = field(default_factory=list)
    fees: list[tuple[str, int, dt.datetime | None]] = field(default_factory=list)
    credit_minor: int = 0  # paid beyond the invoices (an overpayment kept on the case)
    promise: tuple[dt.date, int] | None = None  # a pending promise
    plan: list[tuple[int, dt.date, int, int]] | None = None  # (number, due, amount, paid)
    dispute_open: bool = False
    assigned_persona: str | None = None  # the current assignment (None: none or objected)
    conversation_id: Any = None  # the case's chat, once opened

    @property
    def currency(self) -> str:
        return self.invoices[0].currency if self.invoices else "EUR"

    @property
    def open_minor(self) -> int:
        return sum(i.open_minor for i in self.invoices)

    @property
    def fees_minor(self) -> int:
        return sum(amount for _, amount, _ in self.fees)

    @property
    def total_minor(self) -> int:
        """What remains to pay: open invoices and fees, less a credit on the case."""
        return max(self.open_minor + self.fees_minor - self.credit_minor, 0)

    @property
    def open_invoices(self) -> list[InvoiceView]:
        return [i for i in self.invoices if i.open_minor > 0]

    @property
    def paying_communication(self) -> str | None:
        """The twelve digits that pay everything: the only open invoice's, else the case's."""
        still_open = self.open_invoices
        if len(still_open) == 1:
            return still_open[0].structured_communication
        return self.case_communication


@dataclass(frozen=True, slots=True)
class CheckState:
    failures: int
    window_start: dt.datetime | None
    locked_until: dt.datetime | None


def locate(connection: Connection, case_id: uuid.UUID) -> tuple[Any, Any] | None:
    """(creditor id, debtor id) of a case, found by its id alone (see the module note)."""
    row = connection.execute(
        select(CaseRow.creditor_id, CaseRow.debtor_id).where(CaseRow.id == case_id)
    ).first()
    return None if row is None else (row[0], row[1])


def _statements() -> tuple[Any, Any, Any, Any]:
    """The page's queries, built once: building SQLAlchemy expressions on each request
    cost more than running them."""
    c, d, e, dp = CaseRow, DebtorRow, EnrolmentRow, DebtorPersonaRow
    pr, pp, ds, p = PromiseRow, PaymentPlanRow, DisputeRow, PaymentRow
    i, o, pi, cv = InvoiceRow, OutboxRow, PlanInstalmentRow, ConversationRow
    mine: BindParameter[Any] = bindparam("creditor")
    case: BindParameter[Any] = bindparam("case")
    credit = (
        select(func.coalesce(func.sum(p.amount_minor), 0))
        .where(p.creditor_id == c.creditor_id, p.case_id == c.id, p.invoice_id.is_(None),
               p.reversed_at.is_(None))
        .scalar_subquery()
    )  # fmt: skip
    disputed = (
        select(ds.id).where(ds.creditor_id == c.creditor_id, ds.case_id == c.id, ds.state == "open")
    ).exists()
    conversation = (
        select(cv.id).where(cv.creditor_id == c.creditor_id, cv.case_id == c.id).scalar_subquery()
    )
    overview = (
        select(
            c.debtor_id, c.ref, c.status, c.structured_communication, d.name, d.language,
            d.postcode, d.birth_year, d.email, d.phone, d.street, d.email_consent,
            d.phone_consent, d.postal_consent, d.preferred_channel, d.remind_before_due,
            d.profiling_objection, dp.persona, e.persona.label("enrolled_as"),
            e.journey_key, e.journey_version, credit.label("credit"),
            pr.due_on.label("promise_on"), pr.amount_minor.label("promised"),
            pp.id.label("plan_id"), pp.paid_minor.label("plan_paid"),
            disputed.label("disputed"), conversation.label("conversation_id"),
        )
        .join(d, and_(d.id == c.debtor_id, d.creditor_id == c.creditor_id))
        .outerjoin(e, and_(e.case_id == c.id, e.creditor_id == c.creditor_id))
        .outerjoin(dp, and_(dp.debtor_id == d.id, dp.creditor_id == d.creditor_id))
        .outerjoin(pr, and_(pr.case_id == c.id, pr.creditor_id == c.creditor_id,
                            pr.state == "pending"))
        .outerjoin(pp, and_(pp.case_id == c.id, pp.creditor_id == c.creditor_id,
                            pp.state == "active"))
        .where(c.creditor_id == mine, c.id == case)
    )  # fmt: skip
    invoices = (
        select(
            i.ref, i.issue_date, i.due_date, i.amount_minor, i.paid_minor, i.currency,
            i.structured_communication,
        )
        .where(i.creditor_id == mine, i.case_id == case)
        .order_by(i.due_date, i.ref)
    )  # fmt: skip
    fees = (
        select(o.template, o.amount_minor, o.sent_at)
        .where(
            # Through the debtor: (creditor, debtor) is indexed, the case is not.
            o.creditor_id == mine, o.debtor_id == bindparam("debtor"), o.case_id == case,
            o.kind == "fee", o.status == "sent", o.amount_minor > 0,
        )
        .order_by(o.sent_at)
    )  # fmt: skip
    instalments = (
        select(pi.number, pi.due_on, pi.amount_minor)
        .where(pi.creditor_id == mine, pi.plan_id == bindparam("plan"))
        .order_by(pi.number)
    )
    return overview, invoices, fees, instalments


_OVERVIEW, _INVOICES, _FEES, _INSTALMENTS = _statements()


class PortalStore:
    """Reads and writes of one creditor's debtor pages inside the caller's transaction."""

    def __init__(self, connection: Connection, creditor_id: Any) -> None:
        self.connection = connection
        self.creditor_id = creditor_id

    def overview(self, case_id: Any) -> Overview | None:
        """The case as its page shows it, in three queries (four with a plan running): a
        case has at most one pending promise, one running plan and one open dispute."""
        mine = self.creditor_id
        row = self.connection.execute(_OVERVIEW, {"creditor": mine, "case": case_id}).first()
        if row is None:
            return None
        debtor = DebtorView(
            name=row.name, language=row.language, postcode=row.postcode,
            birth_year=row.birth_year, has_email=bool(row.email), has_phone=bool(row.phone),
            has_address=bool(row.street),
            consents={"email": row.email_consent, "sms": row.phone_consent,
                      "letter": row.postal_consent},
            preferred_channel=row.preferred_channel, remind_before_due=row.remind_before_due,
            profiling_objection=bool(row.profiling_objection),
        )  # fmt: skip
        journey = (
            f"{row.journey_key}@{row.journey_version}" if row.journey_key is not None else None
        )
        # The current assignment; the persona the case was enrolled as before any run.
        persona = row.persona if row.persona is not None else row.enrolled_as
        view = Overview(
            case_id, row.debtor_id, row.ref, row.status, row.structured_communication, debtor,
            None if debtor.profiling_objection else persona, journey,
            credit_minor=int(row.credit),
            promise=None if row.promise_on is None else (row.promise_on, int(row.promised)),
            dispute_open=bool(row.disputed),
            assigned_persona=row.persona,
            conversation_id=row.conversation_id,
        )  # fmt: skip
        keys = {"creditor": mine, "case": case_id, "debtor": row.debtor_id}
        view.invoices = [InvoiceView(*i) for i in self.connection.execute(_INVOICES, keys)]
        view.fees = [
            (str(kind), int(amount or 0), at)
            for kind, amount, at in self.connection.execute(_FEES, keys)
        ]
        if row.plan_id is not None:
            # Payments go to the instalments in order: the first ones are paid first.
            left = int(row.plan_paid)
            view.plan = []
            for number, due, amount in self.connection.execute(
                _INSTALMENTS, {"creditor": mine, "plan": row.plan_id}
            ):
                paid = min(left, int(amount))
                left -= paid
                view.plan.append((int(number), due, int(amount), paid))
        return view

    # -- the second factor ----------------------------------------------------------------

    def check_state(self, case_id: Any) -> CheckState:
        t = PortalCheckRow
        row = self.connection.execute(
            select(t.failures, t.window_start, t.locked_until).where(
                t.creditor_id == self.creditor_id, t.case_id == case_id
            )
        ).first()
        return CheckState(0, None, None) if row is None else CheckState(*row)

    def record_failure(
        self, case_id: Any, now: dt.datetime, window: dt.timedelta, limit: int, lock: dt.timedelta
    ) -> CheckState:
        """Count a wrong answer; the `limit`-th within `window` locks the page for `lock`."""
        state = self.check_state(case_id)
        fresh = state.window_start is None or now - state.window_start > window
        failures = 1 if fresh else state.failures + 1
        start = now if fresh else state.window_start
        locked = now + lock if failures >= limit else None
        self.clear_failures(case_id)
        self.connection.execute(
            insert(PortalCheckRow).values(
                case_id=case_id, creditor_id=self.creditor_id, failures=failures,
                window_start=start, locked_until=locked,
            )
        )  # fmt: skip
        return CheckState(failures, start, locked)

    def clear_failures(self, case_id: Any) -> None:
        self.connection.execute(
            delete(PortalCheckRow).where(
                PortalCheckRow.creditor_id == self.creditor_id, PortalCheckRow.case_id == case_id
            )
        )

    # -- what the debtor tells us ---------------------------------------------------------

    def add_csat(
        self,
        case_id: Any,
        context: str,
        score: int,
        comment: str | None,
        persona: str | None,
        journey: str | None,
        at: dt.datetime,
    ) -> None:
        self.connection.execute(
            insert(CsatRow).values(
                id=uuid.uuid4(), creditor_id=self.creditor_id, case_id=case_id, context=context,
                score=score, comment=comment, persona=persona, journey=journey, at=at,
            )
        )  # fmt: skip

    def set_preferences(
        self,
        debtor_id: Any,
        *,
        language: str,
        preferred_channel: str | None,
        remind_before_due: bool | None,
        opted_out: set[str],
        now: dt.datetime,
    ) -> None:
        """The debtor's choices. Ticking a channel off opts out of it; ticking it on again
        gives consent (it is the debtor's own request)."""
        values: dict[str, Any] = {
            "language": language,
            "preferred_channel": preferred_channel,
            "remind_before_due": remind_before_due,
            "updated_at": now,
        }
        for channel, column in CONSENT_COLUMNS.items():
            values[column] = "opted_out" if channel in opted_out else "granted"
        self.connection.execute(
            update(DebtorRow)
            .where(DebtorRow.creditor_id == self.creditor_id, DebtorRow.id == debtor_id)
            .values(**values)
        )
