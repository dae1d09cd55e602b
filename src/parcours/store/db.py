"""Engines for the embedded SQLite default and PostgreSQL, with errors that name the URL."""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
import threading
import time
import urllib.parse
from typing import Any, Final

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, OperationalError

__all__ = [
    "DatabaseUnavailable",
    "checkpoint_in_background",
    "checkpoints_done",
    "connect",
    "normalize_url",
    "safe_url",
]

_AUTOCHECKPOINT: Final = 1000  # SQLite's default, in pages
_DEFERRED: Final = "parcours.checkpoint_in_background"


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


class _Checkpointer:
    """One thread of the process that copies SQLite write-ahead logs into their database
    files (a passive checkpoint: it never blocks a reader or a writer), for the commits
    that left theirs to it (`checkpoint_in_background`).

    The checkpoint is the same work SQLite's automatic one would have done inside the
    commit; here it runs beside what the process does next (a tick's dispatch). A process
    that ends first leaves it to SQLite, which checkpoints when the database's last
    connection closes: a checkpoint can stop at any point without harm.
    """

    def __init__(self) -> None:
        self._reset()
        # A forked child has no thread: it starts its own when it first needs one.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._paths: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.seconds = 0.0  # spent checkpointing so far (benchmarks report it)

    def request(self, path: str) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sqlite-checkpoint", daemon=True
                )
                self._thread.start()
        self._paths.put(path)

    def _run(self) -> None:
        while True:
            path = self._paths.get()
            started = time.perf_counter()
            try:  # mode=rw: a database removed meanwhile is not created again, empty
                uri = f"file:{urllib.parse.quote(path)}?mode=rw"
                with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
                    db.execute("PRAGMA busy_timeout=10000")
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass  # gone, or busy: SQLite's next automatic checkpoint does it
            finally:
                self.seconds += time.perf_counter() - started
                self._paths.task_done()

    def join(self) -> None:
        self._paths.join()


_CHECKPOINTER: Final = _Checkpointer()


def in_memory(connection: Connection) -> bool:
    """Whether this is a SQLite database in memory (of this connection alone)."""
    database = connection.engine.url.database
    return connection.dialect.name == "sqlite" and database in (None, "", ":memory:")


def checkpoint_in_background(connection: Connection) -> None:
    """SQLite: the next commit of this connection's transaction returns once its pages
    are in the write-ahead log, and a background thread copies them into the database
    file after it (by default SQLite does that inside the commit of a large
    transaction: 0.6 of the 0.9 s a million-case tick took to commit). Nothing on
    PostgreSQL, which checkpoints on its own."""
    if connection.dialect.name != "sqlite" or in_memory(connection):
        return
    database = connection.engine.url.database
    assert database is not None  # a file: see in_memory
    proxied = connection.connection
    proxied.driver_connection.execute("PRAGMA wal_autocheckpoint=0")  # type: ignore[union-attr]
    proxied.info[_DEFERRED] = os.path.abspath(database)


def checkpoints_done() -> float:
    """Wait for the background checkpoints asked for so far; seconds they took in all."""
    _CHECKPOINTER.join()
    return _CHECKPOINTER.seconds


def _checkin(dbapi_connection: Any, record: Any) -> None:
    """Back in the pool: a connection whose commit left its checkpoint to the thread
    checkpoints automatically again, and the thread is asked."""
    path = record.info.pop(_DEFERRED, None) if record is not None else None
    if path is not None:
        dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT}")
        _CHECKPOINTER.request(path)


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
        event.listen(engine, "checkin", _checkin)
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
