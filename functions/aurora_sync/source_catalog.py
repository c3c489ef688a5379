"""Reads table and column definitions from the PostgreSQL catalog (data access, no rules)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import SourceObjectMissing
from .typemap import PgType

# Domains resolve to their base type (one level is what real schemas use; nested domains are rare
# and still end up as text through the fallback). Arrays carry their element type.
_COLUMN_FIELDS = """
       a.attname,
       a.attnotnull,
       bt.typname,
       format_type(bt.oid, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END),
       bt.typcategory,
       et.typname,
       format_type(et.oid, NULL),
       et.typcategory,
       a.attnum
"""
_TYPE_JOINS = """
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_catalog.pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
"""
_COLUMNS_SQL = f"""
SELECT {_COLUMN_FIELDS}
FROM pg_catalog.pg_attribute a
{_TYPE_JOINS}
WHERE a.attrelid = %(relid)s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
# Many tables in one statement (the planner): the relations are bound as two parallel arrays.
_MANY_COLUMNS_SQL = f"""
SELECT r.nspname, r.relname, {_COLUMN_FIELDS}
FROM unnest(%(schemas)s::text[], %(tables)s::text[]) AS r(nspname, relname)
JOIN pg_catalog.pg_namespace n ON n.nspname = r.nspname
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = r.relname
    AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
{_TYPE_JOINS}
ORDER BY r.nspname, r.relname, a.attnum
"""

_RELATION_SQL = """
SELECT c.oid
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = %(table)s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""


@dataclass(frozen=True)
class SourceColumn:
    name: str
    pg_type: PgType
    not_null: bool
    # pg_attribute.attnum: a column dropped and added again under the same name gets a new one,
    # so it tells the two apart (their values are not the same column's).
    attnum: int = 0


def relation_oid(cursor: Any, schema: str, table: str) -> int:
    cursor.execute(_RELATION_SQL, {"schema": schema, "table": table})
    row = cursor.fetchone()
    if row is None:
        raise SourceObjectMissing(
            f"source table {schema}.{table} does not exist.",
            # The catalog lists every table whatever the role's grants: a missing grant fails the
            # export's SELECT instead, with the GRANT that allows it.
            fix="check `schema`/`table` in the table config (exact, case-sensitive catalog names)",
        )
    return int(row[0])


def read_columns(cursor: Any, schema: str, table: str) -> list[SourceColumn]:
    """The table's columns in attnum order, as the export must list them."""
    relid = relation_oid(cursor, schema, table)
    cursor.execute(_COLUMNS_SQL, {"relid": relid})
    return [_column(row) for row in cursor.fetchall()]


def _column(row: Sequence[Any]) -> SourceColumn:
    name, not_null, typname, formatted, category, el_name, el_formatted, el_category, attnum = row
    element = PgType(el_name, el_formatted, el_category) if el_name else None
    return SourceColumn(name, PgType(typname, formatted, category, element), bool(not_null), int(attnum))


def read_catalogs(
    cursor: Any, relations: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[SourceColumn]]:
    """The columns of many (schema, table) relations in one statement, each in attnum order; a
    relation that does not exist (or whose schema the role cannot see) is absent."""
    if not relations:
        return {}
    cursor.execute(
        _MANY_COLUMNS_SQL,
        {"schemas": [schema for schema, _ in relations], "tables": [table for _, table in relations]},
    )
    found: dict[tuple[str, str], list[SourceColumn]] = {}
    for row in cursor.fetchall():
        found.setdefault((row[0], row[1]), []).append(_column(row[2:]))
    return found


_ROW_ESTIMATES_SQL = """
SELECT n.nspname, c.relname, c.reltuples::bigint
FROM unnest(%(schemas)s::text[], %(tables)s::text[]) AS wanted(schema_name, table_name)
JOIN pg_catalog.pg_namespace n ON n.nspname = wanted.schema_name
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = wanted.table_name
"""


def read_row_estimates(cursor: Any, relations: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """PostgreSQL's row estimate (``pg_class.reltuples``, kept by ANALYZE and autovacuum) of many
    relations in one statement; -1 (or 0) when the table was never analyzed. Costs no table read."""
    if not relations:
        return {}
    cursor.execute(
        _ROW_ESTIMATES_SQL,
        {"schemas": [schema for schema, _ in relations], "tables": [table for _, table in relations]},
    )
    return {(str(row[0]), str(row[1])): int(row[2]) for row in cursor.fetchall()}
