"""A table's exported keys leave the state (issue 15): a chunk that leaves its table MORE writes its
own keys to a chunk file under the run prefix (``exporting.rounds.record_chunk``), the position and
the results carry only counts and the call's own keys, and the round step puts the table's whole
key list back together in settled.json (``exporting.rounds.settle_keys``), so nothing a state
carries grows with a table's chunks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from memory_store import MemoryStore

from aurora_sync.errors import ConfigError
from aurora_sync.exporting.export import chunk_result
from aurora_sync.exporting.rounds import (
    MAP_RESULTS_PREFIX,
    RUNS_PREFIX,
    advance,
    chunk_key,
    deferred,
    record_chunk,
    settle_keys,
    settled_key,
)
from aurora_sync.messages import ChunkPosition, ExportResult, FailedExport, SourceSnapshot, WorkItem

RUN = "run-0001"
SNAPSHOT = SourceSnapshot(
    order="12345678901234567890123456",
    source_time="2026-12-03T05:00:00.000000+00:00",
    horizon="2026-12-03T04:59:59.000000+00:00",
    cursor_type="timestamptz",
)


def work_item(table: str = "orders", **extra: Any) -> WorkItem:
    return WorkItem.model_validate(
        {
            "run_id": RUN,
            "table": table,
            "source": {"schema": "shop", "table": table},
            "primary_key": ["id"],
            "cursor": "updated_at",
            "max_rows_per_chunk": 1000,
            **extra,
        }
    )


def csv_key(table: str, chunk: int, part: int = 1) -> str:
    """A key as long as the exporter's (about 100 bytes), distinct per chunk and part."""
    name = f"s{int(SNAPSHOT.order):026d}-01967a3c-5b2e-7c4d-9e8f-{chunk:012d}.csv"
    return f"{table}/2026/12/03/05/{name}" + (f"_part{part}" if part > 1 else "")


def chunk(item: WorkItem, *, last: bool = False, files: int = 1) -> ExportResult:
    """The exporter's result for the next chunk of ``item``: 1,000 rows in ``files`` file(s), or
    no row at all with ``files=0``."""
    position = item.position or ChunkPosition(phase="cursor")
    number = position.chunk + 1
    written = {
        "rows": 1000 if files else 0,
        "bytes": 100_000 if files else 0,
        "files": files,
        "keys": [csv_key(item.table, number, part) for part in range(1, files + 1)],
    }
    boundary = (
        None
        if last
        else ChunkPosition(
            phase="cursor", cursor=f"2026-01-01T00:00:{number % 60:02d}Z", key=[str(number * 1000)]
        )
    )
    return chunk_result(
        item,
        position,
        written,
        {"files": [], "rows": 0},
        next_position=boundary,
        snapshot=SNAPSHOT,
        quarantined=0,
        example=None,
        drift=[],
        reconcile=False,
        warnings=[],
    )


def size(model: Any) -> int:
    return len(model.model_dump_json(by_alias=True, exclude_none=True))


def export_table(store: MemoryStore, item: WorkItem, chunks: int) -> ExportResult:
    """Every chunk of ``item`` as the export child runs them, the exporter recording each."""
    for number in range(1, chunks + 1):
        result = chunk(item, last=number == chunks)
        record_chunk(store, result)
        if result.next is None:
            return result
        item = result.next
    raise AssertionError("the last chunk left the table MORE")


def test_chunk_2000_carries_no_more_than_chunk_2() -> None:
    """The result, its next item and that item's position of chunk 2,000 are as large as chunk 2's
    but for the digits of the counters (rows, bytes, chunk), where carrying every key would add
    about 2,000 x 100 bytes, twice."""
    item, results = work_item(), {}
    for number in range(1, 2001):
        result = chunk(item)
        results[number] = result
        assert result.next is not None
        item = result.next
    second, last = results[2], results[2000]
    assert last.keys == [csv_key("orders", 2000)] and last.files == 2000 and last.chunks == 2000
    assert last.next is not None and second.next is not None
    assert last.next.position is not None and second.next.position is not None
    # Counters (rows, bytes, files, chunk, the keyset's last id) gain three digits each, in the
    # result and again in its position: under 48 bytes. Each carried key would add about 100.
    digits = 48
    assert size(last) - size(second) <= digits
    assert size(last.next) - size(second.next) <= digits
    assert size(last.next.position) - size(second.next.position) <= digits
    assert "keys" not in ChunkPosition.model_fields


def test_a_deferred_item_carries_no_keys() -> None:
    item = chunk(chunk(work_item()).next).next  # type: ignore[arg-type]
    assert item is not None
    waiting = deferred(item)
    assert (waiting.keys, waiting.files, waiting.chunks, waiting.next) == ([], 2, 2, item)


def test_a_chunk_that_leaves_its_table_more_records_its_own_keys_and_nothing_else_does() -> None:
    store = MemoryStore()
    first = chunk(work_item(), files=2)
    record_chunk(store, first)
    key = chunk_key(RUN, "orders", None, 1)
    assert key == f"{RUNS_PREFIX}/{RUN}/chunks/orders/all/000001.json"
    assert store.files == {key: {"table": "orders", "chunk": 1, "keys": first.keys}}
    # A retried chunk writes the same file again, with the retry's keys.
    assert first.next is not None
    record_chunk(store, first.model_copy(update={"keys": [csv_key("orders", 1, 9)]}))
    assert store.files[key]["keys"] == [csv_key("orders", 1, 9)]
    # The last chunk's keys ride its result; an item deferred unexported has none.
    record_chunk(store, chunk(first.next, last=True))
    record_chunk(store, deferred(first.next))
    assert list(store.files) == [key]


def test_a_lanes_chunk_files_are_its_own() -> None:
    lane = work_item(lane={"index": 2, "count": 4, "lower": ["20"], "upper": ["30"]})
    assert chunk_key(RUN, "orders", lane.lane, 7) == f"{RUNS_PREFIX}/{RUN}/chunks/orders/lane-2/000007.json"
    with pytest.raises(ConfigError):
        chunk_key(RUN, "orders", None, 0)


def test_settling_puts_every_key_of_a_table_back_in_chunk_order() -> None:
    store = MemoryStore()
    result = export_table(store, work_item(), 5)
    assert result.keys == [csv_key("orders", 5)] and (result.files, result.chunks) == (5, 5)

    [settled] = settle_keys(store, [result])

    assert isinstance(settled, ExportResult)
    assert settled.keys == [csv_key("orders", n) for n in range(1, 6)]
    assert settled.model_copy(update={"keys": result.keys}) == result
    assert sorted(store.reads) == [chunk_key(RUN, "orders", None, n) for n in range(1, 5)]


def test_a_table_whose_last_call_found_nothing_more_reads_every_chunk_file() -> None:
    """A chunk that exactly filled ``max_rows_per_chunk`` leaves the table MORE; the next call finds
    no row and writes nothing: every key is in the chunk files."""
    store = MemoryStore()
    item = work_item()
    for _ in range(3):
        result = chunk(item)
        record_chunk(store, result)
        assert result.next is not None
        item = result.next
    nothing = chunk(item, last=True, files=0)
    assert (nothing.status, nothing.keys, nothing.files, nothing.chunks) == ("EXPORTED", [], 3, 3)

    [settled] = settle_keys(store, [nothing])

    assert isinstance(settled, ExportResult)
    assert settled.keys == [csv_key("orders", n) for n in range(1, 4)]


def test_single_chunk_tables_cost_no_read() -> None:
    store = MemoryStore()
    one = export_table(store, work_item("a"), 1)
    empty = chunk(work_item("b"), last=True).model_copy(
        update={"keys": [], "files": 0, "chunks": 0, "status": "EMPTY"}
    )
    failed = FailedExport.model_validate(
        {"table": "c", "status": "FAILED", "error": {"Error": "SourceTimeout", "Cause": "timeout"}}
    )

    assert settle_keys(store, [one, empty, failed]) == [one, empty, failed]
    assert store.reads == [] and store.files == {}


def test_a_missing_chunk_file_fails_its_table_naming_the_chunk_never_a_shorter_list() -> None:
    store = MemoryStore()
    result = export_table(store, work_item(target="SHOP_ORDERS"), 4)
    other = export_table(store, work_item("items"), 2)
    del store.files[chunk_key(RUN, "orders", None, 2)]

    lost, kept = settle_keys(store, [result, other])

    assert isinstance(lost, FailedExport) and isinstance(kept, ExportResult)
    assert (lost.table, lost.error.error, lost.target, lost.run_id) == (
        "orders",
        "ExportIncomplete",
        "SHOP_ORDERS",
        RUN,
    )
    assert "chunk 2 of table orders" in lost.message
    assert chunk_key(RUN, "orders", None, 2) in lost.message
    assert '{"tables": ["orders"]}' in lost.message
    assert kept.keys == [csv_key("items", 1), csv_key("items", 2)]


def test_a_chunk_file_of_another_chunk_is_a_config_error() -> None:
    store = MemoryStore()
    result = export_table(store, work_item(), 2)
    store.files[chunk_key(RUN, "orders", None, 1)]["chunk"] = 7
    with pytest.raises(ConfigError, match="chunk 1 of table orders"):
        settle_keys(store, [result])


def test_the_round_step_writes_each_tables_whole_key_list_to_settled_json() -> None:
    store = MemoryStore()
    result = export_table(store, work_item(), 3)
    folder = f"{MAP_RESULTS_PREFIX}/map-run-id/"
    entry = {
        "ExecutionArn": "arn:aws:states:us-east-1:123456789012:express:sync/ExportRound:c0",
        "Input": json.dumps({"Items": [work_item().model_dump(mode="json", by_alias=True)]}),
        "Output": json.dumps([result.model_dump(mode="json", by_alias=True, exclude_none=True)]),
        "Status": "SUCCEEDED",
    }
    store.files[f"{folder}SUCCEEDED_0.json"] = [entry]
    store.files[f"{folder}manifest.json"] = {
        "ResultFiles": {"SUCCEEDED": [{"Key": f"{folder}SUCCEEDED_0.json", "Size": 1}], "FAILED": []}
    }

    advance(store, RUN, 0, f"{folder}manifest.json")

    [settled] = store.files[settled_key(RUN, 0)]
    assert settled["keys"] == [csv_key("orders", n) for n in range(1, 4)]
    assert settled["files"] == 3
