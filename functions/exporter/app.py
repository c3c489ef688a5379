"""Exporter Lambda: one bounded chunk of one table, written by Aurora straight to S3.

Input: a work item (``aurora_sync.messages.WorkItem``) from the planner, or the ``next`` item of
the previous call's result while the status is MORE. Output: ``aurora_sync.messages.ExportResult``.
Inside an export child execution (EXPRESS, five minutes at most: issue 15's Distributed Map) the
input is an ``ExportRequest`` {item, child_started_at, child_seconds}: the chunk's statement_timeout
stays within the child's time, a MORE result says ``resume_later`` when a chunk as long as this one
would not end in time, and an item reached after the child's time is answered MORE without
exporting; the child then stops and the next round resumes the table.
A result carries its own chunk's S3 keys and the table's counts so far: a chunk that leaves its
table MORE also writes its keys to its chunk file under the run prefix
(``aurora_sync.exporting.rounds.record_chunk``), and the round step puts the table's whole key
list together when it settles, so no state grows with a table's chunks.
An item with a ``lane`` exports that primary-key range of its table only, chunked the same way;
its errors name the lane (the verifier fails the whole table with it).
The function only waits on Aurora (``aws_s3.query_export_to_s3``): its memory does not grow
with the table, and its statement_timeout is derived from the time Lambda has left.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aurora_sync.connections import source_connection
from aurora_sync.errors import ConfigError, SourceChunkTimeout, SourceTimeout, bounded_failures
from aurora_sync.exporting.export import ExportTarget, export_chunk
from aurora_sync.exporting.rounds import another_chunk_fits, child_deadline, deferred, record_chunk
from aurora_sync.messages import ExportRequest, parse_export_request
from aurora_sync.observability import logger, metrics, tracer
from aurora_sync.run_files import RunFiles
from aurora_sync.settings import runtime_settings
from aurora_sync.source_snapshot import EXPORTER_APPLICATION_NAME

# Leave time to report after Aurora returns; below the floor the call is not worth starting.
SAFETY_MARGIN_MS = 15_000
MIN_STATEMENT_TIMEOUT_MS = 5_000
DEFAULT_STATEMENT_TIMEOUT_MS = 14 * 60_000  # when invoked without a Lambda context (tests, scripts)


def statement_timeout_ms(context: Any, deadline: datetime | None = None, now: datetime | None = None) -> int:
    """What the chunk may take: the Lambda's time left, and inside an export child no more than
    the child's (``deadline``), less the margin to report."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    left = DEFAULT_STATEMENT_TIMEOUT_MS + SAFETY_MARGIN_MS if remaining is None else int(remaining())
    if deadline is not None:
        until_deadline = (deadline - (now or datetime.now(UTC))) / timedelta(milliseconds=1)
        left = min(left, int(until_deadline))
    return max(MIN_STATEMENT_TIMEOUT_MS, left - SAFETY_MARGIN_MS)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@bounded_failures
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    call_started = datetime.now(UTC)
    request = parse_export_request(event)
    item = request.item if isinstance(request, ExportRequest) else request
    deadline = None
    if isinstance(request, ExportRequest):
        deadline = child_deadline(request.child_started_at, request.child_seconds)
    settings = runtime_settings()
    if not settings.export_bucket:
        raise ConfigError("EXPORT_BUCKET is not set.", fix="set it in template.yaml (the data lake bucket)")
    target = ExportTarget(settings.export_bucket, settings.aws_region, settings.export_kms_key_arn)
    logger.append_keys(table=item.table, run_id=item.run_id)
    if deadline is not None and call_started >= deadline:
        logger.info("export child out of time: the table resumes in the next round")
        return deferred(item).model_dump(mode="json", by_alias=True, exclude_none=True)
    timeout_ms = statement_timeout_ms(context, deadline, call_started)
    whole_ms = statement_timeout_ms(context, None, call_started)  # what the child's time took off
    conn = source_connection(application_name=EXPORTER_APPLICATION_NAME, statement_timeout_ms=timeout_ms)
    try:
        result = export_chunk(conn, item, target, statement_timeout_ms=timeout_ms)
    except (SourceTimeout, SourceChunkTimeout):
        if timeout_ms >= whole_ms:
            raise
        # The child's time, not the chunk, set this timeout: the chunk is not known to be too
        # slow (SourceChunkTimeout) and a Retry here would start after the child's time. The next
        # round's child runs it again from the same position with its whole time, under a new
        # file name, as a Retry would: anything this call left in S3 is never reported.
        logger.warning(
            "export chunk cancelled by a statement timeout the child's time cut short: "
            "the table resumes in the next round",
            extra={"statement_timeout_ms": timeout_ms},
        )
        return deferred(item).model_dump(mode="json", by_alias=True, exclude_none=True)
    finally:
        conn.close()
    if result.status == "MORE":
        # The chunk's keys leave the state here; the round step reads them back (one S3 write per
        # chunk of a table that has more: a one-chunk table, the usual case, writes nothing).
        record_chunk(RunFiles.of(settings), result)
    if deadline is not None and result.status == "MORE":
        ended = datetime.now(UTC)
        # The next call is a new invocation: only the child's time bounds its statement timeout.
        next_timeout = timedelta(milliseconds=statement_timeout_ms(None, deadline, ended))
        if not another_chunk_fits(deadline, call_started, ended, next_timeout):
            result = result.model_copy(update={"resume_later": True})
    # Per stack, not per table (a table dimension costs $0.30 a month per table): the warning's
    # log line names the table; the rows a run exported are the verifier's RowsExported.
    metrics.add_metric(name="ExportWarnings", unit="Count", value=len(result.warnings))
    for warning in result.warnings:
        logger.warning(warning)
    logger.info(
        "export chunk done",
        extra={
            "status": result.status,
            "rows": result.rows,
            "bytes": result.bytes,
            "files": result.files,
            "chunks": result.chunks,
            "resume_later": result.resume_later,
        },
    )
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)
