"""The real state machine on hundreds of tables and one table of hundreds of chunks, with Step
Functions' limits enforced locally (issue 15's proof).

The old design carried the plan and every table's export result in the state after its INLINE
Map, so about two hundred tables passed the 256 KiB payload limit (``States.DataLimitExceeded``),
and a table's chunks added events to one history. The export Distributed Map keeps the items and
results in S3 and runs the chunk loops in child executions: this run of TABLES tiny tables with
long names plus one table of CHUNKS chunks must succeed, end in parity, and no payload of the
parent or of any child may pass 256 KiB, nor any history 25,000 events (``history_scan``).
``AURORA_SYNC_LIMITS_TABLES`` / ``_CHUNKS`` run it bigger; bench/scale_bench.py runs 2,000 of each.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from scale_world import (
    CHUNKED,
    MAX_HISTORY_EVENTS,
    MAX_PAYLOAD_BYTES,
    ROWS_PER_CHUNK,
    open_scale_world,
    run_scale_world,
)
from world import World, entered

TABLES = int(os.environ.get("AURORA_SYNC_LIMITS_TABLES", "200"))
CHUNKS = int(os.environ.get("AURORA_SYNC_LIMITS_CHUNKS", "200"))

pytestmark = pytest.mark.timeout(2400)


@pytest.fixture(scope="module")
def world(stack: dict[str, Any]) -> Iterator[World]:
    with open_scale_world(stack, TABLES, CHUNKS) as world:
        yield world


def test_hundreds_of_tables_and_hundreds_of_chunks_stay_within_step_functions_limits(world: World) -> None:
    run = run_scale_world(world, timeout_s=1500)
    assert run.succeeded, run.failure

    largest = run.scan.largest_anywhere
    assert largest is not None and largest.size <= MAX_PAYLOAD_BYTES, largest
    assert run.scan.most_events < MAX_HISTORY_EVENTS, run.scan.most_events
    # The chunk loops ran in the children; the chunked table outlasted a child and was resumed
    # in later rounds, each a Map of its own in the parent.
    assert entered(run.parent).count("ExportChunk") == 0
    assert entered(run.events).count("ExportChunk") >= TABLES + CHUNKS
    assert run.rounds > 1

    report = {t["table"]: t for t in world.verify_output(run.events)["tables"]}
    assert {t["outcome"] for t in report.values()} == {"MERGED"}
    assert len(report) == TABLES + 1
    assert report[CHUNKED]["rows_exported"] == report[CHUNKED]["rows_loaded"] == CHUNKS * ROWS_PER_CHUNK
    assert report[CHUNKED]["files"] == CHUNKS
    world.assert_parity(CHUNKED, *sorted(world.configs)[:: max(1, TABLES // 10)])
    print(f"\n{TABLES} tables + {CHUNKS} chunks: {run.summary()}")
