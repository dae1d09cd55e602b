"""How good is the persona classifier? Train on a labelled share, measure on a holdout.

Two ways to measure:
- **against the survey** (always possible): survey-labelled debtors are split (stratified,
  seeded) into a training share and a holdout; the model trained on the first predicts the
  second and is compared with what the survey said.
- **against a ground truth** (`--truth`, e.g. the `ground_truth.csv` of `parcours
  generate`): the model trains on every survey-labelled debtor and is measured on all the
  *other* debtors — exactly the ones it would classify in production. The survey itself
  and the cold-start rules are measured against the same truth, for comparison.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from parcours.personas.model import Prediction, rules_predict, train_model

__all__ = ["classification_report", "read_truth"]


def read_truth(path: Path) -> dict[str, str]:
    """debtor_ref → persona from a CSV with `debtor_ref` and `persona` or `latent_persona`."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        column = next((c for c in ("persona", "latent_persona") if c in fields), None)
        if "debtor_ref" not in fields or column is None:
            raise ValueError(
                f"{path.name}: needs columns debtor_ref and persona (or latent_persona)"
            )
        return {row["debtor_ref"]: row[column] for row in reader}


def classification_report(
    truth: Sequence[str],
    predicted: Sequence[str],
    confidence: npt.NDArray[np.float64],
    labels: Sequence[str],
    bins: int = 10,
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-persona precision/recall, confusion matrix, calibration."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
    from sklearn.metrics import precision_recall_fscore_support as prfs

    label_list = list(labels)
    precision, recall, f1, support = prfs(truth, predicted, labels=label_list, zero_division=0)
    correct = np.array([t == p for t, p in zip(truth, predicted, strict=True)], dtype=bool)
    # Bin b holds confidences in [b/bins, (b+1)/bins); computed on integers so that a
    # confidence of exactly 0.7 opens the 0.7 bin (float edges put it below).
    which = np.clip(np.floor(np.round(confidence * bins, 9)).astype(np.int64), 0, bins - 1)
    calibration = []
    ece = 0.0
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        if not count:
            continue
        mean_conf = float(confidence[mask].mean())
        accuracy = float(correct[mask].mean())
        ece += count / len(correct) * abs(mean_conf - accuracy)
        calibration.append(
            {
                "bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}",
                "count": count,
                "mean_confidence": round(mean_conf, 4),
                "accuracy": round(accuracy, 4),
            }
        )
    return {
        "n": len(truth),
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "macro_f1": round(
            float(f1_score(truth, predicted, labels=label_list, average="macro", zero_division=0)),
            4,
        ),
        "per_persona": {
            label: {
                "precision": round(float(p), 4),
                "recall": round(float(r), 4),
                "f1": round(float(f), 4),
                "support": int(s),
            }
            for label, p, r, f, s in zip(label_list, precision, recall, f1, support, strict=True)
        },
        "confusion": {
            "labels": label_list,
            "rows_truth_columns_predicted": confusion_matrix(
                truth, predicted, labels=label_list
            ).tolist(),
        },
        "calibration": {"expected_calibration_error": round(ece, 4), "bins": calibration},
    }


def _named(prediction: Prediction) -> list[str]:
    return [prediction.classes[i] for i in prediction.persona.tolist()]


def evaluate(
    values: npt.NDArray[np.float64],
    refs: Sequence[str],
    labelled_rows: npt.NDArray[np.int64],
    labels: Sequence[str],
    survey_log_probs: npt.NDArray[np.float64],
    catalog: Any,
    *,
    truth: Mapping[str, str] | None = None,
    holdout_share: float = 0.25,
    min_confidence: float = 0.5,
    seed: int = 0,
) -> dict[str, Any]:
    """The evaluation report (see the module docstring for the two modes)."""
    import datetime as dt

    trained_at = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # the version string only
    keys = list(catalog.keys)
    report: dict[str, Any] = {"personas": keys, "labelled": len(labels)}
    if len(labels) < 2 or len(set(labels)) < 2:
        raise ValueError("need survey answers from debtors of at least two personas")

    if truth is not None:
        missing = [refs[i] for i in range(len(refs)) if refs[i] not in truth]
        if missing:
            raise ValueError(f"the truth file lacks {len(missing):,} debtors (first: {missing[0]})")
        train_rows = labelled_rows
        train_log_probs = survey_log_probs
        holdout = np.setdiff1d(np.arange(len(refs)), labelled_rows)
        if holdout.size == 0:
            raise ValueError("every debtor answered the survey: no other debtor to measure on")
        expected = [truth[refs[i]] for i in holdout.tolist()]
        report["mode"] = "truth"
        report["how"] = (
            f"trained on the {len(train_rows):,} survey-labelled debtors; measured on the "
            f"other {len(holdout):,} debtors against the truth file"
        )
        survey_truth = [truth[refs[i]] for i in labelled_rows.tolist()]
        report["survey_vs_truth"] = {
            "n": len(labels),
            "accuracy": round(
                float(np.mean([a == b for a, b in zip(labels, survey_truth, strict=True)])), 4
            ),
        }
        train_labels = list(labels)
    else:
        from sklearn.model_selection import train_test_split

        positions = np.arange(len(labels))
        counts = {label: labels.count(label) for label in set(labels)}
        stratify = list(labels) if min(counts.values()) >= 2 else None
        train_pos, test_pos = train_test_split(
            positions, test_size=holdout_share, random_state=seed, stratify=stratify
        )
        train_rows = labelled_rows[train_pos]
        train_log_probs = survey_log_probs[train_pos]
        holdout = labelled_rows[test_pos]
        expected = [labels[i] for i in test_pos.tolist()]
        train_labels = [labels[i] for i in train_pos.tolist()]
        report["mode"] = "survey-holdout"
        report["how"] = (
            f"trained on {len(train_rows):,} survey-labelled debtors; measured on a "
            f"stratified holdout of {len(holdout):,} against their survey persona"
        )

    model = train_model(
        values[train_rows],
        train_labels,
        trained_at,
        survey_log_probs=train_log_probs,
        classes=keys,
        seed=seed,
    )
    report["labels_refined"] = model.metrics.get("labels_refined", 0)
    prediction = model.predict(values[holdout])
    named = _named(prediction)
    report["model"] = classification_report(expected, named, prediction.confidence, keys)
    fallback = prediction.confidence < min_confidence
    report["model"]["below_confidence_threshold"] = {
        "threshold": min_confidence,
        "share": round(float(fallback.mean()), 4) if len(fallback) else 0.0,
        "accuracy_above": round(
            float(
                np.mean(
                    [a == b for a, b, f in zip(expected, named, fallback, strict=True) if not f]
                )
            )
            if (~fallback).any()
            else 0.0,
            4,
        ),
    }
    rules = rules_predict(catalog, values[holdout])
    report["rules"] = classification_report(expected, _named(rules), rules.confidence, keys)
    return report
