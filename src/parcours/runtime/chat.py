"""Chat as the journeys see it: a debtor's question, an agent's answer, and what follows.

Each message is stored with its journey events — `chat.message` always, `question.asked`
when a debtor message starts a wait, `question.answered` when an agent's ends it (a
waiting question pauses collection, `journeys.planner`). A debtor who is not on their page
when an agent answers is told by one message through the outbox (e-mail, else SMS) that
an answer waits on their page, with their link: never the answer's words, which an inbox
or a phone screen could show to someone else. That notice is a *service* message: the
dispatcher judges it with `journeys.policy.check_service` (consent, legal hold, quiet
hours — not paid, disputed or the caps) and renders it without the collection facts.

Every function here is one transaction, committed before it returns: the web layer
publishes what it returns knowing it is stored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from parcours.channels.content import (
    LANGUAGES,
    Address,
    Channel,
    InvoiceLine,
    MessageContent,
)
from parcours.domain.journey import ChannelName
from parcours.domain.structured_communication import StructuredCommunication
from parcours.journeys.policy import DEFAULT_POLICY, GateDecision, PolicyConfig, check_service
from parcours.personas.catalog import Catalog, load_catalog
from parcours.personas.features import is_mobile
from parcours.store.chat import ChatMessage, ChatStore, Conversation, Reach, advance, as_uuid
from parcours.store.journeys import JourneyStore, OutboxEntry
from parcours.store.messages import CaseMessageFacts

if TYPE_CHECKING:
    from parcours.runtime.dispatch import ChannelSet
    from parcours.runtime.tick import GateFacts

__all__ = [
    "CHAT_ANSWER",
    "DEFAULT_SLA_HOURS",
    "MAX_BODY",
    "SERVICE_TEMPLATES",
    "ChatPost",
    "Posted",
    "agent_says",
    "clean_body",
    "debtor_says",
    "notice_attempt_id",
    "open_conversation",
    "post_many",
    "service_content",
    "service_verdict",
    "sla_hours",
]

MAX_BODY: Final = 2000
DEFAULT_SLA_HOURS: Final = 24  # when neither the persona nor the default one says
CHAT_ANSWER: Final = "chat_answer"  # the template of the "an answer waits" notice
# Templates of service messages: asked for by the debtor, judged and laid out as such.
SERVICE_TEMPLATES: Final = frozenset({CHAT_ANSWER})
NOTICE_JOURNEY: Final = "chat"  # the outbox's journey column for chat notices
_KEEP: Final = frozenset("\n\t")


def clean_body(body: str) -> str:
    """A message's text as stored: control characters dropped, line ends unified, ends
    stripped; ValueError when empty or longer than MAX_BODY characters."""
    if not isinstance(body, str):
        raise ValueError("a message is text")
    unified = body.replace("\r\n", "\n").replace("\r", "\n")
    kept = "".join(
        c for c in unified if c in _KEEP or not unicodedata.category(c).startswith("C")
    ).strip()
    if not kept:
        raise ValueError("a message cannot be empty")
    if len(kept) > MAX_BODY:
        raise ValueError(f"a message is at most {MAX_BODY} characters (this one has {len(kept)})")
    return kept


def sla_hours(
    connection: Connection,
    creditor_id: Any,
    debtor_id: Any,
    catalog: Catalog,
    *,
    default_persona: str = "engaged",
) -> int:
    """How many hours an agent has to answer this debtor: their persona's promise
    (`answer_within_hours`), else the default persona's, else DEFAULT_SLA_HOURS."""
    persona = ChatStore(connection, creditor_id).persona(debtor_id)
    return answer_hours(persona, catalog, default_persona)


def answer_hours(persona: str | None, catalog: Catalog, default_persona: str = "engaged") -> int:
    """`sla_hours` for a persona already read (the debtor page reads it with the rest)."""
    for key in (persona, default_persona):
        if key is not None and key in catalog:
            return int(catalog[key].answer_within_hours)
    return DEFAULT_SLA_HOURS


@dataclass(frozen=True, slots=True)
class Posted:
    """A stored chat message and its conversation as it stands after it."""

    message: ChatMessage
    conversation: Conversation

    def payload(self) -> dict[str, Any]:
        """What sockets send: the same for the debtor's page and the agents' inbox."""
        message = self.message
        return {
            "type": "message",
            "conversation": str(self.conversation.id),
            "id": str(message.id),
            "author": message.author,
            "body": message.body,
            "at": message.at.isoformat(),
            "late": message.late,
        }


def notice_attempt_id(message_id: Any) -> str:
    """The outbox attempt id of the notice of one agent message: it is queued once.

    A dot-atom (no colon): e-mails carry it as their Message-ID."""
    return f"chat-{as_uuid(message_id)}"


def _open(
    store: ChatStore,
    case_id: Any,
    now: dt.datetime,
    catalog: Catalog | None,
    default_persona: str,
) -> Conversation:
    debtor = store.case_debtor(case_id)
    if debtor is None:
        raise LookupError("no such case for this creditor")
    hours = sla_hours(
        store.connection, store.creditor_id, debtor, catalog or load_catalog(),
        default_persona=default_persona,
    )  # fmt: skip
    return store.conversation_for_case(case_id, debtor, hours, now)


def open_conversation(
    engine: Engine,
    creditor_id: Any,
    case_id: Any,
    now: dt.datetime,
    *,
    catalog: Catalog | None = None,
    default_persona: str = "engaged",
) -> Conversation:
    """The case's conversation, opened now if it has none (a debtor's chat connects)."""
    with engine.begin() as connection:
        return _open(ChatStore(connection, creditor_id), case_id, now, catalog, default_persona)


@dataclass(frozen=True, slots=True)
class ChatPost:
    """One message to store: a debtor's on their case (`case_id`), or an agent's on one
    of their creditor's conversations (`conversation_id`)."""

    creditor_id: Any
    author: Literal["debtor", "agent"]
    body: str
    at: dt.datetime
    case_id: Any = None
    conversation_id: Any = None
    user_id: Any = None
    debtor_online: bool = True  # an agent's: is the debtor on their page now?
    catalog: Catalog | None = None  # a debtor's first message: where the promise comes from
    default_persona: str = "engaged"


def _notice_channel(reach: Reach | None) -> str | None:
    """E-mail, else SMS to a mobile — the debtor's preferred one first when reachable."""
    if reach is None:
        return None
    usable = []
    if reach.email:
        usable.append("email")
    if reach.mobile is not None and is_mobile(reach.mobile):
        usable.append("sms")
    if reach.preferred_channel in usable:
        return reach.preferred_channel
    return usable[0] if usable else None


Outcome = Posted | Exception  # ValueError, LookupError, or the database's error


def post_many(engine: Engine, posts: Sequence[ChatPost]) -> list[Outcome]:
    """Store messages in one transaction, in order, each with its journey events
    (`chat.message`; `question.asked` when a debtor's starts a wait, `question.answered`
    when an agent's ends one) and, for an agent's to a debtor away from their page, one
    notice per answer turn through the outbox. Each post gets its `Posted`, or what
    refused it alone: ValueError (a bad body), LookupError (not this creditor's).

    A batch costs a few statements whatever its size: under load, many messages share a
    transaction (group commit). Should the transaction fail, each post is tried alone."""
    outcomes: list[Outcome | None] = [None] * len(posts)
    ready: list[tuple[int, ChatPost, str]] = []
    for i, post in enumerate(posts):
        if post.author not in ("debtor", "agent"):
            outcomes[i] = ValueError("a chat message is the debtor's or an agent's")
            continue
        what = "case" if post.author == "debtor" else "conversation"
        try:
            as_uuid(post.case_id if post.author == "debtor" else post.conversation_id)
        except ValueError:  # None or not an id: nothing of this creditor's
            outcomes[i] = LookupError(f"no such {what} for this creditor")
            continue
        try:
            ready.append((i, post, clean_body(post.body)))
        except ValueError as error:
            outcomes[i] = error
    if ready:
        try:
            with engine.begin() as connection:
                stored = _store(connection, ready)
        except SQLAlchemyError as error:
            if len(ready) == 1:
                stored = {ready[0][0]: error}
            else:  # each alone, so that one bad post fails alone
                stored = {i: post_many(engine, [post])[0] for i, post, _ in ready}
        for i, outcome in stored.items():
            outcomes[i] = outcome
    return [o if o is not None else LookupError("not stored") for o in outcomes]


def _store(connection: Connection, ready: list[tuple[int, ChatPost, str]]) -> dict[int, Outcome]:
    out: dict[int, Outcome] = {}
    creditors: dict[Any, list[tuple[int, ChatPost, str]]] = {}
    for item in ready:
        creditors.setdefault(as_uuid(item[1].creditor_id), []).append(item)
    for creditor_id, group in creditors.items():
        store = ChatStore(connection, creditor_id)
        cases = {as_uuid(p.case_id) for _, p, _ in group if p.author == "debtor"}
        ids = {as_uuid(p.conversation_id) for _, p, _ in group if p.author == "agent"}
        found = store.lock_conversations(ids, cases)
        by_id = {c.id: c for c in found}
        by_case = {c.case_id: c for c in found}
        for _, post, _ in group:  # a case's first message opens its conversation
            case = as_uuid(post.case_id) if post.author == "debtor" else None
            if case is None or case in by_case:
                continue
            try:
                opened = _open(store, case, post.at, post.catalog, post.default_persona)
            except LookupError:
                continue
            locked = store.conversation(opened.id, lock=True)
            assert locked is not None
            by_id[locked.id] = by_case[case] = locked
        told: dict[Any, bool] = {}  # conversation -> debtor already told of this turn
        outbox: list[OutboxEntry] = []
        messages: list[ChatMessage] = []
        events: list[tuple[Conversation, str, dt.datetime, dict[str, Any]]] = []
        for i, post, text in group:
            if post.author == "debtor":
                conversation = by_case.get(as_uuid(post.case_id))
            else:
                conversation = by_id.get(as_uuid(post.conversation_id))
            if conversation is None:
                what = "case" if post.author == "debtor" else "conversation"
                out[i] = LookupError(f"no such {what} for this creditor")
                continue
            message, after = advance(conversation, post.author, text, post.at, post.user_id)
            base = {"conversation": str(conversation.id), "message": str(message.id)}
            events.append((after, "chat.message", post.at, base | {"author": post.author}))
            if post.author == "debtor":
                told[conversation.id] = False
                if not conversation.waiting and after.due_at is not None:
                    asked = base | {"due_at": after.due_at.isoformat()}
                    events.append((after, "question.asked", post.at, asked))
            else:
                if conversation.waiting:
                    answered = base | {"late": message.late}
                    events.append((after, "question.answered", post.at, answered))
                if not post.debtor_online:
                    if conversation.id not in told:
                        told[conversation.id] = store.notified_since_debtor(conversation.id)
                    channel = None
                    if not told[conversation.id]:
                        channel = _notice_channel(store.reach(conversation.debtor_id))
                    if channel is not None:
                        told[conversation.id] = True
                        message = dataclasses.replace(message, notified_by=channel)
                        outbox.append(_notice(store, after, message, channel))
            by_id[conversation.id] = by_case[conversation.case_id] = after
            messages.append(message)
            out[i] = Posted(message, after)
        changed = {m.conversation_id for m in messages}
        store.save([c for c in by_id.values() if c.id in changed], messages, events)
        if outbox:
            JourneyStore(connection, creditor_id).add_outbox(outbox, outbox[0].not_before)
    return out


def _notice(
    store: ChatStore, conversation: Conversation, message: ChatMessage, channel: str
) -> OutboxEntry:
    """The outbox row telling the debtor that an answer waits on their page."""
    sqlite = store.connection.dialect.name == "sqlite"
    case, debtor = (
        i.bytes if sqlite else str(i) for i in (conversation.case_id, conversation.debtor_id)
    )
    return OutboxEntry(
        notice_attempt_id(message.id), case, debtor, NOTICE_JOURNEY, "answer", 0, "send",
        channel, CHAT_ANSWER, False, None, "queued", message.at,
        "chat: an answer waits on the debtor's page",
    )  # fmt: skip


def _one(engine: Engine, post: ChatPost) -> Posted:
    outcome = post_many(engine, [post])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def debtor_says(
    engine: Engine,
    creditor_id: Any,
    case_id: Any,
    body: str,
    now: dt.datetime,
    *,
    catalog: Catalog | None = None,
    default_persona: str = "engaged",
) -> Posted:
    """Store a debtor's message on their case's conversation (opened if needed); the first
    one nothing answered yet starts the persona's answer clock and pauses collection.
    ValueError: a bad body; LookupError: not this creditor's case.

    `catalog` and `default_persona`: where the answer promise comes from (the built-in
    catalog and "engaged" unless the installation says otherwise)."""
    return _one(
        engine,
        ChatPost(
            creditor_id, "debtor", body, now, case_id=case_id, catalog=catalog,
            default_persona=default_persona,
        ),
    )  # fmt: skip


def agent_says(
    engine: Engine,
    creditor_id: Any,
    conversation_id: Any,
    user_id: Any,
    body: str,
    now: dt.datetime,
    debtor_online: bool,
) -> Posted:
    """Store an agent's message; it answers (and resumes collection) when a question
    waited, late after the deadline. A debtor not on their page is told once per answer
    turn — the first agent message after their last one — by e-mail or SMS.
    ValueError: a bad body; LookupError: not this creditor's conversation."""
    return _one(
        engine,
        ChatPost(
            creditor_id, "agent", body, now, conversation_id=conversation_id, user_id=user_id,
            debtor_online=debtor_online,
        ),
    )  # fmt: skip


# -- the dispatcher's side of service messages -------------------------------------------


def service_verdict(
    gate: GateFacts,
    row: int,
    channel: ChannelName,
    now: dt.datetime,
    policy: PolicyConfig = DEFAULT_POLICY,
) -> GateDecision:
    """The gate's verdict on a service message of the `row`-th case of a dispatch batch."""
    return check_service(gate.contact(row), channel, now, policy)


def service_content(
    attempt_id: str,
    channel: Channel,
    template: str,
    facts: CaseMessageFacts,
    channels: ChannelSet,
    now: dt.datetime,
    policy: PolicyConfig = DEFAULT_POLICY,
) -> MessageContent:
    """What a service message says to one case: its links and the creditor's help.

    The service layouts print no collection fact; the content still carries what the
    case has (or neutral values for a case with nothing open) because its type asks."""
    language = facts.language if facts.language in LANGUAGES else channels.default_language
    zone = ZoneInfo(facts.timezone or policy.default_timezone)
    country = (facts.country or policy.default_country).upper()
    address = None
    if facts.street and facts.postcode and facts.city:
        address = Address(facts.name, facts.street, facts.postcode, facts.city, country)
    digits = facts.paying_communication
    page = channels.links.url("page", facts.case_text, now)
    return MessageContent(
        attempt_id=attempt_id,
        case_ref=facts.case_ref,
        debtor_ref=facts.debtor_ref,
        channel=channel,
        template=template,
        language=language,
        persona=facts.persona,
        creditor=channels.profile,
        debtor_name=facts.name,
        email=facts.email,
        mobile=facts.mobile,
        address=address,
        invoices=tuple(
            InvoiceLine(i.ref, i.issued_on, i.due_on, i.amount_minor, i.open_minor)
            for i in facts.invoices
        ),
        fees=(),
        currency=facts.invoices[0].currency if facts.invoices else "EUR",
        pay_by=now.astimezone(zone).date(),
        structured_communication=(
            StructuredCommunication(digits) if digits else StructuredCommunication.from_base(0)
        ),
        pay_link=page,
        opt_out_link=channels.links.url("opt-out", facts.case_text, now),
        chat_link=f"{page}#chat",
        reminder=False,
        sent_on=now.astimezone(zone).date(),
    )
