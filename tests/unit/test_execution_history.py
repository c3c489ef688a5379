"""Reading an execution's history without a server: a history built from the state contract's own
models (what Step Functions records as each state's output), read into per-table results, the
rerun input, the live progress lines and the final report."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aurora_sync.messages import (
    ExportResult,
    ExportWindow,
    FailedTable,
    NewColumn,
    RunSummary,
    SourceTable,
    TableVerdict,
    VerifyOutput,
    WorkItem,
)
from aurora_sync.verifying.progress import progress_of
from aurora_sync_ops.workflow.history import PlanFiles, PlanOutput, collect
from aurora_sync_ops.workflow.progress import Progress
from aurora_sync_ops.workflow.report import render

ARN = "arn:aws:states:us-east-1:123456789012:execution:aurora-sync-sync:sync-1"
RUN = "sync-1"
# A Lambda crash: the runtime's cause is plain text, not the JSON error document.
CRASH = "RequestId: 1f2e Error: Runtime exited with error: signal: killed\nRuntime.ExitError"


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True)


class History:
    """Events as GetExecutionHistory returns them (ids, previous ids, ...EventDetails)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        # The verifier's reports in S3 by URI (the Verify state names one; issue 15).
        self.reports: dict[str, VerifyOutput] = {}

    @property
    def report(self) -> VerifyOutput | None:
        return next(iter(self.reports.values()), None)

    def add(self, kind: str, details: dict[str, Any]) -> None:
        key = kind[0].lower() + kind[1:] + "EventDetails"
        self.events.append(
            {"id": len(self.events) + 1, "previousEventId": len(self.events), "type": kind, key: details}
        )

    def exited(self, state: str, output: Any) -> None:
        kind = "TaskStateExited" if state in ("Plan", "ExportChunk", "Verify") else "PassStateExited"
        self.add(kind, {"name": state, "output": json.dumps(output)})


# Both tables have a custom target (their configs' ``target``): the DDL must name SHOP_ORDERS,
# not ORDERS, and crash's failed export ends in the state that keeps its target.
TARGETS = {"orders": "SHOP_ORDERS", "crash": "SHOP_CRASH"}


def _export(table: str, **fields: Any) -> ExportResult:
    return ExportResult(table=table, run_id=RUN, target=TARGETS[table], window=ExportWindow(), **fields)


ITEM = WorkItem(
    run_id=RUN,
    table="orders",
    source=SourceTable.model_validate({"schema": "shop", "table": "orders"}),
    target=TARGETS["orders"],
    primary_key=["id"],
    cursor="updated_at",
)
# What the planner wrote to the run's files: the history names them by key and count only.
PLANNED = PlanFiles(
    items=[ITEM, ITEM.model_copy(update={"table": "crash", "target": TARGETS["crash"]})],
    failed=[FailedTable(table="ghost", error="SourceObjectMissing", cause="no table 'ghost'")],
)


def recorded() -> History:
    item, crash_item = PLANNED.items
    history = History()
    history.exited(
        "Plan",
        {
            "run_id": RUN,
            "started_at": "2026-01-01T00:00:00.000+00:00",
            "skip": False,
            "skip_reason": None,
            "tables_planned": 2,
            "work_items": 2,
            "failed": 1,
            "manifest": f"_aurora_sync/runs/{RUN}/round-0/items.json",
            "failed_file": f"_aurora_sync/runs/{RUN}/plan-failed.json",
            "bucket": "lake",
        },
    )
    more = _export("orders", status="MORE", rows=5, chunks=1)
    history.exited("ExportChunk", {"item": _dump(item), "export": {"result": _dump(more)}})
    drift = NewColumn(name="note", staging_type="VARCHAR", final_type="VARCHAR")
    history.exited(
        "ExportDone",
        _dump(_export("orders", status="EXPORTED", rows=7, files=2, chunks=2, new_columns=[drift])),
    )
    history.add("TaskStateEntered", {"name": "ExportChunk", "input": json.dumps({"item": _dump(crash_item)})})
    history.add("TaskFailed", {"error": "Runtime.ExitError", "cause": CRASH})
    history.exited(
        "ExportFailedCustomTarget",
        {
            "table": "crash",
            "run_id": RUN,
            "target": TARGETS["crash"],
            "status": "FAILED",
            "error": {"Error": "Runtime.ExitError", "Cause": CRASH},
        },
    )
    verdicts = [
        TableVerdict(
            table="orders",
            target=TARGETS["orders"],
            outcome="MERGED",
            rows_exported=7,
            rows_loaded=7,
            rows_changed=3,
            rows_unchanged=4,
            freshness_lag_seconds=75.0,
            reason="merged",
        ),
        TableVerdict(
            table="crash",
            target=TARGETS["crash"],
            outcome="FAILED",
            error="Runtime.ExitError",
            reason="export failed: Runtime exited with error",
        ),
    ]
    rerun = {"tables": ["crash", "ghost"], "overrides": {"crash": {"full_resync": True}}}
    summary = RunSummary(
        failed_count=2,
        failed=[
            FailedTable(table="crash", error="Runtime.ExitError", cause="export failed"),
            FailedTable(table="ghost", error="SourceObjectMissing", cause="no table 'ghost'"),
        ],
        rerun_input=rerun,
        cause=f"2 table(s) failed ... execution input {json.dumps(rerun)} (or `aurora-sync rerun ...`).",
    )
    output = VerifyOutput(
        run_id=RUN,
        done=True,
        verify_started_at="2026-01-01T00:01:00+00:00",
        tables=verdicts,
        pending=0,
        failed=1,
        summary=summary,
        database="AURORA_SYNC",
        staging_schema="STAGING",
        final_schema="FINAL",
    )
    # The state carries the counts and the report's location; the verdicts are in the report.
    report = f"s3://lake/_aurora_sync/runs/{RUN}/verify.json"
    history.reports[report] = output
    state = progress_of(output, report)
    history.exited("Verify", {"run_id": RUN, "attempt": 0, "verification": {"output": _dump(state)}})
    history.add("ExecutionFailed", {"error": "TablesFailed", "cause": summary.cause})
    return history


def _description(status: str = "FAILED", execution_input: Any = None) -> dict[str, Any]:
    return {
        "executionArn": ARN,
        "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:aurora-sync-sync",
        "name": RUN,
        "status": status,
        "input": json.dumps(execution_input if execution_input is not None else {}),
        "error": "TablesFailed" if status == "FAILED" else None,
        "cause": "2 table(s) failed" if status == "FAILED" else None,
    }


def test_a_recorded_history_reads_into_each_tables_result_through_the_models() -> None:
    history = recorded()
    result = collect(_description(), history.events, planned=PLANNED, report=history.report)

    assert result.run_id == RUN and not result.skipped
    by_table = {t.table: t for t in result.tables}
    assert [t.table for t in result.tables] == ["crash", "ghost", "orders"]
    orders = by_table["orders"]
    assert (orders.outcome, orders.rows_exported, orders.rows_changed, orders.rows_unchanged) == (
        "MERGED",
        7,
        3,
        4,
    )
    assert orders.reason is None  # a merged table's reason is the verifier's, not a failure
    assert orders.new_columns == ["note"]
    # The DDL names the export's own target, in the database and schemas the verifier reported.
    assert orders.drift_statements == [
        'ALTER TABLE "AURORA_SYNC"."STAGING"."SHOP_ORDERS" ADD COLUMN "NOTE" VARCHAR',
        'ALTER TABLE "AURORA_SYNC"."FINAL"."SHOP_ORDERS" ADD COLUMN "NOTE" VARCHAR',
    ]
    assert (by_table["ghost"].outcome, by_table["ghost"].error) == ("FAILED", "SourceObjectMissing")
    assert by_table["crash"].error == "Runtime.ExitError"
    # The verifier's summary decides: its failed tables with the overrides that heal them.
    assert result.rerun_input == {"tables": ["crash", "ghost"], "overrides": {"crash": {"full_resync": True}}}
    assert result.exit_code == 1


def test_the_rerun_keeps_the_original_overrides_of_the_failed_tables() -> None:
    original = {"tables": ["orders", "ghost"], "overrides": {"orders": {"since": 5}, "ghost": {"since": 5}}}
    history = recorded()
    result = collect(
        _description(execution_input=original), history.events, planned=PLANNED, report=history.report
    )

    assert result.rerun_input == {
        "tables": ["crash", "ghost"],
        "overrides": {"ghost": {"since": 5}, "crash": {"full_resync": True}},
    }


def test_a_crash_text_cause_is_reported_as_it_is() -> None:
    history = recorded()
    # Before the verifier: the export failure alone, its cause not JSON.
    events = [
        e for e in history.events if e["type"] not in ("TaskStateExited",) or "Verify" not in json.dumps(e)
    ]
    result = collect(_description(), events, planned=PLANNED)

    crash = {t.table: t for t in result.tables}["crash"]
    assert (crash.outcome, crash.reason) == ("FAILED", CRASH)
    assert "signal: killed" in render(result)
    # Without the verifier's summary, every table that did not reach FINAL is rerun: orders was
    # exported but never merged.
    assert result.rerun_input == {"tables": ["crash", "ghost", "orders"]}


def test_an_output_of_another_shape_is_left_out_not_raised() -> None:
    history = History()
    history.exited("Plan", {"run_id": RUN, "items": [{"table": "orders"}], "failed": []})  # another version's
    history.exited("ExportDone", "not an object")
    result = collect(_description(status="SUCCEEDED"), history.events)

    assert (result.tables, result.run_id, result.rerun_input) == ([], None, None)


def test_progress_lines_follow_the_recorded_history() -> None:
    lines: list[str] = []
    read: list[str] = []

    def plan_files(plan: PlanOutput) -> PlanFiles:
        read.extend(key for key in (plan.manifest, plan.failed_file) if key)
        return PLANNED

    history = recorded()
    progress = Progress(lines.append, plan_files, history.reports.get)
    for event in history.events:
        progress(event)

    assert read == [
        f"_aurora_sync/runs/{RUN}/round-0/items.json",
        f"_aurora_sync/runs/{RUN}/plan-failed.json",
    ]
    assert lines == [
        "plan: 2 table(s) to export (orders, crash), run sync-1",
        "plan: ghost FAILED SourceObjectMissing: no table 'ghost'",
        "export orders: chunk 1 written, 5 row(s) so far",
        "export orders: EXPORTED 7 row(s) in 2 file(s), 2 chunk(s)",
        "export crash: attempt failed: Runtime.ExitError: RequestId: 1f2e Error: Runtime exited with error: "
        "signal: killed Runtime.ExitError (retried or caught)",
        "export crash: FAILED Runtime.ExitError: RequestId: 1f2e Error: Runtime exited with error: signal: "
        "killed Runtime.ExitError",
        "merged orders: 3 row(s) changed, 4 re-read unchanged (exported 7, loaded 7; freshness lag 1m15s)",
        "failed crash: Runtime.ExitError: export failed: Runtime exited with error",
        "verify #1: done, 3 table(s): 1 merged or up to date, 2 failed "
        "(1 in the plan, 1 in the export or load)",
        "execution failed: TablesFailed",
    ]


def test_without_the_plans_files_the_progress_lines_give_its_counts() -> None:
    """No S3 client, or the files unreadable: the plan's line counts what the output says."""
    lines: list[str] = []
    progress = Progress(lines.append, lambda plan: None)
    for event in recorded().events[:1]:
        progress(event)
    assert lines == [
        "plan: 2 table(s) to export, run sync-1",
        f"plan: 1 table(s) FAILED (s3://lake/_aurora_sync/runs/{RUN}/plan-failed.json)",
    ]


def test_the_report_ends_with_the_execution_and_the_rerun_hint() -> None:
    history = recorded()
    result = collect(_description(), history.events, planned=PLANNED, report=history.report)
    lines = render(result).splitlines()

    assert lines[0].split() == [
        "TABLE",
        "OUTCOME",
        "EXPORTED",
        "LOADED",
        "CHANGED",
        "UNCHANGED",
        "DELETED",
        "LAG",
        "ERROR",
    ]
    assert lines[-3] == f"execution: {ARN} FAILED"
    assert lines[-2] == f"rerun: aurora-sync rerun {ARN}"
    assert json.loads(lines[-1].removeprefix("rerun input: ")) == result.rerun_input
    assert any(line.startswith("  schema drift in orders: source column(s) 'note'") for line in lines)


@pytest.mark.parametrize(
    ("seconds", "text"), [(4.24, "4.2s"), (187, "3m07s"), (7500, "2h05m"), (97200, "1d03h")]
)
def test_lag_text(seconds: float, text: str) -> None:
    from aurora_sync_ops.workflow.report import lag_text

    assert lag_text(seconds) == text


def test_a_distributed_run_reads_its_export_results_from_the_rounds_settled_files() -> None:
    """Issue 15: the exports ran in the export Map's children; the parent's history only names
    the rounds (AdvanceRound), and the settled tables are read from S3."""
    from aurora_sync.messages import FailedExport
    from aurora_sync_ops.workflow.history import RunFilesLocation, run_files_location

    history = recorded()
    # Keep the Plan, drop the old design's export states: they are in the children now.
    history.events = history.events[:1]
    results = {"Bucket": "lake", "Key": f"_aurora_sync/runs/{RUN}/map-results/m/manifest.json"}
    for rounds in (1, 2):
        history.exited(
            "AdvanceRound",
            {
                "run_id": RUN,
                "round": rounds - 1,
                "map": {"results": results},
                "advance": {"rounds": rounds, "next_manifest": None},
            },
        )
    assert run_files_location(history.events) == RunFilesLocation("lake", RUN, 2)
    assert run_files_location(recorded().events) is None  # the old design's history

    drift = NewColumn(name="note", staging_type="VARCHAR", final_type="VARCHAR")
    settled: list[ExportResult | FailedExport] = [
        _export("orders", status="EXPORTED", rows=7, files=2, chunks=2, new_columns=[drift]),
        FailedExport(
            table="crash",
            run_id=RUN,
            target=TARGETS["crash"],
            status="FAILED",
            error={"Error": "Runtime.ExitError", "Cause": CRASH},
        ),
    ]
    result = collect(_description(), history.events, settled, planned=PlanFiles(failed=PLANNED.failed))

    tables = {t.table: t for t in result.tables}
    assert (tables["orders"].outcome, tables["orders"].rows_exported, tables["orders"].new_columns) == (
        "EXPORTED",
        7,
        ["note"],
    )
    assert (tables["crash"].outcome, tables["crash"].error) == ("FAILED", "Runtime.ExitError")
    assert tables["ghost"].outcome == "FAILED"


def test_progress_reports_each_export_round_from_the_parents_history() -> None:
    history = History()
    results = {"Bucket": "lake", "Key": "k"}
    advance = {"rounds": 1, "next_manifest": "m", "settled": 229, "failed": 1, "unfinished": 2}
    history.exited("AdvanceRound", {"run_id": RUN, "map": {"results": results}, "advance": advance})
    lines: list[str] = []
    progress = Progress(lines.append)
    for event in history.events:
        progress(event)
    assert lines == ["export round 1: 229 table(s) or lane(s) done (1 failed), 2 resume in the next round"]


def test_without_the_verifiers_report_the_state_counts_and_its_summary_decide() -> None:
    # The report in S3 unreadable (lifecycle, access): the state's counts and bounded summary.
    history = recorded()
    lines: list[str] = []
    progress = Progress(lines.append)
    for event in history.events:
        progress(event)
    assert (
        f"verify #1: done, 2 table(s): 1 merged or up to date, 1 failed in the export or load (verdicts: s3://lake/_aurora_sync/runs/{RUN}/verify.json)"
        in lines
    )
    result = collect(_description(), history.events)
    assert result.rerun_input == {"tables": ["crash", "ghost"], "overrides": {"crash": {"full_resync": True}}}
