"""Engines for the embedded SQLite default and PostgreSQL, with errors that name the URL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, OperationalError

__all__ = ["DatabaseUnavailable", "connect", "normalize_url", "safe_url"]


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or opened; the message names the URL sans password."""


def normalize_url(url: str | URL) -> URL:
    """Parse a URL and pick psycopg 3 for plain `postgresql://` URLs."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUnavailable(f"not a database URL: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def safe_url(url: str | URL) -> str:
    """The URL with its password masked, fit for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the web app) go on while an import writes; NORMAL is durable in WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA cache_size=-262144")  # 256 MiB page cache for bulk work
    # Staged keys (temporary tables of a tick or an import) stay in memory.
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def connect(url: str | URL, *, check: bool = True, **kwargs: Any) -> Engine:
    """Create an engine; with `check`, open one connection so a bad URL fails here, clearly."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", 5)
    # A failing statement's error message never carries its parameters (personal data).
    kwargs.setdefault("hide_parameters", True)
    engine = create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if check:
        try:
            with engine.connect():
                pass
        except OperationalError as exc:
            engine.dispose()
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise DatabaseUnavailable(
                f"cannot reach the database at {safe_url(parsed)}: {reason}"
            ) from None
    return engine
