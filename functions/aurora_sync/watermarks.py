"""Watermarks: MAX(cursor) of every FINAL table, read in one statement whatever the table count.

Two round trips at most, independent of the number of tables:
  1. ``INFORMATION_SCHEMA.COLUMNS`` of the FINAL schema, restricted to our tables (bound values):
     which FINAL tables exist, whether they have the cursor column, and its type. A missing
     table or column fails only that table (``WarehouseObjectMissing`` naming the command that
     creates it); querying it would fail the whole statement for everyone.
  2. ``SELECT (SELECT MAX(c) FROM t0) AS "W0", (SELECT MAX(c) FROM t1) AS "W1", ...``: one row,
     one natively typed column per table, so each value comes back typed like its cursor
     (aware datetime for TIMESTAMP_TZ/LTZ, naive for TIMESTAMP_NTZ, date, int/Decimal) rather
     than coerced to one common type as a UNION ALL would. MAX over an empty table is NULL.

Snowflake answers MAX of a column from micro-partition metadata, so neither statement scans
table data. The watermark is read from FINAL, i.e. from rows that really arrived, so a run that
failed half-way never moves it forward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .config import LoadedTable
from .errors import ConfigError, WarehouseObjectMissing
from .naming import SnowflakeObjects, quote, snowflake_column
from .planning import CursorValue
from .warehouse_db import warehouse_errors


@dataclass(frozen=True)
class WatermarkResult:
    """One table's state in FINAL: ``error`` set when it cannot be read, else ``value``
    (None = FINAL is empty) and the cursor column's Snowflake ``DATA_TYPE``."""

    value: CursorValue | None = None
    cursor_type: str | None = None
    error: WarehouseObjectMissing | None = None


def _create_command(name: str) -> str:
    return f"aurora-sync sql snowflake --tables {name} --apply"


def read_watermarks(
    conn: Any,
    tables: Sequence[LoadedTable],
    *,
    staging_schema: str,
    final_schema: str,
    database: str | None = None,
) -> dict[str, WatermarkResult]:
    """MAX(cursor) per table from FINAL; ``database`` defaults to the session's (from the secret).

    Errors that concern every table (Snowflake unreachable, database missing, privileges)
    propagate as the taxonomy's classes.
    """
    if not tables:
        return {}
    database = database or conn.database
    if not database:
        raise ConfigError(
            "the Snowflake session has no current database.",
            fix="set 'database' in the Snowflake secret in Vault",
        )
    objects = {
        t.name: SnowflakeObjects(
            database=database, staging_schema=staging_schema, final_schema=final_schema, target=t.target
        )
        for t in tables
    }
    targets = sorted({t.target for t in tables})
    catalog = f"{quote(database)}.{quote('INFORMATION_SCHEMA')}.{quote('COLUMNS')}"
    # Names are bound, not formatted: INFORMATION_SCHEMA stores them exactly as created (quoted).
    existence = (
        f'SELECT "TABLE_NAME", "COLUMN_NAME", "DATA_TYPE" FROM {catalog} '
        f'WHERE "TABLE_SCHEMA" = ? AND "TABLE_NAME" IN ({", ".join("?" for _ in targets)})'
    )
    cur = conn.cursor()
    try:
        with warehouse_errors(f"reading FINAL columns from {quote(database)}.{quote(final_schema)}"):
            cur.execute(existence, (final_schema, *targets))
            rows = cur.fetchall()
        columns: dict[str, dict[str, str]] = {}
        for table_name, column_name, data_type in rows:
            columns.setdefault(str(table_name), {})[str(column_name)] = str(data_type)

        results: dict[str, WatermarkResult] = {}
        readable: list[tuple[str, str]] = []  # (table name, scalar subquery)
        for table in tables:
            final = objects[table.name].final_table
            cursor_column = snowflake_column(table.config.cursor)
            found = columns.get(table.target)
            if found is None:
                results[table.name] = WatermarkResult(
                    error=WarehouseObjectMissing(
                        f"table {table.name!r}: FINAL table {final} does not exist.",
                        fix=f"create the table's Snowflake objects: {_create_command(table.name)}",
                    )
                )
            elif cursor_column not in found:
                results[table.name] = WatermarkResult(
                    error=WarehouseObjectMissing(
                        f"table {table.name!r}: FINAL table {final} has no cursor column "
                        f"{quote(cursor_column)} (config cursor {table.config.cursor!r}).",
                        fix="add the column to FINAL, or recreate the table's Snowflake objects: "
                        f"{_create_command(table.name)}",
                    )
                )
            else:
                readable.append((table.name, f"(SELECT MAX({quote(cursor_column)}) FROM {final})"))
        if readable:
            select = ", ".join(f"{subquery} AS {quote(f'W{i}')}" for i, (_, subquery) in enumerate(readable))
            with warehouse_errors(f"reading watermarks of {len(readable)} FINAL table(s)"):
                cur.execute(f"SELECT {select}")
                row = cur.fetchone()
            values = list(row) if row is not None else [None] * len(readable)
            by_name = {t.name: t for t in tables}
            for (name, _), value in zip(readable, values, strict=True):
                table = by_name[name]
                cursor_type = columns[table.target][snowflake_column(table.config.cursor)]
                results[name] = WatermarkResult(value=value, cursor_type=cursor_type)
        return results
    finally:
        cur.close()
