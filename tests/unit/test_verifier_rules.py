"""The verifier's rules without a server: ``decide`` on recorded load and task histories.

Each row of ``CASES`` is one call of the rules: the exports of the run, what COPY_HISTORY and
TASK_HISTORY say, what the call's actions already did, the clock; and the verdict and the actions
the rules must come back with (by key: ``read-loads``, ``refresh:<table>``, ``record:loaded``,
``execute-tasks``, ``read-streams``, ``mark-merged`` ...; the outcome of a statement for many
tables is each table's: ``execute:<table>``, ``stream:<table>``). The same rules against the
emulator, end to end, are tests/library/test_verifier.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aurora_sync.messages import FailedTable, TableVerdict, VerifyRequest, parse_verify_request
from aurora_sync.verifying.act import settle
from aurora_sync.verifying.decide import (
    HISTORY_MARGIN,
    MERGE_REQUESTED,
    Action,
    Decision,
    ExecuteTasks,
    Facts,
    Failure,
    MarkMerged,
    ReadLoads,
    ReadTaskRuns,
    Reconcile,
    RecordRuns,
    RefreshPipe,
    conclude,
    decide,
)
from aurora_sync.verifying.load_history import FileLoad, TaskRun
from aurora_sync.verifying.reconciliation import Reconciled
from aurora_sync.verifying.verify import Limits, Schemas

STARTED = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
SNAPSHOT_TIME = STARTED - timedelta(seconds=30)
RUN = "run-1"
SCHEMAS = Schemas("DB", "STAGING", "FINAL")
LIMITS = Limits(
    refresh_after=timedelta(minutes=2),
    load_timeout=timedelta(minutes=15),
    merge_timeout=timedelta(minutes=15),
)
PIPE_GONE = Failure("WarehouseObjectMissing", "pipe DB.STAGING.ORDERS_PIPE does not exist.")
NO_LEDGER = Failure("WarehouseObjectMissing", "table DB.STAGING._AURORA_SYNC_RUNS does not exist.")
NO_PROCEDURE = Failure("WarehouseObjectMissing", "procedure _AURORA_SYNC_EXECUTE_TASKS does not exist.")


def key(order: int, table: str = "orders") -> str:
    """An export key as the exporter names it: the snapshot order leads the file name."""
    return f"{table}/2026/11/02/10/s{order:026d}-01967a3c-5b2e-7c4d-9e8f-0a1b2c3d4e5f.csv"


K1, K2 = key(11), key(12)
STRAY = "orders/2026/11/02/10/copied-by-hand.csv"


def export(
    table: str = "orders", keys: Sequence[str] = (K1, K2), rows: int = 8, **extra: Any
) -> dict[str, Any]:
    return {
        "table": table,
        "run_id": RUN,
        "status": "EXPORTED" if keys else "EMPTY",
        "rows": rows,
        "files": len(keys),
        "keys": list(keys),
        "window": {"watermark": "2026-11-01T00:00:00+00:00", "lookback_seconds": 0, "source": "final"},
        "chunks": 1,
        "snapshot": {
            "order": "11",
            "source_time": SNAPSHOT_TIME.isoformat(),
            "horizon": SNAPSHOT_TIME.isoformat(),
            "cursor_type": "timestamptz",
        },
        "primary_key": ["id"],
        "cursor": "updated_at",
        **extra,
    }


def full_export(**extra: Any) -> dict[str, Any]:
    """A reconciling run (mode full) whose window wrote nothing: only its key snapshot."""
    key_file = "_keys/orders/2026/11/02/10/s00000000000000000000000011-k.csv"
    return export(
        **{
            "keys": (),
            "rows": 0,
            "mode": "full",
            "cursor": None,
            "key_files": [key_file],
            "key_rows": 3,
            **extra,
        }
    )


def loaded(
    name: str, rows: int, *, at: int = 60, status: str = "Loaded", error: str | None = None
) -> FileLoad:
    """A COPY_HISTORY entry, ``at`` seconds after the run started."""
    return FileLoad(
        file_name=name,
        status=status,
        row_count=rows,
        row_parsed=rows,
        first_error=error,
        error_count=1 if error else 0,
        last_load_time=STARTED + timedelta(seconds=at),
    )


def task(state: str, *, at: int = 120, error: str | None = None, query: str = "q-1") -> TaskRun:
    """A TASK_HISTORY entry of the MERGE task, scheduled ``at`` seconds after the run started."""
    scheduled = STARTED + timedelta(seconds=at)
    return TaskRun(query, state, error, scheduled, scheduled + timedelta(seconds=1), None)


def later(seconds: float) -> datetime:
    return STARTED + timedelta(seconds=seconds)


@dataclass(frozen=True)
class Case:
    name: str
    now: datetime
    expect: Mapping[str, Any]  # fields of the (only) table's verdict
    actions: Sequence[str]  # keys of the actions asked for, in order
    tables: Sequence[Mapping[str, Any]] = field(default_factory=lambda: [export()])
    loads: Sequence[FileLoad] | None = None  # COPY_HISTORY of the table's files; None: not read yet
    runs: Sequence[TaskRun] | None = None  # TASK_HISTORY of its MERGE task, newest first
    done: Mapping[str, Failure | None] = field(default_factory=dict)
    streams: Mapping[str, bool] = field(default_factory=dict)
    merged_rows: Mapping[str, int] | None = None
    reconciled: Mapping[str, Reconciled] | None = None
    previous: Mapping[str, Any] | None = None  # the table's verdict fields in ``previous``
    verify_started: datetime | None = None  # of ``previous``

    def request(self) -> VerifyRequest:
        event: dict[str, Any] = {
            "run_id": RUN,
            "started_at": STARTED.isoformat(),
            "tables": list(self.tables),
        }
        if self.previous is not None or self.verify_started is not None:
            verdict = {"table": "orders", "target": "ORDERS", "outcome": "PENDING", **(self.previous or {})}
            event["previous"] = {
                "run_id": RUN,
                "done": False,
                "verify_started_at": (self.verify_started or STARTED).isoformat(),
                "tables": [verdict],
                "pending": 1,
                "failed": 0,
            }
        return parse_verify_request(event)

    def facts(self) -> Facts:
        return Facts(
            loads=None if self.loads is None else {"orders": list(self.loads)},
            task_runs=None if self.runs is None else {"orders": list(self.runs)} if self.runs else {},
            streams=self.streams,
            merged_rows=self.merged_rows,
            reconciled=self.reconciled,
            done=self.done,
        )

    def decide(self) -> Decision:
        return decide(self.request(), self.facts(), schemas=SCHEMAS, limits=LIMITS, configs={}, now=self.now)


BOTH_LOADED = [loaded(K1, 5), loaded(K2, 3, at=90)]
RECORDED = {"record:loaded": None}
REQUESTED = {"record:loaded": None, "execute:orders": None}
NOT_SEEN = "2 of 2 file(s) not loaded yet (2 not seen by the pipe)"

CASES = [
    # --- the load history ---------------------------------------------------------------------------
    Case("first look asks for the load history", later(5), {"outcome": "PENDING"}, ["read-loads"]),
    Case(
        "files not seen yet wait for their notification before refresh_after",
        later(60),
        {"outcome": "PENDING", "reason": NOT_SEEN, "missing": [K1, K2], "refreshed_at": None},
        [],
        loads=[],
    ),
    Case(
        "after refresh_after the pipe is refreshed once",
        later(121),
        {"outcome": "PENDING", "reason": NOT_SEEN, "refreshed_at": None},
        ["refresh:orders"],
        loads=[],
    ),
    Case(
        "the refresh done, its time is kept for the rest of the run",
        later(121),
        {
            "outcome": "PENDING",
            "reason": NOT_SEEN,
            "refreshed_at": later(121).isoformat(timespec="milliseconds"),
        },
        [],
        loads=[],
        done={"refresh:orders": None},
    ),
    Case(
        "never a second refresh in a run: previous carries refreshed_at",
        later(600),
        {"outcome": "PENDING", "refreshed_at": "2026-11-02T10:02:01.000+00:00"},
        [],
        loads=[],
        previous={"refreshed_at": "2026-11-02T10:02:01.000+00:00"},
    ),
    Case(
        "a refresh that fails terminally fails the table",
        later(121),
        {"outcome": "FAILED", "error": PIPE_GONE.error, "reason": PIPE_GONE.reason},
        [],
        loads=[],
        done={"refresh:orders": PIPE_GONE},
    ),
    Case(
        "files still missing load_timeout after the verifier's first check time out",
        later(3600),
        {
            "outcome": "FAILED",
            "error": "LoadTimeout",
            "reason": "2 of 2 file(s) not loaded 900s after the verifier started checking (2 never seen "
            f"by the pipe, refreshed at 2026-11-02T10:02:01.000+00:00); first: {K1}, {K2}. Check "
            'SYSTEM$PIPE_STATUS of "DB"."STAGING"."ORDERS_PIPE" and the bucket\'s event notification',
            "missing": [K1, K2],
        },
        [],
        loads=[],
        previous={"refreshed_at": "2026-11-02T10:02:01.000+00:00"},
        verify_started=later(3600 - 900),
    ),
    Case(
        "the load timeout counts from the first check, not the run start (a long export)",
        later(3600),
        {"outcome": "PENDING", "reason": NOT_SEEN},
        ["refresh:orders"],
        loads=[],
        verify_started=later(3600 - 899),
    ),
    Case(
        "a file missing from history after the timeout fails the table, naming only it",
        later(1000),
        {
            "outcome": "FAILED",
            "error": "LoadTimeout",
            "missing": [K2],
            "files_loaded": 1,
            "rows_loaded": 5,
        },
        [],
        loads=[loaded(K1, 5)],
        verify_started=STARTED,
    ),
    Case(
        "a file still loading is seen by the pipe: no refresh",
        later(300),
        {
            "outcome": "PENDING",
            "reason": "1 of 2 file(s) not loaded yet (0 not seen by the pipe)",
            "missing": [K2],
        },
        [],
        loads=[loaded(K1, 5), loaded(K2, 0, status="Load in progress")],
    ),
    Case(
        "LOAD_FAILED: the file's first error and its name",
        later(60),
        {
            "outcome": "FAILED",
            "error": "LoadFailed",
            "reason": f"1 file(s) did not load; {K2}: Load failed: Timestamp 'x' is not recognized "
            "(1 error(s))",
            "missing": [K2],
        },
        [],
        loads=[loaded(K1, 5), loaded(K2, 0, status="Load failed", error="Timestamp 'x' is not recognized")],
    ),
    Case(
        "a partially loaded file fails the table even though rows arrived",
        later(60),
        {"outcome": "FAILED", "error": "LoadFailed", "missing": [K1], "rows_loaded": 3},
        [],
        loads=[loaded(K1, 4, status="Partially loaded", error="bad row"), loaded(K2, 3)],
    ),
    Case(
        "a skipped file fails the table",
        later(60),
        {"outcome": "FAILED", "error": "LoadFailed", "missing": [K1]},
        [],
        loads=[loaded(K1, 0, status="Load skipped", error="bad file"), loaded(K2, 3)],
    ),
    Case(
        "rows loaded != rows Aurora reported: nothing is merged",
        later(60),
        {
            "outcome": "FAILED",
            "error": "LoadCountMismatch",
            "reason": "Aurora exported 8 row(s) in 2 file(s) but Snowpipe loaded 7; nothing was merged. "
            "Check the files under orders/ and the pipe's file format",
            "rows_loaded": 7,
            "missing": [],
        },
        [],
        loads=[loaded(K1, 5), loaded(K2, 2)],
    ),
    Case(
        "a file loaded twice counts once",
        later(100),
        {"outcome": "PENDING", "rows_loaded": 8, "files_loaded": 2},
        ["read-task-runs"],
        loads=[loaded(K1, 5), loaded(K2, 3), loaded(K1, 5, at=95)],
    ),
    Case(
        "a file loaded after a failed attempt is loaded",
        later(100),
        {"outcome": "PENDING", "rows_loaded": 8},
        ["read-task-runs"],
        loads=[loaded(K1, 0, at=10, status="Load failed", error="x"), loaded(K1, 5, at=30), loaded(K2, 3)],
    ),
    Case(
        "a Loaded entry wins over a later failed attempt at the same file",
        later(100),
        {"outcome": "PENDING", "rows_loaded": 8},
        ["read-task-runs"],
        loads=[loaded(K1, 5, at=30), loaded(K2, 3), loaded(K1, 0, at=50, status="Load failed", error="x")],
    ),
    Case(
        "of two failed attempts the latest is reported",
        later(100),
        {
            "outcome": "FAILED",
            "error": "LoadFailed",
            "reason": f"1 file(s) did not load; {K1}: Load failed: new (1 error(s))",
        },
        [],
        loads=[
            loaded(K1, 0, at=50, status="Load failed", error="new"),
            loaded(K1, 0, at=10, status="Load failed", error="old"),
            loaded(K2, 3),
        ],
    ),
    Case(
        "a stray file in the history that no export reported counts for nothing",
        later(100),
        {"outcome": "PENDING", "rows_loaded": 8, "files_loaded": 2},
        ["read-task-runs"],
        loads=[*BOTH_LOADED, loaded(STRAY, 100)],
    ),
    # --- the merge ----------------------------------------------------------------------------------
    Case(
        "every file loaded and no task run yet: the files go into the ledger first",
        later(100),
        {"outcome": "PENDING", "merge_query_id": None},
        ["record:loaded"],
        loads=BOTH_LOADED,
        runs=[],
    ),
    Case(
        "accounted for: the MERGE task is executed",
        later(100),
        {"outcome": "PENDING"},
        ["execute-tasks"],
        loads=BOTH_LOADED,
        runs=[],
        done=RECORDED,
    ),
    Case(
        "executed: pending until its run shows in TASK_HISTORY",
        later(100),
        {"outcome": "PENDING", "reason": MERGE_REQUESTED},
        [],
        loads=BOTH_LOADED,
        runs=[],
        done=REQUESTED,
    ),
    Case(
        "a ledger that cannot be written fails the table, names the setup, and runs no MERGE",
        later(100),
        {
            "outcome": "FAILED",
            "error": NO_LEDGER.error,
            "reason": f'{NO_LEDGER.reason} (the export ledger "DB"."STAGING"."_AURORA_SYNC_RUNS" is '
            "created by `aurora-sync sql snowflake --setup --apply`)",
        },
        [],
        loads=BOTH_LOADED,
        runs=[],
        done={"record:loaded": NO_LEDGER},
    ),
    Case(
        "an EXECUTE TASK that fails terminally fails the table",
        later(100),
        {"outcome": "FAILED", "error": PIPE_GONE.error},
        [],
        loads=BOTH_LOADED,
        runs=[],
        done={"record:loaded": None, "execute:orders": PIPE_GONE},
    ),
    Case(
        "the CALL that executes the MERGE tasks fails as a whole: the table fails naming the setup",
        later(100),
        {
            "outcome": "FAILED",
            "error": NO_PROCEDURE.error,
            "reason": f'{NO_PROCEDURE.reason} (the procedure "DB"."STAGING"."_AURORA_SYNC_EXECUTE_TASKS" '
            "is created by `aurora-sync sql snowflake --setup --apply`)",
        },
        [],
        loads=BOTH_LOADED,
        runs=[],
        done={"record:loaded": None, "execute-tasks": NO_PROCEDURE, "execute:orders": NO_PROCEDURE},
    ),
    Case(
        "skipped, and its stream cannot be read: the table fails with the error",
        later(200),
        {"outcome": "FAILED", "error": PIPE_GONE.error},
        [],
        loads=BOTH_LOADED,
        runs=[task("SKIPPED")],
        done={"read-streams": None, "stream:orders": PIPE_GONE},
    ),
    Case(
        "merge once per run: a run in TASK_HISTORY (a retried call) is never requested again",
        later(130),
        {"outcome": "PENDING", "reason": "merge task SCHEDULED", "merge_query_id": "q-1"},
        [],
        loads=BOTH_LOADED,
        runs=[task("SCHEDULED")],
    ),
    Case(
        "a MERGE still executing merge_timeout after its first request times out",
        later(120 + 900),
        {
            "outcome": "FAILED",
            "error": "MergeTimeout",
            "reason": 'merge task "DB"."STAGING"."ORDERS_MERGE" still EXECUTING 900s after it was first '
            "requested in this run (query id q-2)",
        },
        [],
        loads=BOTH_LOADED,
        runs=[task("EXECUTING", at=150, query="q-2"), task("SKIPPED")],
    ),
    Case(
        "a failed MERGE task run fails the table with its message, and nothing is marked merged",
        later(200),
        {
            "outcome": "FAILED",
            "error": "MergeFailed",
            "reason": 'merge task "DB"."STAGING"."ORDERS_MERGE" FAILED (query id q-1): Object does not exist',
        },
        [],
        loads=BOTH_LOADED,
        runs=[task("FAILED", error="Object does not exist")],
    ),
    Case(
        "a succeeded MERGE: its changed rows are counted, not yet merged",
        later(200),
        {"outcome": "PENDING"},
        ["count-merged"],
        loads=BOTH_LOADED,
        runs=[task("SUCCEEDED")],
    ),
    Case(
        "counted: the ledger marks the run merged before the table counts as merged",
        later(200),
        {"outcome": "PENDING"},
        ["mark-merged"],
        loads=BOTH_LOADED,
        runs=[task("SUCCEEDED")],
        merged_rows={"orders": 6},
    ),
    Case(
        "marked: MERGED, re-read rows counted as unchanged",
        later(200),
        {"outcome": "MERGED", "rows_changed": 6, "rows_unchanged": 2, "error": None, "reason": None},
        [],
        loads=BOTH_LOADED,
        runs=[task("SUCCEEDED")],
        merged_rows={"orders": 6},
        done={"mark-merged": None},
    ),
    Case(
        "a ledger that cannot be marked fails the table: the run never counts as merged",
        later(200),
        {"outcome": "FAILED", "error": NO_LEDGER.error, "reason": NO_LEDGER.reason},
        [],
        loads=BOTH_LOADED,
        runs=[task("SUCCEEDED")],
        merged_rows={"orders": 6},
        done={"mark-merged": NO_LEDGER},
    ),
    Case(
        "skipped: is the stream still holding our rows?",
        later(200),
        {"outcome": "PENDING", "merge_query_id": "q-1"},
        ["read-streams"],
        loads=BOTH_LOADED,
        runs=[task("SKIPPED")],
    ),
    Case(
        "skipped with data in the stream: the task is executed again",
        later(200),
        {"outcome": "PENDING"},
        ["execute-tasks"],
        loads=BOTH_LOADED,
        runs=[task("SKIPPED")],
        done={"stream:orders": None},
        streams={"orders": True},
    ),
    Case(
        "executed again after a skip",
        later(200),
        {
            "outcome": "PENDING",
            "reason": "merge task run was skipped with data in the stream; requested again",
        },
        [],
        loads=BOTH_LOADED,
        runs=[task("SKIPPED")],
        done={"stream:orders": None, "execute:orders": None},
        streams={"orders": True},
    ),
    Case(
        "skipped with an empty stream: merged, nothing to count",
        later(200),
        {"outcome": "PENDING"},
        ["mark-merged"],
        loads=BOTH_LOADED,
        runs=[task("SKIPPED")],
        done={"stream:orders": None},
        streams={"orders": False},
    ),
    Case(
        "skipped with an empty stream and marked: MERGED with 0 changed rows",
        later(200),
        {"outcome": "MERGED", "rows_changed": 0, "rows_unchanged": 8},
        [],
        loads=BOTH_LOADED,
        runs=[task("SKIPPED")],
        done={"stream:orders": None, "mark-merged": None},
        streams={"orders": False},
    ),
    Case(
        "quarantined rows: merged, marked, yet the table fails naming one",
        later(200),
        {"outcome": "FAILED", "error": "RowsQuarantined", "rows_changed": 6, "quarantined": 1},
        [],
        tables=[export(quarantined=1, quarantine_example='{"id": null}')],
        loads=BOTH_LOADED,
        runs=[task("SUCCEEDED")],
        merged_rows={"orders": 6},
        done={"mark-merged": None},
    ),
    # --- exports that never reach the load history ----------------------------------------------------
    Case(
        "an empty window: NOTHING_TO_DO, its run recorded as merged, no history read",
        later(5),
        {"outcome": "NOTHING_TO_DO", "files": 0},
        ["record:merged"],
        tables=[export(keys=(), rows=0)],
    ),
    Case(
        "an EXPORTED result without files is an empty window too",
        later(5),
        {"outcome": "NOTHING_TO_DO"},
        [],
        tables=[export(keys=(), rows=0, status="EXPORTED")],
        done={"record:merged": None},
    ),
    Case(
        "an empty window whose record fails is failed",
        later(5),
        {"outcome": "FAILED", "error": NO_LEDGER.error},
        [],
        tables=[export(keys=(), rows=0)],
        done={"record:merged": NO_LEDGER},
    ),
    Case(
        "a failed export is carried through with the exception's message",
        later(5),
        {
            "outcome": "FAILED",
            "error": "SourceObjectMissing",
            "reason": "table orders (public.orders): relation does not exist.",
        },
        [],
        tables=[
            {
                "table": "orders",
                "status": "FAILED",
                "error": {
                    "Error": "SourceObjectMissing",
                    "Cause": json.dumps(
                        {
                            "errorMessage": "table orders (public.orders): relation does not exist.",
                            "stackTrace": [],
                        }
                    ),
                },
            }
        ],
    ),
    Case(
        "an export still MORE is incomplete",
        later(5),
        {"outcome": "FAILED", "error": "ExportIncomplete"},
        [],
        tables=[export(status="MORE", chunks=3)],
    ),
    Case(
        # The round step puts a table's keys back together from its chunk files: a result whose
        # keys are fewer (or more) than the files Aurora reported lost some on the way.
        "an export whose keys are not the files it reports is incomplete, nothing read or merged",
        later(5),
        {
            "outcome": "FAILED",
            "error": "ExportIncomplete",
            "reason": "export of orders reports 3 file(s) but carries 2 key(s); nothing was merged. "
            'Rerun it: {"tables": ["orders"]}',
        },
        [],
        tables=[export(files=3)],
    ),
    Case(
        "an export of an older version (no snapshot) is never merged",
        later(5),
        {"outcome": "FAILED", "error": "ExportIncomplete"},
        [],
        tables=[export(snapshot=None)],
    ),
    Case(
        "a reported file without a snapshot order fails its table and runs no MERGE",
        later(100),
        {
            "outcome": "FAILED",
            "error": "UnaccountedFile",
            "reason": f"exported file {STRAY} has no snapshot order in its name; nothing was merged",
        },
        [],
        tables=[export(keys=(K1, STRAY))],
        loads=[loaded(K1, 5), loaded(STRAY, 3)],
        runs=[],
    ),
    Case(
        "a final outcome in previous is carried unchanged, nothing asked",
        later(5),
        {"outcome": "MERGED", "rows_changed": 4, "merge_query_id": "q-0"},
        [],
        previous={"outcome": "MERGED", "rows_changed": 4, "merge_query_id": "q-0"},
    ),
    # --- key snapshots ------------------------------------------------------------------------------
    Case(
        "a reconciling run with an empty window still goes through the MERGE",
        later(5),
        {"outcome": "PENDING", "key_rows": 3, "files": 0},
        ["read-task-runs"],
        tables=[full_export()],
        loads=[],
    ),
    Case(
        "a reconciling run whose MERGE succeeded applies its key snapshot (after counting)",
        later(200),
        {"outcome": "PENDING"},
        ["count-merged", "reconcile"],
        tables=[full_export()],
        loads=[],
        runs=[task("SUCCEEDED")],
    ),
    Case(
        "a key snapshot that failed fails the table after the mark",
        later(200),
        {"outcome": "FAILED", "error": "RowsMissing", "reason": "FINAL lacks 2 key(s)", "rows_deleted": None},
        [],
        tables=[full_export()],
        loads=[],
        runs=[task("SUCCEEDED")],
        merged_rows={"orders": 0},
        reconciled={"orders": Reconciled(error="RowsMissing", reason="FINAL lacks 2 key(s)")},
        done={"mark-merged": None},
    ),
    Case(
        "key rows reported without a key file: nothing merged or deleted",
        later(5),
        {"outcome": "FAILED", "error": "ExportIncomplete"},
        [],
        tables=[full_export(key_files=[])],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rules(case: Case) -> None:
    decision = case.decide()
    (verdict,) = decision.verdicts
    assert {name: getattr(verdict, name) for name in case.expect} == dict(case.expect)
    assert [a.key for a in decision.actions] == list(case.actions)


def only(decision: Decision, kind: type[Any]) -> Any:
    (action,) = [a for a in decision.actions if isinstance(a, kind)]
    return action


def test_the_load_history_is_read_for_the_reported_files_from_before_the_run() -> None:
    read = only(Case("", later(5), {}, []).decide(), ReadLoads)
    assert (read.database, read.start_time) == ("DB", STARTED - HISTORY_MARGIN)
    assert [(t.name, t.keys, t.objects.staging_table) for t in read.tables] == [
        ("orders", (K1, K2), '"DB"."STAGING"."ORDERS"')
    ]


def test_a_refresh_lists_only_the_runs_directory_and_files_modified_since_the_run() -> None:
    refresh = only(Case("", later(121), {}, [], loads=[]).decide(), RefreshPipe)
    assert (refresh.prefix, refresh.modified_after) == ("2026/11/02/10/", STARTED - HISTORY_MARGIN)
    assert refresh.objects.pipe == '"DB"."STAGING"."ORDERS_PIPE"'


def test_only_task_runs_scheduled_after_the_last_file_loaded_count() -> None:
    # A MERGE run scheduled before our files loaded (a previous run's) cannot have merged them.
    read = only(Case("", later(100), {}, [], loads=BOTH_LOADED).decide(), ReadTaskRuns)
    assert [(name, since) for name, _, since in read.tasks] == [("orders", later(90))]
    # Files loaded by clocks behind the run start: never earlier than the run itself.
    early = [loaded(K1, 5, at=-30), loaded(K2, 3, at=-20)]
    read = only(Case("", later(100), {}, [], loads=early).decide(), ReadTaskRuns)
    assert [since for _, _, since in read.tasks] == [STARTED]


def test_the_ledger_records_each_file_with_its_order_and_loaded_rows_before_the_merge() -> None:
    record = only(Case("", later(100), {}, [], loads=BOTH_LOADED, runs=[]).decide(), RecordRuns)
    assert record.merged is False and record.ledger.runs == '"DB"."STAGING"."_AURORA_SYNC_RUNS"'
    assert [(f.name, f.order, f.rows) for f in record.files["ORDERS"]] == [(K1, 11, 5), (K2, 12, 3)]
    (run,) = record.runs
    assert (run.target, run.run_id, run.files, run.rows, run.merged) == ("ORDERS", RUN, 2, 8, False)
    assert run.window_start == "2026-11-01T00:00:00+00:00"  # a window the planner derived
    # An operator's `since` says nothing about where later commits land: no window to start from.
    since = export(
        window={"watermark": "2026-10-01T00:00:00+00:00", "lookback_seconds": 0, "source": "since"}
    )
    record = only(
        Case("", later(100), {}, [], tables=[since], loads=BOTH_LOADED, runs=[]).decide(), RecordRuns
    )
    assert record.runs[0].window_start is None


def test_the_watermark_moves_only_for_a_merge_that_ran_and_kept_every_row() -> None:
    """MarkMerged's third field is what lets the planner start the next window after this run."""

    def marks(**changes: Any) -> tuple[tuple[str, datetime, bool], ...]:
        case = Case(
            "", later(200), {}, [], loads=BOTH_LOADED, runs=[task("SUCCEEDED")], merged_rows={"orders": 1}
        )
        mark: MarkMerged = only(replace(case, **changes).decide(), MarkMerged)
        return mark.merged

    # The MERGE run's start: every file accounted for before it was in its stream.
    assert marks() == (("ORDERS", later(121), True),)
    assert marks(tables=[export(quarantined=2)]) == (("ORDERS", later(121), False),)
    failed_keys = Reconciled(error="KeySnapshotIncomplete", reason="short")
    assert marks(tables=[full_export()], loads=[], reconciled={"orders": failed_keys})[0][2] is False
    for state in ("SCHEDULED", "EXECUTING", "FAILED"):
        decision = Case("", later(200), {}, [], loads=BOTH_LOADED, runs=[task(state)]).decide()
        assert not [a for a in decision.actions if isinstance(a, MarkMerged)], state


def test_rows_a_key_snapshot_deleted_are_marked_with_the_merge() -> None:
    case = Case(
        "",
        later(200),
        {"outcome": "MERGED", "rows_deleted": 2, "key_rows": 3},
        [],
        tables=[full_export()],
        loads=[],
        runs=[task("SUCCEEDED")],
        merged_rows={"orders": 0},
        reconciled={"orders": Reconciled(rows_deleted=2)},
    )
    mark = only(case.decide(), MarkMerged)
    assert mark.reconciled == (("ORDERS", 2),)
    decision = replace(case, done={"mark-merged": None}).decide()
    assert decision.verdicts[0].outcome == "MERGED" and decision.verdicts[0].rows_deleted == 2


def test_tables_are_decided_independently_in_one_call() -> None:
    """Several tables: one read of each history for all of them, each table's own actions."""
    tables = [
        export(),
        export(table="items", keys=(key(21, "items"),), rows=2),
        export(table="tags", keys=()),
    ]
    request = parse_verify_request({"run_id": RUN, "started_at": STARTED.isoformat(), "tables": tables})
    facts = Facts(
        loads={"orders": BOTH_LOADED, "items": [loaded(key(21, "items"), 1)]},
        task_runs={"orders": [task("SUCCEEDED")]},
        done={"record:merged": None},
    )
    decision = decide(request, facts, schemas=SCHEMAS, limits=LIMITS, configs={}, now=later(200))
    assert [(v.table, v.outcome, v.error) for v in decision.verdicts] == [
        ("orders", "PENDING", None),
        ("items", "FAILED", "LoadCountMismatch"),
        ("tags", "NOTHING_TO_DO", None),
    ]
    assert [a.key for a in decision.actions] == ["count-merged"]


def test_each_table_is_checked_and_merged_as_the_objects_its_export_carries() -> None:
    """The target travels with the run: the configs the verifier could read now (here one that
    names another target, as after a change since the plan) never decide which objects it checks,
    and a table without a carried target is the default, never a config's."""
    from aurora_sync.config import LoadedTable, TableConfig

    def config(name: str, target: str) -> LoadedTable:
        document = {"table": name, "primary_key": ["id"], "target": target}
        return LoadedTable(name, f"/t/{name}", TableConfig.model_validate(document))

    tables = [export(target="SHOP_ORDERS"), export(table="items", keys=(key(21, "items"),), rows=2)]
    request = parse_verify_request({"run_id": RUN, "started_at": STARTED.isoformat(), "tables": tables})
    changed = {"orders": config("orders", "ORDERS_RENAMED"), "items": config("items", "ITEMS_RENAMED")}
    facts = Facts(
        loads={"orders": BOTH_LOADED, "items": [loaded(key(21, "items"), 2)]}, task_runs={}, done=RECORDED
    )
    decision = decide(request, facts, schemas=SCHEMAS, limits=LIMITS, configs=changed, now=later(200))
    assert [(v.table, v.target) for v in decision.verdicts] == [("orders", "SHOP_ORDERS"), ("items", "ITEMS")]
    [executed] = [a for a in decision.actions if isinstance(a, ExecuteTasks)]
    assert [(name, objects.merge_task) for name, objects in executed.tables] == [
        ("orders", '"DB"."STAGING"."SHOP_ORDERS_MERGE"'),
        ("items", '"DB"."STAGING"."ITEMS_MERGE"'),
    ]
    first_look = decide(request, Facts(), schemas=SCHEMAS, limits=LIMITS, configs=changed, now=later(5))
    [read] = [a for a in first_look.actions if isinstance(a, ReadLoads)]
    assert [(t.name, t.objects.staging_table) for t in read.tables] == [
        ("orders", '"DB"."STAGING"."SHOP_ORDERS"'),
        ("items", '"DB"."STAGING"."ITEMS"'),
    ]
    failed = {
        "table": "crash",
        "run_id": RUN,
        "target": "SHOP_CRASH",
        "status": "FAILED",
        "error": {"Error": "E"},
    }
    request = parse_verify_request({"run_id": RUN, "started_at": STARTED.isoformat(), "tables": [failed]})
    decision = decide(request, Facts(), schemas=SCHEMAS, limits=LIMITS, configs={}, now=later(5))
    assert [(v.table, v.target, v.outcome) for v in decision.verdicts] == [("crash", "SHOP_CRASH", "FAILED")]


# --- the call's end, and the layer's loop --------------------------------------------------------


def test_conclude_adds_the_snapshots_age_and_the_summary_with_plan_failures() -> None:
    event = {
        "run_id": RUN,
        "started_at": STARTED.isoformat(),
        "tables": [export(keys=(), rows=0), export(table="items", snapshot=None)],
        "plan_failed": 1,  # the count; the handler reads the run's plan-failed.json
    }
    request = parse_verify_request(event)
    facts = Facts(done={"record:merged": None})
    decision = decide(request, facts, schemas=SCHEMAS, limits=LIMITS, configs={}, now=later(5))
    plan_failed = [FailedTable(table="broken", error="ConfigError", cause="bad config")]
    output = conclude(request, decision, schemas=SCHEMAS, now=later(60), plan_failed=plan_failed)
    orders, items = output.tables
    assert (orders.source_time, orders.freshness_lag_seconds) == (
        SNAPSHOT_TIME.isoformat(timespec="microseconds"),
        90.0,
    )
    assert items.freshness_lag_seconds is None  # failed: FINAL is not fresh as of anything new
    assert (output.done, output.pending, output.failed) == (True, 0, 1)
    assert output.summary is not None and [f.table for f in output.summary.failed] == ["broken", "items"]
    assert output.summary.rerun_input == {"tables": ["broken", "items"]}
    assert (output.verify_started_at, output.database, output.final_schema) == (
        later(5).isoformat(timespec="milliseconds"),
        "DB",
        "FINAL",
    )


def test_a_pending_call_has_no_summary_and_carries_its_first_check_time() -> None:
    case = Case("", later(700), {}, [], loads=[], verify_started=later(600))
    output = conclude(case.request(), case.decide(), schemas=SCHEMAS, now=later(701))
    assert (output.done, output.pending, output.summary) == (False, 1, None)
    assert output.verify_started_at == later(600).isoformat(timespec="milliseconds")


Script = Mapping[str, Any]  # action key → the answer the layer would get from Snowflake


def run_script(
    case: Case, answers: Script, answer: Callable[[Action], Any] | None = None
) -> tuple[Decision, list[str]]:
    """Drive ``decide`` through the layer's loop, answering each action from ``answers`` (or
    with ``answer``, for an answer that depends on what was asked)."""
    performed: list[str] = []

    def run(action: Action) -> Any:
        performed.append(action.key)
        return answer(action) if answer else answers[action.key]

    request = case.request()
    decision = settle(
        lambda facts: decide(request, facts, schemas=SCHEMAS, limits=LIMITS, configs={}, now=case.now),
        run,
    )
    return decision, performed


def test_one_call_from_the_history_to_the_merge_request_does_each_thing_once() -> None:
    answers = {
        "read-loads": {"orders": BOTH_LOADED},
        "read-task-runs": {},
        "record:loaded": None,
        "execute-tasks": {"orders": None},
    }
    decision, performed = run_script(Case("", later(100), {}, []), answers)
    assert performed == ["read-loads", "read-task-runs", "record:loaded", "execute-tasks"]
    assert (decision.verdicts[0].outcome, decision.verdicts[0].reason) == ("PENDING", MERGE_REQUESTED)


def test_one_call_that_finds_the_merge_done_counts_reconciles_and_marks_once() -> None:
    answers = {
        "read-loads": {},
        "read-task-runs": {"orders": [task("SUCCEEDED")]},
        "count-merged": {"orders": 0},
        "reconcile": {"orders": Reconciled(rows_deleted=1)},
        "mark-merged": None,
    }
    decision, performed = run_script(Case("", later(200), {}, [], tables=[full_export()]), answers)
    assert performed == ["read-loads", "read-task-runs", "count-merged", "reconcile", "mark-merged"]
    assert (decision.verdicts[0].outcome, decision.verdicts[0].rows_deleted) == ("MERGED", 1)


def test_the_layer_refuses_an_action_asked_twice() -> None:
    again = Decision(
        verdicts=(TableVerdict(table="orders", target="ORDERS", outcome="PENDING"),),
        actions=(ExecuteTasks("DB", "STAGING", (("orders", SCHEMAS.objects("ORDERS")),)),),
        verify_started=STARTED,
        snapshot_taken={},
    )
    decision_for: Callable[[Facts], Decision] = lambda facts: again  # noqa: E731
    with pytest.raises(RuntimeError, match="asked twice for execute-tasks"):
        settle(decision_for, lambda action: None)


def test_one_statement_executes_every_ready_tables_merge_and_fails_only_the_table_whose_task_failed() -> None:
    tables = [export(), export(table="items", keys=(key(21, "items"),), rows=2)]
    answers = {
        "read-loads": {"orders": BOTH_LOADED, "items": [loaded(key(21, "items"), 2)]},
        "read-task-runs": {},
        "record:loaded": None,
        "execute-tasks": {"orders": None, "items": PIPE_GONE},
    }
    decision, performed = run_script(Case("", later(100), {}, [], tables=tables), answers)
    assert performed == ["read-loads", "read-task-runs", "record:loaded", "execute-tasks"]
    assert [(v.table, v.outcome, v.error, v.reason) for v in decision.verdicts] == [
        ("orders", "PENDING", None, MERGE_REQUESTED),
        ("items", "FAILED", PIPE_GONE.error, PIPE_GONE.reason),
    ]


def test_skipped_runs_streams_are_read_in_one_statement_before_the_tasks_are_executed_again() -> None:
    tables = [export(), export(table="items", keys=(key(21, "items"),), rows=2)]
    answers = {
        "read-loads": {"orders": BOTH_LOADED, "items": [loaded(key(21, "items"), 2)]},
        "read-task-runs": {"orders": [task("SKIPPED")], "items": [task("SKIPPED", query="q-2")]},
        "read-streams": {"orders": True, "items": False},
        "execute-tasks": {"orders": None},
        "count-merged": {},
        "mark-merged": None,
    }
    decision, performed = run_script(Case("", later(200), {}, [], tables=tables), answers)
    assert performed == ["read-loads", "read-task-runs", "read-streams", "execute-tasks", "mark-merged"]
    assert [(v.table, v.outcome) for v in decision.verdicts] == [("orders", "PENDING"), ("items", "MERGED")]
    assert (
        decision.verdicts[0].reason == "merge task run was skipped with data in the stream; requested again"
    )


def test_a_skipped_run_with_an_empty_stream_settles_with_the_succeeded_ones_in_the_same_call() -> None:
    # Two reconciling tables: one merge SUCCEEDED, one SKIPPED with nothing in its stream (a
    # scheduled run with no changes). Both reached FINAL in this call; settling the first before
    # the stream read would fix the call's key snapshots and defer the second to another call.
    items_keys = "_keys/items/2026/11/02/10/s00000000000000000000000021-k.csv"
    tables = [full_export(), full_export(table="items", key_files=[items_keys])]
    answers = {
        "read-loads": {},
        "read-task-runs": {"orders": [task("SUCCEEDED")], "items": [task("SKIPPED", query="q-2")]},
        "read-streams": {"items": False},
        "count-merged": {"orders": 0},
        "mark-merged": None,
    }
    reconciled = {"orders": Reconciled(rows_deleted=1), "items": Reconciled(rows_deleted=0)}
    asked: list[tuple[str, ...]] = []

    def run(action: Action) -> Any:
        if isinstance(action, Reconcile):
            asked.append(tuple(s.table for s in action.snapshots))
            return {s.table: reconciled[s.table] for s in action.snapshots}
        return answers[action.key]

    decision, performed = run_script(Case("", later(200), {}, [], tables=tables), answers, run)
    assert asked == [("orders", "items")]
    assert performed == [
        "read-loads",
        "read-task-runs",
        "read-streams",
        "count-merged",
        "reconcile",
        "mark-merged",
    ]
    assert [(v.table, v.outcome, v.rows_deleted) for v in decision.verdicts] == [
        ("orders", "MERGED", 1),
        ("items", "MERGED", 0),
    ]
    assert not decision.continue_now
