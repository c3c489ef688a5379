"""Verifier Lambda: the state machine's Verify state. Checks loads, runs each table's MERGE task.

Input (``aurora_sync.messages.VerifyRequest``, built by the Verify state; the Wait → Verify →
Choice loop passes the previous output back as ``progress`` and calls again while ``done`` is
false)::

    {"run_id": str, "started_at": "<ISO-8601 run start>", "attempt": int,
     "tables": [<one entry per table: the exporter's final ExportResult (status EXPORTED |
                 EMPTY, "target", keys, rows, ...), or a failed export {"table", "target",
                 "status": "FAILED", "error": {"Error": <class name>, "Cause": <message>}};
                 "target" is the Snowflake base name the planner resolved>],
     "plan_failed": n  (tables the planner could not schedule; the function reads them,
                        {"table", "error", "cause"}, from _aurora_sync/runs/<run_id>/plan-failed.json),
     "rounds": n | absent  (instead of "tables": the run's n export rounds, whose settled
                            tables the function reads from S3, _aurora_sync/runs/<run_id>/),
     "progress": <this function's previous output, or null>}

Output (``aurora_sync.messages.VerifyProgress``: counts, whatever the table count; issue 15)::

    {"run_id", "done": bool, "verify_started_at": ISO, "tables", "succeeded", "pending", "failed",
     "report": "s3://<bucket>/_aurora_sync/runs/<run_id>/verify.json",
     "summary": null | {"failed_count", "failed": [the first 20 {"table", "error", "cause"}],
                        "rerun_input": {"tables": [...]} | null, "rerun_file": s3 URI | null,
                        "cause": <text for the Fail state, bounded>}}

The verdicts are in ``report``, a ``VerifyOutput`` that each poll rewrites and the next one
resumes from (``aurora_sync.verifying.progress``, which says why that is safe)::

    {"run_id", "done", "run_started_at", "verify_started_at", "pending", "failed",
     "tables": [{"table", "target", "outcome": "MERGED" | "NOTHING_TO_DO" | "PENDING" | "FAILED",
                 "error": <class name or null>, "reason": <text or null>, "rows_exported",
                 "rows_loaded", "rows_changed" (inserted or rewritten with different values),
                 "rows_unchanged" (loaded, changed nothing: re-reads), "files", "files_loaded",
                 "missing": [first 10 keys not loaded], "refreshed_at": ISO | null,
                 "merge_query_id": str | null, "source_time": ISO | null,
                 "freshness_lag_seconds": float | null,
                 "key_rows": int | null, "rows_deleted": int | null  (runs with a key
                 snapshot: its keys, and the FINAL rows removed because the source lacks them),
                 "new_columns": [{"name", "staging_type", "final_type"}]  (schema drift the
                 export saw)}],
     "database", "staging_schema", "final_schema": where the tables are, for readers' DDL,
     "summary": null | the RunSummary naming every failed table, with the whole rerun input}

``summary`` is set once ``done``: the Report state fails the execution with ``summary.cause``
when ``failed_count`` > 0. The cause names the failed tables (planner failures included) with
their errors as far as 16,000 characters allow, then "and K more" pointing at the report, and
the input that reruns only them, or the ``rerun.json`` that holds it when it is too long to
quote: an execution's cause is at most 32,768 characters (``aurora_sync.verifying.verify``).

A run with a key snapshot (``hard_deletes: reconcile``, mode ``full``) is reconciled after its
MERGE task succeeded (``aurora_sync.verifying.reconciliation``); its table fails with
``KeySnapshotIncomplete`` (nothing deleted) or ``RowsMissing`` (FINAL lacks source rows; the
reason names the full-resync rerun input).

On the call that settles every table (``done``) it reports the run: a handful of metrics without a
per-table dimension (tables failed, row counts, ``StalestTableAgeSeconds``: the oldest FINAL data
of every enabled table, see ``aurora_sync.table_freshness``) and one ``table synced`` log line per
table with its verdict and age.

The function never sleeps. Per-table problems are outcomes (see ``aurora_sync.verifying.decide``);
errors that concern the whole call (Snowflake unreachable or refusing us, Vault) are raised as
the error taxonomy's classes, which the state machine retries when transient.

Each table's objects are the ``target`` its export carries, never a config read now. The table
configs (SSM) are read for one thing only: whether soft deletes remove FINAL rows (mode
"delete"), which lets FINAL lack source keys and so turns off a key snapshot's missing-rows and
count checks. When SSM cannot be read the tables are still verified, with those checks off: the
lenient side, which can miss a lost row but never fails a correct run.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from aurora_sync.config import LoadedTable, load_table_configs
from aurora_sync.connections import warehouse_connection
from aurora_sync.errors import ConfigError, SyncError, bounded_failures
from aurora_sync.exporting.rounds import read_plan_failed, read_settled
from aurora_sync.ledger import Ledger, last_merged_source_times
from aurora_sync.messages import VerifyOutput, parse_verify_request
from aurora_sync.observability import logger, metrics, tracer
from aurora_sync.run_files import RunFiles
from aurora_sync.settings import RuntimeSettings, runtime_settings
from aurora_sync.table_freshness import RunTable, TableAge, run_tables, stalest, table_ages
from aurora_sync.verifying import progress
from aurora_sync.verifying.act import verify
from aurora_sync.verifying.verify import Limits, Schemas


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@bounded_failures
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_verify_request(event)
    settings = runtime_settings()
    files = RunFiles.of(settings)
    if request.rounds is not None:
        # Read on every call (one small GET per round): the state carries no per-table list.
        settled = read_settled(files, request.run_id, request.rounds)
        request = request.model_copy(update={"tables": settled})
    # The tables that failed in the plan, for the report: one small GET, only when it had any.
    plan_failed = read_plan_failed(files, request.run_id, request.plan_failed) if request.plan_failed else []
    # The previous poll's verdicts, from the run file its progress names (issue 15).
    request = progress.resume(files, request)
    logger.append_keys(run_id=request.run_id)
    configs = table_configs(settings, [t.table for t in request.tables])
    with closing(warehouse_connection(query_tag=f"aurora-sync:verifier:{request.run_id}")) as conn:
        if not conn.database:
            raise ConfigError(
                "the Snowflake session has no current database.",
                fix="set 'database' in the Snowflake secret in Vault",
            )
        output = verify(
            conn,
            request,
            schemas=Schemas(
                conn.database, settings.snowflake_staging_schema, settings.snowflake_final_schema
            ),
            limits=Limits(
                refresh_after=timedelta(seconds=settings.load_refresh_after_seconds),
                load_timeout=timedelta(seconds=settings.load_timeout_seconds),
                merge_timeout=timedelta(seconds=settings.merge_timeout_seconds),
                loads_per_call=settings.verify_loads_per_call,
            ),
            configs=configs,
            plan_failed=plan_failed,
        )
        ages: list[TableAge] = []
        if output.done:
            entries = run_tables(output.tables, plan_failed, configs)
            ages = table_ages(entries, _last_merged(conn, settings, entries), now=datetime.now(UTC))
    # Written before the run's metrics: a failed write is retried, and metrics stay once per run.
    output, state = progress.record(files, request, output, plan_failed)
    if output.done:
        report_run(output, ages)
    logger.info(
        "verification done",
        extra={
            "done": output.done,
            "pending": output.pending,
            "failed": output.failed,
            "attempt": request.attempt,
        },
    )
    return state.model_dump(mode="json")


def table_configs(settings: RuntimeSettings, names: list[str]) -> dict[str, LoadedTable]:
    """The run's table configs by name; re-read once uncached when a table is not in the cache."""
    try:
        found = _loaded(load_table_configs(settings.config_ssm_path))
        if any(name not in found for name in names):
            found = _loaded(load_table_configs(settings.config_ssm_path, max_age=0))
    except SyncError as exc:
        logger.warning(
            "table configs unavailable; verifying without freshness",
            extra={"error": type(exc).__name__, "cause": str(exc)},
        )
        return {}
    return found


def _last_merged(conn: Any, settings: RuntimeSettings, entries: Sequence[RunTable]) -> dict[str, datetime]:
    """The ledger's last merged source time per target; a failure to read it costs the run's
    freshness figure for the tables this run did not merge, never the run itself (its tables are
    settled)."""
    ledger = Ledger(conn.database, settings.snowflake_staging_schema)
    try:
        return last_merged_source_times(conn, ledger, sorted({e.target for e in entries}))
    except SyncError as exc:
        logger.warning(
            "export ledger unavailable; stalest age from this run's tables only",
            extra={"error": type(exc).__name__, "cause": str(exc)},
        )
        return {}


def _loaded(results: list[Any]) -> dict[str, LoadedTable]:
    return {r.name: r for r in results if isinstance(r, LoadedTable)}


def report_run(output: VerifyOutput, ages: Sequence[TableAge]) -> None:
    """Once per run (the call that settles every table): the run's metrics, none per table, and
    one log line per table. Per-table metrics would cost $0.30 a month each (docs/operations.md,
    "What monitoring costs"); the freshness alarm needs only the stalest age, and its log line
    names the table."""
    assert output.summary is not None  # set on the call that is done
    metrics.add_metric(name="TablesFailed", unit=MetricUnit.Count, value=output.summary.failed_count)
    metrics.add_metric(
        name="RowsExported", unit=MetricUnit.Count, value=sum(v.rows_exported for v in output.tables)
    )
    metrics.add_metric(
        name="RowsLoaded", unit=MetricUnit.Count, value=sum(v.rows_loaded for v in output.tables)
    )
    metrics.add_metric(
        name="RowsChanged", unit=MetricUnit.Count, value=sum(v.rows_changed for v in output.tables)
    )
    metrics.add_metric(
        name="RowsUnchanged", unit=MetricUnit.Count, value=sum(v.rows_unchanged for v in output.tables)
    )
    load_errors = sum(
        1 for v in output.tables if v.outcome == "FAILED" and (v.error or "").startswith("Load")
    )
    metrics.add_metric(name="LoadErrors", unit=MetricUnit.Count, value=load_errors)
    oldest = stalest(ages)
    if oldest is not None:
        metrics.add_metric(
            name="StalestTableAgeSeconds", unit=MetricUnit.Seconds, value=oldest.age_seconds or 0.0
        )
    for age in ages:
        (logger.warning if age.entry.failed else logger.info)("table synced", extra=age.log_fields())
    if oldest is not None:
        logger.info(
            "stalest table",
            extra={
                "table": oldest.entry.table,
                "age_seconds": oldest.age_seconds,
                "outcome": oldest.entry.outcome,
            },
        )
