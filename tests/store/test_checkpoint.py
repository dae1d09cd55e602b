"""SQLite: a large commit can leave the copy of its write-ahead log into the database file
to a background thread, and the connection checkpoints as usual again after it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from sqlalchemy import Connection, Engine

from parcours.store.db import checkpoint_in_background, checkpoints_done, connect


def _database(path: Path) -> Engine:
    """An engine on a new SQLite file with one table, its creation checkpointed."""
    engine = connect(f"sqlite:///{path}")
    with engine.connect() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x BLOB)")
        connection.commit()
    checkpoints_done()
    return engine


def _write(connection: Connection, megabytes: int) -> None:
    rows = [(os.urandom(1_000),) for _ in range(megabytes * 1_000)]
    connection.exec_driver_sql("INSERT INTO t VALUES (?)", rows)
    connection.commit()


def test_a_commit_leaves_its_checkpoint_to_the_background_thread(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    engine = _database(path)
    with engine.connect() as connection:
        before = path.stat().st_size
        checkpoint_in_background(connection)
        _write(connection, 5)  # 1,200 pages: over SQLite's automatic checkpoint (1,000)
        # The pages are in the write-ahead log only: the commit did not copy them.
        assert path.stat().st_size == before
    checkpoints_done()  # back in the pool: the thread copied them
    grown = path.stat().st_size
    assert grown > before + 4_000_000
    with engine.connect() as connection:  # and checkpoints itself again, as by default
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        _write(connection, 5)
        assert path.stat().st_size > grown + 4_000_000
    engine.dispose()


def test_nothing_is_deferred_for_a_database_in_memory() -> None:
    engine = connect("sqlite://")
    with engine.connect() as connection:
        checkpoint_in_background(connection)
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    engine.dispose()


def test_a_forked_process_checkpoints_with_its_own_thread(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    engine = _database(path)
    with engine.connect() as connection:
        checkpoint_in_background(connection)
        _write(connection, 1)
    checkpoints_done()  # the parent's thread exists now
    engine.dispose()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's outcome is its exit status
        code = 1
        signal.alarm(30)  # a child left waiting for a thread it lacks dies, and fails the test
        try:
            forked = connect(f"sqlite:///{path}")
            with forked.connect() as connection:
                before = path.stat().st_size
                checkpoint_in_background(connection)
                _write(connection, 5)
            checkpoints_done()
            code = 0 if path.stat().st_size > before + 4_000_000 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
