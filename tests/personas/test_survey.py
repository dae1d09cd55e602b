"""The persona survey: its content, scoring answers and importing answers from CSV."""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parcours.domain.persona import Dimension, Question
from parcours.ingest.report import FileRejected, ImportReport, RowError
from parcours.ingest.survey_answers import ParsedResponse, parse_answers_file
from parcours.personas.catalog import load_catalog
from parcours.personas.survey import MIN_ANSWERS, score_answers
from tests.conftest import NOW

CATALOG = load_catalog()
SURVEY = CATALOG.survey
QUESTIONS = SURVEY.questions
BRUSSELS = zoneinfo.ZoneInfo("Europe/Brussels")


def typical_answers(persona: str) -> dict[str, str]:
    """For every question, the option that gives `persona` the most evidence."""
    return {
        q.key: max(q.options, key=lambda o: o.evidence.get(persona, 0.0)).key for q in QUESTIONS
    }


@st.composite
def answer_sets(draw: st.DrawFn, questions: tuple[Question, ...] = QUESTIONS) -> dict[str, str]:
    """Any valid answers: a subset of the questions, one option each."""
    chosen = draw(st.lists(st.sampled_from(questions), unique_by=lambda q: q.key))
    return {q.key: draw(st.sampled_from(q.options)).key for q in chosen}


# -- the survey itself -----------------------------------------------------------------------


def test_the_survey_asks_about_ten_questions() -> None:
    assert 8 <= len(QUESTIONS) <= 12


def test_every_question_and_option_is_written_in_french_dutch_and_english() -> None:
    for question in QUESTIONS:
        for text in (question.text, *(o.text for o in question.options)):
            assert all(getattr(text, lang).strip() for lang in ("fr", "nl", "en")), question.key
        assert question.text.fr != question.text.en, question.key


def test_the_survey_covers_the_four_dimensions_of_the_seed() -> None:
    assert {q.dimension for q in QUESTIONS} == set(Dimension)


HEALTH_WORDS = {"health", "ill", "illness", "sick", "sickness", "disease", "medical", "disability"}


def test_no_question_or_option_asks_about_health() -> None:
    for question in QUESTIONS:
        keys = [question.key, *(o.key for o in question.options)]
        texts = [question.text.en, *(o.text.en for o in question.options)]
        for key in keys:
            assert not HEALTH_WORDS & set(key.split("_")), key
        for text in texts:
            words = set(text.lower().replace(",", " ").replace(".", " ").split())
            assert not HEALTH_WORDS & words, text


def test_every_evidence_key_is_a_catalog_persona() -> None:
    assert SURVEY.persona_keys() == set(CATALOG.keys)


# -- scoring ---------------------------------------------------------------------------------


@given(answer_sets())
def test_probabilities_sum_to_one_and_the_winner_is_the_most_probable(
    answers: dict[str, str],
) -> None:
    score = score_answers(CATALOG, answers)
    assert set(score.probabilities) == set(CATALOG.keys)
    assert math.fsum(score.probabilities.values()) == pytest.approx(1.0, abs=1e-12)
    assert all(0 <= p <= 1 for p in score.probabilities.values())
    assert score.confidence == max(score.probabilities.values())
    assert score.probabilities[score.persona] == score.confidence


@given(answer_sets())
def test_decisive_answers_are_at_most_three_given_answers_pushing_to_the_winner(
    answers: dict[str, str],
) -> None:
    score = score_answers(CATALOG, answers)
    given_codes = {f"{q}={o}" for q, o in answers.items()}
    assert len(score.decisive) <= 3
    weights = [reason.weight for reason in score.decisive]
    assert weights == sorted(weights, reverse=True)
    for reason in score.decisive:
        assert reason.weight > 0
        assert reason.code in given_codes
        assert reason.value == reason.code.partition("=")[2]


def test_no_answers_give_the_persona_with_the_largest_expected_share() -> None:
    score = score_answers(CATALOG, {})
    largest = max(CATALOG.keys, key=lambda k: CATALOG[k].expected_share)
    assert score.persona == largest
    assert score.decisive == ()
    total = sum(CATALOG[k].expected_share for k in CATALOG.keys)
    assert score.confidence == pytest.approx(CATALOG[largest].expected_share / total)


@pytest.mark.parametrize("persona", CATALOG.keys)
def test_a_typical_answer_set_is_scored_as_its_persona(persona: str) -> None:
    score = score_answers(CATALOG, typical_answers(persona))
    assert score.persona == persona
    assert score.confidence > 0.8
    assert len(score.decisive) == 3


def test_the_seeds_answers_point_to_the_occasional() -> None:
    """Forgot, pays easily, live chat, banking app, wants a reminder: the seed's Dennis."""
    answers = {
        "late_reason": "forgot",
        "pay_in_14_days": "yes_easily",
        "preferred_channel": "chat",
        "payment_method": "banking_app",
        "reminder_before_due": "yes",
    }
    score = score_answers(CATALOG, answers)
    assert score.persona == "occasional"
    assert score.confidence > 0.5


def test_an_unknown_question_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"^shoe_size: not a question of survey v1"):
        score_answers(CATALOG, {"late_reason": "forgot", "shoe_size": "44"})


def test_an_unknown_option_is_refused_naming_the_question_and_the_valid_options() -> None:
    with pytest.raises(ValueError, match=r"^late_reason: 'lazy' is not an option") as caught:
        score_answers(CATALOG, {"late_reason": "lazy"})
    assert "forgot" in str(caught.value)


def _dominant_answers() -> list[tuple[str, str, str]]:
    """(question, option, persona) where the option favours that persona over all others."""
    out = []
    for question in QUESTIONS:
        for option in question.options:
            for persona in CATALOG.keys:
                mine = option.evidence.get(persona, 0.0)
                others = [option.evidence.get(k, 0.0) for k in CATALOG.keys if k != persona]
                if mine > max(others):
                    out.append((question.key, option.key, persona))
    return out


DOMINANT = _dominant_answers()


def test_some_answers_favour_a_single_persona() -> None:
    assert {persona for _, _, persona in DOMINANT} == set(CATALOG.keys)


@given(st.data(), st.sampled_from(DOMINANT))
def test_an_answer_favouring_a_persona_never_lowers_its_probability(
    data: st.DataObject, added: tuple[str, str, str]
) -> None:
    question, option, persona = added
    others = tuple(q for q in QUESTIONS if q.key != question)
    before = data.draw(answer_sets(others))
    after = {**before, question: option}
    p_before = score_answers(CATALOG, before).probabilities[persona]
    p_after = score_answers(CATALOG, after).probabilities[persona]
    assert p_after > p_before or math.isclose(p_after, p_before, rel_tol=1e-12)


# -- importing answers -----------------------------------------------------------------------

HEADER = ["debtor_ref", "answered_at", *(q.key for q in QUESTIONS)]
KNOWN = {"D1", "D2", "D3", "D4"}


def answer_row(ref: str, answered_at: str = "", **answers: str) -> str:
    """A CSV row with the typical answers of the struggling payer, changed by `answers`."""
    chosen = {**typical_answers("struggling"), **answers}
    return ",".join([ref, answered_at, *(chosen[q.key] for q in QUESTIONS)])


def parse(tmp_path: Path, lines: list[str]) -> tuple[list[ParsedResponse], ImportReport]:
    path = tmp_path / "answers.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = ImportReport(kind="survey", file=str(path), creditor="x")
    parsed = parse_answers_file(path, CATALOG, KNOWN, NOW, BRUSSELS, report)
    return parsed, report


def test_valid_rows_are_parsed_and_scored(tmp_path: Path) -> None:
    header = ",".join(HEADER)
    parsed, report = parse(
        tmp_path,
        [header, answer_row("D1", "2026-11-20T10:00:00"), answer_row("D2", "2026-11-21")],
    )
    assert report.errors == []
    assert report.rows == 2
    assert [(r.line, r.debtor_ref) for r in parsed] == [(2, "D1"), (3, "D2")]
    # A time without an offset is local time in the creditor's zone (UTC+1 in November).
    assert parsed[0].answered_at == dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
    assert parsed[1].answered_at == dt.datetime(2026, 11, 20, 23, 0, tzinfo=dt.UTC)
    assert parsed[0].answers == typical_answers("struggling")
    assert parsed[0].score.persona == "struggling"


def test_a_missing_answered_at_means_now_and_empty_answers_are_skipped(tmp_path: Path) -> None:
    row = answer_row("D1").split(",")
    row[HEADER.index("plan_interest")] = ""
    parsed, report = parse(tmp_path, [",".join(HEADER), ",".join(row)])
    assert report.errors == []
    (response,) = parsed
    assert response.answered_at == NOW
    assert "plan_interest" not in response.answers
    assert len(response.answers) == len(QUESTIONS) - 1


def test_the_columns_may_come_in_any_order_without_answered_at(tmp_path: Path) -> None:
    questions = [q.key for q in QUESTIONS][::-1]
    typical = typical_answers("engaged")
    row = ",".join(["D3", *(typical[q] for q in questions)])
    parsed, report = parse(tmp_path, [",".join(["debtor_ref", *questions]), row])
    assert report.errors == []
    assert parsed[0].answers == typical
    assert parsed[0].score.persona == "engaged"


def test_an_unknown_debtor_is_rejected_with_its_line(tmp_path: Path) -> None:
    parsed, report = parse(tmp_path, [",".join(HEADER), answer_row("D1"), answer_row("X9")])
    assert [r.debtor_ref for r in parsed] == ["D1"]
    (error,) = report.errors
    assert (error.line, error.field) == (3, "debtor_ref")
    assert "X9" in error.reason


def test_an_invalid_option_is_rejected_naming_the_question_and_the_valid_options(
    tmp_path: Path,
) -> None:
    parsed, report = parse(tmp_path, [",".join(HEADER), answer_row("D1", late_reason="lazy")])
    assert parsed == []
    (error,) = report.errors
    assert (error.line, error.field) == (2, "late_reason")
    assert "'lazy'" in error.reason
    question = SURVEY.question("late_reason")
    assert question is not None
    for option in question.options:
        assert option.key in error.reason


def test_too_few_answers_are_rejected(tmp_path: Path) -> None:
    header = ",".join(["debtor_ref", *(q.key for q in QUESTIONS)])
    typical = typical_answers("occasional")
    few = [typical[q.key] if i < MIN_ANSWERS - 1 else "" for i, q in enumerate(QUESTIONS)]
    enough = [typical[q.key] if i < MIN_ANSWERS else "" for i, q in enumerate(QUESTIONS)]
    parsed, report = parse(tmp_path, [header, ",".join(["D1", *few]), ",".join(["D2", *enough])])
    assert [r.debtor_ref for r in parsed] == ["D2"]
    (error,) = report.errors
    assert (error.line, error.field) == (2, "(answers)")
    assert f"at least {MIN_ANSWERS}" in error.reason


def test_a_debtor_answering_twice_is_rejected_naming_the_first_line(tmp_path: Path) -> None:
    parsed, report = parse(
        tmp_path, [",".join(HEADER), answer_row("D1"), answer_row("D2"), answer_row("D1")]
    )
    assert [r.line for r in parsed] == [2, 3]
    (error,) = report.errors
    assert (error.line, error.field) == (4, "debtor_ref")
    assert "line 2" in error.reason


def test_answers_from_the_future_are_rejected(tmp_path: Path) -> None:
    tomorrow = (NOW + dt.timedelta(days=1)).date().isoformat()
    _, report = parse(tmp_path, [",".join(HEADER), answer_row("D1", tomorrow)])
    assert [(e.line, e.field, e.reason) for e in report.errors] == [
        (2, "answered_at", "is in the future")
    ]


def test_a_malformed_answered_at_is_rejected(tmp_path: Path) -> None:
    _, report = parse(tmp_path, [",".join(HEADER), answer_row("D1", "20/11/2026")])
    (error,) = report.errors
    assert (error.line, error.field) == (2, "answered_at")
    assert "20/11/2026" in error.reason


def test_a_row_with_the_wrong_number_of_fields_is_rejected(tmp_path: Path) -> None:
    _, report = parse(tmp_path, [",".join(HEADER), answer_row("D1") + ",extra"])
    assert [(e.line, e.field) for e in report.errors] == [(2, "(row)")]


def test_valid_rows_are_kept_when_others_fail(tmp_path: Path) -> None:
    lines = [
        ",".join(HEADER),
        answer_row("D1"),
        answer_row("nobody"),
        answer_row("D2", late_reason="lazy"),
        answer_row("D3", "not a date"),
        answer_row("D4"),
        answer_row("D1"),
    ]
    parsed, report = parse(tmp_path, lines)
    assert [(r.line, r.debtor_ref) for r in parsed] == [(2, "D1"), (6, "D4")]
    assert report.rows == 6
    assert sorted(report.errors) == [
        RowError(3, "debtor_ref", "no debtor 'nobody' for this creditor"),
        RowError(4, "late_reason", report.errors[1].reason),
        RowError(5, "answered_at", report.errors[2].reason),
        RowError(7, "debtor_ref", "repeats the answers of line 2"),
    ]
    assert report.rejected == 4


def test_an_unknown_column_rejects_the_file_naming_the_column(tmp_path: Path) -> None:
    with pytest.raises(FileRejected, match="unknown column") as caught:
        parse(tmp_path, [",".join([*HEADER, "health"]), answer_row("D1") + ",good"])
    assert "health" in str(caught.value)


def test_a_file_without_debtor_ref_is_rejected(tmp_path: Path) -> None:
    header = ",".join(["ref", *HEADER[1:]])
    with pytest.raises(FileRejected, match="debtor_ref"):
        parse(tmp_path, [header, answer_row("D1")])


def test_a_file_without_any_question_column_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(FileRejected, match="no question column"):
        parse(tmp_path, ["debtor_ref,answered_at", "D1,2026-11-20"])
