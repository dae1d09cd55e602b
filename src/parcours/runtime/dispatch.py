"""Dispatch: the queued messages whose time has come go out through their channel's provider.

Three short steps, so that nothing is ever sent inside an open transaction:

1. **Claim** (one transaction): due rows are taken under a claim token whose lease ends at
   `not_before` — `FOR UPDATE SKIP LOCKED` on PostgreSQL, the write lock on SQLite — so two
   dispatchers never take the same row; a claim whose holder died expires and is taken
   over. The gate judges each claimed message again against live facts (paid, dispute,
   caps, quiet hours...); what it stops is delayed or skipped here. The message facts of
   the rest (debtor, open invoices, fees, structured communication) are read.
2. **Send** (no transaction): each message is rendered and handed to its provider with
   its attempt id as idempotency key; providers are paced by their rate limit.
3. **Record** (a transaction per small batch): sent, retried later with exponential
   backoff (transient failures), or failed (permanent) — a failure makes the journey's
   next channel take over (e-mail bounce → SMS → letter) and becomes a `message.bounced`
   event the journey reads.

Exactly once: the file outbox and the SMS gateway dedupe by attempt id, so a crash between
sending and recording sends nothing twice; SMTP has no such key, so e-mails carry the
attempt id as Message-ID (clients drop duplicates) and results are recorded in batches of
at most `RECORD_EVERY` messages to keep that window small (a caller whose provider cannot
fail halfway, such as the simulator's recorder, may record larger batches).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Engine

from parcours.channels.base import DeliveryEvent, DeliveryKind, Outcome, Provider, SendResult
from parcours.channels.content import (
    LANGUAGES,
    Address,
    Channel,
    CreditorProfile,
    FeeLine,
    InvoiceLine,
    MessageContent,
)
from parcours.channels.links import Links
from parcours.channels.render import Renderer
from parcours.domain.structured_communication import StructuredCommunication
from parcours.journeys.law import fee_wait_end
from parcours.journeys.library import Library
from parcours.journeys.policy import DEFAULT_POLICY, PolicyConfig
from parcours.runtime.chat import SERVICE_TEMPLATES, service_content, service_verdict
from parcours.store.bulk import Key
from parcours.store.journeys import OutboxEntry
from parcours.store.messages import CaseMessageFacts, MessageStore

__all__ = ["ChannelSet", "dispatch", "record_delivery"]

log = structlog.get_logger(__name__)

MAX_ATTEMPTS: Final = 6
FIRST_BACKOFF: Final = dt.timedelta(minutes=1)
MAX_BACKOFF: Final = dt.timedelta(hours=6)
RECORD_EVERY: Final = 50
PROVIDER_PAUSE: Final = dt.timedelta(minutes=15)  # a carrier refusing us is tried again then
LEGAL_BASIS: Final = {
    "fr": "Code de droit économique, art. XIX.4",
    "nl": "Wetboek van economisch recht, art. XIX.4",
    "en": "Belgian Code of Economic Law, art. XIX.4",
}
_DELIVERY_EVENTS: Final = {
    DeliveryKind.DELIVERED: "message.delivered",
    DeliveryKind.BOUNCED: "message.bounced",
    DeliveryKind.OPENED: "message.opened",
    DeliveryKind.CLICKED: "message.clicked",
    DeliveryKind.REPLIED: "message.replied",
    DeliveryKind.OPTED_OUT: "message.opted_out",
}
_CONSENT_COLUMN: Final = {
    "email": "email_consent",
    "sms": "phone_consent",
    "letter": "postal_consent",
}


@dataclass
class ChannelSet:
    """Everything one creditor's dispatch needs: its profile, a provider (and rate limit)
    per channel, the templates, the link signer and the journeys (for fallbacks)."""

    creditor_name: str
    profile: CreditorProfile
    providers: dict[Channel, tuple[Provider, float | None]]
    renderer: Renderer
    links: Links
    library: Library
    default_language: str = "fr"
    _next_send: dict[int, float] = field(default_factory=dict)

    def pace(
        self, channel: Channel, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        """Wait until the channel's provider may send again (its rate per second)."""
        provider, rate = self.providers[channel]
        if not rate:
            return
        key = id(provider)
        now = clock()
        ready = self._next_send.get(key, now)
        if ready > now:
            sleep(ready - now)
        self._next_send[key] = max(ready, now) + 1.0 / rate

    def close(self) -> None:
        for provider in {id(p): p for p, _ in self.providers.values()}.values():
            provider.close()


@dataclass(frozen=True, slots=True)
class _Claimed:
    outbox_id: Key
    attempt_id: str
    case: Key
    debtor: Key
    channel: Channel
    template: str
    journey: str
    node_id: str
    step: int
    reminder: bool
    attempts: int


def _backoff(attempts: int) -> dt.timedelta:
    """1 min, 4 min, 16 min, ... capped at 6 hours, after the `attempts`-th failure."""
    wait: dt.timedelta = FIRST_BACKOFF * 4 ** max(attempts - 1, 0)
    return min(wait, MAX_BACKOFF)


def dispatch(
    engine: Engine,
    creditor_id: Any,
    channels: ChannelSet,
    now: dt.datetime,
    *,
    policy: PolicyConfig = DEFAULT_POLICY,
    limit: int = 500,
    record_every: int = RECORD_EVERY,
    lease: dt.timedelta = dt.timedelta(minutes=10),
    stop: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Counter[str]:
    """Claim, send and record one batch of at most `limit` due messages."""
    from parcours.runtime.tick import _read_facts

    token = uuid.uuid4().hex
    done: Counter[str] = Counter()
    with engine.begin() as connection:
        store = MessageStore(connection, creditor_id)
        claimed = [_Claimed(*row) for row in store.claim(token, now, limit, now + lease)]
        if not claimed:
            return done
        # A person's messages pass the gate in the order of their journey's steps: when
        # the cap leaves room for some of a burst (after a pause), the earlier ones go.
        claimed.sort(key=lambda c: (c.step, c.attempt_id))
        debtor_of = {c.case: c.debtor for c in claimed}
        cases = list(debtor_of)
        position = {case: i for i, case in enumerate(cases)}
        gate = _read_facts(
            store, cases, list(debtor_of.values()), [store.text(c) for c in cases], now, policy
        )
        recent = gate.recent
        log_rows = []
        sending = []
        for row in claimed:
            contacts = recent.get(row.debtor, [])
            if row.template in SERVICE_TEMPLATES:  # asked for by the debtor: not collection
                verdict = service_verdict(gate, position[row.case], row.channel.value, now, policy)
            else:
                verdict = gate.check_send(
                    position[row.case], row.channel.value, contacts, now, policy
                )
            if verdict.verdict == "send":
                sending.append(row)
                recent.setdefault(row.debtor, []).append((row.channel.value, now))
                continue
            log_rows.append(
                (
                    row.case,
                    row.attempt_id,
                    "send",
                    verdict.verdict,
                    row.channel.value,
                    verdict.reason,
                )
            )
            status = {"delay": "delayed", "skip": "skipped", "review": "review"}[verdict.verdict]
            store.release(row.outbox_id, token, status, verdict.reason, verdict.not_before)
            done[verdict.verdict] += 1
        facts = store.message_facts(list(dict.fromkeys(r.case for r in sending)))
        contents = [(row, _compose(row, facts[row.case], channels, now, policy)) for row in sending]
        store.log_policy(log_rows, now)

    pending: list[tuple[_Claimed, SendResult]] = []
    unsent: list[tuple[_Claimed, str, dt.datetime, str | None]] = []
    paused: dict[Channel, str] = {}  # a carrier that refuses us: its messages wait
    for row, content in contents:
        if row.channel in paused:
            why = f"{row.channel.value} provider refused: {paused[row.channel]}"
            unsent.append((row, "delayed", now + PROVIDER_PAUSE, why))
            continue
        if stop():
            unsent.append((row, "queued", now, None))
            continue
        result = _send(row, content, channels, clock, sleep)
        if result.outcome is Outcome.PROVIDER:
            paused[row.channel] = result.detail or "refused"
            log.error("dispatch.provider_refused", channel=row.channel.value, detail=result.detail)
        pending.append((row, result))
        if len(pending) >= record_every:
            _record(engine, creditor_id, channels, pending, token, now, done)
            pending = []
    if pending:
        _record(engine, creditor_id, channels, pending, token, now, done)
    if unsent:  # stopped (queued again now), or their carrier refused us (later)
        with engine.begin() as connection:
            store = MessageStore(connection, creditor_id)
            for held, status, when, reason in unsent:
                store.release(held.outbox_id, token, status, reason, when)
        done["released"] += len(unsent)
    return done


def _send(
    row: _Claimed,
    content: MessageContent | str,
    channels: ChannelSet,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> SendResult:
    if isinstance(content, str):
        return SendResult(Outcome.PERMANENT, detail=content, units=0)
    try:
        rendered = channels.renderer.render(content)
    except Exception as error:  # a template bug must not stop the other messages
        log.error("dispatch.render_failed", template=row.template, error=type(error).__name__)
        return SendResult(Outcome.PERMANENT, detail=f"template {row.template}: {error}", units=0)
    channels.pace(row.channel, clock, sleep)
    provider, _ = channels.providers[row.channel]
    try:
        return provider.send(content, rendered)
    except Exception as error:  # a provider bug or outage: try again later
        log.error("dispatch.provider_failed", channel=row.channel.value, error=type(error).__name__)
        return SendResult(
            Outcome.TRANSIENT, detail=f"provider error: {type(error).__name__}", units=0
        )


def _compose(
    row: _Claimed,
    facts: CaseMessageFacts,
    channels: ChannelSet,
    now: dt.datetime,
    policy: PolicyConfig,
) -> MessageContent | str:
    """The message's content, or why there can be none."""
    if row.template in SERVICE_TEMPLATES:  # no collection facts: nothing needs to be open
        return service_content(
            row.attempt_id, row.channel, row.template, facts, channels, now, policy
        )
    digits = facts.paying_communication
    if not facts.invoices or digits is None:
        return "nothing open to pay on the case"
    language = facts.language if facts.language in LANGUAGES else channels.default_language
    zone = ZoneInfo(facts.timezone or policy.default_timezone)
    country = (facts.country or policy.default_country).upper()
    oldest_due = min(i.due_on for i in facts.invoices)
    if row.template.startswith("pre_due"):
        pay_by = oldest_due
    else:  # the 14 days Book XIX gives from a reminder (counted as the law counts them)
        law = policy.law
        end = fee_wait_end(
            now, row.channel is not Channel.LETTER, zone, country,
            wait_days=law.wait_days, paper_working_days=law.paper_working_days,
        )  # fmt: skip
        pay_by = max(end - dt.timedelta(days=1), oldest_due)
    address = None
    if facts.street and facts.postcode and facts.city:
        address = Address(facts.name, facts.street, facts.postcode, facts.city, country)
    page = channels.links.url("page", facts.case_text, now)
    return MessageContent(
        attempt_id=row.attempt_id,
        case_ref=facts.case_ref,
        debtor_ref=facts.debtor_ref,
        channel=row.channel,
        template=row.template,
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
        fees=tuple(
            FeeLine(kind, amount, LEGAL_BASIS[language])
            for kind, amount in sorted(facts.fees.items())
        ),
        currency=facts.invoices[0].currency,
        pay_by=pay_by,
        structured_communication=StructuredCommunication(digits),
        pay_link=page,
        opt_out_link=channels.links.url("opt-out", facts.case_text, now),
        chat_link=f"{page}#chat",
        reminder=row.reminder,
        sent_on=now.astimezone(zone).date(),
    )


def _record(
    engine: Engine,
    creditor_id: Any,
    channels: ChannelSet,
    outcomes: list[tuple[_Claimed, SendResult]],
    token: str,
    now: dt.datetime,
    done: Counter[str],
) -> None:
    """Book what the providers said: sent, retry later, or failed (and fall back)."""
    with engine.begin() as connection:
        store = MessageStore(connection, creditor_id)
        log_rows = []
        failed: list[tuple[_Claimed, str]] = []
        sent: list[tuple[Key, dt.datetime, str | None, int, str | None]] = []
        for row, result in outcomes:
            detail = result.detail
            if result.outcome is Outcome.SENT:
                sent.append((row.outbox_id, now, result.provider_ref, result.units, detail))
                verdict = "sent"
            elif result.outcome is Outcome.PROVIDER:  # waits for the operator, never fails
                store.retry_later(row.outbox_id, token, now + PROVIDER_PAUSE, detail)
                verdict = "paused"
            elif result.outcome is Outcome.TRANSIENT and row.attempts + 1 < MAX_ATTEMPTS:
                wait = _backoff(row.attempts + 1)
                if result.retry_after is not None:
                    wait = max(wait, result.retry_after)
                store.retry_later(row.outbox_id, token, now + wait, detail)
                verdict = "retry"
            else:
                why = detail or result.outcome.value
                if result.outcome is Outcome.TRANSIENT:
                    why = f"gave up after {MAX_ATTEMPTS} attempts: {why}"
                store.mark_failed(row.outbox_id, token, why)
                failed.append((row, why))
                verdict = "failed"
            done[verdict] += 1
            log_rows.append(
                (row.case, row.attempt_id, "send", verdict, row.channel.value, detail or verdict)
            )
        store.mark_sent(token, sent)
        store.log_policy(log_rows, now)
        for row, why in failed:
            _failed(store, channels.library, row, why, now)


def _failed(
    store: MessageStore, library: Library, row: _Claimed, why: str, now: dt.datetime
) -> None:
    """A message that can never arrive: the journey hears of it, and its next channel is
    tried unless another channel of the same step reached (or may still reach) the person."""
    store.add_event(
        row.case,
        row.debtor,
        "message.bounced",
        now,
        {"attempt_id": row.attempt_id, "channel": row.channel.value},
    )
    key, _, version = row.journey.rpartition("@")
    try:
        node = library.get(key, int(version)).node(row.node_id)
    except (KeyError, ValueError, StopIteration):
        return
    tried = store.step_channels(row.case, row.debtor, row.journey, row.node_id, row.step)
    if any(status in ("sent", "queued", "delayed") for status in tried.values()):
        return
    order = [*getattr(node, "channels", ()), *getattr(node, "fallback", ())]
    following = [c for c in dict.fromkeys(order) if c not in tried]
    if not following:
        return
    from parcours.runtime.tick import attempt_id

    channel = following[0]
    case_text = store.text(row.case)
    store.add_outbox(
        [
            OutboxEntry(
                attempt_id(case_text, row.journey, row.node_id, row.step, channel), row.case,
                row.debtor, row.journey, row.node_id, row.step, "send", channel, row.template,
                row.reminder, None, "queued", now, f"fallback: {row.channel.value} failed ({why})",
            )
        ],
        now,
    )  # fmt: skip


def record_delivery(
    engine: Engine, creditor_id: Any, event: DeliveryEvent, library: Library, now: dt.datetime
) -> str:
    """Book what a carrier told us about a message (delivery report, bounce, open, click,
    reply, opt-out) as an event of its case; returns what was done, for the caller's log."""
    with engine.begin() as connection:
        store = MessageStore(connection, creditor_id)
        found = store.find_attempt(event.attempt_id, event.provider_ref)
        if found is None:
            return "unknown message"
        row = _Claimed(*found)
        payload = {"attempt_id": row.attempt_id, "channel": row.channel.value}
        store.add_event(row.case, row.debtor, _DELIVERY_EVENTS[event.kind], event.at, payload)
        if event.kind is DeliveryKind.OPTED_OUT and row.channel.value in _CONSENT_COLUMN:
            store.opt_out(row.debtor, _CONSENT_COLUMN[row.channel.value], now)
            return f"opted out of {row.channel.value}"
        if event.kind is DeliveryKind.BOUNCED:
            store.mark_failed(row.outbox_id, None, "bounced after sending")
            _failed(store, library, row, "bounced", now)
            return "bounced: next channel queued"
        return event.kind.value


def channel_set(
    settings: Any, creditor_name: str, library: Library, *, outbox_dir: Path | None = None
) -> ChannelSet:
    """A creditor's channel set from the settings (channels file, secret key, public URL)."""
    from parcours.channels.config import build_providers, load_channels
    from parcours.channels.render import get_renderer

    setup = load_channels(settings.channels_file).for_creditor(creditor_name)
    secret = settings.resolved_secret_key()
    if secret is None:
        raise RuntimeError("no secret key to sign debtor links: run `parcours init`")
    return ChannelSet(
        creditor_name=creditor_name,
        profile=setup.profile.profile(),
        providers=build_providers(setup, outbox_dir or settings.outbox_dir),
        renderer=get_renderer(),
        links=Links(secret.get_secret_value(), settings.public_url, settings.link_days),
        library=library,
        default_language=settings.default_locale[:2],
    )


def case_content(
    connection: Any,
    creditor_id: Any,
    case_id: Any,
    debtor_id: Any,
    channels: ChannelSet,
    template: str,
    channel: Channel,
    now: dt.datetime,
    policy: PolicyConfig = DEFAULT_POLICY,
) -> MessageContent | str:
    """What a message of `template` on `channel` would say to one case now (previews)."""
    store = MessageStore(connection, creditor_id)
    case = case_id.bytes if store.sqlite else str(case_id)
    debtor = debtor_id.bytes if store.sqlite else str(debtor_id)
    facts = store.message_facts([case])[case]
    row = _Claimed(b"", "preview", case, debtor, channel, template, "", "", 0, False, 0)
    return _compose(row, facts, channels, now, policy)
