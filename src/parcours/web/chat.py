"""Live chat in one process: an in-memory hub that fans messages out to WebSockets, who is
present, and the socket loops of the debtor's page and the agents' inbox.

Topics are `conversation:{id}` (the debtor's tabs and the agents on that conversation)
and `inbox:{creditor id}` (anything that changes that creditor's queue). A socket's first
frame is `{"type": "hello", ...}` (the conversation, who is there, the answer promise);
then the `Posted` payloads of the conversation, and `{"type": "error", "detail"}` for a
frame of its own that was refused.

A publish encodes its payload to JSON once and puts the text on each subscriber's bounded
queue without waiting; a subscriber too slow to keep up is dropped — its socket closes
with 1013 and the page reconnects and reloads — and never slows the others. Each
connection has one task writing to it and reads in another. A message is stored before
anyone hears of it, by the hub's writer thread (the store is synchronous), which stores
the messages that arrive together in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import queue
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from parcours.personas.catalog import Catalog
from parcours.runtime.chat import ChatPost, Posted, open_conversation, post_many
from parcours.store.chat import ChatStore, Conversation, as_uuid
from parcours.web.portal.access import DebtorAccess
from parcours.web.throttle import Throttle

__all__ = [
    "DEBTOR_MESSAGES",
    "QUEUE_SIZE",
    "ChatHub",
    "Subscription",
    "TooFast",
    "agent_socket",
    "debtor_socket",
    "post_agent",
    "post_debtor",
]

QUEUE_SIZE: Final = 256  # frames a subscriber may lag behind before it is dropped
# Messages a debtor may send on one case (`limits` notation): enough for any conversation,
# not for a flood of the agents' inbox by a script or a page left in a loop.
DEBTOR_MESSAGES: Final = "30 per minute;300 per hour"
MAX_FRAME: Final = 16_384  # characters of one client frame (a body is at most 2,000)
TRY_AGAIN: Final = 1013  # close code: the server dropped a lagging subscriber
NOT_FOUND: Final = 4404  # close code: no such conversation for this user


@dataclass(frozen=True, slots=True)
class _Frame:
    payload: dict[str, Any]
    text: str  # the payload as JSON, encoded once for every subscriber


class Subscription:
    """One subscriber's bounded queue; iterate it for payloads (or `texts()` for the
    encoded JSON). Iteration ends when the hub drops it for lagging."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[_Frame] = asyncio.Queue(maxsize=size)
        self.dropped = False

    def offer(self, frame: _Frame) -> bool:
        """Queue a frame without waiting; False when full (the subscriber lags)."""
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            return False
        return True

    async def _next(self) -> _Frame:
        if self.dropped:
            raise StopAsyncIteration
        frame = await self.queue.get()
        if self.dropped:
            raise StopAsyncIteration
        return frame

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return (await self._next()).payload

    async def texts(self) -> AsyncIterator[str]:
        """The frames as the JSON text sockets send."""
        while True:
            try:
                yield (await self._next()).text
            except StopAsyncIteration:
                return


_Job = tuple[Engine, ChatPost, asyncio.AbstractEventLoop, "asyncio.Future[Posted]"]


class _Writer:
    """One thread storing the hub's chat messages: it takes every message waiting and
    stores them in one transaction (`runtime.chat.post_many`), then wakes each poster.

    One writer rather than the thread pool: under load, a transaction per batch instead of
    per message, and no crowd of threads taking turns at the interpreter lock with the
    event loop. It stops after `idle` seconds without work and starts again on demand."""

    def __init__(self, batch: int, idle: float = 30.0) -> None:
        self.batch = batch
        self.idle = idle
        self.queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def submit(self, engine: Engine, post: ChatPost) -> asyncio.Future[Posted]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Posted] = loop.create_future()
        with self.lock:
            self.queue.put((engine, post, loop, future))
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="chat-writer", daemon=True)
                self.thread.start()
        return future

    def _run(self) -> None:
        while True:
            try:
                jobs = [self.queue.get(timeout=self.idle)]
            except queue.Empty:
                with self.lock:
                    if self.queue.empty():
                        self.thread = None
                        return
                continue
            while len(jobs) < self.batch:
                try:
                    jobs.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            engines: dict[int, list[_Job]] = {}
            for job in jobs:
                engines.setdefault(id(job[0]), []).append(job)
            for group in engines.values():
                try:
                    outcomes: list[Any] = post_many(group[0][0], [job[1] for job in group])
                except Exception as error:  # a bug must not kill the writer: each hears it
                    outcomes = [error] * len(group)
                for (_, _, loop, future), outcome in zip(group, outcomes, strict=True):
                    with contextlib.suppress(RuntimeError):  # its event loop is closed
                        loop.call_soon_threadsafe(_settle, future, outcome)


def _settle(future: asyncio.Future[Posted], outcome: Any) -> None:
    if future.cancelled():  # the poster left; the message is stored all the same
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class ChatHub:
    """In-process publish/subscribe and presence for one app (one worker process).

    `catalog` and `default_persona` say where a conversation's answer promise comes from
    (the built-in catalog and "engaged" unless the installation passes its own)."""

    def __init__(
        self,
        *,
        queue_size: int = QUEUE_SIZE,
        catalog: Catalog | None = None,
        default_persona: str = "engaged",
        batch: int = 64,
        debtor_messages: str = DEBTOR_MESSAGES,
    ) -> None:
        self.queue_size = queue_size
        self.debtor_messages = Throttle(debtor_messages)  # per case
        self.catalog = catalog
        self.default_persona = default_persona
        self.writer = _Writer(batch)
        self._topics: dict[str, set[Subscription]] = {}
        self._agents: Counter[str] = Counter()
        self._debtors: Counter[str] = Counter()
        self.dropped = 0  # subscribers dropped for lagging, since the start

    # -- publish / subscribe ---------------------------------------------------------------

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Hand `payload` to every subscriber of `topic` now; lagging ones are dropped."""
        subscribers = self._topics.get(topic)
        if not subscribers:
            return
        frame = _Frame(payload, json.dumps(payload, ensure_ascii=False, separators=(",", ":")))
        lagging = [s for s in subscribers if not s.offer(frame)]
        for subscription in lagging:
            self._drop(topic, subscription)

    def _drop(self, topic: str, subscription: Subscription) -> None:
        subscription.dropped = True
        self._remove(topic, subscription)
        self.dropped += 1

    def _remove(self, topic: str, subscription: Subscription) -> None:
        subscribers = self._topics.get(topic)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._topics[topic]

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        """Receive what is published on `topic` while inside the block."""
        subscription = Subscription(self.queue_size)
        self._topics.setdefault(topic, set()).add(subscription)
        try:
            yield subscription
        finally:
            self._remove(topic, subscription)

    def subscribers(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))

    # -- presence --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def agent_present(self, creditor_id: Any) -> AsyncIterator[None]:
        """Count an agent of this creditor as online while inside the block."""
        key = str(as_uuid(creditor_id))
        self._agents[key] += 1
        try:
            yield
        finally:
            self._agents[key] -= 1
            if self._agents[key] <= 0:
                del self._agents[key]

    def agents_online(self, creditor_id: Any) -> int:
        return self._agents.get(str(as_uuid(creditor_id)), 0)

    @contextlib.asynccontextmanager
    async def debtor_present(self, conversation_id: Any) -> AsyncIterator[None]:
        """Count the debtor as on their page (one per open tab) while inside the block."""
        key = str(as_uuid(conversation_id))
        self._debtors[key] += 1
        try:
            yield
        finally:
            self._debtors[key] -= 1
            if self._debtors[key] <= 0:
                del self._debtors[key]

    def debtor_online(self, conversation_id: Any) -> bool:
        return self._debtors.get(str(as_uuid(conversation_id)), 0) > 0


# -- posting (sockets and plain forms alike) -------------------------------------------------


async def _announce(hub: ChatHub, creditor_id: Any, posted: Posted) -> None:
    """Tell the conversation's sockets, then the creditor's inbox."""
    conversation = posted.conversation
    payload = posted.payload()
    await hub.publish(f"conversation:{conversation.id}", payload)
    await hub.publish(
        f"inbox:{as_uuid(creditor_id)}",
        {
            **payload,
            "type": "queue",
            "case": str(conversation.case_id),
            "waiting_since": _iso(conversation.waiting_since),
            "due_at": _iso(conversation.due_at),
        },
    )


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


async def post_debtor(
    hub: ChatHub, engine: Engine, access: DebtorAccess, body: str, now: dt.datetime
) -> Posted:
    """Store a debtor's message (the hub's writer thread), then publish it. ValueError:
    a bad body (TooFast: over `DEBTOR_MESSAGES` for the case); LookupError: the case is
    not the creditor's."""
    if not hub.debtor_messages.hit(str(access.case_id)):
        raise TooFast("too many messages: wait a minute before sending another one")
    post = ChatPost(
        access.creditor_id, "debtor", body, now, case_id=access.case_id,
        catalog=hub.catalog, default_persona=hub.default_persona,
    )  # fmt: skip
    posted = await hub.writer.submit(engine, post)
    await _announce(hub, access.creditor_id, posted)
    return posted


async def post_agent(
    hub: ChatHub,
    engine: Engine,
    creditor_id: Any,
    conversation_id: Any,
    user_id: Any,
    body: str,
    now: dt.datetime,
) -> Posted:
    """Store an agent's message (the hub's writer thread; a debtor away from the page is
    notified through the outbox), then publish it. ValueError: a bad body; LookupError:
    not this creditor's conversation."""
    try:
        online = hub.debtor_online(conversation_id)
    except ValueError:  # not an id
        raise LookupError("no such conversation for this creditor") from None
    post = ChatPost(
        creditor_id, "agent", body, now, conversation_id=conversation_id, user_id=user_id,
        debtor_online=online,
    )  # fmt: skip
    posted = await hub.writer.submit(engine, post)
    await _announce(hub, creditor_id, posted)
    return posted


# -- the socket loops ------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TooFast(ValueError):
    """A debtor sent more messages than `DEBTOR_MESSAGES` allows."""


def _error(detail: str, code: str | None = None) -> _Frame:
    """An error frame; `code` names what a page may explain in its own words."""
    payload = {"type": "error", "detail": detail} | ({"code": code} if code else {})
    return _Frame(payload, json.dumps(payload))


def _body_of(text: str) -> str:
    """The body of a client frame {"type": "message", "body": "..."}; ValueError if not."""
    if len(text) > MAX_FRAME:
        raise ValueError("this message is too long")
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError('send JSON: {"type": "message", "body": "..."}') from None
    if not isinstance(data, dict) or data.get("type") != "message":
        raise ValueError('send JSON: {"type": "message", "body": "..."}')
    body = data.get("body")
    if not isinstance(body, str):
        raise ValueError("the message body must be text")
    return body


async def _send_loop(websocket: WebSocket, subscription: Subscription) -> None:
    """The connection's only writer: frames in queue order; a lagging one is closed."""
    async for text in subscription.texts():
        await websocket.send_text(text)
    if websocket.application_state is WebSocketState.CONNECTED:
        await websocket.close(code=TRY_AGAIN, reason="too slow: reconnect")


async def _serve(
    websocket: WebSocket,
    subscription: Subscription,
    post: Callable[[str], Awaitable[Posted]],
) -> None:
    """Read client frames and post them while `_send_loop` writes; until either ends."""
    sender = asyncio.create_task(_send_loop(websocket, subscription))
    try:
        while True:
            receiving = asyncio.ensure_future(websocket.receive())
            done, _ = await asyncio.wait({receiving, sender}, return_when=asyncio.FIRST_COMPLETED)
            if sender in done:
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                    await receiving
                return
            try:
                message = receiving.result()
            except (WebSocketDisconnect, RuntimeError):
                return  # the client left (RuntimeError: the socket is no longer open)
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            try:
                if text is None:
                    raise ValueError('send text frames: {"type": "message", "body": "..."}')
                await post(_body_of(text))
            except TooFast as error:
                subscription.offer(_error(str(error), "too_fast"))
            except ValueError as error:
                subscription.offer(_error(str(error)))
            except LookupError:
                subscription.offer(_error("this conversation is not available"))
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


async def debtor_socket(
    websocket: WebSocket, hub: ChatHub, engine: Engine, access: DebtorAccess
) -> None:
    """The debtor page's chat socket, once the route has checked their access to the case
    (it accepts the socket). The debtor counts as present while it is open."""
    await websocket.accept()
    try:
        conversation: Conversation = await run_in_threadpool(
            open_conversation, engine, access.creditor_id, access.case_id, _now(),
            catalog=hub.catalog, default_persona=hub.default_persona,
        )  # fmt: skip
    except LookupError:
        await websocket.send_text(_error("this conversation is not available").text)
        await websocket.close(code=NOT_FOUND)
        return

    async def post(body: str) -> Posted:
        return await post_debtor(hub, engine, access, body, _now())

    async with (
        hub.subscribe(f"conversation:{conversation.id}") as subscription,
        hub.debtor_present(conversation.id),
    ):
        # First frame: what the page shows beside the chat (is an agent there, or when
        # to expect an answer) — and the sign that this tab now counts as present.
        hello = {
            "type": "hello",
            "conversation": str(conversation.id),
            "agents_online": hub.agents_online(access.creditor_id),
            "answer_within_hours": conversation.sla_hours,
            "due_at": _iso(conversation.due_at),
        }
        subscription.offer(_Frame(hello, json.dumps(hello)))
        await _serve(websocket, subscription, post)


def _conversation(engine: Engine, creditor_id: Any, conversation_id: Any) -> Conversation | None:
    with engine.connect() as connection:
        return ChatStore(connection, creditor_id).conversation(conversation_id)


async def agent_socket(
    websocket: WebSocket,
    hub: ChatHub,
    engine: Engine,
    creditor_id: Any,
    user_id: Any,
    conversation_id: Any,
    on_posted: Callable[[Posted], Awaitable[None]] | None = None,
) -> None:
    """An agent's socket on one conversation of their creditor, once the route has
    checked the agent (it accepts the socket). Another creditor's conversation, or an
    unknown one, gets an error and close code 4404. `on_posted` hears of each message
    the agent sends (the back office audits it)."""
    await websocket.accept()
    try:
        conversation = await run_in_threadpool(_conversation, engine, creditor_id, conversation_id)
    except ValueError:  # not a UUID
        conversation = None
    if conversation is None:
        await websocket.send_text(_error("this conversation is not available").text)
        await websocket.close(code=NOT_FOUND)
        return

    async def post(body: str) -> Posted:
        posted = await post_agent(hub, engine, creditor_id, conversation.id, user_id, body, _now())
        if on_posted is not None:
            await on_posted(posted)
        return posted

    async with (
        hub.subscribe(f"conversation:{conversation.id}") as subscription,
        hub.agent_present(creditor_id),
    ):
        hello = {
            "type": "hello",
            "conversation": str(conversation.id),
            "debtor_online": hub.debtor_online(conversation.id),
            "due_at": _iso(conversation.due_at),
        }
        subscription.offer(_Frame(hello, json.dumps(hello)))
        await _serve(websocket, subscription, post)
