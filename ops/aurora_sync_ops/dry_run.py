"""``aurora-sync plan``: what the planner would do now, and how many rows wait in each window.

The planner's own functions decide (``select_run``; ``read_watermarks``, three statements whatever
the table count; ``choose_window``); the source then answers
``SELECT count(*) FROM t WHERE <window>`` with the exporter's own predicate, in a session set up
like the exporter's. Nothing is exported and nothing is written anywhere.

The count runs on the session the CLI was given (usually the admin's: the catalog must be
readable before the grants exist), but the exporter reads as the sync role, so a table that role
may not read (schema USAGE, SELECT on each exported column) is reported as failing with the
GRANT statements that fix it, before anything is counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg2 import sql

from aurora_sync.config import LoadedTable, TableConfigResult
from aurora_sync.errors import SourceObjectMissing, SourcePermissionDenied, SyncError
from aurora_sync.export_query import ExportPlan, build_plan, window_predicate, xmin_predicate, xmin_range
from aurora_sync.messages import ExportWindow
from aurora_sync.planning.plan import RunRequest, choose_window, select_run
from aurora_sync.planning.watermarks import read_watermarks
from aurora_sync.source_catalog import read_columns
from aurora_sync.source_db import source_errors

from .aurora_sql import SYNC_ROLE, render_grants
from .inspect_targets import WarehouseNames


@dataclass
class TablePlan:
    table: str
    state: str  # "planned", "failed" (the planner would fail it) or "disabled"
    cursor: str | None = None
    mode: str = "cursor"
    reconcile: bool = False  # the run also exports every key and removes deleted rows
    window: ExportWindow | None = None
    predicate: str | None = None  # the exporter's WHERE, as SQL text
    waiting_rows: int | None = None
    chunks: int | None = None
    error: str | None = None  # a class name of the error taxonomy
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "state": self.state,
            "cursor": self.cursor,
            "mode": self.mode,
            "reconcile": self.reconcile,
            "window": self.window.model_dump(mode="json") if self.window else None,
            "predicate": self.predicate,
            "waiting_rows": self.waiting_rows,
            "chunks": self.chunks,
            "error": self.error,
            "reason": self.reason,
        }


def dry_run(
    configs: Sequence[TableConfigResult],
    request: RunRequest,
    *,
    warehouse: Any,
    names: WarehouseNames,
    source: Any,
) -> list[TablePlan]:
    """One entry per table of the run, plus the disabled tables a scheduled run leaves out."""
    selection = select_run(configs, request)
    plans = [TablePlan(f.table, "failed", error=f.error, reason=f.cause) for f in selection.failed]
    plans += [
        TablePlan(name, "disabled", reason="enabled is false: scheduled runs skip it")
        for name in selection.disabled
    ]
    watermarks = read_watermarks(
        warehouse,
        selection.tables,
        staging_schema=names.staging_schema,
        final_schema=names.final_schema,
        database=names.database,
    )
    for table in selection.tables:
        state = watermarks[table.name]
        if state.error is not None:
            plans.append(
                TablePlan(table.name, "failed", error=type(state.error).__name__, reason=str(state.error))
            )
            continue
        window = choose_window(
            table,
            watermark=state.value,
            cursor_type=state.cursor_type,
            override=request.overrides.get(table.name),
        )
        entry = TablePlan(
            table.name,
            "planned",
            cursor=table.config.cursor,
            mode=table.config.mode,
            reconcile=state.reconcile or table.config.mode == "full",
            window=window,
        )
        if window.source == "full" and state.reason != "final":
            entry.reason = f"every row: {state.reason}"
        try:
            _count(source, table, window, entry)
        except SyncError as exc:
            # What the exporter would fail the table with (missing column, wrong cursor type, ...).
            entry.state, entry.error, entry.reason = "failed", type(exc).__name__, str(exc)
        plans.append(entry)
    return sorted(plans, key=lambda p: p.table)


def _check_sync_role(cur: Any, source: Any, loaded: LoadedTable, plan: ExportPlan) -> None:
    """Raise unless the sync role may read every column the export reads (it exports as that role)."""
    columns = list(dict.fromkeys([c.name for c in plan.columns] + [c.name for c in plan.primary_key]))
    cur.execute("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", (SYNC_ROLE,))
    row = cur.fetchone()
    if not row or not row[0]:
        raise SourceObjectMissing(
            f"table {loaded.name!r}: the sync role {SYNC_ROLE} does not exist in the source database.",
            fix="as rds_superuser, run the setup files aurora-sync sql aurora --setup prints",
        )
    cur.execute(
        "SELECT has_schema_privilege(%(role)s, %(schema)s, 'USAGE'), ARRAY(SELECT c FROM unnest(%(columns)s) "
        "AS c WHERE NOT has_column_privilege(%(role)s, format('%%I.%%I', %(schema)s, %(table)s)::regclass, "
        "c, 'SELECT'))",
        {"role": SYNC_ROLE, "schema": plan.schema, "table": plan.table, "columns": columns},
    )
    row = cur.fetchone()
    usage, unreadable = (bool(row[0]), list(row[1])) if row else (False, columns)
    if usage and not unreadable:
        return
    lacks = [] if usage else [f"no USAGE on schema {plan.schema}"]
    if unreadable:
        lacks.append(f"no SELECT on column(s) {', '.join(unreadable)}")
    grants = render_grants(source, loaded)
    raise SourcePermissionDenied(
        f"table {loaded.name!r}: the sync role {SYNC_ROLE} may not read {plan.schema}.{plan.table} "
        f"({'; '.join(lacks)}); the exporter runs as that role.",
        fix=f"as the table's owner, run: {' '.join(grants.statements)} "
        f"(aurora-sync sql aurora --tables {loaded.name} prints them)",
    )


def _count(source: Any, loaded: LoadedTable, window: ExportWindow, entry: TablePlan) -> None:
    name, config = loaded.name, loaded.config
    schema, table = config.schema_name, config.table
    with (
        source_errors(f"table {name} ({schema}.{table})", conn=source, relations=[(schema, table)]),
        source.cursor() as cur,
    ):
        catalog = read_columns(cur, schema, table)
        plan = build_plan(
            catalog,
            schema=schema,
            table=table,
            name=name,
            configured_columns=config.columns,
            cursor=config.cursor,
            primary_key=config.primary_key,
            mode=config.mode,
        )
        _check_sync_role(cur, source, loaded, plan)
        if config.mode == "xmin":
            # The exporter's own range, against the source's xmax now.
            cur.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
            xmax = cur.fetchone()
            predicate = xmin_predicate(xmin_range(window.watermark, int(xmax[0]) if xmax else 0))
        elif config.mode == "full":
            predicate = sql.SQL("TRUE")
        else:
            predicate = window_predicate(plan, window)
        cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(plan.relation, predicate))
        row = cur.fetchone()
        entry.predicate = predicate.as_string(source)
    entry.waiting_rows = int(row[0]) if row else 0
    # Mode full exports in one chunk, whatever max_rows_per_chunk says.
    entry.chunks = 1 if config.mode == "full" else math.ceil(entry.waiting_rows / config.max_rows_per_chunk)


def describe_window(window: ExportWindow | None) -> str:
    if window is None:
        return "-"
    if window.watermark is None:
        return "every row (full export)"
    if window.source == "final" and window.watermark.isdigit() and not window.lookback_seconds:
        # xmin mode's watermark is a transaction id; an integer cursor's has no lookback either.
        return f">= {window.watermark} (from last merged run)"
    lookback = f" - {window.lookback_seconds}s lookback" if window.lookback_seconds else ""
    origin = {"final": "last merged run", "initial_watermark": "initial_watermark", "since": "--since"}
    return f">= {window.watermark}{lookback} (from {origin.get(window.source, window.source)})"
