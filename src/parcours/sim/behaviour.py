"""How simulated debtors behave, day by day: pay, read, click, reply, promise, complain.

The model is the *synthetic world's truth* the simulator replays strategies against. Its
parameters live in `behaviour.yaml`, per persona, each citing the evidence of
`shared/DOMAIN.md` it derives from or saying why it is assumed. It is independent of the
persona catalog (a journey's choices), as `survey_answers.py` is of the survey weights.

Mechanics, per debtor and day (all vectorised over the population):

- a base daily probability to pay, by days relative to the due date (`hazard`);
- each contact read multiplies that probability on the following days (proportional
  hazards): the multiplier depends on channel, pre-due or after-due, tone, pay link and
  fee, is divided by insistence (more contacts in 7 days than the persona tolerates), and
  decays with a half-life;
- a read contact may also lead to a click, a reply, a chat question, a promise, a plan
  request, a dispute, a complaint or an opt-out of its channel;
- promises are kept or broken (decided when made), plans default at a drawn instalment,
  and debtors who cannot pay in full pay in parts;
- satisfaction answers (CSAT 1-5) follow an ordered-logit shift of the persona's base
  distribution by what happened to the debtor.

Randomness: one seed. Creation draws come from one stream; each day draws a fixed block of
uniforms per debtor (so two strategies on the same seed share their random numbers, which
makes comparisons sharp) and a separate block per contact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from parcours.domain.errors import DomainError

__all__ = [
    "CHANNELS",
    "CSAT_CONTEXTS",
    "PAYMENT_VIA",
    "TONES",
    "BehaviourConfig",
    "BehaviourConfigError",
    "Contacts",
    "CsatAnswers",
    "DayOutcome",
    "OptOuts",
    "Param",
    "Payments",
    "PersonaBehaviour",
    "Plans",
    "Population",
    "Promises",
    "Reactions",
    "default_behaviour_path",
    "load_behaviour",
    "parse_behaviour",
    "persona_codes",
]

CHANNELS: Final = ("email", "sms", "letter", "phone", "chat")
TONES: Final = ("concise", "friendly", "supportive", "firm")
# Where a satisfaction answer was asked (the debtor portal's contexts).
CSAT_CONTEXTS: Final = ("payment", "promise", "plan", "dispute", "chat")
# What made a payment: the debtor's own initiative (incl. right after a click), a promise
# falling due, an instalment of a plan.
PAYMENT_VIA: Final = ("own", "promise", "plan")

_EMAIL, _SMS, _LETTER, _PHONE, _CHAT = range(5)
_CTX_PAYMENT, _CTX_PROMISE, _CTX_PLAN, _CTX_DISPUTE, _CTX_CHAT = range(5)
_VIA_OWN, _VIA_PROMISE, _VIA_PLAN = range(3)
# Days relative to the due date at which the hazard curve changes segment.
_SEGMENT_LAST_DAY: Final = 91  # the dense table covers -1 (any day before due) .. 91 (after 90)
_CSAT_SCALE: Final = 5
_MAX_EXCESS_FOR_CSAT: Final = 10

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
CodeArray = npt.NDArray[np.int8]

V = TypeVar("V")


class BehaviourConfigError(DomainError):
    """The behaviour file is invalid; each problem names the persona and the parameter."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


# --------------------------------------------------------------------------- config model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Multiplier = Annotated[float, Field(gt=0.0, le=100.0)]
Shift = Annotated[float, Field(ge=-5.0, le=5.0)]
Days = Annotated[int, Field(ge=1, le=365)]


class Param(_Strict, Generic[V]):
    """One parameter: its value and where it comes from (`source:`) or why (`assumed:`)."""

    value: V
    source: str | None = None  # "<evidence id>[, <id>...]: what the evidence says"
    assumed: str | None = None  # why this value, when no evidence covers it

    @model_validator(mode="after")
    def _annotated(self) -> Param[V]:
        if not (self.source or "").strip() and not (self.assumed or "").strip():
            raise ValueError(
                "no `source:` (an evidence id of the `evidence:` list, then what it says) "
                "and no `assumed:` (why this value): every parameter needs one"
            )
        return self


class ChannelTable(_Strict, Generic[V]):
    email: V
    sms: V
    letter: V
    phone: V
    chat: V

    def row(self) -> list[float]:
        return [float(getattr(self, c)) for c in CHANNELS]


class ToneTable(_Strict, Generic[V]):
    concise: V
    friendly: V
    supportive: V
    firm: V

    def row(self) -> list[float]:
        return [float(getattr(self, t)) for t in TONES]


class HazardCurve(_Strict):
    """Daily probability to make a payment, by days relative to the due date."""

    before_due: Probability
    on_due_day: Probability
    days_1_7: Probability
    days_8_30: Probability
    days_31_90: Probability
    after_90: Probability

    def dense(self) -> list[float]:
        """Index d+1 for d in -1 (any day before due) .. 91 (any day after 90)."""
        out = [self.before_due, self.on_due_day]
        out += [self.days_1_7] * 7 + [self.days_8_30] * 23 + [self.days_31_90] * 60
        out.append(self.after_90)
        return out


class Range(_Strict):
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) is below low ({self.low})")
        return self


class FractionRange(Range):
    low: Annotated[float, Field(gt=0.0, le=1.0)]
    high: Annotated[float, Field(gt=0.0, le=1.0)]


class DayRange(Range):
    low: Days
    high: Days


class InstalmentRange(Range):
    low: Annotated[int, Field(ge=2, le=60)]
    high: Annotated[int, Field(ge=2, le=60)]


class CsatDistribution(_Strict):
    """Share of answers 1 (very unsatisfied) .. 5 (very satisfied); adds up to 1."""

    one: Annotated[float, Field(gt=0.0, lt=1.0)]
    two: Annotated[float, Field(gt=0.0, lt=1.0)]
    three: Annotated[float, Field(gt=0.0, lt=1.0)]
    four: Annotated[float, Field(gt=0.0, lt=1.0)]
    five: Annotated[float, Field(gt=0.0, lt=1.0)]

    @model_validator(mode="after")
    def _sums_to_one(self) -> CsatDistribution:
        if abs(sum(self.shares()) - 1.0) > 1e-6:
            raise ValueError(f"the five shares add up to {sum(self.shares()):.4f}, not 1")
        return self

    def shares(self) -> list[float]:
        return [self.one, self.two, self.three, self.four, self.five]


class CsatShifts(_Strict):
    """Shifts of the satisfaction score on the ordered-logit scale (+1 ≈ one step up for
    about a fifth of the answers)."""

    read_pre_due_reminder: Shift  # the debtor read a reminder before the due date
    used_pay_link: Shift  # the debtor clicked a pay link at some point
    fee_charged: Shift  # a message charged or announced a fee
    per_extra_contact: Shift  # per contact beyond the tolerated number in 7 days (capped)
    promise_broken: Shift  # the debtor broke a promise before answering


class CsatContextShifts(_Strict):
    payment: Shift
    promise: Shift
    plan: Shift
    dispute: Shift
    chat: Shift


class PersonaBehaviour(_Strict):
    """Every parameter of one persona (the `defaults:` merged with its overrides)."""

    # Paying without contact.
    hazard: Param[HazardCurve]
    max_daily_probability: Param[Probability]
    pays_in_full: Param[Probability]
    partial_fraction: Param[FractionRange]
    settle_below_minor: Param[Annotated[int, Field(ge=0)]]
    # Reading and reacting to a contact.
    read: Param[ChannelTable[Probability]]
    click: Param[ChannelTable[Probability]]
    pay_after_click: Param[Probability]
    reply: Param[ChannelTable[Probability]]
    chat_question: Param[Probability]
    # Effect of a read contact on the daily probability to pay.
    lift_before_due: Param[ChannelTable[Multiplier]]
    lift_after_due: Param[ChannelTable[Multiplier]]
    pay_link: Param[ChannelTable[Multiplier]]
    tone: Param[ToneTable[Multiplier]]
    fee: Param[Multiplier]
    effect_half_life_days: Param[Annotated[float, Field(gt=0.0, le=365.0)]]
    # Insistence.
    tolerated_contacts_per_week: Param[Annotated[int, Field(ge=0, le=50)]]
    insistence_lift: Param[Multiplier]
    insistence_complaint: Param[Multiplier]
    insistence_opt_out: Param[Multiplier]
    # Promises and plans.
    promise: Param[ChannelTable[Probability]]
    promise_kept: Param[Probability]
    promise_in_days: Param[DayRange]
    plan_request: Param[ChannelTable[Probability]]
    plan_request_if_able: Param[Multiplier]
    plan_instalments: Param[InstalmentRange]
    plan_interval_days: Param[Days]
    plan_first_in_days: Param[Days]
    plan_default: Param[Probability]
    # Disputes, complaints, opt-outs.
    dispute: Param[Probability]
    disputed_hazard: Param[Multiplier]
    complaint: Param[Probability]
    complaint_tone: Param[ToneTable[Multiplier]]
    complaint_fee: Param[Multiplier]
    complaint_after_paid: Param[Probability]
    opt_out: Param[ChannelTable[Probability]]
    # Satisfaction.
    csat_answer: Param[Probability]
    csat_base: Param[CsatDistribution]
    csat_shift: Param[CsatShifts]
    csat_tone: Param[ToneTable[Shift]]
    csat_channel: Param[ChannelTable[Shift]]
    csat_context: Param[CsatContextShifts]

    @model_validator(mode="after")
    def _no_click_without_link(self) -> PersonaBehaviour:
        if self.click.value.letter or self.click.value.phone:
            raise ValueError("click: letters and calls carry no clickable link; use 0")
        if self.tolerated_contacts_per_week.value < 1:
            raise ValueError("tolerated_contacts_per_week: at least one contact is tolerated")
        return self

    def params(self) -> dict[str, Param[Any]]:
        return {name: getattr(self, name) for name in type(self).model_fields}


class BehaviourConfig(_Strict):
    """The whole behaviour file: evidence ids, persona mix for unknown debtors, personas."""

    version: Literal[1]
    evidence: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,40}$")], str]
    unknown_persona_mix: Param[dict[str, Probability]]
    personas: dict[str, PersonaBehaviour] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "defaults" not in data:
            return data
        data = dict(data)
        defaults = data.pop("defaults") or {}
        if not isinstance(defaults, dict):
            raise ValueError("defaults: expected a mapping of parameters")
        personas = data.get("personas")
        if isinstance(personas, dict):
            data["personas"] = {
                key: {**defaults, **value} if isinstance(value, dict) else value
                for key, value in personas.items()
            }
        return data

    @model_validator(mode="after")
    def _consistent(self) -> BehaviourConfig:
        problems: list[str] = []
        mix = self.unknown_persona_mix.value
        if set(mix) != set(self.personas):
            problems.append(
                f"unknown_persona_mix: lists {sorted(mix)}, the personas are "
                f"{sorted(self.personas)}"
            )
        elif abs(sum(mix.values()) - 1.0) > 1e-6:
            problems.append(f"unknown_persona_mix: shares add up to {sum(mix.values()):.4f}")
        cited = [("unknown_persona_mix", self.unknown_persona_mix)]
        for key, persona in self.personas.items():
            cited += [(f"personas.{key}.{name}", p) for name, p in persona.params().items()]
        for where, param in cited:
            if param.source is None:
                continue
            ids, colon, _ = param.source.partition(":")
            unknown = [i.strip() for i in ids.split(",") if i.strip() not in self.evidence]
            if not colon or unknown:
                problems.append(
                    f"{where}: source must start with evidence ids from `evidence:` and a "
                    f"colon (unknown: {', '.join(unknown) or ids.strip()!r})"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self


def default_behaviour_path() -> Path:
    return Path(str(resources.files("parcours.sim") / "behaviour.yaml"))


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_behaviour(path: Path | None = None) -> BehaviourConfig:
    """Read and validate a behaviour file (the built-in one by default)."""
    path = path or default_behaviour_path()
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
    except (OSError, UnicodeDecodeError) as exc:
        raise BehaviourConfigError([f"{path}: cannot read ({exc})"]) from exc
    except yaml.YAMLError as exc:
        raise BehaviourConfigError([f"{path}: invalid YAML: {exc}"]) from exc
    return parse_behaviour(raw, origin=str(path))


def parse_behaviour(raw: Any, *, origin: str = "behaviour") -> BehaviourConfig:
    """Validate an already-read behaviour mapping; errors name the persona and parameter."""
    try:
        return BehaviourConfig.model_validate(raw)
    except ValidationError as exc:
        raise BehaviourConfigError(_problems(raw, exc, origin)) from exc


def _problems(raw: Any, error: ValidationError, origin: str) -> list[str]:
    defaults = raw.get("defaults") if isinstance(raw, dict) else None
    personas = raw.get("personas") if isinstance(raw, dict) else None
    out: list[str] = []
    for item in error.errors(include_url=False):
        loc = [str(part) for part in item["loc"]]
        # A parameter a persona inherits from `defaults:` is reported there, once.
        if (
            len(loc) >= 3
            and loc[0] == "personas"
            and isinstance(defaults, dict)
            and isinstance(personas, dict)
            and isinstance(personas.get(loc[1]), dict)
            and loc[2] not in personas[loc[1]]
            and loc[2] in defaults
        ):
            loc = ["defaults", *loc[2:]]
        # Pydantic names generic classes in the location (e.g. "Param[float]"): drop them.
        loc = [part for part in loc if "[" not in part]
        msg = str(item["msg"]).removeprefix("Value error, ")
        line = f"{origin}: {'.'.join(loc) or '(top level)'}: {msg}"
        if line not in out:
            out.append(line)
    return out


# --------------------------------------------------------------------------- arrays


@dataclass(frozen=True, slots=True)
class _Tables:
    """The configuration as arrays indexed by persona code (and channel or tone)."""

    keys: tuple[str, ...]
    hazard: FloatArray  # (P, 93): d = -1 .. 91
    max_daily: FloatArray
    pays_in_full: FloatArray
    partial_low: FloatArray
    partial_span: FloatArray
    settle_below: IntArray
    read: FloatArray  # (P, 5)
    click: FloatArray
    pay_after_click: FloatArray
    reply: FloatArray
    chat_question: FloatArray
    log_lift: FloatArray  # (2, P, 5): [after due, before due]
    log_pay_link: FloatArray  # (P, 5)
    log_tone: FloatArray  # (P, 4)
    log_fee: FloatArray
    decay: FloatArray  # per day multiplier of the accumulated effect
    tolerated: IntArray
    log_insist_lift: FloatArray
    insist_complaint: FloatArray
    insist_opt_out: FloatArray
    promise: FloatArray  # (P, 5)
    promise_kept: FloatArray
    promise_low: IntArray
    promise_span: IntArray
    plan_request: FloatArray  # (P, 5)
    plan_if_able: FloatArray
    plan_low: IntArray
    plan_span: IntArray
    plan_interval: IntArray
    plan_first: IntArray
    plan_default: FloatArray
    dispute: FloatArray
    disputed_hazard: FloatArray
    complaint: FloatArray
    complaint_tone: FloatArray  # (P, 4)
    complaint_fee: FloatArray
    complaint_after_paid: FloatArray
    opt_out: FloatArray  # (P, 5)
    csat_answer: FloatArray
    csat_cuts: FloatArray  # (P, 4) logit of the cumulative shares
    csat_shift: FloatArray  # (P, 5) in CsatShifts order
    csat_tone: FloatArray  # (P, 4)
    csat_channel: FloatArray  # (P, 5)
    csat_context: FloatArray  # (P, 5)
    mix: FloatArray

    @classmethod
    def of(cls, config: BehaviourConfig) -> _Tables:
        ps = list(config.personas.values())

        def col(get: Any, dtype: Any = np.float64) -> Any:
            return np.array([get(p) for p in ps], dtype=dtype)

        def cuts(p: PersonaBehaviour) -> list[float]:
            cum = np.cumsum(p.csat_base.value.shares())[:-1]
            return [math.log(c / (1.0 - c)) for c in cum]

        shift_fields = list(CsatShifts.model_fields)
        return cls(
            keys=tuple(config.personas),
            hazard=col(lambda p: p.hazard.value.dense()),
            max_daily=col(lambda p: p.max_daily_probability.value),
            pays_in_full=col(lambda p: p.pays_in_full.value),
            partial_low=col(lambda p: p.partial_fraction.value.low),
            partial_span=col(
                lambda p: p.partial_fraction.value.high - p.partial_fraction.value.low
            ),
            settle_below=col(lambda p: p.settle_below_minor.value, np.int64),
            read=col(lambda p: p.read.value.row()),
            click=col(lambda p: p.click.value.row()),
            pay_after_click=col(lambda p: p.pay_after_click.value),
            reply=col(lambda p: p.reply.value.row()),
            chat_question=col(lambda p: p.chat_question.value),
            log_lift=np.log(
                np.stack(
                    [
                        col(lambda p: p.lift_after_due.value.row()),
                        col(lambda p: p.lift_before_due.value.row()),
                    ]
                )
            ),
            log_pay_link=np.log(col(lambda p: p.pay_link.value.row())),
            log_tone=np.log(col(lambda p: p.tone.value.row())),
            log_fee=np.log(col(lambda p: p.fee.value)),
            decay=col(lambda p: 0.5 ** (1.0 / p.effect_half_life_days.value)),
            tolerated=col(lambda p: p.tolerated_contacts_per_week.value, np.int64),
            log_insist_lift=np.log(col(lambda p: p.insistence_lift.value)),
            insist_complaint=col(lambda p: p.insistence_complaint.value),
            insist_opt_out=col(lambda p: p.insistence_opt_out.value),
            promise=col(lambda p: p.promise.value.row()),
            promise_kept=col(lambda p: p.promise_kept.value),
            promise_low=col(lambda p: p.promise_in_days.value.low, np.int64),
            promise_span=col(
                lambda p: p.promise_in_days.value.high - p.promise_in_days.value.low + 1, np.int64
            ),
            plan_request=col(lambda p: p.plan_request.value.row()),
            plan_if_able=col(lambda p: p.plan_request_if_able.value),
            plan_low=col(lambda p: p.plan_instalments.value.low, np.int64),
            plan_span=col(
                lambda p: p.plan_instalments.value.high - p.plan_instalments.value.low + 1,
                np.int64,
            ),
            plan_interval=col(lambda p: p.plan_interval_days.value, np.int64),
            plan_first=col(lambda p: p.plan_first_in_days.value, np.int64),
            plan_default=col(lambda p: p.plan_default.value),
            dispute=col(lambda p: p.dispute.value),
            disputed_hazard=col(lambda p: p.disputed_hazard.value),
            complaint=col(lambda p: p.complaint.value),
            complaint_tone=col(lambda p: p.complaint_tone.value.row()),
            complaint_fee=col(lambda p: p.complaint_fee.value),
            complaint_after_paid=col(lambda p: p.complaint_after_paid.value),
            opt_out=col(lambda p: p.opt_out.value.row()),
            csat_answer=col(lambda p: p.csat_answer.value),
            csat_cuts=col(cuts),
            csat_shift=col(lambda p: [getattr(p.csat_shift.value, f) for f in shift_fields]),
            csat_tone=col(lambda p: p.csat_tone.value.row()),
            csat_channel=col(lambda p: p.csat_channel.value.row()),
            csat_context=col(lambda p: [getattr(p.csat_context.value, c) for c in CSAT_CONTEXTS]),
            mix=np.array(
                [config.unknown_persona_mix.value[k] for k in config.personas], dtype=np.float64
            ),
        )


def _codes(values: Any, names: Sequence[str], what: str, size: int) -> CodeArray:
    """Names or integer codes (scalar or array) as an int8 code array of `size`."""
    arr = np.asarray(values)
    if arr.dtype.kind in "US":
        lookup = {name: i for i, name in enumerate(names)}
        flat = arr.reshape(-1).tolist()
        bad = sorted({v for v in flat if v not in lookup})
        if bad:
            raise ValueError(f"unknown {what}: {', '.join(map(str, bad))} (known: {names})")
        arr = np.array([lookup[v] for v in flat], dtype=np.int8).reshape(arr.shape)
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{what}: expected names or integer codes, got {arr.dtype}")
    elif arr.size and (arr.min() < 0 or arr.max() >= len(names)):
        raise ValueError(f"{what}: codes must be within 0..{len(names) - 1}")
    out = np.broadcast_to(arr.astype(np.int8), (size,)).copy()
    return out


def _flags(values: Any, what: str, size: int) -> BoolArray:
    arr = np.asarray(values)
    if arr.dtype != np.bool_:
        raise ValueError(f"{what}: expected booleans")
    return np.broadcast_to(arr, (size,)).copy()


def _empty_int() -> IntArray:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class Contacts:
    """Contacts delivered on one day, one row each (a debtor may get several).

    Whether a contact comes before the due date is derived from the debtor's due day.
    """

    debtor: IntArray
    channel: CodeArray  # index into CHANNELS
    tone: CodeArray  # index into TONES
    pay_link: BoolArray  # a link (or QR code on a letter) payable from the phone
    fee: BoolArray  # the message charges or announces a fee

    @classmethod
    def build(
        cls,
        debtor: npt.ArrayLike,
        channel: Any,
        *,
        tone: Any = "friendly",
        pay_link: Any = False,
        fee: Any = False,
    ) -> Contacts:
        """Contacts from arrays or scalars (broadcast); channels and tones by name or code."""
        d = np.asarray(debtor, dtype=np.int64).reshape(-1)
        n = d.size
        return cls(
            debtor=d,
            channel=_codes(channel, CHANNELS, "channel", n),
            tone=_codes(tone, TONES, "tone", n),
            pay_link=_flags(pay_link, "pay_link", n),
            fee=_flags(fee, "fee", n),
        )

    @classmethod
    def none(cls) -> Contacts:
        return cls.build(_empty_int(), np.zeros(0, dtype=np.int8))

    def __len__(self) -> int:
        return int(self.debtor.size)


@dataclass(frozen=True, slots=True)
class Payments:
    debtor: IntArray
    amount_minor: IntArray
    settles: BoolArray  # the payment brings the balance to zero
    via: CodeArray  # index into PAYMENT_VIA
    after_click: BoolArray  # paid the day the debtor clicked a pay link (through it)


@dataclass(frozen=True, slots=True)
class Reactions:
    """Events caused by a contact: the debtor and the row of the day's `Contacts`."""

    debtor: IntArray
    contact: IntArray


@dataclass(frozen=True, slots=True)
class Promises:
    debtor: IntArray
    contact: IntArray
    amount_minor: IntArray
    day: IntArray  # the day the debtor promises to pay by


@dataclass(frozen=True, slots=True)
class Plans:
    debtor: IntArray
    contact: IntArray
    instalments: IntArray
    instalment_minor: IntArray  # the last instalment takes the rest of the balance
    first_day: IntArray
    interval_days: IntArray


@dataclass(frozen=True, slots=True)
class OptOuts:
    debtor: IntArray
    channel: CodeArray


@dataclass(frozen=True, slots=True)
class CsatAnswers:
    debtor: IntArray
    score: CodeArray  # 1..5
    context: CodeArray  # index into CSAT_CONTEXTS


@dataclass(frozen=True, slots=True)
class DayOutcome:
    """What debtors did on one day; only those events, as index arrays plus values."""

    day: int
    payments: Payments
    opened: Reactions  # read a message, answered a call
    clicked: Reactions
    replied: Reactions
    chat_questions: Reactions  # opened the live chat with a question
    promises: Promises
    promises_broken: IntArray  # debtors whose promise fell due today unpaid
    plans: Plans
    plan_defaults: IntArray  # debtors who missed an instalment today (plan ended)
    disputes: Reactions
    complaints: Reactions
    opt_outs: OptOuts
    csat: CsatAnswers


def _stream(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def _scatter_add(target: npt.NDArray[Any], index: IntArray, values: npt.NDArray[Any]) -> None:
    """target[index] += values, summing repeated indices (faster than `np.add.at`)."""
    if index.size == 0:
        return
    which, slot = np.unique(index, return_inverse=True)
    sums = np.bincount(slot, weights=values.astype(np.float64), minlength=which.size)
    if target.dtype.kind in "iu":
        sums = np.rint(sums)
    target[which] += sums.astype(target.dtype)


def _occurrence(debtors: IntArray) -> IntArray:
    """For each entry, how many entries of the same debtor come before it (0, 1, ...)."""
    order = np.argsort(debtors, kind="stable")
    ordered = debtors[order]
    pos = np.arange(order.size)
    starts = np.r_[True, ordered[1:] != ordered[:-1]] if order.size else np.zeros(0, bool)
    nth = np.empty(order.size, dtype=np.int64)
    nth[order] = pos - np.maximum.accumulate(np.where(starts, pos, 0))
    return nth


def _first_per_debtor(debtors: IntArray) -> IntArray:
    """Positions of the first occurrence of each debtor (in input order)."""
    _, first = np.unique(debtors, return_index=True)
    return np.sort(first).astype(np.int64)


class Population:
    """The state of N simulated debtors (one open balance each), advanced one day at a time.

    Public arrays are the model's state; read them, do not write them.
    """

    def __init__(
        self,
        *,
        tables: _Tables,
        seed: int,
        persona: CodeArray,
        amount_minor: IntArray,
        due_day: IntArray,
        able_in_full: BoolArray,
        ids: IntArray | None = None,
        universe: int | None = None,
    ) -> None:
        n = persona.size
        self._t = tables
        self._seed = seed
        # Each debtor's place in the whole portfolio: its random numbers are drawn there,
        # so a part of the portfolio simulated alone behaves as it does within the whole.
        self._ids = np.arange(n, dtype=np.int64) if ids is None else ids
        self._universe = n if universe is None else universe
        self.persona_keys = tables.keys
        self.persona = persona
        self.due_day = due_day
        self.amount_minor = amount_minor.copy()  # placed amount plus charges
        self.remaining_minor = amount_minor.copy()
        self.able_in_full = able_in_full  # hidden: can pay the whole balance at once
        self.paid_day = np.full(n, -1, dtype=np.int64)  # day the balance reached zero
        self.first_payment_day = np.full(n, -1, dtype=np.int64)
        self.boost = np.zeros(n, dtype=np.float64)  # log-multiplier of the daily hazard
        self.opted_out = np.zeros(n, dtype=np.uint8)  # bit 1 << channel code
        self.disputed = np.zeros(n, dtype=np.bool_)
        self.complaints = np.zeros(n, dtype=np.int32)
        self.contacts = np.zeros(n, dtype=np.int32)  # delivered contacts so far
        self.week_contacts = np.zeros(n, dtype=np.int32)  # delivered in the last 7 days
        self.excess_contacts = np.zeros(n, dtype=np.int32)  # beyond the tolerated, summed
        self.read_pre_due = np.zeros(n, dtype=np.bool_)
        self.clicked = np.zeros(n, dtype=np.bool_)
        self.fees = np.zeros(n, dtype=np.int32)
        self.broke_promise = np.zeros(n, dtype=np.bool_)
        self.last_read_channel = np.full(n, -1, dtype=np.int8)
        self.last_read_tone = np.full(n, -1, dtype=np.int8)
        self.promise_day = np.full(n, -1, dtype=np.int64)
        self.promise_minor = np.zeros(n, dtype=np.int64)
        self.promise_keeps = np.zeros(n, dtype=np.bool_)  # hidden, drawn with the promise
        self.plan_active = np.zeros(n, dtype=np.bool_)
        self.plan_next_day = np.full(n, -1, dtype=np.int64)
        self.plan_left = np.zeros(n, dtype=np.int64)
        self.plan_instalment_minor = np.zeros(n, dtype=np.int64)
        self.plan_interval = np.zeros(n, dtype=np.int64)
        # Hidden: instalments still paid before the plan defaults (-1: it never does).
        self.plan_default_after = np.full(n, -1, dtype=np.int64)
        self._ring = np.zeros((7, n), dtype=np.int32)
        self._decay = tables.decay[persona]
        self._last_day: int | None = None

    @classmethod
    def create(
        cls,
        personas: Sequence[str | None],
        amounts_minor: npt.ArrayLike,
        due_days: npt.ArrayLike,
        rng_seed: int,
        config: BehaviourConfig | None = None,
        *,
        ids: npt.ArrayLike | None = None,
        universe: int | None = None,
    ) -> Population:
        """N debtors; `None` personas are drawn from the configured mix. Days are integers
        on the simulation's own clock (day 0 = its start).

        `ids` (with `universe`) places these debtors in a larger portfolio of `universe`
        debtors: debtor k draws the random numbers of debtor `ids[k]` of the whole, so each
        part of a portfolio split by debtor behaves exactly as within the whole."""
        config = config or _builtin()
        tables = _tables(config)
        amounts = np.asarray(amounts_minor, dtype=np.int64).reshape(-1)
        due = np.asarray(due_days, dtype=np.int64).reshape(-1)
        n = len(personas)
        if amounts.size != n or due.size != n:
            raise ValueError(
                f"{n} personas, {amounts.size} amounts and {due.size} due days: "
                "one of each per debtor"
            )
        if n and amounts.min() <= 0:
            raise ValueError("amounts_minor: every balance must be positive")
        lookup = {k: i for i, k in enumerate(tables.keys)}
        unknown = sorted({p for p in personas if p is not None and p not in lookup})
        if unknown:
            raise ValueError(f"unknown persona(s) {unknown} (known: {tables.keys})")
        at = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
        whole = n if universe is None else universe
        if at.size != n or (n and (at.min() < 0 or at.max() >= whole)):
            raise ValueError(f"ids: one place in 0..{whole - 1} per debtor")
        rng = _stream(rng_seed, 0)
        drawn = rng.choice(len(tables.keys), size=whole, p=tables.mix)[at]
        given = np.array([-1 if p is None else lookup[p] for p in personas], dtype=np.int64)
        code: CodeArray = np.where(given < 0, drawn, given).astype(np.int8)
        able = rng.random(whole)[at] < tables.pays_in_full[code]
        return cls(
            tables=tables,
            seed=rng_seed,
            persona=code,
            amount_minor=amounts,
            due_day=due,
            able_in_full=able,
            ids=at,
            universe=whole,
        )

    def _uniforms(self, rows: int, *key: int) -> npt.NDArray[np.float32]:
        """`rows` uniforms per debtor from stream `key`, drawn for the whole portfolio."""
        block = _stream(self._seed, *key).random((rows, self._universe), dtype=np.float32)
        return block if self._universe == len(self) else block[:, self._ids]

    def __len__(self) -> int:
        return int(self.persona.size)

    @property
    def paid_minor(self) -> IntArray:
        return self.amount_minor - self.remaining_minor

    def charge(self, debtors: npt.ArrayLike, amounts_minor: npt.ArrayLike) -> None:
        """Add fees or interest to open balances (the engine charged them)."""
        d = np.asarray(debtors, dtype=np.int64).reshape(-1)
        a = np.broadcast_to(np.asarray(amounts_minor, dtype=np.int64), d.shape)
        if a.size and a.min() < 0:
            raise ValueError("amounts_minor: a charge cannot be negative")
        open_ = self.remaining_minor[d] > 0
        np.add.at(self.amount_minor, d[open_], a[open_])
        np.add.at(self.remaining_minor, d[open_], a[open_])

    # ------------------------------------------------------------------- one day

    def day(self, day: int, contacts: Contacts | None = None) -> DayOutcome:
        """Advance to `day` (consecutive days only), deliver `contacts`, return what happened."""
        if self._last_day is not None and day != self._last_day + 1:
            raise ValueError(f"days must follow each other: {self._last_day} then {day}")
        contacts = contacts if contacts is not None else Contacts.none()
        if len(contacts) and (contacts.debtor.min() < 0 or contacts.debtor.max() >= len(self)):
            raise ValueError("contacts: a debtor index is outside the population")
        t = self._t
        n = len(self)
        if self._last_day is not None:
            self.boost *= self._decay
        self._last_day = day
        slot = day % 7
        self.week_contacts -= self._ring[slot]
        self._ring[slot] = 0
        # A fixed block of uniforms per debtor and day, whatever the contacts: strategies
        # run on the same seed share them (common random numbers).
        # (float32: half the cost; a resolution of 6e-8 is far below any probability here)
        u_pay, u_part, u_answer, u_score = self._uniforms(4, 1, day)

        react = self._contacts(day, contacts)

        pay_d: list[IntArray] = []
        pay_a: list[IntArray] = []
        pay_via: list[int] = []
        # Promises falling due today.
        due_p = np.flatnonzero(self.promise_day == day)
        keep = due_p[self.promise_keeps[due_p] & (self.remaining_minor[due_p] > 0)]
        broken = due_p[~self.promise_keeps[due_p] & (self.remaining_minor[due_p] > 0)]
        self.promise_day[due_p] = -1
        self.broke_promise[broken] = True
        pay_d.append(keep)
        pay_a.append(np.minimum(self.promise_minor[keep], self.remaining_minor[keep]))
        pay_via += [_VIA_PROMISE] * keep.size
        # Plan instalments falling due today.
        due_i = np.flatnonzero(self.plan_active & (self.plan_next_day == day))
        defaults = due_i[self.plan_default_after[due_i] == 0]
        paying = due_i[self.plan_default_after[due_i] != 0]
        self.plan_active[defaults] = False
        last = self.plan_left[paying] <= 1
        amount = np.where(
            last,
            self.remaining_minor[paying],
            np.minimum(self.plan_instalment_minor[paying], self.remaining_minor[paying]),
        )
        self.plan_left[paying] -= 1
        self.plan_default_after[paying] -= 1
        self.plan_next_day[paying] += self.plan_interval[paying]
        self.plan_active[paying[last]] = False
        pay_d.append(paying)
        pay_a.append(amount)
        pay_via += [_VIA_PLAN] * paying.size
        # Payments on the debtor's own initiative.
        scheduled = np.zeros(n, dtype=np.bool_)
        scheduled[keep] = True
        scheduled[paying] = True
        cand = np.flatnonzero((self.remaining_minor > 0) & ~self.plan_active & ~scheduled)
        p = self.persona[cand]
        rel = np.clip(day - self.due_day[cand], -1, _SEGMENT_LAST_DAY) + 1
        h = t.hazard[p, rel] * np.exp(self.boost[cand])
        h = np.where(self.disputed[cand], h * t.disputed_hazard[p], h)
        h = np.minimum(h, t.max_daily[p])
        clicked_today = np.zeros(n, dtype=np.bool_)
        clicked_today[react.clicked.debtor] = True
        ck = clicked_today[cand]
        h = np.where(ck, 1.0 - (1.0 - h) * (1.0 - t.pay_after_click[p]), h)
        own = cand[u_pay[cand] < h]
        po = self.persona[own]
        rem = self.remaining_minor[own]
        full = self.able_in_full[own] | (rem <= t.settle_below[po])
        frac = t.partial_low[po] + t.partial_span[po] * u_part[own]
        part = np.maximum(1, np.floor(rem * frac).astype(np.int64))
        pay_d.append(own)
        pay_a.append(np.where(full, rem, np.minimum(part, rem)))
        pay_via += [_VIA_OWN] * own.size

        debtor = np.concatenate(pay_d)
        amount_paid = np.concatenate(pay_a).astype(np.int64)
        self.remaining_minor[debtor] -= amount_paid
        settles = self.remaining_minor[debtor] == 0
        done = debtor[settles]
        self.paid_day[done] = day
        self.promise_day[done] = -1
        self.plan_active[done] = False
        first = debtor[self.first_payment_day[debtor] < 0]
        self.first_payment_day[first] = day
        payments = Payments(
            debtor=debtor,
            amount_minor=amount_paid,
            settles=settles,
            via=np.array(pay_via, dtype=np.int8),
            after_click=clicked_today[debtor] & (np.array(pay_via) == _VIA_OWN),
        )

        csat = self._csat(
            u_answer, u_score, done, react.promises, react.plans, react.disputes, react.chats
        )
        return DayOutcome(
            day=day,
            payments=payments,
            opened=react.opened,
            clicked=react.clicked,
            replied=react.replied,
            chat_questions=react.chats,
            promises=react.promises,
            promises_broken=broken,
            plans=react.plans,
            plan_defaults=defaults,
            disputes=react.disputes,
            complaints=react.complaints,
            opt_outs=react.opt_outs,
            csat=csat,
        )

    def _contacts(self, day: int, c: Contacts) -> _Reacted:
        t = self._t
        m = len(c)
        d = c.debtor
        # A contact's uniforms belong to its debtor and its rank among the debtor's
        # contacts of the day (not to its place in the day's list of everyone's).
        v = np.empty((11, m), dtype=np.float32)
        nth = _occurrence(d)
        for r in range(int(nth.max()) + 1 if m else 0):
            at = np.flatnonzero(nth == r)
            v[:, at] = self._uniforms(11, 2, day, r)[:, d[at]]
        ch = c.channel.astype(np.intp)
        tone = c.tone.astype(np.intp)
        p = self.persona[d].astype(np.intp)
        blocked = ((self.opted_out[d] >> c.channel.astype(np.uint8)) & 1).astype(np.bool_)
        delivered = ~blocked
        # Rank of each delivered contact among the debtor's contacts of the day (1-based),
        # for the 7-day insistence count.
        rank = np.zeros(m, dtype=np.int64)
        idx = np.flatnonzero(delivered)
        rank[idx] = _occurrence(d[idx]) + 1
        week_before = self.week_contacts[d].astype(np.int64)
        excess = np.where(delivered, np.maximum(0, week_before + rank - t.tolerated[p]), 0)
        who, count = np.unique(d[delivered], return_counts=True)
        self._ring[day % 7, who] += count.astype(np.int32)
        self.week_contacts[who] += count.astype(np.int32)
        self.contacts[who] += count.astype(np.int32)
        _scatter_add(self.excess_contacts, d, excess)
        _scatter_add(self.fees, d[delivered & c.fee], np.ones(int((delivered & c.fee).sum())))

        open_ = self.remaining_minor[d] > 0
        live = delivered & open_
        read = live & (v[0] < t.read[p, ch])
        # Insistence damps the urge to click as it damps the effect on paying.
        insisted = np.exp(excess * t.log_insist_lift[p])
        clicked = read & c.pay_link & (v[1] < t.click[p, ch] * insisted)
        replied = read & (v[2] < t.reply[p, ch])
        chat = read & (v[3] < t.chat_question[p])

        pre_due = day < self.due_day[d]
        log_m = (
            t.log_lift[pre_due.astype(np.intp), p, ch]
            + t.log_tone[p, tone]
            + np.where(c.pay_link, t.log_pay_link[p, ch], 0.0)
            + np.where(c.fee, t.log_fee[p], 0.0)
            + excess * t.log_insist_lift[p]
        )
        _scatter_add(self.boost, d[read], log_m[read])
        self.read_pre_due[d[read & pre_due]] = True
        self.clicked[d[clicked]] = True
        self.last_read_channel[d[read]] = c.channel[read]
        self.last_read_tone[d[read]] = c.tone[read]

        # Promise or plan request (one per debtor and day, first contact wins).
        free = read & (self.promise_day[d] < 0) & ~self.plan_active[d]
        p_promise = t.promise[p, ch]
        p_plan = t.plan_request[p, ch] * np.where(self.able_in_full[d], t.plan_if_able[p], 1.0)
        wants_promise = free & (v[4] < p_promise)
        wants_plan = free & ~wants_promise & (v[4] < p_promise + np.minimum(p_plan, 1.0))
        intent = np.flatnonzero(wants_promise | wants_plan)
        intent = intent[_first_per_debtor(d[intent])]
        pr = intent[wants_promise[intent]]
        pl = intent[wants_plan[intent]]

        pd, pp = d[pr], p[pr]
        rem = self.remaining_minor[pd]
        frac = t.partial_low[pp] + t.partial_span[pp] * v[7, pr]
        promised = np.where(
            self.able_in_full[pd] | (rem <= t.settle_below[pp]),
            rem,
            np.minimum(rem, np.maximum(1, np.floor(rem * frac).astype(np.int64))),
        )
        by = day + t.promise_low[pp] + np.floor(v[6, pr] * t.promise_span[pp]).astype(np.int64)
        self.promise_day[pd] = by
        self.promise_minor[pd] = promised
        self.promise_keeps[pd] = v[5, pr] < t.promise_kept[pp]

        qd, qp = d[pl], p[pl]
        k = t.plan_low[qp] + np.floor(v[6, pl] * t.plan_span[qp]).astype(np.int64)
        rem = self.remaining_minor[qd]
        instalment = np.maximum(1, rem // k)
        first_day = day + t.plan_first[qp]
        # Instalments paid before the default (k = never defaults).
        defaults = v[5, pl] < t.plan_default[qp]
        self.plan_active[qd] = True
        self.plan_next_day[qd] = first_day
        self.plan_left[qd] = k
        self.plan_instalment_minor[qd] = instalment
        self.plan_interval[qd] = t.plan_interval[qp]
        self.plan_default_after[qd] = np.where(
            defaults, np.floor(v[7, pl] * k).astype(np.int64), -1
        )

        disputed = read & ~self.disputed[d] & (v[8] < t.dispute[p])
        dis = np.flatnonzero(disputed)
        dis = dis[_first_per_debtor(d[dis])]
        self.disputed[d[dis]] = True

        p_complaint = (
            t.complaint[p]
            * t.complaint_tone[p, tone]
            * np.where(c.fee, t.complaint_fee[p], 1.0)
            * t.insist_complaint[p] ** excess
        )
        complained = (read & (v[9] < p_complaint)) | (
            delivered & ~open_ & (v[9] < t.complaint_after_paid[p])
        )
        com = np.flatnonzero(complained)
        com = com[_first_per_debtor(d[com])]
        self.complaints[d[com]] += 1  # one per debtor and day: no repeated index

        opting = read & (v[10] < t.opt_out[p, ch] * t.insist_opt_out[p] ** excess)
        opt = np.flatnonzero(opting)
        if opt.size:
            key = d[opt] * len(CHANNELS) + ch[opt]
            _, first = np.unique(key, return_index=True)
            opt = opt[np.sort(first)]
        for code in range(len(CHANNELS)):  # one channel at a time: no repeated index
            on = opt[ch[opt] == code]
            self.opted_out[d[on]] |= np.uint8(1 << code)

        def reactions(mask_or_idx: npt.NDArray[Any]) -> Reactions:
            i = (
                np.flatnonzero(mask_or_idx)
                if mask_or_idx.dtype == np.bool_
                else mask_or_idx.astype(np.int64)
            )
            return Reactions(debtor=d[i], contact=i.astype(np.int64))

        return _Reacted(
            opened=reactions(read),
            clicked=reactions(clicked),
            replied=reactions(replied),
            chats=reactions(chat),
            promises=Promises(
                debtor=pd, contact=pr.astype(np.int64), amount_minor=promised, day=by
            ),
            plans=Plans(
                debtor=qd,
                contact=pl.astype(np.int64),
                instalments=k,
                instalment_minor=instalment,
                first_day=first_day,
                interval_days=t.plan_interval[qp],
            ),
            disputes=reactions(dis),
            complaints=reactions(com),
            opt_outs=OptOuts(debtor=d[opt], channel=c.channel[opt]),
        )

    def _csat(
        self,
        u_answer: npt.NDArray[np.floating[Any]],
        u_score: npt.NDArray[np.floating[Any]],
        paid: IntArray,
        promises: Promises,
        plans: Plans,
        disputes: Reactions,
        chats: Reactions,
    ) -> CsatAnswers:
        """At most one answer per debtor and day, for the day's most significant event."""
        t = self._t
        n = len(self)
        context = np.full(n, -1, dtype=np.int64)
        # Lowest priority first: later assignments win.
        context[chats.debtor] = _CTX_CHAT
        context[disputes.debtor] = _CTX_DISPUTE
        context[promises.debtor] = _CTX_PROMISE
        context[plans.debtor] = _CTX_PLAN
        context[paid] = _CTX_PAYMENT
        who = np.flatnonzero(context >= 0)
        p = self.persona[who]
        who = who[u_answer[who] < t.csat_answer[p]]
        p = self.persona[who].astype(np.intp)
        ctx = context[who]
        s = t.csat_shift[p]
        shift = (
            t.csat_context[p, ctx]
            + s[:, 0] * self.read_pre_due[who]
            + s[:, 1] * self.clicked[who]
            + s[:, 2] * (self.fees[who] > 0)
            + s[:, 3] * np.minimum(self.excess_contacts[who], _MAX_EXCESS_FOR_CSAT)
            + s[:, 4] * self.broke_promise[who]
        )
        tone = self.last_read_tone[who].astype(np.intp)
        channel = self.last_read_channel[who].astype(np.intp)
        had = tone >= 0
        shift = shift + np.where(had, t.csat_tone[p, np.maximum(tone, 0)], 0.0)
        shift = shift + np.where(had, t.csat_channel[p, np.maximum(channel, 0)], 0.0)
        u = np.clip(u_score[who].astype(np.float64), 1e-12, 1.0 - 1e-12)
        latent = shift + np.log(u / (1.0 - u))
        score = 1 + (latent[:, None] > t.csat_cuts[p]).sum(axis=1)
        return CsatAnswers(
            debtor=who.astype(np.int64),
            score=score.astype(np.int8),
            context=ctx.astype(np.int8),
        )


@dataclass(frozen=True, slots=True)
class _Reacted:
    opened: Reactions
    clicked: Reactions
    replied: Reactions
    chats: Reactions
    promises: Promises
    plans: Plans
    disputes: Reactions
    complaints: Reactions
    opt_outs: OptOuts


_BUILTIN: dict[str, BehaviourConfig] = {}
# Arrays of the configs in use, by id (the config is kept alive so its id stays unique).
_TABLES: dict[int, tuple[BehaviourConfig, _Tables]] = {}


def _tables(config: BehaviourConfig) -> _Tables:
    cached = _TABLES.get(id(config))
    if cached is None or cached[0] is not config:
        if len(_TABLES) > 64:
            _TABLES.clear()
        cached = _TABLES[id(config)] = (config, _Tables.of(config))
    return cached[1]


def _builtin() -> BehaviourConfig:
    if "config" not in _BUILTIN:
        _BUILTIN["config"] = load_behaviour()
    return _BUILTIN["config"]


def persona_codes(config: BehaviourConfig) -> Mapping[str, int]:
    """Persona key → the code `Population.persona` uses."""
    return {key: i for i, key in enumerate(config.personas)}
