"""Personas, the persona survey and persona assignments — pure data with validation.

A persona is an archetype of debtor (the seed's "L'Occasionnel" is one) described along
the seed's dimensions — environment, behaviour, goals, skills — plus what a journey needs
from it: channels, tone, answer-time promise, whether a pre-due reminder helps, and which
payment actions it uses. Every persona says where it comes from (`provenance`).

Catalog and survey files are YAML validated by these models (see `parcours.personas`);
unknown keys are errors so that a typo in an operator's file never passes silently.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = [
    "AssignmentSource",
    "Channel",
    "Dimension",
    "Localized",
    "PaymentAction",
    "Persona",
    "PersonaAssignment",
    "Portrait",
    "Provenance",
    "Question",
    "Reason",
    "Signal",
    "Survey",
    "SurveyOption",
    "Tone",
]

Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,39}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Localized(_Strict):
    """A text in the three languages debtors are addressed in."""

    fr: Text
    nl: Text
    en: Text

    def get(self, language: str) -> str:
        return str(getattr(self, language, self.en))


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"
    CHAT = "chat"
    PHONE = "phone"
    LETTER = "letter"


class PaymentAction(enum.StrEnum):
    """Ways a debtor settles or arranges a debt."""

    BANKING_APP = "banking_app"  # scans the EPC QR code / uses the structured communication
    PAY_LINK = "pay_link"  # hosted checkout (card, Bancontact) from a personal link
    BANK_TRANSFER = "bank_transfer"  # manual transfer from online banking or a counter
    DIRECT_DEBIT = "direct_debit"
    PROMISE = "promise"  # promise to pay on a date
    PAYMENT_PLAN = "payment_plan"  # instalments


class Tone(enum.StrEnum):
    """The voice messages take; templates have one variant per tone."""

    CONCISE = "concise"  # short, factual, one action
    SUPPORTIVE = "supportive"  # empathetic, points to plans and help
    FRIENDLY = "friendly"  # warm, light reminder between partners
    FIRM = "firm"  # clear consequences, still respectful and lawful


class Dimension(enum.StrEnum):
    """The seed's four dimensions a persona and the survey describe."""

    ENVIRONMENT = "environment"
    BEHAVIOUR = "behaviour"
    GOALS = "goals"
    SKILLS = "skills"


class Portrait(_Strict):
    """Fictional personal details that make the persona concrete (as the seed does)."""

    name: Text
    age: int = Field(ge=16, le=110)
    job: Text
    family: Text
    details: tuple[Text, ...] = ()


class Provenance(_Strict):
    """Where a persona comes from, and which of its traits are our own inference."""

    source: Literal["intrum", "research", "operator"]
    intrum_sourced: bool
    references: tuple[Text, ...] = Field(min_length=1)
    inferred: tuple[Text, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Provenance:
        if self.intrum_sourced != (self.source == "intrum"):
            raise ValueError("intrum_sourced must be true exactly when source is 'intrum'")
        return self


class Signal(_Strict):
    """One rule of the cold-start prior: a named feature compared with a threshold.

    When the debtor's feature is above `above` (or below `below`), `weight` points of
    evidence go to the persona. No expressions: `feature` must be a known feature name.
    """

    feature: Key
    above: float | None = None
    below: float | None = None
    weight: float = Field(ge=-5, le=5)

    @model_validator(mode="after")
    def _one_threshold(self) -> Signal:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of 'above' or 'below'")
        return self


class Persona(_Strict):
    """One entry of the persona catalog."""

    key: Key
    names: Localized
    summary: Text
    portrait: Portrait
    environment: tuple[Text, ...] = Field(min_length=1)
    behaviour: tuple[Text, ...] = Field(min_length=1)
    goals: tuple[Text, ...] = Field(min_length=1)
    skills: tuple[Text, ...] = Field(min_length=1)
    financial_situation: Text
    attitude_to_debt: Text
    can_pay: Literal["yes", "partly", "no"]
    needs: tuple[Text, ...] = Field(min_length=1)
    frustrations: tuple[Text, ...] = Field(min_length=1)
    preferred_channels: tuple[Channel, ...] = Field(min_length=1)
    avoid_channels: tuple[Channel, ...] = ()
    tone: Tone
    tone_notes: Text
    answer_within_hours: int = Field(ge=1, le=24 * 14)
    reminder_before_due: bool
    payment_actions: tuple[PaymentAction, ...] = Field(min_length=1)
    # Share of a typical consumer portfolio, used as the prior of survey and rule scoring.
    expected_share: float = Field(gt=0, lt=1)
    signals: tuple[Signal, ...] = ()
    provenance: Provenance

    @model_validator(mode="after")
    def _channels_disjoint(self) -> Persona:
        if len(set(self.preferred_channels)) != len(self.preferred_channels):
            raise ValueError("preferred_channels lists a channel twice")
        both = set(self.preferred_channels) & set(self.avoid_channels)
        if both:
            raise ValueError(f"channels both preferred and avoided: {sorted(both)}")
        return self


class SurveyOption(_Strict):
    key: Key
    text: Localized
    # Points of evidence per persona key (natural-log odds); missing personas get 0.
    evidence: dict[Key, float] = Field(default_factory=dict)


class Question(_Strict):
    key: Key
    dimension: Dimension
    text: Localized
    options: tuple[SurveyOption, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _unique_options(self) -> Question:
        keys = [o.key for o in self.options]
        if len(set(keys)) != len(keys):
            raise ValueError(f"question {self.key!r} repeats an option key")
        return self

    def option(self, key: str) -> SurveyOption | None:
        return next((o for o in self.options if o.key == key), None)


class Survey(_Strict):
    """The versioned persona survey (about ten questions, FR/NL/EN)."""

    version: Key
    title: Localized
    intro: Localized
    questions: tuple[Question, ...] = Field(min_length=3, max_length=15)

    @model_validator(mode="after")
    def _unique_questions(self) -> Survey:
        keys = [q.key for q in self.questions]
        if len(set(keys)) != len(keys):
            raise ValueError("the survey repeats a question key")
        return self

    def question(self, key: str) -> Question | None:
        return next((q for q in self.questions if q.key == key), None)

    def persona_keys(self) -> set[str]:
        return {p for q in self.questions for o in q.options for p in o.evidence}


class AssignmentSource(enum.StrEnum):
    """What decided a debtor's persona, in order of precedence (first wins)."""

    OBJECTION = "objection"  # GDPR art. 21: not profiled, default journey
    OPERATOR = "operator"
    SURVEY = "survey"
    MODEL = "model"
    RULES = "rules"  # cold start: no trained model yet
    DEFAULT = "default"  # the model or rules were not confident enough


@dataclass(frozen=True, slots=True)
class Reason:
    """Why: a feature (or survey answer) and how much it pushed towards the persona."""

    code: str  # feature name, or "question=option" for a survey answer
    value: float | str
    weight: float


@dataclass(frozen=True, slots=True)
class PersonaAssignment:
    """A debtor's persona as decided at `assigned_at` (kept as history)."""

    id: UUID
    creditor_id: UUID
    debtor_id: UUID
    persona: str | None  # None only for an objection: no persona-based treatment
    confidence: float
    source: AssignmentSource
    model_version: str | None
    assigned_at: dt.datetime
    survey_candidate: bool = False
    reasons: tuple[Reason, ...] = field(default=())
