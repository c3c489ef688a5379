"""The verifier's rules as a pure function: what Snowflake says so far → verdicts and next actions.

``decide`` reads nothing and writes nothing. It takes one call's request, what the call has
learned so far (``Facts``: the load history, the MERGE task's runs, whether a stream holds data,
what the actions already run did), the clock of the call and the limits, and returns each
table's verdict plus the ``actions`` it needs next, as plain data: read COPY_HISTORY, refresh a
pipe, read TASK_HISTORY, record runs in the ledger, execute a MERGE task, read a stream, count
merged rows, apply key snapshots, mark runs merged. ``aurora_sync.verifying.act`` runs them
against Snowflake, adds what they returned to the facts, and calls ``decide`` again until it asks
for nothing more; ``conclude`` then adds the freshness figures at the call's end.

Every call of ``decide`` recomputes everything from the request and the facts, so an action is
asked for only while its answer is not among the facts: within a call nothing is done twice, and
across calls the run's own history decides (``refreshed_at`` carried in ``previous``; whether
the MERGE task was requested is read from TASK_HISTORY, never trusted from ``previous``, so a
verifier that died right after EXECUTE TASK does not merge twice when retried).

Per table, in order:
  1. Export FAILED → FAILED with the export's error; EMPTY (or nothing written) → NOTHING_TO_DO,
     its run recorded in the ledger as merged (an empty window proves the table unchanged).
  2. COPY_HISTORY: a file ``Load failed`` / ``Partially loaded`` / ``Load skipped`` → FAILED with
     its first error and its name; the ``Loaded`` row counts must add up to what Aurora
     reported, else FAILED (both numbers). Files not in history yet → PENDING; once per run,
     ``refresh_after`` after the run started, ALTER PIPE ... REFRESH re-queues them (heals a lost
     S3 notification); after ``load_timeout`` from the verifier's first check → FAILED naming
     the missing files.
  3. Every file loaded → the MERGE task, judged by its runs scheduled after the files loaded.
     None: the files are recorded in the ledger, then the task is executed (once).
     SUCCEEDED → merged; FAILED → FAILED with the task's message; SCHEDULED/EXECUTING → PENDING
     until ``merge_timeout``; SKIPPED (the stream was empty) → merged with 0 rows, or the task
     executed again if the stream still holds data (another run of the task was executing).
  4. Merged tables: changed rows counted in FINAL by their sync time (the MERGE rewrites a row
     only when a value differs, so re-read rows count as unchanged), key snapshots applied
     (``reconciliation``), then the ledger marks the runs merged; only then is the outcome MERGED
     (or FAILED for quarantined rows or a failed key snapshot).
  5. ``conclude``: MERGED / NOTHING_TO_DO tables get the freshness lag, the age of the export's
     source snapshot.

A call's statements do not grow with the run's table count: reads and ledger writes cover every
table in one statement each, the streams of skipped task runs are read in one statement, and the
MERGE tasks of every ready table are executed in one (a CALL of the setup's procedure, which runs
EXECUTE TASK for each: it takes one task), at most ``Limits.merges_per_call`` first requests per
call. The load history itself is read for at most ``Limits.loads_per_call`` tables per call (one
table function per table, however they are combined), the ones unread longest first.
Statements on one table's objects that cannot be combined (ALTER PIPE ... REFRESH, a key
snapshot's reconciliation) are asked for at most ``Limits.table_actions`` times per call, in the
request's table order. A table beyond a limit stays PENDING, saying so, and is taken up by the
next call of the Wait/Verify loop; the verdicts are the ones a call without the limits reaches.

A table's final outcome is carried over from ``previous`` unchanged. An action that fails for one
table with a terminal error (a dropped pipe or task, a missing ledger) comes back as a ``Failure``
and fails that table; errors that concern everything propagate from the layer as the taxonomy's
classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, ClassVar

from ..config import LoadedTable
from ..ledger import AccountedFile, Ledger, RunRecord
from ..messages import ExportResult, FailedExport, FailedTable, TableVerdict, VerifyOutput, VerifyRequest
from ..naming import SnowflakeObjects, snowflake_column
from ..source_snapshot import order_of_key
from . import lanes
from .load_history import LOADED, FileLoad, TableFiles, TaskRun, execute_tasks_procedure, refresh_prefix
from .reconciliation import KeySnapshot, Reconciled
from .verify import (
    EXPORT_INCOMPLETE,
    FINAL_OUTCOMES,
    LOAD_COUNT_MISMATCH,
    LOAD_FAILED,
    LOAD_TIMEOUT,
    MERGE_FAILED,
    MERGE_TIMEOUT,
    ROWS_QUARANTINED,
    UNACCOUNTED_FILE,
    Limits,
    Schemas,
    summarize,
)

# COPY_HISTORY START_TIME reaches back this far before the run start: clocks of AWS and Snowflake
# differ a little, and files are written after the run started anyway.
HISTORY_MARGIN = timedelta(minutes=15)
MAX_MISSING = 10
MAX_REASON_CHARS = 600
RUNNING_TASK_STATES = frozenset({"SCHEDULED", "EXECUTING"})
FAILED_LOAD_STATES = frozenset({"Load failed", "Partially loaded", "Load skipped"})
MERGE_REQUESTED = "every file loaded and accounted for; merge task requested"
DEFERRED = "this call's statements on single tables are used up; the next call continues"
MERGE_DEFERRED = f"every file loaded; merge task not requested yet ({DEFERRED})"
LOADS_DEFERRED = f"load history not read in this call ({DEFERRED})"


# --- actions: what the layer is asked to do, as data --------------------------------------------
# Each has a ``key``: the facts hold its answer under that key, and an action whose key is
# answered is never asked for again in the call.


@dataclass(frozen=True)
class ReadLoads:
    """Read COPY_HISTORY for every pending table's files (one statement)."""

    database: str
    tables: tuple[TableFiles, ...]
    start_time: datetime
    key: ClassVar[str] = "read-loads"


@dataclass(frozen=True)
class _TableAction:
    """An action on one table's objects: its key names the table."""

    table: str
    objects: SnowflakeObjects
    verb: ClassVar[str]

    @property
    def key(self) -> str:
        return f"{self.verb}:{self.table}"


@dataclass(frozen=True)
class RefreshPipe(_TableAction):
    """ALTER PIPE ... REFRESH for files the pipe never saw (a lost S3 notification)."""

    prefix: str
    modified_after: datetime
    verb: ClassVar[str] = "refresh"


@dataclass(frozen=True)
class ReadTaskRuns:
    """Read TASK_HISTORY: each table's MERGE task runs scheduled at/after ``since`` (one statement)."""

    database: str
    tasks: tuple[tuple[str, SnowflakeObjects, datetime], ...]
    key: ClassVar[str] = "read-task-runs"


@dataclass(frozen=True)
class RecordRuns:
    """Account for runs and their files in the export ledger (``merged``: an empty window)."""

    ledger: Ledger
    runs: tuple[RunRecord, ...]
    files: Mapping[str, tuple[AccountedFile, ...]]
    merged: bool

    @property
    def key(self) -> str:
        return "record:merged" if self.merged else "record:loaded"


@dataclass(frozen=True)
class ExecuteTasks:
    """EXECUTE TASK for each table's MERGE task (asynchronous), in one statement; its facts hold
    each table's outcome under ``execute:<table>``."""

    database: str
    staging_schema: str
    tables: tuple[tuple[str, SnowflakeObjects], ...]
    key: ClassVar[str] = "execute-tasks"
    verb: ClassVar[str] = "execute"


@dataclass(frozen=True)
class ReadStreams:
    """SYSTEM$STREAM_HAS_DATA of the streams of tables whose MERGE task run was skipped: do they
    still hold rows? One statement; its facts hold each answer under ``stream:<table>``."""

    tables: tuple[tuple[str, SnowflakeObjects], ...]
    key: ClassVar[str] = "read-streams"
    verb: ClassVar[str] = "stream"


@dataclass(frozen=True)
class CountMergedRows:
    """FINAL rows each MERGE wrote at/after its task run's start (one statement)."""

    tables: tuple[tuple[str, SnowflakeObjects, datetime], ...]
    key: ClassVar[str] = "count-merged"


@dataclass(frozen=True)
class Reconcile:
    """Apply key snapshots to FINAL once their MERGE task run succeeded (``reconciliation``)."""

    database: str
    staging_schema: str
    final_schema: str
    snapshots: tuple[KeySnapshot, ...]
    key: ClassVar[str] = "reconcile"


@dataclass(frozen=True)
class MarkMerged:
    """Mark the merged runs in the ledger: ``(target, task run start, the run reached FINAL)``,
    and the reconciled ones with the rows their key snapshot deleted."""

    ledger: Ledger
    run_id: str
    merged: tuple[tuple[str, datetime, bool], ...]
    reconciled: tuple[tuple[str, int], ...]
    key: ClassVar[str] = "mark-merged"


Action = (
    ReadLoads
    | RefreshPipe
    | ReadTaskRuns
    | RecordRuns
    | ExecuteTasks
    | ReadStreams
    | CountMergedRows
    | Reconcile
    | MarkMerged
)


@dataclass(frozen=True)
class Failure:
    """An action that failed for its tables with a terminal error: the error's class name and text."""

    error: str
    reason: str


@dataclass(frozen=True)
class Facts:
    """What one call has learned so far: the answers to its reads and the outcomes of its actions."""

    # COPY_HISTORY's entries for each pending table's files; None: not read yet.
    loads: Mapping[str, Sequence[FileLoad]] | None = None
    task_runs: Mapping[str, Sequence[TaskRun]] | None = None  # newest first
    streams: Mapping[str, bool] = field(default_factory=dict)
    merged_rows: Mapping[str, int] | None = None
    reconciled: Mapping[str, Reconciled] | None = None
    # Every action run so far, by key: None when it worked, else its failure.
    done: Mapping[str, Failure | None] = field(default_factory=dict)
    # Statements on single tables' objects run so far (``Limits.table_actions`` bounds them).
    table_actions: int = 0

    def after(self, action: Action, answer: Any) -> Facts:
        """These facts plus what ``action`` answered (its data, or a ``Failure``)."""
        done = {**self.done, action.key: answer if isinstance(answer, Failure) else None}
        used = self.table_actions + table_actions_of(action)
        if isinstance(action, ExecuteTasks | ReadStreams):
            # One statement for many tables: each table's outcome is kept as its own.
            for name, _ in action.tables:
                outcome = answer if isinstance(answer, Failure) else (answer or {}).get(name)
                done[f"{action.verb}:{name}"] = outcome if isinstance(outcome, Failure) else None
            if isinstance(action, ReadStreams) and not isinstance(answer, Failure):
                read = {
                    name: answer[name] for name, _ in action.tables if not isinstance(answer[name], Failure)
                }
                return replace(self, streams={**self.streams, **read}, done=done, table_actions=used)
            return replace(self, done=done, table_actions=used)
        if isinstance(answer, Failure):
            return replace(self, done=done, table_actions=used)
        match action:
            case ReadLoads():
                return replace(self, loads=answer, done=done, table_actions=used)
            case ReadTaskRuns():
                return replace(self, task_runs=answer, done=done, table_actions=used)
            case CountMergedRows():
                return replace(self, merged_rows=answer, done=done, table_actions=used)
            case Reconcile():
                return replace(self, reconciled=answer, done=done, table_actions=used)
        return replace(self, done=done, table_actions=used)


def table_actions_of(action: Action) -> int:
    """How many of a call's statements on single tables ``action`` stands for."""
    if isinstance(action, _TableAction):
        return 1
    if isinstance(action, Reconcile):
        return len(action.snapshots)
    return 0


@dataclass(frozen=True)
class Decision:
    """Each table's verdict as far as the facts go, and the actions needed next (none: final)."""

    verdicts: tuple[TableVerdict, ...]
    actions: tuple[Action, ...]
    verify_started: datetime
    # Non-carried MERGED / NOTHING_TO_DO tables: when their export's source snapshot was taken.
    snapshot_taken: Mapping[str, datetime]
    # Some table waits only for a per-call cap and none for Snowpipe: the next call need not wait.
    continue_now: bool = False


@dataclass
class _Table:
    """Working state of one table within one ``decide``."""

    verdict: TableVerdict
    objects: SnowflakeObjects
    keys: tuple[str, ...] = ()
    export: ExportResult | None = None
    loads: Mapping[str, FileLoad] = field(default_factory=dict)
    carried: bool = False  # final outcome taken from ``previous``: nothing to re-read
    # FINAL may lack keys of the source only through soft deletes in "delete" mode (or when the
    # config could not be read, which says nothing either way): then no missing-rows check.
    soft_deletes_remove: bool = True

    @property
    def name(self) -> str:
        return self.verdict.table

    @property
    def failed(self) -> bool:
        return self.verdict.outcome == "FAILED"

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

    def fail(self, failure: Failure) -> None:
        self.set(outcome="FAILED", error=failure.error, reason=failure.reason)


class _Asked(Enum):
    """An action's outcome while the decision asks for it: it has not run yet in this call."""

    ASKED = "asked"
    DEFERRED = "deferred"  # this call's statements on single tables are used up


@dataclass
class _Step:
    """One ``decide``: the constants of the call, its facts, and the actions asked for so far."""

    request: VerifyRequest
    schemas: Schemas
    limits: Limits
    now: datetime
    facts: Facts
    actions: list[Action] = field(default_factory=list)

    @property
    def started_at(self) -> datetime:
        return _aware(self.request.started_at)

    @property
    def verify_started(self) -> datetime:
        """When the verifier first checked this run: the load timeout counts from here, because
        the exports of a big run can take longer than the timeout itself."""
        previous = self.request.previous
        return _aware(datetime.fromisoformat(previous.verify_started_at)) if previous else self.now

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.schemas.database, self.schemas.staging)

    def room(self) -> int:
        """Statements on single tables this call may still ask for."""
        asked = sum(table_actions_of(a) for a in self.actions)
        return max(0, self.limits.table_actions - self.facts.table_actions - asked)

    def outcome(self, action: Action) -> Failure | _Asked | None:
        """None when ``action`` ran and worked, its failure, ASKED (it joins the actions), or
        DEFERRED (an action on one table's objects beyond the call's limit: the next call)."""
        if action.key in self.facts.done:
            return self.facts.done[action.key]
        if table_actions_of(action) > self.room():
            return _Asked.DEFERRED
        self.actions.append(action)
        return _Asked.ASKED


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def decide(
    request: VerifyRequest,
    facts: Facts,
    *,
    schemas: Schemas,
    limits: Limits,
    configs: Mapping[str, LoadedTable],
    now: datetime,
) -> Decision:
    """Verdicts and next actions for one verifier call, from what it has learned so far (pure)."""
    step = _Step(request, schemas, limits, now, facts)
    tables = _admit(request, schemas, configs)

    # An empty window proves the table unchanged as of its snapshot: that run reached FINAL too.
    _account(step, [t for t in tables if not t.carried and t.verdict.outcome == "NOTHING_TO_DO"], merged=True)

    pending = [t for t in tables if t.verdict.outcome == "PENDING"]
    checking = _read_now(request, pending, limits.loads_per_call, now)
    loading = False  # some table's files are not all loaded yet
    if checking and facts.loads is None:
        step.actions.append(
            ReadLoads(
                schemas.database,
                tuple(TableFiles(t.name, t.objects, t.keys) for t in checking),
                step.started_at - HISTORY_MARGIN,
            )
        )
    elif checking:
        assert facts.loads is not None
        ready = []
        for table in checking:
            table.loads = _counted_loads(facts.loads.get(table.name, ()))
            if _check_loads(step, table):
                ready.append(table)
            else:
                loading |= table.verdict.outcome == "PENDING"
        if ready:
            _merge(step, ready)

    deferred = any(_waits_for_a_cap(t) for t in tables)
    return Decision(
        verdicts=tuple(t.verdict for t in tables),
        actions=tuple(step.actions),
        verify_started=step.verify_started,
        continue_now=deferred and not loading and facts.loads is not None,
        snapshot_taken={
            t.name: _aware(datetime.fromisoformat(t.export.snapshot.source_time))
            for t in tables
            if not t.carried
            and t.verdict.outcome in ("MERGED", "NOTHING_TO_DO")
            and t.export is not None
            and t.export.snapshot
        },
    )


def _waits_for_a_cap(table: _Table) -> bool:
    """Pending only because a per-call cap left it to the next call, which can do it at once: a
    statement on its objects, its first MERGE request, or its first load-history read. A table
    whose loads were read before and only wait their turn again does not count: while merges
    run, calls going on without the Wait would spin through VerifyMaxAttempts."""
    verdict = table.verdict
    if verdict.outcome != "PENDING" or DEFERRED not in (verdict.reason or ""):
        return False
    return verdict.reason != LOADS_DEFERRED or verdict.loads_read_at is None


def _read_now(request: VerifyRequest, pending: list[_Table], cap: int, now: datetime) -> list[_Table]:
    """The pending tables whose load history this call reads: at most ``cap``, the ones unread
    longest first (never read before all others), in the request's order among equals. The
    others stay PENDING with ``LOADS_DEFERRED`` and what their last read found."""
    before = {t.table: t for t in request.previous.tables} if request.previous else {}

    def last_read(table: _Table) -> datetime:
        verdict = before.get(table.name)
        if verdict is None or verdict.loads_read_at is None:
            return datetime.min.replace(tzinfo=UTC)
        return _aware(datetime.fromisoformat(verdict.loads_read_at))

    # sorted() is stable: among tables read at the same moment the request's order stays.
    ordered = sorted(pending, key=last_read) if len(pending) > cap else pending
    for table in ordered[cap:]:
        table.set(reason=LOADS_DEFERRED)
        if (last := before.get(table.name)) is not None:
            table.set(
                rows_loaded=last.rows_loaded,
                files_loaded=last.files_loaded,
                missing=last.missing,
                loads_read_at=last.loads_read_at,
            )
    read = ordered[:cap]
    for table in read:
        table.set(loads_read_at=now.isoformat(timespec="microseconds"))
    return read


def conclude(
    request: VerifyRequest,
    decision: Decision,
    *,
    schemas: Schemas,
    now: datetime,
    plan_failed: Sequence[FailedTable] = (),
) -> VerifyOutput:
    """The call's output once ``decision`` asks for nothing more; ``now`` is read after the
    call's statements, so the freshness lag covers them. FINAL matches the source as of the
    export's snapshot: the lag is the snapshot's age."""
    verdicts = [
        verdict.model_copy(
            update={
                "source_time": taken.isoformat(timespec="microseconds"),
                "freshness_lag_seconds": round(max(0.0, (now - taken).total_seconds()), 3),
            }
        )
        if (taken := decision.snapshot_taken.get(verdict.table)) is not None
        else verdict
        for verdict in decision.verdicts
    ]
    pending = sum(1 for v in verdicts if v.outcome == "PENDING")
    return VerifyOutput(
        run_id=request.run_id,
        done=pending == 0,
        verify_started_at=decision.verify_started.isoformat(timespec="milliseconds"),
        tables=verdicts,
        pending=pending,
        failed=sum(1 for v in verdicts if v.outcome == "FAILED"),
        summary=summarize(verdicts, list(plan_failed)) if pending == 0 else None,
        continue_now=decision.continue_now and pending > 0,
        database=schemas.database,
        staging_schema=schemas.staging,
        final_schema=schemas.final,
    )


def _admit(request: VerifyRequest, schemas: Schemas, configs: Mapping[str, LoadedTable]) -> list[_Table]:
    """Each table's starting point: carried from ``previous``, failed by its export, nothing to
    do, or pending with the files to check."""
    previous = {t.table: t for t in request.previous.tables} if request.previous else {}
    tables: list[_Table] = []
    # A table split into lanes has one result per lane: it is verified and merged as one.
    for entry in lanes.combine(request.tables):
        before = previous.get(entry.table)
        config = configs.get(entry.table)
        # The target the run was planned with, as the export carries it; never the configs
        # read now (they may have changed since the plan, or be unreadable).
        target = entry.target_name
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
        else:
            _admit_export(table, entry)
    return tables


def _admit_export(table: _Table, entry: ExportResult) -> None:
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
    elif len(entry.keys) != entry.files:
        # A table's keys travel in chunk files the round step reads back into settled.json
        # (``exporting.rounds``); a list shorter than Aurora's count must never pass as complete.
        table.set(
            outcome="FAILED",
            error=EXPORT_INCOMPLETE,
            reason=f"export of {entry.table} reports {entry.files} file(s) but carries {len(entry.keys)} "
            f'key(s); nothing was merged. Rerun it: {{"tables": ["{entry.table}"]}}',
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


def _counted_loads(history: Sequence[FileLoad]) -> dict[str, FileLoad]:
    """The entry that counts for each file: a ``Loaded`` one wins (a file loaded after a failed
    attempt is loaded; one loaded twice counts once), then the latest."""
    floor = datetime.min.replace(tzinfo=UTC)

    def rank(load: FileLoad) -> tuple[bool, datetime]:
        return load.status == LOADED, _aware(load.last_load_time or floor)

    counted: dict[str, FileLoad] = {}
    for load in history:
        current = counted.get(load.file_name)
        if current is None or rank(load) > rank(current):
            counted[load.file_name] = load
    return counted


def _check_loads(step: _Step, table: _Table) -> bool:
    """Decide from the load history; True when every file is loaded and the counts reconcile."""
    loads, now, limits = table.loads, step.now, step.limits
    loaded = [loads[k] for k in table.keys if k in loads and loads[k].status == LOADED]
    rows_loaded = sum(load.row_count for load in loaded)
    table.set(rows_loaded=rows_loaded, files_loaded=len(loaded))
    broken = [loads[k] for k in table.keys if k in loads and loads[k].status in FAILED_LOAD_STATES]
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
    waiting = [k for k in table.keys if k not in loads or loads[k].status != LOADED]
    if not waiting:
        exported = table.verdict.rows_exported
        if rows_loaded != exported:
            table.set(
                outcome="FAILED",
                error=LOAD_COUNT_MISMATCH,
                reason=f"Aurora exported {exported} row(s) in {len(table.keys)} file(s) but Snowpipe loaded "
                f"{rows_loaded}; nothing was merged. Check the files under {table.name}/ and the "
                "pipe's file format",
                missing=[],
            )
            return False
        table.set(missing=[])
        return True

    unknown = [k for k in waiting if k not in loads]
    table.set(missing=waiting[:MAX_MISSING])
    if now - step.verify_started >= limits.load_timeout:
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
    # Once per run: ``refreshed_at`` rides in ``previous`` to every later call.
    if unknown and table.verdict.refreshed_at is None and now - step.started_at >= limits.refresh_after:
        refresh = RefreshPipe(
            table.name,
            table.objects,
            prefix=refresh_prefix(table.name, unknown),
            modified_after=step.started_at - HISTORY_MARGIN,
        )
        outcome = step.outcome(refresh)
        if isinstance(outcome, Failure):
            table.fail(outcome)
            return False
        if outcome is None:
            table.set(refreshed_at=now.isoformat(timespec="milliseconds"))
        deferred = f"; pipe refresh not requested yet ({DEFERRED})" if outcome is _Asked.DEFERRED else ""
    else:
        deferred = ""
    table.set(
        reason=f"{len(waiting)} of {len(table.keys)} file(s) not loaded yet "
        f"({len(unknown)} not seen by the pipe){deferred}"
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


def _account(step: _Step, tables: Sequence[_Table], *, merged: bool) -> bool | None:
    """Account for the tables' files and runs in the ledger: True once recorded, None while the
    record is asked for, False when it failed (the ledger missing or not writable: the tables
    fail, naming the fix). A file without a snapshot order in its name fails its table at once."""
    files: dict[str, tuple[AccountedFile, ...]] = {}
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
        files[table.verdict.target] = tuple(accounted)
    usable = [t for t in tables if not t.failed]
    if not usable:
        return True
    ledger = step.ledger
    outcome = step.outcome(
        RecordRuns(ledger, tuple(_run_record(t, merged=merged) for t in usable), files, merged=merged)
    )
    if outcome is _Asked.ASKED:
        return None
    if isinstance(outcome, Failure):
        for table in usable:
            table.fail(
                Failure(
                    outcome.error,
                    f"{outcome.reason} (the export ledger {ledger.runs} is created by "
                    "`aurora-sync sql snowflake --setup --apply`)",
                )
            )
        return False
    return True


def _merge(step: _Step, ready: Sequence[_Table]) -> None:
    """Tables whose files all loaded: request their MERGE task once, follow its runs."""
    runs = step.facts.task_runs
    if runs is None:
        # Only a run scheduled after this run's files were all loaded can have merged them, and
        # it is requested only then; comparing with the load time (Snowflake's clock on both
        # sides) rather than the run start alone keeps a previous run's merge from counting.
        started_at = step.started_at
        step.actions.append(
            ReadTaskRuns(
                step.schemas.database,
                tuple((t.name, t.objects, max(started_at, t.loaded_until(started_at))) for t in ready),
            )
        )
        return
    following = [t for t in ready if runs.get(t.name)]
    skipped_runs = [t for t in following if runs[t.name][0].state == "SKIPPED"]
    streams_unread = ReadStreams.key not in step.facts.done and any(
        t.name not in step.facts.streams for t in skipped_runs
    )
    if streams_unread:
        step.actions.append(ReadStreams(tuple((t.name, t.objects) for t in skipped_runs)))
    # First requests: the files go into the ledger before the task runs, or it would skip them.
    first = _requested_now(step, [t for t in ready if not runs.get(t.name)])
    requests: list[tuple[_Table, str]] = []
    if first and _account(step, first, merged=False):
        requests += [(t, MERGE_REQUESTED) for t in first if not t.failed]
    succeeded: list[tuple[_Table, datetime]] = []
    skipped: set[str] = set()  # merged nothing: the stream was empty when the task ran
    again: list[_Table] = []  # skipped while another run executed: our rows are still in the stream
    for table in following:
        _follow(step, table, runs[table.name], succeeded=succeeded, skipped=skipped, again=again)
    cap = step.limits.merges_per_call
    for table in again[cap:]:
        table.set(
            reason=f"merge task run was skipped with data in the stream; not requested again yet ({DEFERRED})"
        )
    requests += [
        (t, "merge task run was skipped with data in the stream; requested again") for t in again[:cap]
    ]
    _execute(step, requests)
    # A skipped run whose stream proves empty merged everything too: settle only once the
    # streams are read, so every table this call finds merged is counted, reconciled and marked
    # together (the count and the key snapshots are asked once a call).
    if succeeded and not streams_unread:
        _settle(step, succeeded, skipped)


def _requested_now(step: _Step, first: Sequence[_Table]) -> list[_Table]:
    """The tables whose first MERGE request this call makes: as many as ``merges_per_call``, in
    request order; the others wait for the next call. The same tables on every ``decide`` of the
    call, so their ledger record is asked for once."""
    cap = step.limits.merges_per_call
    for table in first[cap:]:
        table.set(reason=MERGE_DEFERRED)
    return list(first[:cap])


def _execute(step: _Step, requests: Sequence[tuple[_Table, str]]) -> None:
    """Every MERGE task this call requests, in one statement once nothing else is outstanding
    (the ledger record of the first requests and the streams of skipped runs come first)."""
    done = step.facts.done
    unasked = [t for t, _ in requests if f"{ExecuteTasks.verb}:{t.name}" not in done]
    if unasked and not step.actions:
        schemas = step.schemas
        step.actions.append(
            ExecuteTasks(schemas.database, schemas.staging, tuple((t.name, t.objects) for t in unasked))
        )
    whole = done.get(ExecuteTasks.key)
    procedure = execute_tasks_procedure(step.schemas.database, step.schemas.staging)
    for table, reason in requests:
        key = f"{ExecuteTasks.verb}:{table.name}"
        if key not in done:
            continue
        outcome = done[key]
        if outcome is whole and isinstance(whole, Failure):
            # The statement itself failed: most likely the procedure of the setup is missing.
            table.fail(
                Failure(
                    whole.error,
                    f"{whole.reason} (the procedure {procedure} is created by "
                    "`aurora-sync sql snowflake --setup --apply`)",
                )
            )
        elif isinstance(outcome, Failure):
            table.fail(outcome)
        else:
            table.set(reason=reason)


def _follow(
    step: _Step,
    table: _Table,
    runs: Sequence[TaskRun],
    *,
    succeeded: list[tuple[_Table, datetime]],
    skipped: set[str],
    again: list[_Table],
) -> None:
    """One table's MERGE task runs of this run (newest first) → its state, ``succeeded``, or
    ``again`` (to be executed again)."""
    now = step.now
    latest, first_run = runs[0], runs[-1]
    table.set(merge_query_id=latest.query_id)
    if latest.state in RUNNING_TASK_STATES:
        since = _aware(first_run.scheduled_time) if first_run.scheduled_time else now
        if now - since >= step.limits.merge_timeout:
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
        read = step.facts.done.get(f"{ReadStreams.verb}:{table.name}")
        if isinstance(read, Failure):
            table.fail(read)
        elif table.name not in step.facts.streams:
            table.set(reason="merge task run was skipped; reading its stream")
        elif step.facts.streams[table.name]:
            # Skipped while another run of the task was executing: our rows are still in the
            # stream, so ask again (bounded by the merge timeout).
            again.append(table)
        else:
            skipped.add(table.name)
            started = latest.scheduled_time
            succeeded.append((table, _aware(started) if started else now))
    else:
        table.set(
            outcome="FAILED",
            error=MERGE_FAILED,
            reason=f"merge task {table.objects.merge_task} {latest.state} "
            f"(query id {latest.query_id}): {latest.error_message or 'no error message'}",
        )


def _key_snapshot(table: _Table) -> KeySnapshot:
    export = table.export
    assert export is not None and export.snapshot is not None and export.primary_key
    return KeySnapshot(
        table=table.name,
        objects=table.objects,
        primary_key=tuple(snowflake_column(c) for c in export.primary_key),
        order=int(export.snapshot.order),
        files=tuple(export.key_files),
        rows=export.key_rows,
        # One chunk: the data and the keys were read in one snapshot, so FINAL holds every key.
        check_missing=export.chunks <= 1 and not table.soft_deletes_remove,
        check_count=export.mode == "full" and not table.soft_deletes_remove,
    )


def _settle(step: _Step, succeeded: list[tuple[_Table, datetime]], skipped: set[str]) -> None:
    """Tables whose MERGE task run succeeded: rows counted, key snapshots applied, the ledger
    marked, then the outcome. Key snapshots beyond the call's limit wait for the next call, their
    tables with them (the task run stays SUCCEEDED in TASK_HISTORY)."""
    facts = step.facts
    succeeded = _reconciled_now(step, succeeded)
    if not succeeded:
        return
    counted = tuple((t.name, t.objects, at) for t, at in succeeded if t.name not in skipped)
    merged = facts.merged_rows if counted else {}
    if merged is None:
        step.actions.append(CountMergedRows(counted))
    # After the MERGE (it applied every older file) and before the run counts as merged: a run
    # whose key snapshot failed must be read again.
    snapshots = tuple(_key_snapshot(t) for t, _ in succeeded if t.reconciling)
    reconciled = facts.reconciled if snapshots else {}
    if reconciled is None:
        schemas = step.schemas
        step.actions.append(Reconcile(schemas.database, schemas.staging, schemas.final, snapshots))
    if merged is None or reconciled is None:
        return
    mark = MarkMerged(
        step.ledger,
        step.request.run_id,
        merged=tuple(
            (
                t.verdict.target,
                at,
                t.verdict.quarantined == 0 and reconciled.get(t.name, Reconciled()).error is None,
            )
            for t, at in succeeded
        ),
        reconciled=tuple(
            (t.verdict.target, done.rows_deleted)
            for t, _ in succeeded
            if (done := reconciled.get(t.name)) and done.rows_deleted is not None
        ),
    )
    outcome = step.outcome(mark)
    if outcome is _Asked.ASKED:
        return
    if isinstance(outcome, Failure):
        for table, _ in succeeded:
            table.fail(outcome)
        return
    for table, _ in succeeded:
        _merged(table, merged.get(table.name, 0), reconciled.get(table.name))


def _reconciled_now(step: _Step, succeeded: list[tuple[_Table, datetime]]) -> list[tuple[_Table, datetime]]:
    """The succeeded tables this call settles: every one without a key snapshot, and the
    reconciling ones this call applies (those it applied, or as many as its limit allows)."""
    reconciling = [t for t, _ in succeeded if t.reconciling]
    if step.facts.reconciled is not None:
        chosen = set(step.facts.reconciled)
    else:
        chosen = {t.name for t in reconciling[: step.room()]}
    for table in reconciling:
        if table.name not in chosen:
            table.set(reason=f"merge task run succeeded; key snapshot not applied yet ({DEFERRED})")
    return [(t, at) for t, at in succeeded if not t.reconciling or t.name in chosen]


def _merged(table: _Table, rows: int, done: Reconciled | None) -> None:
    """The outcome of a table whose merge is marked in the ledger."""
    table.set(rows_unchanged=max(0, table.verdict.rows_loaded - rows))
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
            reason=f"{table.verdict.quarantined} row(s) of {table.name} have a NULL primary key "
            "or a key value Snowflake cannot hold, so the MERGE left them out (the other rows were "
            f"merged); first: {export.quarantine_example if export else '?'}. Fix those rows at the "
            "source (or choose another primary_key), then rerun: the window is read again until "
            "they merge",
        )
    else:
        table.set(outcome="MERGED", error=None, reason=None, rows_changed=rows)
