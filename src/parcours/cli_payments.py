"""`parcours payments`: bank statements, the unmatched queue, promises, plans, disputes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from sqlalchemy import Engine

from parcours.cli import CreditorOption, JsonOption, _creditor, _engine, _fail, _print_json, out
from parcours.domain.arrangements import ArrangementRules
from parcours.settings import get_settings

if TYPE_CHECKING:
    from parcours.runtime.arrangements import PlanMade

payments_app = typer.Typer(
    no_args_is_help=True,
    help="Bank statements (camt.053, CODA), the unmatched queue, promises, plans, disputes.",
)

AtOption = Annotated[
    str | None, typer.Option("--at", help="The clock (ISO date-time; default: now).")
]


def _clock(at: str | None) -> dt.datetime:
    from parcours.cli_journeys import _when

    moment: dt.datetime = _when(at)
    return moment


def _owner(creditor: str | None) -> tuple[Any, str]:
    from parcours.cli import _unit_of_work

    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
    return owner.id, owner.name


@contextmanager
def _acting(creditor: str | None) -> Iterator[tuple[Engine, Any, str]]:
    """(engine, creditor id, creditor name); a refused action is a clear error (exit 2)."""
    from parcours.runtime.arrangements import CaseError
    from parcours.runtime.payments import MatchError

    creditor_id, name = _owner(creditor)
    engine = _engine(get_settings())
    try:
        yield engine, creditor_id, name
    except (CaseError, MatchError) as error:
        _fail(str(error))
    finally:
        engine.dispose()


def _money(text: str, field: str) -> int:
    from parcours.domain.money import parse_amount

    try:
        return parse_amount(text, get_settings().default_currency)
    except ValueError as error:
        _fail(f"{field}: {error}")


def _day(text: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        _fail(f"{field}: {text!r} is not a date like 2026-12-31")


def _amount(minor: int, currency: str) -> str:
    return f"{minor / 100:,.2f} {currency}"


@payments_app.command("import")
def payments_import(
    file: Annotated[Path, typer.Argument(help="A camt.053 (XML) or CODA statement file.")],
    creditor: CreditorOption = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import a bank statement and book what it pays; the rest waits for a person.

    The whole file is one transaction: a file that cannot be read books nothing, and a
    line imported before is never booked twice."""
    from parcours.payments.statements import StatementError
    from parcours.runtime.payments import import_statement

    try:
        data = file.read_bytes()
    except OSError as error:
        _fail(f"{file}: {error.strerror or error}")
    with _acting(creditor) as (engine, creditor_id, _):
        try:
            reports = import_statement(engine, creditor_id, data, _clock(at), actor="cli")
        except StatementError as error:
            _fail(f"{file.name}: {error} (nothing was booked)")
    if as_json:
        _print_json([r.as_dict() for r in reports])
        return
    for r in reports:
        methods = ", ".join(f"{m} {n:,}" for m, n in sorted(r.booked.items())) or "none"
        out.print(
            f"{file.name}: statement {r.statement} of {r.account} ({r.format}): {r.lines:,} lines"
        )
        out.print(f"  booked {sum(r.booked.values()):,} ({methods}), {r.booked_minor / 100:,.2f}")
        if r.credit_minor:
            out.print(f"  kept as credit on cases (overpaid): {r.credit_minor / 100:,.2f}")
        out.print(
            f"  unmatched {r.unmatched:,} ({r.unmatched_minor / 100:,.2f}): "
            "see `parcours payments unmatched`"
        )
        if r.ignored:
            out.print("  not booked: " + ", ".join(f"{why} {n:,}" for why, n in r.ignored.items()))
        if r.reversals:
            out.print(f"  reversals {r.reversals:,}: those cases owe again")
        if r.already_imported:
            out.print(f"  already imported before (not booked again): {r.already_imported:,}")
        out.print(f"  cases now fully paid: {r.cases_paid:,}")


@payments_app.command("unmatched")
def payments_unmatched(
    creditor: CreditorOption = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Statement lines waiting for a person to say which case they pay."""
    from rich.table import Table

    from parcours.store.payments import PaymentStore

    with _acting(creditor) as (engine, creditor_id, _), engine.connect() as connection:
        lines = PaymentStore(connection, creditor_id).transactions(status="unmatched", limit=limit)
    if as_json:
        _print_json([{k: v for k, v in line.items() if k != "id"} for line in lines])
        return
    table = Table("ref", "booked", "amount", "payer", "communication", "why")
    for line in lines:
        table.add_row(
            line["ref"], str(line["booked_on"]), _amount(line["amount_minor"], line["currency"]),
            line["name"] or "", (line["structured"] or line["text"] or "")[:40],
            line["reason"] or "",
        )  # fmt: skip
    out.print(table)
    out.print(f"{len(lines):,} shown; book one with `parcours payments match REF CASE_REF`")


@payments_app.command("match")
def payments_match(
    ref: Annotated[str, typer.Argument(help="The statement line's bank reference.")],
    case_ref: Annotated[str, typer.Argument(help="The case it pays.")],
    creditor: CreditorOption = None,
    at: AtOption = None,
) -> None:
    """Book an unmatched statement line on a case (audited)."""
    from parcours.runtime.payments import match_line

    with _acting(creditor) as (engine, creditor_id, _):
        amount, currency = match_line(engine, creditor_id, ref, case_ref, _clock(at), "cli")
    out.print(f"{ref}: {_amount(amount, currency)} booked on {case_ref}")


@payments_app.command("promise")
def payments_promise(
    case_ref: Annotated[str, typer.Argument(help="The case.")],
    amount: Annotated[str, typer.Option(help="The amount promised (e.g. 120.00).")],
    on: Annotated[str, typer.Option("--on", help="The date promised (YYYY-MM-DD).")],
    creditor: CreditorOption = None,
    at: AtOption = None,
) -> None:
    """Record a promise to pay; the journey waits for its date."""
    from parcours.runtime.arrangements import make_promise

    with _acting(creditor) as (engine, creditor_id, name):
        make_promise(
            engine, creditor_id, case_ref, _money(amount, "--amount"), _day(on, "--on"),
            _clock(at), source="agent", actor="cli", rules=_rules(name),
        )  # fmt: skip
    out.print(f"{case_ref}: promise of {amount} by {on} recorded")


@payments_app.command("plan")
def payments_plan(
    case_ref: Annotated[str, typer.Argument(help="The case.")],
    instalments: Annotated[int, typer.Option("--instalments", "-n", min=1)],
    first: Annotated[str, typer.Option("--first", help="First instalment (YYYY-MM-DD).")],
    every: Annotated[str, typer.Option(help="month, fortnight or week.")] = "month",
    qr: Annotated[
        Path | None, typer.Option("--qr", help="Write each instalment's EPC QR code here.")
    ] = None,
    creditor: CreditorOption = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Agree a payment plan on the case's balance, within the creditor's limits."""
    from parcours.runtime.arrangements import create_plan

    if every not in ("month", "fortnight", "week"):
        _fail(f"--every {every!r}: month, fortnight or week")
    period: Literal["month", "fortnight", "week"] = every  # type: ignore[assignment]
    with _acting(creditor) as (engine, creditor_id, name):
        made = create_plan(
            engine, creditor_id, case_ref, instalments, _day(first, "--first"), _clock(at),
            source="agent", actor="cli", every=period, rules=_rules(name),
        )  # fmt: skip
    written = _write_qr_codes(qr, name, made) if qr is not None else []
    if as_json:
        _print_json(
            {
                "plan": made.plan_id,
                "total_minor": made.total_minor,
                "communication": made.communication,
                "instalments": [
                    {"number": i.number, "due_on": i.due_on, "amount_minor": i.amount_minor}
                    for i in made.instalments
                ],
                "qr_codes": [str(p) for p in written],
            }
        )
        return
    out.print(f"{case_ref}: plan of {_amount(made.total_minor, made.currency)}")
    for i in made.instalments:
        out.print(f"  {i.number:>2}. {i.due_on}  {_amount(i.amount_minor, made.currency)}")
    if made.communication:
        digits = made.communication
        out.print(f"  pay each with +++{digits[:3]}/{digits[3:7]}/{digits[7:]}+++")
    if written:
        out.print(f"  EPC QR codes: {', '.join(str(p) for p in written)}")


def _write_qr_codes(folder: Path, creditor_name: str, made: PlanMade) -> list[Path]:
    """One PNG per instalment, paying the creditor's account from the channels file."""
    from parcours.channels.config import ChannelsError, load_channels
    from parcours.payments.epc import qr_png

    try:
        profile = load_channels(get_settings().channels_file).for_creditor(creditor_name)
    except ChannelsError as error:
        _fail(f"--qr: {error}")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for instalment, transfer in zip(
        made.instalments, made.transfers(profile.profile.profile()), strict=False
    ):
        path = folder / f"{made.plan_id}-{instalment.number}.png"
        path.write_bytes(qr_png(transfer))
        paths.append(path)
    return paths


@payments_app.command("dispute")
def payments_dispute(
    case_ref: Annotated[str, typer.Argument(help="The case.")],
    reason: Annotated[str, typer.Option(help="not_mine, already_paid, amount_wrong, ...")],
    evidence: Annotated[str | None, typer.Option(help="The debtor's words.")] = None,
    creditor: CreditorOption = None,
    at: AtOption = None,
) -> None:
    """Open a dispute: collection contact pauses until it is resolved."""
    from parcours.runtime.arrangements import open_dispute

    with _acting(creditor) as (engine, creditor_id, _):
        open_dispute(
            engine, creditor_id, case_ref, reason, evidence, _clock(at), source="agent",
            actor="cli",
        )  # fmt: skip
    out.print(f"{case_ref}: dispute opened ({reason}); collection paused")


@payments_app.command("resolve")
def payments_resolve(
    case_ref: Annotated[str, typer.Argument(help="The case.")],
    outcome: Annotated[str, typer.Option(help="upheld or rejected.")],
    adjust: Annotated[
        str | None, typer.Option(help="Upheld in part: the amount taken off the balance.")
    ] = None,
    note: Annotated[str | None, typer.Option(help="Why (kept with the dispute).")] = None,
    creditor: CreditorOption = None,
    at: AtOption = None,
) -> None:
    """Rule on a case's open dispute: upheld closes (or adjusts) it, rejected resumes."""
    from parcours.runtime.arrangements import resolve_dispute

    if outcome not in ("upheld", "rejected"):
        _fail(f"--outcome {outcome!r}: upheld or rejected")
    with _acting(creditor) as (engine, creditor_id, _):
        resolve_dispute(
            engine, creditor_id, case_ref, outcome, _clock(at), actor="cli",  # type: ignore[arg-type]
            note=note, adjustment_minor=_money(adjust, "--adjust") if adjust else None,
        )  # fmt: skip
    out.print(f"{case_ref}: dispute {outcome}")


@payments_app.command("sample-statement")
def payments_sample_statement(
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the statement.")],
    lines: Annotated[int, typer.Option(min=1, help="How many credit lines.")] = 1000,
    fmt: Annotated[str, typer.Option("--format", help="camt or coda.")] = "camt",
    seed: Annotated[int, typer.Option()] = 7,
    creditor: CreditorOption = None,
    at: AtOption = None,
) -> None:
    """Write a realistic statement paying some of the creditor's open invoices (demo, tests)."""
    from parcours.sim.statement import synthetic_statement, write_statement

    if fmt not in ("camt", "coda"):
        _fail(f"--format {fmt!r}: camt or coda")
    with _acting(creditor) as (engine, creditor_id, _), engine.connect() as connection:
        statement, mix = synthetic_statement(
            connection, creditor_id, lines, _clock(at).date(), seed=seed
        )
    out_file.write_bytes(write_statement(statement, fmt))
    shares = ", ".join(f"{k} {v:,}" for k, v in mix.items())
    out.print(f"{out_file}: {len(statement.lines):,} lines ({shares})")


def _rules(creditor_name: str) -> ArrangementRules:
    from parcours.cli_journeys import creditor_rules

    return creditor_rules(get_settings(), creditor_name)
