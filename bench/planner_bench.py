"""Benchmark 4: the planner for 1, 50 and 500 tables: wall time, Snowflake statements, AWS calls.

Each size has its own SSM path (``/aurora-sync-bench/planner-<n>/``, one parameter per table)
and every table has a source table in PostgreSQL (schema ``bench``) and its Snowflake objects
(STAGING, a FINAL table with one row, the pipe and the MERGE task), so every table passes the
planner's schema step and gets a watermark. Each measurement is a fresh process (a cold
Lambda) that invokes the real planner handler twice: the first call pays the Vault login and
the Snowflake connection, the second is a warm container's. Snowflake statements are counted
by wrapping the connector's ``SnowflakeCursor.execute`` in that process; AWS API calls by
wrapping botocore's ``BaseClient._make_api_call``. The event carries no ``execution`` (as
``sam local invoke``), so the single-flight ListExecutions call is not part of the figures.

    .venv/bin/python bench/planner_bench.py [--sizes 1,50,500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from typing import Any

from bench_stack import (
    LambdaContext,
    lambda_environment,
    median,
    run_child,
    self_child,
    stack_options,
    stack_status,
    table,
)

from aurora_sync_ops.environment import local_aws_client, local_external_id


def config_path(size: int) -> str:
    return f"/aurora-sync-bench/planner-{size}/"


def table_name(i: int) -> str:
    return f"bench_t{i:03d}"


def prepare(status: dict[str, Any], sizes: list[int]) -> None:
    """SSM parameters per size, source tables and Snowflake objects for the largest; kept
    between runs."""
    import psycopg2
    import snowflake.connector

    from aurora_sync.config import TableConfig, put_table_config
    from aurora_sync.snowflake_objects import table_spec
    from aurora_sync.snowflake_tables import SnowflakeSetup, render_table
    from aurora_sync.source_catalog import read_catalogs
    from aurora_sync_ops.snowflake_sql import render_setup

    aws = status["aws"]
    ssm = local_aws_client("ssm", aws)
    for size in sizes:
        pages = ssm.get_paginator("get_parameters_by_path").paginate(Path=config_path(size), Recursive=True)
        if sum(len(page["Parameters"]) for page in pages) == size:
            continue
        for i in range(size):
            config = TableConfig.model_validate(
                {"schema": "bench", "table": table_name(i), "primary_key": ["id"]}
            )
            put_table_config(table_name(i), config, config_path(size), ssm_client=ssm)

    setup = SnowflakeSetup(
        bucket=aws["bucket"],
        storage_role_arn=f"arn:aws:iam::{aws['account_id']}:role/aurora-sync-snowflake-storage",
        storage_external_id=local_external_id(aws),
        database=status["snowflake"]["database"],
    )
    names = [table_name(i) for i in range(max(sizes))]
    source = psycopg2.connect(status["postgres"]["admin_dsn"])
    source.autocommit = True
    with source.cursor() as pg:
        pg.execute("CREATE SCHEMA IF NOT EXISTS bench")
        pg.execute(f'GRANT USAGE ON SCHEMA bench TO "{status["postgres"]["user"]}"')
        for name in names:
            pg.execute(
                f"CREATE TABLE IF NOT EXISTS bench.{name} (id bigint PRIMARY KEY, updated_at timestamptz)"
            )
        catalogs = read_catalogs(pg, [("bench", name) for name in names])
    source.close()
    with snowflake.connector.connect(**status["snowflake"]) as conn:
        cur = conn.cursor()
        for statement in render_setup(setup):
            cur.execute(statement)
        cur.execute(
            f'SELECT "TABLE_NAME" FROM "{setup.database}"."INFORMATION_SCHEMA"."TABLES" '
            'WHERE "TABLE_SCHEMA" = %s',
            (setup.staging_schema,),
        )
        present = {row[0] for row in cur.fetchall()}
        for i, name in enumerate(names):
            target = name.upper()
            if target in present:
                continue
            spec = table_spec(
                name=name,
                target=target,
                catalog=catalogs[("bench", name)],
                schema="bench",
                table=name,
                columns=None,
                primary_key=["id"],
                cursor="updated_at",
            )
            final = f'"{setup.database}"."{setup.final_schema}"."{target}"'
            cur.execute(f"DROP TABLE IF EXISTS {final}")  # FINAL of an earlier version of this script
            for statement in render_table(setup, spec):
                cur.execute(statement)
            cur.execute(
                f'INSERT INTO {final} ("ID", "UPDATED_AT") '
                f"VALUES ({i}, '2026-01-01 00:00:00 +00:00'::TIMESTAMP_TZ)"
            )


def child() -> None:
    import botocore.client
    from snowflake.connector.cursor import SnowflakeCursor

    statements: Counter[str] = Counter()
    aws_calls: Counter[str] = Counter()
    spent: dict[str, float] = {"snowflake": 0.0, "aws": 0.0}  # seconds inside statements / calls
    execute, api_call = SnowflakeCursor.execute, botocore.client.BaseClient._make_api_call

    def counting_execute(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        statements[" ".join(command.split()[:2]).upper()] += 1
        started = time.perf_counter()
        try:
            return execute(self, command, *args, **kwargs)
        finally:
            spent["snowflake"] += time.perf_counter() - started

    def counting_api_call(self: Any, operation: str, params: Any) -> Any:
        aws_calls[f"{self.meta.service_model.service_name}:{operation}"] += 1
        started = time.perf_counter()
        try:
            return api_call(self, operation, params)
        finally:
            spent["aws"] += time.perf_counter() - started

    SnowflakeCursor.execute = counting_execute  # type: ignore[method-assign]
    botocore.client.BaseClient._make_api_call = counting_api_call

    from planner.app import lambda_handler

    calls = []
    for _ in range(2):
        statements.clear()
        aws_calls.clear()
        spent.update(snowflake=0.0, aws=0.0)
        started = time.perf_counter()
        output = lambda_handler({"input": {}}, LambdaContext("planner"))
        calls.append(
            {
                "seconds": time.perf_counter() - started,
                "items": output["work_items"],  # the items themselves are round 0's manifest in S3
                "failed": output["failed"],
                "statements": sum(statements.values()),
                "statement_kinds": dict(statements),
                "aws_calls": dict(aws_calls),
                "snowflake_seconds": spent["snowflake"],
                "aws_seconds": spent["aws"],
            }
        )
    print(json.dumps(calls))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1,50,500", help="comma-separated table counts")
    parser.add_argument("--repeat", type=int, default=3)
    stack_options(parser)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child()
        return

    sizes = sorted(int(s) for s in args.sizes.split(","))
    status = stack_status(args)
    print(f"preparing SSM configs and {max(sizes)} FINAL tables ...", flush=True)
    prepare(status, sizes)

    rows = []
    details: dict[int, dict[str, Any]] = {}
    for size in sizes:
        env = {**os.environ, **lambda_environment(status, CONFIG_SSM_PATH=config_path(size))}
        runs = [run_child(self_child(__file__), env) for _ in range(args.repeat)]
        cold = [r.outcome[0] for r in runs]
        warm = [r.outcome[1] for r in runs]
        for call in (*cold, *warm):
            if call["items"] != size or call["failed"]:
                raise SystemExit(
                    f"planner with {size} tables planned {call['items']}, failed {call['failed']}"
                )
        details[size] = cold[0]
        aws_total = sum(cold[0]["aws_calls"].values())
        rows.append(
            [
                size,
                median(c["seconds"] for c in cold),
                median(c["seconds"] for c in warm),
                median(r.wall_seconds for r in runs),
                median(c["snowflake_seconds"] for c in cold),
                median(c["aws_seconds"] for c in cold),
                cold[0]["statements"],
                warm[0]["statements"],
                aws_total,
                median(r.peak_rss_mb for r in runs),
            ]
        )
    print()
    print(
        table(
            f"4. Planner by table count, medians of {args.repeat} fresh processes (1st call cold: Vault "
            "login + Snowflake connect; 2nd warm)",
            [
                "tables",
                "1st call s",
                "2nd call s",
                "process s",
                "in SF s",
                "in AWS s",
                "SF stmts 1st",
                "SF stmts 2nd",
                "AWS calls",
                "RSS MB",
            ],
            rows,
        )
    )
    largest = details[sizes[-1]]
    print(f"  statements of the 1st call at {sizes[-1]} tables: {largest['statement_kinds']}")
    print(f"  AWS calls of the 1st call at {sizes[-1]} tables: {largest['aws_calls']}")


if __name__ == "__main__":
    main()
