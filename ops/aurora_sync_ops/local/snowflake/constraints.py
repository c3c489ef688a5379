"""``SHOW [TERSE] PRIMARY KEYS [IN ...]`` answered from DuckDB's catalog, as Snowflake answers it.

fakesnow's own answer numbers every key column 1 and, for ``IN TABLE``, matches the table name in
any database and schema; tools that read a composite key (the product's ``sql snowflake`` key
check) need the real ``key_sequence`` and scope. Columns, order and scopes follow Snowflake's
documentation of SHOW PRIMARY KEYS. Not reproduced: ``created_on`` (DuckDB keeps no creation
time; the epoch is returned) and user-given constraint names (DuckDB does not keep them; an
unnamed constraint is ``SYS_CONSTRAINT_<uuid>`` in Snowflake, and so here, stable per table).
"""

from __future__ import annotations

import uuid
from typing import Any

from duckdb import DuckDBPyConnection

from .catalog import ObjectName, does_not_exist, split_parts, sql_error
from .pipes import Session

COLUMNS = (
    "created_on",
    "database_name",
    "schema_name",
    "table_name",
    "column_name",
    "key_sequence",
    "constraint_name",
    "rely",
    "comment",
)
_EPOCH = "1970-01-01T00:00:00+00:00"
_NO_OBJECT = "SQL compilation error:\nObject does not exist, or operation cannot be performed."


def _scope(kind: str | None, name: str | None, session: Session) -> tuple[str | None, str | None, str | None]:
    """(database, schema, table) to filter on; None = any."""
    database, schema = session.database, session.schema
    if kind == "ACCOUNT":
        return None, None, None
    if kind == "DATABASE":
        return (split_parts(name)[0] if name else database), None, None
    if kind in ("SCHEMA", "TABLE") and name is None:
        # SCHEMA or TABLE without a name: the current schema, else the current database, else all.
        return database, schema if database else None, None
    if kind == "SCHEMA":
        parts = split_parts(name or "")
        if len(parts) == 2:
            return parts[0], parts[1], None
        if not database:
            raise sql_error(_NO_OBJECT)
        return database, parts[0], None
    if name is not None:  # [TABLE] <name>
        table = ObjectName.resolve(name, database, schema)
        return table.database, table.schema, table.name
    # No IN clause: the current database when there is one, else the account.
    return database, None, None


def primary_key_rows(
    duck: DuckDBPyConnection, session: Session, kind: str | None, name: str | None
) -> list[dict[str, Any]]:
    kind = kind.upper() if kind else None
    database, schema, table = _scope(kind, name, session)
    filters, values = ["constraint_type = 'PRIMARY KEY'", "table_name NOT LIKE '\\_fs\\_%' ESCAPE '\\'"], []
    for column, value in (("database_name", database), ("schema_name", schema), ("table_name", table)):
        if value is not None:
            filters.append(f"{column} = ?")
            values.append(value)
    with duck.cursor() as cur:
        if (
            table is not None
            and not cur.execute(
                "SELECT 1 FROM duckdb_tables() "
                "WHERE database_name = ? AND schema_name = ? AND table_name = ?",
                [database, schema, table],
            ).fetchone()
        ):
            raise does_not_exist("Table", f"{database}.{schema}.{table}")
        found = cur.execute(
            "SELECT database_name, schema_name, table_name, constraint_column_names "
            f"FROM duckdb_constraints() WHERE {' AND '.join(filters)} "
            "ORDER BY database_name, schema_name, table_name",
            values,
        ).fetchall()
    rows = []
    for db, sch, tbl, columns in found:
        constraint = uuid.uuid5(uuid.NAMESPACE_URL, f"snowflake-emulator:{db}.{sch}.{tbl}:{columns}")
        for sequence, column in enumerate(columns, 1):
            rows.append(
                {
                    "created_on": _EPOCH,
                    "database_name": db,
                    "schema_name": sch,
                    "table_name": tbl,
                    "column_name": column,
                    "key_sequence": sequence,
                    "constraint_name": f"SYS_CONSTRAINT_{constraint}",
                    "rely": "false",
                    "comment": None,
                }
            )
    return rows
