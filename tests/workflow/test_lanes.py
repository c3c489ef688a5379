"""Lanes end to end: large tables' backfills split into primary-key ranges by the real planner,
exported concurrently by the real state machine's Map, verified and merged once per table, and
compared with the source row by row.

The adversarial shapes are those tests/library/test_lanes.py proves row by row in S3: ties on the
cursor across lane and chunk boundaries, NULL cursors, a composite key, statistics that no longer
describe the table, a table of one row, and rows inserted, updated, deleted and moved from one
lane's key range to another while the lanes export.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from history_scan import map_run_children
from world import World, entered, open_world, plan_output, run_reacting

# Small tables split like large ones: a lane per 1,000 estimated rows, chunks of 1,000 rows.
SPLIT = {"rows_per_lane": 1000, "max_lanes": 4, "max_rows_per_chunk": 1000}

TABLES: dict[str, tuple[str, dict[str, Any]]] = {
    "lanes_ties": (
        "CREATE TABLE {schema}.ties (id bigint PRIMARY KEY, note text, updated_at timestamptz)",
        # No lookback: the incremental runs below read only what changed, not the last 900 s.
        {"table": "ties", "primary_key": ["id"], "lookback_seconds": 0, **SPLIT},
    ),
    "lanes_lines": (
        "CREATE TABLE {schema}.lines (tenant integer, id bigint, qty integer, "
        "updated_at timestamptz NOT NULL, PRIMARY KEY (tenant, id))",
        {"table": "lines", "primary_key": ["tenant", "id"], **SPLIT},
    ),
    "lanes_stale": (
        "CREATE TABLE {schema}.stale (id bigint PRIMARY KEY, note text, updated_at timestamptz NOT NULL) "
        "WITH (autovacuum_enabled = false)",
        {"table": "stale", "primary_key": ["id"], **SPLIT},
    ),
    "lanes_single": (
        "CREATE TABLE {schema}.single (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL)",
        {"table": "single", "primary_key": ["id"], **SPLIT},
    ),
    "lanes_moving": (
        "CREATE TABLE {schema}.moving (id bigint PRIMARY KEY, note text, updated_at timestamptz NOT NULL)",
        {"table": "moving", "primary_key": ["id"], **SPLIT},
    ),
    "lanes_versioned": (
        "CREATE SEQUENCE {schema}.versioned_seq; "
        "CREATE TABLE {schema}.versioned (id bigint PRIMARY KEY, note text, "
        "ver bigint NOT NULL DEFAULT nextval('{schema}.versioned_seq'))",
        {"table": "versioned", "primary_key": ["id"], "cursor": "ver", **SPLIT},
    ),
}
BACKFILLED = ["lanes_ties", "lanes_lines", "lanes_stale", "lanes_single"]


@pytest.fixture(scope="module")
def world(stack: dict[str, Any]) -> Iterator[World]:
    with open_world(stack, TABLES, prefix="lanes", parameters={"MaxConcurrency": 4}) as world:
        # 1,500 rows share one updated_at across the middle lanes' bounds; every 97th is NULL.
        world.execute(
            "INSERT INTO {schema}.ties SELECT i, 'note ' || i, CASE WHEN i % 97 = 0 THEN NULL "
            "WHEN i BETWEEN 1200 AND 2700 THEN timestamptz '2026-01-01 00:20:00+00' "
            "ELSE timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second' END "
            "FROM generate_series(1, 4000) i"
        )
        world.execute(
            "INSERT INTO {schema}.lines SELECT i % 3, i, i % 7, timestamptz '2026-01-01 00:00:00+00' "
            "+ (i / 10) * interval '1 second' FROM generate_series(1, 3000) i"
        )
        world.execute(
            "INSERT INTO {schema}.stale SELECT i, 'n' || i, now() FROM generate_series(1, 2500) i; "
            "ANALYZE {schema}.stale; "
            # Beyond every bound ANALYZE saw: all of these fall in the last lane.
            "INSERT INTO {schema}.stale SELECT i, 'late' || i, now() FROM generate_series(50001, 53500) i"
        )
        world.execute("INSERT INTO {schema}.single VALUES (1, now())")
        world.execute(
            "INSERT INTO {schema}.moving SELECT i, 'n' || i, now() - interval '1 hour' "
            "FROM generate_series(1, 4000) i"
        )
        world.execute(
            "INSERT INTO {schema}.versioned (id, note) SELECT i, 'n' || i FROM generate_series(1, 3000) i"
        )
        for table in ("ties", "lines", "single", "moving", "versioned"):
            world.execute(f"ANALYZE {{schema}}.{table}")
        world.apply()
        yield world


def lanes_planned(world: World, events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(item["table"] for item in world.planned_items(events))


def most_exports_at_once(world: World, description: dict[str, Any]) -> int:
    """The most export children (each exports one lane or table at a time) running at once,
    from their histories' first and last events."""
    sfn = world.engine.sfn
    edges = []
    for child in map_run_children(sfn, world.engine.events(description["executionArn"])):
        events = world.engine.events(child)
        edges += [(events[0]["timestamp"], 1), (events[-1]["timestamp"], -1)]
    running = most = 0
    for _, step in sorted(edges, key=lambda edge: (edge[0], edge[1])):
        running += step
        most = max(most, running)
    return most


def test_backfills_split_into_lanes_merge_once_each_with_parity(world: World) -> None:
    description, events = world.run({"tables": BACKFILLED})

    assert description["status"] == "SUCCEEDED", description.get("cause")
    planned = lanes_planned(world, events)
    assert planned == {"lanes_ties": 4, "lanes_lines": 3, "lanes_stale": 3, "lanes_single": 1}
    assert plan_output(events)["tables_planned"] == 4
    verdicts = {v["table"]: v for v in world.verify_output(events)["tables"]}
    assert len(world.verify_output(events)["tables"]) == 4  # one verdict per table, not per lane
    rows = {"lanes_ties": 4000, "lanes_lines": 3000, "lanes_stale": 6000, "lanes_single": 1}
    for name, count in rows.items():
        verdict = verdicts[name]
        assert (verdict["outcome"], verdict["rows_exported"]) == ("MERGED", count), verdict
    # Every lane was exported (one exporter call at least each), lanes side by side within
    # MaxConcurrency (4): the round's batches put each lane in a child of its own.
    assert entered(events).count("ExportChunk") >= sum(planned.values())
    assert 2 <= most_exports_at_once(world, description) <= 4
    world.assert_parity(*BACKFILLED)

    # Then incremental runs: split only when PostgreSQL estimates the window large.
    world.execute("UPDATE {schema}.ties SET note = 'few', updated_at = now() WHERE id <= 10")
    world.execute("ANALYZE {schema}.ties")
    description, events = world.run({"tables": ["lanes_ties"]})
    assert description["status"] == "SUCCEEDED", description.get("cause")
    assert lanes_planned(world, events) == {"lanes_ties": 1}

    # 3,000 rows stamped now: the window's estimate (EXPLAIN, from the statistics) is ~3,000 rows.
    world.execute("UPDATE {schema}.ties SET note = 'many', updated_at = now() WHERE id > 1000")
    world.execute("ANALYZE {schema}.ties")
    description, events = world.run({"tables": ["lanes_ties"]})
    assert description["status"] == "SUCCEEDED", description.get("cause")
    assert lanes_planned(world, events)["lanes_ties"] in {3, 4}  # ~3,000 rows, and the lookback's re-reads
    assert all(item.get("window", {}).get("watermark") for item in world.planned_items(events))
    world.assert_parity("lanes_ties")


def test_rows_changed_during_a_split_backfill_are_handled_as_in_one_lane(world: World) -> None:
    seen: list[str] = []  # the states entered so far
    verifying_when_changed: list[bool] = []

    def during_backfill(event: dict[str, Any]) -> None:
        if "stateEnteredEventDetails" in event:
            seen.append(event["stateEnteredEventDetails"]["name"])
        details = event.get("stateExitedEventDetails") or {}
        if verifying_when_changed or details.get("name") != "ExportChunk":
            return
        verifying_when_changed.append("Verify" in seen)
        # A row moved from the last lane's key range into the first lane's, a row updated, one
        # inserted into the first lane's range, one deleted: while other lanes still export.
        world.execute("UPDATE {schema}.moving SET id = -1, updated_at = now() WHERE id = 3990")
        world.execute("UPDATE {schema}.moving SET note = 'changed', updated_at = now() WHERE id = 2500")
        world.execute("INSERT INTO {schema}.moving VALUES (0, 'inserted', now())")
        world.execute("DELETE FROM {schema}.moving WHERE id = 1500")

    description, events = run_reacting(world, {"tables": ["lanes_moving"]}, during_backfill)

    assert description["status"] == "SUCCEEDED", description.get("cause")
    assert verifying_when_changed == [False], "the rows changed after the export, not during it"
    assert lanes_planned(world, events) == {"lanes_moving": 4}
    # The next run catches what the backfill could not see, as it would after one lane: changed
    # rows by their cursor, the moved row's old key and the deleted row by a key snapshot.
    world.configs["lanes_moving"]["hard_deletes"] = "reconcile"
    world.apply()
    description, events = world.run({"tables": ["lanes_moving"]})
    assert description["status"] == "SUCCEEDED", description.get("cause")
    assert lanes_planned(world, events) == {"lanes_moving": 1}  # a reconciling run is never split
    world.assert_parity("lanes_moving")


def test_an_integer_cursor_backfilled_in_lanes_is_read_incrementally_afterwards(world: World) -> None:
    """The lanes' exports run side by side. Each one's open snapshot transaction used to put the
    others' horizons before their samples of MAX(ver), and without a sample taken before the
    horizon an integer cursor's next window is the whole table: every run read it in full again,
    in lanes."""
    description, events = world.run({"tables": ["lanes_versioned"]})
    assert description["status"] == "SUCCEEDED", description.get("cause")
    assert lanes_planned(world, events)["lanes_versioned"] >= 2

    world.execute(
        "UPDATE {schema}.versioned SET note = 'changed', ver = nextval('{schema}.versioned_seq') "
        "WHERE id <= 5"
    )
    description, events = world.run({"tables": ["lanes_versioned"]})
    assert description["status"] == "SUCCEEDED", description.get("cause")
    (item,) = world.planned_items(events)
    assert item.get("window", {}).get("source", "final") == "final" and item["window"].get("watermark"), item
    (verdict,) = world.verify_output(events)["tables"]
    # The five new versions and the row at the window's start (windows include their start).
    assert (verdict["outcome"], verdict["rows_exported"]) == ("MERGED", 6), verdict
    world.assert_parity("lanes_versioned")
