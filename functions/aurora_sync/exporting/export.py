"""One export call: a bounded chunk of a table's window, written by Aurora straight to S3.

Everything happens in one REPEATABLE READ, read-only transaction, so the catalog, the chunk
boundary and the export itself see the same snapshot: the rows counted are the rows written.
The Lambda never holds row data; it sends Aurora the query text and reads back three numbers.
A work item with a ``lane`` (``planning.lanes``) adds its primary-key range to every chunk's
predicate; the table's warnings (whole-table counts) are computed by its first lane only.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from psycopg2 import extensions, sql

from .. import export_query as q
from .. import source_snapshot as snap
from ..errors import SourceChunkTimeout, SourceObjectMissing, SourceTimeout, SyncError
from ..layout import fingerprint, layout_of, planned_prefix
from ..messages import (
    KEY_SNAPSHOT_PREFIX,
    MAX_NEW_COLUMNS,
    ChunkPosition,
    ExportResult,
    NewColumn,
    SourceSnapshot,
    WorkItem,
)
from ..source_catalog import SourceColumn, read_columns
from ..source_db import DEFAULT_LOCK_TIMEOUT_MS, source_errors
from ..typemap import map_column

# A statement timeout at least this long cannot come from one lock wait (lock_timeout ends that
# first, as a retried SourceTimeout): the statement spent its budget reading the chunk.
LOCK_WAIT_BOUND_MS = DEFAULT_LOCK_TIMEOUT_MS
# An open transaction older than the lookback (or this, without one) is reported: it holds windows back.
LONG_TRANSACTION_SECONDS = 900
EXPORT_OPTIONS = "format csv"  # no header: aws_s3 splits large results and may not repeat it


class LayoutChanged(SourceObjectMissing):
    """The source's columns changed after the run was planned: a file in the new layout would not
    match the table's pipe, so none is written. The next run adapts Snowflake first."""


@dataclass(frozen=True)
class ExportTarget:
    """Where Aurora writes: the data lake bucket, its region and the optional customer KMS key."""

    bucket: str
    region: str
    kms_key: str | None = None


def time_ordered_uuid(now: datetime) -> uuid.UUID:
    """A version-7 UUID (RFC 9562): 48 bits of Unix milliseconds, then randomness.

    It keeps a name unique per call; the MERGE orders versions by the snapshot order in front of
    it, not by this time (a Lambda's clock says nothing about the source's snapshots).
    """
    millis = int(now.timestamp() * 1000) & ((1 << 48) - 1)
    value = millis << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)


def object_key(table: str, now: datetime, order: int) -> str:
    """``<table>/YYYY/MM/DD/HH/s<snapshot order>-<uuid>.csv``.

    The snapshot order makes the file self-describing: the verifier reads it from the name into
    the export ledger, which the MERGE orders a row's versions by. A fresh uuid per call, so a
    retried chunk never overwrites (Snowpipe would skip a re-sent name) and the verifier
    reconciles exactly the files this call reports."""
    return f"{table}/{now:%Y/%m/%d/%H}/{snap.key_name(order, str(time_ordered_uuid(now)))}"


def part_keys(key: str, files: int) -> list[str]:
    """aws_s3 names the parts of a split export ``key``, ``key_part2``, ``key_part3``, …"""
    if files == 0:
        return []
    return [key] + [f"{key}_part{n}" for n in range(2, files + 1)]


def _warnings(
    cur: Any,
    plan: q.ExportPlan,
    item: WorkItem,
    catalog: list[SourceColumn],
    snapshot: SourceSnapshot,
    *,
    drift: Sequence[NewColumn],
) -> list[str]:
    warnings = []
    nulls = 0
    if plan.cursor is not None:
        cursor = sql.Identifier(plan.cursor.name)
        cur.execute(sql.SQL("SELECT count(*) FROM {t} WHERE {c} IS NULL").format(t=plan.relation, c=cursor))
        nulls = int(cur.fetchone()[0])
    if nulls and plan.cursor is not None:
        warnings.append(
            f"{nulls} row(s) of {item.table} have a NULL {plan.cursor.name!r}: incremental runs never "
            f"select them; only a full resync copies them (rerun input "
            f'{{"tables": ["{item.table}"], "overrides": {{"{item.table}": {{"full_resync": true}}}}}})'
        )
    if snapshot.future_rows and plan.cursor is not None:
        warnings.append(
            f"{snapshot.future_rows} row(s) of {item.table} have a {plan.cursor.name!r} beyond the source "
            f"clock (max {snapshot.max_cursor}); they never advance the watermark, so they are exported "
            "again on every run until their values are corrected at the source"
        )
    held_back = datetime.fromisoformat(snapshot.source_time) - datetime.fromisoformat(snapshot.horizon)
    # Mode full has no next window to hold back: every run reads the whole table anyway.
    if item.mode != "full" and held_back.total_seconds() > (
        item.window.lookback_seconds or LONG_TRANSACTION_SECONDS
    ):
        # Not a risk to the data (the next window starts before this transaction), but a cost:
        # every run re-reads everything written since it started.
        warnings.append(
            f"a transaction in {plan.schema!r}'s database has been open since {snapshot.horizon} "
            f"({int(held_back.total_seconds())}s); rows it may still commit keep {item.table}'s next "
            "window from starting later, so each run re-reads everything written since. Find it with "
            "SELECT pid, xact_start, state, query FROM pg_stat_activity ORDER BY xact_start"
        )
    if drift:
        total = len([c for c in catalog if c.name not in {column.name for column in plan.columns}])
        more = f" (and {total - len(drift)} more)" if total > len(drift) else ""
        warnings.append(
            f"schema drift in {plan.schema}.{plan.table}: source column(s) "
            f"{', '.join(repr(c.name) for c in drift)}{more} are not in the table config's `columns`; to "
            f"sync them add them there, push the config and run `aurora-sync sql snowflake --tables "
            f"{item.table} --apply` (`aurora-sync sync` and `aurora-sync status` show its ALTER TABLE "
            "statements)"
        )
    return warnings


def new_columns(plan: q.ExportPlan, item: WorkItem, catalog: Sequence[SourceColumn]) -> list[NewColumn]:
    """Source columns the config's ``columns`` leave out (none when it lists no columns: then
    every column is exported and the planner's schema step adds new ones itself)."""
    if item.columns is None:
        return []
    exported = {column.name for column in plan.columns}
    drift = []
    for column in catalog:
        if column.name not in exported:
            mapping = map_column(column.name, column.pg_type)
            drift.append(
                NewColumn(name=column.name, staging_type=mapping.staging_type, final_type=mapping.final_type)
            )
    return drift[:MAX_NEW_COLUMNS]


def read_plan(cur: Any, item: WorkItem) -> tuple[q.ExportPlan, list[SourceColumn]]:
    """The item's export plan from the live catalog, and the catalog itself (for drift)."""
    catalog = read_columns(cur, item.source.schema_name, item.source.table)
    return q.item_plan(catalog, item), catalog


def follow_layout(plan: q.ExportPlan, item: WorkItem) -> tuple[q.ExportPlan, list[SourceColumn]]:
    """The plan restricted to the layout the planner checked against the pipe, and the source
    columns added since (left out of the file); ``LayoutChanged`` when a planned column is gone,
    renamed or retyped. A work item without a layout exports the catalog's layout as it is."""
    if item.layout is None:
        return plan, []
    current = layout_of(plan.columns, plan.mappings, table=item.table)
    if item.columns is None:
        count = planned_prefix(current, item.layout)
    else:  # an explicit list never grows with the source
        count = len(current) if fingerprint(current) == item.layout else None
    if count is None:
        described = ", ".join(f"{c.source} {c.source_type}" for c in current)
        raise LayoutChanged(
            f"table {item.table!r}: the columns of {plan.schema}.{plan.table} changed after this run was "
            f"planned (they are now: {described}); its pipe loads the planned layout, so nothing was "
            "exported rather than a file whose fields would land in the wrong columns.",
            fix="none needed: the next run applies the change to STAGING, FINAL and the pipe before it "
            f"exports; to do it now, rerun {json.dumps({'tables': [item.table]})}",
        )
    if count == len(plan.columns):
        return plan, []
    narrowed = replace(plan, columns=plan.columns[:count], mappings=plan.mappings[:count])
    return narrowed, plan.columns[count:]


def chunk_timeout(error: SourceTimeout, item: WorkItem, statement_timeout_ms: int | None) -> SyncError:
    """What a SourceTimeout of an export chunk means for the next attempt.

    The retry exports the same keyset chunk (the same position, at most ``max_rows_per_chunk``
    rows) under the same statement_timeout, which the exporter derives from a fresh Lambda's
    time. When that timeout ended the statement and was longer than a lock wait can be, the
    chunk itself is too slow to read: retrying would repeat the load on Aurora (four more times,
    about an hour) for the same outcome, so the table fails now, naming the setting that fixes
    it. A lock timeout, a cancel, or a timeout shorter than lock_timeout (a late start) stays a
    SourceTimeout, which the state machine retries.
    """
    budget = statement_timeout_ms or 0
    if budget < LOCK_WAIT_BOUND_MS or "statement timeout" not in str(error):
        return error
    rows = item.max_rows_per_chunk
    return SourceChunkTimeout(
        f"table {item.table} ({item.source.schema_name}.{item.source.table}): one export chunk of up to "
        f"{rows} rows did not finish within its statement timeout of {budget // 1000} s; a retry would "
        "read the same chunk in the same time, so it is not retried.",
        fix=f"set max_rows_per_chunk in the table config of {item.table} below {rows} (e.g. "
        f"{max(1000, rows // 4)}: `aurora-sync config pull > tables.yaml`, edit, `aurora-sync config push "
        f'tables.yaml`), then rerun the table (execution input {{"tables": ["{item.table}"]}})',
    )


def export_chunk(
    conn: Any,
    item: WorkItem,
    target: ExportTarget,
    *,
    statement_timeout_ms: int | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ExportResult:
    """Export the next chunk of ``item``'s window and say what remains.

    ``statement_timeout_ms`` is the session's statement_timeout (None: unknown), which tells a
    chunk too slow to read from a transient timeout (``chunk_timeout``)."""
    try:
        try:
            return _export_chunk(conn, item, target, now=now)
        except SourceTimeout as error:
            decided = chunk_timeout(error, item, statement_timeout_ms)
            if decided is error:
                raise
            raise decided from error
    except SyncError as error:
        if item.lane is not None:
            name_lane(error, item)
        raise


def name_lane(error: SyncError, item: WorkItem) -> None:
    """Prefix ``error``'s message with the lane that raised it (same class: the state machine's
    Retry and the verifier match the name). A lane's failure fails its whole table: the verifier
    merges nothing of it, and the rerun exports every lane again."""
    assert item.lane is not None
    error.args = (f"{item.lane.describe(item.primary_key)} of table {item.table}: {error}", *error.args[1:])


def _export_chunk(
    conn: Any,
    item: WorkItem,
    target: ExportTarget,
    *,
    now: Callable[[], datetime],
) -> ExportResult:
    position = item.position or ChunkPosition(phase=q.first_phase(item.mode, item.window, item.lane))
    context = f"table {item.table} ({item.source.schema_name}.{item.source.table})"
    first = position.snapshot is None
    # Mode full always takes a key snapshot: FINAL must become exactly this snapshot, deletions too.
    reconcile = item.reconcile or item.mode == "full"
    with (
        source_errors(context, conn=conn, relations=[(item.source.schema_name, item.source.table)]),
        conn.cursor() as cur,
    ):
        before = _before_snapshot(conn, cur, item) if first else None
        conn.set_session(isolation_level=extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
        # The first statement takes the transaction's snapshot: the catalog, the chunk boundary
        # and the export below all see it.
        taken = snap.read_snapshot(cur)
        order = taken.order
        plan, catalog = read_plan(cur, item)
        plan, late = follow_layout(plan, item)
        snapshot = position.snapshot
        warnings: list[str] = []
        drift = position.new_columns
        if before is not None:
            snapshot = _first_snapshot(cur, plan, taken, *before)
            drift = new_columns(plan, item, catalog)
            if item.lane is None or item.lane.index == 0:
                # The table's warnings (whole-table counts) once, not once per lane.
                warnings = _warnings(cur, plan, item, catalog, snapshot, drift=drift)
        changed, xmin_warnings = _xmin_filter(item, plan, taken, snapshot, first=first)
        warnings += xmin_warnings + _late_columns_warning(late, plan)
        written, quarantined, example, next_position = _export_next(
            cur, plan=plan, item=item, target=target, position=position, changed=changed, order=order, now=now
        )
        key_written: dict[str, Any] = {"files": [], "rows": 0}
        if first and reconcile:
            # In the first chunk's transaction, so the key snapshot is exactly ``snapshot``: its
            # order, in the file names, tells the verifier which FINAL rows it may judge.
            key_written = _export_keys(cur, plan=plan, item=item, target=target, at=now(), order=order)
        conn.commit()

    return chunk_result(
        item,
        position,
        written,
        key_written,
        next_position=next_position,
        snapshot=snapshot,
        quarantined=quarantined,
        example=example,
        drift=drift,
        reconcile=reconcile,
        warnings=warnings,
    )


def _xmin_filter(
    item: WorkItem,
    plan: q.ExportPlan,
    taken: snap.TakenSnapshot,
    snapshot: SourceSnapshot | None,
    *,
    first: bool,
) -> tuple[Any, list[str]]:
    """Mode xmin's row filter for this chunk (None in other modes), and the warning it may raise."""
    if item.mode != "xmin":
        return None, []
    # Built from this chunk's own snapshot: its xmax resolves the 32-bit xmin column.
    run_xmax = int(snapshot.xmax) if snapshot is not None and snapshot.xmax is not None else None
    xmin_window = q.xmin_range(item.window.watermark, taken.xmax, run_xmax=run_xmax)
    warnings = []
    if xmin_window.went_back and first:
        warnings.append(
            f"the source's transaction ids went back (watermark {item.window.watermark} is past "
            f"the snapshot's next id {taken.xmax}): {plan.schema}.{plan.table} was probably "
            f"restored from a backup or recreated, so this run exports every row of {item.table}"
        )
    return q.xmin_predicate(xmin_window), warnings


def _late_columns_warning(late: Sequence[SourceColumn], plan: q.ExportPlan) -> list[str]:
    if not late:
        return []
    return [
        f"source column(s) {', '.join(repr(c.name) for c in late)} of {plan.schema}.{plan.table} "
        "were added after this run was planned: not exported by it (the table's pipe does not "
        "load them yet); the next run adds them to STAGING and FINAL and re-exports the table"
    ]


def chunk_result(
    item: WorkItem,
    position: ChunkPosition,
    written: Mapping[str, Any],
    key_written: Mapping[str, Any],
    *,
    next_position: ChunkPosition | None,
    snapshot: SourceSnapshot | None,
    quarantined: int,
    example: Any,
    drift: Any,
    reconcile: bool,
    warnings: list[str],
) -> ExportResult:
    """The chunk's result: totals so far, this chunk's own keys, and the next item while the
    window has more rows.

    The keys of earlier chunks are not carried: each chunk that leaves the table MORE is recorded
    in a chunk file (``rounds.record_chunk``), and the round step puts the table's whole list
    back together when it settles (``rounds.settle_keys``). So neither the result nor the next
    item grows with the table's chunks, which would pass Step Functions' 256 KB at ~1,000."""
    totals = {
        "rows": position.rows + written["rows"],
        "bytes": position.bytes + written["bytes"],
        "files": position.files + written["files"],
        "snapshot": snapshot,
        "quarantined": position.quarantined + quarantined,
        "quarantine_example": position.quarantine_example or example,
        "key_files": [*position.key_files, *key_written["files"]],
        "key_rows": position.key_rows + key_written["rows"],
        "new_columns": drift,
    }
    planned = {
        "lane": item.lane,
        "target": item.target,
        "primary_key": list(item.primary_key),
        "cursor": item.cursor,
        "layout": item.layout,
        "mode": item.mode,
        "reconcile": reconcile,
    }
    chunks = position.chunk + (1 if written["keys"] else 0)
    if next_position is not None:
        more = next_position.model_copy(update={"chunk": chunks, **totals})
        return ExportResult(
            table=item.table,
            run_id=item.run_id,
            status="MORE",
            window=item.window,
            chunks=chunks,
            keys=written["keys"],
            next=item.model_copy(update={"position": more}),
            warnings=warnings,
            **totals,
            **planned,
        )
    return ExportResult(
        table=item.table,
        run_id=item.run_id,
        status="EXPORTED" if totals["files"] else "EMPTY",
        window=item.window,
        chunks=chunks,
        keys=written["keys"],
        warnings=warnings,
        **totals,
        **planned,
    )


def _export_next(
    cur: Any,
    *,
    plan: q.ExportPlan,
    item: WorkItem,
    target: ExportTarget,
    position: ChunkPosition,
    changed: sql.Composable | None,
    order: int,
    now: Callable[[], datetime],
) -> tuple[dict[str, Any], int, str | None, ChunkPosition | None]:
    """Export the chunk after ``position`` (at most ``max_rows_per_chunk`` rows, in keyset order):
    what was written, the rows quarantined (and one of them), and where the next chunk starts."""
    written: dict[str, Any] = {"rows": 0, "bytes": 0, "files": 0, "keys": []}
    quarantined, example = 0, None
    phase = position.phase
    after = q.position_values(position)
    next_position: ChunkPosition | None = None
    # Rows with a NULL key column cannot be walked by keyset: phase "key" exports them with its
    # first chunk (cursor mode walks NULL-cursor rows, never NULL keys, as before).
    nulls = q.null_key_rows(plan, changed, item.lane) if phase == "key" and after is None else None
    if nulls is not None:
        cur.execute(q.exists_query(plan, nulls))
        nulls = nulls if cur.fetchone()[0] else None
    while True:
        predicate = q.chunk_predicate(plan, item.window, phase, after, changed=changed, lane=item.lane)
        cur.execute(q.exists_query(plan, predicate))
        walk = bool(cur.fetchone()[0])
        if walk or nulls is not None:
            boundary = None
            # Mode full ignores max_rows_per_chunk: the whole table is one chunk, so one
            # snapshot, the same as the key snapshot's, and FINAL can equal exactly it. Several
            # chunks (snapshots) would mix versions of different moments, and a row inserted
            # after the key snapshot into an unread range would be deleted again.
            if walk and item.mode != "full":
                cur.execute(q.boundary_query(plan, phase, predicate, item.max_rows_per_chunk))
                boundary = cur.fetchone()
            if boundary is not None:
                # A full chunk: export up to its last row; whatever follows is the next call's.
                predicate = sql.SQL("{} AND {}").format(predicate, q.upto_predicate(plan, phase, boundary))
                next_position = ChunkPosition(
                    phase=phase,
                    cursor=boundary[0] if phase == "cursor" else None,
                    key=list(boundary[1:] if phase == "cursor" else boundary),
                )
            elif phase == "null_cursor":
                # NULL-cursor rows are done; the window itself is the next call's chunk.
                next_position = ChunkPosition(phase="cursor")
            if nulls is not None:
                predicate = sql.SQL("(({}) OR ({}))").format(predicate if walk else sql.SQL("FALSE"), nulls)
            quarantined, example = _quarantined(cur, plan, predicate)
            written = _export(
                cur, plan=plan, predicate=predicate, item=item, target=target, at=now(), order=order
            )
            break
        if phase == "null_cursor":
            phase, after = "cursor", None  # NULL-cursor rows done (or none): walk the window
            continue
        break
    return written, quarantined, example, next_position


Sample = tuple[datetime, str | None]  # (source clock, MAX(cursor) as text)


def _before_snapshot(conn: Any, cur: Any, item: WorkItem) -> tuple[datetime, Sample | None]:
    """The horizon and, for a full export of an integer cursor, an earlier sample: each in its
    own transaction *before* the export's snapshot, because what a later run must re-read is
    decided by the transactions open before the snapshot was taken."""
    conn.set_session(isolation_level=extensions.ISOLATION_LEVEL_READ_COMMITTED, readonly=True)
    sample = None
    if item.mode == "cursor" and item.window.watermark is None:
        plan, _ = read_plan(cur, item)
        if plan.cursor is not None and not plan.cursor_is_temporal:
            pause = snap.HORIZON_MARGIN.total_seconds() + 0.1
            sample = snap.sample_before(cur, plan.relation, plan.cursor.name, pause_s=pause)
            conn.commit()
    horizon = snap.read_horizon(cur)
    conn.commit()
    return horizon, sample


# SourceSnapshot.cursor_type of the modes without a cursor column: mode xmin's watermark is a
# 64-bit transaction id (xid8); mode full has none.
MODE_CURSOR_TYPES = {"xmin": "xid8", "full": "none"}


def _first_snapshot(
    cur: Any, plan: q.ExportPlan, taken: snap.TakenSnapshot, horizon: datetime, sample: Sample | None
) -> SourceSnapshot:
    snapshot = SourceSnapshot(
        order=str(taken.order),
        source_time=taken.source_time.isoformat(timespec="microseconds"),
        horizon=horizon.isoformat(timespec="microseconds"),
        cursor_type=MODE_CURSOR_TYPES.get(plan.mode, "none"),
        xmin=str(taken.xmin),
        xmax=str(taken.xmax),
    )
    if plan.cursor is None:
        # No cursor: no MAX(cursor), sample or future rows to prove anything with.
        return snapshot
    return snapshot.model_copy(
        update={
            "cursor_type": plan.cursor.pg_type.name,
            "max_cursor": snap.max_cursor(cur, plan.relation, plan.cursor.name),
            "sample_time": sample[0].isoformat(timespec="microseconds") if sample else None,
            "sample_max": sample[1] if sample else None,
            "future_rows": _count(cur, plan, q.future_predicate(plan)),
        }
    )


def _count(cur: Any, plan: q.ExportPlan, predicate: sql.Composable | None) -> int:
    if predicate is None:
        return 0
    cur.execute(sql.SQL("SELECT count(*) FROM {t} WHERE {p}").format(t=plan.relation, p=predicate))
    return int(cur.fetchone()[0])


def _quarantined(cur: Any, plan: q.ExportPlan, predicate: sql.Composable) -> tuple[int, str | None]:
    """Rows of this chunk the MERGE will leave out (``export_query.quarantine_predicate``), and
    one of them described by its key and cursor as PostgreSQL prints them."""
    bad = q.quarantine_predicate(plan)
    if bad is None:
        return 0, None
    columns = [*plan.primary_key, *([plan.cursor] if plan.cursor is not None else [])]
    cur.execute(
        sql.SQL("SELECT count(*) OVER (), {cols} FROM {t} WHERE {p} AND {bad} LIMIT 1").format(
            cols=sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c.name)) for c in columns),
            t=plan.relation,
            p=predicate,
            bad=bad,
        )
    )
    row = cur.fetchone()
    if row is None:
        return 0, None
    described = ", ".join(
        f"{c.name}={'NULL' if v is None else repr(v)}" for c, v in zip(columns, row[1:], strict=True)
    )
    return int(row[0]), described


def _export(
    cur: Any,
    *,
    plan: q.ExportPlan,
    predicate: sql.Composable,
    item: WorkItem,
    target: ExportTarget,
    at: datetime,
    order: int,
) -> dict[str, Any]:
    key = object_key(item.table, at, order)
    query_text = q.export_select(plan, predicate).as_string(cur)
    # The query text is a bound parameter: Aurora parses it, we never splice it into SQL.
    cur.execute(
        "SELECT rows_uploaded, files_uploaded, bytes_uploaded FROM aws_s3.query_export_to_s3("
        "%s, aws_commons.create_s3_uri(%s, %s, %s), %s, %s)",
        (query_text, target.bucket, key, target.region, EXPORT_OPTIONS, target.kms_key),
    )
    rows, files, size = cur.fetchone()
    return {"rows": int(rows), "bytes": int(size), "files": int(files), "keys": part_keys(key, int(files))}


def key_snapshot_key(table: str, now: datetime, order: int) -> str:
    """``_aurora_sync_keys/<table>/YYYY/MM/DD/HH/s<snapshot order>-<uuid>.csv``: a data file's
    name under the key snapshots' prefix, which no pipe loads; the order names the snapshot."""
    return f"{KEY_SNAPSHOT_PREFIX}/{object_key(table, now, order)}"


def _export_keys(
    cur: Any, *, plan: q.ExportPlan, item: WorkItem, target: ExportTarget, at: datetime, order: int
) -> dict[str, Any]:
    """The key snapshot: every mergeable primary key of the table, in the current transaction."""
    key = key_snapshot_key(item.table, at, order)
    query_text = q.key_snapshot_select(plan).as_string(cur)
    cur.execute(
        "SELECT rows_uploaded, files_uploaded FROM aws_s3.query_export_to_s3("
        "%s, aws_commons.create_s3_uri(%s, %s, %s), %s, %s)",
        (query_text, target.bucket, key, target.region, EXPORT_OPTIONS, target.kms_key),
    )
    rows, files = cur.fetchone()
    return {"rows": int(rows), "files": part_keys(key, int(files))}
