"""`parcours personas …` and `parcours survey …`: the catalog, classification, explanation."""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from parcours.cli import (
    CreditorOption,
    ErrorsOption,
    FileArgument,
    ImportCreditor,
    JsonOption,
    StrictOption,
    _audit,
    _commit_import,
    _creditor,
    _debtor,
    _fail,
    _now,
    _print_json,
    _show_import,
    _unit_of_work,
    err,
    log,
    out,
)
from parcours.domain.persona import Persona
from parcours.personas.catalog import Catalog, CatalogError, load_catalog
from parcours.settings import Settings, get_settings

personas_app = typer.Typer(no_args_is_help=True, help="The persona catalog and classification.")
survey_app = typer.Typer(no_args_is_help=True, help="The persona survey.")


def _catalog(settings: Settings, directory: Path | None = None) -> Catalog:
    try:
        return load_catalog(directory or settings.personas_dir)
    except CatalogError as exc:
        _fail("the persona catalog is invalid:\n  " + "\n  ".join(exc.problems))


def _today(settings: Settings) -> Any:
    return _now().astimezone(zoneinfo.ZoneInfo(settings.default_timezone)).date()


# -- catalog -------------------------------------------------------------------------------


@personas_app.command("list")
def personas_list(as_json: JsonOption = False) -> None:
    """The personas of the catalog, one line each."""
    catalog = _catalog(get_settings())
    if as_json:
        _print_json([p.model_dump(mode="json") for p in catalog.personas.values()])
        return
    table = Table("key", "name (en / fr / nl)", "source", "tone", "channels", "answer", "pre-due")
    for p in catalog.personas.values():
        table.add_row(
            p.key,
            f"{p.names.en} / {p.names.fr} / {p.names.nl}",
            "Intrum" if p.provenance.intrum_sourced else f"{p.provenance.source} (not Intrum)",
            p.tone.value,
            " > ".join(c.value for c in p.preferred_channels),
            f"{p.answer_within_hours} h",
            "yes" if p.reminder_before_due else "no",
        )
    out.print(table)


def _card(p: Persona) -> None:
    def section(title: str, items: tuple[str, ...] | list[str]) -> None:
        out.print(f"\n{title}")
        for item in items:
            out.print(f"  • {item}")

    out.print(f"{p.names.en} — {p.names.fr} — {p.names.nl}  [{p.key}]")
    out.print(p.summary)
    portrait = p.portrait
    out.print(f"\nPortrait: {portrait.name}, {portrait.age}, {portrait.job}. {portrait.family}")
    for detail in portrait.details:
        out.print(f"  • {detail}")
    section("Environment", p.environment)
    section("Behaviour", p.behaviour)
    section("Goals", p.goals)
    section("Skills", p.skills)
    out.print(f"\nFinancial situation: {p.financial_situation}")
    out.print(f"Attitude to debt: {p.attitude_to_debt} (can pay: {p.can_pay})")
    section("Needs", p.needs)
    section("Frustrations", p.frustrations)
    out.print("\nJourney levers")
    out.print(f"  channels, preferred first: {', '.join(c.value for c in p.preferred_channels)}")
    out.print(f"  channels to avoid: {', '.join(c.value for c in p.avoid_channels) or 'none'}")
    out.print(f"  tone: {p.tone.value} — {p.tone_notes}")
    out.print(f"  answer within: {p.answer_within_hours} h")
    out.print(f"  reminder before the due date helps: {'yes' if p.reminder_before_due else 'no'}")
    out.print(f"  payment actions: {', '.join(a.value for a in p.payment_actions)}")
    out.print(f"  expected share of a portfolio: {p.expected_share:.0%}")
    source = p.provenance
    out.print(
        f"\nProvenance: {source.source}"
        f" ({'Intrum-sourced' if source.intrum_sourced else 'not Intrum-sourced'})"
    )
    section("References", source.references)
    if source.inferred:
        section("Inferred by parcours (not from the sources)", source.inferred)


@personas_app.command("show")
def personas_show(
    key: Annotated[str, typer.Argument(help="Persona key, e.g. occasional.")],
    as_json: JsonOption = False,
) -> None:
    """One persona as a readable card."""
    catalog = _catalog(get_settings())
    if key not in catalog:
        _fail(f"no persona {key!r} (known: {', '.join(catalog.keys)})")
    if as_json:
        _print_json(catalog[key].model_dump(mode="json"))
    else:
        _card(catalog[key])


@personas_app.command("validate")
def personas_validate(
    directory: Annotated[
        Path | None, typer.Argument(help="Operator personas directory (default: settings).")
    ] = None,
) -> None:
    """Check the catalog files, the survey and what the database still refers to."""
    from parcours.runtime.personas import check_catalog

    settings = get_settings()
    catalog = _catalog(settings, directory)
    with _unit_of_work() as uow:
        try:
            check_catalog(uow.connection(), catalog, settings.default_persona)
        except CatalogError as exc:
            _fail("the catalog breaks references:\n  " + "\n  ".join(exc.problems))
    out.print(
        f"catalog OK: {len(catalog.keys)} personas ({', '.join(catalog.keys)}), survey "
        f"{catalog.survey.version} with {len(catalog.survey.questions)} questions"
    )


# -- classification --------------------------------------------------------------------------


@personas_app.command("classify")
def personas_classify(
    creditor: CreditorOption = None,
    retrain: Annotated[
        bool, typer.Option(help="Train a new model first when survey answers are newer.")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Assign every debtor a persona (survey > model > rules), storing what changed."""
    from parcours.runtime.personas import STAGES, ClassifyPolicy, classify_portfolio

    settings = get_settings()
    catalog = _catalog(settings)
    now = _now()
    policy = ClassifyPolicy(
        today=_today(settings),
        now=now,
        zone=settings.default_timezone,
        default_persona=settings.default_persona,
        min_confidence=settings.persona_min_confidence,
        min_labels=settings.persona_min_labels,
        retrain=retrain,
    )
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        show = not as_json and err.is_terminal
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not show,
        ) as bar:
            task = bar.add_task("classifying", total=len(STAGES))

            def stage(name: str) -> None:
                bar.update(task, completed=STAGES.index(name), description=name)

            try:
                result = classify_portfolio(
                    uow.connection(), owner, catalog, policy, progress=stage
                )
            except CatalogError as exc:
                _fail("\n  ".join(exc.problems))
            bar.update(task, completed=len(STAGES))
        _audit(
            uow,
            now,
            "personas.classify",
            owner,
            f"model:{result.model_version or 'rules'}",
            {k: v for k, v in result.as_dict().items() if k != "timings"},
        )
        uow.commit()
    log.info("personas.classified", debtors=result.debtors, changed=result.changed)
    if as_json:
        _print_json(result.as_dict())
        return
    how = f"model {result.model_version}" if result.model_version else "the cold-start rules"
    out.print(
        f"{result.debtors:,} debtors classified by {how}"
        f"{' (trained now)' if result.trained else ''}; {result.changed:,} assignments changed"
    )
    table = Table("persona", "debtors", "share")
    total = max(result.debtors, 1)
    for persona, count in result.by_persona.most_common():
        table.add_row(persona, f"{count:,}", f"{count / total:.1%}")
    out.print(table)
    out.print(
        "by source: "
        + ", ".join(f"{source} {count:,}" for source, count in result.by_source.most_common())
    )
    out.print(f"survey candidates (low confidence): {result.survey_candidates:,}")


@personas_app.command("train")
def personas_train(creditor: CreditorOption = None) -> None:
    """Train a model on the survey-labelled debtors now."""
    from parcours.runtime.personas import compute_features, train_and_store

    settings = get_settings()
    catalog = _catalog(settings)
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        features = compute_features(
            uow.connection(), owner.id, _today(settings), settings.default_timezone
        )
        model = train_and_store(
            uow.connection(), owner.id, catalog, features, _now(), settings.persona_min_labels
        )
        if model is None:
            _fail(
                f"too few survey answers to train: need {settings.persona_min_labels} "
                "labelled debtors of two personas or more (import them with "
                "`parcours survey import`)"
            )
        uow.commit()
    out.print(f"trained {model.version} on {model.labelled:,} survey-labelled debtors")


@personas_app.command("evaluate")
def personas_evaluate(
    creditor: CreditorOption = None,
    truth: Annotated[
        Path | None,
        typer.Option(help="CSV with debtor_ref and (latent_)persona to measure against."),
    ] = None,
    holdout: Annotated[
        float, typer.Option(min=0.05, max=0.9, help="Holdout share of the labelled debtors.")
    ] = 0.25,
    seed: Annotated[int, typer.Option(help="Seed of the train/holdout split.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Train on a labelled share and report accuracy, macro-F1, confusion and calibration."""
    from parcours.personas.evaluation import evaluate, read_truth
    from parcours.runtime.personas import compute_features, survey_labels

    settings = get_settings()
    catalog = _catalog(settings)
    try:
        truth_map = read_truth(truth) if truth is not None else None
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        features = compute_features(
            uow.connection(), owner.id, _today(settings), settings.default_timezone
        )
        labels = survey_labels(uow.connection(), owner.id, catalog, features)
    try:
        report = evaluate(
            features.values,
            features.refs,
            labels.rows,
            labels.personas,
            labels.log_probs,
            catalog,
            truth=truth_map,
            holdout_share=holdout,
            min_confidence=settings.persona_min_confidence,
            seed=seed,
        )
    except ValueError as exc:
        _fail(str(exc))
    if as_json:
        _print_json(report)
        return
    _print_evaluation(report)


def _print_evaluation(report: dict[str, Any]) -> None:
    out.print(f"{report['how']}.")
    if "survey_vs_truth" in report:
        out.print(f"survey labels vs truth: accuracy {report['survey_vs_truth']['accuracy']:.3f}")
    for name in ("model", "rules"):
        part = report[name]
        title = "model" if name == "model" else "cold-start rules (for comparison)"
        out.print(
            f"\n{title}: accuracy {part['accuracy']:.3f}, macro-F1 {part['macro_f1']:.3f}, "
            f"calibration error {part['calibration']['expected_calibration_error']:.3f}"
        )
        if name == "rules":
            continue
        table = Table("persona", "precision", "recall", "F1", "support")
        for persona, m in part["per_persona"].items():
            table.add_row(
                persona, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}",
                f"{m['support']:,}",
            )  # fmt: skip
        out.print(table)
        labels = part["confusion"]["labels"]
        confusion = Table("truth \\ predicted", *labels, title="confusion matrix")
        for label, row in zip(
            labels, part["confusion"]["rows_truth_columns_predicted"], strict=True
        ):
            confusion.add_row(label, *(f"{v:,}" for v in row))
        out.print(confusion)
        calibration = Table(
            "confidence", "debtors", "mean confidence", "accuracy", title="calibration"
        )
        for b in part["calibration"]["bins"]:
            calibration.add_row(
                b["bin"], f"{b['count']:,}", f"{b['mean_confidence']:.3f}", f"{b['accuracy']:.3f}"
            )
        out.print(calibration)
        below = part["below_confidence_threshold"]
        out.print(
            f"below the {below['threshold']:.2f} confidence threshold (default persona, survey "
            f"candidate): {below['share']:.1%}; accuracy above it: {below['accuracy_above']:.3f}"
        )


@personas_app.command("candidates")
def personas_candidates(
    creditor: CreditorOption = None,
    limit: Annotated[int, typer.Option(min=1, help="How many to list.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Debtors the classifier was not sure about: invite them to the survey first."""
    from parcours.store.personas import PersonaStore

    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        total, rows = PersonaStore(uow.connection(), owner.id).survey_candidates(limit)
    if as_json:
        _print_json(
            {"total": total, "candidates": [{"debtor_ref": r, "confidence": c} for r, c in rows]}
        )
        return
    out.print(f"{total:,} survey candidates (default persona until they answer)")
    for ref, confidence in rows:
        out.print(f"  {ref}  confidence {confidence:.0%}")


# -- one debtor ------------------------------------------------------------------------------

DebtorRef = Annotated[str, typer.Argument(help="The creditor's debtor reference.")]


@personas_app.command("explain")
def personas_explain(
    debtor_ref: DebtorRef, creditor: CreditorOption = None, as_json: JsonOption = False
) -> None:
    """Why a debtor has its persona (the same explanation the debtor page will show)."""
    from parcours.runtime.personas import explain

    catalog = _catalog(get_settings())
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        debtor = _debtor(uow, owner, debtor_ref)
        explanation = explain(uow.connection(), owner.id, debtor.id, debtor_ref, catalog)
    if explanation is None:
        _fail(f"{debtor_ref} has no persona yet: run `parcours personas classify`")
    if as_json:
        _print_json(explanation.as_dict())
        return
    persona = (
        f"{explanation.persona_name} ({explanation.persona})"
        if explanation.persona
        else "no persona"
    )
    version = f", model {explanation.model_version}" if explanation.model_version else ""
    out.print(
        f"{debtor_ref}: {persona} — decided by {explanation.source}{version}, confidence "
        f"{explanation.confidence:.0%}, on {explanation.assigned_at:%Y-%m-%d %H:%M} UTC"
    )
    for reason in explanation.reasons:
        out.print(f"  • {reason}")
    if explanation.objection_at:
        out.print(f"objected to profiling on {explanation.objection_at:%Y-%m-%d}")
    if len(explanation.history) > 1:
        out.print("history:")
        for at, p, source in explanation.history:
            out.print(f"  {at:%Y-%m-%d %H:%M}  {p or '(none)'}  ({source})")


@personas_app.command("object")
def personas_object(
    debtor_ref: DebtorRef,
    creditor: CreditorOption = None,
    withdraw: Annotated[bool, typer.Option(help="The debtor withdraws the objection.")] = False,
) -> None:
    """Record a debtor's objection to profiling (GDPR art. 21): default journey from now on."""
    from parcours.runtime.personas import record_objection

    now = _now()
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        debtor = _debtor(uow, owner, debtor_ref)
        changed = record_objection(uow.connection(), owner.id, debtor.id, now, not withdraw)
        if changed:
            action = "personas.objection_withdrawn" if withdraw else "personas.objection"
            _audit(uow, now, action, owner, f"debtor:{debtor.id}")
            uow.commit()
    if not changed:
        out.print(f"{debtor_ref}: nothing to change")
    elif withdraw:
        out.print(f"{debtor_ref}: objection withdrawn; the next classification profiles again")
    else:
        out.print(f"{debtor_ref}: objection recorded on {now:%Y-%m-%d}; no persona from now on")


@personas_app.command("assign")
def personas_assign(
    debtor_ref: DebtorRef,
    persona: Annotated[str, typer.Argument(help="Persona key.")],
    creditor: CreditorOption = None,
    note: Annotated[str, typer.Option(help="Why (kept as the reason).")] = "set by an operator",
) -> None:
    """Set a debtor's persona by hand; it stays until changed (objection still wins)."""
    from parcours.runtime.personas import assign_by_operator

    catalog = _catalog(get_settings())
    if persona not in catalog:
        _fail(f"no persona {persona!r} (known: {', '.join(catalog.keys)})")
    now = _now()
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        debtor = _debtor(uow, owner, debtor_ref)
        if debtor.profiling_objection:
            _fail(f"{debtor_ref} objected to profiling: no persona can be set")
        assign_by_operator(uow.connection(), owner.id, debtor.id, persona, now, note)
        _audit(uow, now, "personas.assign", owner, f"debtor:{debtor.id}", {"persona": persona})
        uow.commit()
    out.print(f"{debtor_ref}: persona set to {persona}")


# -- survey ----------------------------------------------------------------------------------


@survey_app.command("show")
def survey_show(
    language: Annotated[str, typer.Option(help="fr, nl or en.")] = "en",
) -> None:
    """The survey's questions and options in one language."""
    if language not in ("fr", "nl", "en"):
        _fail("--language must be fr, nl or en")
    survey = _catalog(get_settings()).survey
    out.print(f"{survey.title.get(language)} ({survey.version})")
    out.print(survey.intro.get(language))
    for number, question in enumerate(survey.questions, start=1):
        out.print(f"\n{number}. {question.text.get(language)}  [{question.key}]")
        for option in question.options:
            out.print(f"   - {option.text.get(language)}  [{option.key}]")


@survey_app.command("import")
def survey_import(
    file: FileArgument,
    creditor: ImportCreditor,
    strict: StrictOption = False,
    as_json: JsonOption = False,
    errors_file: ErrorsOption = None,
) -> None:
    """Import survey answers (debtor_ref, answered_at, one column per question)."""
    from parcours.runtime.personas import import_survey_answers

    settings = get_settings()
    catalog = _catalog(settings)
    now = _now()
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        report = import_survey_answers(
            uow.connection(),
            owner,
            file,
            catalog,
            now,
            zoneinfo.ZoneInfo(settings.default_timezone),
            strict=strict,
        )
        _commit_import(uow, now, "survey.import", owner, file, report)
    _show_import(report, as_json, errors_file)
