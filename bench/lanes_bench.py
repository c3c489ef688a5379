"""Benchmark 11: a table's backfill in 1, 2 and 4 lanes (``planning.lanes``).

The bench table (``bench_stack.prepare_table``: 7 columns, ~120 bytes of CSV a row) is split as
the planner splits it: bounds from ``pg_stats``' histogram of the key
(``planning.lanes.key_bounds``), one work item per lane (``planning.lanes.split``). Every lane
then runs as the Map runs it: its own process (a Lambda), calling the real exporter handler again
with ``next`` until the lane is done, all lanes started together. The wall time is from the start
of the first lane to the end of the last; 1 lane, the baseline, is today's single sequence of
chunks. Beside it, PostgreSQL's share alone (``query_only``: each lane's export SELECT formatted as
CSV and discarded, lanes concurrently): locally most of a backfill is the S3 emulator's (one
Python process) and the uploader's, which on AWS are Aurora's storage-side upload instead.
Rounds take turns (1, 2, 4 lanes, then again), medians of ``--repeat``; each run's files
are deleted after it, so the S3 emulator's memory stays flat.

    .venv/bin/python bench/lanes_bench.py [--rows 1000000] [--lanes 1 2 4] [--repeat 3]
        [--chunk-rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from typing import Any

from bench_stack import (
    SCHEMA,
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


def base_item(table_name: str, chunk_rows: int) -> dict[str, Any]:
    """A full export in mode cursor: what a first run (or a full resync) of the table plans."""
    return {
        "run_id": f"bench-{uuid.uuid4().hex[:8]}",
        "table": "bench_events",
        "source": {"schema": SCHEMA, "table": table_name},
        "primary_key": ["id"],
        "cursor": "updated_at",
        "max_rows_per_chunk": chunk_rows,
        "window": {"watermark": None, "lookback_seconds": 0, "source": "full"},
    }


def lane_items(admin_dsn: str, item: dict[str, Any], lanes: int) -> list[dict[str, Any]]:
    """``item`` split into ``lanes`` lanes by the planner's own functions, from the catalog."""
    import psycopg2

    from aurora_sync.exporting.export import read_plan
    from aurora_sync.messages import WorkItem
    from aurora_sync.planning.lanes import key_bounds, split

    work = WorkItem.model_validate(item)
    with psycopg2.connect(admin_dsn) as conn, conn.cursor() as cur:
        plan, _ = read_plan(cur, work)
        cur.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", (f"{SCHEMA}.{plan.table}",)
        )
        row = cur.fetchone()
        assert row is not None
        bounds = key_bounds(cur, plan, lanes=lanes, estimate=int(row[0])) if lanes > 1 else []
    return [lane.model_dump(mode="json", by_alias=True, exclude_none=True) for lane in split(work, bounds)]


def child(lane_json: str) -> None:
    """One lane, as the Map's iteration runs it: the exporter again with ``next`` while MORE."""
    from exporter.app import lambda_handler

    event = json.loads(lane_json)
    started = time.perf_counter()
    calls = 0
    while True:
        result = lambda_handler(event, LambdaContext("exporter"))
        calls += 1
        if result["status"] != "MORE":
            break
        event = result["next"]
    seconds = time.perf_counter() - started
    # A result lists its own chunk's keys: the lane's others are in its chunk files, which the
    # round step reads back (outside the timed export, as in the product).
    from aurora_sync.exporting.rounds import settle_keys
    from aurora_sync.messages import ExportResult
    from aurora_sync.run_files import RunFiles
    from aurora_sync.settings import runtime_settings

    [settled] = settle_keys(RunFiles.of(runtime_settings()), [ExportResult.model_validate(result)])
    if not isinstance(settled, ExportResult):
        raise SystemExit(settled.message)
    keys = settled.keys
    print(json.dumps({"rows": result["rows"], "calls": calls, "keys": keys, "seconds": seconds}))


def backfill(items: list[dict[str, Any]], env: dict[str, str]) -> dict[str, Any]:
    """Every lane at once, each in its own process; the wall time of the whole backfill."""
    outcomes: list[Any] = [None] * len(items)

    def run(index: int) -> None:
        outcomes[index] = run_child(self_child(__file__, json.dumps(items[index])), env).outcome

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(items))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if any(o is None for o in outcomes):
        raise SystemExit("a lane failed")
    return {
        "seconds": wall,
        "rows": sum(o["rows"] for o in outcomes),
        "lane_rows": [o["rows"] for o in outcomes],
        "calls": sum(o["calls"] for o in outcomes),
        "keys": [k for o in outcomes for k in o["keys"]],
    }


def query_only(admin_dsn: str, items: list[dict[str, Any]]) -> float:
    """PostgreSQL's share alone: every lane's export SELECT (as the exporter composes it) run
    concurrently through ``COPY ... TO PROGRAM 'cat > /dev/null'``, in CSV, as aws_s3 runs it
    before the bytes leave for S3. The wall time of all lanes together."""
    import psycopg2
    from psycopg2 import sql

    from aurora_sync import export_query as q
    from aurora_sync.exporting.export import read_plan
    from aurora_sync.messages import WorkItem

    def run(item: dict[str, Any]) -> None:
        work = WorkItem.model_validate(item)
        with psycopg2.connect(admin_dsn) as conn, conn.cursor() as cur:
            plan, _ = read_plan(cur, work)
            predicate = q.chunk_predicate(plan, work.window, "key", None, lane=work.lane)
            cur.execute(
                sql.SQL("COPY ({}) TO PROGRAM 'cat > /dev/null' WITH (FORMAT csv)").format(
                    q.export_select(plan, predicate)
                )
            )

    threads = [threading.Thread(target=run, args=(item,)) for item in items]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--chunk-rows", type=int, default=1_000_000, help="max_rows_per_chunk (the default)")
    parser.add_argument("--repeat", type=int, default=3)
    stack_options(parser)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    from aurora_sync_ops.environment import local_aws_client

    status = stack_status(args, only=["postgres", "vault"])
    pg = status["postgres"]
    name = f"events_{args.rows}"
    prepare_table(pg["admin_dsn"], pg["user"], name, args.rows)
    env = {**os.environ, **lambda_environment(status)}
    s3 = local_aws_client("s3", status["aws"])
    plans = {n: lane_items(pg["admin_dsn"], base_item(name, args.chunk_rows), n) for n in args.lanes}
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in args.lanes}
    queries: dict[int, list[float]] = {n: [] for n in args.lanes}
    for _ in range(args.repeat):
        for lanes in args.lanes:
            queries[lanes].append(query_only(pg["admin_dsn"], plans[lanes]))
            outcome = backfill(plans[lanes], env)
            if outcome["rows"] != args.rows:
                raise SystemExit(f"{lanes} lane(s) exported {outcome['rows']} rows of {args.rows}")
            for key in outcome["keys"]:
                s3.delete_object(Bucket=status["aws"]["bucket"], Key=key)
            runs[lanes].append(outcome)
            print(
                f"  {lanes} lane(s): {outcome['seconds']:.2f} s, rows per lane {outcome['lane_rows']}",
                flush=True,
            )

    baseline = median(r["seconds"] for r in runs[args.lanes[0]])
    query_baseline = median(queries[args.lanes[0]])
    rows = []
    for lanes in args.lanes:
        seconds = median(r["seconds"] for r in runs[lanes])
        query = median(queries[lanes])
        rows.append(
            [
                f"{lanes} lane(s)",
                seconds,
                ratio(baseline, seconds),
                query,
                ratio(query_baseline, query),
                runs[lanes][0]["calls"],
                f"{min(runs[lanes][0]['lane_rows']):,}-{max(runs[lanes][0]['lane_rows']):,}",
                args.rows / seconds,
            ]
        )
    print()
    print(
        table(
            f"backfill of {args.rows:,} rows ({SCHEMA}.{name}), {os.cpu_count()} CPUs, "
            f"medians of {args.repeat}",
            [
                "lanes",
                "backfill s",
                "speed-up",
                "PostgreSQL s",
                "speed-up",
                "exporter calls",
                "rows per lane",
                "rows/s",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
