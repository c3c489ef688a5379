"""Builds the SQL of an export: window, keyset chunk, boundary lookup and the export SELECT.

Pure functions over the catalog description: no connection, no I/O. Identifiers are quoted by
psycopg2.sql; values (watermark, chunk positions) become typed literals (``'…'::type``) because
the export query travels as text into ``aws_s3.query_export_to_s3`` and cannot carry parameters.
psycopg2 renders ``sql.Literal`` with the server's own escaping when the query is composed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg2 import sql

from .errors import ConfigError, SourceObjectMissing
from .source_catalog import SourceColumn
from .source_snapshot import FUTURE_TOLERANCE
from .typemap import ColumnMapping, map_column, unrepresentable_expression
from .work import ChunkPosition, ExportWindow

TEMPORAL_CURSOR_TYPES = frozenset({"timestamptz", "timestamp", "date"})
INTEGER_CURSOR_TYPES = frozenset({"int2", "int4", "int8", "numeric"})


@dataclass(frozen=True)
class ExportPlan:
    """What one export reads: the table, its exported columns and the key columns' types."""

    schema: str
    table: str
    columns: list[SourceColumn]  # in CSV order
    mappings: list[ColumnMapping]
    cursor: SourceColumn
    primary_key: list[SourceColumn]

    @property
    def relation(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.table)

    @property
    def cursor_is_temporal(self) -> bool:
        return self.cursor.pg_type.name in TEMPORAL_CURSOR_TYPES


def export_columns(
    catalog: Sequence[SourceColumn], configured: Sequence[str] | None, *, table: str
) -> list[SourceColumn]:
    """The CSV column order shared by the export SELECT and the Snowflake pipe.

    The configured list in its order, or every catalog column in attnum order. A configured
    column the source lacks is a terminal error naming it.
    """
    by_name = {column.name: column for column in catalog}
    if configured is None:
        return list(catalog)
    missing = [name for name in configured if name not in by_name]
    if missing:
        raise SourceObjectMissing(
            f"table {table!r}: configured column(s) {', '.join(repr(m) for m in missing)} do not exist "
            f"in the source (it has {', '.join(repr(c.name) for c in catalog)}).",
            fix="remove them from `columns` in the table config, or restore them at the source",
        )
    return [by_name[name] for name in configured]


def build_plan(
    catalog: Sequence[SourceColumn],
    *,
    schema: str,
    table: str,
    name: str,
    configured_columns: Sequence[str] | None,
    cursor: str,
    primary_key: Sequence[str],
) -> ExportPlan:
    by_name = {column.name: column for column in catalog}
    for role, wanted in (("cursor", [cursor]), ("primary_key", list(primary_key))):
        absent = [column for column in wanted if column not in by_name]
        if absent:
            raise SourceObjectMissing(
                f"table {name!r}: {role} column(s) {', '.join(repr(a) for a in absent)} do not exist in "
                f"{schema}.{table}.",
                fix=f"fix `{role}` in the table config (exact, case-sensitive column names)",
            )
    cursor_column = by_name[cursor]
    if cursor_column.pg_type.category == "A" or cursor_column.pg_type.name not in (
        TEMPORAL_CURSOR_TYPES | INTEGER_CURSOR_TYPES
    ):
        raise ConfigError(
            f"table {name!r}: cursor column {cursor!r} has type {cursor_column.pg_type.formatted}; "
            "a cursor must be a timestamp, timestamptz, date or integer column.",
            fix="choose a column that every insert and update advances (e.g. updated_at)",
        )
    columns = export_columns(catalog, configured_columns, table=name)
    return ExportPlan(
        schema=schema,
        table=table,
        columns=columns,
        mappings=[map_column(column.name, column.pg_type) for column in columns],
        cursor=cursor_column,
        primary_key=[by_name[column] for column in primary_key],
    )


def _typed(value: str, column: SourceColumn) -> sql.Composable:
    # format_type() output is the server's own spelling of the type (quoted where needed).
    return sql.SQL("{}::{}").format(sql.Literal(value), sql.SQL(column.pg_type.formatted))


def window_predicate(plan: ExportPlan, window: ExportWindow) -> sql.Composable:
    """``cursor >= watermark - lookback``; TRUE for a full export.

    Inclusive, so rows sharing the boundary value are read again rather than lost. For a date
    cursor the lower bound is the *day* that holds ``watermark - lookback`` (the cast floors it):
    a lookback that crosses midnight must reach back into the previous day, not vanish.
    """
    if window.watermark is None:
        return sql.SQL("TRUE")
    cursor = sql.Identifier(plan.cursor.name)
    watermark = _typed(window.watermark, plan.cursor)
    if plan.cursor_is_temporal and window.lookback_seconds:
        # Transactions stamp rows with now() = their start, and may commit after later rows
        # were exported: re-reading the last lookback seconds catches those late commits.
        lower: sql.Composable = sql.SQL("({w} - make_interval(secs => {s}))::{t}").format(
            w=watermark, s=sql.Literal(window.lookback_seconds), t=sql.SQL(plan.cursor.pg_type.formatted)
        )
    else:
        lower = watermark
    return sql.SQL("{c} >= {lower}").format(c=cursor, lower=lower)


def future_predicate(plan: ExportPlan) -> sql.Composable | None:
    """Rows whose temporal cursor lies beyond the source clock (plus a tolerance); None for
    integer cursors, which have no clock to compare with."""
    if not plan.cursor_is_temporal:
        return None
    now = {
        "timestamptz": "clock_timestamp()",
        "timestamp": "(clock_timestamp() AT TIME ZONE 'UTC')",
        "date": "(clock_timestamp() AT TIME ZONE 'UTC')",
    }[plan.cursor.pg_type.name]
    return sql.SQL("{c} > ({now} + make_interval(secs => {tolerance}))::{t}").format(
        c=sql.Identifier(plan.cursor.name),
        now=sql.SQL(now),
        tolerance=sql.Literal(int(FUTURE_TOLERANCE.total_seconds())),
        t=sql.SQL(plan.cursor.pg_type.formatted),
    )


def quarantine_predicate(plan: ExportPlan) -> sql.Composable | None:
    """Rows whose primary key cannot be merged: a NULL key column, or a key value the type map
    turns into NULL in Snowflake. None when no key column can be either (NOT NULL columns of
    types without unrepresentable values; text-like keys are indexed, far below 16 MB)."""
    checks: list[sql.Composable] = []
    for column in plan.primary_key:
        mapping = map_column(column.name, column.pg_type)
        if not column.not_null:
            checks.append(sql.SQL("{} IS NULL").format(sql.Identifier(column.name)))
        if mapping.unrepresentable is not None and not mapping.final_type.startswith("VARCHAR"):
            checks.append(mapping.unrepresentable)
    if not checks:
        return None
    return sql.SQL("({})").format(sql.SQL(" OR ").join(checks))


def _row(columns: Sequence[SourceColumn]) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(", ").join(sql.Identifier(c.name) for c in columns))


def _row_values(values: Sequence[str], columns: Sequence[SourceColumn]) -> sql.Composable:
    return sql.SQL("({})").format(
        sql.SQL(", ").join(_typed(v, c) for v, c in zip(values, columns, strict=True))
    )


def _keyset_columns(plan: ExportPlan, phase: str) -> list[SourceColumn]:
    return plan.primary_key if phase == "null_cursor" else [plan.cursor, *plan.primary_key]


def phase_predicate(plan: ExportPlan, phase: str) -> sql.Composable:
    op = "IS NULL" if phase == "null_cursor" else "IS NOT NULL"
    return sql.SQL("{} " + op).format(sql.Identifier(plan.cursor.name))


def position_values(position: ChunkPosition) -> list[str] | None:
    if position.phase == "null_cursor":
        return position.key or None
    if position.cursor is None:
        return None
    return [position.cursor, *position.key]


def chunk_predicate(
    plan: ExportPlan, window: ExportWindow, phase: str, after: Sequence[str] | None
) -> sql.Composable:
    """Rows of this phase inside the window that come after the previous chunk's last row."""
    parts = [phase_predicate(plan, phase)]
    if phase == "cursor":
        parts.append(window_predicate(plan, window))
    if after:
        keyset = _keyset_columns(plan, phase)
        parts.append(sql.SQL("{} > {}").format(_row(keyset), _row_values(after, keyset)))
    return sql.SQL(" AND ").join(parts)


def exists_query(plan: ExportPlan, predicate: sql.Composable) -> sql.Composable:
    return sql.SQL("SELECT EXISTS (SELECT 1 FROM {t} WHERE {p})").format(t=plan.relation, p=predicate)


def boundary_query(plan: ExportPlan, phase: str, predicate: sql.Composable, limit: int) -> sql.Composable:
    """The last row of a chunk of ``limit`` rows in keyset order (none when fewer remain).

    Walks the (cursor, primary key) index when one exists; text values round-trip exactly
    through ``::type`` casts in the UTC session.
    """
    keyset = _keyset_columns(plan, phase)
    # The outputs get their own aliases: `"updated_at"::text` would keep the name updated_at, and
    # ORDER BY resolves output names first, silently sorting by the TEXT of the keys.
    return sql.SQL("SELECT {cols} FROM {t} WHERE {p} ORDER BY {order} LIMIT 1 OFFSET {offset}").format(
        cols=sql.SQL(", ").join(
            sql.SQL("{}::text AS {}").format(sql.Identifier(c.name), sql.Identifier(f"_boundary_{i}"))
            for i, c in enumerate(keyset)
        ),
        t=plan.relation,
        p=predicate,
        order=sql.SQL(", ").join(sql.Identifier(c.name) for c in keyset),
        offset=sql.Literal(limit - 1),
    )


def upto_predicate(plan: ExportPlan, phase: str, boundary: Sequence[str]) -> sql.Composable:
    keyset = _keyset_columns(plan, phase)
    return sql.SQL("{} <= {}").format(_row(keyset), _row_values(boundary, keyset))


def export_select(plan: ExportPlan, predicate: sql.Composable) -> sql.Composable:
    """The query Aurora runs inside aws_s3.query_export_to_s3 (no ORDER BY: the set is defined
    by the predicate, and a sort would only cost Aurora memory and time)."""
    return sql.SQL("SELECT {cols}, {extra} FROM {t} WHERE {p}").format(
        cols=sql.SQL(", ").join(m.export for m in plan.mappings),
        extra=unrepresentable_expression(plan.mappings),
        t=plan.relation,
        p=predicate,
    )
