"""The case beside a conversation: what is owed, the debtor's persona and how to talk to
them, and what happened on the case, newest first.

Read through the stores' own queries (payments, the integrator API's case view, chat,
personas). The timeline names events, amounts, channels and outcomes — never the free
text of a message, a note or a dispute's evidence.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection

from parcours.personas.catalog import Catalog
from parcours.store.api import IntegratorStore, decode_cursor, format_minor
from parcours.store.chat import ChatStore, as_uuid
from parcours.store.payments import PaymentStore
from parcours.store.personas import PersonaStore

__all__ = [
    "PAUSED_BY_AGENT", "CaseSheet", "PersonaCard", "TimelineEntry", "case_ref", "read_case",
]  # fmt: skip

PAUSED_BY_AGENT: Final = "paused by agent"
TIMELINE_SHOWN: Final = 100
_PAGE: Final = 500
_PAGES: Final = 20  # a case with more than 10,000 entries shows the ones read
# Payload fields an agent may see in the timeline: references, amounts and outcomes.
_SHOWN_FIELDS: Final = (
    "reason", "outcome", "source", "channel", "template", "script", "status", "due_on",
    "instalments", "missed", "via", "context", "score", "author",
)  # fmt: skip
_MONEY_FIELDS: Final = ("amount_minor", "total_minor", "adjustment_minor")


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: dt.datetime
    kind: str  # event | payment | message | task | fee
    type: str
    summary: str


@dataclass(frozen=True, slots=True)
class PersonaCard:
    key: str
    name: str
    summary: str
    tone: str
    helper_role: str  # the persona's tone notes: how to talk to this person
    answer_within_hours: int
    preferred_channels: tuple[str, ...]
    avoid_channels: tuple[str, ...]
    needs: tuple[str, ...]
    frustrations: tuple[str, ...]
    can_pay: str


@dataclass(frozen=True, slots=True)
class CaseSheet:
    case_id: uuid.UUID
    debtor_id: uuid.UUID
    case_ref: str
    status: str
    debtor_name: str
    language: str | None
    currency: str | None
    balance: str
    balance_minor: int
    invoices: list[dict[str, Any]]
    promise: dict[str, Any] | None
    plan: dict[str, Any] | None
    dispute: dict[str, Any] | None
    journey: dict[str, Any] | None
    persona: PersonaCard | None
    persona_is_default: bool  # no persona of their own: the default one applies
    objected: bool  # the debtor objected to profiling: no persona
    hold: str | None  # None, "agent" (paused here) or "other" (a legal hold from elsewhere)
    timeline: list[TimelineEntry]


def persona_card(catalog: Catalog, key: str | None) -> PersonaCard | None:
    if key is None or key not in catalog:
        return None
    p = catalog[key]
    return PersonaCard(
        key=p.key, name=p.names.en, summary=p.summary, tone=str(p.tone),
        helper_role=p.tone_notes, answer_within_hours=p.answer_within_hours,
        preferred_channels=tuple(str(c) for c in p.preferred_channels),
        avoid_channels=tuple(str(c) for c in p.avoid_channels),
        needs=tuple(p.needs), frustrations=tuple(p.frustrations), can_pay=p.can_pay,
    )  # fmt: skip


def _summary(kind: str, data: dict[str, Any], currency: str | None) -> str:
    parts: list[str] = []
    if kind == "payment":
        parts.append(f"{data.get('amount', '')} {data.get('currency', '')}".strip())
        if data.get("source"):
            parts.append(f"via {data['source']}")
        if data.get("reversed"):
            parts.append("reversed")
        return ", ".join(p for p in parts if p)
    if kind in ("message", "task", "fee"):
        for name in ("channel", "template", "status"):
            if data.get(name):
                parts.append(str(data[name]))
        if kind == "fee" and data.get("amount_minor") is not None and currency:
            parts.append(format_minor(int(data["amount_minor"]), currency))
        return " · ".join(parts)
    for name in _MONEY_FIELDS:
        value = data.get(name)
        if isinstance(value, int) and currency:
            parts.append(f"{name.removesuffix('_minor')} {format_minor(value, currency)}")
    for name in _SHOWN_FIELDS:
        value = data.get(name)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            parts.append(f"{name.replace('_', ' ')} {str(value)[:60]}")
    if data.get("late") is True:
        parts.append("late")
    return ", ".join(parts)


def _timeline(
    store: IntegratorStore, case: uuid.UUID
) -> tuple[list[tuple[dt.datetime, str, str, dict[str, Any]]], int]:
    """Every entry of the case, oldest first (up to _PAGES pages)."""
    entries: list[tuple[dt.datetime, str, str, dict[str, Any]]] = []
    after: tuple[dt.datetime, uuid.UUID] | None = None
    for _ in range(_PAGES):
        page = store.timeline(case, after, _PAGE)
        entries.extend((i["at"], i["kind"], i["type"], i.get("data") or {}) for i in page.items)
        if page.next_cursor is None:
            break
        at_text, key_text = decode_cursor(page.next_cursor, str, str)
        after = (dt.datetime.fromisoformat(at_text), uuid.UUID(key_text))
    return entries, len(entries)


def _hold(entries: list[tuple[dt.datetime, str, str, dict[str, Any]]]) -> str | None:
    for _, kind, kind_type, data in reversed(entries):
        if kind != "event":
            continue
        if kind_type == "legal_hold.lifted":
            return None
        if kind_type == "legal_hold.set":
            return "agent" if data.get("reason") == PAUSED_BY_AGENT else "other"
    return None


def case_ref(connection: Connection, creditor_id: uuid.UUID, case_id: Any) -> str | None:
    """The reference of one of this creditor's cases; None when it is not one."""
    payments = PaymentStore(connection, creditor_id)
    key = payments.case_key(str(as_uuid(case_id)))
    info = payments.cases([key]).get(key)
    return None if info is None else info.ref


def read_case(
    connection: Connection,
    creditor_id: uuid.UUID,
    case_id: Any,
    catalog: Catalog,
    default_persona: str | None = None,
) -> CaseSheet | None:
    """The case sheet of one of this creditor's cases; None when it is not one.

    A debtor without a persona of their own is shown `default_persona` (the one their
    journeys and answer times follow); one who objected to profiling is shown none."""
    payments = PaymentStore(connection, creditor_id)
    key = payments.case_key(str(as_uuid(case_id)))
    info = payments.cases([key]).get(key)
    if info is None:
        return None
    api = IntegratorStore(connection, creditor_id)
    state = api.case_state(info.ref)
    if state is None:
        return None
    debtor = as_uuid(info.debtor)
    reach = ChatStore(connection, creditor_id).reach(debtor)
    history = PersonaStore(connection, creditor_id).history(debtor)
    current = history[0] if history else None
    objected = current is not None and current.source == "objection"
    own = current.persona if current else None
    card = persona_card(catalog, own)
    if card is None and not objected:
        card = persona_card(catalog, default_persona)
    case = as_uuid(case_id)
    entries, _ = _timeline(api, case)
    currency = state["currency"]
    timeline = [
        TimelineEntry(at, kind, kind_type, _summary(kind, data, currency))
        for at, kind, kind_type, data in reversed(entries[-TIMELINE_SHOWN:])
    ]
    return CaseSheet(
        case_id=case, debtor_id=debtor, case_ref=info.ref, status=state["status"],
        debtor_name=info.name, language=reach.language if reach else None,
        currency=currency, balance=state["balance"], balance_minor=info.balance_minor,
        invoices=state["invoices"], promise=state["promise"], plan=state["plan"],
        dispute=state["dispute"], journey=state["journey"],
        persona=card, persona_is_default=card is not None and own is None, objected=objected,
        hold=_hold(entries), timeline=timeline,
    )  # fmt: skip
