"""Benchmark 10: the emulated Snowpipe loading N small files, one loader thread against the pool.

One source table (20 rows) is exported once by the real exporter handler; its CSV file is then
copied to N new keys under the table's prefix while its pipe is paused (``ALTER PIPE ... SET
PIPE_EXECUTION_PAUSED = TRUE``): each copy is an S3 ``ObjectCreated`` event, queued by the pipe,
as the files of a large run's exports are. Once ``SYSTEM$PIPE_STATUS`` counts N pending files,
the pipe is resumed; the figure is the wall time from there until ``COPY_HISTORY`` shows all N
files ``Loaded`` (read every 0.2 s), and the files per second. Each size runs twice on the same
stack: with the emulator's loader pool cut to one thread (``POST /emulator/pipe-loaders``: the
baseline) and with its default pool, so the ratio is measured in one run. An emulator from
before the pool (no such route) runs both with its one loader thread.

The account holds ``--idle-pipes`` other pipes (400: a run of about 400 tables), on prefixes no
file reaches, because what a file cost to record grew with the emulator's control-plane registry.

    .venv/bin/python bench/snowpipe_bench.py [--sizes 50,400] [--idle-pipes 400]
        [--state-dir DIR] [--port-base N]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from bench_stack import lambda_environment, stack_options, stack_status, table

from aurora_sync_ops.environment import local_aws_client, local_external_id

SOURCE = "pipe_bench"
ROWS = 20


def prepare(status: dict[str, Any]) -> tuple[Any, str]:
    """The source table, its Snowflake objects, and one exported key; (Snowflake conn, key)."""
    import psycopg2
    import snowflake.connector

    from aurora_sync.snowflake_objects import table_spec
    from aurora_sync.snowflake_tables import SnowflakeSetup, render_table
    from aurora_sync.source_catalog import read_catalogs
    from aurora_sync_ops.local.wiring import connect_bucket_to_snowpipe

    aws = status["aws"]
    with psycopg2.connect(status["postgres"]["admin_dsn"]) as source, source.cursor() as pg:
        pg.execute("CREATE SCHEMA IF NOT EXISTS bench")
        pg.execute(f'GRANT USAGE ON SCHEMA bench TO "{status["postgres"]["user"]}"')
        pg.execute(f"DROP TABLE IF EXISTS bench.{SOURCE}")
        pg.execute(
            f"CREATE TABLE bench.{SOURCE} (id bigint PRIMARY KEY, note text, updated_at timestamptz NOT NULL)"
        )
        pg.execute(
            f"INSERT INTO bench.{SOURCE} SELECT i, 'note ' || i, now() FROM generate_series(1, %s) i", (ROWS,)
        )
        pg.execute(f'GRANT SELECT ON bench.{SOURCE} TO "{status["postgres"]["user"]}"')
        catalog = read_catalogs(pg, [("bench", SOURCE)])[("bench", SOURCE)]
    setup = SnowflakeSetup(
        bucket=aws["bucket"],
        storage_role_arn=f"arn:aws:iam::{aws['account_id']}:role/aurora-sync-snowflake-storage",
        storage_external_id=local_external_id(aws),
        database=status["snowflake"]["database"],
    )
    spec = table_spec(
        name=SOURCE,
        target=SOURCE.upper(),
        catalog=catalog,
        schema="bench",
        table=SOURCE,
        columns=None,
        primary_key=["id"],
        cursor="updated_at",
    )
    conn = snowflake.connector.connect(**status["snowflake"], paramstyle="qmark")
    with conn.cursor() as cur:
        for statement in render_table(setup, spec):
            cur.execute(statement)
    connect_bucket_to_snowpipe(status)
    os.environ.update(lambda_environment(status))
    from bench_stack import LambdaContext

    from exporter.app import lambda_handler

    result = lambda_handler(
        {
            "run_id": f"bench-{uuid.uuid4().hex[:8]}",
            "table": SOURCE,
            "target": SOURCE.upper(),
            "source": {"schema": "bench", "table": SOURCE},
            "primary_key": ["id"],
            "cursor": "updated_at",
            "window": {"watermark": None, "lookback_seconds": 0, "source": "full"},
        },
        LambdaContext("exporter"),
    )
    assert result["status"] == "EXPORTED" and len(result["keys"]) == 1, result
    return conn, str(result["keys"][0])


def add_idle_pipes(conn: Any, count: int) -> None:
    """``count`` more pipes like the table's, on prefixes no file reaches: the emulator's
    control-plane registry then holds as many pipes as a run of that many tables (its size is
    what a loaded file cost to record before issue 15)."""
    with conn.cursor() as cur:
        cur.execute(f"SHOW PIPES LIKE '{SOURCE.upper()}_PIPE' IN ACCOUNT")
        names = [d[0] for d in cur.description]
        pipe = dict(zip(names, cur.fetchone(), strict=True))
        cur.execute(f"SHOW PIPES LIKE '{SOURCE.upper()}_IDLE_%' IN ACCOUNT")
        present = len(cur.fetchall())
        for i in range(present, count):
            definition = str(pipe["definition"]).replace(f"/{SOURCE}/)", f"/{SOURCE}_idle_{i}/)")
            cur.execute(
                f'CREATE PIPE IF NOT EXISTS "{pipe["database_name"]}"."{pipe["schema_name"]}".'
                f'"{SOURCE.upper()}_IDLE_{i:04d}" AUTO_INGEST = TRUE AS {definition}'
            )


def set_loaders(status: dict[str, Any], loaders: int | None) -> int:
    """The emulator's loader threads (None: its default); an emulator route, not Snowflake SQL."""
    sf = status["snowflake"]
    request = urllib.request.Request(  # noqa: S310 - http to the local stack
        f"{sf['protocol']}://{sf['host']}:{sf['port']}/emulator/pipe-loaders",
        data=json.dumps({"loaders": loaders}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the local stack
            return int(json.loads(response.read())["loaders"])
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return 1  # an emulator from before the loader pool: its one loader thread
        raise


def pipe_sql(conn: Any, statement: str) -> Any:
    with conn.cursor() as cur:
        cur.execute(statement)
        return cur.fetchall()


def load(status: dict[str, Any], conn: Any, key: str, size: int) -> float:
    """Seconds from resuming the pipe with ``size`` copies of ``key`` queued until every copy is
    Loaded: the loading alone, not how fast this script can stage files through moto."""
    aws = status["aws"]
    s3 = local_aws_client("s3", aws)
    directory, _, name = key.rpartition("/")
    stem = name.removesuffix(".csv")
    batch = uuid.uuid4().hex[:6]
    keys = [f"{directory}/{stem}-{batch}{i:04d}.csv" for i in range(size)]
    database = status["snowflake"]["database"]
    pipe = f'"{database}".STAGING."{SOURCE.upper()}_PIPE"'
    pipe_sql(conn, f"ALTER PIPE {pipe} SET PIPE_EXECUTION_PAUSED = TRUE")
    for new in keys:
        s3.copy_object(Bucket=aws["bucket"], Key=new, CopySource={"Bucket": aws["bucket"], "Key": key})
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        (state,) = pipe_sql(conn, f"SELECT SYSTEM$PIPE_STATUS('{pipe}')")[0]
        if json.loads(state)["pendingFileCount"] >= size:
            break
        time.sleep(0.2)
    started = time.monotonic()
    pipe_sql(conn, f"ALTER PIPE {pipe} SET PIPE_EXECUTION_PAUSED = FALSE")
    wanted = set(keys)  # the stage is the bucket's root: a file's name is its key
    while time.monotonic() < deadline:
        with conn.cursor() as cur:
            cur.execute(
                f'SELECT FILE_NAME, STATUS FROM TABLE("{database}".INFORMATION_SCHEMA.COPY_HISTORY('
                "TABLE_NAME => ?, START_TIME => DATEADD(hour, -1, CURRENT_TIMESTAMP())))",
                (f'STAGING."{SOURCE.upper()}"',),
            )
            done = {str(f) for f, s in cur.fetchall() if s == "Loaded" and str(f) in wanted}
        if len(done) == size:
            return time.monotonic() - started
        time.sleep(0.2)
    raise SystemExit(f"{size} files not loaded within 900 s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="50,400")
    parser.add_argument("--idle-pipes", type=int, default=400, help="other pipes in the account")
    parser.add_argument("--json", action="store_true")
    stack_options(parser)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    status = stack_status(args)
    conn, key = prepare(status)
    add_idle_pipes(conn, args.idle_pipes)
    rows = []
    results = []
    try:
        for size in sizes:
            serial_threads = set_loaders(status, 1)
            serial = load(status, conn, key, size)
            pool_threads = set_loaders(status, None)
            pooled = load(status, conn, key, size)
            results.append({"files": size, "serial_s": serial, "pool_s": pooled, "pool": pool_threads})
            rows.append(
                [
                    f"{size} files",
                    f"{serial:.1f} s ({size / serial:.1f}/s, {serial_threads} loader)",
                    f"{pooled:.1f} s ({size / pooled:.1f}/s, {pool_threads} loaders)",
                    f"{serial / pooled:.1f}x",
                ]
            )
    finally:
        set_loaders(status, None)
        conn.close()
    print(
        table(
            f"Snowpipe emulator: {ROWS}-row CSV files queued for one of {args.idle_pipes + 1} pipes, "
            "from resuming it until all Loaded",
            ["files", "serial loader (baseline)", "loader pool", "speed-up"],
            rows,
        )
    )
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
