"""Chat in the store on SQLite and PostgreSQL: the answer clock (set, kept, cleared, late),
the agents' queue, breaches, and tenant isolation; a property test on random exchanges."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select, update

from parcours.ingest import ImportKind
from parcours.store.chat import PREVIEW_CHARS, Author, ChatStore, as_uuid
from parcours.store.schema import (
    CaseRow,
    CreditorRow,
    DebtorPersonaRow,
    DebtorRow,
    PersonaAssignmentRow,
)
from tests.ingest.test_import import run_import, write_csv

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
DEBTOR_HEADER = "debtor_ref,name,email,phone,language"
INVOICE_HEADER = "invoice_ref,debtor_ref,amount,currency,issue_date,due_date"


@dataclass(frozen=True, slots=True)
class ChatCase:
    creditor_id: uuid.UUID
    case_id: uuid.UUID
    debtor_id: uuid.UUID
    ref: str


def make_chat_cases(
    engine: Engine, tmp_path: Path, debtors: list[str], *, creditor: str = "acme"
) -> dict[str, ChatCase]:
    """Debtors (`ref,name,email,phone,language` rows) owing one invoice each; their cases
    by case ref (`C-<debtor ref>`)."""
    folder = tmp_path / creditor
    folder.mkdir(exist_ok=True)
    run_import(
        engine,
        ImportKind.DEBTORS,
        write_csv(folder, "d.csv", DEBTOR_HEADER, debtors),
        creditor=creditor,
    )
    invoices = [
        f"{creditor}-F{row.split(',')[0]},{row.split(',')[0]},100.00,EUR,2026-11-01,2026-12-10"
        for row in debtors
    ]
    report = run_import(
        engine,
        ImportKind.INVOICES,
        write_csv(folder, "i.csv", INVOICE_HEADER, invoices),
        creditor=creditor,
    )
    assert report.stored and not report.errors
    with engine.connect() as connection:
        rows = connection.execute(
            select(CaseRow.creditor_id, CaseRow.id, CaseRow.debtor_id, CaseRow.ref)
            .join(CreditorRow, CreditorRow.id == CaseRow.creditor_id)
            .where(CreditorRow.name == creditor)
        ).all()
    return {r.ref: ChatCase(r.creditor_id, r.id, r.debtor_id, r.ref) for r in rows}


def give_persona(engine: Engine, case: ChatCase, persona: str) -> None:
    """The debtor's current persona assignment, as the classifier records it."""
    assignment = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            insert(PersonaAssignmentRow).values(
                id=assignment, creditor_id=case.creditor_id, debtor_id=case.debtor_id,
                persona=persona, confidence=0.9, source="operator", model_version=None,
                survey_candidate=False, assigned_at=T0, reasons=[],
            )
        )  # fmt: skip
        connection.execute(
            insert(DebtorPersonaRow).values(
                debtor_id=case.debtor_id, creditor_id=case.creditor_id, assignment_id=assignment,
                persona=persona, source="operator", model_version=None, confidence=0.9,
                survey_candidate=False,
            )
        )  # fmt: skip


@pytest.fixture
def cases(engine: Engine, tmp_path: Path) -> dict[str, ChatCase]:
    return make_chat_cases(
        engine,
        tmp_path,
        [
            "D1,Alice Martin,alice@example.be,0470123456,fr",
            "D2,Bruno Peeters,,0470654321,nl",
            "D3,Chris Evans,chris@example.be,,en",
            "D4,Dana Smet,,,nl",
        ],
    )


def test_a_debtor_message_starts_the_clock_and_the_next_answer_stops_it(
    engine: Engine, cases: dict[str, ChatCase]
) -> None:
    alice = cases["C-D1"]
    with engine.begin() as connection:
        chat = ChatStore(connection, alice.creditor_id)
        conversation = chat.conversation_for_case(alice.case_id, alice.debtor_id, 24, T0)
        assert not conversation.waiting
        chat.add_message(conversation.id, "debtor", "Why this amount?", T0 + HOUR)
        chat.add_message(conversation.id, "debtor", "Hello?", T0 + 3 * HOUR)
        waiting = chat.conversation(conversation.id)
        assert waiting is not None
        # The oldest unanswered message sets the deadline; the second one does not move it.
        assert waiting.waiting_since == T0 + HOUR
        assert waiting.due_at == T0 + 25 * HOUR
        answer = chat.add_message(conversation.id, "agent", "It includes...", T0 + 5 * HOUR)
        assert not answer.late
        answered = chat.conversation(conversation.id)
        assert answered is not None and answered.due_at is None
        assert answered.waiting_since is None
        assert answered.last_message_at == T0 + 5 * HOUR
        # A follow-up from the agent while nothing waits is never late.
        assert not chat.add_message(conversation.id, "agent", "Anything else?", T0 + 90 * HOUR).late


def test_an_answer_after_the_deadline_is_late_and_a_system_note_moves_nothing(
    engine: Engine, cases: dict[str, ChatCase]
) -> None:
    bruno = cases["C-D2"]
    with engine.begin() as connection:
        chat = ChatStore(connection, bruno.creditor_id)
        conversation = chat.conversation_for_case(bruno.case_id, bruno.debtor_id, 12, T0)
        chat.add_message(conversation.id, "debtor", "Can I pay later?", T0)
        chat.add_message(conversation.id, "system", "We answer within 12 hours.", T0)
        still = chat.conversation(conversation.id)
        assert still is not None and still.due_at == T0 + 12 * HOUR
        on_time = T0 + 12 * HOUR  # exactly at the deadline is still on time
        assert not chat.add_message(conversation.id, "agent", "Yes.", on_time).late
        chat.add_message(conversation.id, "debtor", "Thanks, and the fee?", T0 + 13 * HOUR)
        late = chat.add_message(conversation.id, "agent", "Waived.", T0 + 26 * HOUR)
        assert late.late
        messages = chat.messages(conversation.id)
    assert [m.author for m in messages] == ["debtor", "system", "agent", "debtor", "agent"]
    assert [m.late for m in messages] == [False, False, False, False, True]
    assert messages[-1].body == "Waived."


def test_a_case_has_one_conversation_for_its_own_debtor(
    engine: Engine, cases: dict[str, ChatCase]
) -> None:
    alice, bruno = cases["C-D1"], cases["C-D2"]
    with engine.begin() as connection:
        chat = ChatStore(connection, alice.creditor_id)
        first = chat.conversation_for_case(alice.case_id, alice.debtor_id, 24, T0)
        again = chat.conversation_for_case(alice.case_id, alice.debtor_id, 48, T0 + HOUR)
        assert again.id == first.id and again.opened_at == T0
        assert again.sla_hours == 48  # the promise follows the persona for the next wait
        with pytest.raises(ValueError, match="not the case's debtor"):
            chat.conversation_for_case(alice.case_id, bruno.debtor_id, 24, T0)
        with pytest.raises(LookupError):
            chat.conversation_for_case(uuid.uuid4(), alice.debtor_id, 24, T0)
        with pytest.raises(ValueError, match="at least one hour"):
            chat.conversation_for_case(alice.case_id, alice.debtor_id, 0, T0)
        with pytest.raises(ValueError, match="author"):
            chat.add_message(first.id, "robot", "beep", T0)  # type: ignore[arg-type]
        with pytest.raises(LookupError):
            chat.add_message(uuid.uuid4(), "debtor", "lost", T0)
        # Ids in any form reach the same rows (stored bytes, text, UUID).
        assert chat.conversation(str(first.id)) == chat.conversation(first.id.bytes)


def test_messages_returns_the_latest_ones_oldest_first(
    engine: Engine, cases: dict[str, ChatCase]
) -> None:
    alice = cases["C-D1"]
    with engine.begin() as connection:
        chat = ChatStore(connection, alice.creditor_id)
        conversation = chat.conversation_for_case(alice.case_id, alice.debtor_id, 24, T0)
        for n in range(7):
            author: Author = "debtor" if n % 2 == 0 else "agent"
            chat.add_message(conversation.id, author, f"message {n}", T0 + n * HOUR)
        latest = chat.messages(conversation.id, limit=3)
    assert [m.body for m in latest] == ["message 4", "message 5", "message 6"]


def test_the_queue_puts_waiting_conversations_first_by_deadline(
    engine: Engine, cases: dict[str, ChatCase]
) -> None:
    give_persona(engine, cases["C-D2"], "nonchalant")
    now = T0 + 30 * HOUR
    with engine.begin() as connection:
        chat = ChatStore(connection, cases["C-D1"].creditor_id)
        ids = {}
        for ref, sla in (("C-D1", 48), ("C-D2", 12), ("C-D3", 24), ("C-D4", 24)):
            case = cases[ref]
            ids[ref] = chat.conversation_for_case(case.case_id, case.debtor_id, sla, T0).id
        chat.add_message(ids["C-D1"], "debtor", "first, but a long promise", T0)  # due T0+48h
        chat.add_message(ids["C-D2"], "debtor", "later, short promise " + "x" * 300, T0 + HOUR)
        chat.add_message(ids["C-D3"], "debtor", "answered", T0)
        chat.add_message(ids["C-D3"], "agent", "done", T0 + 2 * HOUR)
        chat.add_message(ids["C-D4"], "debtor", "answered later", T0)
        chat.add_message(ids["C-D4"], "agent", "done too", T0 + 4 * HOUR)
        queue = chat.queue(now)
    # C-D2 is due at T0+13h (breached at now), C-D1 at T0+48h; then the most recent answer.
    assert [item.case_ref for item in queue] == ["C-D2", "C-D1", "C-D4", "C-D3"]
    d2, d1, d4, _ = queue
    assert d2.breached and not d1.breached and not d4.breached
    assert d2.due_at == T0 + 13 * HOUR and d2.waiting_since == T0 + HOUR
    assert d2.persona == "nonchalant" and d1.persona is None
    assert d2.debtor_name == "Bruno Peeters" and d2.case_id == cases["C-D2"].case_id
    assert len(d2.preview) == PREVIEW_CHARS and d2.preview.startswith("later, short promise")
    assert d4.preview == "done too" and d4.last_author == "agent" and d4.due_at is None


def test_a_conversation_without_messages_stays_out_of_the_queue(
    engine: Engine, cases: dict[str, ChatCase]
) -> None:
    alice = cases["C-D1"]
    with engine.begin() as connection:
        chat = ChatStore(connection, alice.creditor_id)
        chat.conversation_for_case(alice.case_id, alice.debtor_id, 24, T0)
        assert chat.queue(T0) == []


def test_breaches_count_late_answers_since_and_conversations_overdue(
    engine: Engine, cases: dict[str, ChatCase]
) -> None:
    with engine.begin() as connection:
        chat = ChatStore(connection, cases["C-D1"].creditor_id)
        ids = {
            ref: chat.conversation_for_case(c.case_id, c.debtor_id, 24, T0).id
            for ref, c in cases.items()
        }
        chat.add_message(ids["C-D1"], "debtor", "q", T0)
        chat.add_message(ids["C-D1"], "agent", "late answer", T0 + 30 * HOUR)  # late
        chat.add_message(ids["C-D2"], "debtor", "q", T0)  # overdue from T0+24h
        chat.add_message(ids["C-D3"], "debtor", "q", T0 + 20 * HOUR)  # due T0+44h
        chat.add_message(ids["C-D4"], "debtor", "q", T0)
        chat.add_message(ids["C-D4"], "agent", "on time", T0 + 2 * HOUR)
        assert chat.breaches(T0, T0 + 40 * HOUR) == 2  # C-D1's late answer, C-D2 waiting
        assert chat.breaches(T0 + 31 * HOUR, T0 + 40 * HOUR) == 1  # the late answer is older
        assert chat.breaches(T0, T0 + 50 * HOUR) == 3  # C-D3 is now overdue too
        assert chat.breaches(T0, T0 + 10 * HOUR) == 1  # nothing overdue yet


def test_another_creditor_sees_and_touches_nothing(
    engine: Engine, cases: dict[str, ChatCase], tmp_path: Path
) -> None:
    alice = cases["C-D1"]
    other = make_chat_cases(
        engine, tmp_path, ["E1,Eve Other,eve@example.be,,fr"], creditor="other"
    )["C-E1"]
    with engine.begin() as connection:
        mine = ChatStore(connection, alice.creditor_id)
        conversation = mine.conversation_for_case(alice.case_id, alice.debtor_id, 24, T0)
        message = mine.add_message(conversation.id, "debtor", "private question", T0)
        theirs = ChatStore(connection, other.creditor_id)
        assert theirs.conversation(conversation.id) is None
        assert theirs.messages(conversation.id) == []
        assert theirs.queue(T0 + 100 * HOUR) == []
        assert theirs.breaches(T0, T0 + 100 * HOUR) == 0
        assert theirs.case_debtor(alice.case_id) is None
        assert theirs.reach(alice.debtor_id) is None
        assert theirs.persona(alice.debtor_id) is None
        with pytest.raises(LookupError):
            theirs.add_message(conversation.id, "agent", "hijack", T0 + HOUR)
        with pytest.raises(LookupError):
            theirs.conversation_for_case(alice.case_id, alice.debtor_id, 24, T0)
        theirs.set_notified(message.id, "sms")  # no effect on another tenant's row
        assert mine.messages(conversation.id)[0].notified_by is None
        assert mine.breaches(T0, T0 + 100 * HOUR) == 1
        # Their own conversation lives beside ours, unseen by us.
        own = theirs.conversation_for_case(other.case_id, other.debtor_id, 24, T0)
        theirs.add_message(own.id, "debtor", "their question", T0)
        assert [i.case_ref for i in mine.queue(T0)] == ["C-D1"]
        assert [i.case_ref for i in theirs.queue(T0)] == ["C-E1"]


def test_reach_says_how_a_debtor_can_be_told(engine: Engine, cases: dict[str, ChatCase]) -> None:
    with engine.begin() as connection:
        chat = ChatStore(connection, cases["C-D1"].creditor_id)
        alice = chat.reach(cases["C-D1"].debtor_id)
        assert alice is not None and alice.email and alice.mobile == "+32470123456"
        assert alice.language == "fr" and alice.preferred_channel is None
        connection.execute(
            update(DebtorRow)
            .where(DebtorRow.id == cases["C-D1"].debtor_id)
            .values(email_consent="opted_out", preferred_channel="sms")
        )
        opted = chat.reach(cases["C-D1"].debtor_id)
        assert opted is not None and not opted.email and opted.preferred_channel == "sms"
        nobody = chat.reach(cases["C-D4"].debtor_id)
        assert nobody is not None and not nobody.email and nobody.mobile is None


def test_as_uuid_reads_every_form_an_id_travels_in() -> None:
    value = uuid.uuid4()
    assert as_uuid(value) == as_uuid(str(value)) == as_uuid(value.bytes) == value
    with pytest.raises(ValueError, match="hexadecimal"):
        as_uuid("not-an-id")


# -- a property: the answer clock after any exchange ---------------------------------------

EXCHANGE = st.lists(
    st.tuples(st.sampled_from(["debtor", "agent", "system"]), st.integers(0, 40)),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(exchange=EXCHANGE, sla=st.integers(1, 72))
def test_any_exchange_keeps_the_deadline_consistent(
    engine: Engine, cases: dict[str, ChatCase], exchange: list[tuple[str, int]], sla: int
) -> None:
    """Whatever the order and pace of messages: a conversation waits exactly when a debtor
    message came after the last agent one, since the first such message, due `sla` hours
    later; an agent message is late exactly when it ends a wait after its deadline."""
    alice = cases["C-D1"]
    with engine.connect() as connection:
        transaction = connection.begin()  # rolled back: each example starts afresh
        try:
            chat = ChatStore(connection, alice.creditor_id)
            conversation = chat.conversation_for_case(alice.case_id, alice.debtor_id, sla, T0)
            at, since = T0, None
            for author, gap in exchange:
                at += dt.timedelta(hours=gap)
                message = chat.add_message(conversation.id, author, "...", at)  # type: ignore[arg-type]
                due = None if since is None else since + dt.timedelta(hours=sla)
                assert message.late == (author == "agent" and due is not None and at > due)
                if author == "debtor" and since is None:
                    since = at
                elif author == "agent":
                    since = None
                now = chat.conversation(conversation.id)
                assert now is not None
                assert now.waiting_since == since
                assert now.due_at == (None if since is None else since + dt.timedelta(hours=sla))
                assert now.last_message_at == at
            stored = chat.messages(conversation.id)
            assert [m.author for m in stored] == [a for a, _ in exchange]
        finally:
            transaction.rollback()
