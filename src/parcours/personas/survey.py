"""Scoring survey answers into a persona.

Scoring is naive-Bayes-like and fully explainable: each persona starts from the log of
its expected share, every answer adds the evidence points the survey file gives its
option, and a softmax turns the totals into probabilities. The answers that decided are
those that pushed most towards the winner and away from the runner-up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from parcours.domain.persona import Reason
from parcours.personas.catalog import Catalog

__all__ = ["MIN_ANSWERS", "SurveyScore", "score_answers"]

# Fewer answers than this are too little evidence to override the model.
MIN_ANSWERS: Final = 5
_DECISIVE: Final = 3


@dataclass(frozen=True, slots=True)
class SurveyScore:
    persona: str
    confidence: float
    probabilities: dict[str, float]
    decisive: tuple[Reason, ...]


def score_answers(catalog: Catalog, answers: Mapping[str, str]) -> SurveyScore:
    """The persona these answers point to; `answers` maps question key to option key.

    Raises `ValueError` naming the question for an unknown question or option.
    """
    survey = catalog.survey
    keys = catalog.keys
    shares = [catalog[k].expected_share for k in keys]
    total_share = sum(shares)
    scores = {k: math.log(s / total_share) for k, s in zip(keys, shares, strict=True)}
    chosen: list[tuple[str, dict[str, float]]] = []
    for question_key, option_key in answers.items():
        question = survey.question(question_key)
        if question is None:
            raise ValueError(f"{question_key}: not a question of survey {survey.version}")
        option = question.option(option_key)
        if option is None:
            valid = ", ".join(o.key for o in question.options)
            raise ValueError(f"{question_key}: {option_key!r} is not an option (one of {valid})")
        chosen.append((f"{question_key}={option_key}", option.evidence))
        for persona, points in option.evidence.items():
            scores[persona] += points
    top = max(scores.values())
    exp = {k: math.exp(v - top) for k, v in scores.items()}
    norm = sum(exp.values())
    probabilities = {k: v / norm for k, v in exp.items()}
    ranked = sorted(keys, key=lambda k: -probabilities[k])
    winner, runner_up = ranked[0], ranked[1] if len(ranked) > 1 else ranked[0]
    margins = sorted(
        (
            (evidence.get(winner, 0.0) - evidence.get(runner_up, 0.0), code)
            for code, evidence in chosen
        ),
        reverse=True,
    )
    decisive = tuple(
        Reason(code, code.partition("=")[2], round(margin, 3))
        for margin, code in margins[:_DECISIVE]
        if margin > 0
    )
    return SurveyScore(winner, probabilities[winner], probabilities, decisive)
