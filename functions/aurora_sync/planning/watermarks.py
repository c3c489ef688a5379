"""Where each table's next export window starts, read in three statements whatever the table count.

  1. ``INFORMATION_SCHEMA.COLUMNS`` of the STAGING and FINAL schemas, restricted to our tables
     (bound values; ``schema_evolution.read_warehouse_columns``, which the planner reads once for
     its schema step too): which FINAL tables exist and whether they have the cursor column. A
     missing table or column fails only that table (``WarehouseObjectMissing`` naming the command
     that creates it); querying it would fail the whole statement for everyone.
  2. ``SELECT (SELECT COUNT(*) FROM t0) AS "N0", ...``: whether each FINAL table holds rows
     (Snowflake answers from metadata). An empty FINAL is exported in full, whatever the ledger
     says: it was created anew, truncated or re-keyed.
  3. The export ledger's merged runs of every table (``ledger.read_history``), with the columns
     of the layout the newest one was exported with (the planner re-exports a table whose FINAL
     lacks some column's values: ``layout.incomplete_columns``).

The window starts from what the newest merged run *proved* (``next_watermark``), never from
``MAX(cursor)`` of FINAL: a far-future cursor value there would hide every later row, and a
transaction that commits after an export with an older ``now()`` stamp or a smaller sequence
value would fall behind it. A run that failed half-way is not merged, so it never moves the
window. FINAL with rows but no merged run in the ledger (objects created by an older version, or
a ledger emptied by hand) is exported in full once: re-exports are harmless, a guess is not.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ..config import LoadedTable
from ..errors import ConfigError, WarehouseObjectMissing
from ..ledger import Ledger, MergedRun, read_history
from ..naming import SnowflakeObjects, quote, snowflake_column
from ..schema_evolution import WarehouseColumns, create_command, read_warehouse_columns
from ..warehouse_db import warehouse_errors
from .plan import CursorValue

TEMPORAL_TYPES = frozenset({"timestamptz", "timestamp", "date"})


class KeyChanged(ConfigError):
    """The table's primary key in its config differs from the key FINAL was merged with."""


@dataclass(frozen=True)
class WatermarkResult:
    """One table's next window start: ``error`` set when it cannot be planned, else ``value``
    (None = export every row) typed like the cursor; ``source_time`` is when the source snapshot
    behind FINAL was taken (None before the first merged run), the base of the freshness lag."""

    value: CursorValue | None = None
    cursor_type: str | None = None
    error: WarehouseObjectMissing | ConfigError | None = None
    source_time: datetime | None = None
    reason: str = "final"
    # The newest merged run's layout fingerprint and columns (JSON), when the ledger has them.
    layout: str | None = None
    layout_columns: str | None = None
    # Whether this run exports the table's keys too (hard_deletes "reconcile", every N-th run).
    reconcile: bool = False


_create_command = create_command


def _temporal(text: str | None, cursor_type: str) -> datetime | date | None:
    """A PostgreSQL timestamp/date text as Python; None for NULL, ±infinity and BC values."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if cursor_type == "date":
        return moment.date()
    if cursor_type == "timestamptz":
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.replace(tzinfo=None)


def _number(text: str | None) -> int | Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    return int(value) if value == value.to_integral_value() and "." not in text else value


def next_watermark(runs: Sequence[MergedRun]) -> CursorValue | None:
    """Where the next window starts, from the merged runs of one table (newest first).

    Every row committed after the newest run's snapshot was written by a transaction that
    started after its ``horizon`` (``source_snapshot``). So:

    * a timestamp or date cursor stamped with ``now()`` is at least the horizon: the window
      starts at ``min(MAX(cursor) in that snapshot, horizon)``, never past the source clock;
    * a sequence (integer) cursor took its value after the horizon, so it is larger than any
      value already visible *before* the horizon: the window starts at the largest MAX(cursor)
      sampled at a time at or before the horizon (or at the newest run's own start, which obeyed
      the same rule). Without such a sample, the whole table is read again (None).
    """
    if not runs:
        return None
    latest = runs[0]
    if latest.cursor_type in TEMPORAL_TYPES:
        horizon: datetime | date = latest.horizon
        if latest.cursor_type == "timestamp":
            horizon = latest.horizon.astimezone(UTC).replace(tzinfo=None)
        elif latest.cursor_type == "date":
            horizon = latest.horizon.astimezone(UTC).date()
        seen = _temporal(latest.max_cursor, latest.cursor_type)
        return min(seen, horizon) if seen is not None else horizon
    samples = [(r.source_time, r.max_cursor) for r in runs] + [
        (r.sample_time, r.sample_max) for r in runs if r.sample_time is not None
    ]
    candidates = [
        value
        for taken, text in samples
        if taken is not None and taken <= latest.horizon and (value := _number(text)) is not None
    ]
    start = _number(latest.window_start)
    if start is not None:
        candidates.append(start)
    return max(candidates) if candidates else None


def read_watermarks(
    conn: Any,
    tables: Sequence[LoadedTable],
    *,
    staging_schema: str,
    final_schema: str,
    database: str | None = None,
    columns: WarehouseColumns | None = None,
) -> dict[str, WatermarkResult]:
    """Each table's next window start; ``database`` defaults to the session's (from the secret),
    ``columns`` are read unless the caller already has them.

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
    if columns is None:
        columns = read_warehouse_columns(
            conn, database=database, staging_schema=staging_schema, final_schema=final_schema, targets=targets
        )
    final_columns = columns.final_data_types
    cur = conn.cursor()
    try:
        results: dict[str, WatermarkResult] = {}
        readable: list[tuple[str, str]] = []  # (table name, FINAL table)
        for table in tables:
            final = objects[table.name].final_table
            cursor = table.config.cursor
            cursor_column = snowflake_column(cursor) if cursor is not None else None
            found = final_columns.get(table.target)
            if found is None:
                results[table.name] = WatermarkResult(
                    error=WarehouseObjectMissing(
                        f"table {table.name!r}: FINAL table {final} does not exist.",
                        fix=f"create the table's Snowflake objects: {_create_command(table.name)}",
                    )
                )
            elif cursor_column is not None and cursor_column not in found:
                results[table.name] = WatermarkResult(
                    error=WarehouseObjectMissing(
                        f"table {table.name!r}: FINAL table {final} has no cursor column "
                        f"{quote(cursor_column)} (config cursor {table.config.cursor!r}).",
                        fix="add the column to FINAL, or recreate the table's Snowflake objects: "
                        f"{_create_command(table.name)}",
                    )
                )
            else:
                readable.append((table.name, final))
        if not readable:
            return results
        # One row per table, numbered: a SELECT list of one scalar subquery per table nests as
        # deep as the table count, which the emulator's engine refuses past 1,000 (a run of 2,000
        # tables failed there), while a UNION ALL of plain counts is a flat list of branches.
        counting = " UNION ALL ".join(
            f"SELECT {i} AS {quote('I')}, COUNT(*) AS {quote('N')} FROM {final}"
            for i, (_, final) in enumerate(readable)
        )
        with warehouse_errors(f"counting the rows of {len(readable)} FINAL table(s)"):
            cur.execute(counting)
            rows = cur.fetchall()
        counts = [0] * len(readable)
        for index, count in rows:
            counts[int(index)] = int(count or 0)
    finally:
        cur.close()
    by_name = {t.name: t for t in tables}
    history = read_history(
        conn, Ledger(database, staging_schema), sorted({by_name[n].target for n, _ in readable})
    )
    for (name, _), count in zip(readable, counts, strict=True):
        table = by_name[name]
        cursor = table.config.cursor
        cursor_type = final_columns[table.target][snowflake_column(cursor)] if cursor is not None else None
        results[name] = _window_start(table, cursor_type, int(count or 0), history.get(table.target, []))
    return results


def reconcile_due(table: LoadedTable, runs: Sequence[MergedRun]) -> bool:
    """Whether this run exports the table's keys: on every ``reconcile_every``-th merged run,
    counted from the newest run that reconciled (or from the start of the ledger's history)."""
    config = table.config
    if config.mode == "full":
        return True
    if config.hard_deletes != "reconcile":
        return False
    since = next((i for i, run in enumerate(runs) if run.reconciled), None)
    # No reconciled run among the merged runs the ledger returns: one is due (deleted rows may
    # be waiting since before the table reconciled, or before the history it keeps).
    return since is None or since >= config.reconcile_every - 1


def _window_start(
    table: LoadedTable, cursor_type: str | None, rows: int, runs: list[MergedRun]
) -> WatermarkResult:
    result = _window(table, cursor_type, rows, runs)
    if result.error is None and reconcile_due(table, runs):
        return replace(result, reconcile=True)
    return result


def _window(table: LoadedTable, cursor_type: str | None, rows: int, runs: list[MergedRun]) -> WatermarkResult:
    latest = runs[0] if runs else None
    source_time = latest.source_time if latest else None
    layout: dict[str, Any] = (
        {"layout": latest.layout, "layout_columns": latest.layout_columns} if latest else {}
    )
    if rows == 0:
        return WatermarkResult(
            value=None, cursor_type=cursor_type, source_time=source_time, reason="final empty", **layout
        )
    if latest is None:
        return WatermarkResult(
            value=None, cursor_type=cursor_type, reason="no merged run in the export ledger"
        )
    key = tuple(table.config.primary_key)
    if latest.primary_key and latest.primary_key != key:
        return WatermarkResult(
            cursor_type=cursor_type,
            error=KeyChanged(
                f"table {table.name!r}: its config's primary_key {json.dumps(list(key))} differs from "
                f"{json.dumps(list(latest.primary_key))}, the key FINAL was merged with; merging with a "
                "different key would collapse or duplicate rows, so the table does not run.",
                fix=f"re-key it: `aurora-sync sql snowflake --tables {table.name} --rekey --apply`, then "
                f"`aurora-sync sync --tables {table.name} --full` (docs/operations.md, 'Changing a table's "
                "primary key'); or restore the old primary_key in the config",
            ),
        )
    mode = table.config.mode
    if latest.mode != mode:
        # What a run of another mode proved says nothing about this one's window.
        return WatermarkResult(
            value=None, cursor_type=cursor_type, source_time=source_time, reason="mode changed", **layout
        )
    if mode == "full":
        return WatermarkResult(
            value=None, cursor_type=cursor_type, source_time=source_time, reason="full mode", **layout
        )
    if mode == "xmin":
        start = _number(latest.snapshot_xmin)
        return WatermarkResult(
            value=start,
            cursor_type=cursor_type,
            source_time=source_time,
            reason="final" if start is not None else "no snapshot xmin in the export ledger",
            **layout,
        )
    if latest.cursor_column and latest.cursor_column != table.config.cursor:
        # Values of another column say nothing about this one.
        return WatermarkResult(
            value=None,
            cursor_type=cursor_type,
            source_time=source_time,
            reason="cursor column changed",
            **layout,
        )
    return WatermarkResult(
        value=next_watermark(runs), cursor_type=cursor_type, source_time=source_time, **layout
    )
