"""The local Snowflake changes a column's type in place exactly when Snowflake does
(docs.snowflake.com, "ALTER TABLE … ALTER COLUMN"): a longer VARCHAR, a NUMBER with more
precision and the same scale, or less precision when every value fits; nothing else. A stream on
the table keeps working after a widening."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import snowflake.connector
from snowflake.connector.errors import ProgrammingError

DB = "AURORA_SYNC"


@pytest.fixture(scope="module")
def sf(stack: dict[str, Any]) -> Iterator[Any]:
    conn = snowflake.connector.connect(**stack["snowflake"])
    conn.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {DB}.ALTERS")
    yield conn
    conn.close()


@pytest.fixture
def table(sf: Any) -> str:
    name = f"{DB}.ALTERS.T_{uuid.uuid4().hex[:8].upper()}"
    cur = sf.cursor()
    cur.execute(f"CREATE TABLE {name} (N NUMBER(10,0), S VARCHAR(10), A NUMBER(8,2), T VARCHAR, D DATE)")
    cur.execute(f"INSERT INTO {name} VALUES (12345, 'abc', 1.25, 'text', '2024-01-01')")
    return name


def types(sf: Any, table: str) -> dict[str, tuple[Any, ...]]:
    schema, name = table.split(".")[1:]
    cur = sf.cursor()
    cur.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE "
        f"FROM {DB}.INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = '{schema}' AND TABLE_NAME = '{name}'"
    )
    return {row[0]: tuple(row[1:]) for row in cur.fetchall()}


@pytest.mark.parametrize(
    "change",
    [
        "ALTER COLUMN N SET DATA TYPE NUMBER(19,0)",
        "ALTER COLUMN S SET DATA TYPE VARCHAR(50)",
        "ALTER COLUMN S SET DATA TYPE VARCHAR",
        "MODIFY COLUMN A TYPE NUMBER(12,2)",
        "ALTER N SET DATA TYPE NUMBER(6,0)",  # less precision, and 12345 still fits
        "ALTER COLUMN T SET DATA TYPE STRING",  # a synonym
    ],
)
def test_changes_snowflake_makes_in_place_are_made(sf: Any, table: str, change: str) -> None:
    sf.cursor().execute(f"ALTER TABLE {table} {change}")


def test_the_widened_types_read_back(sf: Any, table: str) -> None:
    cur = sf.cursor()
    cur.execute(f"ALTER TABLE {table} ALTER COLUMN N SET DATA TYPE NUMBER(19,0)")
    cur.execute(f"ALTER TABLE {table} ALTER COLUMN S SET DATA TYPE VARCHAR(50)")
    cur.execute(f"ALTER TABLE {table} ALTER COLUMN A SET DATA TYPE NUMBER(12,2)")
    found = types(sf, table)
    assert found["N"] == ("NUMBER", None, 19, 0)
    assert found["S"] == ("TEXT", 50, None, None)
    assert found["A"] == ("NUMBER", None, 12, 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "ALTER COLUMN T SET DATA TYPE NUMBER(10,0)",
            "cannot change column T from type VARCHAR(16777216) to NUMBER(10,0)",
        ),
        (
            "ALTER COLUMN N SET DATA TYPE VARCHAR",
            "cannot change column N from type NUMBER(10,0) to VARCHAR(16777216)",
        ),
        (
            "ALTER COLUMN D SET DATA TYPE TIMESTAMP_NTZ",
            "cannot change column D from type DATE to TIMESTAMP_NTZ",
        ),
        ("ALTER COLUMN S SET DATA TYPE VARCHAR(5)", "reducing the byte-length of a varchar is not supported"),
        ("ALTER COLUMN A SET DATA TYPE NUMBER(12,4)", "changing the scale of a number is not supported"),
        ("ALTER COLUMN N SET DATA TYPE NUMBER(3,0)", "not sufficient to hold the values in the column"),
    ],
)
def test_changes_snowflake_refuses_are_refused_and_change_nothing(
    sf: Any, table: str, change: str, message: str
) -> None:
    before = types(sf, table)
    with pytest.raises(ProgrammingError) as refused:
        sf.cursor().execute(f"ALTER TABLE {table} {change}")
    text = str(refused.value.msg)
    assert "SQL compilation error" in text and message in text
    assert refused.value.errno == 2108
    assert types(sf, table) == before


def test_a_stream_on_the_table_keeps_working_after_a_widening(sf: Any, table: str) -> None:
    """Read, and consumed by a DML (which moves the stream's offset past the new, wide value)."""
    cur = sf.cursor()
    stream, sink = f"{table}_STREAM", f"{table}_SINK"
    cur.execute(f"CREATE STREAM {stream} ON TABLE {table} APPEND_ONLY = TRUE")
    cur.execute(f"CREATE TABLE {sink} (N NUMBER(19,0))")
    cur.execute(f"ALTER TABLE {table} ALTER COLUMN N SET DATA TYPE NUMBER(19,0)")
    cur.execute(f"INSERT INTO {table} VALUES (1099511627776, 'wide', 2.5, 'x', '2024-01-02')")
    cur.execute(f"SELECT N, S FROM {stream}")
    assert cur.fetchall() == [(1099511627776, "wide")]
    cur.execute(f"INSERT INTO {sink} SELECT N FROM {stream}")
    cur.execute(f"SELECT N FROM {sink}")
    assert cur.fetchall() == [(1099511627776,)]
    cur.execute(f"SELECT COUNT(*) FROM {stream}")
    assert cur.fetchall() == [(0,)]
