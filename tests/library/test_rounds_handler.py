"""The round step Lambda against the local stack's S3: a Map Run's results, written as the local
engine's ResultWriter writes them (``result_entry``, the developer guide's layout), become the
settled tables and the next round's manifest under the run prefix, in the data lake bucket with
its KMS key."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import pytest
from exporter_calls import FakeContext

from aurora_sync.errors import ConfigError
from aurora_sync.exporting.rounds import MAP_RESULTS_PREFIX, manifest_key, settled_key
from aurora_sync.messages import ExportResult, RoundOutput, WorkItem
from aurora_sync_ops.local.distributed_map import ChildRecord, result_entry

WINDOW = {"watermark": None, "lookback_seconds": 0, "source": "full"}


def work_item(run_id: str, table: str, **extra: Any) -> dict[str, Any]:
    return {"run_id": run_id, "table": table, "source": {"schema": "shop", "table": table},
            "primary_key": ["id"], "cursor": "updated_at", **extra}  # fmt: skip


def put_json(s3: Any, bucket: str, key: str, value: Any) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(value).encode())


def read_json(s3: Any, bucket: str, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def map_run(s3: Any, bucket: str, run_id: str, outputs: list[dict[str, Any]]) -> str:
    """One succeeded child whose batch produced ``outputs``; returns the manifest.json key."""
    folder = f"{MAP_RESULTS_PREFIX}/{uuid.uuid4()}/"
    batch = {"Items": [work_item(run_id, o["table"]) for o in outputs], "BatchInput": {"run_id": run_id}}
    record = ChildRecord(index=0, arn="arn:aws:states:us-east-1:123456789012:express:sync/ExportRound:c0",
                         name="c0", input=batch, item_count=len(outputs), status="SUCCEEDED",
                         output=outputs, stop=datetime.datetime.now(datetime.UTC))  # fmt: skip
    put_json(s3, bucket, f"{folder}SUCCEEDED_0.json", [result_entry(record)])
    manifest = {"DestinationBucket": bucket, "MapRunArn": "arn:map-run",
                "ResultFiles": {"FAILED": [], "PENDING": [],
                                "SUCCEEDED": [{"Key": f"{folder}SUCCEEDED_0.json", "Size": 1}]}}  # fmt: skip
    put_json(s3, bucket, f"{folder}manifest.json", manifest)
    return f"{folder}manifest.json"


def test_a_round_settles_its_finished_tables_and_writes_the_next_manifest(
    env: dict[str, str], s3: Any
) -> None:
    from rounds.app import lambda_handler

    bucket, run_id = env["EXPORT_BUCKET"], f"run-{uuid.uuid4().hex[:8]}"
    resume = work_item(run_id, "items", position={"cursor": "2024-01-01T00:00:00Z", "key": ["7"], "chunk": 1})
    outputs = [
        {"table": "orders", "run_id": run_id, "status": "EXPORTED", "rows": 3, "files": 1,
         "keys": ["orders/a.csv"], "window": WINDOW, "chunks": 1},
        {"table": "items", "run_id": run_id, "status": "MORE", "rows": 5, "window": WINDOW, "chunks": 1,
         "next": resume, "resume_later": True},
    ]  # fmt: skip
    key = map_run(s3, bucket, run_id, outputs)

    output = lambda_handler(
        {"run_id": run_id, "round": 0, "results": {"Bucket": bucket, "Key": key}}, FakeContext()
    )

    assert RoundOutput.model_validate(output) == RoundOutput(
        run_id=run_id, round=0, unfinished=1, settled=1, failed=0, next_manifest=manifest_key(run_id, 1)
    )
    [batch] = read_json(s3, bucket, manifest_key(run_id, 1))
    [resumed] = batch["Items"]
    assert WorkItem.model_validate(resumed) == WorkItem.model_validate(resume)
    [settled] = read_json(s3, bucket, settled_key(run_id, 0))
    assert ExportResult.model_validate(settled).keys == ["orders/a.csv"]
    head = s3.head_object(Bucket=bucket, Key=settled_key(run_id, 0))
    assert head["ServerSideEncryption"] == "aws:kms"


def test_results_in_another_bucket_are_refused(env: dict[str, str], s3: Any) -> None:
    from rounds.app import lambda_handler

    with pytest.raises(ConfigError, match="not " + env["EXPORT_BUCKET"]):
        lambda_handler(
            {"run_id": "r", "round": 0, "results": {"Bucket": "elsewhere", "Key": "k"}}, FakeContext()
        )
