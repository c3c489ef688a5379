"""The export ledger in Snowflake: which files a run accounted for, and which runs reached FINAL.

Two tables in the STAGING schema, created by the setup (``sql/snowflake/05_export_ledger.sql``):

``_AURORA_SYNC_FILES``, one row per exported file the verifier reconciled with COPY_HISTORY: its
name (the S3 key, which is what Snowpipe records as the row's file) and the snapshot order it was
read in. The MERGE task joins the stream to this table: rows from a file that no run accounted
for (a stray object under the table's prefix, a copy of an old export) are never merged, and the
versions of a row are ordered by snapshot, never by cursor. ``MERGED_AT`` is set once a MERGE
consumed the file's rows, so a file name that reappears later cannot bring old versions back.

``_AURORA_SYNC_RUNS``, one row per table and run: the first chunk's snapshot (source clock,
horizon, MAX(cursor) samples), the window the run read, and the primary key it was merged with.
``MERGED_AT`` is set only when the run's rows reached FINAL and nothing was quarantined. The
planner derives the next window from these rows (``planning.watermarks.next_watermark``), so a run that
failed half-way never moves it. ``LAYOUT`` is the fingerprint of the file layout the run was
exported with (``layout``). ``MODE`` is the table's sync mode (NULL on older rows: cursor),
``SNAPSHOT_XMIN``/``SNAPSHOT_XMAX`` the snapshot's 64-bit xids (an xmin-mode window starts at the
newest merged run's xmin); a reconciling run records its key snapshot's ``KEY_ROWS``, and once its
FINAL rows without a source key were removed, ``ROWS_DELETED`` and ``RECONCILED_AT``.

``_AURORA_SYNC_LAYOUTS``, one row per table and layout: the columns behind a fingerprint,
written by the planner when a table's layout changes. With the newest merged run's layout the
planner finds the columns whose values FINAL does not hold for every row (``layout``).

Values are bound (qmark); names are the quoted names of ``SnowflakeObjects``. Statements cover
every table of a call at once, so their number does not grow with the table count, and neither
does their text: a list of tables is one bound JSON array (``warehouse_db.IN_BOUND_LIST``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .messages import SourceSnapshot
from .naming import quote
from .warehouse_db import BOUND_ROWS, IN_BOUND_LIST, bound_list, warehouse_errors

FILES_TABLE = "_AURORA_SYNC_FILES"
RUNS_TABLE = "_AURORA_SYNC_RUNS"
LAYOUTS_TABLE = "_AURORA_SYNC_LAYOUTS"
# Merged runs the planner reads per table: the newest one, and enough older ones that an integer
# cursor finds a MAX(cursor) sample taken before the newest run's horizon.
HISTORY_RUNS = 20
FILES_KEPT_DAYS = 2
RUNS_KEPT_DAYS = 14


@dataclass(frozen=True)
class Ledger:
    database: str
    staging_schema: str

    def _name(self, table: str) -> str:
        return f"{quote(self.database)}.{quote(self.staging_schema)}.{quote(table)}"

    @property
    def files(self) -> str:
        return self._name(FILES_TABLE)

    @property
    def runs(self) -> str:
        return self._name(RUNS_TABLE)

    @property
    def layouts(self) -> str:
        return self._name(LAYOUTS_TABLE)


@dataclass(frozen=True)
class AccountedFile:
    name: str
    order: int
    rows: int


@dataclass(frozen=True)
class RunRecord:
    """One table's run as the ledger keeps it, under its Snowflake target name (unique per FINAL
    table, where config names may repeat across deployments sharing a database)."""

    target: str
    run_id: str
    snapshot: SourceSnapshot
    window_start: str | None  # only a window the planner derived (not an operator's `since`)
    primary_key: tuple[str, ...]
    cursor_column: str
    files: int = 0
    rows: int = 0
    merged: bool = False
    layout: str | None = None  # fingerprint of the file layout the run exported with
    mode: str = "cursor"
    key_rows: int | None = None  # reconciling runs: the key snapshot's rows


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def record_runs(
    conn: Any, ledger: Ledger, runs: Sequence[RunRecord], files: Mapping[str, Sequence[AccountedFile]]
) -> None:
    """Account for ``runs`` and their files (replacing what a retried call already wrote).

    Runs with ``merged`` set (nothing to merge: an empty window) are recorded as merged at once.
    """
    if not runs:
        return
    run_id = runs[0].run_id
    names = bound_list(r.target for r in runs)
    cur = conn.cursor()
    try:
        with warehouse_errors(f"recording {len(runs)} export(s) in the ledger {ledger.runs}"):
            for table in (ledger.files, ledger.runs):
                cur.execute(
                    f"DELETE FROM {table} WHERE RUN_ID = ? AND TARGET {IN_BOUND_LIST}", [run_id, names]
                )
            rows = [
                (run.target, run.run_id, f.name, str(f.order), f.rows)
                for run in runs
                for f in files.get(run.target, [])
            ]
            if rows:
                # ACCOUNTED_AT on Snowflake's clock: compared with the MERGE task's start time.
                cur.executemany(
                    f"INSERT INTO {ledger.files} (TARGET, RUN_ID, FILE_NAME, SNAPSHOT_ORDER, "
                    "ROWS_LOADED, ACCOUNTED_AT) "
                    "VALUES (?, ?, ?, CAST(? AS NUMBER(38,0)), ?, CURRENT_TIMESTAMP())",
                    rows,
                )
            cur.executemany(
                f"INSERT INTO {ledger.runs} (TARGET, RUN_ID, SNAPSHOT_ORDER, SOURCE_TIME, HORIZON, "
                "CURSOR_TYPE, CURSOR_COLUMN, MAX_CURSOR, SAMPLE_TIME, SAMPLE_MAX, WINDOW_START, PRIMARY_KEY, "
                "FILE_COUNT, ROWS_LOADED, ACCOUNTED_AT, MERGED_AT, LAYOUT, MODE, SNAPSHOT_XMIN, "
                "SNAPSHOT_XMAX, KEY_ROWS) "
                "VALUES (?, ?, CAST(? AS NUMBER(38,0)), CAST(? AS TIMESTAMP_TZ), CAST(? AS TIMESTAMP_TZ), "
                "?, ?, ?, CAST(? AS TIMESTAMP_TZ), ?, ?, ?, ?, ?, CURRENT_TIMESTAMP(), "
                "CASE WHEN ? THEN CURRENT_TIMESTAMP() END, ?, ?, ?, ?, ?)",
                [
                    (
                        run.target,
                        run.run_id,
                        run.snapshot.order,
                        run.snapshot.source_time,
                        run.snapshot.horizon,
                        run.snapshot.cursor_type,
                        run.cursor_column,
                        run.snapshot.max_cursor,
                        run.snapshot.sample_time,
                        run.snapshot.sample_max,
                        run.window_start,
                        json.dumps(list(run.primary_key)),
                        run.files,
                        run.rows,
                        run.merged,
                        run.layout,
                        run.mode,
                        run.snapshot.xmin,
                        run.snapshot.xmax,
                        run.key_rows,
                    )
                    for run in runs
                ],
            )
    finally:
        cur.close()


def mark_merged(conn: Any, ledger: Ledger, run_id: str, merged: Sequence[tuple[str, datetime, bool]]) -> None:
    """After a MERGE task run succeeded: ``(target, the task run's start, the run reached FINAL)``.

    Every file of the table accounted for before that MERGE started was in its stream, so it is
    consumed whichever run accounted for it. The run itself counts as merged only when none of
    its rows had to be left out (the table then failed, and its window must be read again).
    """
    if not merged:
        return
    # One bound JSON array of {target, started} rather than an OR of one condition per table:
    # the statement's text stays the same however many tables merged. Unqualified in the EXISTS,
    # TARGET and ACCOUNTED_AT are the updated row's (``warehouse_db.BOUND_ROWS``).
    starts = json.dumps([{"target": table, "started": _iso(started)} for table, started, _ in merged])
    tables = bound_list(table for table, _, _ in merged)
    complete = [table for table, _, whole in merged if whole]
    cur = conn.cursor()
    try:
        with warehouse_errors(f"marking {len(merged)} merge(s) in the ledger {ledger.files}"):
            cur.execute(
                f"UPDATE {ledger.files} SET MERGED_AT = CURRENT_TIMESTAMP() "
                f"WHERE MERGED_AT IS NULL AND EXISTS (SELECT 1 FROM {BOUND_ROWS} AS m "
                "WHERE m.VALUE:target::STRING = TARGET "
                "AND ACCOUNTED_AT <= CAST(m.VALUE:started::STRING AS TIMESTAMP_TZ))",
                [starts],
            )
            # A merged file's entry only guards against a replay, which Snowpipe itself refuses
            # for 14 days and which, once the entry is gone, is an unaccounted file anyway.
            cur.execute(
                f"DELETE FROM {ledger.files} WHERE MERGED_AT < DATEADD(day, -?, CURRENT_TIMESTAMP()) "
                f"AND TARGET {IN_BOUND_LIST}",
                [FILES_KEPT_DAYS, tables],
            )
            if complete:
                whole = bound_list(complete)
                cur.execute(
                    f"UPDATE {ledger.runs} SET MERGED_AT = CURRENT_TIMESTAMP() WHERE RUN_ID = ? AND "
                    f"MERGED_AT IS NULL AND TARGET {IN_BOUND_LIST}",
                    [run_id, whole],
                )
                # This run now starts the tables' next windows; older runs only serve as integer
                # samples, and a few days of them is plenty.
                cur.execute(
                    f"DELETE FROM {ledger.runs} WHERE RUN_ID <> ? AND TARGET {IN_BOUND_LIST} "
                    "AND ACCOUNTED_AT < DATEADD(day, -?, CURRENT_TIMESTAMP())",
                    [run_id, whole, RUNS_KEPT_DAYS],
                )
    finally:
        cur.close()


def mark_reconciled(conn: Any, ledger: Ledger, run_id: str, deleted: Sequence[tuple[str, int]]) -> None:
    """After the reconcile DELETE of each ``(target, rows deleted)``: the run's key snapshot was
    applied to FINAL (the planner counts reconciling runs from here)."""
    if not deleted:
        return
    cur = conn.cursor()
    try:
        with warehouse_errors(f"recording {len(deleted)} reconciliation(s) in the ledger {ledger.runs}"):
            cur.executemany(
                f"UPDATE {ledger.runs} SET ROWS_DELETED = ?, RECONCILED_AT = CURRENT_TIMESTAMP() "
                "WHERE RUN_ID = ? AND TARGET = ?",
                [(rows, run_id, target) for target, rows in deleted],
            )
    finally:
        cur.close()


@dataclass(frozen=True)
class MergedRun:
    """A run whose rows reached FINAL, as the planner needs it."""

    run_id: str
    order: int
    source_time: datetime
    horizon: datetime
    cursor_type: str
    max_cursor: str | None
    sample_time: datetime | None
    sample_max: str | None
    window_start: str | None
    primary_key: tuple[str, ...]
    cursor_column: str | None
    layout: str | None = None  # the fingerprint it was exported with (None: recorded before layouts)
    layout_columns: str | None = None  # that layout's columns as JSON (``layout.loads``), if recorded
    mode: str = "cursor"  # the sync mode it ran in (runs recorded before modes: cursor)
    snapshot_xmin: str | None = None  # the snapshot's 64-bit xmin (decimal), where an xmin window starts
    snapshot_xmax: str | None = None
    reconciled: bool = False  # its key snapshot was applied: FINAL rows without a source key removed


def _aware(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_history(conn: Any, ledger: Ledger, tables: Sequence[str]) -> dict[str, list[MergedRun]]:
    """{target: its merged runs, newest snapshot first (at most ``HISTORY_RUNS``)}, in one statement,
    each with the columns of the layout it was exported with (when the planner recorded them)."""
    if not tables:
        return {}
    listed = bound_list(tables)
    cur = conn.cursor()
    try:
        with warehouse_errors(f"reading the export ledger {ledger.runs}"):
            cur.execute(
                "SELECT r.TARGET, r.RUN_ID, r.SNAPSHOT_ORDER::VARCHAR, r.SOURCE_TIME, r.HORIZON, "
                "r.CURSOR_TYPE, r.MAX_CURSOR, r.SAMPLE_TIME, r.SAMPLE_MAX, r.WINDOW_START, r.PRIMARY_KEY, "
                "r.CURSOR_COLUMN, r.LAYOUT, y.COLUMNS, r.MODE, r.SNAPSHOT_XMIN, r.SNAPSHOT_XMAX, "
                "r.RECONCILED_AT IS NOT NULL "
                f"FROM {ledger.runs} AS r "
                f"LEFT JOIN (SELECT TARGET, LAYOUT, MAX(COLUMNS) AS COLUMNS FROM {ledger.layouts} "
                f"WHERE TARGET {IN_BOUND_LIST} GROUP BY TARGET, LAYOUT) AS y "
                "ON y.TARGET = r.TARGET AND y.LAYOUT = r.LAYOUT "
                f"WHERE r.MERGED_AT IS NOT NULL AND r.TARGET {IN_BOUND_LIST} "
                "QUALIFY ROW_NUMBER() OVER (PARTITION BY r.TARGET ORDER BY r.SNAPSHOT_ORDER DESC) <= ?",
                [listed, listed, HISTORY_RUNS],
            )
            rows = cur.fetchall()
    finally:
        cur.close()
    history: dict[str, list[MergedRun]] = {name: [] for name in tables}
    for (
        table,
        run_id,
        order,
        source_time,
        horizon,
        cursor_type,
        max_cursor,
        s_time,
        s_max,
        start,
        key,
        column,
        layout,
        layout_columns,
        mode,
        xmin,
        xmax,
        reconciled,
    ) in rows:
        history[str(table)].append(
            MergedRun(
                run_id=str(run_id),
                order=int(str(order).split(".")[0]),
                source_time=_aware(source_time),
                horizon=_aware(horizon),
                cursor_type=str(cursor_type),
                max_cursor=None if max_cursor is None else str(max_cursor),
                sample_time=None if s_time is None else _aware(s_time),
                sample_max=None if s_max is None else str(s_max),
                window_start=None if start is None else str(start),
                primary_key=tuple(json.loads(key)) if key else (),
                # '' is how a run without a cursor (modes xmin, full) fills the NOT NULL column.
                cursor_column=str(column) if column else None,
                layout=None if layout is None else str(layout),
                layout_columns=None if layout_columns is None else str(layout_columns),
                mode="cursor" if mode is None else str(mode),
                snapshot_xmin=None if xmin is None else str(xmin),
                snapshot_xmax=None if xmax is None else str(xmax),
                reconciled=bool(reconciled),
            )
        )
    for runs in history.values():
        runs.sort(key=lambda r: r.order, reverse=True)
    return history


def last_merged_source_times(conn: Any, ledger: Ledger, targets: Sequence[str]) -> dict[str, datetime]:
    """{target: the source time of its newest snapshot that reached FINAL}, in one statement;
    targets no run ever merged are absent. ``mark_merged`` prunes only the older runs of a table
    that merged again, so a table failing run after run keeps its last merged row here."""
    if not targets:
        return {}
    cur = conn.cursor()
    try:
        with warehouse_errors(f"reading the last merged runs from the export ledger {ledger.runs}"):
            cur.execute(
                f"SELECT TARGET, MAX(SOURCE_TIME) FROM {ledger.runs} "
                f"WHERE MERGED_AT IS NOT NULL AND TARGET {IN_BOUND_LIST} GROUP BY TARGET",
                [bound_list(targets)],
            )
            rows = cur.fetchall()
    finally:
        cur.close()
    return {str(target): _aware(source_time) for target, source_time in rows if source_time is not None}


def record_layouts(conn: Any, ledger: Ledger, layouts: Sequence[tuple[str, str, str]]) -> None:
    """Remember the columns of new layouts: ``(target, fingerprint, columns JSON)``, replacing an
    entry a failed earlier run wrote for the same layout. Two statements for all tables."""
    if not layouts:
        return
    # One bound JSON array of {target, layout}, not an OR per table (a first run records every
    # table's layout): the text stays the same.
    pairs = json.dumps([{"target": target, "layout": fingerprint} for target, fingerprint, _ in layouts])
    cur = conn.cursor()
    try:
        with warehouse_errors(f"recording {len(layouts)} layout(s) in the ledger {ledger.layouts}"):
            cur.execute(
                f"DELETE FROM {ledger.layouts} WHERE EXISTS (SELECT 1 FROM {BOUND_ROWS} AS m "
                "WHERE m.VALUE:target::STRING = TARGET AND m.VALUE:layout::STRING = LAYOUT)",
                [pairs],
            )
            cur.executemany(
                f"INSERT INTO {ledger.layouts} (TARGET, LAYOUT, COLUMNS, RECORDED_AT) "
                "VALUES (?, ?, ?, CURRENT_TIMESTAMP())",
                [list(entry) for entry in layouts],
            )
    finally:
        cur.close()
