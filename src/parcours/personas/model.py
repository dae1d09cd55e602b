"""The persona classifier (multinomial logistic regression) and the cold-start rules.

Why logistic regression: with a few thousand survey-labelled debtors it is as accurate as
gradient boosting on these features (measured in `parcours personas evaluate`), it is
calibrated well enough for a confidence threshold, and every decision splits exactly into
per-feature contributions a strategist can read ("late on 75 % of invoices"). scikit-learn
trains it; prediction is a matrix product done here in numpy from the stored parameters
(JSON in the database, never a pickle), so a million debtors take well under a second.

Cold start (no labels yet): each persona of the catalog lists `signals`, named features
compared with thresholds, worth points of evidence; scores start from the log of the
persona's expected share and go through the same softmax as the model.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from parcours.domain.persona import Reason
from parcours.personas.catalog import Catalog
from parcours.personas.features import FEATURE_INDEX, FEATURES

__all__ = ["ALGORITHM", "PersonaModel", "Prediction", "rules_predict", "train_model"]

ALGORITHM: Final = "logistic-regression/1"
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
TOP_REASONS: Final = 3
_LOG_COLUMNS: Final = np.array([f.log for f in FEATURES])


@dataclass(frozen=True)
class Prediction:
    """Personas for many debtors at once: `classes[persona[i]]` with `confidence[i]`."""

    classes: tuple[str, ...]
    persona: I64
    confidence: F64
    probabilities: F64
    # Per debtor, the top reasons as (feature index, contribution); index -1 = none.
    reason_features: I64
    reason_weights: F64

    def reasons(self, i: int, values: F64) -> tuple[Reason, ...]:
        out = []
        for j, w in zip(self.reason_features[i], self.reason_weights[i], strict=True):
            weight = round(float(w), 3)
            if j >= 0 and weight > 0:  # a push too small to show is no reason
                out.append(Reason(FEATURES[j].name, round(float(values[j]), 4), weight))
        return tuple(out)


def _softmax(scores: F64) -> F64:
    shifted = scores - scores.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    result: F64 = shifted
    return result


def _top(contributions: F64) -> tuple[I64, F64]:
    """Indices and values of the TOP_REASONS largest contributions of each row."""
    k = min(TOP_REASONS, contributions.shape[1])
    idx = np.argpartition(-contributions, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(contributions, idx, axis=1)
    order = np.argsort(-vals, axis=1)
    idx = np.take_along_axis(idx, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    return np.where(vals > 0, idx, -1).astype(np.int64), vals


def transform(values: F64) -> F64:
    """What the model sees: log1p of skewed features (days, euros, counts)."""
    out = values.copy()
    out[:, _LOG_COLUMNS] = np.log1p(np.maximum(out[:, _LOG_COLUMNS], 0))
    return out


@dataclass(frozen=True)
class PersonaModel:
    version: str
    classes: tuple[str, ...]
    mean: F64
    scale: F64
    coef: F64  # (classes, features), on standardised transformed features
    intercept: F64
    trained_at: dt.datetime
    labelled: int
    metrics: dict[str, Any] = field(default_factory=dict)

    def predict(self, values: F64) -> Prediction:
        return _in_chunks(self._predict, values)

    def _predict(self, values: F64) -> Prediction:
        z = (transform(values) - self.mean) / self.scale
        probabilities = _softmax(z @ self.coef.T + self.intercept)
        persona = probabilities.argmax(axis=1)
        confidence = probabilities[np.arange(len(persona)), persona]
        # A feature's push towards the winner against the average persona: softmax is
        # unchanged by subtracting the mean row, so these add up to the winner's margin.
        centred = self.coef - self.coef.mean(axis=0, keepdims=True)
        contributions = centred[persona] * z
        features, weights = _top(contributions)
        return Prediction(self.classes, persona, confidence, probabilities, features, weights)

    def typical(self) -> F64:
        """Each feature's portfolio average at training time, in its own unit (the
        geometric-like mean for log features), to put a debtor's value in context."""
        typical = self.mean.copy()
        typical[_LOG_COLUMNS] = np.expm1(typical[_LOG_COLUMNS])
        return typical

    def params(self) -> dict[str, Any]:
        return {
            "features": [f.name for f in FEATURES],
            "classes": list(self.classes),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
        }

    @classmethod
    def from_params(
        cls,
        version: str,
        params: dict[str, Any],
        trained_at: dt.datetime,
        labelled: int,
        metrics: dict[str, Any],
    ) -> PersonaModel:
        names = [f.name for f in FEATURES]
        if params.get("features") != names:
            raise ValueError(
                f"model {version} was trained on other features; train a new one "
                "(parcours personas train)"
            )
        return cls(
            version=version,
            classes=tuple(params["classes"]),
            mean=np.array(params["mean"]),
            scale=np.array(params["scale"]),
            coef=np.array(params["coef"]),
            intercept=np.array(params["intercept"]),
            trained_at=trained_at,
            labelled=labelled,
            metrics=metrics,
        )


def _estimator(seed: int, *, balanced: bool) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(
        C=1.0, max_iter=5000, random_state=seed, class_weight="balanced" if balanced else None
    )


def refine_labels(
    z: F64,
    labels: Sequence[str],
    survey_log_probs: F64,
    classes: Sequence[str],
    *,
    rounds: int = 2,
    seed: int = 0,
) -> list[str]:
    """Survey labels corrected with the debtors' own data (two independent views).

    A survey of ten answers misreads some debtors, and the behaviour in their payment
    history is independent evidence about the same persona. Each round predicts every
    labelled debtor with a model that never saw that debtor (5-fold cross-fitting) and
    takes the persona with the highest combined posterior, p(k | answers) · p(k | data) /
    p(k). Only the training labels change: the survey still decides the surveyed debtor's
    own persona.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    current = list(labels)
    counts = {c: current.count(c) for c in set(current)}
    if len(counts) < 2 or min(counts.values()) < 5:
        return current  # too few labels per persona to cross-fit
    prior = np.log(np.array([max(counts.get(c, 0), 1) for c in classes], dtype=np.float64))
    for _ in range(rounds):
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        probabilities = cross_val_predict(
            _estimator(seed, balanced=False),
            z,
            current,
            cv=folds,
            method="predict_proba",
        )
        fitted = sorted(set(current))
        data = np.full((len(current), len(classes)), -20.0)
        for j, c in enumerate(classes):
            if c in fitted:
                data[:, j] = np.log(probabilities[:, fitted.index(c)] + 1e-9)
        combined = survey_log_probs + data - (prior - np.log(len(current)))
        refined = [classes[j] for j in combined.argmax(axis=1).tolist()]
        if refined == current:
            break
        current = refined
        counts = {c: current.count(c) for c in set(current)}
        if len(counts) < 2 or min(counts.values()) < 5:
            break
    return current


def train_model(
    values: F64,
    labels: Sequence[str],
    trained_at: dt.datetime,
    *,
    survey_log_probs: F64 | None = None,
    classes: Sequence[str] = (),
    seed: int = 0,
) -> PersonaModel:
    """Fit on labelled debtors (`values` rows, persona keys); needs two personas or more.

    With `survey_log_probs` (per row, log-probabilities over `classes` from the survey),
    labels are first refined with `refine_labels`. Classes are weighted to balance: a
    rare persona (problem payers) matters as much as a common one, which is what the
    macro-F1 measures and what the journeys need.
    """
    if len(labels) != len(values):
        raise ValueError("one label per row of values")
    if len(set(labels)) < 2:
        raise ValueError(f"need labels of at least two personas, got {sorted(set(labels))}")
    x = transform(values)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    refined = list(labels)
    if survey_log_probs is not None:
        refined = refine_labels(z, labels, survey_log_probs, classes, seed=seed)
    fitted = _estimator(seed, balanced=True).fit(z, refined)
    # C-ordered copies, as `from_params` builds them: the same memory layout makes the
    # same BLAS summation order, so a stored model predicts bit for bit what it did.
    coef = np.ascontiguousarray(fitted.coef_, dtype=np.float64)
    intercept = np.ascontiguousarray(fitted.intercept_, dtype=np.float64)
    if coef.shape[0] == 1:  # binary: scikit-learn keeps one row; make it a two-class softmax
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    digest = hashlib.sha256(
        json.dumps([coef.round(8).tolist(), intercept.round(8).tolist()]).encode()
    ).hexdigest()[:8]
    changed = sum(a != b for a, b in zip(labels, refined, strict=True))
    return PersonaModel(
        version=f"lr-{trained_at:%Y%m%dT%H%M%S}-{digest}",
        classes=tuple(str(c) for c in fitted.classes_),
        mean=mean,
        scale=scale,
        coef=coef,
        intercept=intercept,
        trained_at=trained_at,
        labelled=len(labels),
        metrics={"labels": dict(Counter(refined)), "labels_refined": changed},
    )


def rules_predict(catalog: Catalog, values: F64) -> Prediction:
    """The cold-start prior: catalog signals as evidence points, then a softmax."""
    return _in_chunks(lambda chunk: _rules(catalog, chunk), values)


def _rules(catalog: Catalog, values: F64) -> Prediction:
    classes = catalog.keys
    n = len(values)
    shares = np.array([catalog[k].expected_share for k in classes])
    scores = np.tile(np.log(shares / shares.sum()), (n, 1))
    hits = []
    for p, key in enumerate(classes):
        for signal in catalog[key].signals:
            column = values[:, FEATURE_INDEX[signal.feature]]
            if signal.above is not None:
                hit = column > signal.above
            else:
                assert signal.below is not None  # the model allows exactly one threshold
                hit = column < signal.below
            scores[:, p] += signal.weight * hit
            hits.append((p, FEATURE_INDEX[signal.feature], signal.weight * hit))
    probabilities = _softmax(scores)
    persona = probabilities.argmax(axis=1)
    confidence = probabilities[np.arange(n), persona]
    # The winner's evidence per feature (signals on one feature add up) gives the reasons.
    evidence = np.zeros((n, len(FEATURES)))
    for p, j, points in hits:
        evidence[:, j] += np.where(persona == p, points, 0.0)
    features, weights = _top(evidence)
    return Prediction(classes, persona, confidence, probabilities, features, weights)


_CHUNK: Final = 65_536


def _in_chunks(predict: Callable[[F64], Prediction], values: F64) -> Prediction:
    """Predict in slices so temporary matrices stay small whatever the portfolio size."""
    if len(values) <= _CHUNK:
        return predict(values)
    parts = [predict(values[i : i + _CHUNK]) for i in range(0, len(values), _CHUNK)]
    return Prediction(
        parts[0].classes,
        np.concatenate([p.persona for p in parts]),
        np.concatenate([p.confidence for p in parts]),
        np.concatenate([p.probabilities for p in parts]),
        np.concatenate([p.reason_features for p in parts]),
        np.concatenate([p.reason_weights for p in parts]),
    )
