"""Benchmark 8: table modes on the 1M-row table: xmin against cursor, full, and key reconciliation.

1. An incremental run with 1,000 changed rows (benchmark 3's change: every 1,000th row updated),
   in **mode cursor** (the planner's window, ``updated_at >= T0 - 900 s``, through the index on
   ``(updated_at, id)``) and in **mode xmin** (watermark: the snapshot xmin taken just before the
   1,000 updates, as the last merged run's snapshot would hold it). For each, what PostgreSQL read
   for the exporter's actual first-chunk SELECT (``EXPLAIN (ANALYZE, BUFFERS)``, composed as
   ``exporting.export.export_chunk`` composes it, xmin predicate included) and the boundary lookup, the
   rows exported, and the real exporter handler's wall time.
2. A **mode full** run (the whole table in one chunk plus its key snapshot) against a mode-cursor
   full export (data only): handler wall time and bytes written.
3. The **key snapshot** alone (what ``hard_deletes: reconcile`` adds to a run on the source):
   ``EXPLAIN`` of ``export_query.key_snapshot_select`` after ``VACUUM`` (so the visibility map
   allows an index-only scan), its export's wall time and bytes, and an incremental cursor run
   with and without ``reconcile``.
4. The xmin scan's cost at 100k and 1M rows against the fixed cost of an exporter call (an EMPTY
   cursor-mode export: a window past every row), which says at what size xmin's full scan
   outweighs a run's fixed cost.

Handler calls run in fresh child processes, ``--repeat`` rounds taking turns, medians.

    .venv/bin/python bench/modes_bench.py [--rows 1000000] [--small-rows 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
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
from incremental_bench import LOOKBACK_SECONDS, change_rows, scans, watermark

MB = 1024 * 1024


def snapshot_xmin(admin_dsn: str) -> str:
    """The xmin of a snapshot taken now: what a run merged just before the updates would hold as
    its xmin-mode watermark (every later transaction has an id at or past it)."""
    import psycopg2

    with psycopg2.connect(admin_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        row = cur.fetchone()
        assert row is not None
        return str(row[0])


def empty_watermark(rows: int) -> str:
    """A cursor watermark past every row, lookback included: the window is empty."""
    return (datetime.fromisoformat(START) + timedelta(seconds=rows, days=30)).isoformat()


def work_item(kind: str, table_name: str, rows: int, xmin: str) -> dict[str, Any]:
    """``kind``: cursor-inc, cursor-inc-reconcile, cursor-empty, cursor-full, xmin-inc or full."""
    item: dict[str, Any] = {
        "run_id": f"bench-{uuid.uuid4().hex[:8]}",
        "table": "bench_events",
        "source": {"schema": SCHEMA, "table": table_name},
        "primary_key": ["id"],
    }
    if kind.startswith("cursor"):
        window: dict[str, Any] = {"watermark": watermark(rows), "lookback_seconds": LOOKBACK_SECONDS}
        if kind == "cursor-empty":
            window["watermark"] = empty_watermark(rows)
        if kind == "cursor-full":
            window = {"watermark": None, "lookback_seconds": 0, "source": "full"}
        item |= {"mode": "cursor", "cursor": "updated_at", "window": window}
        item["reconcile"] = kind == "cursor-inc-reconcile"
    elif kind == "xmin-inc":
        item |= {"mode": "xmin", "window": {"watermark": xmin, "lookback_seconds": 0, "source": "final"}}
    elif kind == "full":
        item |= {"mode": "full", "window": {"watermark": None, "lookback_seconds": 0, "source": "full"}}
    else:
        raise ValueError(kind)
    return item


def first_chunk_queries(cur: Any, item: dict[str, Any]) -> tuple[str, str | None, str]:
    """The first chunk's export SELECT, boundary lookup (None in mode full, which has none) and
    EXISTS probe,
    composed as ``exporting.export.export_chunk`` composes them, in every mode: mode xmin's predicate is
    built from the current transaction's snapshot, as the exporter builds it from the chunk's."""
    from psycopg2 import sql

    from aurora_sync import export_query as q
    from aurora_sync import source_snapshot as snap
    from aurora_sync.exporting.export import read_plan
    from aurora_sync.messages import WorkItem

    work = WorkItem.model_validate(item)
    taken = snap.read_snapshot(cur)
    plan, _ = read_plan(cur, work)
    changed = None
    if work.mode == "xmin":
        changed = q.xmin_predicate(q.xmin_range(work.window.watermark, taken.xmax, run_xmax=taken.xmax))
    phase = q.first_phase(work.mode, work.window)
    while True:
        predicate = q.chunk_predicate(plan, work.window, phase, None, changed=changed)
        probe = q.exists_query(plan, predicate).as_string(cur)
        cur.execute(probe)
        if cur.fetchone()[0]:
            lookup = None
            if work.mode != "full":
                boundary_query = q.boundary_query(plan, phase, predicate, work.max_rows_per_chunk)
                lookup = boundary_query.as_string(cur)
                cur.execute(boundary_query)
                boundary = cur.fetchone()
                if boundary is not None:
                    upto = q.upto_predicate(plan, phase, boundary)
                    predicate = sql.SQL("{} AND {}").format(predicate, upto)
            return q.export_select(plan, predicate).as_string(cur), lookup, probe
        if phase == "null_cursor":
            phase = "cursor"
            continue
        raise SystemExit(f"the {work.window.source} window of {work.source.table} ({work.mode}) is empty")


def analyze(cur: Any, query: str) -> dict[str, Any]:
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
        "heap_fetches": sum(n.get("Heap Fetches", 0) for n in nodes),
        "buffers": root.get("Shared Hit Blocks", 0) + root.get("Shared Read Blocks", 0),
        "execution_ms": document["Execution Time"],
    }


def transaction(dsn: str) -> Any:
    """A connection in the exporter's transaction mode: REPEATABLE READ, read-only."""
    import psycopg2
    from psycopg2 import extensions

    conn = psycopg2.connect(dsn)
    conn.set_session(isolation_level=extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
    return conn


def explain_chunk(dsn: str, item: dict[str, Any]) -> dict[str, Any]:
    conn = transaction(dsn)
    try:
        with conn.cursor() as cur:
            export, lookup, probe = first_chunk_queries(cur, item)
            result = analyze(cur, export)
            result["exists_ms"] = analyze(cur, probe)["execution_ms"]
            result["boundary_ms"] = analyze(cur, lookup)["execution_ms"] if lookup else None
        return result
    finally:
        conn.close()


def explain_keys(dsn: str, item: dict[str, Any], *, index_only: bool = False) -> dict[str, Any]:
    """``index_only``: with sequential scans disabled, to compare the index-only scan PostgreSQL
    declined with the plan it chose."""
    from aurora_sync import export_query as q
    from aurora_sync.exporting.export import read_plan
    from aurora_sync.messages import WorkItem

    conn = transaction(dsn)
    try:
        with conn.cursor() as cur:
            plan, _ = read_plan(cur, WorkItem.model_validate(item))
            if index_only:
                cur.execute("SET LOCAL enable_seqscan = off")
            return analyze(cur, q.key_snapshot_select(plan).as_string(cur))
    finally:
        conn.close()


def key_bytes(keys: list[str]) -> int:
    import boto3

    s3 = boto3.client("s3")
    bucket = os.environ["EXPORT_BUCKET"]
    return sum(int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"]) for key in keys)


def child_keys(table_name: str, rows: int) -> None:
    """The key snapshot alone, as ``exporting.export._export_keys`` writes it, on the sync role's own
    connection (no Vault login): only the export call is timed."""
    import psycopg2

    from aurora_sync import export_query as q
    from aurora_sync.exporting.export import EXPORT_OPTIONS, key_snapshot_key, read_plan
    from aurora_sync.messages import WorkItem

    item = WorkItem.model_validate(work_item("cursor-inc", table_name, rows, "0"))
    conn = psycopg2.connect(os.environ["BENCH_PG_DSN"])
    try:
        with conn.cursor() as cur:
            plan, _ = read_plan(cur, item)
            key = key_snapshot_key(item.table, datetime.now(UTC), 0)
            started = time.perf_counter()
            cur.execute(
                "SELECT rows_uploaded, bytes_uploaded FROM aws_s3.query_export_to_s3("
                "%s, aws_commons.create_s3_uri(%s, %s, %s), %s)",
                (
                    q.key_snapshot_select(plan).as_string(cur),
                    os.environ["EXPORT_BUCKET"],
                    key,
                    os.environ["AWS_REGION"],
                    EXPORT_OPTIONS,
                ),
            )
            row = cur.fetchone()
            assert row is not None
            exported, size = row
            seconds = time.perf_counter() - started
        conn.rollback()
    finally:
        conn.close()
    print(json.dumps({"rows": int(exported), "bytes": int(size), "key_bytes": int(size), "seconds": seconds}))


def child(kind: str, table_name: str, rows: int, xmin: str) -> None:
    if kind == "keys":
        child_keys(table_name, rows)
        return
    from exporter.app import lambda_handler

    started = time.perf_counter()
    result = lambda_handler(work_item(kind, table_name, rows, xmin), LambdaContext("exporter"))
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "rows": result["rows"],
                "status": result["status"],
                "bytes": result["bytes"],
                "key_rows": result.get("key_rows", 0),
                "key_bytes": key_bytes(result.get("key_files", [])),
                "seconds": seconds,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=100_000, help="the second size of the xmin scan")
    parser.add_argument("--repeat", type=int, default=3)
    stack_options(parser)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    parser.add_argument("--xmin", default="0", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.table, args.rows, args.xmin)
        return

    status = stack_status(args, only=["postgres", "vault"])
    pg = status["postgres"]
    sizes = sorted({args.small_rows, args.rows})
    xmins: dict[int, str] = {}
    changed: dict[int, int] = {}
    for size in sizes:
        name = f"events_{size}"
        prepare_table(pg["admin_dsn"], pg["user"], name, size)
        # The watermark an xmin run would hold had the last run merged just before the updates.
        xmins[size] = snapshot_xmin(pg["admin_dsn"])
        # Ends with VACUUM ANALYZE: the visibility map the key snapshot's index-only scan needs.
        changed[size] = change_rows(pg["admin_dsn"], name, size)
        print(
            f"{SCHEMA}.{name}: {changed[size]:,} rows updated after snapshot xmin {xmins[size]} "
            f"and stamped after the cursor watermark {watermark(size)}",
            flush=True,
        )

    big = args.rows

    def item(kind: str, size: int = big) -> dict[str, Any]:
        return work_item(kind, f"events_{size}", size, xmins[size])

    plans = {
        (kind, size): explain_chunk(pg["dsn"], item(kind, size))
        for size in sizes
        for kind in ("cursor-inc", "xmin-inc")
    }
    plans[("full", big)] = explain_chunk(pg["dsn"], item("full"))
    keys_plan = explain_keys(pg["dsn"], item("cursor-inc"))
    keys_forced = explain_keys(pg["dsn"], item("cursor-inc"), index_only=True)

    env = {**os.environ, **lambda_environment(status), "BENCH_PG_DSN": pg["dsn"]}
    runs_of: list[tuple[str, int]] = [
        ("cursor-empty", big),
        *[(kind, size) for size in sizes for kind in ("cursor-inc", "xmin-inc")],
        ("cursor-inc-reconcile", big),
        ("keys", big),
        ("cursor-full", big),
        ("full", big),
    ]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {run: [] for run in runs_of}
    for round_ in range(args.repeat):
        for kind, size in runs_of:
            argv = self_child(
                __file__, kind, "--table", f"events_{size}", "--rows", str(size), "--xmin", xmins[size]
            )
            runs[(kind, size)].append(run_child(argv, env).outcome)
        print(f"round {round_ + 1}/{args.repeat} done", flush=True)
    report(
        args,
        sizes=sizes,
        changed=changed,
        plans=plans,
        keys_plan=keys_plan,
        keys_forced=keys_forced,
        runs=runs,
    )


def report(
    args: argparse.Namespace,
    *,
    sizes: list[int],
    changed: dict[int, int],
    plans: dict[tuple[str, int], dict[str, Any]],
    keys_plan: dict[str, Any],
    keys_forced: dict[str, Any],
    runs: dict[tuple[str, int], list[dict[str, Any]]],
) -> None:
    big = args.rows

    def seconds(kind: str, size: int = big) -> float:
        return median(float(r["seconds"]) for r in runs[(kind, size)])

    def first(kind: str, field: str, size: int = big) -> Any:
        return runs[(kind, size)][0][field]

    cur_plan, xmin_plan = plans[("cursor-inc", big)], plans[("xmin-inc", big)]
    print()
    print(
        table(
            f"8.1 Incremental run, {changed[big]:,} changed rows of {big:,}: mode cursor (lookback "
            f"{LOOKBACK_SECONDS} s) vs mode xmin; EXPLAIN (ANALYZE, BUFFERS) of the first chunk's queries, "
            f"exporter wall median of {args.repeat}",
            ["", "cursor", "xmin", "xmin / cursor"],
            [
                ["plan (scan nodes)", cur_plan["scan"], xmin_plan["scan"], ""],
                ["rows exported", first("cursor-inc", "rows"), first("xmin-inc", "rows"), ""],
                [
                    "rows PostgreSQL read (export SELECT)",
                    cur_plan["rows_read"],
                    xmin_plan["rows_read"],
                    ratio(xmin_plan["rows_read"], cur_plan["rows_read"]),
                ],
                [
                    "shared buffers (8 KB)",
                    cur_plan["buffers"],
                    xmin_plan["buffers"],
                    ratio(xmin_plan["buffers"], cur_plan["buffers"]),
                ],
                [
                    "export SELECT ms",
                    cur_plan["execution_ms"],
                    xmin_plan["execution_ms"],
                    ratio(xmin_plan["execution_ms"], cur_plan["execution_ms"]),
                ],
                [
                    "EXISTS probe ms",
                    cur_plan["exists_ms"],
                    xmin_plan["exists_ms"],
                    ratio(xmin_plan["exists_ms"], cur_plan["exists_ms"]),
                ],
                [
                    "boundary lookup ms",
                    cur_plan["boundary_ms"],
                    xmin_plan["boundary_ms"],
                    ratio(xmin_plan["boundary_ms"], cur_plan["boundary_ms"]),
                ],
                [
                    "exporter handler call s",
                    seconds("cursor-inc"),
                    seconds("xmin-inc"),
                    ratio(seconds("xmin-inc"), seconds("cursor-inc")),
                ],
            ],
        )
    )

    full_bytes = first("full", "bytes") + first("full", "key_bytes")
    print()
    print(
        table(
            f"8.2 Mode full (data + key snapshot, one chunk) vs a mode-cursor full export (data only) of "
            f"{big:,} rows; exporter wall median of {args.repeat}",
            ["", "cursor full export", "mode full", "full / cursor", "full / cursor incremental"],
            [
                ["rows exported", first("cursor-full", "rows"), first("full", "rows"), "", ""],
                ["keys exported", 0, first("full", "key_rows"), "", ""],
                [
                    "exporter handler call s",
                    seconds("cursor-full"),
                    seconds("full"),
                    ratio(seconds("full"), seconds("cursor-full")),
                    ratio(seconds("full"), seconds("cursor-inc")),
                ],
                ["data MB", first("cursor-full", "bytes") / MB, first("full", "bytes") / MB, "", ""],
                ["key snapshot MB", 0.0, first("full", "key_bytes") / MB, "", ""],
                [
                    "total MB",
                    first("cursor-full", "bytes") / MB,
                    full_bytes / MB,
                    ratio(full_bytes, first("cursor-full", "bytes")),
                    "",
                ],
                ["full-mode SELECT plan", "", plans[("full", big)]["scan"], "", ""],
            ],
        )
    )

    print()
    print(
        table(
            f"8.3 Key snapshot of {big:,} rows (hard_deletes: reconcile), after VACUUM: EXPLAIN (ANALYZE, "
            f"BUFFERS) of key_snapshot_select; wall medians of {args.repeat}",
            ["", "as planned", "enable_seqscan off", "planned / off"],
            [
                ["plan (scan nodes)", keys_plan["scan"], keys_forced["scan"], ""],
                ["rows PostgreSQL read", keys_plan["rows_read"], keys_forced["rows_read"], ""],
                ["heap fetches", keys_plan["heap_fetches"], keys_forced["heap_fetches"], ""],
                [
                    "shared buffers (8 KB)",
                    keys_plan["buffers"],
                    keys_forced["buffers"],
                    ratio(keys_plan["buffers"], keys_forced["buffers"]),
                ],
                [
                    "SELECT execution ms",
                    keys_plan["execution_ms"],
                    keys_forced["execution_ms"],
                    ratio(keys_plan["execution_ms"], keys_forced["execution_ms"]),
                ],
                ["key snapshot export call s (aws_s3 only)", seconds("keys"), "", ""],
                ["key snapshot MB", first("keys", "bytes") / MB, "", ""],
                ["incremental cursor run, handler s", seconds("cursor-inc"), "", ""],
                ["same run with reconcile, handler s", seconds("cursor-inc-reconcile"), "", ""],
                ["reconcile / plain", ratio(seconds("cursor-inc-reconcile"), seconds("cursor-inc")), "", ""],
            ],
        )
    )

    def db_ms(plan: dict[str, Any]) -> float:
        """What the xmin chunk's three statements cost PostgreSQL: probe, boundary, export."""
        return float(plan["exists_ms"] + plan["boundary_ms"] + plan["execution_ms"])

    floor = seconds("cursor-empty")
    rows_table = []
    for size in sizes:
        extra = seconds("xmin-inc", size) - seconds("cursor-inc", size)
        rows_table.append(
            [
                size,
                plans[("cursor-inc", size)]["execution_ms"],
                plans[("xmin-inc", size)]["execution_ms"],
                plans[("xmin-inc", size)]["boundary_ms"],
                db_ms(plans[("xmin-inc", size)]),
                seconds("cursor-inc", size),
                seconds("xmin-inc", size),
                extra,
                ratio(seconds("xmin-inc", size), floor),
            ]
        )
    print()
    print(
        table(
            f"8.4 xmin scan cost by table size (changed rows: 1 in 1,000); floor = an EMPTY cursor-mode "
            f"exporter call {floor:.2f} s; medians of {args.repeat}",
            [
                "rows",
                "cursor SELECT ms",
                "xmin SELECT ms",
                "xmin boundary ms",
                "xmin all 3 ms",
                "cursor handler s",
                "xmin handler s",
                "xmin - cursor s",
                "xmin / floor",
            ],
            rows_table,
        )
    )
    small = sizes[0]
    if small != big:
        per_row = (seconds("xmin-inc", big) - seconds("xmin-inc", small)) / (big - small)
        print(
            f"\nxmin handler slope: {per_row * 1e6:.2f} µs per row ({per_row * 1e6:.2f} s per million rows); "
            f"its scan equals the floor ({floor:.2f} s) at ~{floor / per_row:,.0f} rows"
            if per_row > 0
            else "\nxmin handler slope not positive: noise larger than the scan; rerun with --repeat 5"
        )


if __name__ == "__main__":
    main()
