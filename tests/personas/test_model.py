"""The persona classifier (training, prediction, reasons, label refinement) and the rules."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.linear_model import LogisticRegression

from parcours.personas.catalog import load_catalog
from parcours.personas.features import FEATURE_INDEX, FEATURES
from parcours.personas.model import (
    PersonaModel,
    Prediction,
    refine_labels,
    rules_predict,
    train_model,
    transform,
)

F64 = npt.NDArray[np.float64]
TRAINED_AT = dt.datetime(2026, 11, 1, 3, 0, tzinfo=dt.UTC)
CLASSES = ("calm", "late", "split")
CATALOG = load_catalog()


def synthetic(n: int, seed: int) -> tuple[F64, list[str]]:
    """Three personas told apart by two features: late payers and instalment payers."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    values = np.zeros((n, len(FEATURES)))
    late = np.where(y == 1, 0.8, 0.1) + rng.normal(0, 0.1, n)
    split = np.where(y == 2, 0.7, 0.05) + rng.normal(0, 0.1, n)
    values[:, FEATURE_INDEX["late_share"]] = np.clip(late, 0, 1)
    values[:, FEATURE_INDEX["instalment_share"]] = np.clip(split, 0, 1)
    values[:, FEATURE_INDEX["age"]] = rng.normal(45, 10, n)  # noise, same for everyone
    values[:, FEATURE_INDEX["invoices"]] = rng.integers(1, 20, n)  # a log feature, noise
    return values, [CLASSES[i] for i in y]


def names(prediction: Prediction) -> list[str]:
    return [prediction.classes[i] for i in prediction.persona.tolist()]


def standardised(model: PersonaModel, values: F64) -> F64:
    return (transform(values) - model.mean) / model.scale


def feature_row(**values: float) -> F64:
    row = np.zeros((1, len(FEATURES)))
    defaults = {"invoices": 6, "invoices_due": 5, "age": 40, "age_known": 1, "has_email": 1}
    for name, value in {**defaults, **values}.items():
        row[0, FEATURE_INDEX[name]] = value
    return row


@pytest.fixture(scope="module")
def data() -> tuple[F64, list[str]]:
    return synthetic(400, seed=1)


@pytest.fixture(scope="module")
def model(data: tuple[F64, list[str]]) -> PersonaModel:
    values, labels = data
    return train_model(values[:300], labels[:300], TRAINED_AT)


# -- training and prediction -----------------------------------------------------------------


def test_a_model_trained_on_separable_personas_predicts_held_out_debtors(
    data: tuple[F64, list[str]], model: PersonaModel
) -> None:
    values, labels = data
    predicted = names(model.predict(values[300:]))
    accuracy = np.mean([p == t for p, t in zip(predicted, labels[300:], strict=True)])
    assert accuracy > 0.9
    assert model.classes == CLASSES
    assert model.labelled == 300
    assert model.version.startswith("lr-20261101T030000-")
    assert model.metrics["labels_refined"] == 0


def test_probabilities_sum_to_one_and_the_persona_is_the_most_probable(
    data: tuple[F64, list[str]], model: PersonaModel
) -> None:
    prediction = model.predict(data[0])
    assert prediction.probabilities.shape == (400, 3)
    np.testing.assert_allclose(prediction.probabilities.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(prediction.persona, prediction.probabilities.argmax(axis=1))
    np.testing.assert_array_equal(prediction.confidence, prediction.probabilities.max(axis=1))


@pytest.mark.parametrize("classes", [CLASSES, CLASSES[:2]], ids=["three", "binary"])
def test_predictions_equal_scikit_learns_logistic_regression(classes: tuple[str, ...]) -> None:
    values, labels = synthetic(300, seed=2)
    keep = [i for i, label in enumerate(labels) if label in classes]
    values, labels = values[keep], [labels[i] for i in keep]
    model = train_model(values, labels, TRAINED_AT)
    z = standardised(model, values)
    reference = LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced").fit(z, labels)
    assert model.classes == tuple(reference.classes_)
    np.testing.assert_allclose(
        model.predict(values).probabilities, reference.predict_proba(z), atol=1e-6
    )


def test_params_survive_a_json_round_trip_with_identical_predictions(
    data: tuple[F64, list[str]], model: PersonaModel
) -> None:
    params = json.loads(json.dumps(model.params()))
    again = PersonaModel.from_params(model.version, params, TRAINED_AT, 300, model.metrics)
    before, after = model.predict(data[0]), again.predict(data[0])
    assert after.classes == before.classes
    np.testing.assert_array_equal(after.probabilities, before.probabilities)
    np.testing.assert_array_equal(after.reason_features, before.reason_features)
    np.testing.assert_array_equal(after.reason_weights, before.reason_weights)


def test_params_trained_on_other_features_are_refused(model: PersonaModel) -> None:
    params = model.params()
    params["features"] = params["features"][:-1]
    with pytest.raises(ValueError, match="trained on other features"):
        PersonaModel.from_params(model.version, params, TRAINED_AT, 300, {})
    params["features"] = list(reversed(model.params()["features"]))
    with pytest.raises(ValueError, match="trained on other features"):
        PersonaModel.from_params(model.version, params, TRAINED_AT, 300, {})


def test_training_needs_two_personas() -> None:
    values, _ = synthetic(20, seed=3)
    with pytest.raises(ValueError, match="at least two personas"):
        train_model(values, ["calm"] * 20, TRAINED_AT)


def test_training_needs_one_label_per_row() -> None:
    values, labels = synthetic(20, seed=3)
    with pytest.raises(ValueError, match="one label per row"):
        train_model(values, labels[:-1], TRAINED_AT)


def test_predicting_no_debtors_gives_an_empty_prediction(model: PersonaModel) -> None:
    prediction = model.predict(np.zeros((0, len(FEATURES))))
    assert prediction.persona.shape == (0,)
    assert prediction.probabilities.shape == (0, 3)


# -- reasons ---------------------------------------------------------------------------------


def test_reasons_are_the_largest_positive_contributions_to_the_winner(
    data: tuple[F64, list[str]], model: PersonaModel
) -> None:
    values = data[0]
    prediction = model.predict(values)
    centred = model.coef - model.coef.mean(axis=0)
    contributions = centred[prediction.persona] * standardised(model, values)
    for i in range(len(values)):
        reasons = prediction.reasons(i, values[i])
        assert 1 <= len(reasons) <= 3
        weights = [r.weight for r in reasons]
        assert weights == sorted(weights, reverse=True)
        assert all(w > 0 for w in weights)
        top = sorted(((c, j) for j, c in enumerate(contributions[i]) if c > 0), reverse=True)[:3]
        positive = [(c, j) for c, j in top if round(float(c), 3) > 0]
        assert [r.code for r in reasons] == [FEATURES[j].name for _, j in positive]
        assert weights == [round(float(c), 3) for c, _ in positive]
        assert [r.value for r in reasons] == [round(float(values[i, j]), 4) for _, j in positive]


def hand_model(**coef: float) -> PersonaModel:
    """Two personas 'a' and 'b'; `coef` is b's weight per feature, a has the opposite."""
    weights = np.zeros((2, len(FEATURES)))
    for name, value in coef.items():
        weights[:, FEATURE_INDEX[name]] = [-value, value]
    return PersonaModel(
        version="hand",
        classes=("a", "b"),
        mean=np.zeros(len(FEATURES)),
        scale=np.ones(len(FEATURES)),
        coef=weights,
        intercept=np.zeros(2),
        trained_at=TRAINED_AT,
        labelled=0,
    )


def test_reasons_of_a_hand_made_model_are_its_contributions() -> None:
    model = hand_model(late_share=2.0, paid_early_share=-1.0, age=0.01, partial_share=0.5)
    row = feature_row(late_share=0.9, paid_early_share=0.0, age=30, partial_share=0.2)
    prediction = model.predict(row)
    assert names(prediction) == ["b"]
    reasons = prediction.reasons(0, row[0])
    # Contributions to b: late_share 2 * 0.9, age 0.01 * 30, partial_share 0.5 * 0.2.
    assert [(r.code, r.weight) for r in reasons] == [
        ("late_share", 1.8),
        ("age", 0.3),
        ("partial_share", 0.1),
    ]
    assert prediction.confidence[0] == pytest.approx(1 / (1 + np.exp(-2 * 2.2)))


def test_every_reported_reason_has_a_positive_weight() -> None:
    model = hand_model(late_share=2.0, age=0.00001)
    row = feature_row(late_share=0.9, age=30)
    reasons = model.predict(row).reasons(0, row[0])
    assert [r.code for r in reasons][:1] == ["late_share"]
    assert all(r.weight > 0 for r in reasons), reasons


def test_an_extreme_value_of_the_deciding_feature_is_among_the_reasons(
    model: PersonaModel,
) -> None:
    debtor = np.zeros((1, len(FEATURES)))
    debtor[0, FEATURE_INDEX["late_share"]] = 1.0
    debtor[0, FEATURE_INDEX["age"]] = 45
    debtor[0, FEATURE_INDEX["invoices"]] = 8
    prediction = model.predict(debtor)
    assert names(prediction) == ["late"]
    reasons = prediction.reasons(0, debtor[0])
    assert reasons[0].code == "late_share"
    assert reasons[0].value == 1.0


# -- chunks ----------------------------------------------------------------------------------


def test_predicting_in_chunks_equals_predicting_in_one_go(model: PersonaModel) -> None:
    """70,000 rows are predicted in two chunks; the same rows split by hand agree."""
    values, _ = synthetic(70_000, seed=4)
    whole = model.predict(values)
    parts = [model.predict(values[:30_000]), model.predict(values[30_000:])]
    assert len(whole.persona) == 70_000
    np.testing.assert_array_equal(whole.persona, np.concatenate([p.persona for p in parts]))
    np.testing.assert_allclose(
        whole.probabilities, np.concatenate([p.probabilities for p in parts]), rtol=1e-12
    )
    np.testing.assert_array_equal(
        whole.reason_features, np.concatenate([p.reason_features for p in parts])
    )
    np.testing.assert_allclose(
        whole.reason_weights, np.concatenate([p.reason_weights for p in parts]), rtol=1e-12
    )


def test_rules_in_chunks_equal_rules_in_one_go() -> None:
    values, _ = synthetic(70_000, seed=5)
    values[:, FEATURE_INDEX["mean_days_late"]] = np.random.default_rng(5).integers(0, 90, 70_000)
    whole = rules_predict(CATALOG, values)
    parts = [rules_predict(CATALOG, values[:40_000]), rules_predict(CATALOG, values[40_000:])]
    np.testing.assert_array_equal(whole.persona, np.concatenate([p.persona for p in parts]))
    np.testing.assert_array_equal(
        whole.reason_features, np.concatenate([p.reason_features for p in parts])
    )


# -- label refinement ------------------------------------------------------------------------


def noisy_survey(truth: list[str], seed: int) -> tuple[list[str], F64]:
    """Survey labels wrong for about 20 % of debtors, and log-probabilities whose argmax is
    the (noisy) label but that keep some weight on the true persona."""
    rng = np.random.default_rng(seed)
    true_index = np.array([CLASSES.index(t) for t in truth])
    flipped = rng.random(len(truth)) < 0.2
    noisy_index = np.where(flipped, (true_index + rng.integers(1, 3, len(truth))) % 3, true_index)
    scores = 1.0 * np.eye(3)[noisy_index] + 0.5 * np.eye(3)[true_index]
    log_probs = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    return [CLASSES[i] for i in noisy_index], log_probs


def test_refined_labels_agree_with_the_truth_more_often_than_noisy_survey_labels() -> None:
    values, truth = synthetic(600, seed=6)
    noisy, log_probs = noisy_survey(truth, seed=7)
    x = transform(values)
    z = (x - x.mean(axis=0)) / np.where(x.std(axis=0) == 0, 1, x.std(axis=0))
    refined = refine_labels(z, noisy, log_probs, CLASSES)

    def agreement(labels: list[str]) -> float:
        return float(np.mean([a == b for a, b in zip(labels, truth, strict=True)]))

    assert 0.75 < agreement(noisy) < 0.85
    assert agreement(refined) > agreement(noisy) + 0.1


def test_training_with_survey_log_probs_reports_refined_labels() -> None:
    values, truth = synthetic(600, seed=6)
    noisy, log_probs = noisy_survey(truth, seed=7)
    model = train_model(values, noisy, TRAINED_AT, survey_log_probs=log_probs, classes=CLASSES)
    changed = sum(a != b for a, b in zip(noisy, truth, strict=True))
    assert model.metrics["labels_refined"] > changed / 2
    assert sum(model.metrics["labels"].values()) == 600


def test_refinement_leaves_labels_alone_when_a_persona_has_fewer_than_five() -> None:
    values, _ = synthetic(60, seed=8)
    labels = ["calm"] * 30 + ["late"] * 26 + ["split"] * 4
    # The survey disagrees with every label: refinement would change them if it ran.
    disagree = np.array([[-9.0, 0.0, -9.0]] * 60)
    disagree[:30] = [-9.0, -9.0, 0.0]
    x = transform(values)
    z = (x - x.mean(axis=0)) / np.where(x.std(axis=0) == 0, 1, x.std(axis=0))
    assert refine_labels(z, labels, disagree, CLASSES) == labels
    enough = ["calm"] * 30 + ["late"] * 25 + ["split"] * 5
    assert refine_labels(z, enough, disagree, CLASSES) != enough


# -- cold-start rules ------------------------------------------------------------------------


STRUGGLING = feature_row(
    instalment_share=0.6,
    partial_share=0.2,
    mean_days_late=40,
    max_days_late=55,
    late_share=0.8,
    long_unpaid_share=0.0,
    overdue_invoices=1,
)
ENGAGED = feature_row(late_share=0.0, paid_early_share=0.8, paid_before_reminder_share=1.0, age=60)


@pytest.mark.parametrize(
    ("row", "persona"),
    [(STRUGGLING, "struggling"), (ENGAGED, "engaged")],
    ids=["struggling", "engaged"],
)
def test_rules_give_a_typical_debtor_its_persona(row: F64, persona: str) -> None:
    prediction = rules_predict(CATALOG, row)
    assert names(prediction) == [persona]
    assert prediction.classes == CATALOG.keys
    assert prediction.probabilities.sum() == pytest.approx(1.0)
    assert prediction.confidence[0] == prediction.probabilities.max()
    reasons = prediction.reasons(0, row[0])
    signals = {s.feature for s in CATALOG[persona].signals if s.weight > 0}
    assert reasons
    assert {r.code for r in reasons} <= signals
    weights = [r.weight for r in reasons]
    assert weights == sorted(weights, reverse=True)


def test_rule_probabilities_are_the_softmax_of_prior_and_signal_points() -> None:
    """Recomputed in plain Python from the catalog for rows around the thresholds."""
    rng = np.random.default_rng(9)
    values = np.column_stack(
        [rng.choice([0.0, 0.2, 0.5, 1.0, 3.0, 14.0, 30.0, 50.0, 70.0], size=200) for _ in FEATURES]
    )
    prediction = rules_predict(CATALOG, values)
    total_share = sum(CATALOG[k].expected_share for k in CATALOG.keys)
    for i, row in enumerate(values):
        scores = []
        for key in CATALOG.keys:
            score = np.log(CATALOG[key].expected_share / total_share)
            for signal in CATALOG[key].signals:
                value = row[FEATURE_INDEX[signal.feature]]
                hit = value > signal.above if signal.above is not None else value < signal.below
                score += signal.weight if hit else 0.0
            scores.append(score)
        expected = np.exp(np.array(scores) - max(scores))
        expected /= expected.sum()
        np.testing.assert_allclose(prediction.probabilities[i], expected, rtol=1e-9)


def test_rules_accept_no_debtors() -> None:
    prediction = rules_predict(CATALOG, np.zeros((0, len(FEATURES))))
    assert prediction.persona.shape == (0,)
    assert prediction.probabilities.shape == (0, len(CATALOG.keys))
    assert prediction.reason_features.shape[0] == 0
