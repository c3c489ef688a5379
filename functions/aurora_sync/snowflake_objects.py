"""Each table's Snowflake objects as SQL: its columns, the pipe's COPY, the MERGE, column changes.

Shared by the operator tooling, which creates the objects (``aurora-sync sql snowflake``, with
``snowflake_tables``), and the planner, which evolves them when the source's
columns change (``schema_evolution``). Types come from the one type map (``typemap``), names
from ``naming``, the CSV column order from ``export_query.export_columns``: the same function
the exporter uses.

The pipe is the contract between the exporter and Snowflake: its COPY names the STAGING
columns the CSV fields load into, in order (``$1..$n``, then the unrepresentable-values JSON,
then the load metadata). ``parse_pipe`` reads that column list back from the definition
Snowflake keeps (``SHOW PIPES``), so the planner knows exactly which file layout a pipe loads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .config import LoadedTable
from .export_query import build_plan
from .ledger import Ledger
from .messages import NewColumn, SyncMode
from .naming import (
    DELETED_COLUMN,
    FILE_COLUMN,
    LOADED_AT_COLUMN,
    ROW_COLUMN,
    SNAPSHOT_COLUMN,
    SYNCED_AT_COLUMN,
    SnowflakeObjects,
    quote,
    snowflake_column,
    snowflake_columns,
)
from .source_catalog import SourceColumn
from .typemap import UNREPRESENTABLE_COLUMN, ColumnMapping, map_column
from .warehouse_db import IN_BOUND_LIST

# Matches `<uuid>.csv` and the `_part2`, `_part3`, ... that aws_s3 adds to split exports.
FILE_PATTERN = ".*[.]csv(_part[0-9]+)?"
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")
# What the pipe's COPY loads after the source columns, in this order.
LOAD_METADATA = ("METADATA$FILENAME", "METADATA$FILE_ROW_NUMBER", "METADATA$START_SCAN_TIME")
TRAILING_COLUMNS = (UNREPRESENTABLE_COLUMN, FILE_COLUMN, ROW_COLUMN, LOADED_AT_COLUMN)
_FIELD = r"(?:\$\d+|METADATA\$[A-Z_]+)"
_SELECT_LIST = re.compile(rf"({_FIELD}(?:\s*,\s*{_FIELD})*)\s+FROM\s+", re.I)
_UNQUOTED = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


class SqlConfigError(ValueError):
    """A setup value that cannot be rendered safely; the message names it and the rule."""


@dataclass(frozen=True)
class TableSpec:
    """One table as the Snowflake side needs it: exported columns, in CSV order, with types."""

    name: str
    target: str
    columns: list[ColumnMapping]
    snowflake_names: list[str]
    primary_key: list[str]  # Snowflake names
    cursor: str | None  # Snowflake name; None in modes xmin and full
    soft_delete: str | None  # Snowflake name
    soft_delete_is_boolean: bool
    soft_delete_mode: str

    def name_of(self, source_column: str) -> str:
        return self.snowflake_names[[m.column for m in self.columns].index(source_column)]


def table_spec(
    *,
    name: str,
    target: str,
    catalog: Sequence[SourceColumn],
    schema: str,
    table: str,
    columns: Sequence[str] | None,
    primary_key: Sequence[str],
    cursor: str | None,
    soft_delete_column: str | None = None,
    soft_delete_mode: str = "delete",
    mode: SyncMode = "cursor",
) -> TableSpec:
    """Validates the config against the catalog exactly as the exporter does."""
    plan = build_plan(
        catalog,
        schema=schema,
        table=table,
        name=name,
        configured_columns=columns,
        cursor=cursor,
        primary_key=primary_key,
        mode=mode,
    )
    plan_columns = plan.columns
    source_names = [c.name for c in plan_columns]
    snowflake_names = snowflake_columns(source_names, table=name)
    by_source = dict(zip(source_names, snowflake_names, strict=True))
    mappings = [map_column(c.name, c.pg_type) for c in plan_columns]
    soft_delete_boolean = False
    if soft_delete_column:
        if soft_delete_column not in by_source:
            raise SqlConfigError(f"table {name!r}: soft_delete_column {soft_delete_column!r} is not exported")
        soft_delete_boolean = (
            next(c for c in plan_columns if c.name == soft_delete_column).pg_type.name == "bool"
        )
    return TableSpec(
        name=name,
        target=target,
        columns=mappings,
        snowflake_names=snowflake_names,
        primary_key=[by_source[c] for c in primary_key],
        cursor=by_source[cursor] if cursor is not None else None,
        soft_delete=by_source[soft_delete_column] if soft_delete_column else None,
        soft_delete_is_boolean=soft_delete_boolean,
        soft_delete_mode=soft_delete_mode,
    )


def config_spec(loaded: LoadedTable, catalog: Sequence[SourceColumn]) -> TableSpec:
    """``table_spec`` of a loaded table config: the one place config fields map to its arguments."""
    config = loaded.config
    return table_spec(
        name=loaded.name,
        target=loaded.target,
        catalog=catalog,
        schema=config.schema_name,
        table=config.table,
        columns=config.columns,
        primary_key=config.primary_key,
        cursor=config.cursor,
        mode=config.mode,
        soft_delete_column=config.soft_delete_column,
        soft_delete_mode=config.soft_delete_mode,
    )


# --- tables -----------------------------------------------------------------------------------
def columns_ddl(spec: TableSpec, *, final: bool) -> list[str]:
    lines = []
    for mapping, name in zip(spec.columns, spec.snowflake_names, strict=True):
        kind = mapping.final_type if final else mapping.staging_type
        not_null = " NOT NULL" if final and name in spec.primary_key else ""
        lines.append(f"{quote(name)} {kind}{not_null}")
    lines.append(f"{quote(UNREPRESENTABLE_COLUMN)} {'VARIANT' if final else 'VARCHAR'}")
    if final:
        lines.append(f"{quote(SYNCED_AT_COLUMN)} TIMESTAMP_TZ")
        lines.append(f"{quote(SNAPSHOT_COLUMN)} NUMBER(38,0)")
        if spec.soft_delete and spec.soft_delete_mode == "flag":
            lines.append(f"{quote(DELETED_COLUMN)} BOOLEAN")
        lines.append(f"PRIMARY KEY ({', '.join(quote(k) for k in spec.primary_key)})")
    else:
        lines += [
            f"{quote(FILE_COLUMN)} VARCHAR",
            f"{quote(ROW_COLUMN)} NUMBER",
            f"{quote(LOADED_AT_COLUMN)} TIMESTAMP_TZ",
        ]
    return lines


def keys_columns_ddl(spec: TableSpec) -> list[str]:
    """The key snapshot table: the primary key in STAGING's types (the key files are CSV written
    with the data files' export expressions, so they load like STAGING does), then the file."""
    by_name = dict(zip(spec.snowflake_names, spec.columns, strict=True))
    lines = [f"{quote(k)} {by_name[k].staging_type}" for k in spec.primary_key]
    lines.append(f"{quote(FILE_COLUMN)} VARCHAR")
    return lines


def staging_columns(spec: TableSpec) -> list[str]:
    """STAGING's columns in CSV order, then the load metadata: the pipe's COPY column list."""
    return [*spec.snowflake_names, *TRAILING_COLUMNS]


# --- the pipe -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PipeSource:
    """What a pipe's COPY reads besides the column list: the stage location and the options
    after it (file format, pattern), as Snowflake SQL text."""

    location: str  # @"DB"."STAGING"."STAGE"/<table>/
    options: str  # FILE_FORMAT = (...) and PATTERN = '...'


def copy_statement(staging_table: str, layout: Sequence[str], source: PipeSource) -> str:
    """``COPY INTO <STAGING> (<layout>, <trailing>) FROM (SELECT $1..$n+1, <metadata> ...)``."""
    csv_fields = [f"${n}" for n in range(1, len(layout) + 2)]
    select = ", ".join([*csv_fields, *LOAD_METADATA])
    columns = ", ".join(quote(c) for c in [*layout, *TRAILING_COLUMNS])
    return (
        f"COPY INTO {staging_table} ({columns})\n"
        f"FROM (SELECT {select} FROM {source.location})\n"
        f"{source.options}"
    )


def pipe_statement(
    objects: SnowflakeObjects,
    layout: Sequence[str],
    source: PipeSource,
    *,
    comment: str,
    auto_ingest: bool = True,
    replace: bool = False,
) -> str:
    create = "CREATE OR REPLACE PIPE" if replace else "CREATE PIPE IF NOT EXISTS"
    escaped = comment.replace("'", "''")
    return (
        f"{create} {objects.pipe}\n"
        f"    AUTO_INGEST = {'TRUE' if auto_ingest else 'FALSE'}\n"
        f"    COMMENT = '{escaped}'\n"
        f"AS {copy_statement(objects.staging_table, layout, source)}"
    )


@dataclass(frozen=True)
class PipeDefinition:
    """A pipe's COPY as aurora-sync writes it, read back from ``SHOW PIPES``' definition."""

    staging_table: str  # as written
    layout: list[str]  # the STAGING columns the CSV's source fields load into, in order
    source: PipeSource


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _identifier(text: str, pos: int) -> tuple[str, int] | None:
    """A quoted ("x""y") or unquoted identifier at ``pos``: (its exact name, end)."""
    if pos < len(text) and text[pos] == '"':
        name, pos = [], pos + 1
        while pos < len(text):
            if text[pos] == '"':
                if text[pos + 1 : pos + 2] == '"':
                    name.append('"')
                    pos += 2
                    continue
                return "".join(name), pos + 1
            name.append(text[pos])
            pos += 1
        return None
    match = _UNQUOTED.match(text, pos)
    return (match.group(0).upper(), match.end()) if match else None


def _qualified(text: str, pos: int) -> tuple[str, int] | None:
    start = pos
    while True:
        part = _identifier(text, pos)
        if part is None:
            return None
        pos = part[1]
        if text[pos : pos + 1] != ".":
            return text[start:pos], pos
        pos += 1


def _keyword(text: str, pos: int, word: str) -> int | None:
    match = re.compile(rf"{word}\b", re.I).match(text, pos)
    return _skip_space(text, match.end()) if match else None


def parse_pipe(definition: str) -> PipeDefinition | None:
    """The layout a pipe loads, or None when its COPY is not of the form ``copy_statement``
    writes (a pipe made by hand, or by another tool)."""
    text = definition.strip()
    pos = _keyword(text, 0, r"COPY\s+INTO")
    table = _qualified(text, pos) if pos is not None else None
    if table is None:
        return None
    staging_table, pos = table
    pos = _skip_space(text, pos)
    if text[pos : pos + 1] != "(":
        return None
    columns: list[str] = []
    pos = _skip_space(text, pos + 1)
    while True:
        column = _identifier(text, pos)
        if column is None:
            return None
        columns.append(column[0])
        pos = _skip_space(text, column[1])
        if text[pos : pos + 1] == ",":
            pos = _skip_space(text, pos + 1)
            continue
        if text[pos : pos + 1] != ")":
            return None
        pos = _skip_space(text, pos + 1)
        break
    pos = _keyword(text, pos, "FROM")
    if pos is None or text[pos : pos + 1] != "(":
        return None
    pos = _keyword(text, _skip_space(text, pos + 1), "SELECT")
    if pos is None:
        return None
    match = _SELECT_LIST.match(text, pos)
    if match is None:
        return None
    fields = [f.strip().upper() for f in match.group(1).split(",")]
    pos, depth, quoted = match.end(), 0, ""
    start = pos
    while pos < len(text):  # the location runs to the subquery's closing parenthesis
        char = text[pos]
        if quoted:
            quoted = "" if char == quoted else quoted
        elif char in "'\"":
            quoted = char
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                break
            depth -= 1
        pos += 1
    if pos >= len(text):
        return None
    location, options = text[start:pos].strip(), text[pos + 1 :].strip()
    layout = columns[: -len(TRAILING_COLUMNS)]
    expected = [f"${n}" for n in range(1, len(layout) + 2)] + list(LOAD_METADATA)
    if tuple(columns[-len(TRAILING_COLUMNS) :]) != TRAILING_COLUMNS or fields != expected or not layout:
        return None
    return PipeDefinition(staging_table, layout, PipeSource(location, options))


# --- the MERGE ----------------------------------------------------------------------------------
def _deleted(spec: TableSpec, alias: str) -> str:
    assert spec.soft_delete is not None
    column = f"{alias}.{quote(spec.soft_delete)}"
    return f"COALESCE({column}, FALSE)" if spec.soft_delete_is_boolean else f"{column} IS NOT NULL"


def render_merge(objects: SnowflakeObjects, spec: TableSpec) -> str:
    """STAGING stream → FINAL, applying only files a run accounted for, newest snapshot first.

    * The stream is joined to the export ledger (``aurora_sync.ledger``): a row whose file no
      verifier accounted for (a stray object, a replayed copy of an old export) is consumed
      with the stream but never merged, nor is a row of a file whose rows were merged before.
    * A row's versions are ordered by the source snapshot they were read in (the ledger's
      SNAPSHOT_ORDER), then by row: never by the cursor, which inverts when transactions commit
      in the opposite order to their ``now()`` stamps. FINAL keeps the snapshot of the version
      it holds and takes a version only from the same or a later snapshot, so an older file can
      never overwrite a newer version.
    * A row whose key is NULL after the type map (a NULL source key, or a key value Snowflake
      cannot hold) is left out: FINAL's key is NOT NULL, and one such row would fail the whole
      MERGE and wedge the stream. The exporter counts those rows and the verifier fails the
      table, naming one.
    """
    if not IDENTIFIER.match(spec.target):
        raise SqlConfigError(f"target {spec.target!r} is not a plain Snowflake identifier")
    ledger = Ledger(objects.database, objects.staging_schema)
    names = spec.snowflake_names
    by_name = dict(zip(names, spec.columns, strict=True))

    def converted(name: str) -> str:
        return by_name[name].final_expression(f"st.{quote(name)}")

    select = [f"{converted(n)} AS {quote(n)}" for n in names] + [
        f"PARSE_JSON(st.{quote(UNREPRESENTABLE_COLUMN)}) AS {quote(UNREPRESENTABLE_COLUMN)}",
        f"l.SNAPSHOT_ORDER AS {quote(SNAPSHOT_COLUMN)}",
    ]
    keys = [converted(k) for k in spec.primary_key]
    order = f"l.SNAPSHOT_ORDER DESC, st.{quote(ROW_COLUMN)} DESC"
    on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in spec.primary_key)
    snapshot = quote(SNAPSHOT_COLUMN)
    newer = f"(s.{snapshot} >= t.{snapshot} OR t.{snapshot} IS NULL)"
    copied = [*names, UNREPRESENTABLE_COLUMN, SNAPSHOT_COLUMN]
    sets = [f"{quote(c)} = s.{quote(c)}" for c in copied if c not in spec.primary_key]
    sets.append(f"{quote(SYNCED_AT_COLUMN)} = CURRENT_TIMESTAMP()")
    insert_columns = [*copied, SYNCED_AT_COLUMN]
    insert_values = [f"s.{quote(c)}" for c in copied] + ["CURRENT_TIMESTAMP()"]
    clauses = []
    insert_condition = ""
    if spec.soft_delete and spec.soft_delete_mode == "delete":
        clauses.append(f"WHEN MATCHED AND {newer} AND {_deleted(spec, 's')} THEN DELETE")
        insert_condition = f" AND NOT ({_deleted(spec, 's')})"
    elif spec.soft_delete:
        sets.append(f"{quote(DELETED_COLUMN)} = {_deleted(spec, 's')}")
        insert_columns.append(DELETED_COLUMN)
        insert_values.append(_deleted(spec, "s"))
    # A matched row is rewritten, and stamped with this sync's time, only when a value differs:
    # the lookback re-reads rows FINAL already holds, and those must not count as changed (the
    # verifier counts changed rows by that stamp).
    # (In flag mode the soft-delete column is one of these, and the flag follows from it alone.)
    compared = [c for c in [*names, UNREPRESENTABLE_COLUMN] if c not in spec.primary_key]
    differs = [f"t.{quote(c)} IS DISTINCT FROM s.{quote(c)}" for c in compared]
    clauses.append(f"WHEN MATCHED AND {newer} AND ({' OR '.join(differs)}) THEN UPDATE SET {', '.join(sets)}")
    # The same values from a newer snapshot still advance FINAL's snapshot: a version read in
    # between (the row changed and changed back) arriving later must not overwrite it.
    clauses.append(f"WHEN MATCHED AND {newer} THEN UPDATE SET {snapshot} = s.{snapshot}")
    clauses.append(
        f"WHEN NOT MATCHED{insert_condition} THEN INSERT ({', '.join(quote(c) for c in insert_columns)}) "
        f"VALUES ({', '.join(insert_values)})"
    )
    # The target is a plain Snowflake identifier (config validation): safe as a literal.
    return (
        f"MERGE INTO {objects.final_table} AS t\n"
        f"USING (\n    SELECT {', '.join(select)}\n    FROM {objects.stream} AS st\n"
        f"    JOIN {ledger.files} AS l ON l.FILE_NAME = st.{quote(FILE_COLUMN)} "
        f"AND l.TARGET = '{spec.target}' AND l.MERGED_AT IS NULL\n"
        f"    WHERE {' AND '.join(f'{k} IS NOT NULL' for k in keys)}\n"
        f"    QUALIFY ROW_NUMBER() OVER (PARTITION BY {', '.join(keys)} "
        f"ORDER BY {order}) = 1\n) AS s\nON {on}\n" + "\n".join(clauses)
    )


# --- changes ---------------------------------------------------------------------------------------
def add_column(table: str, column: str, declared: str) -> str:
    return f"ALTER TABLE {table} ADD COLUMN {quote(column)} {declared}"


def set_data_type(table: str, column: str, declared: str) -> str:
    return f"ALTER TABLE {table} ALTER COLUMN {quote(column)} SET DATA TYPE {declared}"


def new_column_statements(objects: SnowflakeObjects, columns: Iterable[NewColumn]) -> list[str]:
    """``ALTER TABLE … ADD COLUMN`` in STAGING and FINAL for source columns a config leaves out."""
    statements = []
    for column in columns:
        name = snowflake_column(column.name)
        statements.append(add_column(objects.staging_table, name, column.staging_type))
        statements.append(add_column(objects.final_table, name, column.final_type))
    return statements


def drift_additions(
    objects: SnowflakeObjects,
    spec: TableSpec,
    *,
    staging_existing: Iterable[str],
    final_existing: Iterable[str],
) -> list[str]:
    """``ALTER TABLE … ADD COLUMN`` for each exported column STAGING or FINAL lacks."""
    staging_have, final_have = set(staging_existing), set(final_existing)
    statements = []
    for mapping, name in zip(spec.columns, spec.snowflake_names, strict=True):
        if name not in staging_have:
            statements.append(add_column(objects.staging_table, name, mapping.staging_type))
        if name not in final_have:
            statements.append(add_column(objects.final_table, name, mapping.final_type))
    return statements


# --- key snapshots (hard-delete reconciliation) -------------------------------------------------
# A key snapshot file as the exporter names it (messages.KEY_SNAPSHOT_PREFIX): the only text the
# verifier formats into its COPY (FILES takes no bind variables), so anything else is refused.
KEY_FILE = re.compile(
    r"^_aurora_sync_keys/(?P<table>[a-z][a-z0-9_]{0,62})/[0-9]{4}/[0-9]{2}/[0-9]{2}/[0-9]{2}/"
    r"s[0-9]{26}-[0-9a-f-]{36}[.]csv(_part[0-9]+)?$"
)
_FILE_FORMAT = re.compile(r"FILE_FORMAT\s*=\s*(\([^)]*\))", re.I)


def key_conversion(final_data_type: str, reference: str) -> str:
    """A KEYS column (STAGING's type) as FINAL holds it: the MERGE's conversion (``typemap``),
    which differs from the identity only where STAGING keeps JSON text (VARIANT, ARRAY)."""
    kind = final_data_type.upper()
    if kind == "VARIANT":
        return f"PARSE_JSON({reference})"
    if kind == "ARRAY":
        return f"PARSE_JSON({reference})::ARRAY"
    return reference


# COPY INTO <table> ... FILES = (...): "The maximum number of file names that can be specified is
# 1000" (Snowflake's COPY INTO <table> reference).
MAX_COPY_FILES = 1000


def key_copy_statement(
    keys_table: str, key_columns: Sequence[str], pipe: PipeSource, table: str, files: Sequence[str]
) -> str:
    """``COPY INTO <KEYS>`` of a run's key files, from the stage and file format the table's pipe
    reads with (``pipe``: its location ends in ``/<table>/``). Synchronous, in the caller's
    session: FORCE reloads a file a retried call loaded before, and ABORT_STATEMENT loads every
    file whole or nothing."""
    suffix = f"/{table}/"
    if not pipe.location.endswith(suffix):
        raise SqlConfigError(f"pipe location {pipe.location!r} does not end in {suffix!r}")
    stage = pipe.location[: -len(suffix)]
    file_format = _FILE_FORMAT.search(pipe.options)
    if file_format is None:
        raise SqlConfigError(f"pipe options {pipe.options!r} name no FILE_FORMAT")
    if not 0 < len(files) <= MAX_COPY_FILES:
        raise SqlConfigError(f"a COPY lists 1 to {MAX_COPY_FILES} files, not {len(files)}")
    for name in files:
        match = KEY_FILE.match(name)
        if match is None or match.group("table") != table:
            raise SqlConfigError(f"{name!r} is not a key snapshot file of table {table!r}")
    fields = [f"${n}" for n in range(1, len(key_columns) + 1)]
    listed = ", ".join("'" + name + "'" for name in files)  # checked against KEY_FILE above
    columns = ", ".join(quote(c) for c in [*key_columns, FILE_COLUMN])
    return (
        f"COPY INTO {keys_table} ({columns})\n"
        f"FROM (SELECT {', '.join(fields)}, METADATA$FILENAME FROM {stage}/)\n"
        f"FILES = ({listed})\n"
        f"FILE_FORMAT = {file_format.group(1)}\n"
        "FORCE = TRUE\nON_ERROR = ABORT_STATEMENT"
    )


def key_match(key_columns: Sequence[str], final_types: dict[str, str]) -> str:
    """``k.<key> = f.<key>`` for each key column, KEYS converted to FINAL's type as the MERGE
    converts STAGING (aliases: ``k`` the KEYS table, ``f`` FINAL)."""
    return " AND ".join(
        f"{key_conversion(final_types[c], f'k.{quote(c)}')} = f.{quote(c)}" for c in key_columns
    )


def reconcile_delete(
    objects: SnowflakeObjects, key_columns: Sequence[str], final_types: dict[str, str], files: bool
) -> str:
    """Remove the FINAL rows whose key the key snapshot lacks, never one written after it.

    Binds: the key snapshot's order, then (with ``files``) the key file names as one JSON array
    (``warehouse_db.bound_list``: the text stays the same for 1 file or 2,000). A row FINAL holds from a
    later snapshot (``_AURORA_SYNC_SNAPSHOT`` > order) was written after the snapshot was taken,
    so its absence from the snapshot says nothing. Without files (an empty table) every row up to
    the snapshot goes.
    """
    # The alias without AS: the form Snowflake's DELETE reference shows (``DELETE FROM t1 t``).
    snapshot = f"COALESCE(f.{quote(SNAPSHOT_COLUMN)}, 0) <= CAST(? AS NUMBER(38,0))"
    if not files:
        return f"DELETE FROM {objects.final_table} f WHERE {snapshot}"
    return (
        f"DELETE FROM {objects.final_table} f WHERE {snapshot} AND NOT EXISTS ("
        f"SELECT 1 FROM {objects.keys_table} AS k WHERE k.{quote(FILE_COLUMN)} {IN_BOUND_LIST} "
        f"AND {key_match(key_columns, final_types)})"
    )


def missing_keys_query(
    objects: SnowflakeObjects, key_columns: Sequence[str], final_types: dict[str, str]
) -> str:
    """How many keys of the snapshot FINAL lacks, with one of them: binds the key file names as
    one JSON array (``warehouse_db.bound_list``)."""
    keys = ", ".join(f"k.{quote(c)}::VARCHAR" for c in key_columns)
    return (
        f"SELECT COUNT(*) OVER (), {keys} FROM {objects.keys_table} AS k "
        f"WHERE k.{quote(FILE_COLUMN)} {IN_BOUND_LIST} AND NOT EXISTS ("
        f"SELECT 1 FROM {objects.final_table} AS f WHERE {key_match(key_columns, final_types)}) LIMIT 1"
    )
