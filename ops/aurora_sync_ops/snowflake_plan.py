"""What ``aurora-sync sql snowflake`` prints or applies: setup, then per table create or drift.

What exists is read once for every table (``read_catalog``: INFORMATION_SCHEMA.COLUMNS of the
two schemas, SHOW PRIMARY KEYS, PIPES, STREAMS and TASKS IN SCHEMA), so planning costs five
statements whatever the table count. A table whose STAGING and FINAL do not exist gets its full
definition. When they exist, their columns are compared with the spec: new exported columns
become ``ALTER TABLE … ADD COLUMN`` first and the pipe is replaced (its column list changed).
Of the rest of the definition only what differs is kept (``what_differs``): an object's
idempotent CREATE when it is missing, a task's CREATE OR REPLACE when its definition or settings
differ (the tasks must follow a changed config even when no column changed). A table applied
before and unchanged since gets no statement, and the tables' statements are applied side by
side on a few connections (``apply_plans``), since on a real account each is a round trip.

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
import threading
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
    quote,
)
from aurora_sync.schema_evolution import read_pipes
from aurora_sync.snowflake_objects import TableSpec, config_spec, parse_pipe
from aurora_sync.snowflake_tables import (
    SnowflakeSetup,
    render_drift,
    render_pipe,
    render_table,
    task_definitions,
)
from aurora_sync.source_catalog import read_catalogs, read_columns
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


# --- what exists: every table's objects in a constant number of statements -----------------------
@dataclass(frozen=True)
class ExistingTask:
    definition: str
    comment: str | None
    state: str  # "started" or "suspended"


@dataclass
class WarehouseCatalog:
    """Every table's Snowflake objects as they exist, by fully qualified quoted name
    (``naming.SnowflakeObjects``): read once for all tables, so planning costs the same five
    statements whether one table or a thousand are configured."""

    columns: dict[str, list[str]] = field(default_factory=dict)  # table -> columns in ordinal order
    primary_keys: dict[str, list[str]] = field(default_factory=dict)  # table -> declared key, in order
    pipes: dict[str, str] = field(default_factory=dict)  # pipe -> its COPY
    streams: set[str] = field(default_factory=set)
    # An object a listing leaves out is treated as missing: it only gets its idempotent CREATE
    # (or its task's CREATE OR REPLACE) again, never a statement that would lose state.
    tasks: dict[str, ExistingTask] = field(default_factory=dict)


def _qualified(*parts: Any) -> str:
    return ".".join(quote(str(part)) for part in parts)


def _show(conn: Any, statement: str, what: str) -> list[dict[str, Any]]:
    """A SHOW's rows as dicts of lower-case column names; none while its schema does not exist."""
    try:
        with warehouse_errors(what):
            cur = conn.cursor()
            cur.execute(statement)
            names = [str(d[0]).lower() for d in cur.description]
            rows = cur.fetchall()
    except WarehouseObjectMissing:
        return []
    return [dict(zip(names, row, strict=True)) for row in rows]


def read_catalog(conn: Any, setup: SnowflakeSetup) -> WarehouseCatalog:
    """Columns, FINAL's primary keys, pipes, streams and tasks of the deployment's two schemas."""
    database, staging, final = setup.database, setup.staging_schema, setup.final_schema
    catalog = WarehouseCatalog()
    try:
        with warehouse_errors(f"reading the columns of the tables in {database}"):
            cur = conn.cursor()
            cur.execute(
                "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME "
                f"FROM {quote(database)}.INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA IN (?, ?) "
                "ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
                (staging, final),
            )
            rows = cur.fetchall()
    except WarehouseObjectMissing:
        return catalog  # the database itself does not exist yet: every object is new
    for schema, table, column in rows:
        catalog.columns.setdefault(_qualified(database, schema, table), []).append(str(column))
    keys = _show(
        conn,
        f"SHOW PRIMARY KEYS IN SCHEMA {_qualified(database, final)}",
        f"reading the primary keys of {_qualified(database, final)}",
    )
    for row in sorted(keys, key=lambda row: int(row["key_sequence"])):
        table = _qualified(database, final, row["table_name"])
        catalog.primary_keys.setdefault(table, []).append(str(row["column_name"]))
    catalog.pipes = {
        _qualified(database, staging, name): copy for name, copy in existing_pipes(conn, setup).items()
    }
    streams = _show(
        conn,
        f"SHOW STREAMS IN SCHEMA {_qualified(database, staging)}",
        f"listing the streams of {_qualified(database, staging)}",
    )
    catalog.streams = {_qualified(database, staging, row["name"]) for row in streams}
    tasks = _show(
        conn,
        f"SHOW TASKS IN SCHEMA {_qualified(database, staging)}",
        f"listing the tasks of {_qualified(database, staging)}",
    )
    catalog.tasks = {
        _qualified(database, staging, row["name"]): ExistingTask(
            str(row.get("definition") or ""),
            None if row.get("comment") is None else str(row["comment"]),
            str(row.get("state") or "").lower(),
        )
        for row in tasks
    }
    return catalog


def existing_pipes(conn: Any, setup: SnowflakeSetup) -> dict[str, str]:
    """{pipe name: its COPY} of the STAGING schema; empty while the schema does not exist."""
    try:
        pipes = read_pipes(conn, database=setup.database, staging_schema=setup.staging_schema)
    except WarehouseObjectMissing:
        return {}
    return {name: pipe.definition for name, pipe in pipes.items()}


def what_differs(
    setup: SnowflakeSetup, spec: TableSpec, statements: Sequence[str], catalog: WarehouseCatalog
) -> list[str]:
    """The statements that change something: a CREATE ... IF NOT EXISTS of an object that exists
    is dropped, and so is a task's CREATE OR REPLACE when the task already has the definition
    and the settings (its comment's fingerprint) this would give it; a scheduled task that is
    not running is still resumed. ALTERs and replacements always stay."""
    objects = setup.objects(spec.target)
    exists = {
        f"CREATE TABLE IF NOT EXISTS {objects.staging_table} ": objects.staging_table in catalog.columns,
        f"CREATE TABLE IF NOT EXISTS {objects.final_table} ": objects.final_table in catalog.columns,
        f"CREATE TABLE IF NOT EXISTS {objects.keys_table} ": objects.keys_table in catalog.columns,
        f"CREATE STREAM IF NOT EXISTS {objects.stream} ": objects.stream in catalog.streams,
        f"CREATE PIPE IF NOT EXISTS {objects.pipe}\n": objects.pipe in catalog.pipes,
    }
    unchanged = set()
    for task in task_definitions(setup, spec):
        have = catalog.tasks.get(task.name)
        create, *resume = task.statements
        if have is not None and (have.definition, have.comment) == (task.definition, task.comment):
            unchanged.add(create)
            # CREATE OR REPLACE leaves a task suspended, so a re-created scheduled task is resumed too.
            if have.state == "started":
                unchanged.update(resume)
    kept = []
    for statement in statements:
        if statement in unchanged or any(
            statement.startswith(head) and found for head, found in exists.items()
        ):
            continue
        kept.append(statement)
    return kept


# --- planning -------------------------------------------------------------------------------------
def spec_for(source: Any, loaded: LoadedTable) -> TableSpec:
    """The table as Snowflake needs it, from its config and the source catalog."""
    config = loaded.config
    relations = [(config.schema_name, config.table)]
    with source.cursor() as cur, source_errors(f"table {loaded.name}", conn=source, relations=relations):
        catalog = read_columns(cur, config.schema_name, config.table)
    return config_spec(loaded, catalog)


def specs_for(source: Any, tables: Sequence[LoadedTable]) -> list[TableSpec]:
    """Every table's spec from one read of the source catalog; a table it lacks is read alone,
    which raises the error naming it and the fix."""
    relations = [(t.config.schema_name, t.config.table) for t in tables]
    with (
        source.cursor() as cur,
        source_errors("reading the source catalog", conn=source, relations=relations),
    ):
        catalogs = read_catalogs(cur, relations)
    return [
        config_spec(loaded, catalogs[relation]) if relation in catalogs else spec_for(source, loaded)
        for loaded, relation in zip(tables, relations, strict=True)
    ]


def pending_files(conn: Any, pipe: str) -> int:
    """SYSTEM$PIPE_STATUS' pendingFileCount: files queued that the pipe has not loaded yet."""
    with warehouse_errors(f"reading SYSTEM$PIPE_STATUS of {pipe}"):
        cur = conn.cursor()
        cur.execute("SELECT SYSTEM$PIPE_STATUS(?)", (pipe,))
        (row,) = cur.fetchall()
    return int(json.loads(str(row[0])).get("pendingFileCount", 0))


def plan_tables(
    source: Any,
    warehouse: Any | None,
    setup: SnowflakeSetup,
    tables: Sequence[LoadedTable],
    *,
    rekey: bool = False,
) -> list[TablePlan]:
    """One plan per table; without ``warehouse`` every table gets its full, unchecked definition.

    With it, what exists is read once for all tables (``read_catalog``) and each plan holds only
    the statements that change something (``what_differs``): a table applied before and not
    changed since gets none. Only a pipe that must be replaced costs a statement of its own
    (its SYSTEM$PIPE_STATUS).

    ``rekey``: a table whose FINAL has another primary key than its config gets an empty FINAL
    with the config's key, instead of nothing."""
    specs = specs_for(source, tables)
    if warehouse is None:
        return [
            plan_table(setup, spec, staging_existing=None, final_existing=None, checked=False)
            for spec in specs
        ]
    catalog = read_catalog(warehouse, setup)
    plans = []
    for spec in specs:
        objects = setup.objects(spec.target)
        final = catalog.columns.get(objects.final_table)
        plan = plan_table(
            setup,
            spec,
            staging_existing=catalog.columns.get(objects.staging_table),
            final_existing=final,
            final_key=catalog.primary_keys.get(objects.final_table, []) if final is not None else None,
            rekey=rekey,
            pipe_definition=catalog.pipes.get(objects.pipe),
        )
        replaces_pipe = any(s.startswith(f"CREATE OR REPLACE PIPE {objects.pipe}") for s in plan.statements)
        if replaces_pipe and objects.pipe in catalog.pipes:
            plan.pending_files = pending_files(warehouse, objects.pipe)
            if plan.pending_files:
                plan.state, plan.statements = PIPE_BUSY, []
        plan.statements = what_differs(setup, spec, plan.statements, catalog)
        plans.append(plan)
    return plans


# --- applying ---------------------------------------------------------------------------------------
def apply_statements(
    conn: Any, statements: Sequence[str], progress: Callable[[str], None] | None = None, *, of: str = ""
) -> int:
    """Execute in order; the first failure stops and names the statement that failed (and ``of``,
    what they belong to)."""
    cur = conn.cursor()
    for number, statement in enumerate(statements, 1):
        first_line = statement.splitlines()[0]
        with warehouse_errors(f"{of}statement {number} of {len(statements)} ({first_line[:100]})"):
            cur.execute(statement)
            cur.fetchall()
        if progress:
            progress(first_line)
    return len(statements)


@dataclass
class Applied:
    """What ``apply_plans`` did, table by table. A table is either applied completely, failed at
    one statement (the statements before it took effect: DDL commits at once), or not started."""

    statements: int = 0
    applied: list[str] = field(default_factory=list)
    # (table, error); the table is None when a worker's connection could not be opened
    failed: list[tuple[str | None, Exception]] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)


def apply_plans(
    plans: Sequence[TablePlan], conn: Any, connect: Callable[[], Any], *, parallel: int
) -> Applied:
    """Each table's statements in order, up to ``parallel`` tables side by side: one worker on
    ``conn``, the others each on a connection of their own from ``connect`` (opened in the
    worker, so the logins overlap too, and closed at the end). Tables are independent; a
    table's statements are not.

    After a failure no further table starts; the tables in flight on the other connections
    finish, so apart from the failed table every table is applied completely or not at all, and
    running the same command again (every statement is idempotent, and applied tables get none)
    completes the rest."""
    pending = [plan for plan in plans if plan.statements]
    outcome = Applied()
    lock, stop = threading.Lock(), threading.Event()
    queue = iter(pending)

    def run_tables(worker_conn: Any) -> None:
        while not stop.is_set():
            with lock:
                plan = next(queue, None)
            if plan is None:
                return
            try:
                count = apply_statements(worker_conn, plan.statements, of=f"table {plan.name}: ")
            # Whatever failed must reach the caller, which raises it: a thread cannot.
            except Exception as exc:  # noqa: BLE001
                stop.set()
                with lock:
                    outcome.failed.append((plan.name, exc))
                return
            with lock:
                outcome.statements += count
                outcome.applied.append(plan.name)

    def worker(own: bool) -> None:
        if not own:
            run_tables(conn)
            return
        try:
            worker_conn = connect()
        except Exception as exc:  # noqa: BLE001 (as above)
            stop.set()
            with lock:
                outcome.failed.append((None, exc))
            return
        try:
            run_tables(worker_conn)
        finally:
            worker_conn.close()

    count = max(1, min(parallel, len(pending)))
    threads = [threading.Thread(target=worker, args=(n > 0,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = set(outcome.applied) | {name for name, _ in outcome.failed}
    outcome.not_started = [plan.name for plan in pending if plan.name not in done]
    return outcome
