"""Persona runs over the store: survey import, training, classification, explanation, objection.

Everything runs inside the caller's transaction (the unit of work commits). Reads and
writes are set-based: one query per table, bulk inserts, never one query per debtor.

What decides a debtor's persona, first that applies wins: objection (GDPR art. 21: no
persona) > operator > survey > model > rules. A model or rules decision below the
confidence threshold becomes the default persona and marks the debtor as a survey
candidate. A history row is written only when the persona, its source, the model version
or the candidacy changes, so a daily run over an unchanged portfolio writes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection

from parcours.domain.model import Creditor
from parcours.domain.persona import AssignmentSource, Reason
from parcours.ingest.report import FileRejected, ImportReport
from parcours.ingest.survey_answers import parse_answers_file
from parcours.personas.catalog import Catalog, CatalogError
from parcours.personas.features import (
    ENGAGEMENT_EVENTS,
    FEATURES,
    DebtorColumns,
    FeatureMatrix,
    InvoiceColumns,
    build_features,
)
from parcours.personas.model import (
    ALGORITHM,
    PersonaModel,
    Prediction,
    rules_predict,
    train_model,
)
from parcours.personas.survey import score_answers
from parcours.store.bulk import Key
from parcours.store.journeys import JourneyStore
from parcours.store.personas import PersonaStore, StoredResponse, persona_references

__all__ = [
    "STAGES",
    "ClassifyPolicy",
    "ClassifyResult",
    "Explanation",
    "Labels",
    "assign_by_operator",
    "check_catalog",
    "classify_portfolio",
    "compute_features",
    "explain",
    "import_survey_answers",
    "latest_model",
    "record_objection",
    "survey_labels",
    "train_and_store",
]

STAGES: Final = ("features", "training", "predicting", "deciding", "storing")
_FEATURE_BY_NAME: Final = {f.name: f for f in FEATURES}


def compute_features(
    connection: Connection, creditor_id: UUID, today: dt.date, zone: str
) -> FeatureMatrix:
    """Features of every (not erased) debtor of the creditor, as of `today`."""
    inputs = PersonaStore(connection, creditor_id).feature_inputs(ENGAGEMENT_EVENTS)
    values = build_features(
        DebtorColumns(
            inputs.languages,
            inputs.has_email,
            inputs.phones,
            inputs.has_address,
            inputs.birth_years,
            inputs.engagement,
        ),
        InvoiceColumns(*inputs.invoices),
        today,
        zone,
    )
    return FeatureMatrix(inputs.keys, inputs.refs, np.array(inputs.objected, dtype=bool), values)


def check_catalog(connection: Connection, catalog: Catalog, default_persona: str) -> None:
    """Refuse a catalog that dropped a persona still referred to (the default persona
    setting, assignments, survey responses, trained models)."""
    catalog.check_references(
        [("the default_persona setting", [default_persona]), *persona_references(connection)]
    )


# -- survey --------------------------------------------------------------------------------


def import_survey_answers(
    connection: Connection,
    creditor: Creditor,
    path: Path,
    catalog: Catalog,
    now: dt.datetime,
    zone: zoneinfo.ZoneInfo,
    *,
    strict: bool = False,
) -> ImportReport:
    """Store the valid responses (scored) and report the others; with `strict`, store
    nothing when any row fails. A response already stored (same debtor, survey version and
    time) counts as unchanged, so importing a file twice adds nothing."""
    report = ImportReport(kind="survey", file=path.name, creditor=creditor.name, strict=strict)
    store = PersonaStore(connection, creditor.id)
    keys = store.debtor_keys_by_ref()
    try:
        parsed = parse_answers_file(path, catalog, set(keys), now, zone, report)
    except FileRejected as exc:
        report.file_error = str(exc)
        return report
    if strict and report.errors:
        return report
    version = catalog.survey.version
    existing = store.response_keys(version)
    new = []
    for response in parsed:
        key = keys[response.debtor_ref]
        if (key, response.answered_at) in existing:
            report.unchanged += 1
            continue
        score = response.score
        new.append(
            StoredResponse(
                key, version, response.answers, score.persona, score.confidence,
                response.answered_at,
            )
        )  # fmt: skip
    report.inserted = store.add_responses(new, now)
    return report


@dataclass(frozen=True)
class _Survey:
    persona: str
    confidence: float
    reasons: tuple[Reason, ...]
    probabilities: dict[str, float]


def _latest_surveys(store: PersonaStore, catalog: Catalog) -> dict[Key, _Survey]:
    """Each debtor's latest response, re-scored with the current survey file when it
    answered the same version (older versions keep the persona they were scored with)."""
    latest: dict[Key, _Survey] = {}
    for key, response in store.latest_responses().items():
        if response.survey_version == catalog.survey.version:
            score = score_answers(catalog, response.answers)
            latest[key] = _Survey(
                score.persona, score.confidence, score.decisive, score.probabilities
            )
        else:
            latest[key] = _Survey(response.persona, response.confidence, (), {})
    return latest


@dataclass(frozen=True)
class Labels:
    """Survey-labelled rows of a feature matrix (objectors left out: their answers must
    not profile anyone), with each row's survey log-probabilities in catalog order."""

    rows: npt.NDArray[np.int64]
    personas: list[str]
    log_probs: npt.NDArray[np.float64]


def survey_labels(
    connection: Connection, creditor_id: UUID, catalog: Catalog, features: FeatureMatrix
) -> Labels:
    surveys = _latest_surveys(PersonaStore(connection, creditor_id), catalog)
    rows, personas, log_probs = [], [], []
    for i, key in enumerate(features.debtor_keys):
        survey = surveys.get(key)
        if survey is not None and not features.objected[i]:
            rows.append(i)
            personas.append(survey.persona)
            # An older survey version has no probabilities: its persona is taken as sure.
            probabilities = survey.probabilities or {survey.persona: 1.0}
            log_probs.append([np.log(probabilities.get(k, 0.0) + 1e-9) for k in catalog.keys])
    return Labels(
        np.array(rows, dtype=np.int64),
        personas,
        np.array(log_probs, dtype=np.float64).reshape(len(rows), len(catalog.keys)),
    )


# -- models --------------------------------------------------------------------------------


def latest_model(
    connection: Connection, creditor_id: UUID, version: str | None = None
) -> PersonaModel | None:
    """The creditor's newest model (or the one of `version`)."""
    row = PersonaStore(connection, creditor_id).latest_model(version)
    if row is None:
        return None
    return PersonaModel.from_params(
        row.version, row.params, row.trained_at, row.labelled, row.metrics
    )


def train_and_store(
    connection: Connection,
    creditor_id: UUID,
    catalog: Catalog,
    features: FeatureMatrix,
    now: dt.datetime,
    min_labels: int,
) -> PersonaModel | None:
    """Train on the survey-labelled debtors and store the model; None when too few labels."""
    labels = survey_labels(connection, creditor_id, catalog, features)
    if len(labels.personas) < min_labels or len(set(labels.personas)) < 2:
        return None
    model = train_model(
        features.values[labels.rows],
        labels.personas,
        now,
        survey_log_probs=labels.log_probs,
        classes=catalog.keys,
    )
    PersonaStore(connection, creditor_id).add_model(
        model.version, ALGORITHM, now, model.labelled, model.params(), model.metrics
    )
    return model


# -- classification ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifyPolicy:
    today: dt.date
    now: dt.datetime
    zone: str
    default_persona: str
    min_confidence: float
    min_labels: int
    retrain: bool = True


@dataclass
class ClassifyResult:
    debtors: int = 0
    changed: int = 0
    by_persona: Counter[str] = field(default_factory=Counter)
    by_source: Counter[str] = field(default_factory=Counter)
    survey_candidates: int = 0
    model_version: str | None = None
    trained: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "debtors": self.debtors,
            "changed": self.changed,
            "by_persona": dict(self.by_persona.most_common()),
            "by_source": dict(self.by_source.most_common()),
            "survey_candidates": self.survey_candidates,
            "model_version": self.model_version,
            "trained": self.trained,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


def _reasons_json(reasons: Iterable[Reason]) -> str:
    return json.dumps([[r.code, r.value, r.weight] for r in reasons], separators=(",", ":"))


def classify_portfolio(
    connection: Connection,
    creditor: Creditor,
    catalog: Catalog,
    policy: ClassifyPolicy,
    *,
    progress: Callable[[str], None] | None = None,
) -> ClassifyResult:
    """Assign every debtor of `creditor` a persona and store what changed.

    `progress` is told each of `STAGES` as it starts.
    """
    tick = time.perf_counter
    stage = progress or (lambda _name: None)
    result = ClassifyResult()
    start = tick()
    if policy.default_persona not in catalog:
        raise CatalogError(
            [
                f"the default persona {policy.default_persona!r} is not in the catalog "
                f"({', '.join(catalog.keys)})"
            ]
        )
    check_catalog(connection, catalog, policy.default_persona)
    stage("features")
    features = compute_features(connection, creditor.id, policy.today, policy.zone)
    result.debtors = len(features)
    result.timings["features"] = tick() - start

    mark = tick()
    stage("training")
    store = PersonaStore(connection, creditor.id)
    model = latest_model(connection, creditor.id)
    newest = store.newest_response_at()
    if policy.retrain and newest is not None and (model is None or newest > model.trained_at):
        trained = train_and_store(
            connection, creditor.id, catalog, features, policy.now, policy.min_labels
        )
        if trained is not None:
            model, result.trained = trained, True
    result.timings["train"] = tick() - mark

    mark = tick()
    stage("predicting")
    prediction: Prediction
    if model is not None:
        prediction = model.predict(features.values)
        source, model_version = AssignmentSource.MODEL, model.version
    else:
        prediction = rules_predict(catalog, features.values)
        source, model_version = AssignmentSource.RULES, None
    result.model_version = model_version
    result.timings["predict"] = tick() - mark

    mark = tick()
    stage("deciding")
    surveys = _latest_surveys(store, catalog)
    current = store.current()
    rows: list[tuple[Any, ...]] = []
    replacing: list[Key] = []
    storing = 0.0

    def flush() -> None:
        """Store what changed so far: memory stays flat however large the portfolio."""
        nonlocal storing, rows, replacing
        began = tick()
        store.store_assignments(rows, replacing)
        result.changed += len(rows)
        rows, replacing = [], []
        storing += tick() - began

    assigned_at = store.writer.timestamp(policy.now)
    classes = prediction.classes
    winners = prediction.persona.tolist()
    confidences = prediction.confidence.tolist()
    objected = features.objected.tolist()
    for i, key in enumerate(features.debtor_keys):
        held = current.get(key)
        candidate = False
        version: str | None = None
        how: AssignmentSource
        if objected[i]:
            persona, confidence, how = None, 1.0, AssignmentSource.OBJECTION
        elif held is not None and held[1] == AssignmentSource.OPERATOR:
            persona, confidence, how = held[0], 1.0, AssignmentSource.OPERATOR
        elif key in surveys:
            survey = surveys[key]
            persona, confidence, how = survey.persona, survey.confidence, AssignmentSource.SURVEY
        else:
            confidence, version = confidences[i], model_version
            if confidence >= policy.min_confidence:
                persona, how = classes[winners[i]], source
            else:
                persona, how, candidate = policy.default_persona, AssignmentSource.DEFAULT, True
        result.by_persona[persona or "(none)"] += 1
        result.by_source[how.value] += 1
        result.survey_candidates += candidate
        if held == (persona, how.value, version, candidate):
            continue  # unchanged: no history row, and no reasons to compute
        if how is AssignmentSource.SURVEY:
            reasons = surveys[key].reasons
        elif how in (AssignmentSource.MODEL, AssignmentSource.RULES, AssignmentSource.DEFAULT):
            reasons = prediction.reasons(i, features.values[i])
        else:
            reasons = ()
        rows.append(
            store.history_row(
                key, persona, confidence, how, version, candidate, assigned_at,
                _reasons_json(reasons),
            )
        )  # fmt: skip
        if held is not None:
            replacing.append(key)
        if len(rows) == _FLUSH_ROWS:
            flush()
    stage("storing")
    flush()
    if result.changed:  # cases on the journey of a persona their debtor no longer has
        JourneyStore(connection, creditor.id).wake_reclassified(policy.now)
    result.timings["decide"] = tick() - mark - storing
    result.timings["store"] = storing
    result.timings["total"] = tick() - start
    return result


_FLUSH_ROWS: Final = 100_000


# -- objection and operator ---------------------------------------------------------------


def record_objection(
    connection: Connection, creditor_id: UUID, debtor_id: UUID, now: dt.datetime, objects: bool
) -> bool:
    """Record (or withdraw) an objection to profiling; True when something changed.

    An objection takes effect at once: the current assignment becomes "objection" (no
    persona), so no persona-based treatment happens before the next classification run.
    """
    store = PersonaStore(connection, creditor_id)
    changed = store.set_objection(debtor_id, objects, now)
    if changed and objects:
        store.assign_one(debtor_id, None, AssignmentSource.OBJECTION, [], now)
        JourneyStore(connection, creditor_id).wake_reclassified(now)
    return changed


def assign_by_operator(
    connection: Connection,
    creditor_id: UUID,
    debtor_id: UUID,
    persona: str,
    now: dt.datetime,
    note: str,
) -> None:
    """An operator's decision; it stays until changed (an objection still wins)."""
    PersonaStore(connection, creditor_id).assign_one(
        debtor_id, persona, AssignmentSource.OPERATOR, [["operator", note, 1.0]], now
    )
    JourneyStore(connection, creditor_id).wake_reclassified(now)


# -- explanation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Explanation:
    debtor_ref: str
    persona: str | None
    persona_name: str | None
    source: str
    confidence: float
    model_version: str | None
    assigned_at: dt.datetime
    survey_candidate: bool
    reasons: tuple[str, ...]
    objection_at: dt.datetime | None
    history: tuple[tuple[dt.datetime, str | None, str], ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "debtor_ref": self.debtor_ref,
            "persona": self.persona,
            "persona_name": self.persona_name,
            "source": self.source,
            "confidence": round(self.confidence, 4),
            "model_version": self.model_version,
            "assigned_at": self.assigned_at.isoformat(),
            "survey_candidate": self.survey_candidate,
            "reasons": list(self.reasons),
            "profiling_objection_at": self.objection_at.isoformat() if self.objection_at else None,
            "history": [
                {"assigned_at": at.isoformat(), "persona": p, "source": s}
                for at, p, s in self.history
            ],
        }


def reason_text(
    catalog: Catalog,
    code: str,
    value: Any,
    weight: float,
    typical: Mapping[str, float] | None = None,
) -> str:
    """One reason in words: a feature and its value (next to the portfolio's typical
    value when known), a survey answer, or an operator note."""
    feature = _FEATURE_BY_NAME.get(code)
    if feature is not None:
        context = ""
        if typical is not None and code in typical:
            context = f", typical {feature.format(typical[code])}"
        return f"{feature.describe(float(value))}{context} (weight {weight:+.2f})"
    question_key, _, option_key = code.partition("=")
    question = catalog.survey.question(question_key)
    if question is not None:
        option = question.option(option_key)
        answer = option.text.en if option is not None else option_key
        return f'survey: "{question.text.en}" — "{answer}" (weight {weight:+.2f})'
    return f"{code}: {value}"


def explain(
    connection: Connection, creditor_id: UUID, debtor_id: UUID, debtor_ref: str, catalog: Catalog
) -> Explanation | None:
    """Why a debtor has its persona; None when never classified."""
    store = PersonaStore(connection, creditor_id)
    history = store.history(debtor_id)
    if not history:
        return None
    latest = history[0]
    persona = latest.persona
    name = catalog[persona].names.en if persona is not None and persona in catalog else None
    typical = None
    if latest.model_version is not None:
        model = latest_model(connection, creditor_id, latest.model_version)
        if model is not None:
            typical = dict(zip((f.name for f in FEATURES), model.typical().tolist(), strict=True))
    words = tuple(
        reason_text(catalog, code, value, weight, typical) for code, value, weight in latest.reasons
    )
    if latest.source == AssignmentSource.OBJECTION:
        words = ("the debtor objected to profiling (GDPR art. 21): no persona-based treatment",)
    elif latest.source == AssignmentSource.DEFAULT:
        words = (
            f"not confident enough ({latest.confidence:.0%}): default persona, survey candidate",
            *words,
        )
    return Explanation(
        debtor_ref=debtor_ref,
        persona=latest.persona,
        persona_name=name,
        source=latest.source,
        confidence=latest.confidence,
        model_version=latest.model_version,
        assigned_at=latest.assigned_at,
        survey_candidate=latest.survey_candidate,
        reasons=words,
        objection_at=store.objection_at(debtor_id),
        history=tuple((a.assigned_at, a.persona, a.source) for a in history),
    )
