"""Planner Lambda: the state machine's Plan state. Decides what this run exports, table by table.

Event (the Plan state builds it; ``execution`` comes from ``$$`` because a function's
environment cannot name its own state machine in SAM without a circular dependency)::

    {"input": <the execution input>,
     "execution": {"id": "<execution ARN>", "name": "<name>", "start_time": "<ISO-8601>",
                   "state_machine_arn": "<state machine ARN>"}}

``input`` is ``{}`` or EventBridge's scheduled event (every enabled table), or a rerun such as
``{"tables": ["orders", "items"], "overrides": {"orders": {"since": "2024-01-01T00:00:00Z"},
"items": {"full_resync": true}}}``; anything else (unknown keys or tables, a disabled table named
explicitly, an override outside the run, ``since`` with ``full_resync``) is a ``ConfigError``.
Without ``execution`` (``sam local invoke``) the run id is a random hex and single flight is off.

Output (``aurora_sync.messages.PlanOutput``): counts and keys, never a list of tables::

    {"run_id", "started_at", "skip": bool, "skip_reason": str | null, "tables_planned": n,
     "work_items": n, "failed": n, "bucket": "<data lake bucket>" | null,
     "manifest": "<S3 key>" | null, "failed_file": "<S3 key>" | null}

``manifest`` is round 0's manifest (``aurora_sync.exporting.rounds``): the work items in
batches, one per export child execution, which the export Distributed Map reads (issue 15);
``failed_file`` lists the tables that failed in the plan as ``{"table", "error", "cause"}``,
which the verifier reads for the run's report and rerun input. Both are written under
``_aurora_sync/runs/<run_id>/`` in the data lake bucket, each only when it has entries, so a
skipped run writes nothing.

``skip`` is true when an earlier RUNNING execution of the same state machine exists (single
flight: ordered by start time, then name; this execution's own ARN never counts) or when there
is nothing to do. Invalid table configs, missing source or Snowflake objects and unsafe source
type changes become ``failed`` entries and the other tables go on; errors that concern the whole
run (SSM, Vault, Aurora or Snowflake unreachable or denied) are raised as the error taxonomy's
classes, which the state machine retries or reports.

Schema step, before anything is exported (``aurora_sync.planning.tables``): a table whose source
columns changed gets its STAGING/FINAL columns added or widened, its MERGE task and pipe
re-created, and its work item carries the fingerprint of the layout the pipe now loads; a column
whose values FINAL lacks is filled by a full, chunked export of the table in this run.

Lanes, last (``aurora_sync.planning.lanes``): a full or initial export of a table larger than its
``rows_per_lane`` becomes one work item per primary-key range, exported concurrently. Each lane is
a whole work item plus its ``lane``: 78 bytes more for a middle lane of a one-column key with two
7-digit bounds (measured in tests/unit/test_lanes.py), so a table of 8 lanes costs 8 items.

Payload size: the output is the same size whatever the number of tables (measured at 10 and
2,000 tables with 63-character names, and 2,000 failed in the plan, in
tests/unit/test_planning.py), so the planner has no table budget any more. A work item is about
320 bytes for a table with ``columns`` null, a one-column key, a timestamp watermark, a
60-character run id and its layout fingerprint (23 of those bytes), plus about 19 bytes per
listed column of 15 characters, and len(target) + 14 bytes when the config sets a ``target``
(measured in tests/unit/test_planning.py and tests/unit/test_layout.py): it still matters in the
export child's states, which carry one item, and in a child's input, one batch of at most
ExportBatchSize items (25 items of 50 listed columns: about 31 KB). The one input that still
grows with tables is a rerun's execution input naming them (``{"tables": [...]}``), which
StartExecution itself refuses over 256 KB. The sample events in events/ carry no
``execution``, so ``sam local invoke`` works outside Step Functions.
"""

from __future__ import annotations

import uuid
from contextlib import closing
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from aurora_sync.config import load_table_configs
from aurora_sync.connections import warehouse_connection
from aurora_sync.errors import bounded_failures
from aurora_sync.exporting.rounds import Batching, write_first_round, write_plan_failed
from aurora_sync.observability import logger, metrics, tracer
from aurora_sync.planning.executions import running_executions
from aurora_sync.planning.lanes import split_lanes
from aurora_sync.planning.plan import Plan, earlier_execution, now_iso, parse_event, select_run
from aurora_sync.planning.tables import plan_tables, source_catalogs
from aurora_sync.run_files import RunFiles
from aurora_sync.settings import runtime_settings


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@bounded_failures
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request, execution = parse_event(event)
    run_id = execution.name if execution else uuid.uuid4().hex
    started_at = execution.start_time.isoformat(timespec="milliseconds") if execution else now_iso()
    logger.append_keys(run_id=run_id)
    plan = Plan(run_id=run_id, started_at=started_at)

    blocker = earlier_execution(execution, running_executions(execution)) if execution else None
    if blocker is not None:
        plan.skip_reason = (
            f"execution {blocker.name} of the same state machine, started {blocker.start_time.isoformat()}, "
            "is still running (single flight)"
        )
        return _finish(plan, disabled=0)

    settings = runtime_settings()
    # Fresh on every run (max_age=0): a planner runs once per execution, and a warm container's
    # cache would make a rerun right after a config fix plan with the broken config again.
    selection = select_run(load_table_configs(settings.config_ssm_path, max_age=0), request)
    plan.failed.extend(selection.failed)
    if selection.tables:
        source = source_catalogs(selection.tables)
        with closing(warehouse_connection(query_tag=f"aurora-sync:planner:{run_id}")) as conn:
            plan_tables(
                conn, plan, selection.tables, catalogs=source.catalogs, request=request, settings=settings
            )
        split_lanes(plan, selection.tables, catalogs=source.catalogs, estimates=source.estimates)
    if plan.items or plan.failed:
        files = RunFiles.of(settings)
        plan.bucket = files.bucket
        if plan.items:
            batching = Batching(settings.export_batch_size, settings.max_concurrency)
            plan.manifest = write_first_round(files, run_id, plan.items, batching)
        if plan.failed:
            plan.failed_file = write_plan_failed(files, run_id, plan.failed)
    for entry in plan.failed:
        logger.warning("table failed", extra=entry.model_dump())
    if not plan.items and not plan.failed:
        plan.skip_reason = f"no enabled tables under {settings.config_ssm_path}"
    return _finish(plan, disabled=len(selection.disabled))


def _finish(plan: Plan, *, disabled: int) -> dict[str, Any]:
    output = plan.output()
    metrics.add_metric(name="TablesPlanned", unit=MetricUnit.Count, value=output["tables_planned"])
    metrics.add_metric(name="TablesSkipped", unit=MetricUnit.Count, value=disabled)
    metrics.add_metric(name="RunsSkipped", unit=MetricUnit.Count, value=1 if plan.skip else 0)
    logger.info(
        "plan ready",
        extra={
            "skip": plan.skip,
            "skip_reason": plan.skip_reason,
            "tables_planned": output["tables_planned"],
            "work_items": output["work_items"],
            "tables_failed": output["failed"],
        },
    )
    return output
