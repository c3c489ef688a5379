"""The planner's schema step: each table's Snowflake objects follow its source columns before
anything is exported, so the files of a run always match the pipe that loads them.

Per table, from the source catalog (all tables in one statement), STAGING's and FINAL's columns
(INFORMATION_SCHEMA.COLUMNS, one statement shared with the watermarks) and the pipe's COPY
(``SHOW PIPES``, one statement):

* the **layout** the exporter will write is derived from the catalog exactly as the exporter
  derives it (``export_query.export_columns``: every column in attnum order, or the configured
  list); the work item carries its fingerprint (``layout``);
* a layout column STAGING or FINAL lacks (added at the source, or renamed there) is added
  (``ALTER TABLE … ADD COLUMN``; nullable, so a NOT NULL DEFAULT source column is no problem);
  its values for existing rows come from a full re-export, which the planner schedules from
  the export ledger (``layout.incomplete_columns``);
* a column whose type widened (int4→int8, varchar(n)→varchar(m>n) or text,
  numeric(p,s)→numeric(p'>p,s)) is widened in place (``ALTER COLUMN … SET DATA TYPE``);
* any other type change (a narrowing, text→number, another scale...) fails only its table with
  ``UnsafeSchemaChange``, naming the change and the statements that resolve it;
* when anything changed, or the pipe's column list differs from the layout (a column dropped at
  the source, columns reordered by a drop and re-add), the MERGE task's statement is replaced
  (``ALTER TASK … MODIFY AS``), then the pipe (``CREATE OR REPLACE PIPE`` from its own stage
  and options): tables first, pipe last, so a step that fails leaves a difference the next run
  sees and finishes. A dropped column stays in STAGING and FINAL and is no longer written.

Replacing a pipe starts a new load history; doing it here is safe because the planner runs
before any export of its run and single flight keeps runs apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .column_types import ColumnType, catalog_type, declared_type, type_change
from .config import LoadedTable
from .errors import ConfigError, SourceObjectMissing, SyncError, TerminalError, WarehouseObjectMissing
from .layout import LayoutColumn, dumps, fingerprint, layout_of
from .naming import FILE_COLUMN, SnowflakeObjects, quote
from .snowflake_objects import (
    PipeDefinition,
    SqlConfigError,
    TableSpec,
    add_column,
    config_spec,
    keys_columns_ddl,
    parse_pipe,
    pipe_statement,
    render_merge,
    set_data_type,
)
from .source_catalog import SourceColumn
from .warehouse_db import IN_BOUND_LIST, bound_list, warehouse_errors


class UnsafeSchemaChange(ConfigError):
    """A source column's type changed in a way Snowflake cannot apply in place."""


class UnrecognizedPipe(ConfigError):
    """A table's pipe does not load the layout aurora-sync writes, so its files cannot match it."""


def create_command(name: str) -> str:
    return f"aurora-sync sql snowflake --tables {name} --apply"


# --- what Snowflake has -------------------------------------------------------------------------
@dataclass(frozen=True)
class WarehouseColumns:
    """STAGING's and FINAL's columns of the run's tables, {target: {column: type}}; a table that
    does not exist is absent. ``final_data_types`` keeps FINAL's DATA_TYPE as Snowflake spells it."""

    staging: dict[str, dict[str, ColumnType]]
    final: dict[str, dict[str, ColumnType]]
    final_data_types: dict[str, dict[str, str]]


def read_warehouse_columns(
    conn: Any, *, database: str, staging_schema: str, final_schema: str, targets: Sequence[str]
) -> WarehouseColumns:
    """One INFORMATION_SCHEMA.COLUMNS statement for both schemas (names bound, not formatted:
    INFORMATION_SCHEMA stores them exactly as created).

    The table names are one bound JSON array (``IN_BOUND_LIST``), not one ``?`` each: the text
    stays the same for 3 tables or 2,000. They stay a filter in the statement (rather than
    reading the whole schemas and selecting here) because FINAL may be a schema the user shares
    with many tables the run does not touch."""
    found = WarehouseColumns({}, {}, {})
    if not targets:
        return found
    catalog = f"{quote(database)}.{quote('INFORMATION_SCHEMA')}.{quote('COLUMNS')}"
    statement = (
        'SELECT "TABLE_SCHEMA", "TABLE_NAME", "COLUMN_NAME", "DATA_TYPE", "CHARACTER_MAXIMUM_LENGTH", '
        f'"NUMERIC_PRECISION", "NUMERIC_SCALE" FROM {catalog} '
        f'WHERE "TABLE_SCHEMA" IN (?, ?) AND "TABLE_NAME" {IN_BOUND_LIST}'
    )
    cur = conn.cursor()
    try:
        with warehouse_errors(f"reading the columns of STAGING and FINAL tables in {quote(database)}"):
            cur.execute(statement, (staging_schema, final_schema, bound_list(targets)))
            rows = cur.fetchall()
    finally:
        cur.close()
    for schema, table, column, data_type, length, precision, scale in rows:
        kind = catalog_type(str(data_type), length, precision, scale)
        if str(schema) == final_schema:
            found.final.setdefault(str(table), {})[str(column)] = kind
            found.final_data_types.setdefault(str(table), {})[str(column)] = str(data_type)
        if str(schema) == staging_schema:
            found.staging.setdefault(str(table), {})[str(column)] = kind
    return found


@dataclass(frozen=True)
class Pipe:
    name: str
    definition: str
    comment: str | None
    auto_ingest: bool


def read_pipes(conn: Any, *, database: str, staging_schema: str) -> dict[str, Pipe]:
    """Every pipe of the STAGING schema with its COPY (``SHOW PIPES``' definition column)."""
    cur = conn.cursor()
    try:
        with warehouse_errors(f"listing the pipes of {quote(database)}.{quote(staging_schema)}"):
            cur.execute(f"SHOW PIPES IN SCHEMA {quote(database)}.{quote(staging_schema)}")
            names = [str(d[0]).lower() for d in cur.description]
            rows = cur.fetchall()
    finally:
        cur.close()
    pipes = {}
    for row in rows:
        values = dict(zip(names, row, strict=True))
        pipe = Pipe(
            name=str(values["name"]),
            definition=str(values.get("definition") or ""),
            comment=None if values.get("comment") is None else str(values["comment"]),
            auto_ingest=bool(values.get("notification_channel")),
        )
        pipes[pipe.name] = pipe
    return pipes


# --- what to change ------------------------------------------------------------------------------
@dataclass
class Evolution:
    """One table's outcome: the layout its files will have, the statements that make Snowflake
    load it, what they change, or the error that keeps the table out of the run."""

    table: str
    target: str
    layout: list[LayoutColumn] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    widened: list[str] = field(default_factory=list)
    reordered: bool = False
    error: SyncError | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.layout)

    def summary(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "added": self.added,
            "dropped": self.dropped,
            "widened": self.widened,
            "reordered": self.reordered,
            "statements": len(self.statements),
        }


def _spec(table: LoadedTable, catalog: Sequence[SourceColumn]) -> TableSpec:
    try:
        return config_spec(table, catalog)
    except SqlConfigError as exc:
        raise ConfigError(f"{exc}.", fix="fix the table config") from None


def plan_evolution(
    table: LoadedTable,
    catalog: Sequence[SourceColumn] | None,
    columns: WarehouseColumns,
    pipes: Mapping[str, Pipe],
    objects: SnowflakeObjects,
    *,
    today: datetime | None = None,
) -> Evolution:
    """What one table needs (pure: statements are applied by ``apply_evolution``)."""
    config = table.config
    evolution = Evolution(table.name, table.target)
    if catalog is None:
        evolution.error = SourceObjectMissing(
            f"table {table.name!r}: source table {config.schema_name}.{config.table} does not exist.",
            # The catalog lists every table whatever the role's grants (see source_catalog).
            fix="check `schema`/`table` in the table config (exact, case-sensitive catalog names)",
        )
        return evolution
    try:
        spec = _spec(table, catalog)
    except SyncError as exc:
        evolution.error = exc
        return evolution
    by_name = {c.name: c for c in catalog}
    evolution.layout = layout_of([by_name[m.column] for m in spec.columns], spec.columns, table=table.name)
    final, staging = columns.final.get(table.target), columns.staging.get(table.target)
    if final is None:
        return evolution  # the watermarks fail it, naming the command that creates it
    pipe_name = f"{table.target}_PIPE"
    if staging is None or pipe_name not in pipes:
        missing = f"STAGING table {objects.staging_table}" if staging is None else f"pipe {objects.pipe}"
        evolution.error = WarehouseObjectMissing(
            f"table {table.name!r}: {missing} does not exist.",
            fix=f"create the table's Snowflake objects: {create_command(table.name)}",
        )
        return evolution
    pipe = pipes[pipe_name]
    parsed = parse_pipe(pipe.definition)
    if parsed is None:
        evolution.error = UnrecognizedPipe(
            f"table {table.name!r}: pipe {objects.pipe} does not load the layout aurora-sync writes "
            "(its COPY is not COPY INTO <STAGING> (<columns>, _AURORA_SYNC_UNREPRESENTABLE, "
            "_AURORA_SYNC_FILE, _AURORA_SYNC_ROW, _AURORA_SYNC_LOADED_AT) FROM (SELECT $1, ..., "
            "METADATA$FILENAME, METADATA$FILE_ROW_NUMBER, METADATA$START_SCAN_TIME FROM @<stage>/...)).",
            fix=f"between runs: DROP PIPE {objects.pipe}; then {create_command(table.name)}",
        )
        return evolution
    evolution = _compare(
        evolution,
        spec,
        final=final,
        staging=staging,
        pipe=pipe,
        parsed=parsed,
        objects=objects,
        today=today or datetime.now(UTC),
    )
    if evolution.error is None and needs_keys(table):
        evolution.statements += _keys_table(spec, columns.staging.get(keys_table_name(table.target)), objects)
    return evolution


def needs_keys(table: LoadedTable) -> bool:
    """Whether the table's runs export key snapshots (the verifier loads them into its KEYS table)."""
    return table.config.mode == "full" or table.config.hard_deletes == "reconcile"


def keys_table_name(target: str) -> str:
    return f"{target}_KEYS"


def _keys_table(
    spec: TableSpec, have: Mapping[str, ColumnType] | None, objects: SnowflakeObjects
) -> list[str]:
    """The KEYS table a key snapshot loads into, created when missing and re-created when its key
    columns no longer match STAGING's types (it only holds rows while one verifier call runs, and
    single flight keeps runs apart, so replacing it loses nothing)."""
    wanted = {
        name: declared_type(mapping.staging_type)
        for name, mapping in zip(spec.snowflake_names, spec.columns, strict=True)
        if name in spec.primary_key
    }
    current = {name: kind for name, kind in (have or {}).items() if name != FILE_COLUMN}
    if (
        have is not None
        and set(current) == set(wanted)
        and all(type_change(current[name], kind)[0] == "same" for name, kind in wanted.items())
    ):
        return []
    verb = "CREATE TABLE IF NOT EXISTS" if have is None else "CREATE OR REPLACE TABLE"
    body = ",\n    ".join(keys_columns_ddl(spec))
    return [
        f"{verb} {objects.keys_table} (\n    {body}\n) "
        "COMMENT = 'aurora-sync: key snapshots of reconciling runs, loaded and cleared by the verifier'"
    ]


def _compare(
    evolution: Evolution,
    spec: TableSpec,
    *,
    final: Mapping[str, ColumnType],
    staging: Mapping[str, ColumnType],
    pipe: Pipe,
    parsed: PipeDefinition,
    objects: SnowflakeObjects,
    today: datetime,
) -> Evolution:
    alters: list[str] = []
    unsafe: list[str] = []
    renamed: set[str] = set()
    for layout_column, mapping in zip(evolution.layout, spec.columns, strict=True):
        name = layout_column.name
        for place, have, declared, table in (
            ("STAGING", staging, mapping.staging_type, objects.staging_table),
            ("FINAL", final, mapping.final_type, objects.final_table),
        ):
            if name not in have:
                alters.append(add_column(table, name, declared))
                if name not in evolution.added:
                    evolution.added.append(name)
                continue
            change, why = type_change(have[name], declared_type(declared))
            if change == "widen":
                alters.append(set_data_type(table, name, declared))
                if name not in evolution.widened:
                    evolution.widened.append(name)
            elif change == "unsafe":
                unsafe.append(
                    f"{place} column {quote(name)} is {have[name]}, but source column "
                    f"{layout_column.source!r} is now {layout_column.source_type} ({declared}): {why}"
                )
                renamed.add(name)
    if unsafe:
        evolution.error = _unsafe(
            evolution.table,
            unsafe,
            renamed=renamed,
            staging=staging,
            final=final,
            objects=objects,
            today=today,
        )
        return evolution
    names = [c.name for c in evolution.layout]
    evolution.dropped = [n for n in parsed.layout if n not in names]
    evolution.reordered = not evolution.dropped and not evolution.added and parsed.layout != names
    if not alters and parsed.layout == names:
        return evolution
    # Tables first (staging before final: the order ALTERs were collected in per column is kept
    # within each table), the MERGE next, the pipe last: until the pipe is replaced, the next
    # run sees a difference and finishes whatever a failed step left.
    ordered = [s for s in alters if s.startswith(f"ALTER TABLE {objects.staging_table} ")]
    ordered += [s for s in alters if not s.startswith(f"ALTER TABLE {objects.staging_table} ")]
    evolution.statements = [
        *ordered,
        f"ALTER TASK {objects.merge_task} MODIFY AS {render_merge(objects, spec)}",
        pipe_statement(
            objects,
            names,
            parsed.source,
            comment=pipe.comment or f"aurora-sync: loads {evolution.table} into STAGING",
            auto_ingest=pipe.auto_ingest,
            replace=True,
        ),
    ]
    return evolution


def _unsafe(
    name: str,
    problems: list[str],
    *,
    renamed: set[str],
    staging: Mapping[str, ColumnType],
    final: Mapping[str, ColumnType],
    objects: SnowflakeObjects,
    today: datetime,
) -> UnsafeSchemaChange:
    suffix = f"_BEFORE_{today:%Y%m%d}"
    statements = [
        f"ALTER TABLE {table} RENAME COLUMN {quote(column)} TO {quote(column + suffix)}"
        for table, have in ((objects.staging_table, staging), (objects.final_table, final))
        for column in sorted(renamed)
        if column in have
    ]
    return UnsafeSchemaChange(
        f"table {name!r}: {'; '.join(problems)}. Nothing was changed or exported for this table.",
        fix="keep FINAL's values under another name and let the next run add the column with its new "
        f"type and re-export the table in full: {'; '.join(statements)}; or change the source column back",
    )


def apply_evolution(conn: Any, evolution: Evolution) -> None:
    """Run the table's statements in order; a terminal error fails the table (naming the
    statement), a transient one propagates (the planner is retried and starts over)."""
    cur = conn.cursor()
    try:
        for number, statement in enumerate(evolution.statements, 1):
            first_line = statement.splitlines()[0][:120]
            step = f"schema change {number} of {len(evolution.statements)}"
            with warehouse_errors(f"table {evolution.table}: {step} ({first_line})"):
                cur.execute(statement)
                cur.fetchall()
    except TerminalError as exc:
        evolution.error = exc
    finally:
        cur.close()


def layout_record(evolution: Evolution) -> tuple[str, str, str]:
    """The ledger's entry for the table's layout (``ledger.record_layouts``)."""
    return evolution.target, evolution.fingerprint, dumps(evolution.layout)
