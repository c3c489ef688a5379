"""What ``aurora-sync sql snowflake`` prints or applies: setup, then per table create or drift.

A table whose STAGING and FINAL do not exist gets its full definition. When they exist, their
columns (INFORMATION_SCHEMA.COLUMNS) are compared with the spec: new exported columns become
``ALTER TABLE … ADD COLUMN`` first and the pipe is replaced (its column list changed); the rest
of the definition follows unchanged, because every statement of it is idempotent and the tasks
(CREATE OR REPLACE) must follow a changed config even when no column changed.

The pipe's COPY (``SHOW PIPES``' definition) is compared with the rendered one too: a column no
longer exported (dropped at the source, or from ``columns``) leaves the tables as they are but
changes the COPY, so the pipe is replaced. A replaced pipe is a new object: the files queued in
the old one are not loaded, and its load history is gone (``ALTER PIPE … REFRESH`` would load the
last 7 days' files again). So a pipe is replaced only while it has no file pending
(SYSTEM$PIPE_STATUS), i.e. between runs, and never refreshed afterwards: every earlier file was
loaded by the old pipe, every later one is notified to the new pipe. A pipe with files pending
gets no statements (the table is refused until they are loaded).

FINAL's declared primary key (SHOW PRIMARY KEYS) must be the config's: its rows were merged on
it. A table whose key changed gets no statements at all (the MERGE task would otherwise be
re-created on the new key over rows merged on the old one) unless a re-key was asked for, which
replaces FINAL by an empty table with the new key (see ``rekey``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aurora_sync.config import LoadedTable
from aurora_sync.errors import WarehouseObjectMissing
from aurora_sync.naming import (
    DELETED_COLUMN,
    FILE_COLUMN,
    LOADED_AT_COLUMN,
    ROW_COLUMN,
    SNAPSHOT_COLUMN,
    SYNCED_AT_COLUMN,
)
from aurora_sync.schema_evolution import read_pipes
from aurora_sync.snowflake_objects import TableSpec, config_spec, parse_pipe
from aurora_sync.snowflake_tables import SnowflakeSetup, render_drift, render_pipe, render_table
from aurora_sync.source_catalog import read_columns
from aurora_sync.source_db import source_errors
from aurora_sync.typemap import UNREPRESENTABLE_COLUMN
from aurora_sync.warehouse_db import warehouse_errors

from .rekey import same_key

# state of a table's Snowflake objects, as the plan found them
NEW = "new"  # neither STAGING nor FINAL exists
DRIFT = "drift"  # they exist, and the source has columns they lack
CURRENT = "current"  # they exist with every exported column
UNCHECKED = "unchecked"  # no Snowflake connection: the full definition, drift not checked
KEY_CHANGED = "key-changed"  # FINAL's primary key is not the config's: nothing is applied
REKEY = "rekey"  # as KEY_CHANGED, re-key asked for: FINAL replaced by an empty table with the new key
PIPE_CHANGED = "pipe-changed"  # they have every exported column; the pipe's COPY differs: replaced
PIPE_BUSY = "pipe-busy"  # the pipe must be replaced but has files pending: nothing is applied
METADATA_COLUMNS = frozenset(
    {
        UNREPRESENTABLE_COLUMN,
        FILE_COLUMN,
        ROW_COLUMN,
        LOADED_AT_COLUMN,
        SYNCED_AT_COLUMN,
        SNAPSHOT_COLUMN,
        DELETED_COLUMN,
    }
)


@dataclass
class TablePlan:
    name: str
    target: str
    state: str
    statements: list[str]
    added_columns: list[str] = field(default_factory=list)
    # In Snowflake but no longer exported (dropped at the source or from `columns`): kept, since
    # dropping them would lose history; they stay NULL for new rows.
    extra_columns: list[str] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)  # the config's, as Snowflake names
    final_primary_key: list[str] | None = None  # FINAL's declared key; None when not read
    pending_files: int = 0  # files the pipe still had to load, when it had to be replaced

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "state": self.state,
            "added_columns": self.added_columns,
            "extra_columns": self.extra_columns,
            "primary_key": self.primary_key,
            "final_primary_key": self.final_primary_key,
            "pending_files": self.pending_files,
            "statements": self.statements,
        }


def existing_columns(
    conn: Any, setup: SnowflakeSetup, target: str
) -> tuple[list[str] | None, list[str] | None]:
    """Column names of STAGING and FINAL in ordinal order; None for a table that does not exist."""
    query = (
        f'SELECT TABLE_SCHEMA, COLUMN_NAME FROM "{setup.database}".INFORMATION_SCHEMA.COLUMNS '
        "WHERE TABLE_NAME = ? AND TABLE_SCHEMA IN (?, ?) ORDER BY TABLE_SCHEMA, ORDINAL_POSITION"
    )
    try:
        with warehouse_errors(f"reading the columns of {target} in {setup.database}"):
            cur = conn.cursor()
            cur.execute(query, (target, setup.staging_schema, setup.final_schema))
            rows = cur.fetchall()
    except WarehouseObjectMissing:
        return None, None  # the database itself does not exist yet: nothing to compare
    found: dict[str, list[str]] = {}
    for schema, column in rows:
        found.setdefault(str(schema), []).append(str(column))
    return found.get(setup.staging_schema), found.get(setup.final_schema)


def final_primary_key(conn: Any, setup: SnowflakeSetup, target: str) -> list[str]:
    """FINAL's declared primary key columns in key order (empty when it declares none)."""
    table = setup.objects(target).final_table
    with warehouse_errors(f"reading the primary key of {table}"):
        cur = conn.cursor()
        cur.execute(f"SHOW PRIMARY KEYS IN TABLE {table}")
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    column, sequence = names.index("column_name"), names.index("key_sequence")
    return [str(row[column]) for row in sorted(rows, key=lambda row: int(row[sequence]))]


def _copy_grants(create: str) -> str:
    # Grants made on FINAL by hand (analysts' roles) survive the replacement; the schema's future
    # grants cover only roles the setup knows.
    head, paren, tail = create.rpartition("\n)")
    return f"{head}{paren} COPY GRANTS{tail}" if paren else f"{create} COPY GRANTS"


def _replace_final(setup: SnowflakeSetup, spec: TableSpec, statements: Sequence[str]) -> list[str]:
    """The statements with FINAL created anew (empty) instead of kept, and its ALTERs dropped
    (the new FINAL has every exported column)."""
    final = setup.objects(spec.target).final_table
    kept, fresh = f"CREATE TABLE IF NOT EXISTS {final} ", f"CREATE OR REPLACE TABLE {final} "
    replaced = [
        _copy_grants(fresh + s[len(kept) :]) if s.startswith(kept) else s
        for s in statements
        if not s.startswith(f"ALTER TABLE {final} ")
    ]
    if not any(s.startswith(fresh) for s in replaced):
        # The rendered definition no longer creates FINAL the way this expects: never guess.
        raise ValueError(f"the definition of table {spec.name} has no statement {kept.strip()}")
    return replaced


def plan_table(
    setup: SnowflakeSetup,
    spec: TableSpec,
    *,
    staging_existing: Sequence[str] | None,
    final_existing: Sequence[str] | None,
    checked: bool = True,
    final_key: Sequence[str] | None = None,
    rekey: bool = False,
    pipe_definition: str | None = None,
) -> TablePlan:
    """``final_key``: FINAL's declared key when FINAL exists (None: not compared);
    ``pipe_definition``: the existing pipe's COPY (None: no pipe, or not compared)."""
    definition = render_table(setup, spec)
    if not checked:
        return TablePlan(spec.name, spec.target, UNCHECKED, definition, primary_key=list(spec.primary_key))
    if staging_existing is None and final_existing is None:
        return TablePlan(spec.name, spec.target, NEW, definition, primary_key=list(spec.primary_key))
    plan = _plan_existing(
        setup, spec, definition, staging_existing, final_existing, pipe_definition=pipe_definition
    )
    plan.primary_key = list(spec.primary_key)
    plan.final_primary_key = None if final_key is None else list(final_key)
    if final_key is None or same_key(final_key, spec.primary_key):
        return plan
    if not rekey:
        plan.state, plan.statements = KEY_CHANGED, []
        return plan
    plan.state, plan.statements = REKEY, _replace_final(setup, spec, plan.statements)
    return plan


def _plan_existing(
    setup: SnowflakeSetup,
    spec: TableSpec,
    definition: list[str],
    staging_existing: Sequence[str] | None,
    final_existing: Sequence[str] | None,
    *,
    pipe_definition: str | None,
) -> TablePlan:
    everything = set(spec.snowflake_names)
    staging_have = set(everything if staging_existing is None else staging_existing)
    final_have = set(everything | {SNAPSHOT_COLUMN} if final_existing is None else final_existing)
    alters = [
        s
        for s in render_drift(setup, spec, staging_existing=staging_have, final_existing=final_have)
        if s.startswith("ALTER TABLE")
    ]
    added = [name for name in spec.snowflake_names if name not in staging_have or name not in final_have]
    extra = sorted({*(staging_existing or ()), *(final_existing or ())} - everything - METADATA_COLUMNS)
    pipe = render_pipe(setup, spec)
    pipe_changed = pipe_definition is not None and not same_copy(pipe_definition, pipe)
    if not alters and not pipe_changed:
        return TablePlan(spec.name, spec.target, CURRENT, definition, extra_columns=extra)
    # ALTERs first: the replaced pipe and the tasks name the new columns.
    replaced = [render_pipe(setup, spec, replace=True) if s == pipe else s for s in definition]
    state = DRIFT if alters else PIPE_CHANGED
    return TablePlan(spec.name, spec.target, state, alters + replaced, added, extra)


def same_copy(existing: str, rendered_pipe: str) -> bool:
    """Whether a pipe's COPY (``SHOW PIPES``' definition) loads what the rendered pipe loads: the
    same table, columns, stage path and options. A COPY not of the product's form never is."""
    have = parse_pipe(existing)
    _, _, copy = rendered_pipe.partition("\nAS ")
    return have is not None and have == parse_pipe(copy)


def existing_pipes(conn: Any, setup: SnowflakeSetup) -> dict[str, str]:
    """{pipe name: its COPY} of the STAGING schema; empty while the schema does not exist."""
    try:
        pipes = read_pipes(conn, database=setup.database, staging_schema=setup.staging_schema)
    except WarehouseObjectMissing:
        return {}
    return {name: pipe.definition for name, pipe in pipes.items()}


def pending_files(conn: Any, pipe: str) -> int:
    """SYSTEM$PIPE_STATUS' pendingFileCount: files queued that the pipe has not loaded yet."""
    with warehouse_errors(f"reading SYSTEM$PIPE_STATUS of {pipe}"):
        cur = conn.cursor()
        cur.execute("SELECT SYSTEM$PIPE_STATUS(?)", (pipe,))
        (row,) = cur.fetchall()
    return int(json.loads(str(row[0])).get("pendingFileCount", 0))


def spec_for(source: Any, loaded: LoadedTable) -> TableSpec:
    """The table as Snowflake needs it, from its config and the source catalog."""
    config = loaded.config
    relations = [(config.schema_name, config.table)]
    with source.cursor() as cur, source_errors(f"table {loaded.name}", conn=source, relations=relations):
        catalog = read_columns(cur, config.schema_name, config.table)
    return config_spec(loaded, catalog)


def plan_tables(
    source: Any,
    warehouse: Any | None,
    setup: SnowflakeSetup,
    tables: Sequence[LoadedTable],
    *,
    rekey: bool = False,
) -> list[TablePlan]:
    """One plan per table; without ``warehouse`` every table gets its full, unchecked definition.

    ``rekey``: a table whose FINAL has another primary key than its config gets an empty FINAL
    with the config's key, instead of nothing."""
    plans = []
    pipes = existing_pipes(warehouse, setup) if warehouse is not None else {}
    for loaded in tables:
        spec = spec_for(source, loaded)
        if warehouse is None:
            plans.append(plan_table(setup, spec, staging_existing=None, final_existing=None, checked=False))
            continue
        staging, final = existing_columns(warehouse, setup, spec.target)
        key = final_primary_key(warehouse, setup, spec.target) if final is not None else None
        plan = plan_table(
            setup,
            spec,
            staging_existing=staging,
            final_existing=final,
            final_key=key,
            rekey=rekey,
            pipe_definition=pipes.get(f"{spec.target}_PIPE"),
        )
        objects = setup.objects(spec.target)
        replaces_pipe = any(s.startswith(f"CREATE OR REPLACE PIPE {objects.pipe}") for s in plan.statements)
        if replaces_pipe and f"{spec.target}_PIPE" in pipes:
            plan.pending_files = pending_files(warehouse, objects.pipe)
            if plan.pending_files:
                plan.state, plan.statements = PIPE_BUSY, []
        plans.append(plan)
    return plans


def apply_statements(
    conn: Any, statements: Sequence[str], progress: Callable[[str], None] | None = None
) -> int:
    """Execute in order; the first failure stops and names the statement that failed."""
    cur = conn.cursor()
    for number, statement in enumerate(statements, 1):
        first_line = statement.splitlines()[0]
        with warehouse_errors(f"statement {number} of {len(statements)} ({first_line[:100]})"):
            cur.execute(statement)
            cur.fetchall()
        if progress:
            progress(first_line)
    return len(statements)
