"""`beside`: database work in a thread while a batch's Python runs, on one connection
and transaction; its end and its errors are the caller's, whatever happens."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Connection

from parcours.runtime.batch import beside
from parcours.store.db import connect


def _table(connection: Connection) -> None:
    connection.exec_driver_sql("CREATE TABLE t (n INTEGER)")


def _fill(connection: Connection, ran_in: list[str]) -> None:
    ran_in.append(threading.current_thread().name)
    connection.exec_driver_sql(
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 50000) "
        "INSERT INTO t SELECT n FROM s"
    )


def test_the_work_runs_in_a_thread_beside_the_block_and_is_done_after_it(
    tmp_path: Path,
) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'b.db'}")
    ran_in: list[str] = []
    with engine.begin() as connection:
        _table(connection)
        with beside(connection, lambda: _fill(connection, ran_in)):
            pass
        # Done when the block ends, in the same transaction (nothing committed yet).
        assert connection.exec_driver_sql("SELECT COUNT(*) FROM t").scalar() == 50000
    assert ran_in and ran_in[0] != threading.current_thread().name
    engine.dispose()


def test_an_error_of_the_work_is_raised_when_the_block_ends(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'b.db'}")
    with engine.begin() as connection:
        _table(connection)
        reached = False
        nope = lambda: connection.exec_driver_sql("SELECT * FROM nope")  # noqa: E731
        with pytest.raises(Exception, match="no such table"), beside(connection, nope):
            reached = True
        assert reached
    engine.dispose()


def test_an_error_of_the_block_waits_for_the_work_before_it_rises(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'b.db'}")
    finished: list[float] = []

    def slow() -> None:
        time.sleep(0.3)
        finished.append(time.monotonic())

    with (
        engine.connect() as connection,
        pytest.raises(ZeroDivisionError),
        beside(connection, slow),
    ):
        _ = 1 / 0
    assert finished  # the caller's rollback would come now: the work is over
    engine.dispose()


def test_sqlite_in_memory_runs_the_work_first_in_the_same_thread() -> None:
    engine = connect("sqlite://")
    ran_in: list[str] = []
    with engine.begin() as connection:
        _table(connection)
        with beside(connection, lambda: _fill(connection, ran_in)):
            assert connection.exec_driver_sql("SELECT COUNT(*) FROM t").scalar() == 50000
    assert ran_in == [threading.current_thread().name]
    engine.dispose()


def test_nothing_to_do_is_nothing(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'b.db'}")
    with engine.begin() as connection, beside(connection, None):
        pass
    engine.dispose()
