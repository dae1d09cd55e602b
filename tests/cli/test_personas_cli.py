"""`parcours personas …` and `parcours survey …` end to end through Typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from parcours.personas.catalog import builtin_catalog_dir
from parcours.settings import get_settings
from tests.cli.test_cli import invoke, run_json, text_of


def test_personas_list_shows_the_catalog_and_where_each_persona_comes_from(cli: Path) -> None:
    result = invoke("personas", "list")
    assert result.exit_code == 0, result.output
    output = text_of(result)
    assert "The Occasional / L'Occasionnel" in output
    assert output.count("(not Intrum)") >= 4
    listed = run_json("personas", "list")
    assert {p["key"] for p in listed} >= {"occasional", "struggling", "engaged"}


def test_personas_show_prints_the_card_with_portrait_levers_and_provenance(cli: Path) -> None:
    output = text_of(invoke("personas", "show", "occasional"))
    for expected in (
        "Dennis, 44",
        "Frustrations",
        "channels to avoid: letter",
        "answer within: 24 h",
    ):
        assert expected in output
    assert "Provenance: intrum (Intrum-sourced)" in output
    unknown = invoke("personas", "show", "dennis")
    assert unknown.exit_code == 2
    assert "no persona 'dennis'" in text_of(unknown) and "occasional" in text_of(unknown)


def test_a_bad_operator_persona_file_is_refused_naming_file_and_key(
    cli: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = cli / "personas"
    operator.mkdir()
    data = yaml.safe_load((builtin_catalog_dir() / "engaged.yaml").read_text(encoding="utf-8"))
    data["key"] = "student"
    data["portrait"]["age"] = "young"
    (operator / "student.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setenv("PARCOURS_PERSONAS_DIR", str(operator))
    get_settings.cache_clear()
    result = invoke("personas", "list")
    assert result.exit_code == 2
    assert "student.yaml: portrait.age" in text_of(result)


def test_survey_show_prints_the_questions_in_the_chosen_language(cli: Path) -> None:
    output = text_of(invoke("survey", "show", "--language", "nl"))
    assert "[late_reason]" in output and "[plan_interest]" in output
    assert "u " in output  # the Dutch text addresses the debtor formally
    assert invoke("survey", "show", "--language", "de").exit_code == 2


def test_generate_import_survey_classify_explain_object_evaluate(cli_db: Path) -> None:
    assert invoke("init").exit_code == 0
    generated = invoke("generate", "--debtors", "300", "--seed", "4", "--survey-share", "0.3")
    assert generated.exit_code == 0, generated.output
    for kind in ("debtors", "invoices", "payments"):
        assert invoke("import", kind, f"portfolio/{kind}.csv", "-c", "acme").exit_code == 0

    before = invoke("personas", "explain", "D0000001")
    assert before.exit_code == 2 and "personas classify" in text_of(before)

    survey = run_json("survey", "import", "portfolio/survey_answers.csv", "-c", "acme")
    assert survey["inserted"] > 50 and survey["rejected"] == 0

    classified = run_json("personas", "classify")
    assert classified["debtors"] == 300 and classified["trained"]
    assert classified["by_source"]["survey"] == survey["inserted"]
    assert sum(classified["by_persona"].values()) == 300

    explained = run_json("personas", "explain", "D0000001")
    assert explained["source"] in ("survey", "model", "default")
    assert explained["reasons"]
    assert "decided by" in text_of(invoke("personas", "explain", "D0000001"))

    assert "objection recorded" in text_of(invoke("personas", "object", "D0000002"))
    objected = run_json("personas", "explain", "D0000002")
    assert objected["persona"] is None and objected["profiling_objection_at"]
    assert invoke("personas", "assign", "D0000002", "engaged").exit_code == 2

    candidates = run_json("personas", "candidates", "--limit", "3")
    assert candidates["total"] == classified["survey_candidates"]
    confidences = [c["confidence"] for c in candidates["candidates"]]
    assert confidences == sorted(confidences) and all(c < 0.5 for c in confidences)
    assert "catalog OK: 5 personas" in text_of(invoke("personas", "validate"))

    report = run_json("personas", "evaluate", "--truth", "portfolio/ground_truth.csv")
    assert report["mode"] == "truth"
    assert 0 <= report["model"]["macro_f1"] <= 1
    assert len(report["model"]["confusion"]["rows_truth_columns_predicted"]) == 5
    holdout = run_json("personas", "evaluate")
    assert holdout["mode"] == "survey-holdout"


def test_survey_import_names_bad_rows_and_exits_2(cli_db: Path) -> None:
    assert invoke("init").exit_code == 0
    (cli_db / "d.csv").write_text("debtor_ref,name\nD1,Alice\n", encoding="utf-8")
    assert invoke("import", "debtors", "d.csv", "-c", "acme").exit_code == 0
    (cli_db / "s.csv").write_text(
        "debtor_ref,late_reason,pay_in_14_days,preferred_channel,payment_method,plan_interest\n"
        "D1,forgot,yes_easily,email,banking_app,no\n"
        "D9,forgot,yes_easily,email,banking_app,no\n",
        encoding="utf-8",
    )
    result = invoke("survey", "import", "s.csv", "-c", "acme", "--json")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["inserted"] == 1
    assert report["errors"] == [
        {"line": 3, "field": "debtor_ref", "reason": "no debtor 'D9' for this creditor"}
    ]
    unknown_column = invoke("survey", "import", "d.csv", "-c", "acme")
    assert unknown_column.exit_code == 2 and "unknown column(s) name" in text_of(unknown_column)
