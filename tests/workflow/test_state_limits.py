"""The real state machine on hundreds of tables and one table of hundreds of chunks, with Step
Functions' limits enforced locally (issue 15's proof).

The old design carried the plan and every table's export result in the state after its INLINE
Map, so about two hundred tables passed the 256 KiB payload limit (``States.DataLimitExceeded``),
and a table's chunks added events to one history. The export Distributed Map keeps the items and
results in S3 and runs the chunk loops in child executions: this run of TABLES tiny tables with
long names plus one table of CHUNKS chunks must succeed, end in parity, and no payload of the
parent or of any child may pass 256 KiB, nor any history 25,000 events (``history_scan``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from history_scan import map_run_children, scan_execution
from world import World, entered, open_world, verify_output

TABLES = int(os.environ.get("AURORA_SYNC_LIMITS_TABLES", "230"))
# A chunk holds at least 1,000 rows (the config's minimum): CHUNKS chunks of exactly 1,000.
CHUNKS = int(os.environ.get("AURORA_SYNC_LIMITS_CHUNKS", "300"))
# Names as long as configs and PostgreSQL allow (63): a table's names recur in its work item and
# export result, the largest things a payload could hold per table.
LONG = "_named_as_long_as_a_config_and_postgresql_allow_it_abc"
CHUNKED = "chunked"
MAX_PAYLOAD_BYTES = 262_144
MAX_HISTORY_EVENTS = 25_000

# The Snowflake objects of 230 tables take minutes in the emulator (about 1.5 s a table).
pytestmark = pytest.mark.timeout(2400)


@pytest.fixture(scope="module")
def world(stack: dict[str, Any]) -> Iterator[World]:
    tables: dict[str, tuple[str, dict[str, Any]]] = {
        f"limits{i:03d}{LONG}": (
            f"CREATE TABLE {{schema}}.t{i:03d}{LONG} (id bigint PRIMARY KEY, "
            "updated_at timestamptz NOT NULL DEFAULT now())",
            {"table": f"t{i:03d}{LONG}", "primary_key": ["id"]},
        )
        for i in range(TABLES)
    }
    tables[CHUNKED] = (
        "CREATE TABLE {schema}.chunked (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL)",
        {"table": CHUNKED, "primary_key": ["id"], "max_rows_per_chunk": 1000},
    )
    with open_world(stack, tables, prefix="limits") as world:
        for i in range(TABLES):
            world.execute(f"INSERT INTO {{schema}}.t{i:03d}{LONG} (id) VALUES (1)")
        # Distinct timestamps: every chunk ends exactly at 1,000 rows.
        world.execute(
            "INSERT INTO {schema}.chunked (id, updated_at) SELECT g, timestamptz '2026-01-01' + g * "
            f"interval '1 second' FROM generate_series(1, {CHUNKS * 1000}) g"
        )
        world.apply()
        yield world


def test_hundreds_of_tables_and_hundreds_of_chunks_stay_within_step_functions_limits(world: World) -> None:
    started = time.monotonic()
    description, events = world.run(timeout_s=1500)
    run_seconds = time.monotonic() - started
    assert description["status"] == "SUCCEEDED", description

    sfn = world.engine.sfn
    parent = world.engine.events(description["executionArn"])
    children = map_run_children(sfn, parent)
    scan = scan_execution(sfn, description["executionArn"], child_executions=children)
    largest = scan.largest_anywhere
    assert largest is not None and largest.size <= MAX_PAYLOAD_BYTES, largest
    assert scan.most_events < MAX_HISTORY_EVENTS, scan.most_events
    # The chunk loops ran in the children; the chunked table outlasted a child and was resumed
    # in later rounds, each a Map of its own in the parent.
    assert entered(parent).count("ExportChunk") == 0
    assert entered(events).count("ExportChunk") >= TABLES + CHUNKS
    assert entered(parent).count("ExportRound") > 1

    report = {t["table"]: t for t in verify_output(events)["tables"]}
    assert {t["outcome"] for t in report.values()} == {"MERGED"}
    assert len(report) == TABLES + 1
    assert report[CHUNKED]["rows_exported"] == report[CHUNKED]["rows_loaded"] == CHUNKS * 1000
    assert report[CHUNKED]["files"] == CHUNKS
    world.assert_parity(CHUNKED, *sorted(world.configs)[:: max(1, TABLES // 10)])
    print(
        f"\n{TABLES} tables + {CHUNKS} chunks in {run_seconds:.0f} s: {len(children)} child executions, "
        f"{entered(parent).count('ExportRound')} rounds, most events {scan.most_events}, "
        f"largest payload {largest.size} B ({largest.state})"
    )
