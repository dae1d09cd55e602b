"""The `parcours` command line: set-up, synthetic portfolios, imports and inspection."""

from __future__ import annotations

import datetime as dt
import json
import sys
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import structlog
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import Engine

from parcours.domain import AuditEntry, Creditor, Debtor, Event, EventType
from parcours.ingest import ImportKind, import_file
from parcours.ingest.importer import ImportOptions, report_allows_commit
from parcours.observability import configure_logging
from parcours.settings import Settings, ensure_secret_key, get_settings
from parcours.store.db import DatabaseUnavailable, connect, safe_url
from parcours.store.migrate import schema_is_current, upgrade
from parcours.store.repositories import new_id
from parcours.store.uow import UnitOfWork

app = typer.Typer(no_args_is_help=True, help="Persona-based debt collection journeys.")
import_app = typer.Typer(no_args_is_help=True, help="Import a portfolio CSV file (UTF-8).")
cases_app = typer.Typer(no_args_is_help=True, help="Look at cases.")
debtors_app = typer.Typer(no_args_is_help=True, help="A debtor's data: export and erasure.")
app.add_typer(import_app, name="import")
app.add_typer(cases_app, name="cases")
app.add_typer(debtors_app, name="debtors")

# Output shows file values and refs verbatim: no Rich markup in it.
out = Console(soft_wrap=True, markup=False)
err = Console(stderr=True)
log = structlog.get_logger("parcours.cli")

CreditorOption = Annotated[
    str | None,
    typer.Option("--creditor", "-c", help="Creditor name (may be omitted when there is one)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


@app.callback()
def _main() -> None:
    configure_logging(get_settings().log_level)


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _engine(settings: Settings, *, migrated: bool = True) -> Engine:
    try:
        engine = connect(settings.database_url)
    except DatabaseUnavailable as exc:
        _fail(str(exc))
    if migrated and not schema_is_current(engine):
        engine.dispose()
        _fail(
            f"the database at {safe_url(settings.database_url)} is not initialised or is "
            "older than this version: run `parcours init`"
        )
    return engine


@contextmanager
def _unit_of_work() -> Iterator[UnitOfWork]:
    engine = _engine(get_settings())
    try:
        with UnitOfWork(engine) as uow:
            yield uow
    finally:
        engine.dispose()


def _creditor(uow: UnitOfWork, name: str | None) -> Creditor:
    if name is not None:
        creditor = uow.creditors.by_name(name)
        if creditor is None:
            _fail(f"no creditor named {name!r}")
        return creditor
    creditors = uow.creditors.all()
    if len(creditors) == 1:
        return creditors[0]
    if not creditors:
        _fail("no creditor yet: import a portfolio with `parcours import ... --creditor NAME`")
    _fail("several creditors: choose one with --creditor " + ", ".join(c.name for c in creditors))


def _audit(
    uow: UnitOfWork,
    at: dt.datetime,
    action: str,
    creditor: Creditor,
    subject: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Record what this command did (evidence kept in the audit log; no personal data)."""
    uow.audit.append(AuditEntry(new_id(), at, "cli", action, creditor.id, subject, details or {}))


def _debtor(uow: UnitOfWork, creditor: Creditor, ref: str) -> Debtor:
    debtor = uow.debtors.get(creditor, ref)
    if debtor is None:
        _fail(f"no debtor {ref!r} for {creditor.name}")
    return debtor


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


# -- set-up ------------------------------------------------------------------------------


@app.command()
def init() -> None:
    """Create or upgrade the database schema and the secret key."""
    settings = get_settings()
    created = ensure_secret_key(settings)
    engine = _engine(settings, migrated=False)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    out.print(f"database ready: {safe_url(settings.database_url)}", highlight=False)
    if created:
        out.print(f"secret key generated in {settings.secret_key_file} (keep it private)")
    from parcours.channels.config import write_example

    if write_example(settings.channels_file):
        out.print(
            f"example channel set-up written to {settings.channels_file} "
            "(messages go to the outbox folder until you configure providers)"
        )
    log.info("init.done", secret_created=created)


@app.command()
def generate(
    debtors: Annotated[int, typer.Option(min=1, help="How many debtors.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Same seed, same files.")] = 1,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write.")] = Path("portfolio"),
    as_of: Annotated[
        str | None, typer.Option(help="Portfolio date (YYYY-MM-DD); today by default.")
    ] = None,
    survey_share: Annotated[
        float, typer.Option(min=0, max=1, help="Share of debtors who answered the survey.")
    ] = 0.05,
) -> None:
    """Write a synthetic Belgian/European portfolio with a hidden persona per debtor."""
    from parcours.sim.portfolio import generate_portfolio

    try:
        today = dt.datetime.now(zoneinfo.ZoneInfo(get_settings().default_timezone)).date()
        as_of_date = dt.date.fromisoformat(as_of) if as_of else today
    except ValueError:
        _fail(f"--as-of {as_of!r} is not a date like 2026-12-01")
    with _progress(total=debtors, unit="debtors") as advance:
        summary = generate_portfolio(
            out_dir,
            debtors=debtors,
            seed=seed,
            as_of=as_of_date,
            survey_share=survey_share,
            progress=advance,
        )
    out.print(
        f"wrote {summary.debtors:,} debtors, {summary.invoices:,} invoices, "
        f"{summary.payments:,} payments to {out_dir} (seed {seed}, as of {as_of_date})"
    )


@contextmanager
def _progress(total: int, unit: str, enabled: bool = True) -> Iterator[Any]:
    """A Rich progress bar on stderr when it is a terminal; yields `advance_to(done)`."""
    if not (enabled and err.is_terminal):
        yield lambda _done: None
        return
    columns: list[Any] = [
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn() if unit == "bytes" else "{task.completed:,}/{task.total:,}",
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(unit, total=total)
        yield lambda done: progress.update(task, completed=done)


# -- import ------------------------------------------------------------------------------

FileArgument = Annotated[
    Path, typer.Argument(help="CSV file, UTF-8, with a header line.", show_default=False)
]
ImportCreditor = Annotated[str, typer.Option("--creditor", "-c", help="Creditor (tenant) name.")]
StrictOption = Annotated[
    bool, typer.Option("--strict", help="Store nothing if any row is rejected.")
]
ErrorsOption = Annotated[
    Path | None, typer.Option("--errors", help="Write rejected rows (line,field,reason) here.")
]


def _import(
    kind: ImportKind,
    file: Path,
    creditor_name: str,
    strict: bool,
    as_json: bool,
    errors_file: Path | None,
) -> None:
    settings = get_settings()
    now = _now()
    with _unit_of_work() as uow:
        creditor = uow.creditors.by_name(creditor_name) or uow.creditors.add(creditor_name, now)
        options = ImportOptions(
            creditor_id=creditor.id,
            creditor_name=creditor.name,
            now=now,
            default_region=settings.default_locale.rpartition("_")[2].upper() or "BE",
            default_language=settings.default_locale.partition("_")[0].lower(),
            default_zone=zoneinfo.ZoneInfo(settings.default_timezone),
            strict=strict,
        )
        size = file.stat().st_size if file.is_file() else 0
        with _progress(total=size, unit="bytes", enabled=not as_json) as advance:
            report = import_file(uow.connection(), kind, file, options, progress=advance)
        _commit_import(uow, now, f"import.{kind.value}", creditor, file, report)
    log.info(
        "import.finished",
        kind=kind.value,
        rows=report.rows,
        inserted=report.inserted,
        updated=report.updated,
        rejected=report.rejected,
        stored=report.stored,
    )
    _show_import(report, as_json, errors_file)


def _commit_import(
    uow: UnitOfWork, now: dt.datetime, action: str, creditor: Creditor, file: Path, report: Any
) -> None:
    """Commit an import the report allows (with its audit entry) and mark it stored."""
    if report_allows_commit(report):
        details = {k: v for k, v in report.as_dict().items() if k != "errors"}
        _audit(uow, now, action, creditor, f"file:{file.name}", details)
        uow.commit()
        report.stored = True


def _show_import(report: Any, as_json: bool, errors_file: Path | None) -> NoReturn:
    """Print an import report (and the rejected rows to `errors_file`), exit with its code."""
    if errors_file is not None and report.errors:
        report.write_errors_csv(errors_file)
    if as_json:
        _print_json(report.as_dict())
    else:
        _print_report(report)
    raise typer.Exit(report.exit_code)


def _print_report(report: Any, shown: int = 20) -> None:
    if report.file_error:
        _fail(f"{report.file_error} — nothing was stored")
    verb = "stored" if report.stored else "NOT stored (--strict and rows were rejected)"
    out.print(
        f"{report.kind} from {report.file} for {report.creditor}: {report.rows:,} rows — "
        f"{report.inserted:,} new, {report.updated:,} updated, {report.unchanged:,} unchanged, "
        f"{report.rejected:,} rejected; {verb}",
        highlight=False,
    )
    for effect, count in report.side_effects.items():
        if not count:
            continue
        out.print(f"  {effect.replace('_', ' ')}: {count:,}")
    for warning in report.warnings:
        out.print(f"warning: {warning}", highlight=False)
    if report.errors:
        table = Table("line", "field", "reason", title="rejected rows", title_justify="left")
        for error in sorted(report.errors)[:shown]:
            table.add_row(str(error.line), error.field, error.reason)
        out.print(table)
        if len(report.errors) > shown:
            out.print(f"… and {len(report.errors) - shown:,} more (see --json or --errors FILE)")


@import_app.command("debtors")
def import_debtors(
    file: FileArgument,
    creditor: ImportCreditor,
    strict: StrictOption = False,
    as_json: JsonOption = False,
    errors: ErrorsOption = None,
) -> None:
    """Debtors: debtor_ref,name[,email,phone,language,country,street,postcode,city,...]."""
    _import(ImportKind.DEBTORS, file, creditor, strict, as_json, errors)


@import_app.command("invoices")
def import_invoices(
    file: FileArgument,
    creditor: ImportCreditor,
    strict: StrictOption = False,
    as_json: JsonOption = False,
    errors: ErrorsOption = None,
) -> None:
    """Invoices: invoice_ref,debtor_ref,amount,currency,issue_date,due_date[,description]."""
    _import(ImportKind.INVOICES, file, creditor, strict, as_json, errors)


@import_app.command("payments")
def import_payments(
    file: FileArgument,
    creditor: ImportCreditor,
    strict: StrictOption = False,
    as_json: JsonOption = False,
    errors: ErrorsOption = None,
) -> None:
    """Payment history: invoice_ref,amount,paid_at[,payment_ref,currency]."""
    _import(ImportKind.PAYMENTS, file, creditor, strict, as_json, errors)


# -- inspection --------------------------------------------------------------------------


@app.command()
def status(creditor: CreditorOption = None, as_json: JsonOption = False) -> None:
    """Counts and open amounts, per creditor."""
    settings = get_settings()
    with _unit_of_work() as uow:
        creditors = [_creditor(uow, creditor)] if creditor else uow.creditors.all()
        statuses = [uow.cases.status(c) for c in creditors]
    if as_json:
        _print_json(
            {
                "database": safe_url(settings.database_url),
                "creditors": [s.as_dict() for s in statuses],
            }
        )
        return
    out.print(f"database: {safe_url(settings.database_url)}", highlight=False)
    if not statuses:
        out.print("no creditor yet")
    table = Table("creditor", "debtors", "cases (open)", "invoices (open)", "payments", "open")
    for s in statuses:
        table.add_row(
            s.creditor,
            f"{s.debtors:,}",
            f"{s.cases:,} ({s.open_cases:,})",
            f"{s.invoices:,} ({s.open_invoices:,})",
            f"{s.payments:,}",
            ", ".join(f"{m.amount:,} {c}" for c, m in sorted(s.open_amount.items())) or "0",
        )
    if statuses:
        out.print(table)


@cases_app.command("list")
def cases_list(
    creditor: CreditorOption = None,
    debtor: Annotated[str | None, typer.Option(help="Only this debtor's cases.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Cases, the longest overdue first."""
    with _unit_of_work() as uow:
        summaries = uow.cases.list(_creditor(uow, creditor), debtor_ref=debtor, limit=limit)
    if as_json:
        _print_json(
            [
                {
                    "ref": s.ref,
                    "debtor_ref": s.debtor_ref,
                    "status": s.status.value,
                    "invoices": s.invoices,
                    "balance": {c: str(m.amount) for c, m in s.balance.items()},
                    "oldest_open_due_date": s.oldest_due,
                }
                for s in summaries
            ]
        )
        return
    table = Table("case", "debtor", "status", "invoices", "balance", "oldest open due")
    for s in summaries:
        table.add_row(
            s.ref,
            s.debtor_ref,
            s.status.value,
            str(s.invoices),
            ", ".join(str(m) for m in s.balance.values()),
            str(s.oldest_due or "—"),
        )
    out.print(table)


@cases_app.command("link")
def cases_link(
    ref: Annotated[str, typer.Argument(help="Case reference, e.g. C-D0000001.")],
    creditor: CreditorOption = None,
) -> None:
    """The debtor's personal page for a case (a signed link, valid `link_days`), and the
    second factor the page will ask — for an agent on the phone, or to try the page."""
    from sqlalchemy import select

    from parcours.channels.config import ChannelsError, load_channels
    from parcours.channels.links import Links
    from parcours.store.schema import CaseRow, DebtorRow

    settings = get_settings()
    secret = settings.resolved_secret_key()
    if secret is None:
        _fail("no secret key to sign links: run `parcours init`")
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        found = uow.connection().execute(
            select(CaseRow.id, DebtorRow.postcode, DebtorRow.birth_year)
            .join(DebtorRow, (DebtorRow.id == CaseRow.debtor_id)
                  & (DebtorRow.creditor_id == CaseRow.creditor_id))
            .where(CaseRow.creditor_id == owner.id, CaseRow.ref == ref)
        ).first()  # fmt: skip
    if found is None:
        _fail(f"no case {ref!r}")
    try:
        setup = load_channels(settings.channels_file)
        chosen = setup.creditors.get(owner.name, setup.default)
    except ChannelsError:
        chosen = None
    check = chosen.portal.check if chosen is not None else "postcode"
    links = Links(secret.get_secret_value(), settings.public_url, settings.link_days)
    out.print(links.url("page", str(found.id), _now()), highlight=False, soft_wrap=True)
    factors = {"postcode": found.postcode, "birth_year": found.birth_year}
    other = "birth_year" if check == "postcode" else "postcode"
    asked = check if factors[check] else other if factors[other] else None
    if asked is None:
        out.print("the page asks nothing more (no postcode or birth year on file)")
    else:
        out.print(f"the page asks the debtor's {asked.replace('_', ' ')}: {factors[asked]}")


@cases_app.command("show")
def cases_show(
    ref: Annotated[str, typer.Argument(help="Case reference, e.g. C-D0000001.")],
    creditor: CreditorOption = None,
    as_json: JsonOption = False,
) -> None:
    """One case: its invoices, payments so far and balance."""
    today = _now().date()
    with _unit_of_work() as uow:
        found = uow.cases.get(_creditor(uow, creditor), ref)
    if found is None:
        _fail(f"no case {ref!r}")
    case, debtor_ref = found
    invoices = [
        {
            "ref": i.ref,
            "amount": str(i.amount.amount),
            "currency": i.amount.currency,
            "paid": str(i.paid.amount) if i.paid else "0",
            "balance": str(i.balance.amount),
            "issue_date": i.issue_date.isoformat(),
            "due_date": i.due_date.isoformat(),
            "days_past_due": i.days_past_due(today),
            "structured_communication": i.structured_communication.formatted,
            "description": i.description,
        }
        for i in case.invoices
    ]
    data = {
        "ref": case.ref,
        "debtor_ref": debtor_ref,
        "status": case.status.value,
        "opened_at": case.opened_at.isoformat(),
        "balance": {c: str(m.amount) for c, m in case.balances().items()},
        "invoices": invoices,
    }
    if as_json:
        _print_json(data)
        return
    out.print(
        f"case {case.ref} — debtor {debtor_ref} — {case.status.value}, opened "
        f"{case.opened_at:%Y-%m-%d}; balance "
        + ", ".join(str(m) for m in case.balances().values()),
        highlight=False,
    )
    table = Table("invoice", "amount", "paid", "balance", "due", "days late", "communication")
    for i in case.invoices:
        table.add_row(
            i.ref,
            str(i.amount),
            str(i.paid),
            str(i.balance),
            i.due_date.isoformat(),
            str(max(i.days_past_due(today), 0)) if i.is_open else "—",
            i.structured_communication.formatted,
        )
    out.print(table)


# -- privacy -----------------------------------------------------------------------------


@debtors_app.command("export")
def debtors_export(
    ref: Annotated[str, typer.Argument(help="The debtor's reference.")],
    creditor: CreditorOption = None,
) -> None:
    """Print everything stored about a debtor as JSON (GDPR access request)."""
    now = _now()
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        data = uow.debtors.export(owner, ref)
        if data is None:
            _fail(f"no debtor {ref!r}")
        _audit(uow, now, "debtor.exported", owner, f"debtor:{ref}")
        uow.commit()
    _print_json(data)


@debtors_app.command("erase")
def debtors_erase(
    ref: Annotated[str, typer.Argument(help="The debtor's reference.")],
    creditor: CreditorOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Anonymise a debtor (GDPR erasure); invoices and amounts stay for the accounts."""
    if not yes:
        typer.confirm(f"Erase the personal data of debtor {ref}? This cannot be undone", abort=True)
    now = _now()
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        debtor = uow.debtors.erase(owner, ref, now)
        if debtor is None:
            _fail(f"no debtor {ref!r}")
        uow.events.append(
            Event(new_id(), owner.id, EventType.DEBTOR_ERASED, now, debtor_id=debtor.id), now
        )
        _audit(uow, now, "debtor.erased", owner, f"debtor:{ref}")
        uow.commit()
    log.info("debtor.erased", debtor_ref=ref)
    out.print(f"debtor {ref}: personal data erased; amounts kept for the accounts")


# Registered last: the persona commands reuse this module's helpers.
from parcours.cli_api import api_keys_app, webhooks_app  # noqa: E402
from parcours.cli_journeys import journeys_app, policy_app, run, worker  # noqa: E402
from parcours.cli_messages import messages_app, serve, tasks_app  # noqa: E402
from parcours.cli_payments import payments_app  # noqa: E402
from parcours.cli_personas import personas_app, survey_app  # noqa: E402
from parcours.cli_sim import simulate  # noqa: E402
from parcours.cli_users import users_app  # noqa: E402

app.add_typer(personas_app, name="personas")
app.add_typer(survey_app, name="survey")
app.add_typer(journeys_app, name="journeys")
app.add_typer(policy_app, name="policy")
app.add_typer(messages_app, name="messages")
app.add_typer(tasks_app, name="tasks")
app.add_typer(payments_app, name="payments")
app.add_typer(api_keys_app, name="api-keys")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(users_app, name="users")
app.command()(serve)
app.command("run")(run)
app.command("worker")(worker)
app.command("simulate")(simulate)
