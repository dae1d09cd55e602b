"""Reading persona-survey answers from a CSV file: one row per debtor, one column per
question; each bad row is reported with its line, field and reason, the rest is kept."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from parcours.ingest.csvfile import open_csv
from parcours.ingest.fields import FieldError, parse_timestamp
from parcours.ingest.report import FileRejected, ImportReport, RowError
from parcours.personas.catalog import Catalog
from parcours.personas.survey import MIN_ANSWERS, SurveyScore, score_answers

__all__ = ["ParsedResponse", "parse_answers_file"]


@dataclass(frozen=True, slots=True)
class ParsedResponse:
    line: int
    debtor_ref: str
    answered_at: dt.datetime
    answers: dict[str, str]
    score: SurveyScore


def parse_answers_file(
    path: Path,
    catalog: Catalog,
    known_refs: Iterable[str],
    now: dt.datetime,
    zone: zoneinfo.ZoneInfo,
    report: ImportReport,
) -> list[ParsedResponse]:
    """Read `debtor_ref, answered_at?, <question keys>…`; bad rows go to `report.errors`.

    An empty answer means the question was skipped. Raises `FileRejected` when the header
    is unusable (nothing is read then).
    """
    survey = catalog.survey
    questions = [q.key for q in survey.questions]
    csv_file = open_csv(path, ("debtor_ref", *questions))
    try:
        columns = csv_file.header.columns
        if "debtor_ref" not in columns:
            raise FileRejected(f"{path.name}: header has no debtor_ref column")
        unknown = [c for c in columns if c not in {"debtor_ref", "answered_at", *questions}]
        if unknown:
            raise FileRejected(
                f"{path.name}: unknown column(s) {', '.join(unknown)}; survey "
                f"{survey.version} asks: {', '.join(questions)}"
            )
        if not set(questions) & set(columns):
            raise FileRejected(f"{path.name}: no question column of survey {survey.version}")
        refs = set(known_refs)
        seen: dict[str, int] = {}
        parsed: list[ParsedResponse] = []
        for line, fields in csv_file.rows():
            report.rows += 1
            if len(fields) != len(columns):
                report.errors.append(
                    RowError(line, "(row)", f"has {len(fields)} fields, header has {len(columns)}")
                )
                continue
            row = {c: v.strip() for c, v in zip(columns, fields, strict=True)}
            response = _check_row(line, row, refs, seen, now, zone, catalog, report)
            if response is not None:
                parsed.append(response)
                seen[response.debtor_ref] = line
        return parsed
    finally:
        csv_file.close()


def _check_row(
    line: int,
    row: dict[str, str],
    refs: set[str],
    seen: dict[str, int],
    now: dt.datetime,
    zone: zoneinfo.ZoneInfo,
    catalog: Catalog,
    report: ImportReport,
) -> ParsedResponse | None:
    errors: list[RowError] = []
    ref = row["debtor_ref"]
    if not ref:
        errors.append(RowError(line, "debtor_ref", "missing"))
    elif ref not in refs:
        errors.append(RowError(line, "debtor_ref", f"no debtor {ref!r} for this creditor"))
    elif ref in seen:
        errors.append(RowError(line, "debtor_ref", f"repeats the answers of line {seen[ref]}"))
    answered_at = now
    if row.get("answered_at"):
        try:
            answered_at = parse_timestamp(row["answered_at"], zone)
        except FieldError as exc:
            errors.append(RowError(line, "answered_at", str(exc)))
        else:
            if answered_at > now:
                errors.append(RowError(line, "answered_at", "is in the future"))
    answers = {}
    invalid_option = False
    for question in catalog.survey.questions:
        value = row.get(question.key, "")
        if not value:
            continue
        if question.option(value) is None:
            valid = ", ".join(o.key for o in question.options)
            errors.append(RowError(line, question.key, f"{value!r} is not an option ({valid})"))
            invalid_option = True
        else:
            answers[question.key] = value
    if len(answers) < MIN_ANSWERS and not invalid_option:
        errors.append(
            RowError(
                line,
                "(answers)",
                f"{len(answers)} question(s) answered; at least {MIN_ANSWERS} are needed",
            )
        )
    if errors:
        report.errors.extend(errors)
        return None
    return ParsedResponse(line, ref, answered_at, answers, score_answers(catalog, answers))
