"""Lanes: a large table's export split into primary-key ranges that the Map exports concurrently.

A full or initial export of a table PostgreSQL estimates at more than its config's
``rows_per_lane`` rows (``pg_class.reltuples``), or an incremental window its planner estimates
so (``EXPLAIN`` of the window's predicate: statistics only, no table read), becomes up to
``max_lanes`` work items, each with a ``messages.KeyRange``. The bounds are primary-key values at
even quantiles of what the catalog knows of the key's distribution:

- a single-column key: ``pg_stats.histogram_bounds`` (equi-depth bounds ANALYZE keeps);
- a composite key, or no statistics: a bounded ordered sample of keys (``TABLESAMPLE SYSTEM``
  of about ``SAMPLE_ROWS`` rows, a few pages on a large table).

Lanes are half-open [lower, upper) on the key's row value; the first has no lower bound and the
last no upper one, so every row lies in exactly one lane whatever the statistics said. Stale
statistics (rows added beyond the histogram's last bound) only make the lanes uneven: such rows
all go to the last lane. Each lane is keyset-chunked within its range like a whole table
(``export_query.chunk_predicate``), and the verifier merges the table once, after every lane's
result arrived (``verifying.lanes``).

Never split: mode ``full`` and reconciling runs (their key snapshot and data must be read in one
snapshot), and incremental windows of mode ``xmin`` (no statistics describe transaction ids).
Lanes of every table share the Map's MaxConcurrency, the per-run bound on Aurora's load.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg2 import sql

from .. import export_query as q
from ..config import LoadedTable
from ..connections import source_connection
from ..errors import SyncError
from ..messages import KeyRange, WorkItem
from ..observability import logger
from ..source_catalog import SourceColumn
from ..source_db import source_errors
from .plan import Plan

# Keys sampled for a composite key (or a key without statistics): enough for 64 lanes of even
# size within a few percent, and a few hundred pages of a large table.
SAMPLE_ROWS = 10_000


def lane_count(rows: int, *, rows_per_lane: int, max_lanes: int) -> int:
    """Lanes for ``rows`` estimated rows: one per ``rows_per_lane`` begun, at most ``max_lanes``;
    an estimate of 0 or less (never analyzed) is one lane."""
    if rows <= rows_per_lane:
        return 1
    return max(1, min(max_lanes, math.ceil(rows / rows_per_lane)))


def choose_bounds(ordered: Sequence[Sequence[str]], lanes: int) -> list[list[str]]:
    """The ``lanes - 1`` inner bounds at even quantiles of ``ordered`` (keys in the key's own
    order, from a histogram or a sample), equal neighbours dropped so the bounds strictly
    increase; fewer than requested when the keys have fewer distinct values."""
    if lanes < 2 or not ordered:
        return []
    bounds: list[list[str]] = []
    for lane in range(1, lanes):
        # Histogram bounds delimit len - 1 equal buckets: quantile q is at index q * (len - 1).
        value = list(ordered[round(lane * (len(ordered) - 1) / lanes)])
        if not bounds or bounds[-1] != value:
            bounds.append(value)
    # The first bound must leave the first lane something: a bound equal to the smallest key
    # known would make an empty first lane.
    if bounds and bounds[0] == list(ordered[0]):
        bounds = bounds[1:]
    return bounds


def split(item: WorkItem, bounds: Sequence[Sequence[str]]) -> list[WorkItem]:
    """``item`` as one work item per lane between ``bounds`` (the item itself without bounds)."""
    if not bounds:
        return [item]
    edges: list[list[str] | None] = [None, *[list(b) for b in bounds], None]
    count = len(edges) - 1
    return [
        item.model_copy(update={"lane": KeyRange(index=i, count=count, lower=edges[i], upper=edges[i + 1])})
        for i in range(count)
    ]


def splittable(item: WorkItem) -> bool:
    """Whether ``item``'s export may be split (see the module docstring)."""
    if item.mode == "full" or item.reconcile or item.lane is not None:
        return False
    return item.mode == "cursor" or item.window.watermark is None


# --- what the catalog says ------------------------------------------------------------------------
_HISTOGRAM_SQL = """
SELECT bound
FROM pg_catalog.pg_stats s
CROSS JOIN LATERAL unnest(s.histogram_bounds::text::text[]) WITH ORDINALITY AS h(bound, n)
WHERE s.schemaname = %(schema)s AND s.tablename = %(table)s AND s.attname = %(column)s
  AND NOT s.inherited
ORDER BY n
"""


def read_histogram(cur: Any, schema: str, table: str, column: str) -> list[list[str]]:
    """The column's histogram bounds as text, in the column's order (empty: never analyzed, or
    too few distinct values for a histogram)."""
    cur.execute(_HISTOGRAM_SQL, {"schema": schema, "table": table, "column": column})
    return [[str(row[0])] for row in cur.fetchall()]


def sample_query(plan: q.ExportPlan, *, estimate: int) -> sql.Composable:
    """An ordered sample of about ``SAMPLE_ROWS`` keys (``TABLESAMPLE SYSTEM``: whole pages, so
    a few hundred page reads on a large table); rows with a NULL key column are left out."""
    percent = 100.0 if estimate <= SAMPLE_ROWS else max(0.0001, 100.0 * SAMPLE_ROWS / estimate)
    key = plan.primary_key
    return sql.SQL(
        "SELECT {cols} FROM {t} TABLESAMPLE SYSTEM ({p}) REPEATABLE (0) WHERE {present} ORDER BY {order}"
    ).format(
        # Aliased: ORDER BY resolves output names first, and `"id"::text` keeps the name id, which
        # would sort the keys as text.
        cols=sql.SQL(", ").join(
            sql.SQL("{}::text AS {}").format(sql.Identifier(c.name), sql.Identifier(f"_lane_bound_{i}"))
            for i, c in enumerate(key)
        ),
        t=plan.relation,
        p=sql.Literal(round(percent, 6)),
        present=sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c.name)) for c in key),
        order=sql.SQL(", ").join(sql.Identifier(c.name) for c in key),
    )


def window_estimate_query(plan: q.ExportPlan, item: WorkItem) -> sql.Composable:
    """``EXPLAIN`` of the window's rows: PostgreSQL's estimate from its statistics, no rows read."""
    predicate = q.window_predicate(plan, item.window)
    return sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {t} WHERE {p}").format(t=plan.relation, p=predicate)


def estimated_window_rows(cur: Any, plan: q.ExportPlan, item: WorkItem) -> int:
    cur.execute(window_estimate_query(plan, item))
    document = cur.fetchone()[0]
    if isinstance(document, str):
        document = json.loads(document)
    return int(document[0]["Plan"]["Plan Rows"])


def key_bounds(cur: Any, plan: q.ExportPlan, *, lanes: int, estimate: int) -> list[list[str]]:
    """Inner lane bounds for ``lanes`` lanes, from the histogram of a single-column key or else a
    sample of keys."""
    ordered: list[list[str]] = []
    if len(plan.primary_key) == 1:
        ordered = read_histogram(cur, plan.schema, plan.table, plan.primary_key[0].name)
    if len(ordered) < lanes:
        cur.execute(sample_query(plan, estimate=estimate))
        ordered = [[str(v) for v in row] for row in cur.fetchall()]
    return choose_bounds(ordered, lanes)


def split_lanes(
    plan: Plan,
    tables: Sequence[LoadedTable],
    *,
    catalogs: Mapping[str, list[SourceColumn] | None],
    estimates: Mapping[str, int],
) -> None:
    """Replace each large table's work item in ``plan`` by its lanes (module docstring). Opens
    a source connection only when some table's row estimate exceeds its ``rows_per_lane``."""
    configs = {t.name: t.config for t in tables}
    candidates = [
        item
        for item in plan.items
        if splittable(item)
        and item.table in configs
        and configs[item.table].max_lanes > 1
        and estimates.get(item.table, -1) > configs[item.table].rows_per_lane
        and catalogs.get(item.table)
    ]
    if not candidates:
        return
    lanes_of: dict[str, list[WorkItem]] = {}
    relations = sorted({(i.source.schema_name, i.source.table) for i in candidates})
    conn = source_connection(application_name="aurora-sync-planner")
    try:
        with (
            source_errors(f"sizing the lanes of {len(candidates)} table(s)", conn=conn, relations=relations),
            conn.cursor() as cur,
        ):
            for item in candidates:
                config = configs[item.table]
                catalog = catalogs[item.table] or []
                try:
                    export_plan = q.item_plan(catalog, item)
                except SyncError:
                    continue  # the exporter reports it; an unsplit item fails the same way
                estimate = estimates[item.table]
                rows = (
                    estimate
                    if item.window.watermark is None
                    else estimated_window_rows(cur, export_plan, item)
                )
                count = lane_count(rows, rows_per_lane=config.rows_per_lane, max_lanes=config.max_lanes)
                if count < 2:
                    continue
                bounds = key_bounds(cur, export_plan, lanes=count, estimate=estimate)
                lanes_of[item.table] = split(item, bounds)
                logger.info(
                    "table split into lanes",
                    extra={"table": item.table, "estimated_rows": rows, "lanes": len(lanes_of[item.table])},
                )
        conn.rollback()
    finally:
        conn.close()
    plan.items = [lane for item in plan.items for lane in lanes_of.get(item.table, [item])]
