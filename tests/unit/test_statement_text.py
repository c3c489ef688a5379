"""The text of a planner/verifier statement does not grow with the tables or files it covers.

A run of 2,000 tables failed in the planner: the INFORMATION_SCHEMA.COLUMNS read bound one ``?``
per table, and the emulator (which translates every new statement text) took over 60 s on it;
real Snowflake also compiles every distinct text anew. Each statement below that covers a list of
tables (or a key snapshot's files) is sent here for 3 names and for 300, through a cursor that
records what it receives: the texts must be identical and so must the number of binds, the list
travelling as one JSON array (``warehouse_db.bound_list``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from aurora_sync.ledger import (
    AccountedFile,
    Ledger,
    RunRecord,
    last_merged_source_times,
    mark_merged,
    read_history,
    record_layouts,
    record_runs,
)
from aurora_sync.messages import SourceSnapshot
from aurora_sync.naming import SnowflakeObjects
from aurora_sync.schema_evolution import read_warehouse_columns
from aurora_sync.snowflake_objects import missing_keys_query, reconcile_delete
from aurora_sync.verifying.reconciliation import _clear
from aurora_sync.warehouse_db import bound_list

LEDGER = Ledger("DB", "STAGING")
OBJECTS = SnowflakeObjects("DB", "STAGING", "FINAL", "ORDERS")
STARTED = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


class Recorder:
    """A connection whose cursors record (text, binds) and answer no rows."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any]]] = []
        self.rowcount = 0
        self.description: list[Any] = []

    def cursor(self) -> Recorder:
        return self

    def execute(self, statement: str, params: Any = None) -> None:
        self.sent.append((statement, list(params or [])))

    def executemany(self, statement: str, rows: Any) -> None:
        # The connector sends an executemany as one request with its rows bound as arrays.
        self.sent.append((statement, ["<rows>"]))

    def fetchall(self) -> list[tuple[Any, ...]]:
        return []

    def fetchone(self) -> tuple[Any, ...] | None:
        return None

    def close(self) -> None:
        pass


def names(n: int) -> list[str]:
    return [f"t{i:04d}" for i in range(n)]


def run(target: str) -> RunRecord:
    snapshot = SourceSnapshot(
        order="11", source_time=STARTED.isoformat(), horizon=STARTED.isoformat(), cursor_type="int8"
    )
    return RunRecord(target, "run-1", snapshot, None, ("id",), "updated_at", files=1, rows=1)


def columns(conn: Any, tables: list[str]) -> None:
    read_warehouse_columns(
        conn, database="DB", staging_schema="STAGING", final_schema="FINAL", targets=tables
    )


def history(conn: Any, tables: list[str]) -> None:
    read_history(conn, LEDGER, tables)


def records(conn: Any, tables: list[str]) -> None:
    record_runs(
        conn, LEDGER, [run(t) for t in tables], {t: [AccountedFile(f"{t}/a.csv", 11, 1)] for t in tables}
    )


def merges(conn: Any, tables: list[str]) -> None:
    mark_merged(conn, LEDGER, "run-1", [(t, STARTED, True) for t in tables])


def source_times(conn: Any, tables: list[str]) -> None:
    last_merged_source_times(conn, LEDGER, tables)


def layouts(conn: Any, tables: list[str]) -> None:
    record_layouts(conn, LEDGER, [(t, "f1", "[]") for t in tables])


def key_snapshot(conn: Any, files: list[str]) -> None:
    cur = conn.cursor()
    types = {"ID": "NUMBER"}
    cur.execute(missing_keys_query(OBJECTS, ["ID"], types), [bound_list(files)])
    cur.execute(reconcile_delete(OBJECTS, ["ID"], types, bool(files)), ["11", bound_list(files)])
    _clear(cur, OBJECTS, files)


STATEMENTS: dict[str, Callable[[Any, list[str]], None]] = {
    "read_warehouse_columns": columns,
    "ledger.read_history": history,
    "ledger.record_runs": records,
    "ledger.mark_merged": merges,
    "ledger.last_merged_source_times": source_times,
    "ledger.record_layouts": layouts,
    "reconciliation (key files)": key_snapshot,
}


def sent(statement: Callable[[Any, list[str]], None], n: int) -> list[tuple[str, int]]:
    conn = Recorder()
    statement(conn, names(n))
    return [(text, len(binds)) for text, binds in conn.sent]


@pytest.mark.parametrize("statement", list(STATEMENTS.values()), ids=list(STATEMENTS))
def test_the_statement_text_is_the_same_for_3_and_300_names(
    statement: Callable[[Any, list[str]], None],
) -> None:
    few, many = sent(statement, 3), sent(statement, 300)
    assert few, "the statement was sent"
    assert many == few


@pytest.mark.parametrize("statement", list(STATEMENTS.values()), ids=list(STATEMENTS))
def test_every_name_travels_in_one_json_array(statement: Callable[[Any, list[str]], None]) -> None:
    conn = Recorder()
    statement(conn, names(300))
    arrays = [b for _, binds in conn.sent for b in binds if isinstance(b, str) and b.startswith("[")]
    assert arrays, conn.sent
    for text, binds in conn.sent:
        if any(isinstance(b, str) and b.startswith("[") for b in binds):
            assert "FLATTEN(INPUT => PARSE_JSON(?))" in text, text
    # Every array carries all 300 names, in their case, once each (or objects naming them).
    for array in arrays:
        items = json.loads(array)
        listed = [item["target"] if isinstance(item, dict) else item for item in items]
        assert listed == names(300)


TABLE_STATEMENTS = {k: v for k, v in STATEMENTS.items() if v is not key_snapshot}


@pytest.mark.parametrize("statement", list(TABLE_STATEMENTS.values()), ids=list(TABLE_STATEMENTS))
def test_no_tables_no_statement(statement: Callable[[Any, list[str]], None]) -> None:
    conn = Recorder()
    statement(conn, [])
    assert conn.sent == []
