"""`parcours simulate`: replay a portfolio through the real engine under several
strategies and compare them per persona, with confidence intervals across seeds.

Registered in `cli.py` with `app.command("simulate")(simulate)`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["simulate"]

_out = Console(soft_wrap=True, markup=False)
_err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> NoReturn:
    _err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _costs(values: list[str], currency: str) -> Any:
    """`--cost letter=1.95 --cost sms_unit=0.07` as ChannelCosts (the rest default)."""
    from parcours.analytics.kpis import ChannelCosts

    given: dict[str, str] = {"currency": currency}
    for value in values:
        name, sep, amount = value.partition("=")
        if not sep or not name.strip() or not amount.strip():
            _fail(f"--cost {value!r}: expected NAME=AMOUNT, e.g. letter=1.95")
        given[name.strip()] = amount.strip()
    try:
        return ChannelCosts.from_mapping(given)
    except (ValueError, ArithmeticError) as exc:
        names = "email, sms_unit, letter, call, chat_minute, minutes_per_chat_answer"
        _fail(f"--cost: {exc} (known: {names})")


@contextlib.contextmanager
def _work_dir(work: Path | None) -> Iterator[Path]:
    if work is not None:
        yield work
        return
    with tempfile.TemporaryDirectory(prefix="parcours-sim-") as tmp:
        yield Path(tmp)


def simulate(
    portfolio: Annotated[
        Path,
        typer.Option("--portfolio", help="A portfolio directory (debtors.csv, invoices.csv, ...)."),
    ],
    strategy: Annotated[
        list[str] | None,
        typer.Option(
            "--strategy",
            help="persona, universal, none, persona-vs-universal or an experiment's key; "
            "repeat to compare (default: persona and universal).",
        ),
    ] = None,
    days: Annotated[int, typer.Option(help="Days to simulate (at least 1).")] = 120,
    seeds: Annotated[int, typer.Option(help="Seeds per strategy (1..N).")] = 5,
    debtors: Annotated[
        int | None, typer.Option(help="Only the first N debtors of the portfolio.")
    ] = None,
    work: Annotated[
        Path | None,
        typer.Option(
            "--work", help="Keep the prepared database here and reuse it (default: a temp dir)."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Runs in parallel processes (0: one per CPU).")] = 0,
    shards: Annotated[
        int,
        typer.Option(
            help="Cut each run by debtor into this many parts run in parallel, with the "
            "same figures (0: spare CPUs when there are fewer runs, 1 with --keep or --adopt)."
        ),
    ] = 0,
    cost: Annotated[
        list[str] | None,
        typer.Option("--cost", help="A channel cost NAME=AMOUNT (e.g. letter=1.95); repeat."),
    ] = None,
    keep: Annotated[
        Path | None,
        typer.Option(
            "--keep", help="Keep each run's database in this directory (<strategy>-<seed>.db)."
        ),
    ] = None,
    render: Annotated[
        bool, typer.Option(help="Render every message's words (slower; counts SMS segments).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    creditor: Annotated[
        str, typer.Option(help="The portfolio's creditor name in the simulation's databases.")
    ] = "simulation",
    save: Annotated[
        bool,
        typer.Option(
            help="Store the comparison in the configured database for the dashboard "
            "(under --creditor, which must exist there)."
        ),
    ] = False,
    adopt: Annotated[
        bool,
        typer.Option(
            help="Make the first strategy's seed-1 run the configured SQLite database "
            "(demos and training: it refuses a database that holds cases); implies --save."
        ),
    ] = False,
    report_html: Annotated[
        Path | None,
        typer.Option("--report", help="Also write the comparison as a self-contained HTML file."),
    ] = None,
) -> None:
    """Compare strategies on a simulated replay of a portfolio through the real engine."""
    from parcours.settings import get_settings
    from parcours.sim.report import render_tables
    from parcours.sim.run import SimulationError
    from parcours.sim.run import simulate as run_simulation

    settings = get_settings()
    if days < 1:
        _fail(f"--days {days}: simulate at least one day")
    if seeds < 1:
        _fail(f"--seeds {seeds}: at least one seed")
    if debtors is not None and debtors < 1:
        _fail(f"--debtors {debtors}: at least one debtor")
    costs = _costs(cost or [], settings.default_currency)
    names = strategy or ["persona", "universal"]
    jobs = len(names) * seeds
    cpus = os.cpu_count() or 1
    keeping = keep is not None or adopt
    parts = shards if shards > 0 else (1 if keeping else max(1, cpus // jobs))
    processes = workers if workers > 0 else min(cpus, jobs * parts)
    quiet = as_json

    def progress(text: str) -> None:
        if not quiet:
            _err.print(f"[dim]{escape(text)}[/]", highlight=False)

    target = _adoptable(settings.database_url) if adopt else None
    if save and not adopt:  # the creditor must be there before any work is done
        from parcours.cli import _creditor, _unit_of_work

        with _unit_of_work() as uow:
            _creditor(uow, creditor)
    try:
        with _work_dir(work) as folder:
            kept = keep or (folder / "runs" if adopt else None)
            report = run_simulation(
                portfolio, names, days=days, seeds=seeds, work=folder, debtors=debtors,
                workers=processes, shards=parts, costs=costs, render=render, keep=kept,
                settings=settings, progress=progress, creditor=creditor,
            )  # fmt: skip
            if target is not None and kept is not None:
                _adopt(kept / f"{names[0]}-1.db", target)
                progress(f"{names[0]} seed 1 is now the database {target}")
    except SimulationError as exc:
        _fail(str(exc))
    data = report.as_dict()
    if save or adopt:
        _save(creditor, data)
    if report_html is not None:
        from parcours.sim.html_report import write_report

        write_report(data, report_html)
        progress(f"report written to {report_html}")
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    out = _out if _out.is_terminal else Console(soft_wrap=True, markup=False, width=160)
    out.print(_title(report))
    for title, rows in render_tables(report):
        table = Table(*rows[0], title=title)
        for row in rows[1:]:
            table.add_row(*row)
        out.print(table)
    out.print(
        "± is the half-width of the 95 % interval across seeds ([low, high] where the "
        "interval meets the figure's range, e.g. a rate at 0); a difference row compares "
        "two strategies seed by seed (same simulated debtors)."
    )


def _adoptable(url: str) -> Path:
    """The configured SQLite file, when it is absent or holds no case (checked first, so
    that a refusal costs no simulation)."""
    import sqlite3

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        _fail("--adopt: the configured database must be a SQLite file")
    path = Path(parsed.database)
    if path.exists():
        with contextlib.closing(sqlite3.connect(path)) as raw:
            tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
            if "cases" in tables and raw.execute("SELECT 1 FROM cases LIMIT 1").fetchone():
                _fail(f"--adopt: {path} holds cases; it replaces only an empty database")
    return path


def _adopt(run: Path, target: Path) -> None:
    """Replace the (empty) configured database by the run's file."""
    import shutil

    from parcours.sim.run import checkpoint

    checkpoint(run)
    for leftover in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
        leftover.unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run, target)


def _save(creditor: str, data: dict[str, Any]) -> None:
    import datetime as dt

    from parcours.cli import _audit, _creditor, _unit_of_work
    from parcours.store.simulations import SimulationStore

    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        now = dt.datetime.now(dt.UTC)
        run_id = SimulationStore(uow.connection(), owner.id).save(data, now)
        _audit(uow, now, "simulation.saved", owner, str(run_id))
        uow.commit()
    _err.print(f"saved as simulation run {run_id} of {owner.name}", highlight=False)


def _title(report: Any) -> str:
    seeds = report.seeds
    return (
        f"{report.info.get('cases', 0):,} cases, {report.days} days, seeds "
        f"{seeds[0]}..{seeds[-1]} (costs in {report.currency})"
    )
