"""KPIs, journey map and experiment results read from a hand-made history, on SQLite and
PostgreSQL: every expected figure is worked out by hand in the comments.

The history (creditor "acme", read at NOW = 2026-12-01 10:00 UTC, period 30 days: from
2026-11-01) has six cases, placed on 2026-08-01 (P) unless said otherwise:

C1 occasional, occasional@1 at `paid` (done, paid), arm pre_due.
   I1 100.00 EUR issued 07-01 due 07-31; paid 100.00 on 08-20 (19 days after placement).
C2 occasional, occasional@1 at `wait_due` (active), arm no_pre_due.
   I2 200.00 EUR issued 07-15 due 08-15; 50.00 paid 07-20 (before placement: history);
   60.00 paid 10-15 (75 days after P); a dispute adjustment of 30.00 on 11-01 (not
   money collected); 10.00 paid 12-10 (after NOW: ignored).
C3 struggling, struggling@1 at `send_r1` (active), no arm.
   I3 300.00 EUR issued 06-01 due 06-30; 20.00 paid 10-01 and reversed 10-05;
   300.00 paid 11-25 (116 days after P).
C4 struggling (from its debtor's persona: the enrolment has none), struggling@1 at
   `handover` (done, disputed). I4 80.00 EUR issued 09-01 due 10-01, placed 09-05;
   dispute opened 10-10, case closed 10-20.
C5 no persona, not enrolled. I5a 40.00 EUR issued 11-05 due 11-20 placed 11-10, paid
   11-25; I5b 25.00 GBP issued 11-01 due 11-15 placed 11-10, unpaid.
C6 occasional, occasional@1 at `holdout` (done, holdout), arm holdout.
   I6 20.00 EUR issued 07-01 due 07-31; unpaid.

Another creditor ("globex") has a case that looks like C1 in every way: none of it may
ever count for acme.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, insert, select

from parcours.analytics.experiments import (
    MeanSummary,
    RatioSummary,
    compare_means,
    compare_proportions,
    compare_ratios,
)
from parcours.analytics.kpis import ChannelCosts, KpiRow
from parcours.ingest import ImportKind
from parcours.runtime.arrangements import open_dispute, resolve_dispute
from parcours.runtime.payments import book_payment
from parcours.store.analytics import (
    START,
    experiment_results,
    journey_map,
    portfolio_kpis,
    weekly_activity,
)
from parcours.store.payments import PaymentStore
from parcours.store.schema import (
    CaseRow,
    ChatMessageRow,
    ConversationRow,
    CreditorRow,
    CsatRow,
    DebtorPersonaRow,
    DebtorRow,
    DisputeRow,
    EnrolmentRow,
    EventRow,
    InvoiceRow,
    OutboxRow,
    PaymentPlanRow,
    PaymentRow,
    PersonaAssignmentRow,
    PromiseRow,
)
from tests.ingest.test_import import INVOICE_HEADER, run_import, write_csv

UTC = dt.UTC
NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
P = dt.datetime(2026, 8, 1, 10, 0, tzinfo=UTC)


def at(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


def on(month: int, day: int) -> dt.date:
    return dt.date(2026, month, day)


class History:
    """Plain inserts of one creditor's facts, with exact dates and amounts."""

    def __init__(self, connection: Connection, name: str) -> None:
        self.c = connection
        self.creditor = uuid.uuid4()
        self.name = name
        self.n = 0
        connection.execute(
            insert(CreditorRow).values(id=self.creditor, name=name, created_at=at(1, 1))
        )

    def _ref(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def _add(self, table: Any, **values: Any) -> uuid.UUID:
        key = values.setdefault("id", uuid.uuid4())
        self.c.execute(insert(table).values(creditor_id=self.creditor, **values))
        return key  # type: ignore[no-any-return]

    def case(
        self,
        *,
        persona: str | None = None,
        opened: dt.datetime = P,
        closed: dt.datetime | None = None,
    ) -> tuple[uuid.UUID, uuid.UUID]:
        debtor = self._add(
            DebtorRow, ref=self._ref("D"), name="Test Debtor", language="fr", source_digest=0,
            created_at=opened, updated_at=opened,
        )  # fmt: skip
        if persona is not None:
            assignment = self._add(
                PersonaAssignmentRow, debtor_id=debtor, persona=persona, confidence=0.9,
                source="survey", survey_candidate=False, assigned_at=opened, reasons=[],
            )  # fmt: skip
            self.c.execute(
                insert(DebtorPersonaRow).values(
                    debtor_id=debtor, creditor_id=self.creditor, assignment_id=assignment,
                    persona=persona, source="survey", confidence=0.9, survey_candidate=False,
                )
            )  # fmt: skip
        case = self._add(
            CaseRow, debtor_id=debtor, ref=self._ref("C"), status="closed" if closed else "open",
            opened_at=opened, closed_at=closed,
        )  # fmt: skip
        return case, debtor

    def invoice(
        self,
        case: uuid.UUID,
        amount_minor: int,
        issued: dt.date,
        due: dt.date,
        *,
        placed: dt.datetime = P,
        currency: str = "EUR",
    ) -> uuid.UUID:
        return self._add(
            InvoiceRow, case_id=case, ref=self._ref("I"), amount_minor=amount_minor,
            currency=currency, issue_date=issued, due_date=due,
            structured_communication=f"{self.n:012d}", source_digest=0, created_at=placed,
            updated_at=placed,
        )  # fmt: skip

    def payment(
        self,
        case: uuid.UUID,
        invoice: uuid.UUID,
        amount_minor: int,
        paid: dt.datetime,
        *,
        ref: str | None = None,
        reversed_at: dt.datetime | None = None,
        currency: str = "EUR",
    ) -> None:
        self._add(
            PaymentRow, case_id=case, invoice_id=invoice, ref=ref or self._ref("P"),
            amount_minor=amount_minor, currency=currency, paid_at=paid, source="statement",
            source_digest=0, created_at=paid, reversed_at=reversed_at,
        )  # fmt: skip

    def enrol(
        self,
        case: uuid.UUID,
        journey: str,
        node: str,
        *,
        persona: str | None,
        done: bool = False,
        exit_reason: str | None = None,
        arms: dict[str, str] | None = None,
    ) -> None:
        key, version = journey.split("@")
        debtor = self.c.execute(select(CaseRow.debtor_id).where(CaseRow.id == case)).scalar_one()
        self.c.execute(
            insert(EnrolmentRow).values(
                case_id=case, creditor_id=self.creditor, debtor_id=debtor, journey_key=key,
                journey_version=int(version), persona=persona, node_id=node, entered_at=P,
                enrolled_at=P, wake_at=None, step=0, done=done, exit_reason=exit_reason,
                arms=arms or {},
            )
        )  # fmt: skip

    def outbox(
        self,
        case: uuid.UUID,
        debtor: uuid.UUID,
        journey: str,
        node: str,
        step: int,
        channel: str | None,
        sent: dt.datetime,
        *,
        kind: str = "send",
        status: str = "sent",
        reason: str | None = None,
        units: int | None = None,
    ) -> None:
        self._add(
            OutboxRow, attempt_id=self.name + self._ref("A"), case_id=case, debtor_id=debtor,
            journey=journey, node_id=node, step=step, kind=kind, channel=channel,
            template="t", reminder=False, status=status, not_before=sent, reason=reason,
            created_at=sent, sent_at=sent if status == "sent" else None, units=units,
        )  # fmt: skip

    def event(self, case: uuid.UUID, debtor: uuid.UUID, kind: str, when: dt.datetime) -> None:
        self._add(
            EventRow, case_id=case, debtor_id=debtor, type=kind, occurred_at=when,
            recorded_at=when, payload={},
        )  # fmt: skip

    def promise(
        self, case: uuid.UUID, made: dt.datetime, state: str, settled: dt.datetime | None
    ) -> None:
        self._add(
            PromiseRow, case_id=case, amount_minor=1000, currency="EUR", due_on=made.date(),
            made_at=made, state=state, settled_at=settled,
        )  # fmt: skip

    def csat(self, case: uuid.UUID, score: int, when: dt.datetime) -> None:
        self._add(CsatRow, case_id=case, context="payment", score=score, at=when)

    def conversation(
        self,
        case: uuid.UUID,
        debtor: uuid.UUID,
        opened: dt.datetime,
        *,
        waiting_since: dt.datetime | None = None,
        due: dt.datetime | None = None,
    ) -> uuid.UUID:
        return self._add(
            ConversationRow, case_id=case, debtor_id=debtor, sla_hours=24, opened_at=opened,
            last_message_at=opened, waiting_since=waiting_since, due_at=due,
        )  # fmt: skip

    def chat(
        self, conversation: uuid.UUID, author: str, when: dt.datetime, *, late: bool = False
    ) -> None:
        self._add(
            ChatMessageRow, conversation_id=conversation, author=author, body="…", at=when,
            late=late,
        )  # fmt: skip


def build(engine: Engine) -> tuple[uuid.UUID, uuid.UUID]:
    """Write the history of the module docstring; returns (acme, globex)."""
    with engine.begin() as connection:
        h = History(connection, "acme")
        # C1
        c1, d1 = h.case(persona="occasional")
        i1 = h.invoice(c1, 10_000, on(7, 1), on(7, 31))
        h.payment(c1, i1, 10_000, at(8, 20))
        h.enrol(c1, "occasional@1", "paid", persona="occasional", done=True,
                exit_reason="paid", arms={"exp": "pre_due"})  # fmt: skip
        h.outbox(c1, d1, "occasional@1", "send_pre_due", 1, "email", at(8, 2, 9))
        h.outbox(c1, d1, "occasional@1", "send_pre_due", 1, "sms", at(8, 2, 9), units=2)
        h.event(c1, d1, "message.delivered", at(8, 2, 9, 1))
        h.event(c1, d1, "message.clicked", at(8, 3, 12))
        h.event(c1, d1, "payment.booked", at(8, 20, 6))
        h.promise(c1, at(11, 28), "kept", at(12, 2))  # settled after NOW: not judged yet
        h.csat(c1, 5, at(8, 21))
        # C2
        c2, d2 = h.case(persona="occasional")
        i2 = h.invoice(c2, 20_000, on(7, 15), on(8, 15))
        h.payment(c2, i2, 5_000, at(7, 20))
        h.payment(c2, i2, 6_000, at(10, 15))
        h.payment(c2, i2, 3_000, at(11, 1), ref="adjustment:d2")
        h.payment(c2, i2, 1_000, at(12, 10))
        h.enrol(c2, "occasional@1", "wait_due", persona="occasional",
                arms={"exp": "no_pre_due"})  # fmt: skip
        h.outbox(c2, d2, "occasional@1", "send_r1", 1, "email", at(8, 2, 9))
        h.outbox(c2, d2, "occasional@1", "letter", 2, "letter", at(8, 20, 9))
        h.outbox(c2, d2, "occasional@1", "call", 3, "phone", at(9, 10, 14), kind="task",
                 reason="no_answer")  # fmt: skip
        h.outbox(c2, d2, "occasional@1", "call", 4, "phone", at(9, 12, 14), kind="task",
                 reason="right_party")  # fmt: skip
        h.outbox(c2, d2, "occasional@1", "send_r2", 5, "email", at(9, 1, 9), status="skipped")
        h.outbox(c2, d2, "occasional@1", "send_r3", 6, "sms", at(12, 5, 9))  # after NOW
        h.event(c2, d2, "message.replied", at(8, 21, 8))
        h.event(c2, d2, "call.conversation", at(9, 12, 14))
        h.promise(c2, at(10, 1), "kept", at(10, 16))
        h.promise(c2, at(10, 20), "broken", at(11, 6))
        h.csat(c2, 2, at(10, 2))
        talk = h.conversation(c2, d2, at(10, 2))
        h.chat(talk, "agent", at(10, 3))
        # C3
        c3, d3 = h.case(persona="struggling")
        i3 = h.invoice(c3, 30_000, on(6, 1), on(6, 30))
        h.payment(c3, i3, 2_000, at(10, 1), reversed_at=at(10, 5))
        h.payment(c3, i3, 30_000, at(11, 25))
        h.enrol(c3, "struggling@1", "send_r1", persona="struggling")
        h.outbox(c3, d3, "struggling@1", "send_r1", 0, "sms", at(9, 5, 9), units=1)
        h.outbox(c3, d3, "struggling@1", "call", 1, "phone", at(10, 1, 11), kind="task",
                 reason="promise")  # fmt: skip
        h.outbox(c3, d3, "struggling@1", "fee", 2, None, at(10, 2, 9), kind="fee")
        h.event(c3, d3, "message.opened", at(9, 5, 10))
        h._add(
            PaymentPlanRow, case_id=c3, total_minor=30_000, currency="EUR",
            created_at=at(9, 1), source="debtor", state="completed", settled_at=at(11, 25),
        )  # fmt: skip
        h.csat(c3, 4, at(11, 26))
        h.csat(c3, 5, at(11, 27))
        h.conversation(c3, d3, at(11, 29), waiting_since=at(11, 29, 10), due=at(11, 30, 10))
        # C4
        c4, d4 = h.case(persona="struggling", opened=at(9, 5, 10), closed=at(10, 20))
        h.invoice(c4, 8_000, on(9, 1), on(10, 1), placed=at(9, 5, 10))
        h.enrol(c4, "struggling@1", "handover", persona=None, done=True,
                exit_reason="disputed")  # fmt: skip
        h.outbox(c4, d4, "struggling@1", "send_r1", 0, "email", at(9, 6, 9))
        h.event(c4, d4, "message.opted_out", at(9, 7))
        h.event(c4, d4, "complaint.made", at(9, 8))
        h._add(
            DisputeRow, case_id=c4, reason="not_mine", opened_at=at(10, 10), opened_by="debtor",
            state="upheld", resolved_at=at(10, 20),
        )  # fmt: skip
        h.promise(c4, at(9, 20), "cancelled", at(10, 10))
        # C5
        c5, d5 = h.case(opened=at(11, 10, 10))
        i5 = h.invoice(c5, 4_000, on(11, 5), on(11, 20), placed=at(11, 10, 10))
        h.invoice(c5, 2_500, on(11, 1), on(11, 15), placed=at(11, 10, 10), currency="GBP")
        h.payment(c5, i5, 4_000, at(11, 25))
        h.event(c5, d5, "question.asked", at(11, 26, 10))  # never contacted: not a response
        h.promise(c5, at(11, 25), "pending", None)
        h.csat(c5, 1, at(12, 3))  # after NOW
        talk = h.conversation(c5, d5, at(11, 26, 10))
        h.chat(talk, "debtor", at(11, 26, 10))
        h.chat(talk, "agent", at(11, 27, 12), late=True)
        # C6
        c6, _ = h.case(persona="occasional")
        h.invoice(c6, 2_000, on(7, 1), on(7, 31))
        h.enrol(c6, "occasional@1", "holdout", persona="occasional", done=True,
                exit_reason="holdout", arms={"exp": "holdout"})  # fmt: skip

        # Another tenant, the same kinds of facts: never counted for acme.
        g = History(connection, "globex")
        x, dx = g.case(persona="occasional")
        ix = g.invoice(x, 99_900, on(7, 1), on(7, 31))
        g.payment(x, ix, 99_900, at(8, 5))
        g.enrol(x, "occasional@1", "paid", persona="occasional", done=True,
                exit_reason="paid", arms={"exp": "pre_due"})  # fmt: skip
        g.outbox(x, dx, "occasional@1", "send_pre_due", 1, "email", at(8, 2, 9))
        g.outbox(x, dx, "occasional@1", "call", 2, "phone", at(8, 3, 9), kind="task",
                 reason="right_party")  # fmt: skip
        g.event(x, dx, "message.clicked", at(8, 2, 10))
        g.event(x, dx, "message.opted_out", at(8, 2, 11))
        g.promise(x, at(8, 3), "broken", at(8, 20))
        g.csat(x, 1, at(8, 6))
        talk = g.conversation(x, dx, at(8, 4), waiting_since=at(8, 4), due=at(8, 5))
        g.chat(talk, "agent", at(8, 4, 12), late=True)
        return h.creditor, g.creditor


def kpis(engine: Engine, creditor: uuid.UUID, **kwargs: Any) -> list[KpiRow]:
    with engine.begin() as connection:
        return portfolio_kpis(connection, creditor, NOW, **kwargs)


def test_portfolio_kpis_match_the_hand_computed_figures(engine: Engine) -> None:
    acme, _ = build(engine)
    (row,) = kpis(engine, acme)
    assert row.group == {}
    assert row.currency == "EUR"  # four EUR invoices out of five... six: GBP is one
    assert row.cases == 6
    # Placed: C1 100 + C2 (200 - 50 history) + C3 300 + C4 80 + C5 40 (EUR only) + C6 20.
    assert row.placed_minor == 69_000
    # Collected: C1 100 + C2 60 (no adjustment, nothing after NOW) + C3 300 (the reversed
    # 20 is not) + C5 40.
    assert row.collected_minor == 50_000
    assert row.collection_rate == pytest.approx(50_000 / 69_000)
    # At 30 and 60 days: invoices placed by 10-02 / 09-02 (all but C5's); only C1's 100
    # was in within 60 days. At 90 and 120: placed by 09-02 (not C4, C5): C2's 60 came
    # on day 75, C3's 300 on day 116.
    assert row.collection_rate_at == {
        30: pytest.approx(10_000 / 65_000),
        60: pytest.approx(10_000 / 65_000),
        90: pytest.approx(16_000 / 57_000),
        120: pytest.approx(46_000 / 57_000),
    }
    # Paid in full: C1 and C3 (C5's GBP invoice is still open) of 6 with something owed.
    assert row.cases_paid == 2
    assert row.paid_rate == pytest.approx(2 / 6)
    # Days to pay: C1 08-20 - 07-31 = 20; C3 11-25 - 06-30 = 148.
    assert (row.days_to_pay_mean, row.days_to_pay_median) == (84.0, 84.0)
    # Receivables at NOW (EUR): C2 200 - 50 - 60 - 30 = 60, C6 20 (C4 is closed) = 80.
    # Invoiced in the period (after 11-01): C5's 40. DSO = 80 / 40 x 30 = 60 days.
    assert row.receivables_minor == 8_000
    assert row.dso_days == pytest.approx(60.0)
    # CEI: begin AR (issued by 11-01, as of 11-01) C2 60 + C3 300 + C6 20 = 380 (C1 was
    # paid, C4 closed); (380 + 40 - 80) / (380 + 40 - 0 current) = 340 / 420.
    assert row.cei == pytest.approx(340 / 420)
    # Buckets on 11-01 -> 12-01: C1 current -> current; C2 (due 08-15) 78 days -> 108:
    # 61-90 -> 90+ (roll); C3 124 days -> paid: 90+ -> current (cure); C6 93 -> 123:
    # 90+ -> 90+. C4 closed before, C5 placed after the start: not counted.
    assert row.delinquent_at_start == 3
    assert row.cure_rate == pytest.approx(1 / 3)
    assert row.roll_rate == pytest.approx(1 / 3)
    # Promises made by NOW: 5; kept by NOW: C2's first (C1's is settled after NOW);
    # broken: C2's second; C4's cancelled and C5's pending are not judged.
    assert (row.promises_made, row.promises_kept, row.promises_broken) == (5, 1, 1)
    assert row.promise_kept_rate == pytest.approx(0.5)
    assert (row.plans_made, row.plans_completed, row.plans_broken) == (1, 1, 0)
    # Sent by NOW: e-mails C1, C2, C4; SMS C1 (2 segments), C3 (1); C2's letter. Calls:
    # C2 no answer, C2 right party, C3 promise -> 2 of 3 with the right person.
    assert row.messages == {"email": 3, "sms": 2, "letter": 1}
    assert (row.calls, row.call_conversations) == (3, 2)
    assert row.right_party_rate == pytest.approx(2 / 3)
    assert row.contacts == 9
    assert row.contacts_per_case == pytest.approx(9 / 6)
    assert row.contacts_per_unit_collected == pytest.approx(9 / 500)
    # Contacted: C1-C4. Responded: C1 clicked, C2 replied (C5 asked but was never
    # contacted; C3 only opened). Opted out: C4, of 6 cases.
    assert (row.contacted, row.responded) == (4, 2)
    assert row.response_rate == pytest.approx(0.5)
    assert row.opted_out == 1
    assert row.opt_out_rate == pytest.approx(1 / 6)
    assert row.complaints == 1
    assert row.complaint_rate == pytest.approx(1 / 6)
    assert row.disputed == 1
    assert row.dispute_rate == pytest.approx(1 / 6)
    # Cost: 3 e-mails x 0.002 + 3 SMS segments x 0.08 + a letter 1.80 + 3 calls x 2.50 +
    # 2 chat answers x 3 minutes x 0.50 = 12.546; per euro collected: 12.546 / 500.
    assert row.cost == Decimal("12.546")
    assert row.cost_to_collect == pytest.approx(12.546 / 500)
    # CSAT by NOW: 5, 2, 4, 5 (C5's 1 came after): mean 4, promoters 2/4, detractors 1/4.
    assert row.csat.answers == 4
    assert row.csat.mean == pytest.approx(4.0)
    assert row.csat.counts == (0, 1, 0, 1, 2)
    assert (row.csat.promoters, row.csat.detractors) == (0.5, 0.25)
    assert row.csat.net_score == pytest.approx(0.25)
    # SLA: C5's late answer + C3 waiting past its due time; agents answered twice.
    assert (row.agent_answers, row.late_answers, row.overdue_waiting) == (2, 1, 1)
    assert row.sla_breaches == 2


def test_kpis_by_persona_split_the_portfolio_and_add_up_to_it(engine: Engine) -> None:
    acme, _ = build(engine)
    rows = kpis(engine, acme, group_by=("persona",), total=True)
    by = {r.group.get("persona"): r for r in rows}
    assert list(by) == ["(none)", "occasional", "struggling", None]
    occasional, struggling, unknown = by["occasional"], by["struggling"], by["(none)"]
    # occasional: C1, C2, C6; struggling: C3, C4 (persona from the debtor); none: C5.
    assert (occasional.cases, occasional.placed_minor, occasional.collected_minor) == (
        3, 27_000, 16_000,
    )  # fmt: skip
    assert (struggling.cases, struggling.placed_minor, struggling.collected_minor) == (
        2, 38_000, 30_000,
    )  # fmt: skip
    assert (unknown.cases, unknown.placed_minor, unknown.collected_minor) == (1, 4_000, 4_000)
    assert occasional.messages == {"email": 1 + 1, "sms": 1, "letter": 1}
    assert occasional.calls == 2 and struggling.calls == 1
    assert occasional.csat.counts == (0, 1, 0, 0, 1)
    assert struggling.csat.counts == (0, 0, 0, 1, 1)
    assert occasional.days_to_pay_median == 20.0 and struggling.days_to_pay_median == 148.0
    # Transitions: occasional C1 current, C2 roll, C6 stays 90+; struggling C3 cures.
    assert (occasional.cure_rate, occasional.roll_rate) == (0.0, 0.5)
    assert (struggling.cure_rate, struggling.roll_rate) == (1.0, 0.0)
    assert unknown.late_answers == 1 and struggling.overdue_waiting == 1
    total = by[None]
    (whole,) = kpis(engine, acme)
    assert total.group == {}
    assert total == whole


def test_kpis_by_journey_node_arm_and_week(engine: Engine) -> None:
    acme, _ = build(engine)
    by_node = {
        (r.group["journey"], r.group["node"]): r.cases
        for r in kpis(engine, acme, group_by=("node",))
    }
    # "node" alone also groups by journey: node ids repeat across journeys.
    assert by_node == {
        ("(not enrolled)", "(not enrolled)"): 1,
        ("occasional@1", "holdout"): 1,
        ("occasional@1", "paid"): 1,
        ("occasional@1", "wait_due"): 1,
        ("struggling@1", "handover"): 1,
        ("struggling@1", "send_r1"): 1,
    }
    arms = {r.group["arm"]: r for r in kpis(engine, acme, group_by=("arm",), experiment="exp")}
    assert sorted(arms) == ["(not in experiment)", "holdout", "no_pre_due", "pre_due"]
    assert (arms["pre_due"].collected_minor, arms["pre_due"].placed_minor) == (10_000, 10_000)
    assert arms["(not in experiment)"].cases == 3
    weeks = {r.group["week"]: r.cases for r in kpis(engine, acme, group_by=("week",))}
    # Placed on Saturday 08-01 (week of Monday 07-27), C4 on Saturday 09-05 (08-31), C5
    # on Tuesday 11-10 (11-09).
    assert weeks == {"2026-07-27": 4, "2026-08-31": 1, "2026-11-09": 1}
    with pytest.raises(ValueError, match="name the experiment"):
        kpis(engine, acme, group_by=("arm",))
    with pytest.raises(ValueError, match="not in"):
        kpis(engine, acme, group_by=("debtor",))


def test_another_creditors_data_never_counts(engine: Engine) -> None:
    acme, globex = build(engine)
    (theirs,) = kpis(engine, globex)
    assert (theirs.cases, theirs.placed_minor, theirs.collected_minor) == (1, 99_900, 99_900)
    assert (theirs.calls, theirs.csat.counts, theirs.late_answers) == (1, (1, 0, 0, 0, 0), 1)
    # acme's figures are those of the first test: none of globex's case, click, opt-out,
    # promise, answer or chat crept in.
    (ours,) = kpis(engine, acme)
    assert (ours.cases, ours.placed_minor, ours.calls, ours.opted_out) == (6, 69_000, 3, 1)
    assert ours.csat.answers == 4 and ours.late_answers == 1 and ours.promises_broken == 1
    with engine.begin() as connection:
        ours_map = journey_map(connection, acme, "occasional@1", NOW)
        result = experiment_results(connection, acme, "exp", NOW)
    paid = ours_map.node("paid")
    assert paid is not None and paid.exited == 1  # globex's paid case is not there
    assert {a.arm: a.cases for a in result.arms} == {"holdout": 1, "pre_due": 1, "no_pre_due": 1}


def test_money_is_read_in_the_currency_asked_and_costs_are_the_creditors(
    engine: Engine,
) -> None:
    acme, _ = build(engine)
    (gbp,) = kpis(
        engine, acme, currency="GBP",
        costs=ChannelCosts(currency="GBP", email=Decimal("1"), call=Decimal("0")),
    )  # fmt: skip
    assert (gbp.placed_minor, gbp.collected_minor, gbp.collection_rate) == (2_500, 0, 0.0)
    # 3 e-mails at 1 + 3 SMS segments at 0.08 + a letter at 1.80 + chat 2 x 3 x 0.50.
    assert gbp.cost == Decimal("3") + Decimal("0.24") + Decimal("1.80") + Decimal("3.00")
    assert gbp.cost_to_collect is None  # nothing collected in GBP
    with pytest.raises(ValueError, match="channel costs are in EUR"):
        kpis(engine, acme, currency="GBP", costs=ChannelCosts())


def test_the_cut_off_reads_the_portfolio_as_it_stood(engine: Engine) -> None:
    acme, _ = build(engine)
    with engine.begin() as connection:
        (then,) = portfolio_kpis(connection, acme, at(9, 1, 12))
    # On 09-01: C1-C3 and C6 placed (C4 and C5 later); only C1's 100 collected.
    assert (then.cases, then.placed_minor, then.collected_minor) == (4, 57_000, 10_000)
    assert then.messages == {"email": 2, "sms": 1, "letter": 1}
    assert then.calls == 0 and then.csat.answers == 1


def test_journey_map_counts_nodes_outcomes_and_edges(engine: Engine) -> None:
    acme, _ = build(engine)
    with engine.begin() as connection:
        result = journey_map(connection, acme, "occasional@1", NOW, window_days=7)
    nodes = {n.node_id: n for n in result.nodes}
    assert set(nodes) == {
        "call",
        "holdout",
        "letter",
        "paid",
        "send_pre_due",
        "send_r1",
        "send_r2",
        "wait_due",
    }  # fmt: skip  ("send_r3" was decided after NOW)
    pre_due = nodes["send_pre_due"]
    # C1: e-mail and SMS of one step are one touch; delivered and clicked within the
    # week; the payment came on 08-20, after the window.
    assert (pre_due.reached, pre_due.touches, pre_due.touched_cases) == (1, 1, 1)
    assert pre_due.sent == {"email": 1, "sms": 1}
    assert {k: v for k, v in pre_due.outcomes.items() if v} == {"delivered": 1, "clicked": 1}
    # C2: the first e-mail got nothing (stalled); the reply came after the letter.
    assert nodes["send_r1"].outcomes["stalled"] == 1
    assert {k: v for k, v in nodes["letter"].outcomes.items() if v} == {"replied": 1}
    # Two call attempts of C2: the first until the second (no answer: stalled), the
    # second reached the right person.
    call = nodes["call"]
    assert (call.touches, call.touched_cases, call.sent) == (2, 1, {"phone": 2})
    assert (call.outcomes["conversation"], call.outcomes["stalled"]) == (1, 1)
    assert nodes["send_r2"].outbox == {"skipped": 1} and nodes["send_r2"].touches == 0
    assert (nodes["wait_due"].current, nodes["wait_due"].reached) == (1, 1)
    assert (nodes["paid"].exited, nodes["paid"].exit_reasons) == (1, {"paid": 1})
    assert nodes["holdout"].exit_reasons == {"holdout": 1}
    edges = {(e.source, e.target): e.cases for e in result.edges}
    assert edges == {
        (START, "send_pre_due"): 1,  # C1's first touch
        (START, "send_r1"): 1,  # C2's
        (START, "holdout"): 1,  # C6, never touched
        ("send_r1", "letter"): 1,
        ("letter", "call"): 1,
        ("call", "call"): 1,
        ("send_pre_due", "paid"): 1,  # C1's last touch to where it left
        ("call", "wait_due"): 1,  # C2's to where it waits
    }
    with engine.begin() as connection:
        with pytest.raises(ValueError, match="key@version"):
            journey_map(connection, acme, "occasional", NOW)
        # A shorter window: C1's click came 27 hours after the message.
        short = journey_map(connection, acme, "occasional@1", NOW, window_days=1)
    assert short.node("send_pre_due").outcomes["clicked"] == 0  # type: ignore[union-attr]


def test_experiment_results_compare_each_arm_with_the_control(engine: Engine) -> None:
    acme, _ = build(engine)
    with engine.begin() as connection:
        result = experiment_results(connection, acme, "exp", NOW)
    assert result.control == "holdout"  # the default control when no arm is "control"
    assert [a.arm for a in result.arms] == ["holdout", "no_pre_due", "pre_due"]
    holdout, no_pre_due, pre_due = result.arms
    assert holdout.is_control and holdout.comparisons == {}
    # pre_due is C1: 100 placed and paid, day 20, CSAT 5; holdout is C6: 20 unpaid.
    assert (pre_due.cases_placed, pre_due.cases_paid, pre_due.collection_rate) == (1, 1, 1.0)
    assert pre_due.comparisons["paid_rate"] == compare_proportions("paid_rate", 1, 1, 0, 1)
    assert pre_due.comparisons["collection_rate"] == compare_ratios(
        "collection_rate",
        RatioSummary(1, 10_000, 10_000, 10_000**2, 10_000**2, 10_000**2),
        RatioSummary(1, 2_000, 0, 2_000**2, 0, 0),
    )
    assert pre_due.comparisons["csat"] == compare_means(
        "csat", MeanSummary(1, 5, 25), MeanSummary(0, 0, 0)
    )
    assert pre_due.days_to_pay_mean == 20.0
    # no_pre_due is C2: 60 collected of 150 placed.
    assert no_pre_due.collection_rate == pytest.approx(0.4)
    assert no_pre_due.comparisons["collection_rate"].uplift == pytest.approx(0.4)
    assert [(a.persona, a.arm) for a in result.by_persona] == [
        ("occasional", "holdout"), ("occasional", "no_pre_due"), ("occasional", "pre_due"),
    ]  # fmt: skip
    with engine.begin() as connection:
        other = experiment_results(connection, acme, "exp", NOW, control="no_pre_due")
        none = experiment_results(connection, acme, "nothing", NOW)
        with pytest.raises(ValueError, match="no arm"):
            experiment_results(connection, acme, "exp", NOW, control="missing")
    assert other.arms[0].arm == "no_pre_due"
    assert none.arms == []


def test_experiment_statistics_from_the_store_match_the_raw_cases(engine: Engine) -> None:
    """Two arms of 40 cases: the sums the store reads give the same tests as the cases."""
    with engine.begin() as connection:
        h = History(connection, "acme")
        cases: dict[str, list[tuple[int, int]]] = {"champion": [], "challenger": []}
        for n in range(80):
            arm = "champion" if n % 2 else "challenger"
            case, _ = h.case(persona="engaged")
            placed = 1_000 + 37 * n
            paid = placed if n % 3 == 0 else (placed // 2 if n % 5 == 0 else 0)
            if arm == "challenger" and n % 4 == 0:
                paid = placed
            invoice = h.invoice(case, placed, on(7, 1), on(7, 31))
            if paid:
                h.payment(case, invoice, paid, at(9, 1))
            h.enrol(case, "engaged@1", "done", persona="engaged", arms={"ab": arm})
            cases[arm].append((placed, paid))
            h.csat(case, 1 + n % 5, at(9, 2))
    with engine.begin() as connection:
        result = experiment_results(connection, h.creditor, "ab", NOW, control="champion")

    def ratio(pairs: list[tuple[int, int]]) -> RatioSummary:
        return RatioSummary(
            len(pairs), sum(x for x, _ in pairs), sum(y for _, y in pairs),
            sum(x * x for x, _ in pairs), sum(y * y for _, y in pairs),
            sum(x * y for x, y in pairs),
        )  # fmt: skip

    challenger = next(a for a in result.arms if a.arm == "challenger")
    expected = compare_ratios(
        "collection_rate", ratio(cases["challenger"]), ratio(cases["champion"])
    )
    got = challenger.comparisons["collection_rate"]
    assert got.uplift == pytest.approx(expected.uplift)
    assert got.p_value == pytest.approx(expected.p_value)
    full = {arm: sum(1 for x, y in pairs if x == y) for arm, pairs in cases.items()}
    assert challenger.comparisons["paid_rate"] == compare_proportions(
        "paid_rate", full["challenger"], 40, full["champion"], 40
    )
    scores = {
        arm: MeanSummary.of(1 + n % 5 for n in range(80) if (n % 2 == 1) == (arm == "champion"))
        for arm in cases
    }
    assert challenger.comparisons["csat"] == compare_means(
        "csat", scores["challenger"], scores["champion"]
    )


def test_weekly_activity_buckets_facts_by_their_own_week(engine: Engine) -> None:
    acme, _ = build(engine)
    with engine.begin() as connection:
        weeks = weekly_activity(connection, acme, NOW, weeks=6)
    assert [w.week for w in weeks] == [
        "2026-10-26", "2026-11-02", "2026-11-09", "2026-11-16", "2026-11-23", "2026-11-30",
    ]  # fmt: skip
    by = {w.week: w for w in weeks}
    # Week of 11-09: C5's EUR invoice placed (40). Week of 11-23: C3's 300 and C5's 40
    # paid; CSAT 4 and 5; C5's late answer. Week of 10-26: the adjustment of 11-01 is
    # not collected money.
    assert by["2026-11-09"].placed_minor == 4_000
    assert by["2026-11-23"].collected_minor == 34_000
    assert by["2026-10-26"].collected_minor == 0
    assert by["2026-11-23"].csat.counts == (0, 0, 0, 1, 1)
    assert by["2026-11-23"].late_answers == 1
    assert by["2026-11-02"].promises_broken == 1  # C2's, found broken on 11-06
    assert sum(w.collected_minor for w in weeks) == 34_000


def test_kpis_of_a_portfolio_written_by_the_real_import_and_booking_paths(
    engine: Engine, tmp_path: Path
) -> None:
    """Imported on 08-01 (the placement): D1 owes F1 100.00 (due 07-31, of which 20.00
    was paid on 07-20, before placement) and F2 50.00 (due 08-10); D2 owes F3 80.00."""
    run_import(engine, ImportKind.DEBTORS, write_csv(tmp_path, "d.csv", "debtor_ref,name",
               ["D1,Ann Peeters", "D2,Bob Jacobs"]), now=P)  # fmt: skip
    invoices = [
        "F1,D1,100.00,EUR,2026-07-01,2026-07-31,",
        "F2,D1,50.00,EUR,2026-07-10,2026-08-10,",
        "F3,D2,80.00,EUR,2026-07-01,2026-07-31,",
    ]
    run_import(engine, ImportKind.INVOICES, write_csv(tmp_path, "i.csv", INVOICE_HEADER,
               invoices), now=P)  # fmt: skip
    run_import(engine, ImportKind.PAYMENTS, write_csv(tmp_path, "p.csv",
               "invoice_ref,amount,paid_at", ["F1,20.00,2026-07-20"]), now=P)  # fmt: skip
    with engine.connect() as connection:
        creditor = connection.execute(select(CreditorRow.id)).scalar_one()
    # D1 pays 90.00 on 08-11: 80.00 settles F1 (oldest first), 10.00 goes to F2.
    with engine.begin() as connection:
        store = PaymentStore(connection, creditor)
        d1 = store.case_by_ref("C-D1")
        assert d1 is not None
        book_payment(connection, creditor, d1, 9_000, "EUR", at(8, 11), "T1", "api", at(8, 11, 12))
    # D2 disputes; upheld with 30.00 off (an adjustment, not money); pays 50.00 on 09-10.
    open_dispute(engine, creditor, "C-D2", "amount_wrong", None, at(8, 20), source="debtor",
                 actor="debtor")  # fmt: skip
    resolve_dispute(engine, creditor, "C-D2", "upheld", at(9, 1), actor="agent",
                    adjustment_minor=3_000)  # fmt: skip
    with engine.begin() as connection:
        d2 = PaymentStore(connection, creditor).case_by_ref("C-D2")
        assert d2 is not None
        book_payment(connection, creditor, d2, 5_000, "EUR", at(9, 10), "T2", "api", at(9, 10, 12))
    (row,) = kpis(engine, creditor)
    # Placed: F1 100 - 20 history + F2 50 + F3 80 = 210; collected 90 + 50 = 140.
    assert (row.cases, row.placed_minor, row.collected_minor) == (2, 21_000, 14_000)
    # Within 30 days of 08-01: D1's 90; within 60: D2's 50 (day 40) too.
    assert row.collection_rate_at[30] == pytest.approx(9_000 / 21_000)
    assert row.collection_rate_at[60] == pytest.approx(14_000 / 21_000)
    # Neither is paid in full: D1 owes 40 on F2; D2's F3 was settled partly by the
    # adjustment. What is still owed: F2's 40.
    assert (row.cases_paid, row.receivables_minor) == (0, 4_000)
    assert (row.disputed, row.dispute_rate) == (1, 0.5)
