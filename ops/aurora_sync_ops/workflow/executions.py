"""One execution on Step Functions: start it, describe it, read its history, follow it until it
ends; and the flows of ``aurora-sync sync`` (``run``) and ``rerun`` (``rerun_of``)."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aurora_sync.aws_errors import aws_error_code

from ..errors import UsageError, WorkflowError, aws_call, aws_failure
from .history import (
    TERMINAL,
    PlanFiles,
    PlanOutput,
    RunResult,
    VerifyOutput,
    collect,
    last_plan,
    run_files_location,
    s3_location,
    verify_progress,
)
from .progress import Progress
from .target import Target, describe_on


def start(target: Target, execution_input: Mapping[str, Any], name: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = target.sfn.start_execution(
            stateMachineArn=target.state_machine_arn, name=name, input=json.dumps(execution_input)
        )
    except (BotoCoreError, ClientError) as exc:
        code = aws_error_code(exc)
        if code == "ExecutionAlreadyExists":
            raise UsageError(
                f"an execution named {name!r} already exists on {target.state_machine_arn}.",
                fix="choose another --name (names stay taken for 90 days), or leave it out",
            ) from None
        if code == "StateMachineDoesNotExist":
            raise WorkflowError(
                f"state machine {target.state_machine_arn} does not exist on {target.where}.",
                fix="check the ARN (or AURORA_SYNC_STATE_MACHINE_ARN), its region, and that the stack is "
                "deployed",
            ) from None
        raise aws_failure(
            exc, call="states:StartExecution", resource=f"{target.state_machine_arn} on {target.where}"
        ) from None
    return str(response["executionArn"])


def describe(target: Target, execution_arn: str) -> dict[str, Any]:
    return describe_on(target.sfn, target.where, execution_arn)


def history(target: Target, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of the execution, oldest first (all pages)."""
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = aws_call(
            lambda: target.sfn.get_execution_history(**kwargs),
            call="states:GetExecutionHistory",
            resource=f"{execution_arn} on {target.where}",
        )
        events += page["events"]
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def follow(
    target: Target,
    execution_arn: str,
    *,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    timeout_s: float | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll until the execution ends; returns (DescribeExecution, the whole history)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    seen = 0
    while True:
        # Describe first: a terminal status read before the history means the history is complete.
        description = describe(target, execution_arn)
        events = history(target, execution_arn)
        for event in events[seen:]:
            if on_event is not None:
                on_event(event)
        seen = len(events)
        if description["status"] in TERMINAL:
            return description, events
        if deadline is not None and time.monotonic() > deadline:
            raise WorkflowError(
                f"execution {execution_arn} is still {description['status']} after {timeout_s:.0f}s; "
                "it goes on without this command.",
                fix="follow it in the Step Functions console, or raise --timeout",
            )
        time.sleep(target.poll_s)


def run(
    target: Target,
    execution_input: Mapping[str, Any],
    name: str,
    *,
    wait: bool,
    progress: Callable[[str], None],
    timeout_s: float | None = None,
) -> RunResult:
    """Start a named execution; when waiting, follow it with progress lines and collect the results."""
    arn = start(target, execution_input, name)
    progress(f"started {arn} on {target.where} with input {json.dumps(execution_input)}")
    if not wait:
        return collect(describe(target, arn), [])
    try:
        description, events = follow(
            target, arn, on_event=progress_lines(target, progress), timeout_s=timeout_s
        )
    except KeyboardInterrupt:
        progress(f"stopped following; execution {arn} goes on")
        raise
    return results(target, description, events)


def progress_lines(target: Target, emit: Callable[[str], None]) -> Progress:
    """Progress lines of an execution on ``target``, naming the tables from the run's files."""
    return Progress(emit, lambda plan: plan_files(target, plan), report_of(target))


def report_of(target: Target) -> Callable[[str], VerifyOutput | None]:
    """Reads a Verify state's report for the progress lines (the lines give the counts when
    it is unreadable)."""
    return lambda uri: read_report(target, uri, warn=False)


def read_report(target: Target, uri: str, *, warn: bool = True) -> VerifyOutput | None:
    """The verifier's report at ``uri`` (its verify.json: every table's verdict), or None without
    an S3 client or when unreadable (with a warning: the results then come from the history and
    the state's bounded summary)."""
    if target.s3 is None:
        return None
    from pydantic import ValidationError

    from aurora_sync.errors import SyncError
    from aurora_sync.run_files import RunFiles

    bucket, key = s3_location(uri)
    try:
        return VerifyOutput.model_validate(RunFiles(target.s3, bucket).read_json(key))
    except (SyncError, ValidationError) as exc:
        if warn:
            warnings.warn(f"the verifier's report {uri} is unreadable: {exc}", stacklevel=2)
        return None


def settled_exports(target: Target, events: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The export results the run's rounds settled in S3 (none when the history names no round,
    or without an S3 client). Unreadable files (the bucket's lifecycle removed them, access
    denied) leave the results to the history and the verifier's verdicts, with a warning."""
    location = run_files_location(events)
    if location is None or target.s3 is None:
        return []
    from aurora_sync.errors import SyncError
    from aurora_sync.exporting.rounds import read_settled
    from aurora_sync.run_files import RunFiles

    try:
        return list(read_settled(RunFiles(target.s3, location.bucket), location.run_id, location.rounds))
    except SyncError as exc:
        warnings.warn(
            f"the run's export results are unreadable in s3://{location.bucket}: {exc}", stacklevel=2
        )
        return []


def plan_files(target: Target, plan: PlanOutput) -> PlanFiles | None:
    """The plan's work items (round 0's manifest) and failed tables, which its output names by
    key; None without an S3 client or when they are unreadable (with a warning), as for
    ``settled_exports``."""
    if target.s3 is None or plan.bucket is None:
        return None if plan.manifest or plan.failed_file else PlanFiles()
    from aurora_sync.errors import SyncError
    from aurora_sync.exporting.rounds import read_items, read_plan_failed
    from aurora_sync.run_files import RunFiles

    files = RunFiles(target.s3, plan.bucket)
    try:
        return PlanFiles(
            items=read_items(files, plan.manifest) if plan.manifest else [],
            failed=read_plan_failed(files, plan.run_id, plan.failed),
        )
    except SyncError as exc:
        warnings.warn(f"the run's plan is unreadable in s3://{plan.bucket}: {exc}", stacklevel=2)
        return None


def verify_report(target: Target, events: Sequence[Mapping[str, Any]]) -> VerifyOutput | None:
    """The report the last Verify state names (None before the verifier ran)."""
    state = verify_progress(events)
    return read_report(target, state.report) if state is not None else None


def results(target: Target, description: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> RunResult:
    """``collect`` with the plan's files, the export results of the run's rounds and the
    verifier's report."""
    plan = last_plan(events)
    planned = plan_files(target, plan) if plan is not None else None
    return collect(
        description,
        events,
        settled_exports(target, events),
        planned or PlanFiles(),
        verify_report(target, events),
    )


def rerun_of(target: Target, execution_arn: str) -> dict[str, Any]:
    """The input that reruns an ended execution's failed tables, or a one-line refusal."""
    description = describe(target, execution_arn)
    if description["status"] not in TERMINAL:
        raise WorkflowError(
            f"execution {execution_arn} is still {description['status']}; there is nothing to rerun yet.",
            fix="wait until it ends (or stop it), then rerun",
        )
    result = results(target, description, history(target, execution_arn))
    if result.rerun_input is None:
        reason = f"was skipped ({result.skip_reason})" if result.skipped else "had no failed tables"
        raise WorkflowError(
            f"execution {execution_arn} {result.status} and {reason}: nothing to rerun.",
            fix="start a new run with aurora-sync sync",
        )
    return result.rerun_input
