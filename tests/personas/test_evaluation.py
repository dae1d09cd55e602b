"""Measuring the classifier: the classification report and the ground-truth file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from parcours.personas.catalog import load_catalog
from parcours.personas.evaluation import classification_report, evaluate, read_truth
from parcours.personas.features import FEATURE_INDEX, FEATURES

LABELS = ["a", "b", "c"]
TRUTH = ["a", "a", "a", "b", "b", "c"]
PREDICTED = ["a", "a", "b", "b", "c", "c"]
CONFIDENCE = np.array([0.95, 0.91, 0.55, 0.72, 0.35, 0.99])


def f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall)


def test_accuracy_and_macro_f1_match_a_hand_computation() -> None:
    report = classification_report(TRUTH, PREDICTED, CONFIDENCE, LABELS)
    # a: 2 of 3 found, none wrongly; b: 1 of 2 found, 1 of 2 right; c: 1 of 1, 1 of 2 right.
    per_label = {"a": (1.0, 2 / 3), "b": (0.5, 0.5), "c": (0.5, 1.0)}
    assert report["n"] == 6
    assert report["accuracy"] == round(4 / 6, 4)
    assert report["macro_f1"] == round(sum(f1(*pr) for pr in per_label.values()) / 3, 4)
    for label, (precision, recall) in per_label.items():
        assert report["per_persona"][label] == {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1(precision, recall), 4),
            "support": TRUTH.count(label),
        }


def test_the_confusion_matrix_has_truth_in_rows_and_predictions_in_columns() -> None:
    report = classification_report(TRUTH, PREDICTED, CONFIDENCE, LABELS)
    assert report["confusion"]["labels"] == LABELS
    assert report["confusion"]["rows_truth_columns_predicted"] == [
        [2, 1, 0],
        [0, 1, 1],
        [0, 0, 1],
    ]


def test_a_persona_never_predicted_has_zero_precision_without_a_warning() -> None:
    report = classification_report(["a", "b"], ["a", "a"], np.array([0.6, 0.6]), LABELS)
    assert report["per_persona"]["b"] == {"precision": 0, "recall": 0, "f1": 0, "support": 1}
    assert report["per_persona"]["c"]["support"] == 0


def test_calibration_bins_count_every_debtor_once() -> None:
    report = classification_report(TRUTH, PREDICTED, CONFIDENCE, LABELS)
    bins = report["calibration"]["bins"]
    assert sum(b["count"] for b in bins) == 6
    assert {b["bin"]: b["count"] for b in bins} == {
        "0.3-0.4": 1,
        "0.5-0.6": 1,
        "0.7-0.8": 1,
        "0.9-1.0": 3,
    }
    top = bins[-1]
    assert top["accuracy"] == 1.0
    assert top["mean_confidence"] == round((0.95 + 0.91 + 0.99) / 3, 4)
    # |confidence - accuracy| weighted by the share of debtors in each bin.
    expected = (0.35 + 0.55 + (1 - 0.72) + 3 * (1 - (0.95 + 0.91 + 0.99) / 3)) / 6
    assert report["calibration"]["expected_calibration_error"] == round(expected, 4)


def test_certain_and_hopeless_confidences_fall_in_the_outer_bins() -> None:
    report = classification_report(["a", "b"], ["a", "a"], np.array([1.0, 0.0]), LABELS)
    assert [(b["bin"], b["count"]) for b in report["calibration"]["bins"]] == [
        ("0.0-0.1", 1),
        ("0.9-1.0", 1),
    ]


@pytest.mark.parametrize(
    "edge",
    [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
)
def test_a_confidence_on_a_bin_edge_opens_the_bin_that_starts_there(edge: float) -> None:
    report = classification_report(["a"], ["a"], np.array([edge]), LABELS)
    assert report["calibration"]["bins"][0]["bin"] == f"{edge:.1f}-{edge + 0.1:.1f}"


# -- the truth file --------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["latent_persona", "persona"])
def test_read_truth_accepts_a_persona_or_latent_persona_column(tmp_path: Path, column: str) -> None:
    path = tmp_path / "truth.csv"
    path.write_text(f"debtor_ref,{column},noise\nD1,engaged,x\nD2,struggling,y\n", "utf-8")
    assert read_truth(path) == {"D1": "engaged", "D2": "struggling"}


def test_read_truth_prefers_persona_and_skips_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "truth.csv"
    path.write_text("debtor_ref,latent_persona,persona\nD1,engaged,occasional\n", "utf-8-sig")
    assert read_truth(path) == {"D1": "occasional"}


@pytest.mark.parametrize("header", ["debtor_ref,segment", "ref,persona", "debtor_ref"], ids=str)
def test_read_truth_rejects_a_file_without_its_columns(tmp_path: Path, header: str) -> None:
    path = tmp_path / "truth.csv"
    path.write_text(f"{header}\n", "utf-8")
    with pytest.raises(ValueError, match=r"truth\.csv: needs columns debtor_ref and persona"):
        read_truth(path)


# -- evaluate --------------------------------------------------------------------------------


def test_evaluate_refuses_labels_of_a_single_persona() -> None:
    values = np.zeros((10, len(FEATURES)))
    with pytest.raises(ValueError, match="at least two personas"):
        evaluate(
            values,
            [f"D{i}" for i in range(10)],
            np.arange(10),
            ["engaged"] * 10,
            np.zeros((10, 5)),
            load_catalog(),
        )


def test_evaluate_against_a_truth_needs_every_debtor_in_it() -> None:
    values = np.zeros((12, len(FEATURES)))
    refs = [f"D{i}" for i in range(12)]
    labels = ["engaged"] * 6 + ["struggling"] * 6
    with pytest.raises(ValueError, match=r"lacks 1 debtors \(first: D11\)"):
        evaluate(
            values,
            refs,
            np.arange(12),
            labels,
            np.zeros((12, 5)),
            load_catalog(),
            truth=dict.fromkeys(refs[:-1], "engaged"),
        )


def test_evaluate_on_a_survey_holdout_measures_model_and_rules() -> None:
    rng = np.random.default_rng(0)
    catalog = load_catalog()
    n = 200
    truth = rng.choice(["engaged", "struggling"], size=n)
    values = np.zeros((n, len(FEATURES)))
    struggling = truth == "struggling"
    values[:, FEATURE_INDEX["late_share"]] = np.where(struggling, 0.8, 0.05)
    values[:, FEATURE_INDEX["instalment_share"]] = np.where(struggling, 0.6, 0.0)
    values[:, FEATURE_INDEX["mean_days_late"]] = np.where(struggling, 40, 0)
    values[:, FEATURE_INDEX["age"]] = rng.normal(45, 10, n)
    keys = list(catalog.keys)
    log_probs = np.full((n, len(keys)), np.log(0.01))
    log_probs[np.arange(n), [keys.index(t) for t in truth]] = np.log(0.96)
    report = evaluate(
        values, [f"D{i}" for i in range(n)], np.arange(n), list(truth), log_probs, catalog
    )
    assert report["mode"] == "survey-holdout"
    assert report["model"]["n"] == 50
    assert report["model"]["accuracy"] == 1.0
    assert report["rules"]["n"] == 50
    assert report["rules"]["accuracy"] > 0.5
