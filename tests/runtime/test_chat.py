"""Chat in the runtime on SQLite and PostgreSQL: journey events, the answer promise of the
persona, body checks, and the "an answer waits on your page" notice — queued once through
the outbox, sent by the normal dispatcher in French, Dutch or English with the debtor's
link and never the answer, and judged as a service message (not collection)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from parcours.channels.links import Links
from parcours.ingest import ImportKind
from parcours.personas.catalog import load_catalog
from parcours.runtime.chat import (
    CHAT_ANSWER,
    DEFAULT_SLA_HOURS,
    MAX_BODY,
    ChatPost,
    Posted,
    agent_says,
    clean_body,
    debtor_says,
    notice_attempt_id,
    post_many,
    sla_hours,
)
from parcours.runtime.dispatch import dispatch
from parcours.store.chat import ChatStore
from parcours.store.messages import MessageStore
from parcours.store.schema import DebtorRow, EventRow, OutboxRow
from tests.ingest.test_import import run_import, write_csv
from tests.runtime.test_tick import channel_set, library
from tests.store.test_chat import ChatCase, give_persona, make_chat_cases

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)  # 10:00 in Brussels, a Tuesday
HOUR = dt.timedelta(hours=1)
ANSWER = "Your fee was waived: the balance is 100 EUR, reference 7Q2X."
# The page link of each case, as the test channel set signs it (tests.runtime.test_tick).
LINKS = Links("test-secret", "https://pay.example")


@pytest.fixture
def cases(engine: Engine, tmp_path: Path) -> dict[str, ChatCase]:
    return make_chat_cases(
        engine,
        tmp_path,
        [
            "D1,Alice Martin,alice@example.be,0470123456,fr",
            "D2,Bram Peeters,bram@example.be,,nl",
            "D3,Chris Evans,chris@example.be,,en",
            "D4,Dana Smet,,0470654321,nl",
            "D5,Emile Nobody,,,fr",
        ],
    )


def events(engine: Engine, case: ChatCase) -> list[tuple[str, dict[str, Any]]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(EventRow.type, EventRow.payload)
            .where(EventRow.creditor_id == case.creditor_id, EventRow.case_id == case.case_id)
            .order_by(EventRow.recorded_at, EventRow.id)
        ).all()
    return [(t, p if isinstance(p, dict) else json.loads(p)) for t, p in rows]


def notices(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [
            tuple(r)
            for r in connection.execute(
                select(
                    OutboxRow.attempt_id,
                    OutboxRow.case_id,
                    OutboxRow.channel,
                    OutboxRow.template,
                    OutboxRow.status,
                    OutboxRow.kind,
                    OutboxRow.reminder,
                ).where(OutboxRow.template == CHAT_ANSWER)
            )
        ]


def ask_and_answer(
    engine: Engine, case: ChatCase, at: dt.datetime = T0, *, online: bool = False
) -> Any:
    asked = debtor_says(engine, case.creditor_id, case.case_id, "Why a fee?", at)
    return agent_says(
        engine, case.creditor_id, asked.conversation.id, None, ANSWER, at + HOUR, online
    )


def test_a_question_and_its_answer_become_journey_events(
    engine: Engine, cases: dict[str, ChatCase]
) -> None:
    alice = cases["C-D1"]
    first = debtor_says(engine, alice.creditor_id, alice.case_id, "Why a fee?", T0)
    second = debtor_says(engine, alice.creditor_id, alice.case_id, "Hello?", T0 + HOUR)
    assert second.conversation.id == first.conversation.id
    assert first.conversation.due_at == T0 + 48 * HOUR  # no persona: the default (engaged)
    answered = agent_says(
        engine, alice.creditor_id, first.conversation.id, None, ANSWER, T0 + 2 * HOUR, True
    )
    assert answered.conversation.due_at is None and not answered.message.late
    chatter = agent_says(
        engine, alice.creditor_id, first.conversation.id, None, "Anything else?", T0 + 3 * HOUR,
        True,
    )  # fmt: skip
    seen = events(engine, alice)
    assert [t for t, _ in seen] == [
        "chat.message", "question.asked", "chat.message", "chat.message", "question.answered",
        "chat.message",
    ]  # fmt: skip
    conversation = str(first.conversation.id)
    assert seen[1][1] == {
        "conversation": conversation,
        "message": str(first.message.id),
        "due_at": (T0 + 48 * HOUR).isoformat(),
    }
    assert seen[4][1] == {
        "conversation": conversation, "message": str(answered.message.id), "late": False
    }  # fmt: skip
    assert seen[5][1]["message"] == str(chatter.message.id)
    # Events carry ids, never words: the chat may hold personal data.
    assert all("Why" not in json.dumps(p) and "waived" not in json.dumps(p) for _, p in seen)


def test_a_late_answer_is_recorded_as_late(engine: Engine, cases: dict[str, ChatCase]) -> None:
    bram = cases["C-D2"]
    give_persona(engine, bram, "nonchalant")  # answers within 12 hours
    asked = debtor_says(engine, bram.creditor_id, bram.case_id, "Can I pay in March?", T0)
    assert asked.conversation.due_at == T0 + 12 * HOUR
    late = agent_says(
        engine, bram.creditor_id, asked.conversation.id, None, "Yes.", T0 + 13 * HOUR, True
    )
    assert late.message.late
    assert events(engine, bram)[-1] == (
        "question.answered",
        {"conversation": str(asked.conversation.id), "message": str(late.message.id), "late": True},
    )


def test_posted_payload_is_what_sockets_send(engine: Engine, cases: dict[str, ChatCase]) -> None:
    alice = cases["C-D1"]
    posted = debtor_says(engine, alice.creditor_id, alice.case_id, "  Why a fee?\r\n ", T0)
    assert posted.payload() == {
        "type": "message",
        "conversation": str(posted.conversation.id),
        "id": str(posted.message.id),
        "author": "debtor",
        "body": "Why a fee?",
        "at": T0.isoformat(),
        "late": False,
    }


def test_the_answer_promise_comes_from_the_persona(
    engine: Engine, cases: dict[str, ChatCase]
) -> None:
    catalog = load_catalog()
    alice, bram = cases["C-D1"], cases["C-D2"]
    give_persona(engine, alice, "occasional")
    with engine.connect() as connection:
        assert sla_hours(connection, alice.creditor_id, alice.debtor_id, catalog) == 24
        # No persona: the default one's promise, else 24 hours.
        assert sla_hours(connection, bram.creditor_id, bram.debtor_id, catalog) == 48
        assert (
            sla_hours(
                connection, bram.creditor_id, bram.debtor_id, catalog, default_persona="nonchalant"
            )
            == 12
        )
        assert (
            sla_hours(connection, bram.creditor_id, bram.debtor_id, catalog, default_persona="gone")
            == DEFAULT_SLA_HOURS
        )


@pytest.mark.parametrize(
    ("body", "problem"),
    [("", "empty"), ("  \n\t ", "empty"), ("\x00\x07", "empty"), ("x" * (MAX_BODY + 1), "at most")],
)
def test_bad_bodies_are_refused_with_a_clear_message_and_nothing_stored(
    engine: Engine, cases: dict[str, ChatCase], body: str, problem: str
) -> None:
    alice = cases["C-D1"]
    with pytest.raises(ValueError, match=problem):
        debtor_says(engine, alice.creditor_id, alice.case_id, body, T0)
    posted = debtor_says(engine, alice.creditor_id, alice.case_id, "ok", T0)
    with pytest.raises(ValueError, match=problem):
        agent_says(engine, alice.creditor_id, posted.conversation.id, None, body, T0, False)
    with engine.connect() as connection:
        assert len(ChatStore(connection, alice.creditor_id).messages(posted.conversation.id)) == 1
    assert not notices(engine)


def test_clean_body_keeps_lines_and_drops_control_characters() -> None:
    assert clean_body(" a\r\nb\tc\x00\x1b ") == "a\nb\tc"
    assert clean_body("x" * MAX_BODY) == "x" * MAX_BODY
    assert clean_body("Zoë 😀") == "Zoë 😀"


def test_an_unknown_case_or_conversation_is_refused(
    engine: Engine, cases: dict[str, ChatCase], tmp_path: Path
) -> None:
    other = make_chat_cases(engine, tmp_path, ["E1,Eve,eve@example.be,,fr"], creditor="other")
    alice, eve = cases["C-D1"], other["C-E1"]
    with pytest.raises(LookupError):
        debtor_says(engine, eve.creditor_id, alice.case_id, "not my case", T0)
    posted = debtor_says(engine, alice.creditor_id, alice.case_id, "mine", T0)
    with pytest.raises(LookupError):
        agent_says(engine, eve.creditor_id, posted.conversation.id, None, "hijack", T0, False)
    assert [t for t, _ in events(engine, alice)] == ["chat.message", "question.asked"]


# -- the notice to a debtor away from their page --------------------------------------------


def test_an_offline_debtor_gets_one_notice_per_answer_turn(
    engine: Engine, cases: dict[str, ChatCase]
) -> None:
    alice = cases["C-D1"]
    answered = ask_and_answer(engine, alice)
    assert answered.message.notified_by == "email"
    attempt = notice_attempt_id(answered.message.id)
    assert notices(engine) == [
        (attempt, alice.case_id, "email", CHAT_ANSWER, "queued", "send", False)
    ]
    conversation = answered.conversation.id
    # More from the agent before the debtor writes again: they were told already.
    more = agent_says(engine, alice.creditor_id, conversation, None, "P.S.", T0 + 2 * HOUR, False)
    assert more.message.notified_by is None and len(notices(engine)) == 1
    # The debtor replies: the next answer is a new turn, and a new notice.
    debtor_says(engine, alice.creditor_id, alice.case_id, "Thanks! And in March?", T0 + 3 * HOUR)
    again = agent_says(engine, alice.creditor_id, conversation, None, "Fine.", T0 + 4 * HOUR, False)
    assert again.message.notified_by == "email" and len(notices(engine)) == 2
    with engine.connect() as connection:
        stored = ChatStore(connection, alice.creditor_id).messages(conversation)
    assert [m.notified_by for m in stored] == [None, "email", None, None, "email"]


def test_a_debtor_on_their_page_gets_no_notice(engine: Engine, cases: dict[str, ChatCase]) -> None:
    answered = ask_and_answer(engine, cases["C-D1"], online=True)
    assert answered.message.notified_by is None and not notices(engine)


def test_the_notice_goes_by_sms_without_email_and_by_the_preferred_channel(
    engine: Engine, cases: dict[str, ChatCase]
) -> None:
    dana, emile, alice = cases["C-D4"], cases["C-D5"], cases["C-D1"]
    assert ask_and_answer(engine, dana).message.notified_by == "sms"
    assert ask_and_answer(engine, emile).message.notified_by is None  # no way to reach him
    with engine.begin() as connection:
        connection.execute(
            update(DebtorRow).where(DebtorRow.id == alice.debtor_id).values(preferred_channel="sms")
        )
    assert ask_and_answer(engine, alice).message.notified_by == "sms"
    with engine.begin() as connection:
        connection.execute(
            update(DebtorRow)
            .where(DebtorRow.id == alice.debtor_id)
            .values(phone_consent="opted_out", email_consent="opted_out")
        )
    assert ask_and_answer(engine, alice, T0 + 5 * HOUR).message.notified_by is None
    assert sorted(channel for _, _, channel, *_ in notices(engine)) == ["sms", "sms"]


def _dispatch(engine: Engine, case: ChatCase, outbox: Path, at: dt.datetime) -> Any:
    return dispatch(engine, case.creditor_id, channel_set(outbox, library()), at)


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        ("C-D1", ("Vous avez une réponse à votre question", "Lire la réponse")),
        ("C-D2", ("U hebt een antwoord op uw vraag", "Het antwoord lezen")),
        ("C-D3", ("You have an answer to your question", "Read the answer")),
    ],
)
def test_the_dispatcher_sends_the_notice_once_in_the_debtors_language_with_the_link(
    engine: Engine, cases: dict[str, ChatCase], tmp_path: Path, ref: str, words: tuple[str, str]
) -> None:
    case = cases[ref]
    answered = ask_and_answer(engine, case)
    outbox = tmp_path / "outbox"
    at = T0 + 2 * HOUR
    assert _dispatch(engine, case, outbox, at)["sent"] == 1
    assert not _dispatch(engine, case, outbox, at + HOUR)  # sent once, nothing left
    [written] = list(outbox.iterdir())
    assert written.name == f"{notice_attempt_id(answered.message.id)}.eml"
    message = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    page = LINKS.url("page", str(case.case_id), at)
    subject, cta = words
    assert message["Subject"] == subject
    assert f"{cta}: {page}#chat" in text.replace(" :", ":")
    assert f'href="{page}#chat"' in html
    # Never the answer itself, and none of a reminder's collection facts.
    for leak in ("waived", "7Q2X", "+++", "100,00", "BE71"):
        assert leak not in text and leak not in html
    assert notices(engine)[0][4] == "sent"


def test_the_sms_notice_carries_the_link_and_not_the_answer(
    engine: Engine, cases: dict[str, ChatCase], tmp_path: Path
) -> None:
    dana = cases["C-D4"]
    answered = ask_and_answer(engine, dana)
    outbox = tmp_path / "outbox"
    at = T0 + 2 * HOUR
    assert _dispatch(engine, dana, outbox, at)["sent"] == 1
    sms = json.loads((outbox / f"{notice_attempt_id(answered.message.id)}.sms.json").read_text())
    page = LINKS.url("page", str(dana.case_id), at)
    assert sms["to"] == "+32470654321"
    assert f"Lees het antwoord op uw pagina: {page}#chat" in sms["text"]
    assert "waived" not in sms["text"] and sms["segments"] <= 2


def test_the_notice_waits_for_the_contact_window(
    engine: Engine, cases: dict[str, ChatCase], tmp_path: Path
) -> None:
    alice = cases["C-D1"]
    late = dt.datetime(2026, 12, 1, 21, 30, tzinfo=dt.UTC)  # 22:30 in Brussels
    ask_and_answer(engine, alice, late - HOUR)
    outbox = tmp_path / "outbox"
    assert _dispatch(engine, alice, outbox, late)["delay"] == 1
    assert notices(engine)[0][4] == "delayed" and not outbox.exists()
    opening = dt.datetime(2026, 12, 2, 7, 0, tzinfo=dt.UTC)  # 08:00 in Brussels
    assert _dispatch(engine, alice, outbox, opening)["sent"] == 1


def _pay(engine: Engine, tmp_path: Path) -> None:
    paid = run_import(
        engine,
        ImportKind.PAYMENTS,
        write_csv(tmp_path, "p.csv", "invoice_ref,amount,paid_at", ["acme-FD1,100.00,2026-12-01"]),
    )
    assert paid.stored and not paid.errors


def _record(engine: Engine, case: ChatCase, kind: str) -> None:
    with engine.begin() as connection:
        store = MessageStore(connection, case.creditor_id)
        keys = [k.bytes if store.sqlite else str(k) for k in (case.case_id, case.debtor_id)]
        store.add_event(keys[0], keys[1], kind, T0, {})


@pytest.mark.parametrize("situation", ["paid", "disputed", "vulnerable"])
def test_the_notice_is_a_service_not_collection(
    engine: Engine, cases: dict[str, ChatCase], tmp_path: Path, situation: str
) -> None:
    """Paid, disputed or vulnerable, the debtor still hears that their question has an
    answer: the gate judges the notice as a service message."""
    alice = cases["C-D1"]
    if situation == "paid":
        _pay(engine, tmp_path)
    elif situation == "disputed":
        _record(engine, alice, "dispute.opened")
    else:
        _record(engine, alice, "vulnerability.flagged")
    answered = ask_and_answer(engine, alice)
    outbox = tmp_path / "outbox"
    assert _dispatch(engine, alice, outbox, T0 + 2 * HOUR)["sent"] == 1
    assert (outbox / f"{notice_attempt_id(answered.message.id)}.eml").is_file()


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("contact_objection", "contact objection"), ("legal_hold.set", "legal hold")],
)
def test_an_objection_or_a_legal_hold_still_stops_the_notice(
    engine: Engine, cases: dict[str, ChatCase], tmp_path: Path, kind: str, reason: str
) -> None:
    alice = cases["C-D1"]
    _record(engine, alice, kind)
    ask_and_answer(engine, alice)
    outbox = tmp_path / "outbox"
    assert _dispatch(engine, alice, outbox, T0 + 2 * HOUR)["skip"] == 1
    with engine.connect() as connection:
        status, why = connection.execute(
            select(OutboxRow.status, OutboxRow.reason).where(OutboxRow.template == CHAT_ANSWER)
        ).one()
    assert status == "skipped" and why == reason
    assert not outbox.exists()


# -- many messages in one transaction (what the hub's writer does under load) -------------


def test_a_batch_applies_its_messages_in_order_like_one_by_one(
    engine: Engine, cases: dict[str, ChatCase]
) -> None:
    alice, dana = cases["C-D1"], cases["C-D4"]
    conversation = debtor_says(engine, alice.creditor_id, alice.case_id, "first", T0).conversation
    posts = [
        ChatPost(alice.creditor_id, "debtor", "second", T0 + HOUR, case_id=alice.case_id),
        ChatPost(dana.creditor_id, "debtor", "Dana asks", T0 + HOUR, case_id=dana.case_id),
        ChatPost(
            alice.creditor_id, "agent", "answer", T0 + 50 * HOUR,
            conversation_id=conversation.id, debtor_online=False,
        ),
        ChatPost(
            alice.creditor_id, "agent", "P.S.", T0 + 51 * HOUR,
            conversation_id=conversation.id, debtor_online=False,
        ),
        ChatPost(alice.creditor_id, "debtor", "thanks", T0 + 52 * HOUR, case_id=alice.case_id),
    ]  # fmt: skip
    outcomes = post_many(engine, posts)
    assert all(isinstance(o, Posted) for o in outcomes)
    second, dana_asks, answer, ps, thanks = outcomes
    assert isinstance(second, Posted) and isinstance(answer, Posted)
    assert isinstance(ps, Posted) and isinstance(thanks, Posted)
    assert isinstance(dana_asks, Posted)
    # Alice's clock started with her first message (48 h), so the answer was late; the
    # P.S. was not (nothing waited); her thanks starts a new wait.
    assert second.conversation.due_at == T0 + 48 * HOUR
    assert answer.message.late and answer.conversation.due_at is None
    assert not ps.message.late
    assert thanks.conversation.waiting_since == T0 + 52 * HOUR
    assert dana_asks.conversation.id != conversation.id
    # One notice for the turn, by e-mail; none for the P.S.
    assert (answer.message.notified_by, ps.message.notified_by) == ("email", None)
    assert [n[0] for n in notices(engine)] == [notice_attempt_id(answer.message.id)]
    with engine.connect() as connection:
        chat = ChatStore(connection, alice.creditor_id)
        stored = chat.messages(conversation.id)
        now = chat.conversation(conversation.id)
    assert [m.body for m in stored] == ["first", "second", "answer", "P.S.", "thanks"]
    assert [m.notified_by for m in stored] == [None, None, "email", None, None]
    assert now == thanks.conversation
    assert [t for t, _ in events(engine, alice)] == [
        "chat.message", "question.asked", "chat.message", "chat.message", "question.answered",
        "chat.message", "chat.message", "question.asked",
    ]  # fmt: skip


def test_in_a_batch_a_refused_message_fails_alone(
    engine: Engine, cases: dict[str, ChatCase], tmp_path: Path
) -> None:
    other = make_chat_cases(engine, tmp_path, ["E1,Eve,eve@example.be,,fr"], creditor="other")
    alice, eve = cases["C-D1"], other["C-E1"]
    posts = [
        ChatPost(alice.creditor_id, "debtor", "   ", T0, case_id=alice.case_id),
        ChatPost(alice.creditor_id, "debtor", "fine", T0, case_id=alice.case_id),
        ChatPost(alice.creditor_id, "debtor", "not mine", T0, case_id=eve.case_id),
        ChatPost(alice.creditor_id, "agent", "lost", T0, conversation_id="not-an-id"),
        ChatPost(eve.creditor_id, "debtor", "Eve too", T0, case_id=eve.case_id),
        ChatPost(alice.creditor_id, "system", "beep", T0, case_id=alice.case_id),  # type: ignore[arg-type]
    ]
    empty, fine, foreign, lost, eve_too, system = post_many(engine, posts)
    assert isinstance(empty, ValueError) and "empty" in str(empty)
    assert isinstance(fine, Posted) and isinstance(eve_too, Posted)
    assert isinstance(foreign, LookupError) and isinstance(lost, LookupError)
    assert isinstance(system, ValueError)
    assert [t for t, _ in events(engine, alice)] == ["chat.message", "question.asked"]
    assert [t for t, _ in events(engine, eve)] == ["chat.message", "question.asked"]
