"""Lanes on the local stack: bounds from PostgreSQL's catalog, and the exporter covering every row
of a split table exactly once, read back from what Aurora wrote to S3.

Each case is what could make a split export lose or repeat a row: a row on a lane boundary, a
cursor value shared across lane and chunk boundaries, NULL cursors, a composite key, a key
column that may be NULL, statistics that no longer describe the table, a table of one row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from exporter_calls import FakeContext, export_all, item, read_rows
from psycopg2 import sql

from aurora_sync import export_query as q
from aurora_sync.errors import SourceObjectMissing
from aurora_sync.messages import WorkItem
from aurora_sync.planning.lanes import estimated_window_rows, key_bounds, read_histogram, split
from aurora_sync.source_catalog import read_columns
from exporter.app import lambda_handler


def table(schema: str, name: str) -> sql.Composable:
    return sql.Identifier(schema, name)


def export_plan(cur: Any, work: WorkItem) -> q.ExportPlan:
    return q.item_plan(read_columns(cur, work.source.schema_name, work.source.table), work)


def lanes_of(admin: Any, event: dict[str, Any], lanes: int) -> list[WorkItem]:
    """The event split as the planner splits it, from the table's statistics as they are."""
    work = WorkItem.model_validate(event)
    with admin.cursor() as cur:
        plan = export_plan(cur, work)
        cur.execute(
            sql.SQL("SELECT reltuples::bigint FROM pg_class WHERE oid = {}::regclass").format(
                sql.Literal(f'"{work.source.schema_name}"."{work.source.table}"')
            )
        )
        estimate = int(cur.fetchone()[0])
        bounds = key_bounds(cur, plan, lanes=lanes, estimate=estimate)
    return split(work, bounds)


def export_lanes(lanes: list[WorkItem]) -> list[dict[str, Any]]:
    """Every lane exported to the end, as the Map's iterations do: each lane's last result, with
    the warnings of all its calls (a warning rides the call that found it)."""
    finals = []
    for lane in lanes:
        calls, final = export_all(lane.model_dump(mode="json", by_alias=True, exclude_none=True))
        finals.append({**final, "warnings": [w for call in calls for w in call["warnings"]]})
    return finals


def exported(
    s3: Any, bucket: str, results: list[dict[str, Any]], columns: int = 1
) -> Counter[tuple[Any, ...]]:
    """How often each key (its first ``columns`` CSV fields) was exported over every lane."""
    keys = [key for result in results for key in result["keys"]]
    return Counter(tuple(row[:columns]) for row in read_rows(s3, bucket, keys))


@pytest.fixture
def orders(admin: Any, schema: str) -> Iterator[sql.Composable]:
    """4,000 orders, ids 1..4000; 1,500 share one updated_at across the middle lanes' bounds and
    the 1,000-row chunks inside them; every 97th has a NULL updated_at."""
    t = table(schema, "orders")
    with admin.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, note text, updated_at timestamptz)").format(t)
        )
        cur.execute(
            sql.SQL(
                "INSERT INTO {} SELECT i, 'note ' || i, CASE WHEN i % 97 = 0 THEN NULL "
                "WHEN i BETWEEN 1200 AND 2700 THEN timestamptz '2026-01-01 12:00:00+00' "
                "ELSE timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second' END "
                "FROM generate_series(1, 4000) i"
            ).format(t)
        )
        cur.execute(sql.SQL("ANALYZE {}").format(t))
    yield t


# A full export's lanes walk the key; a window's lanes walk (cursor, key) like an unsplit table,
# where the tie on updated_at spans chunk boundaries inside the lanes.
INITIAL = {"watermark": "2025-06-01T00:00:00+00:00", "lookback_seconds": 0, "source": "initial_watermark"}


@pytest.mark.parametrize("window", [None, INITIAL], ids=["full", "initial-watermark"])
def test_lanes_cover_ties_boundaries_and_null_cursors_exactly_once(
    env: dict[str, str],
    admin: Any,
    s3: Any,
    *,
    schema: str,
    orders: sql.Composable,
    window: dict[str, Any] | None,
) -> None:
    event = item(schema, max_rows_per_chunk=400)
    if window is not None:
        event["window"] = window
    lanes = lanes_of(admin, event, 4)
    assert [lane.lane.index for lane in lanes if lane.lane] == [0, 1, 2, 3]
    bounds = [int(lane.lane.lower[0]) for lane in lanes if lane.lane and lane.lane.lower]
    # From pg_stats' histogram: about every 1,000th id.
    assert all(
        abs(bound - expected) < 150 for bound, expected in zip(bounds, (1000, 2000, 3000), strict=True)
    )
    with admin.cursor() as cur:
        # A row exactly on each bound: the half-open ranges give it to the upper lane only.
        cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE id = ANY(%s)").format(orders), (bounds,))
        assert cur.fetchone()[0] == 3

    results = export_lanes(lanes)

    seen = exported(s3, env["EXPORT_BUCKET"], results)
    # No window selects a NULL cursor: only the full export reads those rows.
    expected = [i for i in range(1, 4001) if window is None or i % 97]
    assert sorted(int(k[0]) for k in seen) == expected
    assert set(seen.values()) == {1}
    assert sum(r["rows"] for r in results) == len(expected)
    assert all(r["chunks"] >= 2 for r in results)  # chunk boundaries inside every lane
    assert all(
        r["lane"] == lane.lane.model_dump(exclude_none=True)
        for r, lane in zip(results, lanes, strict=True)
        if lane.lane
    )
    # The whole-table warning (NULL cursors) is reported once, by the first lane.
    nulls = [w for r in results for w in r["warnings"] if "NULL 'updated_at'" in w]
    assert len(nulls) == 1 and nulls[0].startswith("41 row(s)")
    assert all(r["snapshot"] for r in results)


def test_a_composite_key_is_split_on_a_sample_of_its_row_values(
    env: dict[str, str], admin: Any, schema: str, s3: Any
) -> None:
    t = table(schema, "lines")
    with admin.cursor() as cur:
        cur.execute(
            sql.SQL(
                "CREATE TABLE {} (tenant integer, id bigint, updated_at timestamptz NOT NULL, "
                "PRIMARY KEY (tenant, id))"
            ).format(t)
        )
        # Few tenants: bounds must fall inside a tenant, on (tenant, id) row values.
        cur.execute(
            sql.SQL(
                "INSERT INTO {} SELECT i % 3, i, timestamptz '2026-01-01 00:00:00+00' "
                "+ (i / 10) * interval '1 second' FROM generate_series(1, 3000) i"
            ).format(t)
        )
        cur.execute(sql.SQL("ANALYZE {}").format(t))
    event = item(schema, table="lines", name="lines", primary_key=["tenant", "id"], max_rows_per_chunk=1000)
    lanes = lanes_of(admin, event, 3)
    assert len(lanes) == 3 and all(
        len(lane.lane.lower or lane.lane.upper or []) == 2 for lane in lanes if lane.lane
    )

    results = export_lanes(lanes)

    seen = exported(s3, env["EXPORT_BUCKET"], results, columns=2)
    assert len(seen) == 3000 and set(seen.values()) == {1}
    # Even within a few percent: the sample read whole pages, not the first rows.
    assert all(abs(r["rows"] - 1000) < 200 for r in results), [r["rows"] for r in results]


def test_a_key_column_that_may_be_null_is_claimed_by_exactly_one_lane(
    env: dict[str, str], admin: Any, schema: str, s3: Any
) -> None:
    # A unique key configured as the key (mode xmin walks it): NULL codes cannot be compared,
    # yet each such row must be exported once, by one lane, and reported as quarantined.
    t = table(schema, "codes")
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE TABLE {} (code integer UNIQUE, label text)").format(t))
        cur.execute(
            sql.SQL(
                "INSERT INTO {} SELECT CASE WHEN i % 500 = 0 THEN NULL ELSE i END, 'l' || i "
                "FROM generate_series(1, 3000) i"
            ).format(t)
        )
        cur.execute(sql.SQL("ANALYZE {}").format(t))
    event = item(
        schema,
        table="codes",
        name="codes",
        primary_key=["code"],
        mode="xmin",
        cursor=None,
        max_rows_per_chunk=1000,
    )
    lanes = lanes_of(admin, event, 3)
    assert len(lanes) == 3

    results = export_lanes(lanes)

    rows = [row for r in results for row in read_rows(s3, env["EXPORT_BUCKET"], r["keys"])]
    assert len(rows) == 3000
    assert Counter(row[1] for row in rows).most_common(1)[0][1] == 1  # every label once
    assert sum(r["quarantined"] for r in results) == 6


def test_stale_statistics_only_make_the_last_lane_larger(
    env: dict[str, str], admin: Any, schema: str, s3: Any, orders: sql.Composable
) -> None:
    with admin.cursor() as cur:
        cur.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(orders))
        # ANALYZE saw ids 1..4000; now 6,000 more rows lie beyond its last histogram bound.
        cur.execute(
            sql.SQL(
                "INSERT INTO {} SELECT i, 'late ' || i, now() FROM generate_series(100001, 106000) i"
            ).format(orders)
        )
    lanes = lanes_of(admin, item(schema, max_rows_per_chunk=1000), 4)
    assert len(lanes) == 4

    results = export_lanes(lanes)

    seen = exported(s3, env["EXPORT_BUCKET"], results)
    assert len(seen) == 10_000 and set(seen.values()) == {1}
    assert results[-1]["rows"] > 6000 and results[-1]["chunks"] > 6


def test_a_table_of_one_row_stays_one_lane(env: dict[str, str], admin: Any, schema: str, s3: Any) -> None:
    t = table(schema, "single")
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, updated_at timestamptz)").format(t))
        cur.execute(sql.SQL("INSERT INTO {} VALUES (42, now())").format(t))
        cur.execute(sql.SQL("ANALYZE {}").format(t))
        assert read_histogram(cur, schema, "single", "id") == []
    (alone,) = lanes_of(admin, item(schema, table="single", name="single"), 4)
    assert alone.lane is None
    (result,) = export_lanes([alone])
    assert (result["rows"] == 1 and "lane" not in result) or result.get("lane") is None


def test_an_incremental_window_is_sized_by_postgresql_s_estimate(
    admin: Any, schema: str, orders: sql.Composable
) -> None:
    window = {"watermark": "2026-01-01T00:50:00+00:00", "lookback_seconds": 0, "source": "final"}
    work = WorkItem.model_validate(item(schema, window=window))
    with admin.cursor() as cur:
        estimate = estimated_window_rows(cur, export_plan(cur, work), work)
        cur.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE updated_at >= %s").format(orders), (window["watermark"],)
        )
        actual = cur.fetchone()[0]
    assert actual > 0 and abs(estimate - actual) < actual * 0.2, (estimate, actual)


def test_a_failing_lane_names_itself_in_the_error(
    env: dict[str, str], admin: Any, schema: str, orders: sql.Composable
) -> None:
    lanes = lanes_of(admin, item(schema), 2)
    last = lanes[1].lane
    assert last is not None and last.lower is not None
    with admin.cursor() as cur:
        cur.execute(sql.SQL("ALTER TABLE {} RENAME COLUMN updated_at TO changed_at").format(orders))
    with pytest.raises(SourceObjectMissing) as caught:
        lambda_handler(lanes[1].model_dump(mode="json", by_alias=True, exclude_none=True), FakeContext())
    assert str(caught.value).startswith(
        f"lane 2 of 2 (id from {last.lower[0]} up to the end) of table orders: "
    )
    assert "'updated_at'" in str(caught.value)
