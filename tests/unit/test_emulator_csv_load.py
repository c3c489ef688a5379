"""The Snowflake emulator's file loader (``aurora_sync_ops.local.snowflake.csv_load``) on an
in-memory DuckDB, without a server: what a pipe's COPY_HISTORY row says about a file whose records
have the wrong number of fields, and the record numbers of the rows loaded around rejected records.

The emulator over HTTP is tested in ``tests/local_stack/test_snowflake_emulator.py``; here the
loader's own statements can be watched, so the cost of a rejected record is pinned by what it
sends to DuckDB rather than by a clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from aurora_sync_ops.local.snowflake.catalog import ObjectName
from aurora_sync_ops.local.snowflake.csv_load import HISTORY_RESULT_SET, LoadResult, LoadSpec, load_csv

# The product's file format (sql/snowflake/04_stage.sql) and the pipe's SELECT list
# (aurora_sync.snowflake_objects.copy_statement): three source fields, then load metadata.
PRODUCT_FORMAT = {
    "FIELD_OPTIONALLY_ENCLOSED_BY": '"',
    "ESCAPE": "NONE",
    "EMPTY_FIELD_AS_NULL": True,
    "NULL_IF": [],
    "SKIP_HEADER": 0,
    "ERROR_ON_COLUMN_COUNT_MISMATCH": True,
}
SELECT = ["$1", "$2", "$3", "METADATA$FILENAME", "METADATA$FILE_ROW_NUMBER"]
MISMATCH = (
    "Number of columns in file ({found}) does not match that of the corresponding table (3), "
    "use file format option error_on_column_count_mismatch=false to ignore this error"
)


class RecordingCursor:
    """A DuckDB connection that remembers every statement the loader sends it."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn
        self.statements: list[str] = []

    def execute(self, statement: str, params: Any = None) -> duckdb.DuckDBPyConnection:
        self.statements.append(statement)
        return self.conn.execute(statement, params)

    def fetchone(self) -> Any:
        return self.conn.fetchone()


@pytest.fixture
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    conn = duckdb.connect()
    conn.execute("CREATE TABLE staging (id BIGINT, note VARCHAR, qty INTEGER, _file VARCHAR, _row BIGINT)")
    conn.execute(
        "CREATE TABLE history (load_id VARCHAR, status VARCHAR, row_count BIGINT, row_parsed BIGINT, "
        "error_count BIGINT, error_limit BIGINT, first_error_message VARCHAR, "
        "first_error_line_number BIGINT, first_error_character_pos BIGINT, first_error_column_name VARCHAR)"
    )
    conn.execute("INSERT INTO history (load_id) VALUES ('load-1')")
    yield conn
    conn.close()


def load(
    duck: duckdb.DuckDBPyConnection, path: Path, on_error: str = "SKIP_FILE", **options: Any
) -> tuple[LoadResult, tuple[Any, ...], RecordingCursor]:
    cursor = RecordingCursor(duck)
    spec = LoadSpec(
        target=ObjectName("memory", "main", "staging"),
        columns=None,
        select=SELECT,
        options={**PRODUCT_FORMAT, **options},
        on_error=on_error,
        file_name=f"orders/{path.name}",
    )
    update = (f"UPDATE history SET {HISTORY_RESULT_SET} WHERE load_id = ?", ["load-1"])
    result = load_csv(cursor, str(path), spec, update)  # type: ignore[arg-type]
    row = duck.execute("SELECT * EXCLUDE (load_id) FROM history").fetchone()
    assert row is not None
    return result, row, cursor


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


@pytest.mark.parametrize(("fields", "record"), [(4, "{i},note {i},1,extra"), (2, "{i},note {i}")])
def test_a_large_file_of_the_wrong_shape_fails_whole_with_snowflakes_history_row(
    duck: duckdb.DuckDBPyConnection, tmp_path: Path, fields: int, record: str
) -> None:
    rows = 20_000
    path = write(tmp_path / "wide.csv", [record.format(i=i) for i in range(1, rows + 1)])
    result, history, _ = load(duck, path)
    assert result.status == "Load failed"
    assert history == ("Load failed", 0, rows, rows, 1, MISMATCH.format(found=fields), 1, 1, None)
    assert duck.execute("SELECT count(*) FROM staging").fetchone() == (0,)


def test_no_statement_grows_with_the_number_of_rejected_records(
    duck: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # Before, every rejected record's number was spliced into each column's expression: the
    # statements of a 20,000-record file of the wrong shape ran to megabytes, and sqlglot parsed
    # and copied them once per column (tens of seconds for a file Snowflake fails at once).
    def longest_statement(bad: int) -> int:
        good = [f"{i},n,{i}" for i in range(1, 11)]
        path = write(tmp_path / f"bad-{bad:06d}.csv", good + [f"{i},n,{i},x" for i in range(bad)])
        result, _, cursor = load(duck, path, on_error="CONTINUE")
        assert (result.row_count, result.error_count) == (10, bad)
        duck.execute("DELETE FROM staging")
        return max(len(s) for s in cursor.statements)

    assert longest_statement(5_000) == longest_statement(1)


def test_loaded_rows_keep_their_record_numbers_around_rejected_records(
    duck: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    lines = ["header", "1,a,1", "2,b", "3,c,3", "4,d,4,x", "5,e,5,y", "6,f,6", "7,g", "8,h,8"]
    result, history, _ = load(duck, write(tmp_path / "mixed.csv", lines), on_error="CONTINUE", SKIP_HEADER=1)
    assert history == ("Partially loaded", 4, 8, 4, 8, MISMATCH.format(found=2), 3, 1, None)
    assert result.row_count == 4
    # METADATA$FILE_ROW_NUMBER counts records after the header, rejected ones included.
    loaded = duck.execute("SELECT id, _row, _file FROM staging ORDER BY id").fetchall()
    assert loaded == [
        (1, 1, "orders/mixed.csv"),
        (3, 3, "orders/mixed.csv"),
        (6, 6, "orders/mixed.csv"),
        (8, 8, "orders/mixed.csv"),
    ]
