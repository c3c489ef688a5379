"""Benchmark 3: an incremental run on the 1M-row table with 1,000 changed rows, vs the full export.

The change: every 1,000th row gets ``updated_at`` past the table's last original stamp (T0), as
if 1,000 rows had been updated since the last sync whose watermark is T0. The incremental window
is the planner's: ``updated_at > T0 - 900 s`` (the default ``lookback_seconds``), so it also
re-reads the ~900 unchanged rows stamped in the lookback.

For each window it shows what PostgreSQL read for the exporter's actual export SELECT — built by
``aurora_sync.export_query`` exactly as ``exporting.export.export_chunk`` builds it for the first chunk —
from ``EXPLAIN (ANALYZE, BUFFERS)``: the scan nodes, rows they read (returned + removed by
filter), shared buffers touched. Then it times the real exporter handler on each window
(child processes, medians).

    .venv/bin/python bench/incremental_bench.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from bench_stack import (
    SCHEMA,
    START,
    LambdaContext,
    lambda_environment,
    median,
    prepare_table,
    ratio,
    run_child,
    self_child,
    stack_options,
    stack_status,
    table,
)

CHANGED_EVERY = 1000
LOOKBACK_SECONDS = 900  # TableConfig's default


def watermark(rows: int) -> str:
    """T0: the last original ``updated_at`` (row ``rows``), what FINAL's MAX held before the change."""
    return (datetime.fromisoformat(START) + timedelta(seconds=rows)).isoformat()


def change_rows(admin_dsn: str, table_name: str, rows: int) -> int:
    """Stamp every 1,000th row past T0 (idempotent: the same values each run)."""
    import psycopg2
    from psycopg2 import sql

    with psycopg2.connect(admin_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "UPDATE {} SET updated_at = %s::timestamptz + (id / %s) * interval '1 second', "
                "note = 'changed' WHERE id %% %s = 0"
            ).format(sql.Identifier(SCHEMA, table_name)),
            (watermark(rows), CHANGED_EVERY, CHANGED_EVERY),
        )
        changed = cur.rowcount
    conn = psycopg2.connect(admin_dsn)
    try:
        # A table autovacuum has caught up with, as a steady-state source would be.
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(SCHEMA, table_name)))
    finally:
        conn.close()
    return int(changed)


def window(kind: str, rows: int) -> dict[str, Any]:
    if kind == "full":
        return {"watermark": None, "lookback_seconds": 0, "source": "full"}
    return {"watermark": watermark(rows), "lookback_seconds": LOOKBACK_SECONDS, "source": "final"}


def work_item(table_name: str, kind: str, rows: int) -> dict[str, Any]:
    return {
        "run_id": f"bench-{uuid.uuid4().hex[:8]}",
        "table": "bench_events",
        "source": {"schema": SCHEMA, "table": table_name},
        "primary_key": ["id"],
        "cursor": "updated_at",
        "window": window(kind, rows),
    }


def first_chunk_select(cur: Any, item: dict[str, Any]) -> str:
    """The export SELECT of the first chunk, composed as ``exporting.export.export_chunk`` composes it."""
    from psycopg2 import sql

    from aurora_sync import export_query as q
    from aurora_sync.exporting.export import read_plan
    from aurora_sync.messages import ChunkPosition, WorkItem

    work = WorkItem.model_validate(item)
    plan, _ = read_plan(cur, work)
    phase = "null_cursor" if work.window.watermark is None else "cursor"
    after = q.position_values(ChunkPosition(phase=phase))
    while True:
        predicate = q.chunk_predicate(plan, work.window, phase, after)
        cur.execute(q.exists_query(plan, predicate))
        if cur.fetchone()[0]:
            cur.execute(q.boundary_query(plan, phase, predicate, work.max_rows_per_chunk))
            boundary = cur.fetchone()
            if boundary is not None:
                predicate = sql.SQL("{} AND {}").format(predicate, q.upto_predicate(plan, phase, boundary))
            return q.export_select(plan, predicate).as_string(cur)
        if phase == "null_cursor":
            phase, after = "cursor", None
            continue
        raise SystemExit(f"the {work.window.source} window of {work.source.table} is empty")


def scans(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node] if "Scan" in node["Node Type"] else []
    for child_node in node.get("Plans", []):
        found += scans(child_node)
    return found


def explain(dsn: str, item: dict[str, Any]) -> dict[str, Any]:
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        query = first_chunk_select(cur, item)
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query)
        row = cur.fetchone()
        assert row is not None
        document = row[0][0]
    root = document["Plan"]
    nodes = scans(root)
    read = sum(
        (n["Actual Rows"] + n.get("Rows Removed by Filter", 0) + n.get("Rows Removed by Index Recheck", 0))
        * n["Actual Loops"]
        for n in nodes
    )
    return {
        "scan": ", ".join(sorted({n["Node Type"] for n in nodes})),
        "rows_returned": root["Actual Rows"],
        "rows_read": read,
        "buffers": root.get("Shared Hit Blocks", 0) + root.get("Shared Read Blocks", 0),
        "execution_ms": document["Execution Time"],
    }


def child(kind: str, table_name: str, rows: int) -> None:
    from exporter.app import lambda_handler

    started = time.perf_counter()
    result = lambda_handler(work_item(table_name, kind, rows), LambdaContext("exporter"))
    print(json.dumps({"rows": result["rows"], "seconds": time.perf_counter() - started}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    stack_options(parser)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.table, args.rows)
        return

    status = stack_status(args, only=["postgres", "vault"])
    pg = status["postgres"]
    table_name = f"events_{args.rows}"
    prepare_table(pg["admin_dsn"], pg["user"], table_name, args.rows)
    changed = change_rows(pg["admin_dsn"], table_name, args.rows)
    print(f"{changed:,} rows of {SCHEMA}.{table_name} stamped after the watermark {watermark(args.rows)}")

    kinds = ("incremental", "full")
    plans = {kind: explain(pg["dsn"], work_item(table_name, kind, args.rows)) for kind in kinds}
    env = {**os.environ, **lambda_environment(status)}
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for _ in range(args.repeat):
        for kind in kinds:
            argv = self_child(__file__, kind, "--table", table_name, "--rows", str(args.rows))
            runs[kind].append(run_child(argv, env).outcome)

    def seconds(kind: str) -> float:
        return median(float(r["seconds"]) for r in runs[kind])

    inc, full = plans["incremental"], plans["full"]
    print()
    print(
        table(
            f"3. Incremental ({changed:,} changed rows, lookback {LOOKBACK_SECONDS} s) vs full export of "
            f"{args.rows:,} rows: EXPLAIN (ANALYZE, BUFFERS) of the export SELECT; exporter wall, "
            f"median of {args.repeat}",
            ["", "incremental", "full", "full / incremental"],
            [
                ["plan (scan nodes)", inc["scan"], full["scan"], ""],
                ["rows exported", runs["incremental"][0]["rows"], runs["full"][0]["rows"], ""],
                [
                    "rows PostgreSQL read",
                    inc["rows_read"],
                    full["rows_read"],
                    ratio(full["rows_read"], inc["rows_read"]),
                ],
                [
                    "shared buffers (8 KB)",
                    inc["buffers"],
                    full["buffers"],
                    ratio(full["buffers"], inc["buffers"]),
                ],
                [
                    "SELECT execution ms",
                    inc["execution_ms"],
                    full["execution_ms"],
                    ratio(full["execution_ms"], inc["execution_ms"]),
                ],
                [
                    "exporter handler call s",
                    seconds("incremental"),
                    seconds("full"),
                    ratio(seconds("full"), seconds("incremental")),
                ],
            ],
        )
    )


if __name__ == "__main__":
    main()
