"""``config validate``: every problem of a table config file, one finding per entry and field.

Two levels. Without a database, each entry is validated exactly as the planner validates an SSM
parameter (``parse_table_config``), plus the file-wide rule that two entries may not share
Snowflake objects. With a source connection, each valid entry is also checked against the
PostgreSQL catalog: the table, its configured, primary key, cursor and soft-delete columns, and
then everything else the exporter would refuse (``table_spec`` builds the same plan it does).
A missing cursor index only produces a warning: it makes runs slow, not wrong. A primary key that
PostgreSQL does not enforce as unique is an error until the entry confirms it
(``primary_key_not_enforced``): duplicate keys would silently become one row in FINAL.

The primary key must map losslessly: FINAL's key columns are NOT NULL, and the type map turns a
value Snowflake cannot hold into NULL, so such a key row can never be merged. Key types that
produce such values in ordinary use are refused; for types where only special values do
(numeric NaN, ±infinity dates, 24:00:00) and for nullable key columns, one query per table
counts the rows that hold them now.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from psycopg2 import errors as pg_errors
from psycopg2 import sql

from aurora_sync.config import InvalidTable, LoadedTable, TableConfigResult
from aurora_sync.errors import SyncError
from aurora_sync.export_query import INTEGER_CURSOR_TYPES, TEMPORAL_CURSOR_TYPES
from aurora_sync.snowflake_objects import table_spec
from aurora_sync.source_catalog import SourceColumn, read_columns
from aurora_sync.sync_modes import CURSORLESS_DOC, FULL_WARN_ROWS, XMIN_WARN_ROWS, size_warning
from aurora_sync.typemap import map_column

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
# Every index of the table with what decides whether it enforces uniqueness; key columns in
# index order, NULL marking an expression.
_INDEXES_SQL = """
SELECT i.indisprimary, i.indisunique, i.indisvalid,
       pg_catalog.pg_get_expr(i.indpred, i.indrelid),
       ARRAY(SELECT a.attname::text
             FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
             LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE k.n <= i.indnkeyatts
             ORDER BY k.n)
FROM pg_catalog.pg_index i
WHERE i.indrelid = %(relid)s
ORDER BY i.indisprimary DESC, i.indexrelid
"""


@dataclass(frozen=True)
class _Index:
    primary: bool
    unique: bool
    valid: bool
    predicate: str | None  # the WHERE clause of a partial index
    columns: list[str | None]

    @property
    def usable(self) -> bool:
        """Valid and whole: the planner can use it to find rows (a cursor's window)."""
        return self.valid and self.predicate is None

    def enforces(self, key: Sequence[str]) -> bool:
        """PostgreSQL guarantees that ``key`` is unique in the committed rows.

        A unique index on a subset of the key makes the key unique too. A deferrable constraint
        counts: it is checked at commit, and an export reads only committed rows. A partial
        index constrains only the rows its predicate selects, an invalid one (a failed or
        unfinished CREATE INDEX CONCURRENTLY) was never checked against the existing rows, and an
        expression index constrains the expression, not the columns.
        """
        return self.unique and self.usable and None not in self.columns and set(self.columns) <= set(key)

    def describe(self) -> str:
        columns = _key_list([c if c is not None else "(expression)" for c in self.columns])
        if self.primary:
            return f"the primary key {columns}"
        if not self.valid:
            return (
                f"the invalid unique index {columns} (left by a CREATE INDEX CONCURRENTLY that failed or "
                "has not finished)"
            )
        if self.predicate is not None:
            return f"the partial unique index {columns} WHERE {self.predicate}"
        return f"the unique index {columns}"


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
        indexes = [
            _Index(bool(primary), bool(unique), bool(valid), predicate, list(columns))
            for primary, unique, valid, predicate, columns in cur.fetchall()
        ]

    by_name = {column.name: column for column in catalog}
    have = ", ".join(repr(c.name) for c in catalog)

    def absent(columns: Sequence[str]) -> list[str]:
        return [c for c in columns if c not in by_name]

    if config.columns is not None and (missing := absent(config.columns)):
        add("error", "columns", f"{_listed(missing)} not in {relation} (it has {have})")
    if missing := absent(config.primary_key):
        add("error", "primary_key", f"{_listed(missing)} not in {relation} (it has {have})")
    _check_cursor_and_mode(
        add, conn, config, by_name, table=sql.Identifier(schema, name), relkind=relkind, have=have
    )
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
        _check_key_enforced(add, conn, config, sql.Identifier(schema, name), indexes=None, kind=kind)
        if config.cursor is not None:
            add(
                "warning",
                "cursor",
                f"{relation} is {kind}, which has no index of its own: make sure an index of the "
                f"underlying table starts with {config.cursor!r}, or every incremental run scans it whole",
            )
        if not refused:
            # Its columns are never NOT NULL in the catalog: only its rows can tell.
            _check_key_values(add, conn, schema, name, key_columns)
        return found
    _check_key_enforced(add, conn, config, sql.Identifier(schema, name), indexes=indexes, kind=None)
    _check_nullable_key(add, conn, schema, name, key_columns, indexes=indexes)
    if not refused:
        _check_key_values(add, conn, schema, name, key_columns)
    _check_mode_size(add, conn, relid, relation, config)
    _check_cursor_index(add, conn, config, sql.Identifier(schema, name), indexes)
    return found


def _check_cursor_index(
    add: Callable[[Severity, str | None, str], None],
    conn: Any,
    config: Any,
    table: sql.Identifier,
    indexes: Sequence[_Index],
) -> None:
    usable = [index.columns for index in indexes if index.usable]
    if config.cursor is not None and not any(cols and cols[0] == config.cursor for cols in usable):
        create = sql.SQL("CREATE INDEX CONCURRENTLY ON {} ({})").format(table, sql.Identifier(config.cursor))
        add(
            "warning",
            "cursor",
            f"no index of {table.as_string(conn)} starts with {config.cursor!r}: every incremental run scans "
            f"the whole table to find its window; create one: {create.as_string(conn)}",
        )


def _check_cursor_and_mode(
    add: Callable[[Severity, str | None, str], None],
    conn: Any,
    config: Any,
    by_name: dict[str, SourceColumn],
    *,
    table: sql.Identifier,
    relkind: str,
    have: str,
) -> None:
    relation = table.as_string(conn)
    if config.cursor is not None and config.cursor not in by_name:
        fix = _cursor_fix(conn, table, by_name, relkind=relkind, wanted=config.cursor)
        add("error", "cursor", f"column {config.cursor!r} is not in {relation} (it has {have}). Fix: {fix}")
    elif config.cursor is not None and not _usable_cursor(by_name[config.cursor]):
        column = by_name[config.cursor]
        fix = _cursor_fix(conn, table, by_name, relkind=relkind, wanted="updated_at")
        add(
            "error",
            "cursor",
            f"column {column.name!r} has type {column.pg_type.formatted}; a cursor must be a timestamp, "
            f"timestamptz, date or integer column that every insert and update advances. Fix: {fix}",
        )
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


def _check_key_enforced(
    add: Callable[[Severity, str | None, str], None],
    conn: Any,
    config: Any,
    table: sql.Identifier,
    *,
    indexes: Sequence[_Index] | None,
    kind: str | None,
) -> None:
    """A configured key PostgreSQL does not keep unique is an error until the config confirms it.

    ``indexes`` is None for a view or foreign table (``kind``), which cannot have any.
    """
    relation = table.as_string(conn)
    key = list(config.primary_key)
    enforcing = [index for index in indexes or () if index.enforces(key)]
    if enforcing:
        if config.primary_key_not_enforced:
            which = (
                "the primary key"
                if enforcing[0].primary
                else f"the unique index {_key_list(enforcing[0].columns)}"
            )
            add(
                "warning",
                "primary_key_not_enforced",
                f"{which} of {relation} enforces the configured key {_key_list(key)}; remove "
                "primary_key_not_enforced, so that this check warns again if that ever changes",
            )
        return
    if config.primary_key_not_enforced:
        return
    identifiers = sql.SQL(", ").join(sql.Identifier(c) for c in key)
    duplicates = sql.SQL("SELECT {k}, count(*) FROM {t} GROUP BY {k} HAVING count(*) > 1").format(
        k=identifiers, t=table
    )
    confirm = (
        f"check the key ({duplicates.as_string(conn)} returns no row while it is unique) and confirm it "
        "with primary_key_not_enforced: true in this entry"
    )
    why = (
        "If two source rows share a key, FINAL holds only one of them (its MERGE keeps one row per key), "
        "and `aurora-sync parity` reports the difference."
    )
    if indexes is None:
        add(
            "error",
            "primary_key",
            f"{relation} is {kind}: PostgreSQL enforces no key on it, so nothing guarantees that the "
            f"configured key {_key_list(key)} is unique in its rows. {why} Fix: make sure a primary key or "
            f"unique index of the underlying table covers it, then {confirm}",
        )
        return
    uniques = [index for index in indexes if index.unique]
    primary = next((index for index in uniques if index.primary), None)
    others = [index.describe() for index in uniques if not index.primary]
    has = (
        f"{primary.describe() if primary else 'no primary key'} and "
        f"{', '.join(others) if others else 'no unique index'}"
    )
    alternative = next((index for index in uniques if index.usable and None not in index.columns), None)
    if alternative is not None and alternative.primary:
        fix = f"set primary_key to the table's primary key, {_key_list(alternative.columns)}"
    elif alternative is not None:
        fix = f"set primary_key to the columns of a unique index, {_key_list(alternative.columns)}"
    else:
        create = sql.SQL("CREATE UNIQUE INDEX CONCURRENTLY ON {} ({})").format(table, identifiers)
        fix = f"make PostgreSQL enforce it: {create.as_string(conn)} (it fails while rows share a key)"
    add(
        "error",
        "primary_key",
        f"PostgreSQL does not enforce that the configured key {_key_list(key)} is unique in {relation}: no "
        f"primary key or valid, non-partial unique index has all its columns in it. The table has {has}. "
        f"{why} Fix: {fix}; or {confirm}",
    )


def _check_nullable_key(
    add: Callable[[Severity, str | None, str], None],
    conn: Any,
    schema: str,
    name: str,
    key_columns: Sequence[SourceColumn],
    *,
    indexes: Sequence[_Index],
) -> None:
    relation = sql.Identifier(schema, name).as_string(conn)
    configured = [c.name for c in key_columns]
    if any(index.enforces(configured) for index in indexes):
        return
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


def _usable_cursor(column: SourceColumn) -> bool:
    kind = column.pg_type
    return kind.category != "A" and kind.name in TEMPORAL_CURSOR_TYPES | INTEGER_CURSOR_TYPES


def _cursor_fix(
    conn: Any, table: sql.Identifier, by_name: dict[str, SourceColumn], *, relkind: str, wanted: str
) -> str:
    """What a table without a usable cursor can do: name another column, a mode that needs none,
    or (a table only) a column kept current by a trigger."""
    modes = (
        f"mode: full (it exports the whole table on every run: sensible up to about {FULL_WARN_ROWS:,} rows)"
        if relkind in ("v", "f")
        else "mode: xmin (it reads the whole table on every run: sensible up to about "
        f"{XMIN_WARN_ROWS:,} rows) or mode: full (up to about {FULL_WARN_ROWS:,} rows)"
    )
    fix = (
        f"set cursor to a column that every insert and update advances; a table without one syncs with "
        f"{modes}, see {CURSORLESS_DOC}"
    )
    if relkind not in ("r", "p"):
        return fix
    column = next(c for c in (wanted, "updated_at", "aurora_sync_updated_at") if c not in by_name)
    named = "" if column == wanted else f", and set cursor: {column}"
    schema, name = table.strings
    recipe = " ".join(cursor_recipe(conn, schema, name, column))
    return f"{fix}; or add such a column, kept by a trigger: {recipe}{named}"


def cursor_recipe(conn: Any, schema: str, table: str, column: str) -> list[str]:
    """Statements that give a table a timestamptz ``column`` every insert and update advances.

    Inserts get it from the default, updates from a BEFORE UPDATE trigger (whatever the statement
    wrote), and an index lets each run find its window without scanning the table. Run one by
    one outside a transaction block (psql does): CREATE INDEX CONCURRENTLY cannot run inside one.
    """
    relation = sql.Identifier(schema, table)
    ident = sql.Identifier(column)
    # Named after the column: tables of one schema with the same column share the function.
    function = sql.Identifier(schema, f"aurora_sync_set_{column}")
    trigger = sql.Identifier(f"aurora_sync_set_{column}")
    statements = [
        sql.SQL("ALTER TABLE {} ADD COLUMN {} timestamptz NOT NULL DEFAULT now();").format(relation, ident),
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS "
            "$aurora_sync$BEGIN NEW.{} := now(); RETURN NEW; END$aurora_sync$;"
        ).format(function, ident),
        sql.SQL("CREATE TRIGGER {} BEFORE UPDATE ON {} FOR EACH ROW EXECUTE FUNCTION {}();").format(
            trigger, relation, function
        ),
        sql.SQL("CREATE INDEX CONCURRENTLY ON {} ({});").format(relation, ident),
    ]
    return [statement.as_string(conn) for statement in statements]


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


def _key_list(columns: Sequence[str | None]) -> str:
    """Columns as a config file writes them: ["tenant_id", "order_id"]."""
    return json.dumps(list(columns), ensure_ascii=False)


def _named(columns: Sequence[str]) -> str:
    names = ", ".join(repr(c) for c in columns)
    return f"column {names}" if len(columns) == 1 else f"columns {names}"


def _listed(columns: Sequence[str]) -> str:
    return f"{_named(columns)} {'is' if len(columns) == 1 else 'are'}"
