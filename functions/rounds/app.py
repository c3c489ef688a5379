"""Round step Lambda: the state machine's AdvanceRound state, after each export round.

The export Distributed Map writes each child's outcome to S3 (ResultWriter). This function reads
them (``aurora_sync.exporting.rounds.advance``): it records the round's settled tables (exported,
empty or failed) and writes the next round's manifest of the tables a child left MORE (its time
was up), which the Map then reads. The state carries only the counts and keys it returns.

Input (``aurora_sync.messages.RoundRequest``)::

    {"run_id": str, "round": n, "results": {"Bucket": str, "Key": "<.../manifest.json>"}}

Output (``aurora_sync.messages.RoundOutput``)::

    {"run_id", "round": n, "unfinished": int, "settled": int, "failed": int,
     "next_manifest": "<S3 key of round n+1's items>" | null}

S3 refusals are the taxonomy's classes: throttling and outages ``ExportWriteFailed`` (retried by
the state machine), a denial a ``ConfigError`` naming the grant.
"""

from __future__ import annotations

from typing import Any

from aurora_sync.errors import ConfigError, bounded_failures
from aurora_sync.exporting.rounds import Batching, advance
from aurora_sync.messages import parse_round_request
from aurora_sync.observability import logger, metrics, tracer
from aurora_sync.run_files import RunFiles
from aurora_sync.settings import runtime_settings


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@bounded_failures
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse_round_request(event)
    logger.append_keys(run_id=request.run_id)
    settings = runtime_settings()
    files = RunFiles.of(settings)
    if request.results.bucket != files.bucket:
        raise ConfigError(
            f"the export Map wrote its results to bucket {request.results.bucket}, not {files.bucket}.",
            fix="the ResultWriter's Bucket must be the data lake bucket (EXPORT_BUCKET)",
        )
    batching = Batching(settings.export_batch_size, settings.max_concurrency)
    output = advance(files, request.run_id, request.round, request.results.key, batching)
    logger.info("export round done", extra=output.model_dump())
    return output.model_dump(mode="json")
