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
from exporter_calls import FakeContext, item, read_rows
from psycopg2 import sql

from aurora_sync.errors import ConfigError
from aurora_sync.exporting.rounds import MAP_RESULTS_PREFIX, chunk_key, manifest_key, settled_key
from aurora_sync.messages import ExportResult, FailedExport, RoundOutput, WorkItem
from aurora_sync_ops.local.distributed_map import ChildRecord, result_entry
from exporter.app import lambda_handler as export

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


def make_orders(admin: Any, schema: str, rows: int, *, ties: int = 1) -> None:
    """``schema.orders`` with ids 1..``rows``, ``ties`` rows sharing each updated_at."""
    with admin.cursor() as cur:
        cur.execute(
            sql.SQL(
                "CREATE TABLE {t} (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL); INSERT INTO {t} "
                "SELECT i, timestamptz '2026-01-01 00:00:00+00' + (i / %s) * interval '1 second' "
                "FROM generate_series(1, %s) i"
            ).format(t=sql.Identifier(schema, "orders")),
            (ties, rows),
        )


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


def test_a_table_of_several_chunks_across_two_rounds_settles_with_every_key_exactly_once(
    env: dict[str, str], s3: Any, admin: Any, schema: str
) -> None:
    """The exporter records each chunk that leaves the table MORE in its chunk file; the child's
    time runs out after chunk 2 (round 0), the next round's child exports chunks 3 to 5 from the
    manifest's item, and the round step settles the table with all five chunks' keys."""
    from rounds.app import lambda_handler as advance_round

    make_orders(admin, schema, 450, ties=7)
    bucket, event = env["EXPORT_BUCKET"], item(schema, max_rows_per_chunk=100)
    run_id = event["run_id"]
    first = export(event, FakeContext())
    second = export(first["next"], FakeContext())
    assert (first["status"], second["status"], second["chunks"]) == ("MORE", "MORE", 2)
    assert len(second["keys"]) == 1 and "keys" not in second["next"]["position"]
    # The child's time is up after chunk 2: its output is the MORE result, resumed next round.
    round_0 = advance_round(
        {"run_id": run_id, "round": 0, "results": {"Bucket": bucket,
         "Key": map_run(s3, bucket, run_id, [{**second, "resume_later": True}])}},
        FakeContext(),
    )  # fmt: skip
    assert (round_0["unfinished"], round_0["settled"]) == (1, 0)
    [batch] = read_json(s3, bucket, round_0["next_manifest"])
    [resumed] = batch["Items"]
    calls = [export(resumed, FakeContext())]
    while calls[-1]["status"] == "MORE":
        calls.append(export(calls[-1]["next"], FakeContext()))
    last = calls[-1]
    assert (last["status"], last["chunks"], last["files"], len(last["keys"])) == ("EXPORTED", 5, 5, 1)

    round_1 = advance_round(
        {"run_id": run_id, "round": 1, "results": {"Bucket": bucket,
         "Key": map_run(s3, bucket, run_id, [last])}},
        FakeContext(),
    )  # fmt: skip

    assert (round_1["settled"], round_1["next_manifest"]) == (1, None)
    [settled] = read_json(s3, bucket, settled_key(run_id, 1))
    keys = ExportResult.model_validate(settled).keys
    assert len(keys) == len(set(keys)) == settled["files"] == 5
    assert keys[0] == first["keys"][0] and keys[1] == second["keys"][0] and keys[-1] == last["keys"][0]
    ids = [int(str(row[0])) for row in read_rows(s3, bucket, keys)]
    assert sorted(ids) == list(range(1, 451)) and len(ids) == 450
    chunk_file = chunk_key(run_id, "orders", None, 1)
    assert read_json(s3, bucket, chunk_file)["keys"] == first["keys"]
    assert s3.head_object(Bucket=bucket, Key=chunk_file)["ServerSideEncryption"] == "aws:kms"


def test_a_lost_chunk_file_fails_its_table_naming_the_chunk(
    env: dict[str, str], s3: Any, admin: Any, schema: str
) -> None:
    """Over real S3 (NoSuchKey): the round step settles the table as failed, never with fewer keys."""
    from rounds.app import lambda_handler as advance_round

    make_orders(admin, schema, 30)
    bucket, event = env["EXPORT_BUCKET"], item(schema, max_rows_per_chunk=10)
    run_id = event["run_id"]
    calls = [export(event, FakeContext())]
    while calls[-1]["status"] == "MORE":
        calls.append(export(calls[-1]["next"], FakeContext()))
    s3.delete_object(Bucket=bucket, Key=chunk_key(run_id, "orders", None, 2))

    output = advance_round(
        {"run_id": run_id, "round": 0, "results": {"Bucket": bucket,
         "Key": map_run(s3, bucket, run_id, [calls[-1]])}},
        FakeContext(),
    )  # fmt: skip

    assert (output["settled"], output["failed"]) == (1, 1)
    [settled] = read_json(s3, bucket, settled_key(run_id, 0))
    failed = FailedExport.model_validate(settled)
    assert failed.error.error == "ExportIncomplete"
    assert "chunk 2 of table orders" in failed.message


def test_results_in_another_bucket_are_refused(env: dict[str, str], s3: Any) -> None:
    from rounds.app import lambda_handler

    with pytest.raises(ConfigError, match="not " + env["EXPORT_BUCKET"]):
        lambda_handler(
            {"run_id": "r", "round": 0, "results": {"Bucket": "elsewhere", "Key": "k"}}, FakeContext()
        )
