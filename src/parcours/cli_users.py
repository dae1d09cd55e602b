"""`parcours users`: the people who sign in to the back office (agents, strategists,
administrators, viewers), each belonging to one creditor."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Annotated

import typer

__all__ = ["users_app"]

users_app = typer.Typer(
    no_args_is_help=True, help="Back-office users: agents, strategists, admins, viewers."
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


@users_app.command("add")
def users_add(
    email: Annotated[str, typer.Argument(help="The person's e-mail address (their login).")],
    name: Annotated[str, typer.Option("--name", "-n", help="Their name, as agents see it.")],
    role: Annotated[str, typer.Option("--role", "-r", help="admin, strategist, agent or viewer.")],
    creditor: Creditor = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read the password from standard input (first line)."
        ),
    ] = False,
) -> None:
    """Add a user; without --password-stdin a password is generated and printed once."""
    from parcours.cli import _audit, _creditor, _fail, _unit_of_work, out
    from parcours.store.users import UserError, UserStore, generate_password

    generated = not password_stdin
    password = generate_password() if generated else sys.stdin.readline().rstrip("\r\n")
    now = _now()
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        try:
            user = UserStore(uow.connection()).add(owner.id, email, name, role, password, now)
        except UserError as error:
            _fail(str(error))
        _audit(uow, now, "user.added", owner, f"user:{user.id}", {"role": user.role})
        uow.commit()
    out.print(f"user {user.email} ({user.role}) added for {owner.name}")
    if generated:
        out.print(f"password (shown once): {password}")


@users_app.command("list")
def users_list(creditor: Creditor = None, as_json: AsJson = False) -> None:
    """The creditor's users, disabled ones included."""
    from rich.table import Table

    from parcours.cli import _creditor, _print_json, _unit_of_work, out
    from parcours.store.users import UserStore

    with _unit_of_work() as uow:
        found = UserStore(uow.connection()).users(_creditor(uow, creditor).id)
    if as_json:
        _print_json(
            [
                {
                    "email": u.email, "name": u.name, "role": u.role,
                    "created_at": u.created_at, "last_login_at": u.last_login_at,
                    "disabled_at": u.disabled_at, "locked_until": u.locked_until,
                }
                for u in found
            ]
        )  # fmt: skip
        return
    table = Table("email", "name", "role", "last sign-in", "disabled")
    for u in found:
        table.add_row(u.email, u.name, u.role, _day(u.last_login_at), _day(u.disabled_at))
    out.print(table)


@users_app.command("disable")
def users_disable(
    email: Annotated[str, typer.Argument(help="The user's e-mail address.")],
    creditor: Creditor = None,
) -> None:
    """Disable a user: they can no longer sign in and their sessions end now."""
    from parcours.cli import _audit, _creditor, _fail, _unit_of_work, out
    from parcours.store.users import UserStore

    now = _now()
    with _unit_of_work() as uow:
        owner = _creditor(uow, creditor)
        user = UserStore(uow.connection()).disable(owner.id, email, now)
        if user is None:
            _fail(f"no user {email!r} for {owner.name} (see `parcours users list`)")
        _audit(uow, now, "user.disabled", owner, f"user:{user.id}")
        uow.commit()
    out.print(f"{user.email} disabled: their sessions have ended")
