"""How the synthetic debtors of each latent persona answer the persona survey.

These probabilities are the *synthetic world's truth*, set here independently of the
evidence weights in `personas/survey/v1.yaml` (which are the scorer's beliefs): a
survey that scores these answers well shows that its weights make sense, not that the two
were copied from each other. Rows are personas in `LATENT_PERSONAS` order: occasional,
struggling, problem_payer, engaged, nonchalant. Any option can come from any persona.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["ANSWERS", "SKIP_P", "survey_header", "survey_rows"]

# question -> (option keys, probability of each option per latent persona)
ANSWERS: Final[dict[str, tuple[tuple[str, ...], tuple[tuple[float, ...], ...]]]] = {
    "late_reason": (
        ("forgot", "short_of_money", "disagree_or_unclear", "payment_problem", "rarely_late"),
        (
            (0.55, 0.05, 0.08, 0.17, 0.15),
            (0.12, 0.65, 0.08, 0.08, 0.07),
            (0.15, 0.45, 0.25, 0.05, 0.10),
            (0.25, 0.05, 0.08, 0.22, 0.40),
            (0.50, 0.12, 0.08, 0.15, 0.15),
        ),
    ),
    "pay_in_14_days": (
        ("yes_easily", "yes_with_effort", "no", "not_sure"),
        (
            (0.65, 0.25, 0.03, 0.07),
            (0.05, 0.30, 0.45, 0.20),
            (0.05, 0.15, 0.45, 0.35),
            (0.70, 0.20, 0.03, 0.07),
            (0.40, 0.40, 0.08, 0.12),
        ),
    ),
    "preferred_channel": (
        ("email", "sms", "chat", "phone", "letter"),
        (
            (0.35, 0.25, 0.30, 0.03, 0.07),
            (0.30, 0.15, 0.05, 0.20, 0.30),
            (0.20, 0.15, 0.05, 0.15, 0.45),
            (0.45, 0.10, 0.07, 0.08, 0.30),
            (0.15, 0.40, 0.35, 0.05, 0.05),
        ),
    ),
    "payment_method": (
        ("banking_app", "online_banking", "card_link", "direct_debit", "counter_or_cash"),
        (
            (0.65, 0.15, 0.12, 0.06, 0.02),
            (0.20, 0.35, 0.05, 0.10, 0.30),
            (0.20, 0.25, 0.10, 0.05, 0.40),
            (0.30, 0.30, 0.05, 0.33, 0.02),
            (0.45, 0.10, 0.40, 0.03, 0.02),
        ),
    ),
    "reminder_before_due": (
        ("yes", "no", "no_preference"),
        (
            (0.75, 0.05, 0.20),
            (0.55, 0.15, 0.30),
            (0.25, 0.30, 0.45),
            (0.60, 0.10, 0.30),
            (0.25, 0.30, 0.45),
        ),
    ),
    "other_arrears": (
        ("none", "one", "two_or_more", "prefer_not_to_say"),
        (
            (0.70, 0.22, 0.03, 0.05),
            (0.10, 0.30, 0.50, 0.10),
            (0.05, 0.15, 0.50, 0.30),
            (0.90, 0.07, 0.01, 0.02),
            (0.40, 0.40, 0.12, 0.08),
        ),
    ),
    "life_event": (
        ("none", "income_loss", "family_change", "other_change", "prefer_not_to_say"),
        (
            (0.75, 0.03, 0.12, 0.07, 0.03),
            (0.25, 0.35, 0.20, 0.10, 0.10),
            (0.35, 0.20, 0.10, 0.10, 0.25),
            (0.85, 0.04, 0.05, 0.04, 0.02),
            (0.80, 0.05, 0.05, 0.07, 0.03),
        ),
    ),
    "money_confidence": (
        ("very", "fairly", "not_very", "not_at_all"),
        (
            (0.45, 0.45, 0.08, 0.02),
            (0.05, 0.30, 0.45, 0.20),
            (0.05, 0.20, 0.35, 0.40),
            (0.60, 0.35, 0.04, 0.01),
            (0.25, 0.50, 0.20, 0.05),
        ),
    ),
    "answer_time": (
        ("within_hour", "same_day", "few_days", "no_expectation"),
        (
            (0.45, 0.45, 0.07, 0.03),
            (0.05, 0.30, 0.45, 0.20),
            (0.05, 0.15, 0.30, 0.50),
            (0.10, 0.45, 0.35, 0.10),
            (0.45, 0.30, 0.10, 0.15),
        ),
    ),
    "plan_interest": (
        ("yes", "maybe", "no"),
        (
            (0.05, 0.15, 0.80),
            (0.65, 0.25, 0.10),
            (0.40, 0.40, 0.20),
            (0.03, 0.10, 0.87),
            (0.15, 0.40, 0.45),
        ),
    ),
}
# Each question is skipped with this probability (the survey is optional, item by item).
SKIP_P: Final = 0.04
# Answers arrive over the two months before the portfolio date.
_ANSWER_WINDOW_DAYS: Final = 60

_CUMULATIVE: Final = {
    question: (options, np.cumsum(np.array(p), axis=1))
    for question, (options, p) in ANSWERS.items()
}


def survey_header() -> tuple[str, ...]:
    return ("debtor_ref", "answered_at", *ANSWERS)


def survey_rows(
    rng: np.random.Generator,
    refs: list[str],
    personas: npt.NDArray[np.int64],
    as_of: dt.date,
) -> list[list[str]]:
    """One row of answers per debtor (option keys; empty where a question was skipped)."""
    n = len(refs)
    if n == 0:
        return []
    columns = []
    for options, cumulative in _CUMULATIVE.values():
        u = rng.random(n)
        picked = (u[:, None] > cumulative[personas]).sum(axis=1)
        picked = np.minimum(picked, len(options) - 1)
        skipped = rng.random(n) < SKIP_P
        columns.append(
            [
                "" if s else options[k]
                for k, s in zip(picked.tolist(), skipped.tolist(), strict=True)
            ]
        )
    days_ago = rng.integers(1, _ANSWER_WINDOW_DAYS + 1, size=n).tolist()
    return [
        [ref, (as_of - dt.timedelta(days=d)).isoformat(), *answers]
        for ref, d, *answers in zip(refs, days_ago, *columns, strict=True)
    ]
