"""The Snowflake emulator's reads of DuckDB's catalog, which a MERGE task's run makes several
times: each must read one object, not scan every table of the account, and answer exactly what
the scan answered (the scan grew with the tables: 2,000 synced tables are 6,000 in DuckDB)."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from aurora_sync_ops.local.snowflake.history import table_columns

TABLE = (
    'CREATE TABLE D.S."Mixed ""q"" T" (id DECIMAL(38,0) PRIMARY KEY, b BOOLEAN NOT NULL DEFAULT false, '
    "ts TIMESTAMPTZ DEFAULT now(), n BIGINT DEFAULT nextval('D.S.seq'), j JSON, l INTEGER[], "
    "st STRUCT(a INT, b VARCHAR), m MAP(VARCHAR, INT), u UUID, bl BLOB, \"we ird\" VARCHAR DEFAULT 'a''b')"
)


def test_a_tables_columns_are_what_the_catalog_scan_gave_and_none_for_a_missing_table() -> None:
    con = duckdb.connect()
    con.execute("ATTACH ':memory:' AS D")
    con.execute("CREATE SCHEMA D.S")
    con.execute("CREATE SEQUENCE D.S.seq")
    con.execute(TABLE)
    scanned = con.execute(
        "SELECT column_name, data_type, column_default, is_nullable FROM duckdb_columns() "
        "WHERE database_name = 'D' AND schema_name = 'S' AND table_name = ? ORDER BY column_index",
        ['Mixed "q" T'],
    ).fetchall()
    assert len(scanned) == 11
    assert table_columns(con, ("D", "S", 'Mixed "q" T')) == scanned
    assert table_columns(con, ("D", "S", "nope")) == []
    assert table_columns(con, ("D", "nope", "T")) == []


def test_the_temporary_table_a_merge_creates_is_registered_as_fakesnow_registers_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fakesnow.instance import FakeSnow
    from fakesnow.transforms.stage import TableStages

    from aurora_sync_ops.local.snowflake.server import temporary_tables_from_the_temp_catalog

    def registered(fs: Any) -> dict[int, tuple[str | None, str | None]]:
        conn = fs.connect("DB", "SCH")
        cur = conn.cursor()
        cur.execute("CREATE SCHEMA IF NOT EXISTS DB.OTHER")
        cur.execute("CREATE TABLE DB.OTHER.KEEP (X INT)")
        cur.execute("CREATE TEMPORARY TABLE SCRATCH (X INT)")
        cur.execute("USE SCHEMA DB.OTHER")
        cur.execute("CREATE TEMPORARY TABLE SCRATCH2 (X INT)")
        cur.execute("DROP TABLE SCRATCH")
        cur.execute("USE SCHEMA DB.SCH")
        cur.execute("CREATE TEMPORARY TABLE SCRATCH3 (X INT)")
        session = conn.table_stages._duck_conn  # temporary tables are the session's own
        oids = dict(
            session.execute("SELECT table_name, table_oid FROM duckdb_tables() WHERE temporary").fetchall()
        )
        return {name: conn.table_stages._temporary[oid] for name, oid in oids.items()}

    original = registered(FakeSnow())  # creates the database and schema it connects to
    monkeypatch.setattr(TableStages, "record_temporary_table", TableStages.record_temporary_table)
    temporary_tables_from_the_temp_catalog()
    assert TableStages.record_temporary_table.__module__ == "aurora_sync_ops.local.snowflake.server"
    assert (
        registered(FakeSnow())
        == original
        == {
            "SCRATCH2": ("DB", "OTHER"),
            "SCRATCH3": ("DB", "SCH"),
        }
    )
