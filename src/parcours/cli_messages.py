"""`parcours messages`: see what a journey step says, in any language and channel."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from parcours.cli import _fail, out
from parcours.settings import get_settings

messages_app = typer.Typer(no_args_is_help=True, help="Message templates and previews.")


@messages_app.command("preview")
def messages_preview(
    journey: Annotated[str, typer.Option("--journey", "-j", help="Journey key (latest version).")],
    step: Annotated[str, typer.Option("--step", "-s", help="The send (or task) node's id.")],
    lang: Annotated[str, typer.Option("--lang", "-l", help="fr, nl or en.")] = "fr",
    channel: Annotated[
        str | None, typer.Option("--channel", help="Default: the step's first channel.")
    ] = None,
    case_ref: Annotated[
        str | None, typer.Option("--case", help="Render with this case's real facts.")
    ] = None,
    creditor: Annotated[str | None, typer.Option("--creditor", "-c")] = None,
    output: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the message here (.eml, .html, .pdf, .txt)."),
    ] = None,
    with_fees: Annotated[
        bool, typer.Option("--with-fees", help="The sample debtor owes fees of each kind.")
    ] = False,
) -> None:
    """Render one journey step as the debtor would get it (a sample debtor by default)."""
    import dataclasses
    import datetime as dt

    from parcours.channels.content import Channel, EmailBody, LetterBody, PhoneScript, SmsBody
    from parcours.channels.render import TemplateError, get_renderer, sample_content
    from parcours.cli_journeys import _library
    from parcours.domain.journey import SendNode, TaskNode

    try:
        model = _library().latest(journey)
        node = model.node(step)
    except (KeyError, StopIteration):
        _fail(f"no step {step!r} in a journey {journey!r} (see `parcours journeys show`)")
    if isinstance(node, SendNode):
        template = node.template
        chosen = Channel(channel or node.channels[0])
    elif isinstance(node, TaskNode) and node.script:
        template, chosen = node.script, Channel.PHONE
    else:
        _fail(f"step {step!r} sends nothing: it is a {node.type} node")
    if lang not in ("fr", "nl", "en"):
        _fail(f"--lang {lang!r}: one of fr, nl, en")
    now = dt.datetime.now(dt.UTC)
    if case_ref is None:
        content = sample_content(template, chosen, lang, full=with_fees)
    else:
        from parcours.cli import _creditor, _unit_of_work
        from parcours.cli_journeys import _channel_set
        from parcours.runtime.dispatch import case_content

        with _unit_of_work() as uow:
            owner = _creditor(uow, creditor)
            found = uow.cases.get(owner, case_ref)
            if found is None:
                _fail(f"no case {case_ref!r} for {owner.name}")
            case, _ = found
            channels = _channel_set(get_settings(), owner.name, _library())
            made = case_content(
                uow.connection(), owner.id, case.id, case.debtor_id, channels, template,
                chosen, now,
            )  # fmt: skip
            channels.close()
        if isinstance(made, str):
            _fail(f"{case_ref}: {made}")
        content = dataclasses.replace(made, language=lang)
    try:
        rendered = get_renderer().render(content)
    except TemplateError as error:
        _fail(str(error))
    title = f"{journey} / {step} — {template} by {chosen.value} in {lang}"
    if isinstance(rendered, EmailBody):
        if output is not None:
            from parcours.channels.email import build_email

            data = (
                rendered.html.encode()
                if output.suffix == ".html"
                else bytes(build_email(content, rendered, domain="preview.parcours.invalid"))
            )
            output.write_bytes(data)
        _show(f"{title}: {rendered.subject}", rendered.text)
    elif isinstance(rendered, SmsBody):
        from parcours.channels import gsm

        note = f"{gsm.encoding(rendered.text)}, {gsm.segments(rendered.text)} segment(s)"
        _show(f"{title} ({note})", rendered.text)
    elif isinstance(rendered, LetterBody):
        from parcours.channels.letter import render_letter_pdf

        pdf = render_letter_pdf(content, rendered)
        target = output or Path(f"preview-{template}-{lang}.pdf")
        target.write_bytes(pdf.pdf)
        text = "\n\n".join([rendered.salutation, *rendered.paragraphs, rendered.closing])
        _show(f"{title}: {rendered.subject}", text)
        out.print(f"letter written to {target} ({pdf.pages} page(s))")
        return
    else:
        assert isinstance(rendered, PhoneScript)
        _show(f"{title}: {rendered.title}", "\n".join(rendered.lines))
    if output is not None and isinstance(rendered, SmsBody):
        output.write_text(rendered.text, encoding="utf-8")
    elif output is not None and isinstance(rendered, PhoneScript):
        output.write_text("\n".join([rendered.title, *rendered.lines]), encoding="utf-8")


def _show(title: str, text: str) -> None:
    out.print(title, markup=False, highlight=False, soft_wrap=True)
    out.print("─" * min(len(title), 78), markup=False, highlight=False)
    out.print(text, markup=False, highlight=False, soft_wrap=True)


@messages_app.command("inbound")
def messages_inbound(
    files: Annotated[list[Path], typer.Argument(help="E-mails received (.eml): bounces, replies.")],
    creditor: Annotated[str | None, typer.Option("--creditor", "-c")] = None,
) -> None:
    """Book what came back by e-mail: a bounce (RFC 3464) fails the message and queues the
    step's next channel; a reply is a journey event."""
    import datetime as dt

    from parcours.channels.email import parse_bounce, parse_reply
    from parcours.cli import _creditor, _engine, _unit_of_work
    from parcours.cli_journeys import _library
    from parcours.runtime.dispatch import record_delivery

    now = dt.datetime.now(dt.UTC)
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
    engine = _engine(get_settings())
    library = _library()
    try:
        for path in files:
            try:
                raw = path.read_bytes()
            except OSError as error:
                _fail(f"{path}: {error.strerror}")
            event = parse_bounce(raw) or parse_reply(raw)
            if event is None:
                out.print(f"{path}: neither a bounce nor a reply to one of our messages")
                continue
            out.print(f"{path}: {record_delivery(engine, owner.id, event, library, now)}")
    finally:
        engine.dispose()


tasks_app = typer.Typer(no_args_is_help=True, help="Agent tasks: calls and follow-ups.")


@tasks_app.command("list")
def tasks_list(
    creditor: Annotated[str | None, typer.Option("--creditor", "-c")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
) -> None:
    """The tasks agents can do now, oldest first."""
    import datetime as dt

    from rich.table import Table

    from parcours.cli import _creditor, _unit_of_work
    from parcours.runtime.tasks import due_tasks

    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        tasks = due_tasks(uow.connection(), owner.id, dt.datetime.now(dt.UTC), limit)
    table = Table("task", "case", "kind", "script", "journey")
    for attempt, case_ref, channel, script, journey, _ in tasks:
        table.add_row(
            attempt, case_ref, "call" if channel == "phone" else "follow-up", script or "", journey
        )
    out.print(table)


@tasks_app.command("done")
def tasks_done(
    task: Annotated[str, typer.Argument(help="The task id (from `parcours tasks list`).")],
    disposition: Annotated[
        str,
        typer.Option(
            "--disposition", "-d", help="right_party, no_answer, wrong_number, promise or dispute."
        ),
    ],
    amount: Annotated[str | None, typer.Option(help="Promise: the amount (e.g. 120.00).")] = None,
    on: Annotated[str | None, typer.Option("--on", help="Promise: the date (YYYY-MM-DD).")] = None,
    creditor: Annotated[str | None, typer.Option("--creditor", "-c")] = None,
) -> None:
    """Close a task with what happened; the journey hears of it at the next tick."""
    import datetime as dt

    from parcours.cli import _creditor, _engine, _unit_of_work
    from parcours.domain.money import parse_amount
    from parcours.runtime.tasks import Disposition, TaskError, complete_task

    try:
        chosen = Disposition(disposition)
    except ValueError:
        _fail(f"--disposition {disposition!r}: one of {', '.join(d.value for d in Disposition)}")
    settings = get_settings()
    promise = None
    if chosen is Disposition.PROMISE:
        if amount is None or on is None:
            _fail("a promise needs --amount and --on")
        try:
            promise = (
                parse_amount(amount, settings.default_currency),
                settings.default_currency,
                dt.date.fromisoformat(on),
            )
        except ValueError as error:
            _fail(f"promise: {error}")
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
    engine = _engine(settings)
    try:
        out.print(
            complete_task(engine, owner.id, task, chosen, dt.datetime.now(dt.UTC), promise=promise)
        )
    except TaskError as error:
        _fail(str(error))
    finally:
        engine.dispose()


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
) -> None:
    """Serve the carrier webhooks and debtors' links (`PARCOURS_PUBLIC_URL` points here)."""
    import uvicorn

    from parcours.web.app import create_app

    try:
        application = create_app()
    except RuntimeError as error:
        _fail(str(error))
    uvicorn.run(application, host=host, port=port, log_level="warning")


@messages_app.command("print-batch")
def messages_print_batch(
    day: Annotated[str, typer.Option("--day", help="The day the letters went (YYYY-MM-DD).")],
    source: Annotated[
        Path | None, typer.Option("--from", help="Where the letters were written (outbox).")
    ] = None,
    target: Annotated[Path, typer.Option("--out", help="Folder for the batch.")] = Path("print"),
    simplex: Annotated[bool, typer.Option("--simplex", help="Print on one side only.")] = False,
    creditor: Annotated[str | None, typer.Option("--creditor", "-c")] = None,
) -> None:
    """A day's letters as one PDF for the mail house, with its CSV manifest."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from parcours.channels.letter import LetterError, ManifestRow, join_letters
    from parcours.cli import _creditor, _unit_of_work
    from parcours.store.messages import MessageStore

    settings = get_settings()
    try:
        local = dt.date.fromisoformat(day)
    except ValueError:
        _fail(f"--day {day!r} is not a date like 2026-12-05")
    zone = ZoneInfo(settings.default_timezone)
    start = dt.datetime.combine(local, dt.time(), zone).astimezone(dt.UTC)
    end = dt.datetime.combine(local + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
    folder = source or settings.outbox_dir
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        sent = MessageStore(uow.connection(), owner.id).letters_sent(start, end)
    letters, missing = [], []
    for attempt, case_ref, name, postcode, city, country in sent:
        path = folder / f"{attempt}.pdf"
        if not path.exists():
            missing.append(attempt)
            continue
        row = ManifestRow(attempt, case_ref, 0, 0, 0, name, postcode, city, country)
        letters.append((path, row))
    try:
        batch = join_letters(letters, target, name=f"letters-{local}", duplex=not simplex)
    except LetterError as error:
        _fail(f"{day}: {error}")
    out.print(
        f"{len(batch.rows):,} letters, {batch.total_pages:,} pages on {batch.sheets:,} sheets: "
        f"{batch.pdf_path} and {batch.manifest_path}"
    )
    if missing:
        out.print(f"{len(missing):,} letters not found in {folder} (written elsewhere?)")
