"""An execution's history read into per-table results and the input that reruns its failures.

Each state's output is read through the state contract's models (the one place the CLI imports
them), so a renamed field fails here, in a unit test on a recorded history, rather than as a
silently empty report. An output that does not fit its model (an execution of another version)
is left out, like an event that never happened; a cause that is not JSON (a Lambda crash text)
is reported as it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

# The state contract: every state output the CLI reads is one of these (imported here only).
from aurora_sync.messages import (
    ExportResult,
    FailedExport,
    FailedTable,
    PlanOutput,
    RerunInput,
    ResultWriterDetails,
    RunSummary,
    TableVerdict,
    VerifyOutput,
    VerifyProgress,
    WorkItem,
)
from aurora_sync.naming import SnowflakeObjects
from aurora_sync.snowflake_objects import new_column_statements
from aurora_sync.verifying import lanes

# progress.py reads the same models from here.
__all__ = [
    "FAILED_EXPORT_STATES",
    "SUCCESS_OUTCOMES",
    "TERMINAL",
    "AdvanceRoundOutput",
    "ExportChunkOutput",
    "ExportResult",
    "FailedExport",
    "PlanFiles",
    "PlanOutput",
    "RunFilesLocation",
    "RunResult",
    "TableResult",
    "VerifyOutput",
    "VerifyProgress",
    "VerifyStateOutput",
    "cause_message",
    "collect",
    "event_details",
    "json_or_none",
    "last_plan",
    "read_as",
    "rerun_input",
    "run_files_location",
    "s3_location",
    "state_output",
    "state_outputs",
    "verify_progress",
]

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
SUCCESS_OUTCOMES = frozenset({"MERGED", "NOTHING_TO_DO"})
# The Map iteration's last state after a failed export, each emitting a FailedExport: the second
# keeps a custom target (the ASL's FailedTableTarget chooses).
FAILED_EXPORT_STATES = ("ExportFailed", "ExportFailedCustomTarget")

M = TypeVar("M", bound=BaseModel)


class ExportChunkOutput(BaseModel):
    """What the ExportChunk state passes on: the item it exported, and the exporter's result."""

    model_config = ConfigDict(extra="allow", frozen=True)

    export: dict[str, ExportResult]


class VerifyStateOutput(BaseModel):
    """What the Verify state passes on: its input (attempt, ...) and the verifier's progress,
    whose ``report`` (the run's verify.json) holds the verdicts (issue 15)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    attempt: int = 0
    verification: dict[str, VerifyProgress]


def verify_progress(events: Sequence[Mapping[str, Any]]) -> VerifyProgress | None:
    """The last Verify state's progress (None before the verifier ran)."""
    verifications = state_outputs(events, "Verify", VerifyStateOutput)
    return verifications[-1].verification.get("output") if verifications else None


def s3_location(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` as (bucket, key)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


class _MapResults(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    results: ResultWriterDetails


class _Advance(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    rounds: int
    settled: int = 0
    failed: int = 0
    unfinished: int = 0


class AdvanceRoundOutput(BaseModel):
    """What the AdvanceRound state passes on: the run, its round's Map results, the rounds done."""

    model_config = ConfigDict(extra="allow", frozen=True)

    run_id: str
    map: _MapResults
    advance: _Advance


@dataclass(frozen=True)
class RunFilesLocation:
    """Where an execution's export results are (issue 15's Distributed Map): the settled tables
    of rounds 0 to ``rounds`` - 1 under ``_aurora_sync/runs/<run_id>/`` in ``bucket``."""

    bucket: str
    run_id: str
    rounds: int


def run_files_location(events: Sequence[Mapping[str, Any]]) -> RunFilesLocation | None:
    """From the last AdvanceRound state's output; None for a run that exported no round (or an
    execution of a version whose exports are in its own history)."""
    rounds = state_outputs(events, "AdvanceRound", AdvanceRoundOutput)
    if not rounds:
        return None
    last = rounds[-1]
    return RunFilesLocation(last.map.results.bucket, last.run_id, last.advance.rounds)


@dataclass(frozen=True)
class PlanFiles:
    """What the planner wrote to the run's files (the Plan state's output holds only their
    counts and keys): round 0's work items and the tables that failed in the plan."""

    items: Sequence[WorkItem] = ()
    failed: Sequence[FailedTable] = ()


def last_plan(events: Sequence[Mapping[str, Any]]) -> PlanOutput | None:
    """The Plan state's output (the last one: a retried Plan exits once)."""
    plans = state_outputs(events, "Plan", PlanOutput)
    return plans[-1] if plans else None


# --- events ------------------------------------------------------------------------------------
def event_details(event: Mapping[str, Any]) -> dict[str, Any]:
    """The ``...EventDetails`` of a history event (each event type has its own key)."""
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def json_or_none(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def read_as(model: type[M], document: Any) -> M | None:
    """``document`` as ``model``, or None when it is not one (another version's payload)."""
    if not isinstance(document, dict):
        return None
    try:
        return model.model_validate(document)
    except ValidationError:
        return None


def state_output(model: type[M], event: Mapping[str, Any]) -> M | None:
    """A ``...StateExited`` event's output as ``model`` (None for other events)."""
    return read_as(model, json_or_none(event_details(event).get("output")))


def state_outputs(events: Iterable[Mapping[str, Any]], state: str, model: type[M]) -> list[M]:
    """Every output of ``state`` that reads as ``model``, oldest first."""
    outputs = []
    for event in events:
        if str(event.get("type", "")).endswith("StateExited") and event_details(event).get("name") == state:
            output = state_output(model, event)
            if output is not None:
                outputs.append(output)
    return outputs


def cause_message(cause: str | None) -> str:
    """A Lambda failure's cause is the runtime's JSON; a person wants its errorMessage."""
    parsed = json_or_none(cause)
    if isinstance(parsed, dict) and parsed.get("errorMessage"):
        return str(parsed["errorMessage"])
    return str(cause or "")


# --- results -----------------------------------------------------------------------------------
@dataclass
class TableResult:
    table: str
    outcome: str  # the verifier's MERGED/NOTHING_TO_DO/PENDING/FAILED, or PLANNED/EXPORTED before it
    rows_exported: int | None = None
    rows_loaded: int | None = None
    rows_changed: int | None = None  # FINAL rows inserted or rewritten with different values
    rows_unchanged: int | None = None  # loaded rows that changed nothing (the lookback's re-reads)
    rows_deleted: int | None = None  # removed from FINAL by a key snapshot (hard deletes)
    freshness_lag_seconds: float | None = None
    source_time: str | None = None  # FINAL matches the source as of this snapshot time
    error: str | None = None
    reason: str | None = None
    # Schema drift: source columns the config's ``columns`` leave out, and the statements that
    # add them to STAGING and FINAL (empty when the verifier did not say where those are).
    new_columns: list[str] = field(default_factory=list)
    drift_statements: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of_verdict(cls, verdict: TableVerdict) -> TableResult:
        return cls(
            table=verdict.table,
            outcome=verdict.outcome,
            rows_exported=verdict.rows_exported,
            rows_loaded=verdict.rows_loaded,
            rows_changed=verdict.rows_changed,
            rows_unchanged=verdict.rows_unchanged,
            rows_deleted=verdict.rows_deleted,
            freshness_lag_seconds=verdict.freshness_lag_seconds,
            source_time=verdict.source_time,
            error=verdict.error,
            reason=verdict.reason if verdict.outcome != "MERGED" else None,
        )


@dataclass
class RunResult:
    execution_arn: str
    state_machine_arn: str
    name: str
    status: str
    input: dict[str, Any]
    run_id: str | None = None
    skip_reason: str | None = None
    tables: list[TableResult] = field(default_factory=list)
    error: str | None = None
    cause: str | None = None
    rerun_input: dict[str, Any] | None = None

    @property
    def skipped(self) -> bool:
        return self.skip_reason is not None

    @property
    def failed(self) -> bool:
        return self.status != "SUCCEEDED" or any(t.outcome == "FAILED" for t in self.tables)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "execution_arn": self.execution_arn,
            "state_machine_arn": self.state_machine_arn,
            "name": self.name,
            "status": self.status,
            "input": self.input,
            "run_id": self.run_id,
            "skipped": self.skipped,
            "skip_reason": self.skip_reason,
            "tables": [t.as_dict() for t in self.tables],
            "error": self.error,
            "cause": self.cause,
            "rerun_input": self.rerun_input,
            "rerun_command": f"aurora-sync rerun {self.execution_arn}" if self.rerun_input else None,
        }


def collect(
    description: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    settled: Sequence[ExportResult | FailedExport] = (),
    planned: PlanFiles = PlanFiles(),
    report: VerifyOutput | None = None,
) -> RunResult:
    """Per-table results and the rerun input of an ended (or running) execution. ``settled``: the
    export results the run's rounds settled in S3 (``run_files_location``), for an execution
    whose exports ran in the Distributed Map's children rather than in its own history;
    ``planned``: the plan's work items and failed tables, read from the Plan output's keys;
    ``report``: the verifier's report in S3 (the last Verify state's ``report``), the verdicts."""
    execution_input = json_or_none(description.get("input")) or {}
    result = RunResult(
        execution_arn=str(description["executionArn"]),
        state_machine_arn=str(description.get("stateMachineArn", "")),
        name=str(description.get("name", "")),
        status=str(description["status"]),
        input=execution_input if isinstance(execution_input, dict) else {},
        error=description.get("error"),
        cause=description.get("cause"),
    )
    tables: dict[str, TableResult] = {}
    plan = last_plan(events)
    if plan is not None:
        result.run_id = plan.run_id
        if plan.skip:
            result.skip_reason = plan.skip_reason or "the planner skipped the run"
        for item in planned.items:
            tables[item.table] = TableResult(table=item.table, outcome="PLANNED")
        for failure in planned.failed:
            tables[failure.table] = TableResult(
                table=failure.table, outcome="FAILED", error=failure.error, reason=failure.cause
            )
    # A table split into lanes has one ExportDone per lane: counted as one, as the verifier does.
    finished = [*state_outputs(events, "ExportDone", ExportResult), *settled]
    exports = [e for e in lanes.combine(finished) if isinstance(e, ExportResult)]
    for export in exports:
        tables[export.table] = TableResult(table=export.table, outcome="EXPORTED", rows_exported=export.rows)
    failures = [f for state in FAILED_EXPORT_STATES for f in state_outputs(events, state, FailedExport)]
    for failed in [*failures, *(f for f in settled if isinstance(f, FailedExport))]:
        tables[failed.table] = TableResult(
            table=failed.table, outcome="FAILED", error=failed.error.error, reason=failed.message
        )
    verified = report
    for verdict in verified.tables if verified is not None else []:
        tables[verdict.table] = TableResult.of_verdict(verdict)
    _drift(tables, exports, verified)
    result.tables = sorted(tables.values(), key=lambda t: t.table)
    # The report's summary names every failed table; without the report (unreadable), the
    # state's names the first few, and its rerun input only when it was short enough.
    state = verify_progress(events)
    summary = verified.summary if verified is not None else (state.summary if state is not None else None)
    result.rerun_input = rerun_input(result, summary, plan is not None)
    return result


def _drift(
    tables: Mapping[str, TableResult], exports: Sequence[ExportResult], verified: VerifyOutput | None
) -> None:
    """Each table's schema drift from its export, the DDL naming the objects the export carries
    (its planned target) in the database and schemas the verifier reported."""
    for export in exports:
        if export.table not in tables or not export.new_columns:
            continue
        table = tables[export.table]
        table.new_columns = [c.name for c in export.new_columns]
        if verified and verified.database and verified.staging_schema and verified.final_schema:
            objects = SnowflakeObjects(
                verified.database, verified.staging_schema, verified.final_schema, export.target_name
            )
            table.drift_statements = new_column_statements(objects, export.new_columns)


def rerun_input(result: RunResult, summary: RunSummary | None, planned: bool) -> dict[str, Any] | None:
    """The input that repeats only what did not reach FINAL, keeping the original overrides.

    The verifier's summary names the failed tables and the overrides that heal them (a table
    missing rows: a full resync). Without a summary (the run failed before the verifier was
    done) the run's tables that did not succeed are rerun, or the same input when nothing was
    planned. The execution's cause repeats the summary for the console; it is not read here.
    """
    if result.status == "RUNNING" or (result.status == "SUCCEEDED" and not result.failed):
        return None
    names: list[str] | None = None
    healing: dict[str, Any] = {}
    if summary is not None and summary.failed_count and summary.rerun_input is not None:
        asked = read_as(RerunInput, summary.rerun_input)
        if asked is not None:
            names = list(asked.tables or [])
            healing = {
                name: override.model_dump(mode="json", exclude_defaults=True)
                for name, override in asked.overrides.items()
            }
        else:
            names = [failed.table for failed in summary.failed]
    if names is None:
        if not planned or not result.tables:
            return dict(result.input)  # nothing was planned: the same input, once the cause is fixed
        names = [t.table for t in result.tables if t.outcome not in SUCCESS_OUTCOMES]
    if not names:
        return None
    # A failed --full or --since run must repeat its override, or the rerun would start from the
    # watermark and skip the rows it was asked to re-export.
    overrides = {
        name: value for name, value in (result.input.get("overrides") or {}).items() if name in names
    }
    overrides.update({name: value for name, value in healing.items() if name in names})
    document: dict[str, Any] = {"tables": names}
    if overrides:
        document["overrides"] = overrides
    return document
