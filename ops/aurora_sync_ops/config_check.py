"""``config validate``: every problem of a table config file, one finding per entry and field.

Two levels. Without a database, each entry is validated exactly as the planner validates an SSM
parameter (``parse_table_config``), plus the file-wide rule that two entries may not share
Snowflake objects. With a source connection, each valid entry is also checked against the
PostgreSQL catalog: the table, its configured, primary key, cursor and soft-delete columns, and
then everything else the exporter would refuse (``table_spec`` builds the same plan it does).
Indexes only produce warnings: a missing one makes runs slow, not wrong.

The primary key must map losslessly: FINAL's key columns are NOT NULL, and the type map turns a
value Snowflake cannot hold into NULL, so such a key row can never be merged. Key types that
produce such values in ordinary use are refused; for types where only special values do
(numeric NaN, ±infinity dates, 24:00:00) and for nullable key columns, one query per table
counts the rows that hold them now.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from psycopg2 import errors as pg_errors
from psycopg2 import sql

from aurora_sync.config import InvalidTable, LoadedTable, TableConfigResult
from aurora_sync.errors import SyncError
from aurora_sync.export_query import INTEGER_CURSOR_TYPES, TEMPORAL_CURSOR_TYPES
from aurora_sync.source_catalog import SourceColumn, read_columns
from aurora_sync.sync_modes import size_warning
from aurora_sync.typemap import map_column

from .snowflake_sql import table_spec

Severity = Literal["error", "warning"]

# pydantic's problems of one entry are joined by "; " and each starts with "field '<name>'".
_PROBLEM_SPLIT = re.compile(r"; (?=field ')")
_FIELD = re.compile(r"^field '([^'\[]+)")
_SOFT_DELETE_TYPES = frozenset({"bool", "timestamptz", "timestamp", "date"})
_NUMERIC_TYPMOD = re.compile(r"^numeric\((\d+),(-?\d+)\)$")
_MAPPED_NUMBER = re.compile(r"^NUMBER\(38,(\d+)\)$")
# The key-value check reads the table: on a huge table without a usable index it is stopped
# rather than left to hang the command.
KEY_CHECK_TIMEOUT_MS = 60_000

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
    _check_cursor_and_mode(add, config, by_name, relation=relation, relkind=relkind, have=have)
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
            mode=config.mode,
            soft_delete_column=soft,
            soft_delete_mode=config.soft_delete_mode,
        )
    except (SyncError, ValueError) as exc:
        add("error", None, str(exc))
        return found
    key_columns = [by_name[c] for c in config.primary_key]
    refused = _check_key_types(add, conn, schema, name, key_columns)
    if relkind in ("v", "f"):
        kind = "a view" if relkind == "v" else "a foreign table"
        add(
            "warning",
            "table",
            f"{relation} is {kind}: PostgreSQL cannot check that the primary key is unique nor index the "
            "cursor here; make sure the underlying table does both",
        )
        if not refused:
            # Its columns are never NOT NULL in the catalog: only its rows can tell.
            _check_key_values(add, conn, schema, name, key_columns)
        return found
    _check_key_coverage(add, conn, schema, name, key_columns, indexes=indexes)
    if not refused:
        _check_key_values(add, conn, schema, name, key_columns)
    _check_mode_size(add, conn, relid, relation, config)
    if config.cursor is not None and not any(cols and cols[0] == config.cursor for _, cols in indexes):
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


def _check_cursor_and_mode(
    add: Callable[[Severity, str | None, str], None],
    config: Any,
    by_name: dict[str, SourceColumn],
    *,
    relation: str,
    relkind: str,
    have: str,
) -> None:
    if config.cursor is not None and config.cursor not in by_name:
        add("error", "cursor", f"column {config.cursor!r} is not in {relation} (it has {have})")
    elif config.cursor is not None:
        _check_cursor_type(add, by_name[config.cursor])
    if config.mode == "xmin" and relkind in ("v", "f"):
        add(
            "error",
            "mode",
            f"{relation} is {'a view' if relkind == 'v' else 'a foreign table'}, which has no row versions "
            "(xmin) to compare; use mode 'full', or mode 'cursor' with a column every write advances",
        )


def _check_mode_size(
    add: Callable[[Severity, str | None, str], None], conn: Any, relid: int, relation: str, config: Any
) -> None:
    """Modes that read the whole table every run, on a table too large for them (the planner's
    estimate: pg_class.reltuples, which ANALYZE and autovacuum keep current)."""
    with conn.cursor() as cur:
        cur.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s", (relid,))
        row = cur.fetchone()
    rows = int(row[0]) if row else -1
    message = size_warning(
        config.mode, config.hard_deletes, rows, relation=relation, every=config.reconcile_every
    )
    if message is not None:
        add("warning", "mode", message)


def _check_key_coverage(
    add: Callable[[Severity, str | None, str], None],
    conn: Any,
    schema: str,
    name: str,
    key_columns: Sequence[SourceColumn],
    *,
    indexes: Sequence[tuple[bool, list[str | None]]],
) -> None:
    relation = sql.Identifier(schema, name).as_string(conn)
    configured = [c.name for c in key_columns]
    key = set(configured)
    covered = any(unique and None not in cols and set(cols) <= key for unique, cols in indexes)
    if not covered:
        add(
            "warning",
            "primary_key",
            f"no primary key or unique index of {relation} is covered by {_named(configured)}: "
            "rows sharing a key are merged into one row in FINAL; use the table's real key",
        )
        if nullable := [c.name for c in key_columns if not c.not_null]:
            not_null = sql.SQL("ALTER TABLE {} {}").format(
                sql.Identifier(schema, name),
                sql.SQL(", ").join(
                    sql.SQL("ALTER COLUMN {} SET NOT NULL").format(sql.Identifier(c)) for c in nullable
                ),
            )
            add(
                "error",
                "primary_key",
                f"{_listed(nullable)} nullable in {relation}, and no primary key or unique index covers "
                f"the key: FINAL's key is NOT NULL, so a row with a NULL key can never be merged; declare "
                f"it: {not_null.as_string(conn)} (or add the table's primary key), or use the table's "
                "real key",
            )


def _check_cursor_type(add: Callable[[Severity, str | None, str], None], column: SourceColumn) -> None:
    kind = column.pg_type
    if kind.category == "A" or kind.name not in TEMPORAL_CURSOR_TYPES | INTEGER_CURSOR_TYPES:
        add(
            "error",
            "cursor",
            f"column {column.name!r} has type {kind.formatted}; a cursor must be a timestamp, timestamptz, "
            "date or integer column that every insert and update advances",
        )


def _numeric_fits(column: SourceColumn) -> tuple[bool, int]:
    """Whether every value of a numeric column fits the NUMBER(38,s) the type map gives it, and s."""
    final_type = map_column(column.name, column.pg_type).final_type
    match = _NUMERIC_TYPMOD.match(column.pg_type.formatted)
    mapped = _MAPPED_NUMBER.match(final_type)
    if match is None:
        return False, int(mapped.group(1)) if mapped else 0
    precision, scale = int(match.group(1)), int(match.group(2))
    if mapped is None:
        return True, scale  # NUMBER(p,s) exactly
    # numeric(p,s) outside NUMBER's rules maps to NUMBER(38,s'): it fits when neither its
    # decimals nor its integer digits can exceed that type's (numeric(5,-2) does, numeric(40,2) not).
    held = int(mapped.group(1))
    return scale <= held and precision - scale <= 38 - held, held


def _check_key_types(
    add: Callable[[Severity, str | None, str], None],
    conn: Any,
    schema: str,
    table: str,
    columns: Sequence[SourceColumn],
) -> bool:
    """Refuse key columns whose type yields values FINAL cannot hold; True when any was refused."""
    relation = sql.Identifier(schema, table).as_string(conn)
    refused = False
    for column in columns:
        kind = column.pg_type
        why: str | None = None
        suggested: str | None = None
        if kind.category == "A":
            why = "arrays become a VARIANT ARRAY in Snowflake, compared as JSON, and NULL beyond 16 MB"
        elif kind.name == "numeric":
            fits, scale = _numeric_fits(column)
            if not fits:
                why = (
                    f"its values can have more digits than Snowflake's NUMBER(38,{scale}) holds, and such "
                    "a key becomes NULL in FINAL"
                )
                suggested = f"numeric(38,{scale})"
        elif kind.name in ("float4", "float8"):
            why = (
                "floating-point values are approximate, so equal-looking keys can differ and a computed "
                "key may not match the stored one"
            )
            suggested = "numeric(38,9)"
        elif kind.name in ("json", "jsonb"):
            why = "JSON becomes a VARIANT in Snowflake (its text is re-serialised) and NULL beyond 16 MB"
        elif kind.name == "bytea":
            why = "binary values over 8 MB become NULL in Snowflake's BINARY"
        if why is None:
            continue
        refused = True
        fix = "choose another primary_key (the table's real key)"
        if suggested is not None:
            alter = sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {}").format(
                sql.Identifier(schema, table), sql.Identifier(column.name), sql.SQL(suggested)
            )
            fix = (
                f"give it an exact type that fits, e.g. {alter.as_string(conn)} (PostgreSQL rounds existing "
                f"values to the new scale: check them first), or {fix}"
            )
        add(
            "error",
            "primary_key",
            f"column {column.name!r} of {relation} has type {kind.formatted}, which cannot be a key: {why}, "
            f"where it cannot be merged; {fix}",
        )
    return refused


def _special_values(column: SourceColumn) -> tuple[sql.Composable, str] | None:
    """A predicate (sargable: it can use an index on the key) for the values of the column's type
    that FINAL cannot hold, and how to name them; None when the type has none."""
    ident, name = sql.Identifier(column.name), column.pg_type.name
    if name == "numeric":
        # Only numeric(p,s) gets here (unconstrained is refused), and it cannot hold ±Infinity.
        return sql.SQL("{} = 'NaN'::numeric").format(ident), "NaN"
    if name in ("date", "timestamp", "timestamptz"):
        # ±infinity sort below and above every date, so one range test finds them too. Explicit
        # UTC bounds: the session's time zone must not move them (the export runs in UTC).
        low, high = (
            ("0001-01-01", "10000-01-01")
            if name != "timestamptz"
            else (
                "0001-01-01 00:00:00+00",
                "10000-01-01 00:00:00+00",
            )
        )
        predicate = sql.SQL("({c} < {lo}::{t} OR {c} >= {hi}::{t})").format(
            c=ident, lo=sql.Literal(low), hi=sql.Literal(high), t=sql.SQL(name)
        )
        return predicate, "±infinity or a year outside 1-9999"
    if name == "time":
        return sql.SQL("{} = '24:00:00'::time").format(ident), "24:00:00"
    return None


def _check_key_values(
    add: Callable[[Severity, str | None, str], None],
    conn: Any,
    schema: str,
    table: str,
    columns: Sequence[SourceColumn],
) -> None:
    """Count the rows whose key FINAL cannot hold: NULL in a nullable key column, or a special value."""
    checks: list[tuple[sql.Composable, str]] = []
    for column in columns:
        if not column.not_null:
            checks.append(
                (sql.SQL("{} IS NULL").format(sql.Identifier(column.name)), f"{column.name!r} NULL")
            )
        if special := _special_values(column):
            checks.append((special[0], f"{column.name!r} {special[1]}"))
    if not checks:
        return
    relation = sql.Identifier(schema, table)
    where = sql.SQL(" OR ").join(predicate for predicate, _ in checks)
    query = sql.SQL("SELECT count(*), {counts} FROM {t} WHERE {w}").format(
        counts=sql.SQL(", ").join(
            sql.SQL("count(*) FILTER (WHERE {})").format(predicate) for predicate, _ in checks
        ),
        t=relation,
        w=where,
    )
    find = sql.SQL("SELECT * FROM {} WHERE {}").format(relation, where).as_string(conn)
    autocommit = conn.autocommit
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT set_config('statement_timeout', %s, true)", (str(KEY_CHECK_TIMEOUT_MS),))
            cur.execute(query)
            total, *counts = cur.fetchone()
    except (pg_errors.QueryCanceled, pg_errors.InsufficientPrivilege) as exc:
        reason = (
            f"it took longer than {KEY_CHECK_TIMEOUT_MS // 1000} s"
            if isinstance(exc, pg_errors.QueryCanceled)
            else "this connection may not read it"
        )
        add(
            "warning",
            "primary_key",
            f"could not check the key values of {relation.as_string(conn)} ({reason}); rows this finds "
            f"cannot be merged: {find}",
        )
        return
    finally:
        conn.rollback()
        conn.autocommit = autocommit
    if not total:
        return
    which = ", ".join(f"{n} with {label}" for n, (_, label) in zip(counts, checks, strict=True) if n)
    add(
        "error",
        "primary_key",
        f"{total} row(s) of {relation.as_string(conn)} have a key value FINAL cannot hold ({which}): FINAL's "
        "key is NOT NULL and such a value becomes NULL, so a run cannot merge these rows and fails the "
        f"table; update or delete them (find them with {find}), or choose another primary_key",
    )


def _named(columns: Sequence[str]) -> str:
    names = ", ".join(repr(c) for c in columns)
    return f"column {names}" if len(columns) == 1 else f"columns {names}"


def _listed(columns: Sequence[str]) -> str:
    return f"{_named(columns)} {'is' if len(columns) == 1 else 'are'}"
