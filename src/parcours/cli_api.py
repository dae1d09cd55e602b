"""`parcours api-keys` and `parcours webhooks`: integrators' keys to the API, and the
endpoints their systems hear events on."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

api_keys_app = typer.Typer(no_args_is_help=True, help="API keys of the integrator API.")
webhooks_app = typer.Typer(
    no_args_is_help=True, help="Webhook endpoints: events pushed to creditors' systems."
)

Creditor = Annotated[
    str | None,
    typer.Option("--creditor", "-c", help="Creditor name (may be omitted when there is one)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _day(moment: dt.datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "—"


# -- API keys ----------------------------------------------------------------------------


@api_keys_app.command("create")
def api_keys_create(
    name: Annotated[str, typer.Argument(help="What the key is for, e.g. 'ERP sync'.")],
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", "-s", help="read, write or payments; repeat for several."),
    ] = None,
    creditor: Creditor = None,
    as_json: AsJson = False,
) -> None:
    """Make a key; it is printed once and only its hash is kept."""
    from parcours.cli import _audit, _creditor, _fail, _print_json, _unit_of_work, out
    from parcours.store.api import SCOPES, create_api_key

    scopes = [s.strip() for item in scope or [] for s in item.split(",") if s.strip()]
    if not scopes:
        _fail(f"give the key at least one --scope ({', '.join(SCOPES)})")
    now = _now()
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        try:
            made = create_api_key(uow.connection(), owner.id, name, scopes, now)
        except ValueError as error:
            _fail(str(error))
        details = {"name": made.key.name, "scopes": list(made.key.scopes)}
        _audit(uow, now, "api_key.created", owner, f"api_key:{made.key.prefix}", details)
        uow.commit()
    if as_json:
        _print_json(
            {"key": made.secret, "prefix": made.key.prefix, "scopes": list(made.key.scopes)}
        )
        return
    out.print(f"API key {made.key.name!r} for {owner.name} ({', '.join(made.key.scopes)}):")
    out.print(made.secret)
    out.print("Keep it now: it is shown only this once (revoke it if it leaks).")


@api_keys_app.command("list")
def api_keys_list(creditor: Creditor = None, as_json: AsJson = False) -> None:
    """The creditor's keys (their prefixes), revoked ones included."""
    from rich.table import Table

    from parcours.cli import _creditor, _print_json, _unit_of_work, out
    from parcours.store.api import api_keys

    with _unit_of_work() as uow:
        keys = api_keys(uow.connection(), _creditor(uow, creditor).id)
    if as_json:
        _print_json(
            [
                {
                    "prefix": k.prefix, "name": k.name, "scopes": list(k.scopes),
                    "created_at": k.created_at, "last_used_at": k.last_used_at,
                    "revoked_at": k.revoked_at,
                }
                for k in keys
            ]
        )  # fmt: skip
        return
    table = Table("key", "name", "scopes", "created", "last used", "revoked")
    for k in keys:
        table.add_row(
            k.shown, k.name, ", ".join(k.scopes), _day(k.created_at), _day(k.last_used_at),
            _day(k.revoked_at),
        )  # fmt: skip
    out.print(table)


@api_keys_app.command("revoke")
def api_keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix, as `list` shows it.")],
    creditor: Creditor = None,
) -> None:
    """Revoke a key: servers refuse it within 10 seconds."""
    from parcours.cli import _audit, _creditor, _fail, _unit_of_work, out
    from parcours.store.api import revoke_api_key

    now = _now()
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        key = revoke_api_key(uow.connection(), owner.id, prefix, now)
        if key is None:
            _fail(f"no API key {prefix!r} for {owner.name} (see `parcours api-keys list`)")
        _audit(uow, now, "api_key.revoked", owner, f"api_key:{key.prefix}")
        uow.commit()
    out.print(f"{key.shown} ({key.name}) revoked")


# -- webhooks ----------------------------------------------------------------------------


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="Where to POST the events (http or https).")],
    events: Annotated[
        list[str],
        typer.Option(
            "--events",
            "-e",
            help="Event types, comma-separated or repeated: case.paid, promise.made, "
            "promise.broken, dispute.opened, plan.created.",
        ),
    ],
    creditor: Creditor = None,
    as_json: AsJson = False,
) -> None:
    """Send these events to URL from now on, signed with a new secret (printed once)."""
    from parcours.cli import _audit, _creditor, _fail, _print_json, _unit_of_work, out
    from parcours.store.webhooks import add_endpoint

    types = [t.strip() for item in events for t in item.split(",") if t.strip()]
    now = _now()
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        try:
            endpoint = add_endpoint(uow.connection(), owner.id, url, types, now)
        except ValueError as error:
            _fail(str(error))
        details = {"events": list(endpoint.event_types)}
        _audit(uow, now, "webhook.added", owner, f"webhook:{endpoint.id}", details)
        uow.commit()
    if as_json:
        _print_json(
            {
                "id": str(endpoint.id),
                "secret": endpoint.secret,
                "events": list(endpoint.event_types),
            }
        )
        return
    out.print(f"webhook {endpoint.id} for {owner.name}: {', '.join(endpoint.event_types)}")
    out.print(f"signing secret (shown once): {endpoint.secret}")
    out.print("Check `Parcours-Signature` with parcours.runtime.webhooks.verify_signature.")


@webhooks_app.command("list")
def webhooks_list(creditor: Creditor = None, as_json: AsJson = False) -> None:
    """The creditor's endpoints and how their deliveries stand."""
    from rich.table import Table

    from parcours.cli import _creditor, _print_json, _unit_of_work, out
    from parcours.store.webhooks import WebhookStore, endpoints

    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        found = endpoints(uow.connection(), owner.id)
        states = WebhookStore(uow.connection(), owner.id).counts()
    rows: list[dict[str, Any]] = [
        {
            "id": str(e.id), "url": e.url, "events": list(e.event_types), "active": e.active,
            "created_at": e.created_at, "deliveries": dict(states.get(e.id, {})),
        }
        for e in found
    ]  # fmt: skip
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "url", "events", "active", "deliveries")
    for row in rows:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(row["deliveries"].items())) or "none"
        table.add_row(
            row["id"], row["url"], ", ".join(row["events"]), "yes" if row["active"] else "no",
            counts,
        )  # fmt: skip
    out.print(table)


@webhooks_app.command("deliver")
def webhooks_deliver(
    creditor: Annotated[
        str | None, typer.Option("--creditor", "-c", help="Only this creditor (default: all).")
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait per POST.")] = 10.0,
    as_json: AsJson = False,
) -> None:
    """Send the events not yet delivered and retry those whose backoff has passed."""
    import httpx

    from parcours.cli import _creditor, _engine, _print_json, _unit_of_work, out
    from parcours.runtime.webhooks import deliver_webhooks
    from parcours.settings import get_settings

    with _unit_of_work() as uow:
        owners = [_creditor(uow, creditor)] if creditor else uow.creditors.all()
    engine = _engine(get_settings())
    reports = {}
    try:
        with httpx.Client(timeout=timeout) as client:
            for owner in owners:
                reports[owner.name] = deliver_webhooks(engine, owner.id, _now(), client).as_dict()
    finally:
        engine.dispose()
    if as_json:
        _print_json(reports)
        return
    for name, r in reports.items():
        out.print(
            f"{name}: {r['queued']} new, {r['delivered']} delivered, {r['retrying']} to retry, "
            f"{r['failed']} failed"
        )


@webhooks_app.command("log")
def webhooks_log(
    creditor: Creditor = None,
    status: Annotated[
        str | None, typer.Option(help="Only pending, delivered or failed deliveries.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: AsJson = False,
) -> None:
    """The latest deliveries: attempts, next try, last answer."""
    from rich.table import Table

    from parcours.cli import _creditor, _fail, _print_json, _unit_of_work, out
    from parcours.store.webhooks import WebhookStore

    if status not in (None, "pending", "delivered", "failed"):
        _fail(f"--status {status!r}: pending, delivered or failed")
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        entries = WebhookStore(uow.connection(), owner.id).log(limit=limit, status=status)
    if as_json:
        _print_json(
            [
                {
                    "event": str(e.event_id), "type": e.type, "url": e.url, "status": e.status,
                    "attempts": e.attempts, "next_at": e.next_at,
                    "last_status_code": e.last_status_code, "last_error": e.last_error,
                    "delivered_at": e.delivered_at,
                }
                for e in entries
            ]
        )  # fmt: skip
        return
    table = Table("event", "type", "url", "status", "attempts", "next try", "last answer")
    for e in entries:
        answer = e.last_error or (str(e.last_status_code) if e.last_status_code else "—")
        table.add_row(
            str(e.event_id)[:8], e.type, e.url, e.status, str(e.attempts), _day(e.next_at),
            answer,
        )  # fmt: skip
    out.print(table)
