"""``config validate``: every problem of a table config file, one finding per entry and field.

Two levels. Without a database, each entry is validated exactly as the planner validates an SSM
parameter (``parse_table_config``), plus the file-wide rule that two entries may not share
Snowflake objects. With a source connection, each valid entry is also checked against the
PostgreSQL catalog: the table, its configured, primary key, cursor and soft-delete columns, and
then everything else the exporter would refuse (``table_spec`` builds the same plan it does).
Indexes only produce warnings: a missing one makes runs slow, not wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from psycopg2 import sql

from aurora_sync.config import InvalidTable, LoadedTable, TableConfigResult
from aurora_sync.errors import SyncError
from aurora_sync.export_query import INTEGER_CURSOR_TYPES, TEMPORAL_CURSOR_TYPES
from aurora_sync.source_catalog import SourceColumn, read_columns

from .snowflake_sql import table_spec

Severity = Literal["error", "warning"]

# pydantic's problems of one entry are joined by "; " and each starts with "field '<name>'".
_PROBLEM_SPLIT = re.compile(r"; (?=field ')")
_FIELD = re.compile(r"^field '([^'\[]+)")
_SOFT_DELETE_TYPES = frozenset({"bool", "timestamptz", "timestamp", "date"})

_RELATION_SQL = """
SELECT c.oid, c.relkind
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = %(table)s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""
# Key columns of every valid, non-partial index, in index order; NULL marks an expression.
_INDEXES_SQL = """
SELECT i.indisunique,
       ARRAY(SELECT a.attname::text
             FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
             LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE k.n <= i.indnkeyatts
             ORDER BY k.n)
FROM pg_catalog.pg_index i
WHERE i.indrelid = %(relid)s AND i.indisvalid AND i.indpred IS NULL
"""


@dataclass(frozen=True)
class Finding:
    severity: Severity
    table: str  # the entry's name
    entry: str  # where it is written: "<file>[<name>]" or the SSM parameter
    field: str | None  # the config key concerned; None for the entry as a whole
    message: str  # without the entry prefix; starts with "field '<field>': " when field is set

    def line(self) -> str:
        return f"{self.severity}: {self.entry}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "table": self.table,
            "entry": self.entry,
            "field": self.field,
            "message": self.message,
        }


def _field_message(field: str | None, text: str) -> str:
    return f"field '{field}': {text}" if field else text


def config_findings(results: Sequence[TableConfigResult]) -> list[Finding]:
    """One finding per problem of each invalid entry (the planner's own messages)."""
    findings = []
    for result in results:
        if not isinstance(result, InvalidTable):
            continue
        prefix = f"{result.parameter}: "
        body = result.message[len(prefix) :] if result.message.startswith(prefix) else result.message
        for problem in _PROBLEM_SPLIT.split(body):
            match = _FIELD.match(problem)
            findings.append(
                Finding("error", result.name, result.parameter, match.group(1) if match else None, problem)
            )
    return findings


def catalog_findings(conn: Any, tables: Sequence[LoadedTable]) -> list[Finding]:
    """Checks of valid entries against the source catalog (``conn`` may be read-only)."""
    findings: list[Finding] = []
    for table in tables:
        findings += _check_table(conn, table)
    return findings


def _check_table(conn: Any, table: LoadedTable) -> list[Finding]:
    config = table.config
    schema, name = config.schema_name, config.table
    relation = sql.Identifier(schema, name).as_string(conn)
    found: list[Finding] = []

    def add(severity: Severity, field: str | None, text: str) -> None:
        found.append(Finding(severity, table.name, table.parameter, field, _field_message(field, text)))

    with conn.cursor() as cur:
        cur.execute(_RELATION_SQL, {"schema": schema, "table": name})
        row = cur.fetchone()
        if row is None:
            add(
                "error",
                "table",
                f"source table {relation} does not exist, or this connection's role cannot see it; "
                "use the exact, case-sensitive schema and table names of the catalog",
            )
            return found
        relid, relkind = int(row[0]), str(row[1])
        catalog = read_columns(cur, schema, name)
        cur.execute(_INDEXES_SQL, {"relid": relid})
        indexes = [(bool(unique), list(columns)) for unique, columns in cur.fetchall()]

    by_name = {column.name: column for column in catalog}
    have = ", ".join(repr(c.name) for c in catalog)

    def absent(columns: Sequence[str]) -> list[str]:
        return [c for c in columns if c not in by_name]

    if config.columns is not None and (missing := absent(config.columns)):
        add("error", "columns", f"{_listed(missing)} not in {relation} (it has {have})")
    if missing := absent(config.primary_key):
        add("error", "primary_key", f"{_listed(missing)} not in {relation} (it has {have})")
    if config.cursor not in by_name:
        add("error", "cursor", f"column {config.cursor!r} is not in {relation} (it has {have})")
    else:
        _check_cursor_type(add, by_name[config.cursor])
    soft = config.soft_delete_column
    if soft is not None and soft not in by_name:
        add("error", "soft_delete_column", f"column {soft!r} is not in {relation} (it has {have})")
    elif soft is not None and by_name[soft].pg_type.name not in _SOFT_DELETE_TYPES:
        add(
            "error",
            "soft_delete_column",
            f"column {soft!r} has type {by_name[soft].pg_type.formatted}; a soft-delete column must be "
            "boolean (true = deleted) or a timestamp/date (set = deleted)",
        )
    if found:
        return found
    try:
        # Whatever else the exporter and the Snowflake DDL would refuse (name clashes after
        # upper-casing, ...), with their own messages.
        table_spec(
            name=table.name,
            target=table.target,
            catalog=catalog,
            schema=schema,
            table=name,
            columns=config.columns,
            primary_key=config.primary_key,
            cursor=config.cursor,
            soft_delete_column=soft,
            soft_delete_mode=config.soft_delete_mode,
        )
    except (SyncError, ValueError) as exc:
        add("error", None, str(exc))
        return found
    if relkind in ("v", "f"):
        kind = "a view" if relkind == "v" else "a foreign table"
        add(
            "warning",
            "table",
            f"{relation} is {kind}: PostgreSQL cannot check that the primary key is unique nor index the "
            "cursor here; make sure the underlying table does both",
        )
        return found
    key = set(config.primary_key)
    if not any(unique and None not in cols and set(cols) <= key for unique, cols in indexes):
        add(
            "warning",
            "primary_key",
            f"no primary key or unique index of {relation} is covered by {_listed(config.primary_key)}: "
            "rows sharing a key are merged into one row in FINAL; use the table's real key",
        )
    if not any(cols and cols[0] == config.cursor for _, cols in indexes):
        create = sql.SQL("CREATE INDEX CONCURRENTLY ON {} ({})").format(
            sql.Identifier(schema, name), sql.Identifier(config.cursor)
        )
        add(
            "warning",
            "cursor",
            f"no index of {relation} starts with {config.cursor!r}: every incremental run scans the whole "
            f"table to find its window; create one: {create.as_string(conn)}",
        )
    return found


def _check_cursor_type(add: Callable[[Severity, str | None, str], None], column: SourceColumn) -> None:
    kind = column.pg_type
    if kind.category == "A" or kind.name not in TEMPORAL_CURSOR_TYPES | INTEGER_CURSOR_TYPES:
        add(
            "error",
            "cursor",
            f"column {column.name!r} has type {kind.formatted}; a cursor must be a timestamp, timestamptz, "
            "date or integer column that every insert and update advances",
        )


def _listed(columns: Sequence[str]) -> str:
    names = ", ".join(repr(c) for c in columns)
    return f"column {names} is" if len(columns) == 1 else f"columns {names} are"
