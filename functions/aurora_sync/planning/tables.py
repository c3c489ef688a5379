"""The planner's per-table work: the source catalog, the schema step, each table's window.

Schema step (``aurora_sync.schema_evolution``), before anything is exported: the source catalog
of every planned table (one statement on Aurora), STAGING's and FINAL's columns (the watermarks'
INFORMATION_SCHEMA statement) and every pipe's COPY (``SHOW PIPES``). A table whose source columns
changed gets its STAGING/FINAL columns added or widened, its MERGE task and pipe re-created, and
its work item carries the fingerprint of the layout the pipe now loads, which the exporter checks
before writing a file. A column whose values FINAL lacks (added at the source, renamed, dropped and
added again) is filled by a full, chunked export of the table in this run, decided from the export
ledger; each new layout's columns are recorded there.

Per-table problems (missing source or Snowflake objects, unsafe source type changes, unreadable
watermarks) become the plan's ``failed`` entries and the other tables go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import LoadedTable
from ..connections import source_connection
from ..errors import ConfigError
from ..layout import incomplete_columns, loads
from ..ledger import Ledger, record_layouts
from ..messages import FailedTable
from ..naming import SnowflakeObjects
from ..observability import logger
from ..schema_evolution import (
    apply_evolution,
    keys_table_name,
    layout_record,
    needs_keys,
    plan_evolution,
    read_pipes,
    read_warehouse_columns,
)
from ..settings import RuntimeSettings
from ..source_catalog import SourceColumn, read_catalogs, read_row_estimates
from ..source_db import source_errors
from ..sync_modes import size_warning
from .plan import Plan, RunRequest, choose_window, work_item
from .watermarks import read_watermarks


@dataclass(frozen=True)
class SourceFacts:
    """What the planner reads from Aurora's catalog before planning: each table's columns (None:
    no such table) and PostgreSQL's row estimate (``pg_class.reltuples``; -1 never analyzed),
    which sizes the cost warnings and the lanes (``planning.lanes``)."""

    catalogs: dict[str, list[SourceColumn] | None]
    estimates: dict[str, int]


def source_catalogs(tables: list[LoadedTable]) -> SourceFacts:
    """Every planned table's source columns and row estimate, in two statements on Aurora;
    tables of a mode that reads the whole table are checked against their size."""
    relations = sorted({(t.config.schema_name, t.config.table) for t in tables})
    whole = {
        (t.config.schema_name, t.config.table)
        for t in tables
        if t.config.mode != "cursor" or t.config.hard_deletes == "reconcile"
    }
    conn = source_connection(application_name="aurora-sync-planner")
    try:
        with (
            source_errors(
                f"reading the source catalog of {len(relations)} table(s)", conn=conn, relations=relations
            ),
            conn.cursor() as cur,
        ):
            found = read_catalogs(cur, relations)
            estimates = read_row_estimates(cur, relations)
        conn.rollback()
    finally:
        conn.close()
    for table in tables:
        config = table.config
        if (config.schema_name, config.table) not in whole:
            continue
        rows = estimates.get((config.schema_name, config.table), -1)
        relation = f"{config.schema_name}.{config.table}"
        message = size_warning(
            config.mode, config.hard_deletes, rows, relation=relation, every=config.reconcile_every
        )
        if message is not None:
            logger.warning("table mode costly at this size", extra={"table": table.name, "warning": message})
    return SourceFacts(
        catalogs={t.name: found.get((t.config.schema_name, t.config.table)) for t in tables},
        estimates={t.name: estimates.get((t.config.schema_name, t.config.table), -1) for t in tables},
    )


def plan_tables(
    conn: Any,
    plan: Plan,
    tables: list[LoadedTable],
    *,
    catalogs: dict[str, list[SourceColumn] | None],
    request: RunRequest,
    settings: RuntimeSettings,
) -> None:
    """The schema step, then each table's window and work item (see the module docstring)."""
    database = conn.database
    if not database:
        raise ConfigError(
            "the Snowflake session has no current database.",
            fix="set 'database' in the Snowflake secret in Vault",
        )
    staging, final = settings.snowflake_staging_schema, settings.snowflake_final_schema
    columns = read_warehouse_columns(
        conn,
        database=database,
        staging_schema=staging,
        final_schema=final,
        # KEYS tables too: the schema step creates (or re-creates) those of reconciling tables.
        targets=sorted(
            {t.target for t in tables} | {keys_table_name(t.target) for t in tables if needs_keys(t)}
        ),
    )
    pipes = read_pipes(conn, database=database, staging_schema=staging)
    evolutions, ready = {}, []
    for table in tables:
        objects = SnowflakeObjects(database, staging, final, table.target)
        evolution = plan_evolution(table, catalogs[table.name], columns, pipes, objects)
        if evolution.statements and evolution.error is None:
            apply_evolution(conn, evolution)
            if evolution.error is None:
                logger.warning("table schema changed in Snowflake", extra=evolution.summary())
        if evolution.error is not None:
            plan.failed.append(FailedTable.of(table.name, evolution.error))
            continue
        evolutions[table.name] = evolution
        ready.append(table)
    watermarks = read_watermarks(
        conn, ready, staging_schema=staging, final_schema=final, database=database, columns=columns
    )
    layouts = []
    for table in ready:
        state, evolution = watermarks[table.name], evolutions[table.name]
        if state.error is not None:
            plan.failed.append(FailedTable.of(table.name, state.error))
            continue
        override = request.overrides.get(table.name)
        window = choose_window(table, watermark=state.value, cursor_type=state.cursor_type, override=override)
        incomplete = incomplete_columns(evolution.layout, loads(state.layout_columns))
        if incomplete and window.watermark is not None:
            # FINAL lacks these columns' values for rows the window does not reach: export the
            # table as a first run would (every row, or from initial_watermark), in chunks.
            window = choose_window(table, watermark=None, cursor_type=state.cursor_type)
            logger.warning(
                "table re-exported for new column values",
                extra={"table": table.name, "columns": [c.name for c in incomplete]},
            )
        plan.items.append(
            work_item(plan.run_id, table, window, layout=evolution.fingerprint, reconcile=state.reconcile)
        )
        if state.layout != evolution.fingerprint:
            layouts.append(layout_record(evolution))
        logger.info("table planned", extra={"table": table.name, "window": window.model_dump()})
    record_layouts(conn, Ledger(database, staging), layouts)
