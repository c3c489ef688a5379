"""The verifier's progress between polls, kept in the run's files rather than in the state.

Issue 15: the Verify state's output used to carry every table's verdict (about 400 B a table)
and the next poll read it back as ``previous``; at 500+ tables it passed Step Functions' 256 KB
and failed the execution. Now each poll writes its ``VerifyOutput`` to
``_aurora_sync/runs/<run_id>/verify.json`` (``exporting.rounds.verify_key``) and returns a
``VerifyProgress``: counts, the file's location and, once done, a bounded summary. The next poll
gets that progress back and ``resume`` reads the file.

What a poll reads must never let a table be reported MERGED that was not, nor a watermark move:

* The first poll (no ``progress``) reads nothing: a file there is an earlier execution's with the
  same run id (the execution name), and is overwritten.
* A later poll takes the file only when it is this execution's: same run id, same run start
  (the execution's start time) and the ``verify_started_at`` the state carries. A Lambda retried
  after its first attempt wrote the file reads that attempt's verdicts: they were decided from
  Snowflake like any other (a MERGED verdict only after the ledger marked the run merged).
* A missing or foreign file (its write was lost, or another execution with this run id wrote it)
  starts the verdicts over from Snowflake's history, which the rules read anyway: a MERGE task
  already requested is seen in TASK_HISTORY and not requested twice, the ledger's marks are
  idempotent. Only ``verify_started_at`` is kept, from the state, so the load timeout still
  counts from the first poll.

A poll writes its file before it returns (and before the run's metrics): a failed write is the
taxonomy's transient ``ExportWriteFailed``, which the state machine retries, so the state never
points at a file that does not hold its poll's verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ..messages import (
    MAX_FAILED_IN_STATE,
    FailedTable,
    RunSummary,
    VerifyOutput,
    VerifyProgress,
    VerifyRequest,
)
from ..observability import logger
from ..run_files import RunFiles, rerun_key, verify_key
from .verify import summarize


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _run_started(request: VerifyRequest) -> str:
    return _aware(request.started_at).isoformat(timespec="microseconds")


def resume(files: RunFiles, request: VerifyRequest) -> VerifyRequest:
    """``request`` with ``previous``: the verdicts of this execution's previous poll, from its run
    file (unchanged on the first poll, or when a caller passed ``previous`` itself)."""
    progress = request.progress
    if progress is None:
        return request
    document = files.read_json_if_present(verify_key(request.run_id))
    previous = _own(document, request, progress)
    if previous is None:
        logger.warning(
            "the previous poll's verdicts are not in the run file; verifying every table again",
            extra={
                "file": f"s3://{files.bucket}/{verify_key(request.run_id)}",
                "found": document is not None,
            },
        )
        previous = VerifyOutput(
            run_id=request.run_id,
            done=False,
            verify_started_at=progress.verify_started_at,
            run_started_at=_run_started(request),
            tables=[],
            pending=0,
            failed=0,
        )
    return request.model_copy(update={"previous": previous})


def _own(document: Any, request: VerifyRequest, progress: VerifyProgress) -> VerifyOutput | None:
    """The file's output when this execution's poll wrote it, else None."""
    if not isinstance(document, dict):
        return None
    try:
        output = VerifyOutput.model_validate(document)
    except ValidationError:
        return None
    if output.run_id != request.run_id or output.verify_started_at != progress.verify_started_at:
        return None
    if output.run_started_at is None:
        return None
    if _aware(datetime.fromisoformat(output.run_started_at)) != _aware(request.started_at):
        return None
    return output


def record(
    files: RunFiles, request: VerifyRequest, output: VerifyOutput, plan_failed: Sequence[FailedTable] = ()
) -> tuple[VerifyOutput, VerifyProgress]:
    """Write the poll's output (and, once done, a rerun input too long for the cause) to the run's
    files; the output as written and the state's progress. ``plan_failed``: the tables that failed
    in the plan (the run's plan-failed.json), which the summary names with the others."""
    report = f"s3://{files.bucket}/{verify_key(request.run_id)}"
    update: dict[str, Any] = {"run_started_at": _run_started(request)}
    if output.done:
        summary = summarize(
            list(output.tables),
            list(plan_failed),
            report=report,
            rerun_file=f"s3://{files.bucket}/{rerun_key(request.run_id)}",
        )
        if summary.rerun_file is not None:
            files.write_json(rerun_key(request.run_id), summary.rerun_input)
        update["summary"] = summary
    output = output.model_copy(update=update)
    files.write_json(verify_key(request.run_id), output.model_dump(mode="json"))
    return output, progress_of(output, report)


def progress_of(output: VerifyOutput, report: str) -> VerifyProgress:
    """The state's part of ``output``: counts and a summary that names few tables."""
    return VerifyProgress(
        run_id=output.run_id,
        done=output.done,
        verify_started_at=output.verify_started_at,
        tables=len(output.tables),
        succeeded=sum(1 for v in output.tables if v.outcome in ("MERGED", "NOTHING_TO_DO")),
        pending=output.pending,
        failed=output.failed,
        report=report,
        summary=in_state(output.summary) if output.summary is not None else None,
        continue_now=output.continue_now,
    )


def in_state(summary: RunSummary) -> RunSummary:
    """The summary as the state carries it: the first failed tables, and the rerun input only
    when the cause quotes it (else ``rerun_file`` names it)."""
    return summary.model_copy(
        update={
            "failed": summary.failed[:MAX_FAILED_IN_STATE],
            "rerun_input": summary.rerun_input if summary.rerun_file is None else None,
        }
    )
