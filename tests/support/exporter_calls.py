"""Calling the exporter Lambda as the state machine does, and reading back what Aurora wrote to S3
(shared by the exporter's library tests; on pytest's pythonpath, see pyproject)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from pgcsv import parse_pg_csv

from aurora_sync.exporting.rounds import settle_keys
from aurora_sync.messages import ExportResult
from aurora_sync.run_files import RunFiles
from aurora_sync.settings import runtime_settings
from exporter.app import lambda_handler

EVENTS = Path(__file__).resolve().parents[2] / "events"


class FakeContext:
    function_name = "aurora-sync-exporter"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:aurora-sync-exporter"
    aws_request_id = "test-request"

    def __init__(self, remaining_ms: int = 600_000) -> None:
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def item(schema: str, *, table: str = "orders", name: str = "orders", **overrides: Any) -> dict[str, Any]:
    event = json.loads((EVENTS / "exporter.json").read_text())
    event.update(
        run_id=f"test-{uuid.uuid4().hex[:8]}",
        table=name,
        source={"schema": schema, "table": table},
        window={"watermark": None, "lookback_seconds": 0, "source": "full"},
    )
    event.update(overrides)
    return event


def export_all(event: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Call the exporter like the state machine does: again with `next` while MORE. Returns every
    call's result (each with its own chunk's keys) and the last one as the round step settles it:
    with every key of the export, read back from the chunk files (``rounds.settle_keys``)."""
    calls = []
    while True:
        result = lambda_handler(event, FakeContext())
        calls.append(result)
        if result["status"] != "MORE":
            break
        event = result["next"]
    [settled] = settle_keys(RunFiles.of(runtime_settings()), [ExportResult.model_validate(result)])
    return calls, settled.model_dump(mode="json", by_alias=True, exclude_none=True)


def read_rows(s3: Any, bucket: str, keys: list[str]) -> list[list[str | None]]:
    rows = []
    for key in keys:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        rows.extend(parse_pg_csv(body))
    return rows
