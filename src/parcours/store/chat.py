"""Chat in the store: one conversation per case, its messages, and the agents' queue
ordered by answer deadline — every query naming the creditor.

A debtor message that finds nothing waiting starts the clock: `waiting_since` is its time
and `due_at` that time plus the persona's answer promise (`sla_hours`). The next agent
message stops it, and is `late` when it comes after `due_at`. A breach is a late answer,
or a conversation still waiting past its deadline.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import uuid_utils
from sqlalchemy import Connection, and_, bindparam, func, insert, select, true, update
from sqlalchemy.exc import IntegrityError

from parcours.store.schema import (
    CaseRow,
    ChatMessageRow,
    ConversationRow,
    DebtorPersonaRow,
    DebtorRow,
    EventRow,
)

__all__ = [
    "AUTHORS",
    "PREVIEW_CHARS",
    "Author",
    "ChatMessage",
    "ChatStore",
    "Conversation",
    "QueueItem",
    "Reach",
    "advance",
    "as_uuid",
]

Author = Literal["debtor", "agent", "system"]
AUTHORS: Final = ("debtor", "agent", "system")
PREVIEW_CHARS: Final = 140


def as_uuid(value: Any) -> uuid.UUID:
    """An id as a UUID, whatever form it travels in (UUID, text, 16 stored bytes)."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return uuid.UUID(bytes=bytes(value))
    return uuid.UUID(str(value))


def _new_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)


@dataclass(frozen=True, slots=True)
class Conversation:
    id: uuid.UUID
    case_id: uuid.UUID
    debtor_id: uuid.UUID
    sla_hours: int
    opened_at: dt.datetime
    last_message_at: dt.datetime
    waiting_since: dt.datetime | None  # the oldest debtor message not answered yet
    due_at: dt.datetime | None  # the answer deadline; None when nothing waits

    @property
    def waiting(self) -> bool:
        return self.due_at is not None


@dataclass(frozen=True, slots=True)
class ChatMessage:
    id: uuid.UUID
    conversation_id: uuid.UUID
    author: str
    user_id: uuid.UUID | None
    body: str
    at: dt.datetime
    late: bool
    notified_by: str | None  # email | sms: how an offline debtor was told of it


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One line of the agents' inbox."""

    conversation_id: uuid.UUID
    case_id: uuid.UUID
    debtor_id: uuid.UUID
    case_ref: str
    debtor_name: str
    persona: str | None
    sla_hours: int
    due_at: dt.datetime | None
    waiting_since: dt.datetime | None
    last_message_at: dt.datetime
    last_author: str | None
    preview: str  # the last message, cut to PREVIEW_CHARS
    breached: bool  # still waiting past its deadline

    @property
    def waiting(self) -> bool:
        return self.due_at is not None


@dataclass(frozen=True, slots=True)
class Reach:
    """Where a debtor can be told of an answer: contact points not opted out."""

    language: str
    email: bool
    mobile: str | None  # the number (E.164); None when absent or opted out
    preferred_channel: str | None


_CONVERSATION = (
    ConversationRow.id,
    ConversationRow.case_id,
    ConversationRow.debtor_id,
    ConversationRow.sla_hours,
    ConversationRow.opened_at,
    ConversationRow.last_message_at,
    ConversationRow.waiting_since,
    ConversationRow.due_at,
)
_MESSAGE = (
    ChatMessageRow.id,
    ChatMessageRow.conversation_id,
    ChatMessageRow.author,
    ChatMessageRow.user_id,
    ChatMessageRow.body,
    ChatMessageRow.at,
    ChatMessageRow.late,
    ChatMessageRow.notified_by,
)


# The statements of the message path, built once: building SQLAlchemy statements per
# message cost more than running them. (SQLite renders FOR UPDATE as nothing.)
_BY_CASE = select(*_CONVERSATION).where(
    ConversationRow.creditor_id == bindparam("creditor"),
    ConversationRow.case_id == bindparam("key"),
)
_BY_ID = select(*_CONVERSATION).where(
    ConversationRow.creditor_id == bindparam("creditor"),
    ConversationRow.id == bindparam("key"),
)
_MOVE_CLOCK = (
    update(ConversationRow)
    .where(
        ConversationRow.creditor_id == bindparam("creditor"),
        ConversationRow.id == bindparam("key"),
    )
    .values(
        last_message_at=bindparam("last"),
        waiting_since=bindparam("since"),
        due_at=bindparam("due"),
    )
)
_ADD_MESSAGE = insert(ChatMessageRow)
_ADD_EVENTS = insert(EventRow)


def _conversation(row: Any) -> Conversation:
    return Conversation(*row)


def _message(row: Any) -> ChatMessage:
    values = list(row)
    values[6] = bool(values[6])
    return ChatMessage(*values)


def advance(
    conversation: Conversation, author: str, body: str, at: dt.datetime, user_id: Any = None
) -> tuple[ChatMessage, Conversation]:
    """A new message and the conversation after it (nothing stored).

    A debtor message starts the answer clock when nothing waits; an agent message stops
    it and is late after the deadline; a system message leaves it alone."""
    if author not in AUTHORS:
        raise ValueError(f"author must be one of {', '.join(AUTHORS)}")
    late = False
    after = dataclasses.replace(conversation, last_message_at=max(conversation.last_message_at, at))
    if author == "debtor" and conversation.due_at is None:
        due = at + dt.timedelta(hours=conversation.sla_hours)
        after = dataclasses.replace(after, waiting_since=at, due_at=due)
    elif author == "agent" and conversation.due_at is not None:
        late = at > conversation.due_at
        after = dataclasses.replace(after, waiting_since=None, due_at=None)
    message = ChatMessage(
        _new_id(), conversation.id, author, None if user_id is None else as_uuid(user_id),
        body, at, late, None,
    )  # fmt: skip
    return message, after


class ChatStore:
    """One creditor's conversations, inside the caller's transaction (it never commits)."""

    def __init__(self, connection: Connection, creditor_id: Any) -> None:
        self.connection = connection
        self.creditor_id = as_uuid(creditor_id)
        self.postgres = connection.dialect.name == "postgresql"

    # -- conversations ---------------------------------------------------------------------

    def case_debtor(self, case_id: Any) -> uuid.UUID | None:
        """The debtor of one of this creditor's cases, or None when it is not one."""
        return self.connection.execute(
            select(CaseRow.debtor_id).where(
                CaseRow.creditor_id == self.creditor_id, CaseRow.id == as_uuid(case_id)
            )
        ).scalar_one_or_none()

    def _one(self, query: Any, key: Any, lock: bool) -> Conversation | None:
        statement = query.with_for_update() if lock else query
        row = self.connection.execute(
            statement, {"creditor": self.creditor_id, "key": as_uuid(key)}
        ).first()
        return None if row is None else _conversation(row)

    def conversation_of_case(self, case_id: Any, *, lock: bool = False) -> Conversation | None:
        """The case's conversation if it has one (`lock`: for update, on PostgreSQL)."""
        return self._one(_BY_CASE, case_id, lock)

    def conversation_for_case(
        self, case_id: Any, debtor_id: Any, sla_hours: int, now: dt.datetime
    ) -> Conversation:
        """The case's conversation, opened now if it has none (one per case).

        `sla_hours` is the answer promise for the waits to come: an existing conversation
        takes it when it changed (the debtor's persona did); a running deadline stays."""
        if sla_hours < 1:
            raise ValueError("the answer time must be at least one hour")
        case, debtor = as_uuid(case_id), as_uuid(debtor_id)
        found = self.conversation_of_case(case)
        if found is None:
            owner = self.case_debtor(case)
            if owner is None:
                raise LookupError("no such case for this creditor")
            if owner != debtor:
                raise ValueError("the debtor is not the case's debtor")
            try:
                with self.connection.begin_nested():
                    self.connection.execute(
                        insert(ConversationRow).values(
                            id=_new_id(), creditor_id=self.creditor_id, case_id=case,
                            debtor_id=debtor, sla_hours=sla_hours, opened_at=now,
                            last_message_at=now, waiting_since=None, due_at=None,
                        )
                    )  # fmt: skip
            except IntegrityError:  # opened at the same moment by another request
                pass
            found = self.conversation_of_case(case)
            assert found is not None
        if found.debtor_id != debtor:
            raise ValueError("the debtor is not the case's debtor")
        if found.sla_hours != sla_hours:
            self.connection.execute(
                update(ConversationRow)
                .where(
                    ConversationRow.creditor_id == self.creditor_id,
                    ConversationRow.id == found.id,
                )
                .values(sla_hours=sla_hours)
            )
            found = Conversation(
                found.id, found.case_id, found.debtor_id, sla_hours, found.opened_at,
                found.last_message_at, found.waiting_since, found.due_at,
            )  # fmt: skip
        return found

    def conversation(self, conversation_id: Any, *, lock: bool = False) -> Conversation | None:
        """One of this creditor's conversations (`lock`: for update, on PostgreSQL)."""
        return self._one(_BY_ID, conversation_id, lock)

    # -- messages --------------------------------------------------------------------------

    def messages(self, conversation_id: Any, limit: int = 200) -> list[ChatMessage]:
        """The latest `limit` messages of a conversation, oldest first."""
        rows = self.connection.execute(
            select(*_MESSAGE)
            .where(
                ChatMessageRow.creditor_id == self.creditor_id,
                ChatMessageRow.conversation_id == as_uuid(conversation_id),
            )
            .order_by(ChatMessageRow.at.desc(), ChatMessageRow.id.desc())
            .limit(limit)
        ).all()
        return [_message(r) for r in reversed(rows)]

    def add_message(
        self,
        conversation_id: Any,
        author: Author,
        body: str,
        at: dt.datetime,
        user_id: Any = None,
    ) -> ChatMessage:
        """Store a message and move the conversation's answer clock.

        A debtor message starts the clock when nothing waits; an agent message stops it
        and is late after the deadline; a system message leaves it alone. The
        conversation row is locked (PostgreSQL) so two messages at once see each other.
        """
        if author not in AUTHORS:
            raise ValueError(f"author must be one of {', '.join(AUTHORS)}")
        found = self.conversation(conversation_id, lock=True)
        if found is None:
            raise LookupError("no such conversation for this creditor")
        return self.post(found, author, body, at, user_id)[0]

    def post(
        self,
        conversation: Conversation,
        author: Author,
        body: str,
        at: dt.datetime,
        user_id: Any = None,
    ) -> tuple[ChatMessage, Conversation]:
        """`add_message` on a conversation already read (locked) in this transaction, in
        two statements; returns the message and the conversation after it."""
        message, after = advance(conversation, author, body, at, user_id)
        self.save([after], [message])
        return message, after

    def lock_conversations(
        self, ids: Iterable[Any] = (), cases: Iterable[Any] = ()
    ) -> list[Conversation]:
        """These conversations and those of these cases, locked for update (PostgreSQL) in
        id order — the same order in every transaction, so two never wait on each other."""
        wanted, of_cases = {as_uuid(i) for i in ids}, {as_uuid(c) for c in cases}
        if not wanted and not of_cases:
            return []
        query = (
            select(*_CONVERSATION)
            .where(
                ConversationRow.creditor_id == self.creditor_id,
                ConversationRow.id.in_(wanted) | ConversationRow.case_id.in_(of_cases),
            )
            .order_by(ConversationRow.id)
            .with_for_update()
        )
        return [_conversation(row) for row in self.connection.execute(query)]

    def save(
        self,
        conversations: Sequence[Conversation],
        messages: Sequence[ChatMessage],
        events: Sequence[tuple[Conversation, str, dt.datetime, dict[str, Any]]] = (),
    ) -> None:
        """Write what `advance` computed — conversations' clocks, new messages, journey
        events (payloads carry ids, never words) — a statement per kind, whatever the
        number of rows."""
        if conversations:
            self.connection.execute(
                _MOVE_CLOCK,
                [
                    {
                        "creditor": self.creditor_id, "key": c.id, "last": c.last_message_at,
                        "since": c.waiting_since, "due": c.due_at,
                    }
                    for c in conversations
                ],
            )  # fmt: skip
        if messages:
            self.connection.execute(
                _ADD_MESSAGE,
                [
                    {
                        "id": m.id, "creditor_id": self.creditor_id,
                        "conversation_id": m.conversation_id, "author": m.author,
                        "user_id": m.user_id, "body": m.body, "at": m.at, "late": m.late,
                        "notified_by": m.notified_by,
                    }
                    for m in messages
                ],
            )  # fmt: skip
        if events:
            self.connection.execute(
                _ADD_EVENTS,
                [
                    {
                        "id": _new_id(), "creditor_id": self.creditor_id,
                        "case_id": c.case_id, "debtor_id": c.debtor_id, "type": kind,
                        "occurred_at": at, "recorded_at": at, "payload": payload,
                    }
                    for c, kind, at, payload in events
                ],
            )  # fmt: skip

    def set_notified(self, message_id: Any, channel: str) -> None:
        """Note how the debtor was told of this message (email or sms)."""
        self.connection.execute(
            update(ChatMessageRow)
            .where(
                ChatMessageRow.creditor_id == self.creditor_id,
                ChatMessageRow.id == as_uuid(message_id),
            )
            .values(notified_by=channel)
        )

    def notified_since_debtor(self, conversation_id: Any) -> bool:
        """Whether an agent message after the debtor's last one already told them."""
        last_debtor = (
            select(func.max(ChatMessageRow.at))
            .where(
                ChatMessageRow.creditor_id == self.creditor_id,
                ChatMessageRow.conversation_id == as_uuid(conversation_id),
                ChatMessageRow.author == "debtor",
            )
            .scalar_subquery()
        )
        found = self.connection.execute(
            select(ChatMessageRow.id)
            .where(
                ChatMessageRow.creditor_id == self.creditor_id,
                ChatMessageRow.conversation_id == as_uuid(conversation_id),
                ChatMessageRow.author == "agent",
                ChatMessageRow.notified_by.is_not(None),
                (ChatMessageRow.at >= last_debtor) | last_debtor.is_(None),
            )
            .limit(1)
        ).first()
        return found is not None

    def persona(self, debtor_id: Any) -> str | None:
        """The persona key of the debtor's current assignment (None: none, or objected)."""
        return self.connection.execute(
            select(DebtorPersonaRow.persona).where(
                DebtorPersonaRow.creditor_id == self.creditor_id,
                DebtorPersonaRow.debtor_id == as_uuid(debtor_id),
            )
        ).scalar_one_or_none()

    def reach(self, debtor_id: Any) -> Reach | None:
        """How one of this creditor's debtors can be told of an answer."""
        row = self.connection.execute(
            select(
                DebtorRow.language,
                DebtorRow.email,
                DebtorRow.email_consent,
                DebtorRow.phone,
                DebtorRow.phone_consent,
                DebtorRow.preferred_channel,
            ).where(
                DebtorRow.creditor_id == self.creditor_id,
                DebtorRow.id == as_uuid(debtor_id),
                DebtorRow.erased_at.is_(None),
            )
        ).first()
        if row is None:
            return None
        language, email, email_consent, phone, phone_consent, preferred = row
        return Reach(
            language=language,
            email=bool(email) and email_consent != "opted_out",
            mobile=phone if phone and phone_consent != "opted_out" else None,
            preferred_channel=preferred,
        )

    # -- the agents' view ------------------------------------------------------------------

    def queue(self, now: dt.datetime, limit: int = 100) -> list[QueueItem]:
        """The inbox: waiting conversations first, by deadline; then the others, the most
        recently active first. A conversation opened by a page but never written in is
        left out."""
        conversation = ConversationRow
        last = (
            select(ChatMessageRow.body, ChatMessageRow.author)
            .where(
                ChatMessageRow.creditor_id == conversation.creditor_id,
                ChatMessageRow.conversation_id == conversation.id,
            )
            .order_by(ChatMessageRow.at.desc(), ChatMessageRow.id.desc())
            .limit(1)
        )
        query = (
            select(
                conversation.id,
                conversation.case_id,
                conversation.debtor_id,
                CaseRow.ref,
                DebtorRow.name,
                DebtorPersonaRow.persona,
                conversation.sla_hours,
                conversation.due_at,
                conversation.waiting_since,
                conversation.last_message_at,
                last.with_only_columns(ChatMessageRow.author).scalar_subquery(),
                last.with_only_columns(
                    func.substr(ChatMessageRow.body, 1, PREVIEW_CHARS)
                ).scalar_subquery(),
            )
            .join(
                CaseRow,
                and_(
                    CaseRow.id == conversation.case_id,
                    CaseRow.creditor_id == conversation.creditor_id,
                ),
            )
            .join(
                DebtorRow,
                and_(
                    DebtorRow.id == conversation.debtor_id,
                    DebtorRow.creditor_id == conversation.creditor_id,
                ),
            )
            .outerjoin(
                DebtorPersonaRow,
                and_(
                    DebtorPersonaRow.debtor_id == conversation.debtor_id,
                    DebtorPersonaRow.creditor_id == conversation.creditor_id,
                ),
            )
            .where(conversation.creditor_id == self.creditor_id, last.exists())
            .order_by(
                conversation.due_at.is_(None),
                conversation.due_at,
                conversation.last_message_at.desc(),
                conversation.id,
            )
            .limit(limit)
        )
        items = []
        for row in self.connection.execute(query):
            (cid, case, debtor, ref, name, persona, sla, due, since, last_at, author, text) = row
            items.append(
                QueueItem(
                    cid, case, debtor, ref, name, persona, int(sla), due, since, last_at,
                    author, text or "", due is not None and now > due,
                )
            )  # fmt: skip
        return items

    def breaches(self, since: dt.datetime, now: dt.datetime) -> int:
        """Answers given late since `since`, plus conversations still waiting past due."""
        late = self.connection.execute(
            select(func.count())
            .select_from(ChatMessageRow)
            .where(
                ChatMessageRow.creditor_id == self.creditor_id,
                ChatMessageRow.late == true(),
                ChatMessageRow.at >= since,
            )
        ).scalar_one()
        overdue = self.connection.execute(
            select(func.count())
            .select_from(ConversationRow)
            .where(ConversationRow.creditor_id == self.creditor_id, ConversationRow.due_at < now)
        ).scalar_one()
        return int(late) + int(overdue)
