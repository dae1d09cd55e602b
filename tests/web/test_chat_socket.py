"""Live chat over real WebSockets: our socket loops in a small app under uvicorn on a
loopback port, real `websockets` clients, SQLite and PostgreSQL — round trips, fan-out to
every tab, errors, another creditor's conversation; and the hub itself (a lagging
subscriber is dropped, never the publisher blocked; what each subscriber receives)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from parcours.runtime.chat import CHAT_ANSWER, debtor_says
from parcours.store.chat import ChatStore
from parcours.store.schema import ChatMessageRow, OutboxRow, UserRow
from parcours.web.chat import (
    NOT_FOUND,
    ChatHub,
    Subscription,
    agent_socket,
    debtor_socket,
    post_debtor,
)
from parcours.web.portal.access import DebtorAccess
from tests.store.test_chat import ChatCase, make_chat_cases
from tests.web.served import Served

WAIT = 20.0  # seconds a frame may take before the test gives up (never a timing check)
NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


def chat_app(engine: Engine, hub: ChatHub, cases: dict[str, ChatCase], user_id: Any) -> FastAPI:
    """The socket loops behind test routes: the routes of the real app check the debtor's
    cookie or the agent's session first; here the path names who connects."""
    app = FastAPI()
    by_case = {str(c.case_id): c for c in cases.values()}

    @app.websocket("/debtor/{case_id}")
    async def debtor(websocket: WebSocket, case_id: str) -> None:
        case = by_case[case_id]
        access = DebtorAccess(case.creditor_id, case.case_id, case.debtor_id, case_id)
        await debtor_socket(websocket, hub, engine, access)

    @app.websocket("/agent/{creditor}/{conversation_id}")
    async def agent(websocket: WebSocket, creditor: str, conversation_id: str) -> None:
        await agent_socket(websocket, hub, engine, uuid.UUID(creditor), user_id, conversation_id)

    @app.websocket("/inbox/{creditor}")
    async def inbox(websocket: WebSocket, creditor: str) -> None:
        await websocket.accept()
        async with hub.subscribe(f"inbox:{creditor}") as subscription:
            await websocket.send_text(json.dumps({"type": "hello"}))
            async for text in subscription.texts():
                await websocket.send_text(text)

    return app


@dataclass
class World:
    engine: Engine
    hub: ChatHub
    cases: dict[str, ChatCase]
    other: ChatCase  # another creditor's case
    user_id: uuid.UUID
    base: str

    def debtor_url(self, ref: str) -> str:
        return f"{self.base}/debtor/{self.cases[ref].case_id}"

    def agent_url(self, conversation: Any, creditor: Any = None) -> str:
        owner = creditor or self.cases["C-D1"].creditor_id
        return f"{self.base}/agent/{owner}/{conversation}"


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> Iterator[World]:
    cases = make_chat_cases(
        engine,
        tmp_path,
        ["D1,Alice Martin,alice@example.be,0470123456,fr", "D2,Bram Peeters,,0470654321,nl"],
    )
    other = make_chat_cases(engine, tmp_path, ["E1,Eve,eve@example.be,,fr"], creditor="other")
    user_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            insert(UserRow).values(
                id=user_id, creditor_id=cases["C-D1"].creditor_id, email="agent@acme.example",
                name="Agent A", role="agent", password_hash="-", created_at=NOW,
            )
        )  # fmt: skip
    hub = ChatHub()
    with Served(chat_app(engine, hub, {**cases, **other}, user_id)) as server:
        yield World(engine, hub, cases, other["C-E1"], user_id, f"ws://127.0.0.1:{server.port}")


def run(scenario: Callable[[], Any]) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 60))


async def frame(ws: ClientConnection) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    return data


async def say(ws: ClientConnection, body: Any) -> None:
    await ws.send(json.dumps({"type": "message", "body": body}))


def stored(world: World, conversation: str) -> list[tuple[str, str, Any, str | None]]:
    with world.engine.connect() as connection:
        messages = ChatStore(connection, world.cases["C-D1"].creditor_id).messages(conversation)
    return [(m.author, m.body, m.user_id, m.notified_by) for m in messages]


def notices(world: World) -> list[Any]:
    with world.engine.connect() as connection:
        return list(
            connection.execute(
                select(OutboxRow.channel).where(OutboxRow.template == CHAT_ANSWER)
            ).scalars()
        )


def test_a_debtor_and_an_agent_talk_both_ways(world: World) -> None:
    async def scenario() -> None:
        async with connect(world.debtor_url("C-D1")) as debtor:
            hello = await frame(debtor)
            assert hello["type"] == "hello" and hello["agents_online"] == 0
            assert hello["answer_within_hours"] == 48 and hello["due_at"] is None
            conversation = hello["conversation"]
            async with connect(world.agent_url(conversation)) as agent:
                greeting = await frame(agent)
                assert greeting == {
                    "type": "hello", "conversation": conversation, "debtor_online": True,
                    "due_at": None,
                }  # fmt: skip
                await say(debtor, "  Why is there a fee?  ")
                echo, heard = await frame(debtor), await frame(agent)
                assert echo == heard
                assert (echo["type"], echo["author"], echo["body"], echo["late"]) == (
                    "message", "debtor", "Why is there a fee?", False,
                )  # fmt: skip
                assert echo["conversation"] == conversation
                await say(agent, "It is the flat-rate indemnity.")
                answer, own = await frame(debtor), await frame(agent)
                assert answer == own and answer["author"] == "agent"
                assert dt.datetime.fromisoformat(answer["at"]) >= dt.datetime.fromisoformat(
                    echo["at"]
                )
        assert stored(world, conversation) == [
            ("debtor", "Why is there a fee?", None, None),
            ("agent", "It is the flat-rate indemnity.", world.user_id, None),
        ]
        assert notices(world) == []  # the debtor was on the page

    run(scenario)


def test_every_tab_of_the_debtor_gets_every_message(world: World) -> None:
    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            tabs = [await stack.enter_async_context(connect(world.debtor_url("C-D1")))]
            conversation = (await frame(tabs[0]))["conversation"]
            tabs.append(await stack.enter_async_context(connect(world.debtor_url("C-D1"))))
            assert (await frame(tabs[1]))["conversation"] == conversation
            agent = await stack.enter_async_context(connect(world.agent_url(conversation)))
            await frame(agent)
            await say(agent, "Hello Alice, how can I help?")
            first, second, own = [await frame(ws) for ws in (*tabs, agent)]
            assert first == second == own and first["author"] == "agent"
            await say(tabs[1], "From my phone")
            seen = [await frame(ws) for ws in (*tabs, agent)]
            assert all(s == seen[0] for s in seen) and seen[0]["body"] == "From my phone"
            # Another debtor's tab hears nothing of it: the first message it gets after
            # Alice's (published first, on the same loop) is its own.
            bram = await stack.enter_async_context(connect(world.debtor_url("C-D2")))
            assert (await frame(bram))["conversation"] != conversation
            await say(tabs[0], "Still there?")
            await frame(tabs[0])
            await say(bram, "Bram here")
            assert (await frame(bram))["body"] == "Bram here"

    run(scenario)


@pytest.mark.parametrize(
    ("sent", "detail"),
    [
        ('{"type": "message", "body": "   "}', "empty"),
        ('{"type": "message", "body": 42}', "text"),
        ('{"type": "typing"}', "send JSON"),
        ("not json", "send JSON"),
        (b"\x00binary", "text frames"),
        (json.dumps({"type": "message", "body": "x" * 2001}), "at most 2000"),
    ],
)
def test_a_bad_frame_gets_an_error_and_the_socket_stays_usable(
    world: World, sent: str | bytes, detail: str
) -> None:
    async def scenario() -> None:
        async with connect(world.debtor_url("C-D1")) as debtor:
            conversation = (await frame(debtor))["conversation"]
            await debtor.send(sent)
            error = await frame(debtor)
            assert error["type"] == "error" and detail in error["detail"]
            await say(debtor, "A real question")
            assert (await frame(debtor))["body"] == "A real question"
        assert [body for _, body, *_ in stored(world, conversation)] == ["A real question"]

    run(scenario)


def test_a_debtor_sending_too_fast_is_told_and_nothing_more_is_stored(world: World) -> None:
    from parcours.web.throttle import Throttle

    world.hub.debtor_messages = Throttle("3 per minute")  # DEBTOR_MESSAGES, made small

    async def scenario() -> None:
        async with connect(world.debtor_url("C-D1")) as debtor:
            conversation = (await frame(debtor))["conversation"]
            for n in range(3):
                await say(debtor, f"question {n}")
                assert (await frame(debtor))["body"] == f"question {n}"
            await say(debtor, "one too many")
            error = await frame(debtor)
            assert (error["type"], error["code"]) == ("error", "too_fast")
            assert "wait a minute" in error["detail"]
        bodies = [body for _, body, *_ in stored(world, conversation)]
        assert bodies == ["question 0", "question 1", "question 2"]

    run(scenario)


@pytest.mark.parametrize("which", ["other creditor", "unknown", "not an id"])
def test_an_agent_cannot_open_a_conversation_that_is_not_their_creditors(
    world: World, which: str
) -> None:
    theirs = debtor_says(
        world.engine, world.other.creditor_id, world.other.case_id, "private", NOW
    ).conversation.id
    target = {"other creditor": theirs, "unknown": uuid.uuid4(), "not an id": "nope"}[which]

    async def scenario() -> None:
        async with connect(world.agent_url(target)) as agent:
            error = await frame(agent)
            assert error == {"type": "error", "detail": "this conversation is not available"}
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(agent.recv(), WAIT)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == NOT_FOUND

    run(scenario)
    with world.engine.connect() as connection:
        bodies = connection.execute(select(ChatMessageRow.body)).scalars().all()
    assert bodies == ["private"]


def test_an_answer_to_a_debtor_away_from_the_page_is_notified_once(world: World) -> None:
    alice = world.cases["C-D1"]
    conversation = debtor_says(
        world.engine, alice.creditor_id, alice.case_id, "Can I pay in two parts?", NOW
    ).conversation.id

    async def scenario() -> None:
        async with connect(world.agent_url(conversation)) as agent:
            hello = await frame(agent)
            assert hello["debtor_online"] is False and hello["due_at"] is not None
            await say(agent, "Yes: 50 now, 50 in January.")
            await frame(agent)
            await say(agent, "I have set it up.")
            await frame(agent)

    run(scenario)
    assert notices(world) == ["email"]
    assert [n for *_, n in stored(world, str(conversation))] == [None, "email", None]


def test_the_inbox_hears_of_every_message_of_its_creditor(world: World) -> None:
    alice = world.cases["C-D1"]

    async def scenario() -> None:
        async with (
            connect(f"{world.base}/inbox/{alice.creditor_id}") as inbox,
            connect(f"{world.base}/inbox/{world.other.creditor_id}") as elsewhere,
        ):
            await frame(inbox)
            await frame(elsewhere)
            async with connect(world.debtor_url("C-D1")) as debtor:
                conversation = (await frame(debtor))["conversation"]
                await say(debtor, "Hello?")
                event = await frame(inbox)
                assert (event["type"], event["conversation"], event["author"]) == (
                    "queue", conversation, "debtor",
                )  # fmt: skip
                assert event["case"] == str(alice.case_id) and event["due_at"] is not None
            # The other creditor's inbox: the first thing it hears is its own debtor.
            debtor_says(world.engine, world.other.creditor_id, world.other.case_id, "Eve", NOW)
            async with connect(f"{world.base}/debtor/{world.other.case_id}") as eve:
                await frame(eve)
                await say(eve, "Eve here")
                assert (await frame(elsewhere))["body"] == "Eve here"

    run(scenario)


# -- the hub on its own --------------------------------------------------------------------


def test_a_lagging_subscriber_is_dropped_and_nobody_waits_for_it() -> None:
    async def scenario() -> None:
        hub = ChatHub(queue_size=2)
        async with (
            hub.subscribe("conversation:x") as reader,
            hub.subscribe("conversation:x") as idle,
        ):
            received = []
            for n in range(5):
                await hub.publish("conversation:x", {"n": n})  # never waits
                received.append(await asyncio.wait_for(anext(reader), WAIT))
            assert [r["n"] for r in received] == [0, 1, 2, 3, 4]
            assert idle.dropped and hub.dropped == 1
            assert hub.subscribers("conversation:x") == 1
            assert [p async for p in idle] == []  # its iteration ends at once
        assert hub.subscribers("conversation:x") == 0

    run(scenario)


def test_a_publish_encodes_once_for_all_subscribers() -> None:
    async def scenario() -> None:
        hub = ChatHub()
        async with hub.subscribe("t") as a, hub.subscribe("t") as b:
            await hub.publish("t", {"body": "héllo"})
            first, second = a.queue.get_nowait(), b.queue.get_nowait()
            assert first.text is second.text and json.loads(first.text) == {"body": "héllo"}
            await hub.publish("nobody-listens", {"x": 1})  # no subscriber: nothing to do

    run(scenario)


def test_presence_counts_tabs_and_agents() -> None:
    async def scenario() -> None:
        hub = ChatHub()
        conversation, creditor = uuid.uuid4(), uuid.uuid4()
        assert not hub.debtor_online(conversation) and hub.agents_online(creditor) == 0
        async with hub.debtor_present(conversation), hub.agent_present(creditor):
            async with hub.debtor_present(str(conversation)), hub.agent_present(str(creditor)):
                assert hub.debtor_online(conversation.bytes) and hub.agents_online(creditor) == 2
            assert hub.debtor_online(conversation) and hub.agents_online(creditor) == 1
        assert not hub.debtor_online(conversation) and hub.agents_online(creditor) == 0

    run(scenario)


Op = tuple[str, int]  # ("join" | "leave" | "publish", subscriber or topic number)


@settings(max_examples=80, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["join", "leave", "publish"]), st.integers(0, 3)), max_size=40
    )
)
def test_each_subscriber_gets_exactly_what_was_published_while_it_listened(
    ops: list[Op],
) -> None:
    """Subscribers 0-3 join and leave topics (subscriber k listens to topic k % 2) while
    payloads are published: each receives, in order, exactly the payloads published on its
    topic between its joining and its leaving."""

    async def scenario() -> None:
        hub = ChatHub(queue_size=100)
        listening: dict[int, tuple[Any, Subscription]] = {}
        expected: dict[int, list[int]] = {}
        got: dict[int, list[int]] = {}
        for step, (op, k) in enumerate(ops):
            if op == "join" and k not in listening:
                manager = hub.subscribe(f"topic-{k % 2}")
                listening[k] = (manager, await manager.__aenter__())
                expected.setdefault(k, [])
            elif op == "leave" and k in listening:
                manager, subscription = listening.pop(k)
                await manager.__aexit__(None, None, None)
                got.setdefault(k, []).extend(_drain(subscription))
            elif op == "publish":
                topic = k % 2
                await hub.publish(f"topic-{topic}", {"step": step})
                for who in listening:
                    if who % 2 == topic:
                        expected[who].append(step)
        for k, (manager, subscription) in listening.items():
            got.setdefault(k, []).extend(_drain(subscription))
            await manager.__aexit__(None, None, None)
        assert {k: v for k, v in got.items() if v} == {k: v for k, v in expected.items() if v}
        assert hub.subscribers("topic-0") == hub.subscribers("topic-1") == 0

    asyncio.run(scenario())


def _drain(subscription: Subscription) -> list[int]:
    out = []
    while not subscription.queue.empty():
        out.append(subscription.queue.get_nowait().payload["step"])
    return out


def test_the_writer_stores_posts_that_arrive_together_and_wakes_each_poster(
    engine: Engine, tmp_path: Path
) -> None:
    cases = make_chat_cases(
        engine, tmp_path, [f"D{n},Debtor {n},d{n}@example.be,,fr" for n in range(12)]
    )

    async def scenario() -> None:
        hub = ChatHub()
        hub.writer.idle = 0.05  # the thread stops soon when idle
        accesses = [
            DebtorAccess(c.creditor_id, c.case_id, c.debtor_id, str(c.case_id))
            for c in cases.values()
        ]
        posted = await asyncio.gather(
            *(post_debtor(hub, engine, a, f"question {n}", NOW) for n, a in enumerate(accesses)),
            post_debtor(hub, engine, accesses[0], "   ", NOW),
            return_exceptions=True,
        )
        *fine, refused = posted
        assert isinstance(refused, ValueError)
        assert [p.message.body for p in fine] == [f"question {n}" for n in range(12)]  # type: ignore[union-attr]
        while hub.writer.thread is not None:  # idle: the writer thread ends...
            await asyncio.sleep(0.02)
        again = await post_debtor(hub, engine, accesses[1], "and again", NOW)  # ...and restarts
        assert again.message.body == "and again"

    run(scenario)
    with engine.connect() as connection:
        bodies = connection.execute(select(ChatMessageRow.body)).scalars().all()
    assert sorted(bodies) == sorted([f"question {n}" for n in range(12)] + ["and again"])
