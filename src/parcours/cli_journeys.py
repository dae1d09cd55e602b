"""`parcours journeys …`: validate, show (table and Mermaid diagram), JSON Schema."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from parcours.cli import _fail, _print_json, out
from parcours.domain.arrangements import ArrangementRules
from parcours.domain.journey import (
    BranchNode,
    ExitNode,
    FeeNode,
    Journey,
    SendNode,
    SplitNode,
    TaskNode,
    WaitEventNode,
    WaitNode,
)
from parcours.journeys.library import JourneyError, Library, journey_schema, load_journey
from parcours.runtime.arrangements import DEFAULT_RULES
from parcours.settings import get_settings

journeys_app = typer.Typer(no_args_is_help=True, help="Journeys: validate, show, schema.")


def _library() -> Library:
    from parcours.journeys.library import load_library
    from parcours.personas.catalog import CatalogError, load_catalog

    settings = get_settings()
    try:
        personas = load_catalog(settings.personas_dir).keys
        return load_library(settings.journeys_dir, personas)
    except (JourneyError, CatalogError) as exc:
        _fail("the journeys are invalid:\n  " + "\n  ".join(exc.problems))


def _what(node: Any) -> str:
    """One node in words."""
    if isinstance(node, WaitNode):
        sign = "+" if node.days >= 0 else "-"
        return f"wait until {node.anchor.value} {sign} {abs(node.days)} days"
    if isinstance(node, WaitEventNode):
        events = ", ".join(e.value for e in node.events)
        return f"wait for {events} (at most {node.timeout_days} days)"
    if isinstance(node, BranchNode):
        tests = "; ".join(
            f"{c.guard}({', '.join(f'{k}={v}' for k, v in c.args.items())}) → {c.next}"
            for c in node.cases
        )
        return f"if {tests}; else → {node.default}"
    if isinstance(node, SplitNode):
        arms = ", ".join(f"{a.name} {a.weight}" for a in node.arms)
        return f"experiment {node.experiment}: {arms}"
    if isinstance(node, SendNode):
        fallback = f", fallback {' > '.join(node.fallback)}" if node.fallback else ""
        kind = "reminder" if node.reminder else "message"
        return (
            f"send {kind} '{node.template}' by {' > '.join(node.channels)} ({node.mode}{fallback})"
        )
    if isinstance(node, TaskNode):
        return f"agent task: {node.kind.value}" + (f" ({node.script})" if node.script else "")
    if isinstance(node, FeeNode):
        return f"charge {node.kind.value} (if the law allows it now)"
    assert isinstance(node, ExitNode)
    return f"exit: {node.reason.value}"


def _next(node: Any) -> str:
    if isinstance(node, WaitEventNode):
        return f"{node.on_event} / timeout → {node.on_timeout}"
    if isinstance(node, BranchNode | SplitNode | ExitNode):
        return ""
    return str(node.next)


def mermaid(journey: Journey) -> str:
    """A Mermaid flowchart of the journey (paste into any Markdown viewer)."""
    lines = ["flowchart TD"]
    for node in journey.nodes:
        label = _what(node).replace('"', "'")
        shape = (
            ("([", "])")
            if isinstance(node, ExitNode)
            else ("{{", "}}")
            if isinstance(node, BranchNode | SplitNode)
            else ("[", "]")
        )
        lines.append(f'    {node.id}{shape[0]}"{node.id}: {label}"{shape[1]}')
    for source, where, target in journey.edges():
        label = where.replace("cases.", "case ").replace("arms.", "arm ").replace(".next", "")
        edge = f"-- {label} -->" if where not in ("next",) else "-->"
        lines.append(f"    {source} {edge} {target}")
    return "\n".join(lines)


@journeys_app.command("validate")
def journeys_validate(
    files: Annotated[list[Path], typer.Argument(help="Journey YAML file(s).")],
) -> None:
    """Check journey files: graph, guards, persona; problems name the file, node and field."""
    from parcours.personas.catalog import load_catalog

    personas = load_catalog(get_settings().personas_dir).keys
    problems: list[str] = []
    for path in files:
        try:
            journey = load_journey(path, personas)
        except JourneyError as exc:
            problems.extend(exc.problems)
            continue
        out.print(f"{path}: {journey.name} OK ({len(journey.nodes)} nodes)")
    if problems:
        _fail("\n  ".join(["invalid journey file(s):", *problems]))


@journeys_app.command("list")
def journeys_list() -> None:
    """The journeys of the library, newest version of each."""
    library = _library()
    table = Table("journey", "version", "persona", "nodes", "description")
    for key in library.journey_keys():
        journey = library.latest(key)
        table.add_row(
            key,
            str(journey.version),
            journey.persona or "(universal)",
            str(len(journey.nodes)),
            journey.description.strip().split(". ")[0].rstrip(".") + ".",
        )
    out.print(table)


@journeys_app.command("show")
def journeys_show(
    name: Annotated[str, typer.Argument(help="Journey key, optionally @version.")],
    diagram: Annotated[bool, typer.Option("--mermaid", help="Print only the diagram.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the journey as JSON.")] = False,
) -> None:
    """A journey as a readable table and a Mermaid diagram."""
    library = _library()
    key, _, version = name.partition("@")
    try:
        journey = library.get(key, int(version)) if version else library.latest(key)
    except (KeyError, ValueError):
        _fail(f"no journey {name!r} (known: {', '.join(library.journey_keys())})")
    if as_json:
        _print_json(journey.model_dump(mode="json"))
        return
    if diagram:
        out.print(mermaid(journey))
        return
    out.print(f"{journey.name} — persona: {journey.persona or '(universal)'}")
    out.print(journey.description.strip())
    table = Table("node", "does", "then", "note")
    for node in journey.nodes:
        marker = "▶ " if node.id == journey.start else ""
        table.add_row(f"{marker}{node.id}", _what(node), _next(node), node.note or "")
    out.print(table)
    out.print("\n```mermaid\n" + mermaid(journey) + "\n```")


@journeys_app.command("schema")
def journeys_schema(
    output: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
) -> None:
    """The JSON Schema of journey files, for editors."""
    text = journey_schema()
    if output is None:
        out.print(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        out.print(f"wrote {output}")


def _when(at: str | None) -> Any:
    import datetime as dt

    if at is None:
        return dt.datetime.now(dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(at)
    except ValueError:
        _fail(f"--at {at!r} is not an ISO date-time like 2026-12-07T09:00")
    if moment.tzinfo is None:
        import zoneinfo

        moment = moment.replace(tzinfo=zoneinfo.ZoneInfo(get_settings().default_timezone))
    return moment.astimezone(dt.UTC)


def run(
    at: Annotated[
        str | None, typer.Option("--at", help="Run as if it were this time (clock travel).")
    ] = None,
    creditor: Annotated[str | None, typer.Option("--creditor", "-c")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One tick: enrol new cases, plan, gate, write the outbox; then dispatch what is due."""
    from parcours.cli import _creditor, _engine, _unit_of_work
    from parcours.runtime.dispatch import dispatch
    from parcours.runtime.tick import CONFLICTS, run_tick

    settings = get_settings()
    now = _when(at)
    library = _library()
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        try:
            result = run_tick(
                uow.connection(), owner.id, library, now, zone=settings.default_timezone,
                rules=creditor_rules(settings, owner.name),
            )  # fmt: skip
            uow.commit()
        except CONFLICTS:
            _fail("another tick recorded these decisions first: nothing was decided twice")
    channels = _channel_set(settings, owner.name, library)
    engine = _engine(settings)
    sent: Counter[str] = Counter()
    try:
        while True:  # in batches: claimed, sent outside any transaction, recorded
            batch = dispatch(engine, owner.id, channels, now)
            sent.update(batch)
            if not batch:
                break
    finally:
        channels.close()
        engine.dispose()
    report = {**result.as_dict(), "dispatched": dict(sent), "at": now.isoformat()}
    if as_json:
        _print_json(report)
        return
    out.print(
        f"tick at {now:%Y-%m-%d %H:%M} UTC: {result.enrolled:,} enrolled, {result.due:,} due, "
        f"{result.outbox:,} outbox rows; dispatched: "
        + (", ".join(f"{k} {v:,}" for k, v in sent.items()) or "nothing")
    )
    if result.verdicts:
        out.print("gate: " + ", ".join(f"{k} {v:,}" for k, v in result.verdicts.items()))
    if result.exits:
        out.print("exits: " + ", ".join(f"{k} {v:,}" for k, v in result.exits.items()))


policy_app = typer.Typer(no_args_is_help=True, help="The policy gate.")


@policy_app.command("explain")
def policy_explain(
    case_ref: Annotated[str, typer.Argument(help="The case reference (e.g. C-D0000001).")],
    at: Annotated[str | None, typer.Option("--at", help="As if it were this time.")] = None,
    creditor: Annotated[str | None, typer.Option("--creditor", "-c")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """What the gate decides for a case now and why: per channel, caps, fees, holds."""
    from parcours.cli import _creditor, _unit_of_work
    from parcours.journeys.policy import explain
    from parcours.runtime.tick import contact_facts

    now = _when(at)
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        found = uow.cases.get(owner, case_ref)
        if found is None:
            _fail(f"no case {case_ref!r} for {owner.name}")
        case, _ = found
        facts = contact_facts(uow.connection(), owner.id, case.id, case.debtor_id, now)
    report = explain(facts, now)
    if as_json:
        _print_json(report)
        return
    out.print(f"{case_ref} at {report['now']} ({report['timezone']}, {report['country']})")
    out.print(f"holds: {', '.join(report['holds']) or 'none'}")
    window = report["window"]
    out.print(
        f"contact window {window['hours']}: {'open' if window['open_now'] else 'closed'}; "
        f"next allowed {window['next_allowed']}"
    )
    table = Table("channel", "verdict", "not before", "reason")
    for channel, verdict in report["channels"].items():
        table.add_row(channel, verdict["verdict"], verdict["not_before"] or "", verdict["reason"])
    out.print(table)
    caps = report["caps"]
    for name in ("written", "calls"):
        cap = caps[name]
        full = f", full until {cap['full_until']}" if cap["full_until"] else ""
        out.print(f"{name}: {cap['used']} of {cap['max']} in {cap['window']}{full}")
    if caps["no_call_before"]:
        out.print(f"no call before {caps['no_call_before']} (a conversation took place)")
    law = report["law"]
    out.print(
        f"balance €{law['balance_minor'] / 100:,.2f}; reminders sent {law['reminders_sent']}; "
        f"fees allowed from {law['wait_ends'] or '(no reminder yet)'}; flat indemnity cap "
        f"€{law['flat_indemnity_cap_minor'] / 100:,.2f}"
    )
    fees = Table("fee", "allowed now", "why")
    for kind, fee in law["fees"].items():
        fees.add_row(kind, f"€{fee['amount_minor'] / 100:,.2f}", fee["reason"])
    out.print(fees)


def worker(
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between ticks.")] = 300.0,
    ticks: Annotated[int, typer.Option(min=0, help="Stop after this many ticks (0: run on).")] = 0,
) -> None:
    """Run ticks on a schedule for every creditor and dispatch what is due; SIGTERM or
    Ctrl-C stops it after the message in flight. Two workers never send a message twice:
    decisions are keyed by attempt id and each due message is claimed by one of them."""
    import signal
    import time

    import httpx

    from parcours.cli import _engine, _unit_of_work, log
    from parcours.runtime.dispatch import dispatch
    from parcours.runtime.tick import CONFLICTS, run_tick
    from parcours.runtime.webhooks import deliver_webhooks
    from parcours.store.api import expire_idempotency_keys

    settings = get_settings()
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        log.info("worker.stopping", signal=signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    library = _library()
    engine = _engine(settings)
    channel_sets: dict[str, Any] = {}
    hooks = httpx.Client(timeout=10.0)
    done = 0
    while not stopping:
        started = time.monotonic()
        now = _when(None)
        with _unit_of_work() as uow:
            creditors = uow.creditors.all()
        for creditor in creditors:
            if stopping:
                break
            try:
                with _unit_of_work() as uow:
                    result = run_tick(
                        uow.connection(), creditor.id, library, now,
                        zone=settings.default_timezone,
                        rules=creditor_rules(settings, creditor.name),
                    )  # fmt: skip
                    uow.commit()
                log.info("worker.tick", due=result.due, outbox=result.outbox)
            except CONFLICTS:
                log.info("worker.tick_taken", reason="another worker decided this tick")
            if creditor.name not in channel_sets:
                channel_sets[creditor.name] = _channel_set(settings, creditor.name, library)
            while not stopping:
                sent = dispatch(
                    engine, creditor.id, channel_sets[creditor.name], _when(None),
                    stop=lambda: stopping,
                )  # fmt: skip
                if not sent:
                    break
                log.info("worker.dispatched", **dict(sent))
            if not stopping:  # the creditor's integrations hear of payments, promises...
                delivered = deliver_webhooks(engine, creditor.id, _when(None), hooks)
                log.info("worker.webhooks", **delivered.as_dict())
        with engine.begin() as connection:  # idempotency keys live 24 hours
            expire_idempotency_keys(connection, _when(None))
        done += 1
        if ticks and done >= ticks:
            break
        while not stopping and time.monotonic() - started < interval:
            time.sleep(min(0.2, interval))
    for channels in channel_sets.values():
        channels.close()
    hooks.close()
    engine.dispose()
    log.info("worker.stopped", ticks=done)


def creditor_rules(settings: Any, creditor_name: str) -> ArrangementRules:
    """The creditor's promise and plan limits from the channels file (defaults without)."""
    from parcours.channels.config import ChannelsError, load_channels

    try:
        config = load_channels(settings.channels_file)
    except ChannelsError as error:
        _fail(str(error))
    setup = config.creditors.get(creditor_name, config.default)
    return DEFAULT_RULES if setup is None else setup.limits.rules()


def _channel_set(settings: Any, creditor_name: str, library: Library) -> Any:
    """The creditor's channels, or a clear error naming what to fix."""
    from parcours.channels.config import ChannelsError
    from parcours.channels.render import TemplateError
    from parcours.runtime.dispatch import channel_set

    try:
        return channel_set(settings, creditor_name, library)
    except (ChannelsError, TemplateError, RuntimeError) as error:
        _fail(str(error))


@journeys_app.command("migrate")
def journeys_migrate(
    key: Annotated[str, typer.Argument(help="The journey key.")],
    source: Annotated[int, typer.Option("--from", help="The version cases are on.")],
    target: Annotated[int | None, typer.Option("--to", help="Default: the newest.")] = None,
    mapping: Annotated[
        list[str] | None, typer.Option("--map", help="OLD=NEW for a node renamed or removed.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show, change nothing.")] = False,
    creditor: Annotated[str | None, typer.Option("--creditor", "-c")] = None,
) -> None:
    """Move the cases of a journey version to another version, at the same (or a mapped)
    node, keeping their timers and steps. Cases never change version on their own."""
    from parcours.cli import _audit, _creditor, _unit_of_work
    from parcours.store.journeys import enrolment_nodes, migrate_enrolments

    library = _library()
    try:
        old = library.get(key, source)
        new = library.get(key, target) if target is not None else library.latest(key)
    except KeyError:
        _fail(f"no such journey version: {key}@{source} or the target")
    if new.version == old.version:
        _fail(f"{old.name} is already the target version")
    pairs = dict(item.split("=", 1) for item in mapping or [] if "=" in item)
    new_ids = {n.id for n in new.nodes}
    bad = sorted(v for v in pairs.values() if v not in new_ids)
    if bad:
        _fail(f"--map names node(s) {', '.join(bad)} that {new.name} does not have")
    now = _when(None)
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        in_use = enrolment_nodes(uow.connection(), owner.id, key, old.version)
        plan = {node: pairs.get(node, node) for node in in_use}
        unmapped = sorted(node for node, to in plan.items() if to not in new_ids)
        table = Table("node in " + old.name, "cases", "node in " + new.name)
        for node, count in sorted(in_use.items()):
            table.add_row(node, f"{count:,}", plan[node] if plan[node] in new_ids else "(none)")
        out.print(table)
        if unmapped:
            _fail(
                f"{new.name} has no node {', '.join(unmapped)}: give --map OLD=NEW for each "
                "(nothing was changed)"
            )
        if dry_run:
            out.print(f"dry run: {sum(in_use.values()):,} cases would move; nothing changed")
            return
        moved = migrate_enrolments(
            uow.connection(), owner.id, key, old.version, new.version, plan, now
        )
        _audit(uow, now, "journeys.migrate", owner, f"journey:{key}", {
            "from": old.version, "to": new.version, "cases": moved, "map": pairs,
        })  # fmt: skip
        uow.commit()
    out.print(f"moved {moved:,} cases from {old.name} to {new.name}")
