"""Simulation through the real engine: a portfolio replayed day by day with a fake clock.

Nothing of the journeys is implemented twice. Each simulated day, at 10:00 local time:

1. the real tick runs (`runtime.tick.run_tick`: settle promises and plans, enrol, plan,
   policy gate, outbox and policy log);
2. the real dispatcher sends what is due (`runtime.dispatch.dispatch`: claim, gate again
   against live facts, compose, record) through a provider that records each message
   instead of delivering it; the agents' call tasks due today are worked as calls;
3. those contacts — channel, the template's tone, the pay link (e-mail, SMS, the QR code
   of a letter) and whether the message booked a fee — go to the debtor behaviour model
   (`sim.behaviour.Population`), which says what the debtors did that day;
4. what they did comes back through the production paths: call dispositions through
   `runtime.tasks.complete_task`; opens (e-mail), clicks, replies, chat questions,
   complaints and opt-outs as the events and consent changes a carrier or the portal
   records; promises, plans and disputes through `runtime.arrangements`; satisfaction
   answers as `csat_responses` rows; and the day's payments as one camt.053 statement
   imported and reconciled by `runtime.payments.import_statement`.

Each run (a strategy and a seed) works on its own copy of a template database (the portfolio
imported, survey answers taken, personas classified: paid for once), so the outbox, the
policy log and the payments it leaves are what production would have stored.

Strategies: `persona` (each case on its persona's journey), `universal` (everyone on the
one-size ladder), `none` (nobody contacted: an experiment whose only drawn arm is the
holdout), `persona-vs-universal` (both as arms of a sticky random split), or the key of
an operator's experiment.

Assumptions of the driver itself (the debtors' are in `behaviour.yaml`): messages are
dispatched once a day at the tick; agents work every call task on the day it is due;
they answer a chat question the same afternoon and rule on a dispute (rejected) after
`dispute_days`; the carriers report e-mail opens, clicks and replies (a letter's
reading is never known); a plan the creditor's limits refuse is not recorded (the
debtor still pays what the model says).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import json
import os
import shutil
import time
import uuid
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final, cast

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel
from sqlalchemy import Connection, Engine, event

from parcours.channels.base import Outcome, SendResult
from parcours.channels.content import (
    Address,
    Channel,
    CreditorProfile,
    EmailBody,
    LetterBody,
    MessageContent,
    PhoneScript,
    Rendered,
    SmsBody,
)
from parcours.channels.links import Links
from parcours.channels.render import Renderer
from parcours.domain.arrangements import Frequency
from parcours.domain.journey import Experiment, ExperimentArm
from parcours.journeys.library import Library
from parcours.sim.behaviour import (
    CHANNELS,
    TONES,
    BehaviourConfig,
    Contacts,
    DayOutcome,
    Population,
    persona_codes,
)
from parcours.sim.report import WINDOWS, SeedRun
from parcours.sim.shards import Shard, merge, split

__all__ = [
    "BUILTIN_EXPERIMENT",
    "DEFAULT_DAYS",
    "NO_CONTACT",
    "TEMPLATE_TONES",
    "Placement",
    "RecordingProvider",
    "SimulationError",
    "Strategy",
    "checkpoint",
    "prepare",
    "run_seed",
    "simulate",
    "strategies",
    "strategy",
    "template_tone",
]

DEFAULT_DAYS: Final = 120
TICK_HOUR: Final = 10  # local time of each day's tick and dispatch
NO_CONTACT: Final = "none"
BUILTIN_EXPERIMENT: Final = "persona-vs-universal"
CREDITOR: Final = "simulation"
DISPATCH_BATCH: Final = 5_000
DISPUTE_DAYS: Final = 14  # an agent rules on a dispute after this many days (rejected)
_BUILD_VERSION: Final = 1  # of the template database's recipe (part of its cache key)

# The voice of each built-in template as one of the model's tones: a persona's own
# templates speak in its catalog tone (engaged friendly, struggling supportive, occasional
# concise, nonchalant and problem payer firm); the universal ladder's first two letters
# are neutral and polite ("it may simply have slipped your mind"), its formal notice firm.
TEMPLATE_TONES: Final = {
    "pre_due": "concise",
    "reminder_1_phone": "concise",
    "follow_up_phone": "concise",
    "formal_notice_phone": "concise",
    "chat_invite": "friendly",
    "chat_answer": "friendly",
    "pre_due_friendly": "friendly",
    "reminder_1_friendly": "friendly",
    "reminder_2_friendly": "friendly",
    "reminder_3_friendly": "friendly",
    "pre_due_plan": "supportive",
    "reminder_1_plan": "supportive",
    "reminder_2_plan": "supportive",
    "final_reminder_plan": "supportive",
    "supportive_call": "supportive",
    "plan_missed_call": "supportive",
    "vulnerable_review": "supportive",
    "reminder_1_short": "firm",
    "reminder_2_short": "firm",
    "formal_notice_short": "firm",
    "reminder_1_firm": "firm",
    "reminder_2_firm": "firm",
    "plan_offer_call": "firm",
    "reminder_1": "friendly",
    "reminder_2": "friendly",
    "formal_notice": "firm",
}
_SUFFIX_TONES: Final = (
    ("_friendly", "friendly"),
    ("_plan", "supportive"),
    ("_firm", "firm"),
    ("_short", "firm"),
    ("_phone", "concise"),
)
# A message a debtor can pay from at once: the link of an e-mail or SMS, a letter's QR code.
_PAYABLE: Final = frozenset({"email", "sms", "letter"})
# Opting out of a channel: the debtor's consent column it sets (as carriers' reports do).
_CONSENT: Final = {
    "email": "email_consent",
    "sms": "phone_consent",
    "letter": "postal_consent",
    "phone": "phone_consent",
}
_PROFILE: Final = CreditorProfile(
    name="Simulation SA",
    iban="BE71096123456769",
    bic="GKCCBEBB",
    address=Address("Simulation SA", "Rue de la Loi 16", "1000", "Bruxelles", "BE"),
    help_email="help@simulation.invalid",
    help_phone="+3225550100",
    sms_sender="Simulation",
    email_from="noreply@simulation.invalid",
)

IntArray = npt.NDArray[np.int64]


class SimulationError(ValueError):
    """Bad arguments or an unusable portfolio; the message says what to fix."""


# -- strategies -------------------------------------------------------------------------


@dataclass(frozen=True)
class Strategy:
    """A way to run the portfolio: the library the engine gets, and the experiment whose
    arms split the results (None: one group per persona)."""

    name: str
    description: str
    library: Library
    experiment: str | None = None


def _universal_key(library: Library) -> str:
    universal = library.for_persona(None)
    if universal is None:
        raise SimulationError("the journey library has no universal journey (persona: null)")
    return universal.key


def _pinned(key: str, description: str, arm: str, journey: str | None) -> Experiment:
    """An experiment whose only drawn arm is `arm` (the other has weight 0): everybody
    enrols the way production enrols an experiment's arm."""
    return Experiment(
        key=key,
        description=description,
        arms=(
            ExperimentArm(name=arm, weight=1, journey=journey),
            ExperimentArm(name="persona", weight=0, journey="persona"),
        ),
    )


def strategies(library: Library) -> dict[str, str]:
    """Every strategy name this library offers, with what it does."""
    out = {
        "persona": "each case on its persona's journey",
        "universal": "everybody on the universal ladder",
        NO_CONTACT: "nobody contacted (the debtors' own behaviour)",
        BUILTIN_EXPERIMENT: "persona journeys vs the universal ladder, a sticky 50/50 split",
    }
    for experiment in library.experiments:
        out.setdefault(experiment.key, f"the operator's experiment: {experiment.description}")
    return out


def strategy(name: str, library: Library) -> Strategy:
    """The strategy called `name`, or a SimulationError naming the valid ones."""
    known = strategies(library)
    if name not in known:
        raise SimulationError(f"unknown strategy {name!r}: choose one of {', '.join(known)}")
    journeys = list(library)
    description = known[name]
    if name == "persona":
        return Strategy(name, description, Library(journeys))
    if name == "universal":
        pinned = _pinned("sim-universal", description, "universal", _universal_key(library))
        return Strategy(name, description, Library(journeys, [pinned]))
    if name == NO_CONTACT:
        pinned = _pinned("sim-none", description, "holdout", None)
        return Strategy(name, description, Library(journeys, [pinned]))
    if name == BUILTIN_EXPERIMENT:
        split = Experiment(
            key=BUILTIN_EXPERIMENT,
            description=description,
            arms=(
                ExperimentArm(name="persona", weight=50, journey="persona"),
                ExperimentArm(name="universal", weight=50, journey=_universal_key(library)),
            ),
        )
        return Strategy(name, description, Library(journeys, [split]), BUILTIN_EXPERIMENT)
    chosen = next(e for e in library.experiments if e.key == name)
    active = chosen.model_copy(update={"active": True})
    return Strategy(name, description, Library(journeys, [active]), name)


# -- the prepared portfolio -------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """A portfolio imported and classified in a template database, and its open cases as
    the simulation sees them (one row per case with something owed at placement)."""

    database: Path
    creditor_id: uuid.UUID
    start: dt.datetime  # the first day's tick, UTC
    zone: str
    currency: str
    case_refs: list[str]
    debtor_refs: list[str]
    persona: list[str | None]  # classified (what the engine acts on)
    latent: list[str | None]  # the hidden persona of a synthetic portfolio, if known
    placed_minor: IntArray
    due_day: IntArray  # oldest open due date, days after the first simulated day
    communication: list[str]  # the twelve digits that pay the whole case
    creditor: str = CREDITOR  # the creditor's name in the simulation's databases

    def __len__(self) -> int:
        return len(self.case_refs)

    def tick_time(self, day: int) -> dt.datetime:
        local = self.start.astimezone(zoneinfo.ZoneInfo(self.zone)) + dt.timedelta(days=day)
        wall = dt.datetime.combine(local.date(), dt.time(TICK_HOUR), zoneinfo.ZoneInfo(self.zone))
        return wall.astimezone(dt.UTC)

    def date(self, day: int) -> dt.date:
        return self.tick_time(day).astimezone(zoneinfo.ZoneInfo(self.zone)).date()

    def save(self, path: Path) -> None:
        data = {
            "database": self.database.name,
            "creditor_id": str(self.creditor_id),
            "start": self.start.isoformat(),
            "zone": self.zone,
            "currency": self.currency,
            "case_refs": self.case_refs,
            "debtor_refs": self.debtor_refs,
            "persona": self.persona,
            "latent": self.latent,
            "placed_minor": self.placed_minor.tolist(),
            "due_day": self.due_day.tolist(),
            "communication": self.communication,
            "creditor": self.creditor,
        }
        path.write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Placement:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            database=path.parent / data["database"],
            creditor_id=uuid.UUID(data["creditor_id"]),
            start=dt.datetime.fromisoformat(data["start"]),
            zone=data["zone"],
            currency=data["currency"],
            case_refs=data["case_refs"],
            debtor_refs=data["debtor_refs"],
            persona=data["persona"],
            latent=data["latent"],
            placed_minor=np.array(data["placed_minor"], dtype=np.int64),
            due_day=np.array(data["due_day"], dtype=np.int64),
            communication=data["communication"],
            creditor=data.get("creditor", CREDITOR),
        )


_FILES: Final = (
    "debtors.csv",
    "invoices.csv",
    "payments.csv",
    "survey_answers.csv",
    "ground_truth.csv",
)


def _as_of(portfolio: Path, zone: str) -> dt.date:
    manifest = portfolio / "manifest.json"
    if manifest.exists():
        try:
            return dt.date.fromisoformat(json.loads(manifest.read_text("utf-8"))["as_of"])
        except (KeyError, ValueError, TypeError) as exc:
            raise SimulationError(f"{manifest}: no valid as_of date ({exc})") from None
    return dt.datetime.now(zoneinfo.ZoneInfo(zone)).date()


def _cache_key(portfolio: Path, debtors: int | None, settings: Any, creditor: str) -> str:
    from parcours.store.migrate import head_revision

    parts: list[str] = [str(_BUILD_VERSION), head_revision(), str(debtors), creditor]
    parts += [
        str(settings.personas_dir),
        settings.default_persona,
        str(settings.persona_min_confidence),
        str(settings.persona_min_labels),
        settings.default_timezone,
    ]
    for name in (*_FILES, "manifest.json"):
        path = portfolio / name
        if path.exists():
            stat = path.stat()
            parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.blake2b("|".join(parts).encode(), digest_size=8).hexdigest()


def _subset(portfolio: Path, out: Path, debtors: int) -> Path:
    """The first `debtors` debtors of the portfolio and everything of theirs."""
    out.mkdir(parents=True, exist_ok=True)
    with (portfolio / "debtors.csv").open(encoding="utf-8", newline="") as source:
        reader = csv.reader(source)
        header = next(reader, None)
        if header is None or "debtor_ref" not in header:
            raise SimulationError(f"{portfolio / 'debtors.csv'}: no debtor_ref column")
        at = header.index("debtor_ref")
        rows: list[list[str]] = []
        for row in reader:
            if len(rows) == debtors:
                break
            rows.append(row)
    if len(rows) < debtors:
        raise SimulationError(f"--debtors {debtors}: the portfolio has only {len(rows)} debtors")
    keep = {row[at] for row in rows}
    _write(out / "debtors.csv", header, rows)
    invoices: set[str] = set()
    for name in _FILES[1:]:
        path = portfolio / name
        if not path.exists():
            continue
        with path.open(encoding="utf-8", newline="") as source:
            reader = csv.reader(source)
            head = next(reader, [])
            if name == "payments.csv":
                col = head.index("invoice_ref") if "invoice_ref" in head else -1
                kept = [r for r in reader if col >= 0 and r[col] in invoices]
            else:
                col = head.index("debtor_ref") if "debtor_ref" in head else -1
                kept = [r for r in reader if col >= 0 and r[col] in keep]
            if name == "invoices.csv" and "invoice_ref" in head:
                invoices = {r[head.index("invoice_ref")] for r in kept}
        _write(out / name, head, kept)
    if (portfolio / "manifest.json").exists():
        shutil.copyfile(portfolio / "manifest.json", out / "manifest.json")
    return out


def _write(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as sink:
        writer = csv.writer(sink, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def prepare(
    portfolio: Path,
    work: Path,
    *,
    debtors: int | None = None,
    settings: Any = None,
    progress: Callable[[str], None] | None = None,
    creditor: str = CREDITOR,
) -> Placement:
    """Import a portfolio directory (debtors.csv, invoices.csv, and payments.csv,
    survey_answers.csv, ground_truth.csv when there), classify it, and note its open
    cases — once: the template database is kept in `work` and reused while the files,
    the schema and the persona settings stay the same."""
    from parcours.settings import get_settings

    settings = settings or get_settings()
    if not portfolio.is_dir():
        raise SimulationError(f"--portfolio {portfolio}: not a directory")
    for name in ("debtors.csv", "invoices.csv"):
        if not (portfolio / name).is_file():
            raise SimulationError(f"--portfolio {portfolio}: no {name} in it")
    if debtors is not None and debtors < 1:
        raise SimulationError(f"--debtors {debtors}: at least one debtor")
    work.mkdir(parents=True, exist_ok=True)
    key = _cache_key(portfolio, debtors, settings, creditor)
    saved = work / f"placement-{key}.json"
    if saved.exists() and (work / f"template-{key}.db").exists():
        return Placement.load(saved)
    say = progress or (lambda _stage: None)
    source = portfolio
    if debtors is not None:
        say("subset")
        source = _subset(portfolio, work / f"portfolio-{key}", debtors)
    database = work / f"template-{key}.db"
    building = database.with_suffix(".building")
    for stale in (
        building,
        building.with_name(building.name + "-wal"),
        building.with_name(building.name + "-shm"),
    ):
        stale.unlink(missing_ok=True)
    placement = _build(source, building, database, settings, say, creditor)
    checkpoint(building)
    building.rename(database)
    placement.save(saved)
    return placement


def checkpoint(path: Path) -> None:
    """Fold the write-ahead log into the file, so that one file copy is the database."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        raw.execute("PRAGMA journal_mode=DELETE")


def _build(
    portfolio: Path,
    path: Path,
    final: Path,
    settings: Any,
    say: Callable[[str], None],
    name: str,
) -> Placement:
    from parcours.ingest import ImportKind, import_file
    from parcours.ingest.importer import ImportOptions, report_allows_commit
    from parcours.personas.catalog import load_catalog
    from parcours.runtime.personas import (
        ClassifyPolicy,
        classify_portfolio,
        import_survey_answers,
    )
    from parcours.store.db import connect
    from parcours.store.migrate import upgrade
    from parcours.store.payments import PaymentStore
    from parcours.store.uow import UnitOfWork

    zone = settings.default_timezone
    tz = zoneinfo.ZoneInfo(zone)
    as_of = _as_of(portfolio, zone)
    start = dt.datetime.combine(as_of, dt.time(TICK_HOUR), tz).astimezone(dt.UTC)
    before = start - dt.timedelta(hours=2)  # placement: imported just before the first tick
    engine = connect(f"sqlite:///{path}")
    try:
        upgrade(engine)
        kinds = [ImportKind.DEBTORS, ImportKind.INVOICES]
        if (portfolio / "payments.csv").exists():
            kinds.append(ImportKind.PAYMENTS)
        for kind in kinds:
            say(f"import {kind.value}")
            with UnitOfWork(engine) as uow:
                creditor = uow.creditors.by_name(name) or uow.creditors.add(name, before)
                options = ImportOptions(
                    creditor_id=creditor.id, creditor_name=name, now=before, default_zone=tz
                )
                file = portfolio / f"{kind.value}.csv"
                report = import_file(uow.connection(), kind, file, options)
                if report.file_error or not report_allows_commit(report):
                    first = report.file_error or (str(report.errors[0]) if report.errors else "")
                    raise SimulationError(f"{file}: cannot be imported: {first}")
                uow.commit()
        catalog = load_catalog(settings.personas_dir)
        with UnitOfWork(engine) as uow:
            found = uow.creditors.by_name(name)
            assert found is not None
            creditor = found
            answers = portfolio / "survey_answers.csv"
            if answers.exists():
                say("survey answers")
                import_survey_answers(uow.connection(), creditor, answers, catalog, before, tz)
            say("classify")
            policy = ClassifyPolicy(
                as_of,
                before,
                zone,
                settings.default_persona,
                settings.persona_min_confidence,
                settings.persona_min_labels,
            )
            classify_portfolio(uow.connection(), creditor, catalog, policy)
            uow.commit()
            creditor_id = creditor.id
        say("open cases")
        with engine.begin() as connection:
            store = PaymentStore(connection, creditor_id)
            cases = store.unenrolled_cases()
            keys = [c for c, *_ in cases]
            # Gives each case with several open invoices its own communication, as the
            # first message to it would (one transfer then pays the whole case).
            facts = store.message_facts(keys)
            currency = store.currency() or settings.default_currency
    finally:
        engine.dispose()
    latent = _latent(portfolio)
    epoch = as_of
    rows: list[tuple[str, str, str | None, str | None, int, int, str]] = []
    for case, _, persona, objected in cases:
        fact = facts.get(case)
        if fact is None or not fact.invoices or fact.paying_communication is None:
            continue  # nothing owed at placement: the engine closes it, the model has nothing
        owed = sum(i.open_minor for i in fact.invoices)
        due = min(i.due_on for i in fact.invoices)
        rows.append(
            (
                fact.case_ref,
                fact.debtor_ref,
                None if objected else persona,
                latent.get(fact.debtor_ref),
                owed,
                (due - epoch).days,
                fact.paying_communication,
            )
        )
    rows.sort(key=lambda r: r[0])  # the case ref: a stable order whatever the database's
    if not rows:
        raise SimulationError(f"{portfolio}: no debtor owes anything at placement")
    return Placement(
        database=final,
        creditor_id=creditor_id,
        start=start,
        zone=zone,
        currency=currency,
        case_refs=[r[0] for r in rows],
        debtor_refs=[r[1] for r in rows],
        persona=[r[2] for r in rows],
        latent=[r[3] for r in rows],
        placed_minor=np.array([r[4] for r in rows], dtype=np.int64),
        due_day=np.array([r[5] for r in rows], dtype=np.int64),
        communication=[r[6] for r in rows],
        creditor=name,
    )


def _latent(portfolio: Path) -> dict[str, str]:
    """The hidden persona of each debtor of a synthetic portfolio (ground_truth.csv)."""
    path = portfolio / "ground_truth.csv"
    if not path.exists():
        return {}
    with path.open(encoding="utf-8", newline="") as source:
        return {row["debtor_ref"]: row["latent_persona"] for row in csv.DictReader(source)}


# -- the channels of a simulated run -----------------------------------------------------


@dataclass(slots=True)
class _Sent:
    content: MessageContent
    units: int


class RecordingProvider:
    """Accepts every message and keeps it for the simulation (nothing leaves the process)."""

    name: ClassVar[str] = "simulation"
    Config: ClassVar[type[BaseModel]] = BaseModel

    def __init__(self) -> None:
        self.sent: list[_Sent] = []

    def send(self, content: MessageContent, rendered: Rendered) -> SendResult:
        units = 1
        if isinstance(rendered, SmsBody) and rendered.text:
            from parcours.channels import gsm

            units = gsm.segments(rendered.text)
        self.sent.append(_Sent(content, units))
        return SendResult(Outcome.SENT, provider_ref=f"sim:{content.attempt_id}", units=units)

    def take(self) -> list[_Sent]:
        sent, self.sent = self.sent, []
        return sent

    def close(self) -> None:
        return None


class _Unrendered(Renderer):
    """Skips the words (Jinja2, catalogs): the simulation needs what a message is, not how
    it reads. `render=True` uses the real renderer instead (and counts SMS segments)."""

    def __init__(self) -> None:  # no templates to load
        pass

    def render(self, content: MessageContent) -> Rendered:
        channel = content.channel
        if channel is Channel.EMAIL:
            return EmailBody("", "", "")
        if channel is Channel.SMS:
            return SmsBody("")
        if channel is Channel.LETTER:
            return LetterBody("", "", (), "")
        return PhoneScript("", ())


class _OneTransaction:
    """Lends one open connection to functions that take an engine and open their own
    transaction (`with engine.begin()`): the day's feedback is one transaction, not one
    per promise or call. Those functions check everything before they write."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        yield self.connection


def template_tone(template: str) -> str:
    """The tone (one of the model's TONES) a template speaks in."""
    tone = TEMPLATE_TONES.get(template)
    if tone is None:
        tone = next((t for suffix, t in _SUFFIX_TONES if template.endswith(suffix)), "friendly")
    return tone


# -- one run ----------------------------------------------------------------------------


@dataclass
class _Day:
    """Who got which contact today (rows of the model's `Contacts`)."""

    debtor: list[int] = field(default_factory=list)
    channel: list[int] = field(default_factory=list)
    tone: list[int] = field(default_factory=list)
    pay_link: list[bool] = field(default_factory=list)
    fee: list[bool] = field(default_factory=list)
    attempt: list[str] = field(default_factory=list)
    task: list[bool] = field(default_factory=list)  # an agent's call (closed by disposition)

    def add(
        self,
        debtor: int,
        channel: str,
        tone: str,
        link: bool,
        fee: bool,
        attempt: str,
        task: bool = False,
    ) -> None:
        self.debtor.append(debtor)
        self.channel.append(_CHANNEL_CODE[channel])
        self.tone.append(_TONE_CODE[tone])
        self.pay_link.append(link)
        self.fee.append(fee)
        self.attempt.append(attempt)
        self.task.append(task)

    def contacts(self) -> Contacts:
        if not self.debtor:
            return Contacts.none()
        return Contacts(
            debtor=np.array(self.debtor, dtype=np.int64),
            channel=np.array(self.channel, dtype=np.int8),
            tone=np.array(self.tone, dtype=np.int8),
            pay_link=np.array(self.pay_link, dtype=np.bool_),
            fee=np.array(self.fee, dtype=np.bool_),
        )


_CHANNEL_CODE: Final = {c: i for i, c in enumerate(CHANNELS)}
_TONE_CODE: Final = {t: i for i, t in enumerate(TONES)}


@dataclass
class _Timer:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def run_seed(
    placement: Placement,
    chosen: Strategy,
    *,
    days: int,
    seed: int,
    work: Path,
    render: bool = False,
    behaviour: BehaviourConfig | None = None,
    keep_database: Path | None = None,
    dispute_days: int = DISPUTE_DAYS,
    progress: Callable[[int], None] | None = None,
    shard: Shard | None = None,
) -> SeedRun:
    """Run one strategy on one seed for `days` days on a fresh copy of the template.

    With `shard`, `placement` is that part of a larger one (`sim.shards.split`), and its
    debtors behave as they do within the whole."""
    from parcours.store.db import connect

    if days < 1:
        raise SimulationError(f"--days {days}: at least one day")
    work.mkdir(parents=True, exist_ok=True)
    path = keep_database or work / f"run-{chosen.name}-{seed}-{os.getpid()}.db"
    ids, universe = (None, None) if shard is None else (shard.ids, shard.universe)
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(placement.database, path)
    engine = connect(f"sqlite:///{path}", check=False)
    event.listen(engine, "connect", _throwaway)
    try:
        return _Run(
            placement, chosen, engine, seed, days, render, behaviour, dispute_days, ids, universe
        ).run(progress)
    finally:
        engine.dispose()
        if keep_database is None:
            for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                leftover.unlink(missing_ok=True)


def _throwaway(dbapi_connection: Any, _record: Any) -> None:
    """A run's copy is thrown away after the run: no flush to disk at each commit (the
    engine commits after every few dozen messages)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


class _Run:
    """The day loop of one run and the state it keeps beside the model."""

    def __init__(
        self,
        placement: Placement,
        chosen: Strategy,
        engine: Engine,
        seed: int,
        days: int,
        render: bool,
        behaviour: BehaviourConfig | None,
        dispute_days: int,
        ids: IntArray | None = None,
        universe: int | None = None,
    ) -> None:
        from parcours.channels.render import get_renderer
        from parcours.runtime.dispatch import ChannelSet

        self.placement = placement
        self.strategy = chosen
        self.engine = engine
        self.seed = seed
        self.days = days
        self.dispute_days = dispute_days
        n = len(placement)
        config = behaviour
        if config is None:
            from parcours.sim.behaviour import load_behaviour

            config = load_behaviour()
        known = persona_codes(config)
        # The debtor behaves as who they are (the hidden persona when the portfolio has
        # one), the engine acts on whom it thinks they are.
        truth = [
            latent if latent in known else (persona if persona in known else None)
            for latent, persona in zip(placement.latent, placement.persona, strict=True)
        ]
        self.population = Population.create(
            truth, placement.placed_minor, placement.due_day, seed, config,
            ids=ids, universe=universe,
        )  # fmt: skip
        self.index = {ref: i for i, ref in enumerate(placement.case_refs)}
        self.recorder = RecordingProvider()
        self.channels = ChannelSet(
            placement.creditor,
            _PROFILE,
            dict.fromkeys(Channel, (self.recorder, None)),
            get_renderer() if render else _Unrendered(),
            Links("simulation-secret", "https://pay.simulation.invalid"),
            chosen.library,
        )
        self.fees_seen = np.zeros(n, dtype=np.int64)  # fees shown on the last message
        self.paid_total = np.zeros(n, dtype=np.int64)  # paid so far, fees included
        # The day what was placed was paid in full (fees the engine added come after).
        self.settled_day = np.full(n, -1, dtype=np.int64)
        self.collected_at: dict[int, IntArray] = {}
        self.contacts = np.zeros((n, len(CHANNELS)), dtype=np.int64)
        self.sms_units = np.zeros(n, dtype=np.int64)
        self.promises = np.zeros(n, dtype=np.int64)
        self.plans = np.zeros(n, dtype=np.int64)
        self.csat = np.zeros((n, 5), dtype=np.int64)
        self.disputes: dict[int, int] = {}  # debtor → day its dispute was opened (open ones)
        self.counts: Counter[str] = Counter()
        self.timer = _Timer()
        self.persona_of = list(placement.persona)
        self.journey_of: list[str | None] = [None] * n
        self.keys: dict[int, tuple[bytes, bytes]] = {}

    # -- the loop -----------------------------------------------------------------------

    def run(self, progress: Callable[[int], None] | None) -> SeedRun:
        started = time.perf_counter()
        found = _cases(self.engine, self.placement.creditor_id)
        self.keys = {
            self.index[ref]: (case, debtor)
            for ref, (case, debtor, _) in found.items()
            if ref in self.index
        }
        for day in range(self.days):
            self.day(day)
            if day == 0:  # every case is enrolled now: the journey its answers are about
                found = _cases(self.engine, self.placement.creditor_id)
                for ref, (_, _, journey) in found.items():
                    if ref in self.index:
                        self.journey_of[self.index[ref]] = journey
            if day + 1 in WINDOWS or day + 1 == self.days:
                self.collected_at[day + 1] = np.minimum(
                    self.paid_total, self.placement.placed_minor
                )
            if progress is not None:
                progress(day + 1)
        arms = self._arms() if self.strategy.experiment else None
        engine = self._engine_summary()
        self.timer.seconds["total"] = time.perf_counter() - started
        p = self.population
        return SeedRun(
            strategy=self.strategy.name,
            seed=self.seed,
            days=self.days,
            currency=self.placement.currency,
            persona=[x or "(unclassified)" for x in self.placement.persona],
            arm=arms,
            placed_minor=self.placement.placed_minor.copy(),
            due_day=self.placement.due_day.copy(),
            collected_at=self.collected_at,
            paid_day=self.settled_day,
            contacts=self.contacts,
            sms_units=self.sms_units,
            complaints=p.complaints.astype(np.int64),
            opted_out=p.opted_out > 0,
            disputed=p.disputed.copy(),
            promises=self.promises,
            plans=self.plans,
            csat=self.csat,
            engine={**engine, **{f"fed_{k}": v for k, v in sorted(self.counts.items())}},
            timings={k: round(v, 3) for k, v in self.timer.seconds.items()},
        )

    def day(self, day: int) -> None:
        from parcours.runtime.dispatch import dispatch
        from parcours.runtime.tasks import due_tasks
        from parcours.runtime.tick import run_tick

        p = self.placement
        now = p.tick_time(day)
        timer = self.timer
        with timer.part("tick"), self.engine.begin() as connection:
            run_tick(connection, p.creditor_id, self.strategy.library, now, zone=p.zone)
        with timer.part("dispatch"):
            # The recorder keeps every message in memory: one record per batch.
            while dispatch(
                self.engine,
                p.creditor_id,
                self.channels,
                now,
                limit=DISPATCH_BATCH,
                record_every=DISPATCH_BATCH,
            ):
                pass
        with timer.part("feedback"), self.engine.connect() as connection:
            tasks = due_tasks(connection, p.creditor_id, now, 1_000_000)
        with timer.part("driver"):
            today = self._contacts(self.recorder.take(), tasks)
        with timer.part("model"):
            outcome = self.population.day(day, today.contacts())
        with timer.part("feedback"):
            self._feed(day, today, outcome)

    def _contacts(self, sent: list[_Sent], tasks: list[tuple[Any, ...]]) -> _Day:
        today = _Day()
        charged_who: list[int] = []
        charged: list[int] = []
        for item in sent:
            content = item.content
            i = self.index.get(content.case_ref)
            if i is None:  # a case the model does not hold (nothing owed at placement)
                continue
            channel = content.channel.value
            fees = content.fees_minor
            fee = fees > self.fees_seen[i]
            if fee:
                charged_who.append(i)
                charged.append(fees - int(self.fees_seen[i]))
                self.fees_seen[i] = fees
            today.add(
                i,
                channel,
                template_tone(content.template),
                channel in _PAYABLE,
                fee,
                content.attempt_id,
            )
            self.contacts[i, _CHANNEL_CODE[channel]] += 1
            if channel == "sms":
                self.sms_units[i] += item.units
        calls = 0
        for attempt, case_ref, _channel, script, _journey, _created in tasks:
            i = self.index.get(case_ref)
            if i is None or self.paid_total[i] >= self.placement.placed_minor[i]:
                continue  # the agent sees the case paid: no call (the task stays listed)
            today.add(i, "phone", template_tone(script), False, False, attempt, task=True)
            self.contacts[i, _CHANNEL_CODE["phone"]] += 1
            calls += 1
        if charged:
            self.population.charge(charged_who, charged)
        self.counts["messages"] += len(sent)
        self.counts["calls"] += calls
        return today

    # -- feeding the outcomes back ------------------------------------------------------

    def _feed(self, day: int, today: _Day, outcome: DayOutcome) -> None:
        from parcours.runtime.arrangements import resolve_dispute
        from parcours.store.payments import PaymentStore

        p = self.placement
        now = p.tick_time(day)
        noon = now + dt.timedelta(hours=2)
        with self.engine.begin() as connection:
            store = PaymentStore(connection, p.creditor_id)
            shared = cast(Engine, _OneTransaction(connection))
            cases = self.keys
            self._calls(shared, store, today, outcome, noon)
            self._events(store, cases, today, outcome, noon)
            self._arrangements(shared, cases, today, outcome, noon)
            self._csat(store, cases, outcome, now + dt.timedelta(hours=8))
            for i, opened in sorted(self.disputes.items()):
                if day - opened >= self.dispute_days:
                    del self.disputes[i]
                    with contextlib.suppress(ValueError):
                        resolve_dispute(
                            shared,
                            p.creditor_id,
                            p.case_refs[i],
                            "rejected",
                            noon,
                            actor="simulation",
                        )
                        self.counts["disputes_ruled"] += 1
        self._payments(day, outcome, now + dt.timedelta(hours=8))

    def _calls(
        self, shared: Engine, store: Any, today: _Day, outcome: DayOutcome, at: dt.datetime
    ) -> None:
        """Close today's call tasks with the disposition the model's answer implies."""
        from parcours.runtime.tasks import Disposition, TaskError, complete_task

        tasks = [j for j, task in enumerate(today.task) if task]
        if not tasks:
            return
        answered = set(outcome.opened.contact.tolist())
        promised = {int(c): k for k, c in enumerate(outcome.promises.contact.tolist())}
        date = self.placement.date
        for j in tasks:
            promise = None
            if j in promised:
                k = promised[j]
                amount = self._promisable(
                    int(outcome.promises.debtor[k]), int(outcome.promises.amount_minor[k])
                )
                if amount:
                    disposition = Disposition.PROMISE
                    promise = (amount, self.placement.currency, date(int(outcome.promises.day[k])))
                else:
                    disposition = Disposition.RIGHT_PARTY
            elif j in answered:
                disposition = Disposition.RIGHT_PARTY
            else:
                disposition = Disposition.NO_ANSWER
            try:
                complete_task(
                    shared,
                    self.placement.creditor_id,
                    today.attempt[j],
                    disposition,
                    at,
                    promise=promise,
                )
            except TaskError:
                self.counts["tasks_refused"] += 1
                continue
            self.counts[f"call_{disposition.value}"] += 1
            if disposition is Disposition.PROMISE:
                self.promises[today.debtor[j]] += 1

    def _promisable(self, i: int, amount: int) -> int:
        """What the engine accepts as a promise: no more than the invoices left open."""
        open_minor = max(0, int(self.placement.placed_minor[i]) - int(self.paid_total[i]))
        return min(amount, open_minor)

    def _events(
        self,
        store: Any,
        cases: dict[int, tuple[Any, Any]],
        today: _Day,
        outcome: DayOutcome,
        at: dt.datetime,
    ) -> None:
        """What carriers and the portal would have recorded, in bulk."""
        rows: list[tuple[Any, Any, str, dt.datetime, dict[str, Any]]] = []

        def add(
            kind: str,
            debtors: IntArray,
            contacts: IntArray | None,
            channels: Sequence[str] | None = None,
            when: dt.datetime = at,
        ) -> None:
            for k, i in enumerate(debtors.tolist()):
                j = None if contacts is None else int(contacts[k])
                channel = CHANNELS[today.channel[j]] if j is not None else None
                if channels is not None and channel not in channels:
                    continue
                case, debtor = cases[i]
                payload: dict[str, Any] = {}
                if j is not None:
                    payload = {"attempt_id": today.attempt[j], "channel": channel}
                rows.append((case, debtor, kind, when, payload))
                self.counts[kind] += 1

        # Carriers confirm the delivery of e-mails and SMS (a letter's is never known).
        for j, (i, code, task) in enumerate(
            zip(today.debtor, today.channel, today.task, strict=True)
        ):
            channel = CHANNELS[code]
            if not task and channel in ("email", "sms"):
                case, debtor = cases[i]
                payload = {"attempt_id": today.attempt[j], "channel": channel}
                rows.append((case, debtor, "message.delivered", at, payload))
                self.counts["message.delivered"] += 1
        # Only e-mail opens are reported (a pixel); a click is the pay link's page; a
        # reply comes back by e-mail or SMS (a letter's or a call's answer is a call).
        add("message.opened", outcome.opened.debtor, outcome.opened.contact, ("email",))
        add("message.clicked", outcome.clicked.debtor, outcome.clicked.contact)
        add(
            "message.replied",
            outcome.replied.debtor,
            outcome.replied.contact,
            ("email", "sms", "letter"),
        )
        add("question.asked", outcome.chat_questions.debtor, None)
        add(
            "question.answered",
            outcome.chat_questions.debtor,
            None,
            when=at + dt.timedelta(hours=3),
        )
        add("complaint.made", outcome.complaints.debtor, outcome.complaints.contact)
        for i, code in zip(
            outcome.opt_outs.debtor.tolist(), outcome.opt_outs.channel.tolist(), strict=True
        ):
            channel = CHANNELS[code]
            case, debtor = cases[i]
            rows.append((case, debtor, "message.opted_out", at, {"channel": channel}))
            self.counts["message.opted_out"] += 1
            if channel in _CONSENT:
                store.opt_out(debtor, _CONSENT[channel], at)
        store.add_events(rows)

    def _arrangements(
        self,
        shared: Engine,
        cases: dict[int, tuple[Any, Any]],
        today: _Day,
        outcome: DayOutcome,
        at: dt.datetime,
    ) -> None:
        """Promises, plans and disputes made on the page (or on a call) by the debtors."""
        from parcours.runtime.arrangements import (
            CaseError,
            create_plan,
            make_promise,
            open_dispute,
        )

        p = self.placement
        date = p.date
        for k, i in enumerate(outcome.promises.debtor.tolist()):
            if today.task[int(outcome.promises.contact[k])]:
                continue  # recorded with the call's disposition
            amount = self._promisable(i, int(outcome.promises.amount_minor[k]))
            if not amount:
                continue
            try:
                make_promise(
                    shared,
                    p.creditor_id,
                    p.case_refs[i],
                    amount,
                    date(int(outcome.promises.day[k])),
                    at,
                    source="debtor",
                    actor="simulation",
                )
            except CaseError:
                self.counts["promises_refused"] += 1
                continue
            self.promises[i] += 1
            self.counts["promises"] += 1
        plans = outcome.plans
        for k, i in enumerate(plans.debtor.tolist()):
            interval = int(plans.interval_days[k])
            every: Frequency = (
                "month" if interval >= 28 else "fortnight" if interval >= 14 else "week"
            )
            try:
                create_plan(
                    shared,
                    p.creditor_id,
                    p.case_refs[i],
                    int(plans.instalments[k]),
                    date(int(plans.first_day[k])),
                    at,
                    every=every,
                    source="agent" if today.task[int(plans.contact[k])] else "debtor",
                    actor="simulation",
                )
            except CaseError:
                self.counts["plans_refused"] += 1
                continue
            self.plans[i] += 1
            self.counts["plans"] += 1
        for k, i in enumerate(outcome.disputes.debtor.tolist()):
            try:
                by_call = today.task[int(outcome.disputes.contact[k])]
                open_dispute(
                    shared,
                    p.creditor_id,
                    p.case_refs[i],
                    "other",
                    None,
                    at,
                    source="agent" if by_call else "debtor",
                    actor="simulation",
                )
            except CaseError:
                self.counts["disputes_refused"] += 1
                continue
            self.disputes[i] = outcome.day
            self.counts["disputes"] += 1

    def _csat(
        self, store: Any, cases: dict[int, tuple[Any, Any]], outcome: DayOutcome, at: dt.datetime
    ) -> None:
        """Satisfaction answers as the debtor page stores them."""
        from parcours.sim.behaviour import CSAT_CONTEXTS

        answers = outcome.csat
        if not len(answers.debtor):
            return
        w = store.writer
        stamp = w.timestamp(at)
        rows = []
        for i, score, context in zip(
            answers.debtor.tolist(), answers.score.tolist(), answers.context.tolist(), strict=True
        ):
            case, _ = cases[i]
            rows.append(
                (
                    w.new_id(),
                    w.creditor_key,
                    case,
                    CSAT_CONTEXTS[context],
                    int(score),
                    None,
                    self.persona_of[i],
                    self.journey_of[i],
                    stamp,
                )
            )
            self.csat[i, int(score) - 1] += 1
        w.insert(
            "csat_responses",
            (
                "id",
                "creditor_id",
                "case_id",
                "context",
                "score",
                "comment",
                "persona",
                "journey",
                "at",
            ),
            rows,
        )
        self.counts["csat"] += len(rows)

    def _payments(self, day: int, outcome: DayOutcome, at: dt.datetime) -> None:
        """The day's payments as one camt.053 statement, imported and reconciled."""
        from parcours.payments.camt import write_camt
        from parcours.payments.statements import Statement, StatementLine
        from parcours.runtime.payments import import_statement

        paid = outcome.payments
        if not len(paid.debtor):
            return
        p = self.placement
        booked = p.date(day)
        lines = []
        for n, (i, amount) in enumerate(
            zip(paid.debtor.tolist(), paid.amount_minor.tolist(), strict=True)
        ):
            lines.append(
                StatementLine(
                    ref=f"SIM{self.seed}-{booked:%Y%m%d}-{n:06d}",
                    booked_on=booked,
                    amount_minor=int(amount),
                    currency=p.currency,
                    value_on=booked,
                    structured=p.communication[i],
                )
            )
            self.paid_total[i] += int(amount)
            if self.settled_day[i] < 0 and self.paid_total[i] >= p.placed_minor[i]:
                self.settled_day[i] = day
        statement = Statement(
            format="camt.053.001.08",
            account_iban=_PROFILE.iban,
            statement_id=f"SIM{self.seed}-{booked:%Y%m%d}",
            created_on=booked,
            currency=p.currency,
            opening_minor=0,
            closing_minor=sum(line.amount_minor for line in lines),
            lines=lines,
        )
        with self.timer.part("payments"):
            reports = import_statement(
                self.engine, p.creditor_id, write_camt([statement]), at, actor="simulation"
            )
        for report in reports:
            self.counts["payments_booked"] += sum(report.booked.values())
            self.counts["payments_unmatched"] += report.unmatched
            self.counts["booked_minor"] += report.booked_minor

    # -- after the run ------------------------------------------------------------------

    def _arms(self) -> list[str]:
        key = self.strategy.experiment
        assert key is not None
        arms: dict[str, str] = {}
        for ref, text in _enrolment_arms(self.engine, self.placement.creditor_id):
            if text:
                arms[ref] = json.loads(text).get(key, "(none)")
        return [arms.get(ref, "(none)") for ref in self.placement.case_refs]

    def _engine_summary(self) -> dict[str, Any]:
        return _engine_counts(self.engine, self.placement.creditor_id)


# -- the few reads of the simulation's own (SQL kept here: it reads only its copy) --------


def _cases(engine: Engine, creditor_id: uuid.UUID) -> dict[str, tuple[bytes, bytes, str | None]]:
    """Case ref → (case id, debtor id, journey key@version or None), ids as SQLite stores
    them."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT c.ref, c.id, c.debtor_id, e.journey_key, e.journey_version FROM cases c "
            "LEFT JOIN enrolments e ON e.case_id = c.id AND e.creditor_id = c.creditor_id "
            "WHERE c.creditor_id = ?",
            (creditor_id.bytes,),
        ).all()
    return {
        str(ref): (bytes(case), bytes(debtor), f"{key}@{version}" if key is not None else None)
        for ref, case, debtor, key, version in rows
    }


def _enrolment_arms(engine: Engine, creditor_id: uuid.UUID) -> list[tuple[str, str | None]]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT c.ref, e.arms FROM enrolments e JOIN cases c ON c.id = e.case_id "
            "AND c.creditor_id = e.creditor_id WHERE e.creditor_id = ?",
            (creditor_id.bytes,),
        ).all()
    return [(str(ref), None if arms is None else str(arms)) for ref, arms in rows]


def _engine_counts(engine: Engine, creditor_id: uuid.UUID) -> dict[str, Any]:
    """What the engine stored: outbox rows by kind and status, gate decisions (the plan
    verdicts on outbox rows and the policy log's later ones), money."""
    key = creditor_id.bytes
    with engine.connect() as connection:
        outbox = connection.exec_driver_sql(
            "SELECT kind, status, COUNT(*) FROM outbox WHERE creditor_id = ? "
            "GROUP BY kind, status ORDER BY kind, status",
            (key,),
        ).all()
        log = connection.exec_driver_sql(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE creditor_id = ? "
            "AND plan_verdict IS NOT NULL) + (SELECT COUNT(*) FROM policy_log "
            "WHERE creditor_id = ?)",
            (key, key),
        ).scalar_one()
        money = connection.exec_driver_sql(
            "SELECT COUNT(*), COALESCE(SUM(amount_minor), 0) FROM payments "
            "WHERE creditor_id = ? AND source = 'statement'",
            (key,),
        ).one()
    return {
        "outbox": {f"{kind}:{status}": int(count) for kind, status, count in outbox},
        "gate_decisions": int(log),
        "statement_payments": int(money[0]),
        "statement_minor": int(money[1]),
    }


# -- several runs -----------------------------------------------------------------------


_Job = tuple[Shard, str, Path | None, int, int, Path, bool, Path | None]


def _one(job: _Job) -> SeedRun:
    """One run (or part of one) in a worker process (the library is loaded there:
    journeys travel as files)."""
    shard, name, journeys_dir, days, seed, work, render, keep = job
    from parcours.journeys.library import load_library

    chosen = strategy(name, load_library(journeys_dir))
    kept = keep / f"{name}-{seed}.db" if keep is not None else None
    return run_seed(
        shard.placement, chosen, days=days, seed=seed, work=work, render=render,
        keep_database=kept, shard=shard,
    )  # fmt: skip


def simulate(
    portfolio: Path,
    names: Sequence[str],
    *,
    days: int = DEFAULT_DAYS,
    seeds: int = 5,
    work: Path,
    debtors: int | None = None,
    workers: int = 1,
    shards: int = 1,
    costs: Any = None,
    render: bool = False,
    keep: Path | None = None,
    settings: Any = None,
    progress: Callable[[str], None] | None = None,
    creditor: str = CREDITOR,
) -> Any:
    """Run every strategy on seeds 1..`seeds` and compare them (a `SimulationReport`).

    Each run is cut by debtor into `shards` parts (`sim.shards`); runs and parts go to
    `workers` processes (each on its own database copy); the report does not depend on
    the workers, nor on the parts but for a rare one-day shift (`sim.shards`).
    With `keep` (one part per run), each run's database stays there as
    `<strategy>-<seed>.db` (what the engine stored: for the analytics and the dashboard).
    `creditor` names the portfolio's creditor in those databases."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from parcours.journeys.library import load_library
    from parcours.settings import get_settings
    from parcours.sim.report import compare

    settings = settings or get_settings()
    if days < 1:
        raise SimulationError(f"--days {days}: simulate at least one day")
    if seeds < 1:
        raise SimulationError(f"--seeds {seeds}: at least one seed")
    if not names:
        raise SimulationError("no strategy: give at least one --strategy")
    if shards < 1 or (shards > 1 and keep is not None):
        raise SimulationError(f"--shards {shards}: at least one, and one to keep the databases")
    library = load_library(settings.journeys_dir)
    for name in names:
        strategy(name, library)  # refuses an unknown name before any work
    if len(set(names)) != len(names):
        raise SimulationError(f"--strategy: a strategy is given twice ({', '.join(names)})")
    say = progress or (lambda _text: None)
    started = time.perf_counter()
    placement = prepare(
        portfolio, work, debtors=debtors, settings=settings, progress=say, creditor=creditor
    )
    prepared = time.perf_counter() - started
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    parts = split(placement, shards)
    jobs: list[_Job] = [
        (shard, name, settings.journeys_dir, days, seed, work, render, keep)
        for name in names
        for seed in range(1, seeds + 1)
        for shard in parts
    ]
    done: list[tuple[Shard, SeedRun]] = []
    runs: list[SeedRun] = []

    def finished(job: _Job, run: SeedRun) -> None:
        done.append((job[0], run))
        if len(done) == len(parts):  # a run's parts come in a row
            runs.append(merge(done))
            done.clear()
            say(f"{job[1]} seed {job[4]} done")

    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            finished(job, _one(job))
    else:
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=get_context("spawn")) as pool:
            for job, run in zip(jobs, pool.map(_one, jobs), strict=True):
                finished(job, run)
    info = {
        "portfolio": str(portfolio),
        "cases": len(placement),
        "creditor": placement.creditor,
        "start": placement.start.isoformat(),
        "strategies": {name: strategies(library)[name] for name in names},
        "seconds": {
            "prepare": round(prepared, 2),
            "runs": round(time.perf_counter() - started - prepared, 2),
        },
        "engine": {f"{r.strategy}/{r.seed}": r.engine for r in runs},
        "timings": {f"{r.strategy}/{r.seed}": r.timings for r in runs},
    }
    return compare(runs, costs, info=info)
