"""Experiments at enrolment: loading from the operator's directory, sticky arms."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from parcours.domain.journey import Experiment
from parcours.journeys.library import JourneyError, load_library
from parcours.runtime.tick import draw_arm

ARMS = [
    {"name": "champion", "weight": 45, "journey": "persona"},
    {"name": "challenger", "weight": 45, "journey": "universal"},
    {"name": "holdout", "weight": 10, "journey": None},
]


def write(directory: Path, name: str, data: dict[str, object]) -> None:
    (directory / "experiments").mkdir(exist_ok=True)
    (directory / "experiments" / name).write_text(yaml.safe_dump(data), encoding="utf-8")


def test_an_operator_experiment_is_loaded_and_checked(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", {"key": "a", "description": "x", "arms": ARMS})
    library = load_library(tmp_path)
    active = library.active_experiment()
    assert active is not None and active.key == "a"
    write(
        tmp_path,
        "b.yaml",
        {
            "key": "b",
            "description": "x",
            "arms": [*ARMS[:1], {"name": "other", "weight": 5, "journey": "nope"}],
        },
    )
    with pytest.raises(JourneyError) as error:
        load_library(tmp_path)
    problems = " ".join(error.value.problems)
    assert "b.yaml: arms.1.journey: no journey 'nope'" in problems
    assert "more than one active experiment" in problems


def test_arms_are_sticky_and_follow_the_weights() -> None:
    experiment = Experiment.model_validate({"key": "e", "description": "x", "arms": ARMS})
    cases = [f"case-{i}" for i in range(20_000)]
    drawn = [draw_arm(experiment, c).name for c in cases]
    assert drawn == [draw_arm(experiment, c).name for c in cases]
    shares = Counter(drawn)
    assert shares["holdout"] / len(cases) == pytest.approx(0.10, abs=0.01)
    assert shares["champion"] / len(cases) == pytest.approx(0.45, abs=0.015)
    other = Experiment.model_validate({"key": "f", "description": "x", "arms": ARMS})
    assert drawn != [draw_arm(other, c).name for c in cases]  # independent per experiment
