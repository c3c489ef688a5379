"""Renders the Aurora side's SQL: the fixed setup files and each synced table's grants.

The grants are the only per-table SQL in Aurora: the sync role may read exactly the configured
tables (or, when a config lists columns, exactly those columns) and nothing else. Identifiers
are quoted by ``psycopg2.sql`` against a live connection, so hostile names (quotes, semicolons,
mixed case) come out as one identifier each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg2 import sql

from aurora_sync.config import LoadedTable
from aurora_sync.export_query import export_columns
from aurora_sync.source_catalog import read_columns

SETUP_DIR = Path(__file__).resolve().parents[2] / "sql" / "aurora"
# Fixed by sql/aurora/02_sync_role.sql, which creates it.
SYNC_ROLE = "aurora_sync"


@dataclass(frozen=True)
class TableGrants:
    name: str
    schema: str
    table: str
    columns: list[str] | None  # None: the whole table
    statements: list[str]


def setup_files() -> list[tuple[str, str]]:
    """(file name, text) of sql/aurora/ in order; run once per source database, as printed.

    They are kept whole: 02 holds a DO block whose body contains ';'.
    """
    return [(path.name, path.read_text()) for path in sorted(SETUP_DIR.glob("*.sql"))]


def render_grants(conn: Any, loaded: LoadedTable, *, role: str = SYNC_ROLE) -> TableGrants:
    """USAGE on the schema and SELECT on the table (or its configured columns) for ``role``.

    Reads the catalog first, so a missing table or configured column fails here with the
    exporter's own message instead of later as a grant error.
    """
    config = loaded.config
    with conn.cursor() as cur:
        catalog = read_columns(cur, config.schema_name, config.table)
    columns = export_columns(catalog, config.columns, table=loaded.name)
    grantee = sql.Identifier(role)
    relation = sql.Identifier(config.schema_name, config.table)
    usage = sql.SQL("GRANT USAGE ON SCHEMA {} TO {};").format(sql.Identifier(config.schema_name), grantee)
    if config.columns is None:
        select = sql.SQL("GRANT SELECT ON TABLE {} TO {};").format(relation, grantee)
    else:
        select = sql.SQL("GRANT SELECT ({}) ON TABLE {} TO {};").format(
            sql.SQL(", ").join(sql.Identifier(c.name) for c in columns), relation, grantee
        )
    return TableGrants(
        name=loaded.name,
        schema=config.schema_name,
        table=config.table,
        columns=None if config.columns is None else [c.name for c in columns],
        statements=[usage.as_string(conn), select.as_string(conn)],
    )


def render_script(conn: Any, tables: Sequence[LoadedTable], *, setup: bool = False) -> str:
    """The text ``aurora-sync sql aurora`` prints: psql-ready, one commented block per table."""
    blocks: list[str] = []
    if setup:
        for name, text in setup_files():
            blocks.append(f"-- ===== sql/aurora/{name}\n{text.rstrip()}\n")
    for loaded in tables:
        grants = render_grants(conn, loaded)
        # Only the validated NAME goes into the comment; source names may hold anything.
        scope = "whole table" if grants.columns is None else f"{len(grants.columns)} configured column(s)"
        blocks.append(
            f"-- table {grants.name}: read access for {SYNC_ROLE} ({scope})\n"
            + "\n".join(grants.statements)
            + "\n"
        )
    return "\n".join(blocks)
