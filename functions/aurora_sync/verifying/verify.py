"""The verifier's decisions: for each table of a run, is it loaded, merged, still pending, or failed?

One call looks at every table once and never waits; the state machine calls again (Wait →
Verify → Choice) while ``done`` is false, passing the previous output back as ``previous``.

Per table, in order:
  1. Export FAILED → FAILED with the export's error; EMPTY (or nothing written) → NOTHING_TO_DO.
  2. COPY_HISTORY (one statement for every file of every table): a file ``Load failed`` /
     ``Partially loaded`` / ``Load skipped`` → FAILED with its first error and its name; the
     ``Loaded`` row counts must add up to what Aurora reported, else FAILED (both numbers).
     Files not in history yet → PENDING; once per run, ``LOAD_REFRESH_AFTER_SECONDS`` after the
     run started, ALTER PIPE ... REFRESH re-queues them (heals a lost S3 notification); after
     ``LOAD_TIMEOUT_SECONDS`` from the verifier's first check → FAILED naming the missing files.
  3. Every file loaded → the MERGE task. Whether it was already requested in this run is read
     from TASK_HISTORY (a run scheduled at/after the run's start), not from ``previous``: a
     verifier that died right after EXECUTE TASK must not merge twice when retried.
     SUCCEEDED → MERGED (changed rows counted in FINAL by their sync time: the MERGE rewrites a
     row only when a value differs, so re-read rows count as unchanged); FAILED → FAILED with the
     task's message; SCHEDULED/EXECUTING → PENDING until ``MERGE_TIMEOUT_SECONDS``; SKIPPED (the
     stream was empty) → MERGED with 0 rows, or EXECUTE TASK again if the stream still holds data
     (the run was skipped because another run of the task was executing).
  4. A run with a key snapshot (hard deletes, mode full; ``aurora_sync.verifying.reconciliation``), once its
     MERGE task run succeeded: the keys are loaded into the table's KEYS table, a one-chunk run
     must find every key in FINAL (``RowsMissing``), FINAL rows read at or before the snapshot
     whose key it lacks are deleted (``rows_deleted``), mode full checks FINAL's row count. Such
     a run goes through the MERGE task even with an empty window, so files of earlier runs are
     merged before anything is deleted. The run counts as merged only if all of this held.
  5. MERGED / NOTHING_TO_DO tables get their new watermark (MAX(cursor) of FINAL, one statement)
     and the freshness lag ``now - watermark``.

A table's final outcome is carried over from ``previous`` unchanged. Errors of one table's
statement that retrying cannot fix (a dropped pipe or task) fail that table; errors that
concern everything (Snowflake unreachable, auth) propagate as the taxonomy's classes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ..config import LoadedTable
from ..errors import TerminalError
from ..ledger import AccountedFile, Ledger, RunRecord, mark_merged, mark_reconciled, record_runs
from ..messages import (
    ExportResult,
    FailedExport,
    FailedTable,
    RunSummary,
    TableVerdict,
    VerifyOutput,
    VerifyRequest,
)
from ..naming import SnowflakeObjects, snowflake_column
from ..source_snapshot import order_of_key
from . import load_history as lh
from .reconciliation import KeySnapshot, Reconciled, reconcile

FINAL_OUTCOMES = frozenset({"MERGED", "NOTHING_TO_DO", "FAILED"})

# Error names of per-table outcomes (the "error" field). They are not raised: the Report state
# reads them from the output. The export's own error keeps the exporter's class name.
LOAD_FAILED = "LoadFailed"
LOAD_COUNT_MISMATCH = "LoadCountMismatch"
LOAD_TIMEOUT = "LoadTimeout"
MERGE_FAILED = "MergeFailed"
MERGE_TIMEOUT = "MergeTimeout"
EXPORT_INCOMPLETE = "ExportIncomplete"
ROWS_QUARANTINED = "RowsQuarantined"
UNACCOUNTED_FILE = "UnaccountedFile"

# COPY_HISTORY START_TIME reaches back this far before the run start: clocks of AWS and Snowflake
# differ a little, and files are written after the run started anyway.
HISTORY_MARGIN = timedelta(minutes=15)
MAX_MISSING = 10
MAX_REASON_CHARS = 600
_RUNNING_STATES = frozenset({"SCHEDULED", "EXECUTING"})
_FAILED_LOAD_STATES = frozenset({"Load failed", "Partially loaded", "Load skipped"})


@dataclass(frozen=True)
class Limits:
    refresh_after: timedelta
    load_timeout: timedelta
    merge_timeout: timedelta


@dataclass(frozen=True)
class Schemas:
    database: str
    staging: str
    final: str

    def objects(self, target: str) -> SnowflakeObjects:
        return SnowflakeObjects(self.database, self.staging, self.final, target)


@dataclass
class _Table:
    """Working state of one table during a call."""

    verdict: TableVerdict
    objects: SnowflakeObjects
    keys: tuple[str, ...] = ()
    export: ExportResult | None = None
    loads: dict[str, lh.FileLoad] = field(default_factory=dict)
    carried: bool = False  # final outcome taken from ``previous``: nothing to re-read
    # FINAL may lack keys of the source only through soft deletes in "delete" mode (or when the
    # config could not be read, which says nothing either way): then no missing-rows check.
    soft_deletes_remove: bool = True

    @property
    def reconciling(self) -> bool:
        export = self.export
        return export is not None and (export.reconcile or export.mode == "full")

    def loaded_until(self, default: datetime) -> datetime:
        """When the last of this table's files was loaded (by Snowflake's clock)."""
        times = [_aware(load.last_load_time) for load in self.loads.values() if load.last_load_time]
        return max(times, default=default)

    def set(self, **changes: Any) -> None:
        if "reason" in changes and changes["reason"] and len(changes["reason"]) > MAX_REASON_CHARS:
            changes["reason"] = changes["reason"][: MAX_REASON_CHARS - 1] + "…"
        self.verdict = self.verdict.model_copy(update=changes)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _lag_seconds(value: Any, now: datetime) -> float | None:
    if isinstance(value, datetime):
        return round((now - _aware(value)).total_seconds(), 3)
    if isinstance(value, date):
        return round((now - datetime(value.year, value.month, value.day, tzinfo=UTC)).total_seconds(), 3)
    return None


def verify(
    conn: Any,
    request: VerifyRequest,
    *,
    schemas: Schemas,
    limits: Limits,
    configs: Mapping[str, LoadedTable],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> VerifyOutput:
    started_at = _aware(request.started_at)
    checked_at = now()
    previous = {t.table: t for t in request.previous.tables} if request.previous else {}
    verify_started = (
        _aware(datetime.fromisoformat(request.previous.verify_started_at)) if request.previous else checked_at
    )

    tables: list[_Table] = []
    for entry in request.tables:
        before = previous.get(entry.table)
        config = configs.get(entry.table)
        target = (
            request.targets.get(entry.table)
            or (before.target if before else None)
            or (config.target if config else entry.table.upper())
        )
        objects = schemas.objects(target)
        if before is not None and before.outcome in FINAL_OUTCOMES:
            tables.append(_Table(before, objects, carried=True))
            continue
        verdict = TableVerdict(
            table=entry.table,
            target=target,
            outcome="PENDING",
            refreshed_at=before.refreshed_at if before else None,
        )
        table = _Table(verdict, objects)
        if config is not None:
            table.soft_deletes_remove = (
                config.config.soft_delete_column is not None and config.config.soft_delete_mode == "delete"
            )
        tables.append(table)
        if isinstance(entry, FailedExport):
            table.set(outcome="FAILED", error=entry.error.error, reason=entry.message)
            continue
        table.export = entry
        table.set(
            rows_exported=entry.rows,
            files=len(entry.keys),
            quarantined=entry.quarantined,
            new_columns=entry.new_columns,
        )
        if entry.status == "MORE":
            table.set(
                outcome="FAILED",
                error=EXPORT_INCOMPLETE,
                reason=f"export of {entry.table} stopped after chunk {entry.chunks} with status MORE; "
                "the state machine must call the exporter with `next` until EXPORTED or EMPTY",
            )
        elif (
            entry.snapshot is None
            or entry.primary_key is None
            or (entry.cursor is None and entry.mode == "cursor")
        ):
            # An export of an older version: without its snapshot the MERGE cannot order it.
            table.set(
                outcome="FAILED",
                error=EXPORT_INCOMPLETE,
                reason=f"export of {entry.table} carries no source snapshot (started by an older version); "
                f'nothing was merged. Rerun it: {{"tables": ["{entry.table}"]}}',
            )
        elif table.reconciling and not entry.key_files and entry.key_rows:
            table.set(
                outcome="FAILED",
                error=EXPORT_INCOMPLETE,
                reason=f"export of {entry.table} reports {entry.key_rows} key(s) but no key snapshot file; "
                f'nothing was merged or deleted. Rerun it: {{"tables": ["{entry.table}"]}}',
            )
        elif (entry.status == "EMPTY" or not entry.keys) and not table.reconciling:
            table.set(outcome="NOTHING_TO_DO")
        else:
            # A reconciling run with an empty window still runs the MERGE task (files of earlier
            # runs merge first), then applies its key snapshot.
            table.keys = tuple(entry.keys)
            if table.reconciling:
                table.set(key_rows=entry.key_rows)

    ledger = Ledger(schemas.database, schemas.staging)
    # An empty window proves the table unchanged as of its snapshot: that run reached FINAL too.
    idle = [t for t in tables if not t.carried and t.verdict.outcome == "NOTHING_TO_DO"]
    _record(conn, ledger, idle, merged=True)

    checking = [t for t in tables if t.verdict.outcome == "PENDING"]
    history = lh.read_copy_history(
        conn,
        schemas.database,
        [lh.TableFiles(t.verdict.table, t.objects, t.keys) for t in checking],
        started_at - HISTORY_MARGIN,
    )
    ready: list[_Table] = []
    for table in checking:
        table.loads = history.get(table.verdict.table, {})
        if _check_loads(
            conn, table, started_at=started_at, verify_started=verify_started, now=checked_at, limits=limits
        ):
            ready.append(table)

    if ready:
        _merge(
            conn,
            ready,
            ledger=ledger,
            run_id=request.run_id,
            started_at=started_at,
            now=checked_at,
            limits=limits,
        )

    _freshness([t for t in tables if not t.carried], now())
    verdicts = [t.verdict for t in tables]
    pending = sum(1 for v in verdicts if v.outcome == "PENDING")
    return VerifyOutput(
        run_id=request.run_id,
        done=pending == 0,
        verify_started_at=verify_started.isoformat(timespec="milliseconds"),
        tables=verdicts,
        pending=pending,
        failed=sum(1 for v in verdicts if v.outcome == "FAILED"),
        summary=summarize(verdicts, request.plan_failed) if pending == 0 else None,
        database=schemas.database,
        staging_schema=schemas.staging,
        final_schema=schemas.final,
    )


def summarize(verdicts: list[TableVerdict], plan_failed: list[FailedTable]) -> RunSummary:
    """The Report state's cause: each failed table with its error, and the rerun input.

    Reasons are shortened so the cause stays far below Step Functions' 32,768-character limit
    whatever the number of failed tables (the full reasons stay in the output and the logs).
    """
    failed = list(plan_failed)
    failed += [
        FailedTable(table=v.table, error=v.error or "Failed", cause=v.reason or "")
        for v in verdicts
        if v.outcome == "FAILED"
    ]
    rerun: dict[str, Any] = {"tables": sorted({f.table for f in failed})}
    # A table missing rows that its window can never reach again is healed only by reading it
    # in full: the rerun input says so, so a console rerun does not fail the same way.
    whole = sorted({f.table for f in failed if f.error == "RowsMissing"})
    if whole:
        rerun["overrides"] = {name: {"full_resync": True} for name in whole}
    budget = max(80, 24_000 // max(1, len(failed)))
    parts = [f"{f.table} ({f.error}: {_shorten(f.cause, budget)})" for f in failed]
    cause = (
        f"{len(failed)} table(s) failed: " + "; ".join(parts) + ". After fixing, rerun only them with the "
        f"execution input {json.dumps(rerun)} (or `aurora-sync rerun <this execution's ARN>`)."
        if failed
        else ""
    )
    return RunSummary(failed_count=len(failed), failed=failed, rerun_input=rerun, cause=cause)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_loads(
    conn: Any, table: _Table, *, started_at: datetime, verify_started: datetime, now: datetime, limits: Limits
) -> bool:
    """Decide from the load history; True when every file is loaded and the counts reconcile."""
    loads = table.loads
    loaded = [loads[k] for k in table.keys if k in loads and loads[k].status == lh.LOADED]
    rows_loaded = sum(load.row_count for load in loaded)
    table.set(rows_loaded=rows_loaded, files_loaded=len(loaded))
    broken = [loads[k] for k in table.keys if k in loads and loads[k].status in _FAILED_LOAD_STATES]
    if broken:
        first = broken[0]
        table.set(
            outcome="FAILED",
            error=LOAD_FAILED,
            reason=f"{len(broken)} file(s) did not load; {first.file_name}: {first.status}: "
            f"{first.first_error or 'no error message'} ({first.error_count} error(s))",
            missing=[b.file_name for b in broken[:MAX_MISSING]],
        )
        return False
    waiting = [k for k in table.keys if k not in loads or loads[k].status != lh.LOADED]
    if not waiting:
        exported = table.verdict.rows_exported
        if rows_loaded != exported:
            table.set(
                outcome="FAILED",
                error=LOAD_COUNT_MISMATCH,
                reason=f"Aurora exported {exported} row(s) in {len(table.keys)} file(s) but Snowpipe loaded "
                f"{rows_loaded}; nothing was merged. Check the files under {table.verdict.table}/ and the "
                "pipe's file format",
                missing=[],
            )
            return False
        table.set(missing=[])
        return True

    unknown = [k for k in waiting if k not in loads]
    table.set(missing=waiting[:MAX_MISSING])
    if now - verify_started >= limits.load_timeout:
        refreshed = f", refreshed at {table.verdict.refreshed_at}" if table.verdict.refreshed_at else ""
        table.set(
            outcome="FAILED",
            error=LOAD_TIMEOUT,
            reason=f"{len(waiting)} of {len(table.keys)} file(s) not loaded "
            f"{int(limits.load_timeout.total_seconds())}s after the verifier started checking "
            f"({len(unknown)} never seen by the pipe{refreshed}); first: {', '.join(waiting[:3])}. "
            f"Check SYSTEM$PIPE_STATUS of {table.objects.pipe} and the "
            "bucket's event notification",
        )
        return False
    if unknown and table.verdict.refreshed_at is None and now - started_at >= limits.refresh_after:
        try:
            lh.refresh_pipe(
                conn,
                table.objects,
                prefix=lh.refresh_prefix(table.verdict.table, unknown),
                modified_after=started_at - HISTORY_MARGIN,
            )
        except TerminalError as exc:
            table.set(outcome="FAILED", error=type(exc).__name__, reason=str(exc))
            return False
        table.set(refreshed_at=now.isoformat(timespec="milliseconds"))
    table.set(
        reason=f"{len(waiting)} of {len(table.keys)} file(s) not loaded yet "
        f"({len(unknown)} not seen by the pipe)"
    )
    return False


def _run_record(table: _Table, *, merged: bool) -> RunRecord:
    export = table.export
    assert export is not None and export.snapshot is not None
    return RunRecord(
        target=table.verdict.target,
        run_id=export.run_id,
        snapshot=export.snapshot,
        # Only a window the planner derived is safe to start from again; an operator's `since`
        # or a full resync says nothing about where later commits can land.
        window_start=export.window.watermark if export.window.source == "final" else None,
        primary_key=tuple(export.primary_key or ()),
        cursor_column=export.cursor or "",
        files=len(table.keys),
        rows=table.verdict.rows_loaded,
        merged=merged,
        layout=export.layout,
        mode=export.mode,
        key_rows=export.key_rows if table.reconciling else None,
    )


def _record(conn: Any, ledger: Ledger, tables: Sequence[_Table], *, merged: bool) -> bool:
    """Account for the tables' files and runs in the ledger; on a terminal error (the ledger
    missing or not writable) fail them, naming the fix, and return False."""
    if not tables:
        return True
    files: dict[str, list[AccountedFile]] = {}
    for table in tables:
        accounted = []
        for key in table.keys:
            order = order_of_key(key)
            if order is None:
                table.set(
                    outcome="FAILED",
                    error=UNACCOUNTED_FILE,
                    reason=f"exported file {key} has no snapshot order in its name; nothing was merged",
                )
                break
            accounted.append(
                AccountedFile(key, order, table.loads[key].row_count if key in table.loads else 0)
            )
        files[table.verdict.target] = accounted
    usable = [t for t in tables if t.verdict.outcome != "FAILED"]
    try:
        record_runs(conn, ledger, [_run_record(t, merged=merged) for t in usable], files)
    except TerminalError as exc:
        for table in usable:
            table.set(
                outcome="FAILED",
                error=type(exc).__name__,
                reason=f"{exc} (the export ledger {ledger.runs} is created by "
                "`aurora-sync sql snowflake --setup --apply`)",
            )
        return False
    return True


def _merge(
    conn: Any,
    ready: Sequence[_Table],
    *,
    ledger: Ledger,
    run_id: str,
    started_at: datetime,
    now: datetime,
    limits: Limits,
) -> None:
    # Only a run scheduled after this run's files were all loaded can have merged them, and it
    # is requested only then; comparing with the load time (Snowflake's clock on both sides)
    # rather than the run start alone keeps a previous run's merge from counting.
    runs = lh.read_task_runs(
        conn,
        ledger.database,
        [(t.verdict.table, t.objects, max(started_at, t.loaded_until(started_at))) for t in ready],
    )
    # First requests: the files go into the ledger before the task runs, or it would skip them.
    first = [t for t in ready if not runs.get(t.verdict.table)]
    if _record(conn, ledger, first, merged=False):
        for table in first:
            try:
                lh.execute_task(conn, table.objects)
                table.set(reason="every file loaded and accounted for; merge task requested")
            except TerminalError as exc:
                table.set(outcome="FAILED", error=type(exc).__name__, reason=str(exc))
    succeeded: list[tuple[_Table, datetime]] = []
    skipped: set[str] = set()  # merged nothing: the stream was empty when the task ran
    for table in ready:
        table_runs = runs.get(table.verdict.table, [])
        if not table_runs:
            continue
        try:
            latest, first_run = table_runs[0], table_runs[-1]
            table.set(merge_query_id=latest.query_id)
            if latest.state in _RUNNING_STATES:
                since = _aware(first_run.scheduled_time) if first_run.scheduled_time else now
                if now - since >= limits.merge_timeout:
                    table.set(
                        outcome="FAILED",
                        error=MERGE_TIMEOUT,
                        reason=f"merge task {table.objects.merge_task} still {latest.state} "
                        f"{int((now - since).total_seconds())}s after it was first requested in this run "
                        f"(query id {latest.query_id})",
                    )
                else:
                    table.set(reason=f"merge task {latest.state}")
            elif latest.state == "SUCCEEDED":
                started = latest.query_start_time or latest.scheduled_time
                succeeded.append((table, _aware(started) if started else now))
            elif latest.state == "SKIPPED":
                if lh.stream_has_data(conn, table.objects):
                    # Skipped while another run of the task was executing: our rows are still in
                    # the stream, so ask again (bounded by the merge timeout).
                    lh.execute_task(conn, table.objects)
                    table.set(reason="merge task run was skipped with data in the stream; requested again")
                else:
                    skipped.add(table.verdict.table)
                    started = latest.scheduled_time
                    succeeded.append((table, _aware(started) if started else now))
            else:
                table.set(
                    outcome="FAILED",
                    error=MERGE_FAILED,
                    reason=f"merge task {table.objects.merge_task} {latest.state} "
                    f"(query id {latest.query_id}): {latest.error_message or 'no error message'}",
                )
        except TerminalError as exc:
            table.set(outcome="FAILED", error=type(exc).__name__, reason=str(exc))
    _settle(conn, ledger, run_id, succeeded, skipped)


def _key_snapshot(table: _Table) -> KeySnapshot:
    export = table.export
    assert export is not None and export.snapshot is not None and export.primary_key
    return KeySnapshot(
        table=table.verdict.table,
        objects=table.objects,
        primary_key=tuple(snowflake_column(c) for c in export.primary_key),
        order=int(export.snapshot.order),
        files=tuple(export.key_files),
        rows=export.key_rows,
        # One chunk: the data and the keys were read in one snapshot, so FINAL holds every key.
        check_missing=export.chunks <= 1 and not table.soft_deletes_remove,
        check_count=export.mode == "full" and not table.soft_deletes_remove,
    )


def _settle(
    conn: Any, ledger: Ledger, run_id: str, succeeded: list[tuple[_Table, datetime]], skipped: set[str]
) -> None:
    """Tables whose MERGE task run succeeded: rows merged, key snapshots applied, the ledger
    marked, the outcome."""
    if not succeeded:
        return
    counted = [(t.verdict.table, t.objects, at) for t, at in succeeded if t.verdict.table not in skipped]
    merged = lh.count_merged_rows(conn, counted)
    # After the MERGE (it applied every older file) and before the run counts as merged: a run
    # whose key snapshot failed must be read again.
    reconciled: dict[str, Reconciled] = reconcile(
        conn,
        database=ledger.database,
        staging_schema=ledger.staging_schema,
        final_schema=succeeded[0][0].objects.final_schema,
        snapshots=[_key_snapshot(t) for t, _ in succeeded if t.reconciling],
    )
    try:
        marks = [
            (
                t.verdict.target,
                at,
                t.verdict.quarantined == 0 and reconciled.get(t.verdict.table, Reconciled()).error is None,
            )
            for t, at in succeeded
        ]
        mark_merged(conn, ledger, run_id, marks)
        mark_reconciled(
            conn,
            ledger,
            run_id,
            [
                (t.verdict.target, done.rows_deleted)
                for t, _ in succeeded
                if (done := reconciled.get(t.verdict.table)) and done.rows_deleted is not None
            ],
        )
    except TerminalError as exc:
        for table, _ in succeeded:
            table.set(outcome="FAILED", error=type(exc).__name__, reason=str(exc))
        return
    for table, _ in succeeded:
        rows = merged.get(table.verdict.table, 0)
        table.set(rows_unchanged=max(0, table.verdict.rows_loaded - rows))
        done = reconciled.get(table.verdict.table)
        if done is not None:
            table.set(rows_deleted=done.rows_deleted)
        if done is not None and done.error is not None:
            table.set(outcome="FAILED", error=done.error, reason=done.reason, rows_changed=rows)
        elif table.verdict.quarantined:
            export = table.export
            table.set(
                outcome="FAILED",
                error=ROWS_QUARANTINED,
                rows_changed=rows,
                reason=f"{table.verdict.quarantined} row(s) of {table.verdict.table} have a NULL primary key "
                "or a key value Snowflake cannot hold, so the MERGE left them out (the other rows were "
                f"merged); first: {export.quarantine_example if export else '?'}. Fix those rows at the "
                "source (or choose another primary_key), then rerun: the window is read again until "
                "they merge",
            )
        else:
            table.set(outcome="MERGED", error=None, reason=None, rows_changed=rows)


def _freshness(tables: Sequence[_Table], now: datetime) -> None:
    """FINAL matches the source as of the export's snapshot: the lag is the snapshot's age."""
    for table in tables:
        export = table.export
        if table.verdict.outcome not in ("MERGED", "NOTHING_TO_DO") or export is None or not export.snapshot:
            continue
        taken = _aware(datetime.fromisoformat(export.snapshot.source_time))
        table.set(
            source_time=taken.isoformat(timespec="microseconds"),
            freshness_lag_seconds=round(max(0.0, (now - taken).total_seconds()), 3),
        )
