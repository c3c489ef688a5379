"""The live lines a person follows while an execution runs (on stderr): one per transition that
matters, read from each new history event through the same models as ``history``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .history import (
    FAILED_EXPORT_STATES,
    SUCCESS_OUTCOMES,
    AdvanceRoundOutput,
    ExportChunkOutput,
    ExportResult,
    FailedExport,
    PlanFiles,
    PlanOutput,
    VerifyOutput,
    VerifyProgress,
    VerifyStateOutput,
    cause_message,
    event_details,
    json_or_none,
    state_output,
)
from .report import lag_text, one_line


class Progress:
    """Turns history events into the lines a person follows (one per transition that matters)."""

    _STATE_WORDS = {"Plan": "plan", "ExportChunk": "export", "Verify": "verify"}
    _TASK_FAILURES = frozenset(
        {"TaskFailed", "TaskTimedOut", "LambdaFunctionFailed", "LambdaFunctionTimedOut"}
    )
    _EXECUTION_ENDS = {
        "ExecutionFailed": "failed",
        "ExecutionTimedOut": "timed out",
        "ExecutionAborted": "aborted",
    }

    def __init__(
        self,
        emit: Callable[[str], None],
        plan_files: Callable[[PlanOutput], PlanFiles | None] | None = None,
        read_report: Callable[[str], VerifyOutput | None] | None = None,
    ) -> None:
        """``plan_files`` reads the plan's items and failed tables from the run's files, to name
        them; without it, or when it returns None (unreadable), the plan's lines give counts."""
        self.emit = emit
        self._plan_files = plan_files
        # The Verify state carries counts; its verdicts are in the run's report (verify.json).
        self.read_report = read_report
        self._events: dict[int, Mapping[str, Any]] = {}
        self._outcomes: dict[str, str] = {}
        # Tables the planner failed: the verifier never sees them, but they are tables of the run.
        self._plan_failed = 0

    def __call__(self, event: Mapping[str, Any]) -> None:
        self._events[int(event.get("id", 0))] = event
        kind = str(event.get("type", ""))
        details = event_details(event)
        if kind.endswith("StateExited"):
            self._exited(str(details.get("name")), event)
        elif kind in self._TASK_FAILURES:
            state, table = self._task_of(event)
            what = " ".join(part for part in (self._STATE_WORDS.get(state, state), table) if part)
            cause = one_line(cause_message(details.get("cause")), 160)
            self.emit(f"{what}: attempt failed: {details.get('error', kind)}: {cause} (retried or caught)")
        elif kind in self._EXECUTION_ENDS:
            error = details.get("error")
            self.emit(f"execution {self._EXECUTION_ENDS[kind]}{f': {error}' if error else ''}")

    def _task_of(self, event: Mapping[str, Any]) -> tuple[str, str | None]:
        # TaskFailed -> TaskStarted -> TaskScheduled -> TaskStateEntered, which has the name and input.
        current: Mapping[str, Any] | None = event
        for _ in range(6):
            if current is None:
                break
            if current.get("type") == "TaskStateEntered":
                details = event_details(current)
                state_input = json_or_none(details.get("input"))
                item = state_input.get("item") if isinstance(state_input, dict) else None
                return str(details.get("name")), item.get("table") if isinstance(item, dict) else None
            current = self._events.get(int(current.get("previousEventId", 0)))
        return "task", None

    def _exited(self, state: str, event: Mapping[str, Any]) -> None:
        if state == "Plan":
            plan = state_output(PlanOutput, event)
            if plan is not None:
                self._planned(plan)
        elif state == "ExportChunk":
            chunk = state_output(ExportChunkOutput, event)
            export = chunk.export.get("result") if chunk is not None else None
            if export is not None and export.status == "MORE":
                self.emit(
                    f"export {export.table}: chunk {export.chunks} written, {export.rows} row(s) so far"
                )
        elif state == "ExportDone":
            done = state_output(ExportResult, event)
            if done is not None:
                lane = f" {done.lane.describe(done.primary_key or [])}" if done.lane else ""
                self.emit(
                    f"export {done.table}{lane}: {done.status} {done.rows} row(s) in {done.files} file(s), "
                    f"{done.chunks} chunk(s)"
                )
        elif state in FAILED_EXPORT_STATES:
            failed = state_output(FailedExport, event)
            if failed is not None:
                self.emit(f"export {failed.table}: FAILED {failed.error.error}: {one_line(failed.message)}")
        elif state == "AdvanceRound":
            # The chunks ran in the export Map's children, whose histories are not this one.
            advanced = state_output(AdvanceRoundOutput, event)
            if advanced is not None:
                step = advanced.advance
                self.emit(
                    f"export round {step.rounds}: {step.settled} table(s) or lane(s) done "
                    f"({step.failed} failed), {step.unfinished} resume in the next round"
                )
        elif state == "Verify":
            verify = state_output(VerifyStateOutput, event)
            counts = verify.verification.get("output") if verify is not None else None
            if verify is None or counts is None:
                return
            report = self.read_report(counts.report) if self.read_report is not None else None
            if report is not None:
                self._verified(verify.attempt, report)
            else:
                self._counted(verify.attempt, counts)

    def _planned(self, plan: PlanOutput) -> None:
        if plan.skip:
            self.emit(f"plan: skipped: {plan.skip_reason}")
            return
        self._plan_failed = plan.failed
        files = self._plan_files(plan) if self._plan_files is not None else None
        tables = list(dict.fromkeys(item.table for item in files.items)) if files is not None else []
        lanes = f" in {plan.work_items} lanes and tables" if plan.work_items > plan.tables_planned else ""
        names = f" ({', '.join(tables) or 'none'})" if files is not None else ""
        self.emit(f"plan: {plan.tables_planned} table(s) to export{lanes}{names}, run {plan.run_id}")
        if files is None and plan.failed:
            self.emit(f"plan: {plan.failed} table(s) FAILED (s3://{plan.bucket}/{plan.failed_file})")
        for failure in files.failed if files is not None else ():
            self.emit(f"plan: {failure.table} FAILED {failure.error}: {one_line(failure.cause)}")

    def _counted(self, attempt: int, state: VerifyProgress) -> None:
        """Without the report: the poll's counts."""
        status = "done" if state.done else f"{state.pending} pending"
        self.emit(
            f"verify #{attempt + 1}: {status}, {state.tables} table(s): {state.succeeded} merged or up to "
            f"date, {state.failed} failed in the export or load (verdicts: {state.report})"
        )

    def _verified(self, attempt: int, verified: VerifyOutput) -> None:
        verdicts = verified.tables
        for verdict in verdicts:
            table, outcome = verdict.table, verdict.outcome
            if outcome == "PENDING" or self._outcomes.get(table) == outcome:
                continue
            self._outcomes[table] = outcome
            if outcome == "MERGED":
                deleted = (
                    f"{verdict.rows_deleted} deleted at the source removed; "
                    if verdict.rows_deleted is not None
                    else ""
                )
                self.emit(
                    f"merged {table}: {verdict.rows_changed} row(s) changed, "
                    f"{verdict.rows_unchanged} re-read unchanged (exported "
                    f"{verdict.rows_exported}, loaded {verdict.rows_loaded}; "
                    f"{deleted}freshness lag {lag_text(verdict.freshness_lag_seconds)})"
                )
            elif outcome == "NOTHING_TO_DO":
                self.emit(f"nothing to do for {table}: no new rows")
            else:
                self.emit(f"failed {table}: {verdict.error}: {one_line(verdict.reason)}")
        pending = [v for v in verdicts if v.outcome == "PENDING"]
        if pending:
            first = f"{pending[0].table}: {one_line(pending[0].reason, 120)}"
            self.emit(f"verify #{attempt + 1}: {len(pending)} pending ({first})")
        else:
            settled = sum(1 for v in verdicts if v.outcome in SUCCESS_OUTCOMES)
            # Export failures are verdicts too; plan failures only the Plan state's output names.
            in_export = sum(1 for v in verdicts if v.outcome == "FAILED")
            in_plan = self._plan_failed
            steps = ((in_plan, "plan"), (in_export, "export or load"))
            where = ", ".join(f"{n} in the {step}" for n, step in steps if n)
            self.emit(
                f"verify #{attempt + 1}: done, {len(verdicts) + in_plan} table(s): {settled} merged or up to "
                f"date, {in_export + in_plan} failed{f' ({where})' if where else ''}"
            )
