"""Reads table and column definitions from the PostgreSQL catalog (data access, no rules)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import SourceObjectMissing
from .typemap import PgType

# Domains resolve to their base type (one level is what real schemas use; nested domains are rare
# and still end up as text through the fallback). Arrays carry their element type.
_COLUMNS_SQL = """
SELECT a.attname,
       a.attnotnull,
       bt.typname,
       format_type(bt.oid, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END),
       bt.typcategory,
       et.typname,
       format_type(et.oid, NULL),
       et.typcategory
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_catalog.pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
WHERE a.attrelid = %(relid)s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
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


def relation_oid(cursor: Any, schema: str, table: str) -> int:
    cursor.execute(_RELATION_SQL, {"schema": schema, "table": table})
    row = cursor.fetchone()
    if row is None:
        raise SourceObjectMissing(
            f"source table {schema}.{table} does not exist (or the sync role cannot see its schema).",
            fix="check `schema`/`table` in the table config (exact, case-sensitive names) "
            "and GRANT USAGE ON SCHEMA to the sync role",
        )
    return int(row[0])


def read_columns(cursor: Any, schema: str, table: str) -> list[SourceColumn]:
    """The table's columns in attnum order, as the export must list them."""
    relid = relation_oid(cursor, schema, table)
    cursor.execute(_COLUMNS_SQL, {"relid": relid})
    columns = []
    for name, not_null, typname, formatted, category, el_name, el_formatted, el_category in cursor.fetchall():
        element = PgType(el_name, el_formatted, el_category) if el_name else None
        columns.append(SourceColumn(name, PgType(typname, formatted, category, element), bool(not_null)))
    return columns
