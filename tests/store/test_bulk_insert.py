"""PortfolioWriter.insert on SQLite writes several rows a statement and a column of one
value as a literal: what it stores must be what binding every value would store."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine

from parcours.store.bulk import PortfolioWriter

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=8),  # quotes and NUL included
    st.binary(max_size=8),
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[tuple[Any, ...]], tuple[Any, ...]]:
    """Rows of 1 to 6 columns, each column either of one value or of any values (numbers
    equal across types, such as 1, True and 1.0, included), and 0 to 2 leading values."""
    width = draw(st.integers(1, 6))
    count = draw(st.integers(1, 150))  # past the 64 rows of one statement
    columns = []
    for _ in range(width):
        kind = draw(st.sampled_from(["one value", "equal values", "any values"]))
        if kind == "one value":
            columns.append([draw(values)] * count)
        elif kind == "equal values":  # 1 == True == 1.0, each stored differently
            equal = st.sampled_from([(1, True, 1.0), (0, False, 0.0)])
            each = st.sampled_from(draw(equal))
            columns.append(draw(st.lists(each, min_size=count, max_size=count)))
        else:
            mixed = st.sampled_from([1, True, 1.0, 0, False]) | values
            columns.append(draw(st.lists(mixed, min_size=count, max_size=count)))
    leading = tuple(draw(st.lists(values, max_size=2)))
    return [tuple(row) for row in zip(*columns, strict=True)], leading


def _stored(connection: sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    names = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
    typed = ", ".join(f"{n}, typeof({n})" for n in names)
    return connection.execute(f"SELECT {typed} FROM {table} ORDER BY rowid").fetchall()


@settings(max_examples=200, deadline=None)
@given(tables())
def test_what_is_stored_is_what_binding_each_value_stores(
    table: tuple[list[tuple[Any, ...]], tuple[Any, ...]],
) -> None:
    rows, leading = table
    names = [f"c{i}" for i in range(len(leading) + len(rows[0]))]
    engine = create_engine("sqlite://")
    with engine.begin() as connection:
        for name in ("ours", "plain"):
            connection.exec_driver_sql(f"CREATE TABLE {name} ({', '.join(names)})")
        PortfolioWriter(connection, uuid.uuid4()).insert("ours", names, rows, leading=leading)
        raw = connection.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        marks = ", ".join("?" * len(names))
        raw.executemany(f"INSERT INTO plain VALUES ({marks})", [(*leading, *r) for r in rows])
        assert _stored(raw, "ours") == _stored(raw, "plain")
    engine.dispose()
