"""The planner's watermark read for more tables than one SELECT list of subqueries may hold.

A run of 2,000 tables failed in the planner: FINAL's row counts were read as one scalar subquery
per table in one SELECT list, which the emulator's engine refuses past 1,000 expressions deep
(and whose shape Snowflake has no reason to compile well). The counts are now one row per table
of a UNION ALL. In-process fakesnow: 1,100 FINAL tables, half of them empty.
"""

from __future__ import annotations

import fakesnow
import snowflake.connector

from aurora_sync.config import LoadedTable, TableConfig
from aurora_sync.planning.watermarks import read_watermarks
from aurora_sync_ops.snowflake_sql import SETUP_DIR, split_statements

TABLES = 1100


def ledger_tables(database: str, schema: str) -> list[str]:
    """The setup's CREATE TABLE statements of the export ledger, for this database and schema."""
    text = (SETUP_DIR / "05_export_ledger.sql").read_text()
    text = text.replace("{{database}}", database).replace("{{staging_schema}}", schema)
    return [s for s in split_statements(text) if s.startswith("CREATE TABLE")]


def test_the_watermarks_of_1100_tables_are_read_in_one_pass() -> None:
    names = [f"t{i:04d}" for i in range(TABLES)]
    with fakesnow.patch():
        conn = snowflake.connector.connect(database="SCALEDB", schema="STAGING", paramstyle="qmark")
        cur = conn.cursor()
        for statement in (
            "CREATE DATABASE IF NOT EXISTS SCALEDB",
            "USE DATABASE SCALEDB",
            "CREATE SCHEMA IF NOT EXISTS STAGING",
            "CREATE SCHEMA IF NOT EXISTS FINAL",
            *ledger_tables('"SCALEDB"', '"STAGING"'),
        ):
            cur.execute(statement)
        duck = conn._duck_conn  # type: ignore[attr-defined]
        for i, name in enumerate(names):
            final = f'"SCALEDB"."FINAL"."{name.upper()}"'
            duck.execute(f'CREATE TABLE {final} ("ID" DECIMAL(38,0), "UPDATED_AT" TIMESTAMPTZ)')
            if i % 2:
                duck.execute(f"INSERT INTO {final} VALUES (1, TIMESTAMPTZ '2026-01-01 00:00:00+00')")
        tables = [
            LoadedTable(
                n, f"/aurora-sync/tables/{n}", TableConfig.model_validate({"table": n, "primary_key": ["id"]})
            )
            for n in names
        ]
        results = read_watermarks(
            conn, tables, staging_schema="STAGING", final_schema="FINAL", database="SCALEDB"
        )
        conn.close()
    assert all(r.error is None for r in results.values()), next(r.error for r in results.values() if r.error)
    reasons = [results[n].reason for n in names]
    # An empty FINAL starts from nothing; a table with rows and no merged run in the ledger is
    # decided from the ledger (not "final empty"), each by its own count.
    assert reasons[0::2] == ["final empty"] * (TABLES // 2)
    assert "final empty" not in reasons[1::2]
