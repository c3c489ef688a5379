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

Output (the Map's input)::

    {"run_id", "started_at", "skip": bool, "skip_reason": str | null,
     "items": [<WorkItem JSON, defaults left out>], "failed": [{"table", "error", "cause"}],
     "tables_planned": n}

``skip`` is true when an earlier RUNNING execution of the same state machine exists (single
flight: ordered by start time, then name; this execution's own ARN never counts) or when there
is nothing to do. Invalid table configs, missing source or Snowflake objects and unsafe source
type changes become ``failed`` entries and the other tables go on; errors that concern the whole
run (SSM, Vault, Aurora or Snowflake unreachable or denied) are raised as the error taxonomy's
classes, which the state machine retries or reports.

Schema step (``aurora_sync.schema_evolution``), before anything is exported: the source catalog
of every planned table (one statement on Aurora), STAGING's and FINAL's columns (the watermarks'
INFORMATION_SCHEMA statement) and every pipe's COPY (``SHOW PIPES``). A table whose source columns
changed gets its STAGING/FINAL columns added or widened, its MERGE task and pipe re-created, and
its work item carries the fingerprint of the layout the pipe now loads, which the exporter checks
before writing a file. A column whose values FINAL lacks (added at the source, renamed, dropped and
added again) is filled by a full, chunked export of the table in this run, decided from the export
ledger; each new layout's columns are recorded there.

Payload size: a work item is about 320 bytes for a table with ``columns`` null, a one-column
key, a timestamp watermark, a 60-character run id and its layout fingerprint (23 of those bytes),
plus about 19 bytes per listed column of 15 characters (measured in tests/unit/test_planning.py
and tests/unit/test_layout.py). The plan must fit one Step Functions state (256 KB); the
planner keeps it under 240 KB: about 750 tables replicating all columns, or about 200 tables
listing 50 columns each. Beyond that it raises ``ConfigError``
telling to split the tables across state machines (each with its own CONFIG_SSM_PATH) or to run
subsets; it never emits an oversized payload. The sample events in events/ carry no
``execution``, so ``sam local invoke`` works outside Step Functions.
"""

from __future__ import annotations

import uuid
from contextlib import closing
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from aurora_sync.config import LoadedTable, load_table_configs
from aurora_sync.connections import source_connection, warehouse_connection
from aurora_sync.errors import ConfigError, ConfigStoreUnavailable
from aurora_sync.layout import incomplete_columns, loads
from aurora_sync.ledger import Ledger, record_layouts
from aurora_sync.naming import SnowflakeObjects
from aurora_sync.observability import logger, metrics, tracer
from aurora_sync.planning import (
    ExecutionContext,
    FailedTable,
    Plan,
    RunningExecution,
    RunRequest,
    choose_window,
    earlier_execution,
    now_iso,
    parse_event,
    select_run,
    work_item,
)
from aurora_sync.schema_evolution import (
    apply_evolution,
    keys_table_name,
    layout_record,
    needs_keys,
    plan_evolution,
    read_pipes,
    read_warehouse_columns,
)
from aurora_sync.settings import RuntimeSettings, runtime_settings
from aurora_sync.source_catalog import SourceColumn, read_catalogs, read_row_estimates
from aurora_sync.source_db import source_errors
from aurora_sync.sync_modes import size_warning
from aurora_sync.watermarks import read_watermarks


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
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
        catalogs = source_catalogs(selection.tables)
        with closing(warehouse_connection(query_tag=f"aurora-sync:planner:{run_id}")) as conn:
            plan_tables(conn, plan, selection.tables, catalogs=catalogs, request=request, settings=settings)
    for entry in plan.failed:
        logger.warning("table failed", extra=entry.to_dict())
    if not plan.items and not plan.failed:
        plan.skip_reason = f"no enabled tables under {settings.config_ssm_path}"
    return _finish(plan, disabled=len(selection.disabled))


def source_catalogs(tables: list[LoadedTable]) -> dict[str, list[SourceColumn] | None]:
    """Every planned table's source columns, in one statement on Aurora (None: no such table);
    tables of a mode that reads the whole table are checked against its size (one more)."""
    relations = sorted({(t.config.schema_name, t.config.table) for t in tables})
    whole = sorted(
        {
            (t.config.schema_name, t.config.table)
            for t in tables
            if t.config.mode != "cursor" or t.config.hard_deletes == "reconcile"
        }
    )
    conn = source_connection(application_name="aurora-sync-planner")
    try:
        with (
            source_errors(
                f"reading the source catalog of {len(relations)} table(s)", conn=conn, relations=relations
            ),
            conn.cursor() as cur,
        ):
            found = read_catalogs(cur, relations)
            estimates = read_row_estimates(cur, whole)
        conn.rollback()
    finally:
        conn.close()
    for table in tables:
        config = table.config
        rows = estimates.get((config.schema_name, config.table), -1)
        relation = f"{config.schema_name}.{config.table}"
        message = size_warning(
            config.mode, config.hard_deletes, rows, relation=relation, every=config.reconcile_every
        )
        if message is not None:
            logger.warning("table mode costly at this size", extra={"table": table.name, "warning": message})
    return {t.name: found.get((t.config.schema_name, t.config.table)) for t in tables}


def plan_tables(
    conn: Any,
    plan: Plan,
    tables: list[LoadedTable],
    *,
    catalogs: dict[str, list[SourceColumn] | None],
    request: RunRequest,
    settings: RuntimeSettings,
) -> None:
    """The schema step, then each table's window and work item (see the module docstring)."""
    database = conn.database
    if not database:
        raise ConfigError(
            "the Snowflake session has no current database.",
            fix="set 'database' in the Snowflake secret in Vault",
        )
    staging, final = settings.snowflake_staging_schema, settings.snowflake_final_schema
    columns = read_warehouse_columns(
        conn,
        database=database,
        staging_schema=staging,
        final_schema=final,
        # KEYS tables too: the schema step creates (or re-creates) those of reconciling tables.
        targets=sorted(
            {t.target for t in tables} | {keys_table_name(t.target) for t in tables if needs_keys(t)}
        ),
    )
    pipes = read_pipes(conn, database=database, staging_schema=staging)
    evolutions, ready = {}, []
    for table in tables:
        objects = SnowflakeObjects(database, staging, final, table.target)
        evolution = plan_evolution(table, catalogs[table.name], columns, pipes, objects)
        if evolution.statements and evolution.error is None:
            apply_evolution(conn, evolution)
            if evolution.error is None:
                logger.warning("table schema changed in Snowflake", extra=evolution.summary())
        if evolution.error is not None:
            plan.failed.append(FailedTable.of(table.name, evolution.error))
            continue
        evolutions[table.name] = evolution
        ready.append(table)
    watermarks = read_watermarks(
        conn, ready, staging_schema=staging, final_schema=final, database=database, columns=columns
    )
    layouts = []
    for table in ready:
        state, evolution = watermarks[table.name], evolutions[table.name]
        if state.error is not None:
            plan.failed.append(FailedTable.of(table.name, state.error))
            continue
        override = request.overrides.get(table.name)
        window = choose_window(table, watermark=state.value, cursor_type=state.cursor_type, override=override)
        incomplete = incomplete_columns(evolution.layout, loads(state.layout_columns))
        if incomplete and window.watermark is not None:
            # FINAL lacks these columns' values for rows the window does not reach: export the
            # table as a first run would (every row, or from initial_watermark), in chunks.
            window = choose_window(table, watermark=None, cursor_type=state.cursor_type)
            logger.warning(
                "table re-exported for new column values",
                extra={"table": table.name, "columns": [c.name for c in incomplete]},
            )
        plan.items.append(
            work_item(plan.run_id, table, window, layout=evolution.fingerprint, reconcile=state.reconcile)
        )
        if state.layout != evolution.fingerprint:
            layouts.append(layout_record(evolution))
        logger.info("table planned", extra={"table": table.name, "window": window.model_dump()})
    record_layouts(conn, Ledger(database, staging), layouts)


def _finish(plan: Plan, *, disabled: int) -> dict[str, Any]:
    output = plan.output()
    metrics.add_metric(name="TablesPlanned", unit=MetricUnit.Count, value=len(plan.items))
    metrics.add_metric(name="TablesFailed", unit=MetricUnit.Count, value=len(plan.failed))
    metrics.add_metric(name="TablesSkipped", unit=MetricUnit.Count, value=disabled)
    metrics.add_metric(name="RunsSkipped", unit=MetricUnit.Count, value=1 if plan.skip else 0)
    logger.info(
        "plan ready",
        extra={
            "skip": plan.skip,
            "skip_reason": plan.skip_reason,
            "tables_planned": len(plan.items),
            "tables_failed": len(plan.failed),
        },
    )
    return output


def running_executions(execution: ExecutionContext) -> list[RunningExecution]:
    """RUNNING executions of this execution's state machine (states:ListExecutions)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "stepfunctions",
        config=Config(connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 3}),
    )
    arn = execution.state_machine_arn
    found: list[RunningExecution] = []
    try:
        pages = client.get_paginator("list_executions").paginate(stateMachineArn=arn, statusFilter="RUNNING")
        for page in pages:
            found.extend(
                RunningExecution(e["executionArn"], e["name"], e["startDate"]) for e in page["executions"]
            )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code.startswith("AccessDenied"):
            raise ConfigError(
                f"access denied for states:ListExecutions on {arn} ({code}).",
                fix="grant the planner's role states:ListExecutions on its state machine",
            ) from None
        if code in {"ThrottlingException", "TooManyRequestsException"} or status >= 500:
            raise ConfigStoreUnavailable(
                f"states:ListExecutions on {arn} refused for now ({code}).", fix="the run retries"
            ) from None
        raise ConfigError(
            f"states:ListExecutions on {arn} failed ({code}).",
            fix="pass $$.StateMachine.Id as execution.state_machine_arn in the Plan state",
        ) from None
    except BotoCoreError as exc:
        raise ConfigStoreUnavailable(
            f"Step Functions could not be reached for states:ListExecutions on {arn} ({type(exc).__name__}).",
            fix="the run retries; check the Step Functions endpoint / VPC endpoint of the function",
        ) from None
    return found
