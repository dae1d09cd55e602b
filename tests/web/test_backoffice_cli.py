"""`parcours users` (add, list, disable) on SQLite and PostgreSQL: a generated password
printed once that then signs in, a password from standard input, clear errors, and a
disabled user whose sessions end."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy import Engine, select
from typer.testing import CliRunner, Result

from parcours.cli_users import users_app
from parcours.settings import get_settings
from parcours.store.schema import AuditRow, UserRow
from parcours.store.users import UserStore
from tests.runtime.test_tick import START, load
from tests.store.test_users import FAST

# The commands as `parcours users ...` runs them (cli.py registers users_app the same way).
app = typer.Typer()
app.add_typer(users_app, name="users")


@pytest.fixture
def database(
    engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    """A database with the creditor acme, which the commands reach through the settings."""
    load(engine, tmp_path)
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("PARCOURS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PARCOURS_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield engine
    get_settings.cache_clear()


def invoke(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=stdin)


def test_a_generated_password_is_printed_once_and_signs_in(database: Engine) -> None:
    made = invoke("users", "add", "Ann@Acme.example", "--name", "Ann Agent", "--role", "agent")
    assert made.exit_code == 0, made.output
    assert "ann@acme.example (agent) added for acme" in made.output
    password = made.output.split("password (shown once): ")[1].split()[0]
    with database.begin() as connection:
        stored = connection.execute(select(UserRow.password_hash)).scalar_one()
        assert password not in stored and stored.startswith("$argon2id$")
        signed = UserStore(connection, FAST).sign_in("ann@acme.example", password, START)
        assert signed.user is not None
    with database.connect() as connection:
        actions = connection.execute(select(AuditRow.actor, AuditRow.action)).all()
    assert ("cli", "user.added") in [tuple(a) for a in actions]


def test_a_password_from_stdin_is_not_printed(database: Engine) -> None:
    secret = "typed in a pipe, long enough"
    made = invoke(
        "users", "add", "v@acme.example", "-n", "Vic Viewer", "-r", "viewer",
        "--password-stdin", stdin=secret + "\n",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert secret not in made.output and "shown once" not in made.output
    with database.begin() as connection:
        assert UserStore(connection, FAST).sign_in("v@acme.example", secret, START).user
    short = invoke(
        "users", "add", "w@acme.example", "-n", "W", "-r", "viewer", "--password-stdin",
        stdin="short\n",
    )  # fmt: skip
    assert short.exit_code == 2 and "at least 12 characters" in short.output


def test_bad_input_is_a_clear_error(database: Engine) -> None:
    invoke("users", "add", "a@acme.example", "-n", "A", "-r", "agent")
    twice = invoke("users", "add", "A@acme.example", "-n", "A", "-r", "agent")
    assert twice.exit_code == 2 and "already exists" in twice.output
    role = invoke("users", "add", "b@acme.example", "-n", "B", "-r", "boss")
    assert role.exit_code == 2 and "boss" in role.output
    nobody = invoke("users", "add", "c@acme.example", "-n", "C", "-r", "agent", "-c", "nope")
    assert nobody.exit_code == 2 and "no creditor named 'nope'" in nobody.output


def test_users_are_listed_and_a_disabled_one_loses_its_sessions(database: Engine) -> None:
    invoke("users", "add", "b@acme.example", "-n", "Bea", "-r", "admin")
    invoke("users", "add", "a@acme.example", "-n", "Al", "-r", "agent")
    listed = invoke("users", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [(u["email"], u["role"], u["disabled_at"]) for u in json.loads(listed.output)] == [
        ("a@acme.example", "agent", None),
        ("b@acme.example", "admin", None),
    ]
    assert "Bea" in invoke("users", "list").output
    with database.begin() as connection:
        user = UserStore(connection, FAST).by_email("a@acme.example")
        assert user is not None
        token = UserStore(connection, FAST).create_session(user.id, START)
    gone = invoke("users", "disable", "A@acme.example")
    assert gone.exit_code == 0 and "disabled" in gone.output
    with database.begin() as connection:
        assert UserStore(connection, FAST).session(token, START) is None
    listed_after = json.loads(invoke("users", "list", "--json").output)
    assert listed_after[0]["disabled_at"] is not None
    missing = invoke("users", "disable", "nobody@acme.example")
    assert missing.exit_code == 2 and "no user" in missing.output
