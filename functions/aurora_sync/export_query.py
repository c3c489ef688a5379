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
from .messages import ChunkPosition, ExportWindow, KeyRange, SyncMode, WorkItem
from .source_catalog import SourceColumn
from .source_snapshot import FUTURE_TOLERANCE
from .sync_modes import CURSORLESS_MODES
from .typemap import ColumnMapping, map_column, unrepresentable_expression

TEMPORAL_CURSOR_TYPES = frozenset({"timestamptz", "timestamp", "date"})
INTEGER_CURSOR_TYPES = frozenset({"int2", "int4", "int8", "numeric"})


@dataclass(frozen=True)
class ExportPlan:
    """What one export reads: the table, its exported columns and the key columns' types."""

    schema: str
    table: str
    columns: list[SourceColumn]  # in CSV order
    mappings: list[ColumnMapping]
    cursor: SourceColumn | None  # None outside mode "cursor"
    primary_key: list[SourceColumn]
    mode: SyncMode = "cursor"

    @property
    def relation(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.table)

    @property
    def cursor_is_temporal(self) -> bool:
        return self.cursor is not None and self.cursor.pg_type.name in TEMPORAL_CURSOR_TYPES

    @property
    def cursor_column(self) -> SourceColumn:
        """The cursor column, for the code paths only mode "cursor" reaches."""
        if self.cursor is None:
            raise ValueError(f"table {self.table!r} is exported in mode {self.mode!r}, without a cursor")
        return self.cursor


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
    cursor: str | None,
    primary_key: Sequence[str],
    mode: SyncMode = "cursor",
) -> ExportPlan:
    """The plan of one table; ``cursor`` is None exactly outside mode "cursor" (the work item and
    the config validate that pairing before anything reaches here)."""
    by_name = {column.name: column for column in catalog}
    roles = [("cursor", [cursor])] if cursor is not None else []
    for role, wanted in (*roles, ("primary_key", list(primary_key))):
        absent = [column for column in wanted if column not in by_name]
        if absent:
            fix = f"fix `{role}` in the table config (exact, case-sensitive column names)"
            if role == "cursor":
                fix += f"; a table without a column every write advances syncs with {CURSORLESS_MODES}"
            raise SourceObjectMissing(
                f"table {name!r}: {role} column(s) {', '.join(repr(a) for a in absent)} do not exist in "
                f"{schema}.{table}.",
                fix=fix,
            )
    cursor_column = by_name[cursor] if cursor is not None else None
    if cursor_column is not None and (
        cursor_column.pg_type.category == "A"
        or cursor_column.pg_type.name not in (TEMPORAL_CURSOR_TYPES | INTEGER_CURSOR_TYPES)
    ):
        raise ConfigError(
            f"table {name!r}: cursor column {cursor!r} has type {cursor_column.pg_type.formatted}; "
            "a cursor must be a timestamp, timestamptz, date or integer column.",
            fix="choose a column that every insert and update advances (e.g. updated_at); a table "
            f"without one syncs with {CURSORLESS_MODES}",
        )
    columns = export_columns(catalog, configured_columns, table=name)
    return ExportPlan(
        schema=schema,
        table=table,
        columns=columns,
        mappings=[map_column(column.name, column.pg_type) for column in columns],
        cursor=cursor_column,
        primary_key=[by_name[column] for column in primary_key],
        mode=mode,
    )


def item_plan(catalog: Sequence[SourceColumn], item: WorkItem) -> ExportPlan:
    """The plan of a work item's table from its catalog (``build_plan`` with the item's config)."""
    return build_plan(
        catalog,
        schema=item.source.schema_name,
        table=item.source.table,
        name=item.table,
        configured_columns=item.columns,
        cursor=item.cursor,
        primary_key=item.primary_key,
        mode=item.mode,
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
    cursor_column = plan.cursor_column
    cursor = sql.Identifier(cursor_column.name)
    watermark = _typed(window.watermark, cursor_column)
    if plan.cursor_is_temporal and window.lookback_seconds:
        # Transactions stamp rows with now() = their start, and may commit after later rows
        # were exported: re-reading the last lookback seconds catches those late commits.
        lower: sql.Composable = sql.SQL("({w} - make_interval(secs => {s}))::{t}").format(
            w=watermark, s=sql.Literal(window.lookback_seconds), t=sql.SQL(cursor_column.pg_type.formatted)
        )
    else:
        lower = watermark
    return sql.SQL("{c} >= {lower}").format(c=cursor, lower=lower)


def future_predicate(plan: ExportPlan) -> sql.Composable | None:
    """Rows whose temporal cursor lies beyond the source clock (plus a tolerance); None for
    integer cursors, which have no clock to compare with."""
    if plan.cursor is None or not plan.cursor_is_temporal:
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


# 32-bit transaction ids wrap around; PostgreSQL guarantees that every xid a snapshot can see lies
# less than 2^31 (far less than 2^32) before its xmax, so a 32-bit xmin is resolved against the
# 64-bit xmax of the same snapshot.
XID_MODULUS = 1 << 32
# xids 0-2 are special: invalid, bootstrap and FrozenTransactionId (which VACUUM wrote over xmin
# before PostgreSQL 9.4; pg_upgrade can carry such tuples forward). They predate any watermark.
FIRST_NORMAL_XID = 3


@dataclass(frozen=True)
class XminRange:
    """The row versions written by transaction ids in [watermark, xmax), as 32-bit arithmetic.

    ``lo`` is xmax mod 2^32 and ``distance`` is xmax - watermark: a visible tuple's 64-bit xid is
    ``xmax - ((lo - xmin) mod 2^32)``, so it is at or past the watermark exactly when that age is
    at most ``distance``. Both None: every row (no watermark, a watermark 2^32 or more behind, or
    one beyond xmax; ``went_back`` says it was the last).
    """

    lo: int | None
    distance: int | None
    went_back: bool = False

    @property
    def everything(self) -> bool:
        return self.lo is None


def xmin_range(watermark: str | None, xmax: int, *, run_xmax: int | None = None) -> XminRange:
    """The epoch-aware range of a mode-"xmin" window; ``xmax`` is the chunk snapshot's
    ``pg_snapshot_xmax`` (64-bit), ``watermark`` a 64-bit xid as decimal text (None: every row).

    ``run_xmax`` is the xmax of the run's first chunk (``SourceSnapshot.xmax``): whether the source
    went back is decided once per run, against it, so no later chunk (whose xmax may have passed
    the watermark meanwhile) reads less than the first one did.

    The watermark is the *snapshot xmin* of the last merged run, not its xmax: transactions in
    progress at that snapshot have ids at or past its xmin, and so have their subtransactions
    (PostgreSQL assigns a parent its xid before any child's, so a subxid is always larger). Their
    rows are therefore re-read without any lookup in the snapshot's xip list
    (pg_visible_in_snapshot would be wrong here: it does not know a subxid's parent). Rows of
    transactions that committed before that snapshot but after its xmin are re-read too:
    harmless, the MERGE orders versions by snapshot.
    """
    if watermark is None:
        return XminRange(None, None)
    distance = xmax - int(watermark)
    if distance < 0 or (run_xmax is not None and run_xmax < int(watermark)):
        # The source's transaction ids went back (restored from a backup, or a new cluster under
        # the same name): the watermark says nothing about this database's rows.
        return XminRange(None, None, went_back=True)
    if distance >= XID_MODULUS:
        # Every xid a snapshot can see is less than 2^32 behind its xmax: all are past the watermark.
        return XminRange(None, None)
    return XminRange(xmax % XID_MODULUS, distance)


def xmin_predicate(window: XminRange) -> sql.Composable:
    """Rows whose version's xmin lies in ``window``, comparing the 32-bit ``xmin`` system column
    through its age relative to the snapshot's xmax (the range's ``lo``).

    A frozen tuple keeps its original xmin since PostgreSQL 9.4 (freezing sets a flag bit), so
    VACUUM FREEZE never hides a recent row. An ancient frozen tuple's 32-bit xmin may alias into
    the window (its real xid is 2^32 or more behind): it is exported again, which is harmless,
    since it is the same version the FINAL table already holds.
    """
    if window.lo is None or window.distance is None:
        return sql.SQL("TRUE")
    xid = sql.SQL("xmin::text::bigint")
    return sql.SQL("{xid} >= {first} AND (({lo} - {xid}) % {m} + {m}) % {m} <= {d}").format(
        xid=xid,
        first=sql.Literal(FIRST_NORMAL_XID),
        lo=sql.Literal(window.lo),
        m=sql.Literal(XID_MODULUS),
        d=sql.Literal(window.distance),
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


# Phases that walk the primary key alone: NULL-cursor rows, and modes xmin and full.
KEY_PHASES = frozenset({"null_cursor", "key"})


def _keyset_columns(plan: ExportPlan, phase: str) -> list[SourceColumn]:
    return plan.primary_key if phase in KEY_PHASES else [plan.cursor_column, *plan.primary_key]


def phase_predicate(plan: ExportPlan, phase: str) -> sql.Composable:
    op = "IS NULL" if phase == "null_cursor" else "IS NOT NULL"
    return sql.SQL("{} " + op).format(sql.Identifier(plan.cursor_column.name))


def first_phase(mode: SyncMode, window: ExportWindow, lane: KeyRange | None = None) -> str:
    """Where an export starts: modes xmin and full walk the primary key; a full export in mode
    cursor walks the NULL-cursor rows first (no window can select them), then the cursor.

    A lane of a full export walks its key range by primary key, NULL cursors included: walking
    (cursor, key) would read every lane's entries of the cursor index to find its own, so each of
    n lanes would read the whole index. A row updated behind the walk is read by the next run, as
    a row updated behind a cursor walk's position is (the window starts at the first snapshot)."""
    if mode != "cursor" or (lane is not None and window.watermark is None):
        return "key"
    return "null_cursor" if window.watermark is None else "cursor"


def position_values(position: ChunkPosition) -> list[str] | None:
    if position.phase in KEY_PHASES:
        return position.key or None
    if position.cursor is None:
        return None
    return [position.cursor, *position.key]


def lane_predicate(plan: ExportPlan, lane: KeyRange | None) -> sql.Composable | None:
    """The rows of one lane: primary key row value in [lower, upper); None for an unsplit table.

    Every row falls in exactly one lane of a split, whatever the bounds. With NOT NULL key
    columns this is a plain row comparison (the primary key index answers it). A key column that
    may be NULL (a unique key configured as the key) makes a row comparison NULL rather than
    false for some rows; then a row belongs to the lane of the last lower bound it is certainly
    at or past (``IS TRUE``), the first lane taking those past none: for a fixed row, the bounds
    it is certainly past form a prefix of the ascending bounds, so exactly one lane claims it.
    """
    if lane is None:
        return None
    key = _row(plan.primary_key)
    nullable = null_key_predicate(plan) is not None
    parts: list[sql.Composable] = []
    if lane.lower is not None:
        at_or_past = sql.SQL("{} >= {}").format(key, _row_values(lane.lower, plan.primary_key))
        parts.append(sql.SQL("({}) IS TRUE").format(at_or_past) if nullable else at_or_past)
    if lane.upper is not None:
        upper = _row_values(lane.upper, plan.primary_key)
        if nullable:
            parts.append(sql.SQL("({} >= {}) IS NOT TRUE").format(key, upper))
        else:
            parts.append(sql.SQL("{} < {}").format(key, upper))
    return sql.SQL(" AND ").join(parts)


def chunk_predicate(
    plan: ExportPlan,
    window: ExportWindow,
    phase: str,
    after: Sequence[str] | None,
    *,
    changed: sql.Composable | None = None,
    lane: KeyRange | None = None,
) -> sql.Composable:
    """Rows of this phase inside the window (and ``lane``) that come after the previous chunk's
    last row. A lane is keyset-chunked within its range exactly as a whole table is.

    Phase "key" (modes xmin and full) selects the rows ``changed`` holds: ``xmin_predicate`` of
    the chunk's own snapshot in mode xmin (required: its literals depend on that snapshot), TRUE
    in mode full.
    """
    if phase == "key":
        if changed is None and plan.mode == "xmin":
            raise ValueError("mode xmin needs the chunk snapshot's xmin predicate")
        parts = [changed if changed is not None else sql.SQL("TRUE")]
        nulls = null_key_predicate(plan)
        if nulls is not None:
            # A row comparison with a NULL is NULL: such rows cannot be walked by keyset (see
            # ``null_key_rows``, which puts them in the first chunk).
            parts.append(sql.SQL("NOT {}").format(nulls))
    else:
        parts = [phase_predicate(plan, phase)]
    if phase == "cursor":
        parts.append(window_predicate(plan, window))
    in_lane = lane_predicate(plan, lane)
    if in_lane is not None:
        parts.append(in_lane)
    if after:
        keyset = _keyset_columns(plan, phase)
        parts.append(sql.SQL("{} > {}").format(_row(keyset), _row_values(after, keyset)))
    return sql.SQL(" AND ").join(parts)


def null_key_predicate(plan: ExportPlan) -> sql.Composable | None:
    """A configured key column is NULL (possible when the key is a unique key, not the primary
    key); None when every key column is NOT NULL."""
    checks = [
        sql.SQL("{} IS NULL").format(sql.Identifier(c.name)) for c in plan.primary_key if not c.not_null
    ]
    return sql.SQL("({})").format(sql.SQL(" OR ").join(checks)) if checks else None


def null_key_rows(
    plan: ExportPlan, changed: sql.Composable | None, lane: KeyRange | None = None
) -> sql.Composable | None:
    """Phase "key": the rows with a NULL key column that the mode selects (in ``lane``), exported
    with the first chunk (the MERGE quarantines them; the export reports them). None when none
    can exist."""
    nulls = null_key_predicate(plan)
    if nulls is None:
        return None
    parts = [changed if changed is not None else sql.SQL("TRUE"), nulls]
    in_lane = lane_predicate(plan, lane)
    if in_lane is not None:
        parts.append(in_lane)
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


def key_snapshot_select(plan: ExportPlan) -> sql.Composable:
    """The primary keys of every row the MERGE can hold, exported as the data files export them
    (the type map's expressions), so the verifier compares them with FINAL's keys as loaded.

    Only key columns and no ORDER BY, so PostgreSQL can answer from an index-only scan of the
    primary key. Rows whose key cannot be merged (``quarantine_predicate``) are left out: FINAL
    never holds them, and a NULL key would never match anyway.
    """
    keys = sql.SQL(", ").join(map_column(c.name, c.pg_type).export for c in plan.primary_key)
    bad = quarantine_predicate(plan)
    if bad is None:
        return sql.SQL("SELECT {k} FROM {t}").format(k=keys, t=plan.relation)
    return sql.SQL("SELECT {k} FROM {t} WHERE NOT {bad}").format(k=keys, t=plan.relation, bad=bad)
