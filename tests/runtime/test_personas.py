"""Persona runs on SQLite and PostgreSQL: survey import, cold start, training, override by
the survey, objection, operator decisions, history, explanation and tenant isolation."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import zoneinfo
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import Engine, func, select

from parcours.domain.model import Creditor
from parcours.ingest import ImportKind, ImportReport
from parcours.personas.catalog import Catalog, CatalogError, load_catalog
from parcours.personas.survey import score_answers
from parcours.runtime.personas import (
    ClassifyPolicy,
    ClassifyResult,
    assign_by_operator,
    check_catalog,
    classify_portfolio,
    compute_features,
    explain,
    import_survey_answers,
    record_objection,
    survey_labels,
)
from parcours.sim.portfolio import generate_portfolio
from parcours.store.schema import DebtorPersonaRow, PersonaAssignmentRow, SurveyResponseRow
from parcours.store.uow import UnitOfWork
from tests.conftest import NOW
from tests.ingest.test_import import run_import

AS_OF = dt.date(2026, 11, 30)
ZONE = zoneinfo.ZoneInfo("Europe/Brussels")
SURVEY_COLUMNS = (
    "debtor_ref,answered_at,late_reason,pay_in_14_days,preferred_channel,payment_method,"
    "reminder_before_due,other_arrears,life_event,money_confidence,answer_time,plan_interest"
)
STRUGGLING = (
    "short_of_money,no,letter,counter_or_cash,yes,two_or_more,income_loss,not_very,few_days,yes"
)


@pytest.fixture(scope="module")
def portfolio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("portfolio")
    generate_portfolio(out, debtors=400, seed=3, as_of=AS_OF, survey_share=0.25)
    return out


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog()


def load(engine: Engine, portfolio: Path, creditor: str = "acme") -> None:
    for kind in (ImportKind.DEBTORS, ImportKind.INVOICES, ImportKind.PAYMENTS):
        report = run_import(engine, kind, portfolio / f"{kind.value}.csv", creditor=creditor)
        assert report.stored and not report.errors


def owner(uow: UnitOfWork, name: str = "acme") -> Creditor:
    creditor = uow.creditors.by_name(name)
    assert creditor is not None
    return creditor


def policy(now: dt.datetime = NOW, **changes: object) -> ClassifyPolicy:
    base = ClassifyPolicy(
        today=AS_OF,
        now=now,
        zone="Europe/Brussels",
        default_persona="engaged",
        min_confidence=0.5,
        min_labels=30,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def classify(
    engine: Engine, catalog: Catalog, creditor: str = "acme", **changes: object
) -> ClassifyResult:
    with UnitOfWork(engine) as uow:
        result = classify_portfolio(
            uow.connection(), owner(uow, creditor), catalog, policy(**changes)
        )
        uow.commit()
    return result


def import_answers(
    engine: Engine, catalog: Catalog, path: Path, *, strict: bool = False
) -> ImportReport:
    with UnitOfWork(engine) as uow:
        report = import_survey_answers(
            uow.connection(), owner(uow), path, catalog, NOW, ZONE, strict=strict
        )
        if report.file_error is None and not (strict and report.errors):
            uow.commit()
    return report


def current(engine: Engine) -> dict[str, tuple[str | None, str]]:
    """debtor ref → (persona, source) in force."""
    from parcours.store.schema import DebtorRow

    with engine.connect() as connection:
        rows = connection.execute(
            select(DebtorRow.ref, DebtorPersonaRow.persona, DebtorPersonaRow.source).join(
                DebtorRow,
                (DebtorRow.id == DebtorPersonaRow.debtor_id)
                & (DebtorRow.creditor_id == DebtorPersonaRow.creditor_id),
            )
        )
        return {ref: (persona, source) for ref, persona, source in rows}


def count(engine: Engine, model: type) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(model)).scalar_one())


def debtor_id(engine: Engine, ref: str) -> UUID:
    with UnitOfWork(engine) as uow:
        debtor = uow.debtors.get(owner(uow), ref)
        assert debtor is not None
        return debtor.id


def survey_file(tmp_path: Path, rows: list[str], name: str = "answers.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([SURVEY_COLUMNS, *rows]) + "\n", encoding="utf-8")
    return path


def test_cold_start_classifies_everyone_by_the_catalog_rules(
    engine: Engine, portfolio_dir: Path, catalog: Catalog
) -> None:
    load(engine, portfolio_dir)
    result = classify(engine, catalog)
    assert result.debtors == 400 and result.changed == 400
    assert result.model_version is None and not result.trained
    assert set(result.by_source) <= {"rules", "default"}
    assert sum(result.by_persona.values()) == 400
    assert result.survey_candidates == result.by_source["default"]
    assigned = current(engine)
    assert len(assigned) == 400
    assert {persona for persona, _ in assigned.values()} <= set(catalog.keys)
    assert count(engine, PersonaAssignmentRow) == 400


def test_a_second_run_on_unchanged_data_writes_no_history(
    engine: Engine, portfolio_dir: Path, catalog: Catalog
) -> None:
    load(engine, portfolio_dir)
    classify(engine, catalog)
    before = current(engine)
    again = classify(engine, catalog, now=NOW + dt.timedelta(hours=1))
    assert again.changed == 0
    assert current(engine) == before
    assert count(engine, PersonaAssignmentRow) == 400


def test_survey_answers_train_a_model_and_override_it_for_those_who_answered(
    engine: Engine, portfolio_dir: Path, catalog: Catalog
) -> None:
    load(engine, portfolio_dir)
    report = import_answers(engine, catalog, portfolio_dir / "survey_answers.csv")
    assert report.inserted > 60 and not report.errors
    result = classify(engine, catalog)
    assert result.trained and result.model_version is not None
    assert result.by_source["survey"] == report.inserted
    assert result.by_source["model"] > 0
    assigned = current(engine)
    with (portfolio_dir / "survey_answers.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            answers = {k: v for k, v in row.items() if k not in ("debtor_ref", "answered_at") and v}
            expected = score_answers(catalog, answers).persona
            assert assigned[row["debtor_ref"]] == (expected, "survey")
    # The model is not retrained while no new answers arrive.
    assert not classify(engine, catalog, now=NOW + dt.timedelta(hours=1)).trained


def test_new_survey_answers_reclassify_on_the_next_run_and_keep_the_history(
    engine: Engine, portfolio_dir: Path, catalog: Catalog, tmp_path: Path
) -> None:
    load(engine, portfolio_dir)
    classify(engine, catalog)
    target = next(ref for ref, (p, _) in current(engine).items() if p != "struggling")
    report = import_answers(
        engine, catalog, survey_file(tmp_path, [f"{target},2026-11-20,{STRUGGLING}"])
    )
    assert report.inserted == 1
    classify(engine, catalog, now=NOW + dt.timedelta(days=1))
    assert current(engine)[target] == ("struggling", "survey")
    with UnitOfWork(engine) as uow:
        explanation = explain(
            uow.connection(), owner(uow).id, debtor_id(engine, target), target, catalog
        )
    assert explanation is not None
    newest, oldest = (source for _, _, source in explanation.history)
    assert newest == "survey" and oldest in ("rules", "default")
    assert any("survey:" in reason for reason in explanation.reasons)


def test_survey_import_keeps_valid_rows_names_bad_ones_and_is_idempotent(
    engine: Engine, portfolio_dir: Path, catalog: Catalog, tmp_path: Path
) -> None:
    load(engine, portfolio_dir)
    path = survey_file(
        tmp_path,
        [
            f"D0000001,2026-11-20,{STRUGGLING}",
            f"NOBODY,2026-11-20,{STRUGGLING}",
            f"D0000002,2026-11-20,{STRUGGLING.replace('letter', 'pigeon')}",
            "D0000003,2026-11-20,forgot,,,,,,,,,",
            f"D0000004,2026-11-20,{STRUGGLING}",
        ],
    )
    report = import_answers(engine, catalog, path)
    assert report.inserted == 2
    errors = {(e.line, e.field) for e in report.errors}
    assert errors == {(3, "debtor_ref"), (4, "preferred_channel"), (5, "(answers)")}
    assert "pigeon" in next(e.reason for e in report.errors if e.line == 4)
    assert count(engine, SurveyResponseRow) == 2
    again = import_answers(engine, catalog, path)
    assert (again.inserted, again.unchanged) == (0, 2)
    assert count(engine, SurveyResponseRow) == 2


def test_strict_survey_import_stores_nothing_when_a_row_fails(
    engine: Engine, portfolio_dir: Path, catalog: Catalog, tmp_path: Path
) -> None:
    load(engine, portfolio_dir)
    path = survey_file(
        tmp_path, [f"D0000001,2026-11-20,{STRUGGLING}", f"NOBODY,2026-11-20,{STRUGGLING}"]
    )
    report = import_answers(engine, catalog, path, strict=True)
    assert report.inserted == 0 and len(report.errors) == 1
    assert count(engine, SurveyResponseRow) == 0


def test_an_objection_removes_the_persona_at_once_and_keeps_answers_out_of_training(
    engine: Engine, portfolio_dir: Path, catalog: Catalog, tmp_path: Path
) -> None:
    load(engine, portfolio_dir)
    import_answers(engine, catalog, survey_file(tmp_path, [f"D0000001,2026-11-20,{STRUGGLING}"]))
    classify(engine, catalog)
    objector = debtor_id(engine, "D0000001")
    with UnitOfWork(engine) as uow:
        assert record_objection(uow.connection(), owner(uow).id, objector, NOW, True)
        assert not record_objection(uow.connection(), owner(uow).id, objector, NOW, True)
        uow.commit()
    assert current(engine)["D0000001"] == (None, "objection")
    with UnitOfWork(engine) as uow:
        connection = uow.connection()
        features = compute_features(connection, owner(uow).id, AS_OF, "Europe/Brussels")
        assert survey_labels(connection, owner(uow).id, catalog, features).personas == []
    result = classify(engine, catalog, now=NOW + dt.timedelta(hours=1))
    assert result.by_source["objection"] == 1
    assert current(engine)["D0000001"] == (None, "objection")
    with UnitOfWork(engine) as uow:
        explanation = explain(uow.connection(), owner(uow).id, objector, "D0000001", catalog)
        assert explanation is not None and explanation.objection_at is not None
        assert "objected to profiling" in explanation.reasons[0]
        # Withdrawn: the next run profiles the debtor again (here from the survey).
        assert record_objection(uow.connection(), owner(uow).id, objector, NOW, False)
        uow.commit()
    classify(engine, catalog, now=NOW + dt.timedelta(hours=2))
    assert current(engine)["D0000001"] == ("struggling", "survey")


def test_an_operator_decision_survives_classification_runs(
    engine: Engine, portfolio_dir: Path, catalog: Catalog
) -> None:
    load(engine, portfolio_dir)
    classify(engine, catalog)
    with UnitOfWork(engine) as uow:
        assign_by_operator(
            uow.connection(), owner(uow).id, debtor_id(engine, "D0000005"), "problem_payer", NOW,
            "known to the legal team",
        )  # fmt: skip
        uow.commit()
    result = classify(engine, catalog, now=NOW + dt.timedelta(hours=1))
    assert result.by_source["operator"] == 1 and result.changed == 0
    assert current(engine)["D0000005"] == ("problem_payer", "operator")


def test_explanations_give_reasons_in_words(
    engine: Engine, portfolio_dir: Path, catalog: Catalog
) -> None:
    load(engine, portfolio_dir)
    import_answers(engine, catalog, portfolio_dir / "survey_answers.csv")
    classify(engine, catalog)
    modelled = next(ref for ref, (_, source) in current(engine).items() if source == "model")
    with UnitOfWork(engine) as uow:
        explanation = explain(
            uow.connection(), owner(uow).id, debtor_id(engine, modelled), modelled, catalog
        )
    assert explanation is not None
    assert explanation.source == "model" and explanation.model_version
    assert explanation.persona_name == catalog[explanation.persona or ""].names.en
    assert 1 <= len(explanation.reasons) <= 3
    assert all("(weight +" in reason and ", typical " in reason for reason in explanation.reasons)


def test_a_catalog_that_drops_a_persona_still_in_use_is_refused(
    engine: Engine, portfolio_dir: Path, catalog: Catalog
) -> None:
    load(engine, portfolio_dir)
    classify(engine, catalog)
    used = next(p for p, _ in current(engine).values() if p and p != "engaged")
    smaller = Catalog({k: v for k, v in catalog.personas.items() if k != used}, catalog.survey)
    with UnitOfWork(engine) as uow:
        with pytest.raises(CatalogError, match=f"current assignments.*{used}"):
            check_catalog(uow.connection(), smaller, "engaged")
        with pytest.raises(CatalogError, match="default_persona"):
            check_catalog(uow.connection(), catalog, "gone")
        check_catalog(uow.connection(), catalog, "engaged")


def test_classification_stays_within_its_creditor(
    engine: Engine, portfolio_dir: Path, catalog: Catalog
) -> None:
    load(engine, portfolio_dir, creditor="acme")
    load(engine, portfolio_dir, creditor="other")
    result = classify(engine, catalog, creditor="acme")
    assert result.debtors == 400
    with engine.connect() as connection:
        creditors = connection.execute(select(DebtorPersonaRow.creditor_id).distinct()).all()
    assert len(creditors) == 1
    with UnitOfWork(engine) as uow:
        other = owner(uow, "other")
        theirs = uow.debtors.get(other, "D0000001")
        assert theirs is not None
        assert explain(uow.connection(), other.id, theirs.id, "D0000001", catalog) is None


def test_erased_debtors_are_not_profiled(
    engine: Engine, portfolio_dir: Path, catalog: Catalog
) -> None:
    load(engine, portfolio_dir)
    with UnitOfWork(engine) as uow:
        uow.debtors.erase(owner(uow), "D0000009", NOW)
        uow.commit()
    result = classify(engine, catalog)
    assert result.debtors == 399
    assert "D0000009" not in current(engine)


def test_export_shows_the_profiling_and_erasure_deletes_answers_and_current_persona(
    engine: Engine, portfolio_dir: Path, catalog: Catalog, tmp_path: Path
) -> None:
    load(engine, portfolio_dir)
    import_answers(engine, catalog, survey_file(tmp_path, [f"D0000001,2026-11-20,{STRUGGLING}"]))
    classify(engine, catalog)
    with UnitOfWork(engine) as uow:
        exported = uow.debtors.export(owner(uow), "D0000001")
    assert exported is not None
    assert [r["answers"]["late_reason"] for r in exported["survey_responses"]] == ["short_of_money"]
    assert [a["persona"] for a in exported["persona_assignments"]] == ["struggling"]
    with UnitOfWork(engine) as uow:
        uow.debtors.erase(owner(uow), "D0000001", NOW)
        uow.commit()
    assert count(engine, SurveyResponseRow) == 0
    assert "D0000001" not in current(engine)
    assert count(engine, PersonaAssignmentRow) == 400  # history kept: ids and keys only


def test_storing_in_batches_writes_every_change_once(
    engine: Engine,
    portfolio_dir: Path,
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import parcours.runtime.personas as run

    monkeypatch.setattr(run, "_FLUSH_ROWS", 7)
    load(engine, portfolio_dir)
    assert classify(engine, catalog).changed == 400
    import_answers(engine, catalog, portfolio_dir / "survey_answers.csv")
    second = classify(engine, catalog, now=NOW + dt.timedelta(hours=1))
    assert second.changed > 100  # the model replaces the rules for most debtors
    assert len(current(engine)) == 400
    assert count(engine, PersonaAssignmentRow) == 400 + second.changed


def test_engagement_counts_the_debtors_message_events_only(
    engine: Engine, portfolio_dir: Path
) -> None:
    from parcours.domain.events import Event, EventType
    from parcours.store.repositories import new_id

    load(engine, portfolio_dir)
    target = debtor_id(engine, "D0000002")
    with UnitOfWork(engine) as uow:
        creditor = owner(uow)
        for kind in (EventType.MESSAGE_OPENED, EventType.MESSAGE_CLICKED, EventType.CASE_OPENED):
            uow.events.append(
                Event(new_id(), creditor.id, kind, NOW, debtor_id=target), recorded_at=NOW
            )
        uow.commit()
        features = compute_features(uow.connection(), creditor.id, AS_OF, "Europe/Brussels")
    engagement = dict(zip(features.refs, features.column("engagement_events"), strict=True))
    assert engagement["D0000002"] == 2
    assert sum(engagement.values()) == 2
