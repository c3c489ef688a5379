"""A run's export rounds (``aurora_sync.exporting.rounds``) and the run's files in S3
(``aurora_sync.run_files``): the layout under the run prefix, a round's Distributed Map results
read into the next round's items and the settled tables, S3 refusals on the error taxonomy.

The result entries are built by the local engine's ResultWriter (``result_entry``), which writes
them as the Step Functions developer guide documents, so the product reads what AWS writes.
"""

from __future__ import annotations

import datetime
import io
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from memory_store import MemoryStore

from aurora_sync.errors import ConfigError, ExportWriteFailed
from aurora_sync.exporting.rounds import (
    MAP_RESULTS_PREFIX,
    RUNS_PREFIX,
    advance,
    manifest_key,
    read_round,
    settled_key,
)
from aurora_sync.messages import ExportResult, FailedExport, WorkItem
from aurora_sync.run_files import RunFiles
from aurora_sync_ops.local.distributed_map import ChildRecord, result_entry

RUN = "run-0001"
WINDOW = {"watermark": None, "lookback_seconds": 0, "source": "full"}


def item(table: str, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": RUN,
        "table": table,
        "source": {"schema": "shop", "table": table},
        "primary_key": ["id"],
        "cursor": "updated_at",
        **extra,
    }


def exported(table: str) -> dict[str, Any]:
    return {"table": table, "run_id": RUN, "status": "EXPORTED", "rows": 3, "files": 1,
            "keys": [f"{table}/a.csv"], "window": WINDOW, "chunks": 1}  # fmt: skip


def more(table: str) -> dict[str, Any]:
    resume = item(table, position={"cursor": "2024-01-01T00:00:00Z", "key": ["7"], "chunk": 1, "rows": 5})
    return {"table": table, "run_id": RUN, "status": "MORE", "rows": 5, "window": WINDOW, "chunks": 1,
            "next": resume}  # fmt: skip


def failed(table: str) -> dict[str, Any]:
    return {"table": table, "run_id": RUN, "status": "FAILED",
            "error": {"Error": "SourceTimeout", "Cause": "statement timeout"}}  # fmt: skip


def entry(child_input: Any, *, output: Any = None, error: str | None = None, cause: str | None = None) -> Any:
    now = datetime.datetime.now(datetime.UTC)
    record = ChildRecord(
        index=0,
        arn=f"arn:aws:states:us-east-1:123456789012:express:sync/ExportTables:{now.timestamp()}",
        name="child",
        input=child_input,
        item_count=len(child_input["Items"]),
        status="FAILED" if error else "SUCCEEDED",
        output=output,
        error=error,
        cause=cause,
        stop=now,
    )
    return json.loads(json.dumps(result_entry(record)))


def test_layout_keeps_every_round_under_the_run_prefix() -> None:
    assert manifest_key(RUN, 0) == f"{RUNS_PREFIX}/{RUN}/round-0/items.json"
    assert MAP_RESULTS_PREFIX.startswith(f"{RUNS_PREFIX}/")
    assert settled_key(RUN, 1) == f"{RUNS_PREFIX}/{RUN}/round-1/settled.json"
    # No table's pipe loads it: table names start with a letter.
    assert RUNS_PREFIX.startswith("_")
    with pytest.raises(ConfigError):
        manifest_key("a/b", 0)
    with pytest.raises(ConfigError):
        manifest_key(RUN, -1)


def test_a_round_resumes_more_tables_and_settles_the_others() -> None:
    batch = {"Items": [item("orders"), item("items"), item("users")], "BatchInput": {"run_id": RUN}}

    results = read_round([entry(batch, output=[exported("orders"), more("items"), failed("users")])], [])

    assert [w.table for w in results.unfinished] == ["items"]
    assert results.unfinished[0] == WorkItem.model_validate(more("items")["next"])
    assert [type(o).__name__ for o in results.settled] == ["ExportResult", "FailedExport"]
    assert isinstance(results.settled[0], ExportResult) and results.settled[0].status == "EXPORTED"
    assert results.failed == 1


def test_a_failed_child_fails_every_table_of_its_batch_with_its_error() -> None:
    batch = {"Items": [item("orders"), item("wide", target="WIDE_TABLE")]}

    results = read_round([], [entry(batch, error="States.Timeout", cause="Express child ran 5 minutes")])

    assert results.unfinished == []
    assert results.failed == 2
    orders, wide = results.settled
    assert isinstance(orders, FailedExport) and isinstance(wide, FailedExport)
    assert (orders.table, orders.error.error, orders.error.cause) == (
        "orders",
        "States.Timeout",
        "Express child ran 5 minutes",
    )
    assert wide.target == "WIDE_TABLE"  # the verifier's verdict keeps the custom target


@pytest.mark.parametrize(
    ("output", "needle"),
    [
        ({"table": "orders"}, "not its batch's list"),
        ([{"table": "orders", "status": "MORE", "run_id": RUN, "window": WINDOW}], "without the work item"),
        ([{"surprise": True}], "neither an export result"),
    ],
)
def test_a_child_output_that_is_not_the_contract_is_a_config_error(output: Any, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        read_round([entry({"Items": [item("orders")]}, output=output)], [])


def _map_run_files(succeeded: list[Any], failed_entries: list[Any]) -> dict[str, Any]:
    folder = f"{MAP_RESULTS_PREFIX}/map-run-id/"
    files: dict[str, Any] = {}
    listing: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    for status, entries in (("SUCCEEDED", succeeded), ("FAILED", failed_entries)):
        if entries:
            files[f"{folder}{status}_0.json"] = entries
            listing[status].append({"Key": f"{folder}{status}_0.json", "Size": 1})
    files[f"{folder}manifest.json"] = {
        "DestinationBucket": "lake",
        "MapRunArn": "arn",
        "ResultFiles": listing,
    }
    return files


def test_advance_writes_the_next_manifest_and_the_settled_tables() -> None:
    batch = {"Items": [item("orders"), item("items")]}
    store = MemoryStore(_map_run_files([entry(batch, output=[exported("orders"), more("items")])], []))

    summary = advance(store, RUN, 0, f"{MAP_RESULTS_PREFIX}/map-run-id/manifest.json")

    assert (summary.unfinished, summary.settled, summary.failed) == (1, 1, 0)
    assert summary.next_manifest == manifest_key(RUN, 1)
    [batch] = store.files[manifest_key(RUN, 1)]
    [resumed] = batch["Items"]
    assert WorkItem.model_validate(resumed) == WorkItem.model_validate(more("items")["next"])
    [settled] = store.files[settled_key(RUN, 0)]
    assert ExportResult.model_validate(settled).table == "orders"


def test_advance_ends_the_rounds_when_every_table_settled() -> None:
    batch = {"Items": [item("orders")]}
    store = MemoryStore(_map_run_files([], [entry(batch, error="Lambda.Unknown", cause="crash")]))

    summary = advance(store, RUN, 3, f"{MAP_RESULTS_PREFIX}/map-run-id/manifest.json")

    assert summary.next_manifest is None and manifest_key(RUN, 4) not in store.files
    assert (summary.settled, summary.failed) == (1, 1)
    [settled] = store.files[settled_key(RUN, 3)]
    assert FailedExport.model_validate(settled).error.error == "Lambda.Unknown"


class FakeS3:
    def __init__(self, error_code: str | None = None, status: int = 400) -> None:
        self.error_code = error_code
        self.status = status
        self.puts: list[dict[str, Any]] = []

    def _maybe_fail(self, operation: str) -> None:
        if self.error_code:
            raise ClientError(
                {"Error": {"Code": self.error_code}, "ResponseMetadata": {"HTTPStatusCode": self.status}},
                operation,
            )

    def put_object(self, **kwargs: Any) -> None:
        self._maybe_fail("PutObject")
        self.puts.append(kwargs)

    def get_object(self, **kwargs: Any) -> Any:
        self._maybe_fail("GetObject")
        return {"Body": io.BytesIO(b'{"chunk": 1}')}


def test_run_files_encrypt_with_the_bucket_key_and_map_refusals_onto_the_taxonomy() -> None:
    s3 = FakeS3()
    RunFiles(s3, "lake", "arn:aws:kms:us-east-1:123456789012:key/k").write_json(manifest_key(RUN, 0), [1])
    assert s3.puts[0]["SSEKMSKeyId"].endswith("key/k") and s3.puts[0]["ServerSideEncryption"] == "aws:kms"

    with pytest.raises(ExportWriteFailed):
        RunFiles(FakeS3("SlowDown", 503), "lake").write_json(manifest_key(RUN, 0), [])
    with pytest.raises(ConfigError, match=r"access denied for s3:PutObject") as denied:
        RunFiles(FakeS3("AccessDenied", 403), "lake").write_json(manifest_key(RUN, 0), [])
    assert f"{RUNS_PREFIX}/*" in str(denied.value)


def test_a_run_file_that_is_not_there_reads_as_none_only_when_s3_says_so() -> None:
    key = manifest_key(RUN, 0)
    assert RunFiles(FakeS3(), "lake").read_json_if_present(key) == {"chunk": 1}
    assert RunFiles(FakeS3("NoSuchKey", 404), "lake").read_json_if_present(key) is None
    with pytest.raises(ConfigError, match="NoSuchKey"):
        RunFiles(FakeS3("NoSuchKey", 404), "lake").read_json(key)
    # Without s3:ListBucket S3 answers a missing key 403: a denial, never taken for "not there".
    with pytest.raises(ConfigError, match=r"access denied for s3:GetObject"):
        RunFiles(FakeS3("AccessDenied", 403), "lake").read_json_if_present(key)
    with pytest.raises(ExportWriteFailed):
        RunFiles(FakeS3("SlowDown", 503), "lake").read_json_if_present(key)


def test_a_table_stops_when_a_chunk_as_long_as_the_last_would_pass_the_childs_deadline() -> None:
    from aurora_sync.exporting.rounds import another_chunk_fits, child_deadline

    started = datetime.datetime(2026, 12, 3, 5, 0, tzinfo=datetime.UTC)
    deadline = child_deadline(started, 270)
    second = datetime.timedelta(seconds=1)

    def fits(call_started: float, ended: float) -> bool:
        # The exporter's next statement timeout: the child's time left less its 15 s margin.
        next_timeout = max(5 * second, deadline - (started + ended * second) - 15 * second)
        return another_chunk_fits(
            deadline, started + call_started * second, started + ended * second, next_timeout
        )

    # A 40 s chunk ending at 200 s: the next would end at 240 s, in time, and get 55 s.
    assert fits(160, 200)
    # Ending at 240 s: the next would end at 280 s, after the deadline.
    assert not fits(200, 240)
    # A 2 s chunk ending 5 s before the deadline: it ends in time, within the 5 s floor.
    assert fits(263, 265)


def test_a_chunk_is_not_started_with_a_statement_timeout_shorter_than_the_last_one_took() -> None:
    from aurora_sync.exporting.rounds import another_chunk_fits, child_deadline

    # A backfill's 60 s chunks in a 240 s child: the fourth would end exactly at the deadline,
    # but its statement timeout would be 45 s (60 s left less the 15 s margin), cancelling it;
    # a timeout that long would be taken for a chunk too slow to read (SourceChunkTimeout).
    started = datetime.datetime(2026, 12, 3, 5, 0, tzinfo=datetime.UTC)
    deadline = child_deadline(started, 240)
    second = datetime.timedelta(seconds=1)
    assert another_chunk_fits(deadline, started + 60 * second, started + 120 * second, 105 * second)
    assert not another_chunk_fits(deadline, started + 120 * second, started + 180 * second, 45 * second)


def test_the_verifier_reads_every_rounds_settled_tables_in_order() -> None:
    from aurora_sync.exporting.rounds import read_settled

    store = MemoryStore({settled_key(RUN, 0): [exported("orders")], settled_key(RUN, 1): [failed("users")]})
    assert [(o.table, o.status) for o in read_settled(store, RUN, 2)] == [
        ("orders", "EXPORTED"),
        ("users", "FAILED"),
    ]
    assert read_settled(store, RUN, 0) == []
    store.files[settled_key(RUN, 1)] = [{"table": "users"}]
    with pytest.raises(ConfigError, match="neither an export result"):
        read_settled(store, RUN, 2)


def test_a_verify_request_takes_its_export_results_from_the_state_or_from_the_rounds() -> None:
    from aurora_sync.messages import parse_verify_request

    base = {"run_id": RUN, "started_at": "2026-12-03T05:00:00.000+00:00"}
    assert parse_verify_request({**base, "rounds": 2}).tables == []
    assert parse_verify_request({**base, "tables": [exported("orders")]}).rounds is None
    with pytest.raises(ConfigError, match="not both"):
        parse_verify_request({**base, "rounds": 1, "tables": [exported("orders")]})


def test_an_item_reached_after_the_childs_time_is_deferred_unchanged_to_the_next_round() -> None:
    from aurora_sync.exporting.rounds import deferred

    fresh = WorkItem.model_validate(item("orders"))
    waiting = deferred(fresh)
    assert (waiting.status, waiting.resume_later, waiting.next, waiting.chunks, waiting.rows) == (
        "MORE",
        True,
        fresh,
        0,
        0,
    )
    resumed = WorkItem.model_validate(more("items")["next"])
    assert (deferred(resumed).chunks, deferred(resumed).rows, deferred(resumed).next) == (1, 5, resumed)
    # The round step reads it like any MORE: the same item in the next round's manifest.
    batch = {"Items": [item("orders")]}
    output = [deferred(fresh).model_dump(mode="json", by_alias=True, exclude_none=True)]
    assert read_round([entry(batch, output=output)], []).unfinished == [fresh]


def test_a_rounds_batches_fill_the_concurrent_children_and_part_a_tables_lanes() -> None:
    from aurora_sync.exporting.rounds import Batching, batches

    bounds = [{"upper": ["10"]}, {"lower": ["10"], "upper": ["20"]}, {"lower": ["20"], "upper": ["30"]},
              {"lower": ["30"]}]  # fmt: skip
    lanes = [
        WorkItem.model_validate(item("big", lane={"index": i, "count": 4, **b})) for i, b in enumerate(bounds)
    ]
    small = [WorkItem.model_validate(item(f"t{i}")) for i in range(7)]
    plan = [*lanes, *small]  # the planner keeps a table's lanes together
    # 11 items, 4 children at once: batches of at most 3, each lane in a batch of its own.
    found = batches(plan, Batching(most=25, children=4))
    assert [len(b) for b in found] == [3, 3, 3, 2]
    assert [sum(1 for w in b if w.table == "big") for b in found] == [1, 1, 1, 1]
    assert sorted(w.model_dump_json() for b in found for w in b) == sorted(w.model_dump_json() for w in plan)
    # A large round: at most ExportBatchSize a child.
    many = [WorkItem.model_validate(item(f"t{i}")) for i in range(230)]
    assert [len(b) for b in batches(many, Batching(most=25, children=4))] == [23] * 10
    assert batches([], Batching()) == []


@pytest.mark.parametrize("count", [1, 7, 11, 230])
def test_a_manifest_reads_back_in_the_order_the_items_were_planned(count: int) -> None:
    """The CLI and the tests read the plan's items from round 0's manifest, whose batches deal
    the items out; reading them back restores the plan's order."""
    from aurora_sync.exporting.rounds import Batching, read_items, write_first_round

    plan = [WorkItem.model_validate(item(f"t{i}")) for i in range(count)]
    store = MemoryStore()
    key = write_first_round(store, RUN, plan, Batching(most=25, children=4))
    assert len(store.files[key]) > 1 or count == 1  # dealt into several batches
    assert read_items(store, key) == plan


def test_a_manifest_that_is_not_batches_of_work_items_is_refused() -> None:
    from aurora_sync.exporting.rounds import read_items

    store = MemoryStore({"a": [item("orders")], "b": [{"Items": [{"table": "orders"}]}]})
    with pytest.raises(ConfigError, match="is not a list of batches of work items"):
        read_items(store, "a")
    with pytest.raises(ConfigError, match="holds an entry that is not a work item"):
        read_items(store, "b")
