"""Benchmark 13: ``aurora-sync sql snowflake --apply`` for 10, 100 and 500 table configs.

Each size applies twice: first with none of the tables' Snowflake objects present (every table
new: the DDL each table really needs), then again with nothing changed. Every table has a source
table in PostgreSQL (schema ``bench_apply``) and a config in a JSON file (``--config``); the
Snowflake objects of all tables are dropped before each size's first apply (not measured).

Each apply runs the real CLI in a fresh process that counts, by wrapping the connector's
``SnowflakeCursor.execute`` and ``SnowflakeConnection.connect``: statements (each one round trip
to Snowflake), the connections opened, and the *critical path*: the statements of the main
thread plus those of the busiest worker thread, i.e. the round trips a user waits for one after
another. On a real account a round trip over the internet takes about 100-300 ms, so the
estimated wait is the critical path times 0.1 and 0.3 s, beside the wall time measured on the
local emulator (where a round trip costs a few ms). The baseline in the same run is the first
apply with ``--parallel 1`` (every table's DDL one after another on one connection); the
objects are dropped again before the first apply with the next ``--parallel`` value.

    .venv/bin/python bench/apply_bench.py [--sizes 10,100,500] [--parallel 1,4]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench_stack import run_child, self_child, stack_options, stack_status, table

SCHEMA = "bench_apply"
ROUND_TRIP_SECONDS = (0.1, 0.3)  # a Snowflake round trip over the internet, low and high


def table_name(i: int) -> str:
    return f"apply_t{i:03d}"


def write_config(directory: Path, size: int) -> Path:
    path = directory / f"tables-{size}.json"
    entries = {
        table_name(i): {"schema": SCHEMA, "table": table_name(i), "primary_key": ["id"]} for i in range(size)
    }
    path.write_text(json.dumps(entries))
    return path


def prepare_source(status: dict[str, Any], size: int) -> None:
    import psycopg2

    with psycopg2.connect(status["postgres"]["admin_dsn"]) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        for i in range(size):
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{table_name(i)} (id bigint PRIMARY KEY, "
                "account_id int NOT NULL, note text, amount numeric(12,2), updated_at timestamptz)"
            )


def drop_objects(status: dict[str, Any], size: int) -> None:
    """Every table's Snowflake objects gone, so the next apply creates them all."""
    import snowflake.connector

    from aurora_sync.snowflake_tables import SnowflakeSetup, render_drop_table

    aws = status["aws"]
    setup = SnowflakeSetup(
        bucket=aws["bucket"],
        storage_role_arn=f"arn:aws:iam::{aws['account_id']}:role/aurora-sync-snowflake-storage",
        database=status["snowflake"]["database"],
    )
    with snowflake.connector.connect(**status["snowflake"]) as conn:
        cur = conn.cursor()
        for i in range(size):
            for statement in render_drop_table(setup, table_name(i).upper()):
                cur.execute(statement)


def child(argv: list[str]) -> None:
    from snowflake.connector.connection import SnowflakeConnection
    from snowflake.connector.cursor import SnowflakeCursor

    from aurora_sync_ops.cli import main

    lock = threading.Lock()
    per_thread: Counter[int] = Counter()
    kinds: Counter[str] = Counter()
    connections = [0]
    execute, connect = SnowflakeCursor.execute, SnowflakeConnection.connect
    main_thread = threading.get_ident()

    def counting_execute(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        with lock:
            per_thread[threading.get_ident()] += 1
            kinds[" ".join(command.split()[:2]).upper()] += 1
        return execute(self, command, *args, **kwargs)

    def counting_connect(self: Any, **kwargs: Any) -> Any:
        with lock:
            connections[0] += 1
        return connect(self, **kwargs)

    SnowflakeCursor.execute = counting_execute  # type: ignore[method-assign]
    SnowflakeConnection.connect = counting_connect  # type: ignore[method-assign]
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        code = main(argv)
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"aurora-sync {' '.join(argv)} exited {code}")
    document = json.loads(printed.getvalue())
    states = Counter(t["state"] for t in document["tables"])
    workers = [n for thread, n in per_thread.items() if thread != main_thread]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "statements": sum(per_thread.values()),
                "critical_path": per_thread[main_thread] + max(workers, default=0),
                "connections": connections[0],
                "kinds": dict(kinds),
                "states": dict(states),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10,100,500", help="comma-separated table counts")
    parser.add_argument(
        "--parallel",
        default="1,4",
        help="comma-separated --parallel values for the first apply; 1 is the baseline",
    )
    stack_options(parser)
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return

    sizes = sorted(int(s) for s in args.sizes.split(","))
    parallel = [int(n) for n in args.parallel.split(",")]
    status = stack_status(args)
    print(f"preparing {max(sizes)} source tables ...", flush=True)
    prepare_source(status, max(sizes))
    flags = ["--local"]
    if args.state_dir:
        flags += ["--state-dir", args.state_dir]
    if args.port_base:
        flags += ["--port-base", str(args.port_base)]
    rows, kinds = [], {}
    with tempfile.TemporaryDirectory() as directory:
        for size in sizes:
            config = write_config(Path(directory), size)
            base = ["sql", "snowflake", "--apply", "--json", "--config", str(config), *flags]
            runs = [("new", n) for n in parallel] + [("unchanged", parallel[-1])]
            for label, workers in runs:
                if label == "new":
                    drop_objects(status, size)
                argv = [*base, "--parallel", str(workers)]
                result = run_child(self_child(__file__, *argv), dict(os.environ)).outcome
                expected = "new" if label == "new" else "current"
                if result["states"] != {expected: size}:
                    raise SystemExit(f"{size} tables, {label}: planned {result['states']}")
                kinds[(size, label)] = result["kinds"]
                low, high = (result["critical_path"] * rtt for rtt in ROUND_TRIP_SECONDS)
                rows.append(
                    [
                        f"{size} {label}, --parallel {workers}",
                        result["seconds"],
                        result["statements"],
                        round(result["statements"] / size, 1),
                        result["critical_path"],
                        result["connections"],
                        f"{low / 60:.1f}-{high / 60:.1f} min" if high >= 60 else f"{low:.0f}-{high:.0f} s",
                    ]
                )
    print()
    print(
        table(
            "10. sql snowflake --apply by table count (new: no objects yet; unchanged: applied again); "
            f"real account: critical path x {ROUND_TRIP_SECONDS[0]}-{ROUND_TRIP_SECONDS[1]} s a round trip",
            ["tables", "local s", "statements", "per table", "critical path", "connections", "real account"],
            rows,
        )
    )
    largest = max(sizes)
    for label in ("new", "unchanged"):
        print(f"  statements at {largest} tables, {label}: {kinds[(largest, label)]}")


if __name__ == "__main__":
    main()
