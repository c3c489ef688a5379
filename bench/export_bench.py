"""Benchmarks 1 and 2: a 1M-row export by the exporter vs pull-based tools, and the exporter's
peak RSS at 1,000 vs 1,000,000 rows.

Same table, same bucket (moto), same run; the methods are interleaved so drift on the machine
hits them alike, and each runs in a fresh child process whose peak RSS is its own:

* exporter       - the real exporter handler: Vault login, one query to Aurora, Aurora writes
                   the CSV to S3 (aws_s3.query_export_to_s3); the function never holds row data.
* psycopg2 pull  - what a hand-written pull does: SELECT + fetchall, csv.writer, one S3 upload.
* dlt (…)        - dlt 1.31's ``sql_database`` source to its ``filesystem`` destination on the
                   same bucket, CSV files, with its default SQLAlchemy backend and with its
                   PyArrow backend; in its own virtualenv (bench/dlt_export.py). ``--no-dlt``
                   leaves it out.

    .venv/bin/python bench/export_bench.py [--rows 1000000] [--repeat 3] [--no-dlt]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from bench_stack import (
    REPO,
    SCHEMA,
    ChildResult,
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

from aurora_sync_ops.environment import local_aws_client

DLT_VENV = REPO / ".local" / "bench-venv"
DLT_REQUIREMENT = "dlt[s3,sql_database,postgres,parquet]==1.31.0"
DLT_BACKENDS = ("sqlalchemy", "pyarrow")


# --- inside a child process ------------------------------------------------------------------
def run_exporter(table_name: str, rows: int) -> dict[str, Any]:
    from exporter.app import lambda_handler

    event: dict[str, Any] = {
        "run_id": f"bench-{uuid.uuid4().hex[:8]}",
        "table": "bench_events",
        "source": {"schema": SCHEMA, "table": table_name},
        "primary_key": ["id"],
        "cursor": "updated_at",
        "max_rows_per_chunk": max(rows, 1000),  # one chunk: the figure is one export call
        "window": {"watermark": None, "lookback_seconds": 0, "source": "full"},
    }
    result = lambda_handler(event, LambdaContext("exporter"))
    return {"rows": result["rows"], "bytes": result["bytes"]}


def run_pull(table_name: str, status: dict[str, Any]) -> dict[str, Any]:
    import psycopg2
    from psycopg2 import sql

    with psycopg2.connect(status["postgres"]["dsn"]) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(SCHEMA, table_name)))
        records = cur.fetchall()
    buffer = io.StringIO()
    csv.writer(buffer).writerows(records)
    body = buffer.getvalue().encode()
    s3 = admin_s3(status)
    s3.put_object(Bucket=status["aws"]["bucket"], Key=f"bench_pull/{uuid.uuid4()}.csv", Body=body)
    return {"rows": len(records), "bytes": len(body)}


def child(method: str, table_name: str, rows: int) -> None:
    import time

    status = json.loads(os.environ["BENCH_STACK"])
    started = time.perf_counter()
    outcome = run_exporter(table_name, rows) if method == "exporter" else run_pull(table_name, status)
    outcome["seconds"] = time.perf_counter() - started
    print(json.dumps(outcome))


# --- the parent --------------------------------------------------------------------------------
def admin_s3(status: dict[str, Any]) -> Any:
    aws = status["aws"]
    return local_aws_client("s3", aws)


def ensure_dlt_venv() -> Path:
    """``.local/bench-venv`` with dlt, made once (~30 s from the package index)."""
    python = DLT_VENV / "bin" / "python"
    probe = [str(python), "-c", "import dlt, s3fs, sqlalchemy, pyarrow, psycopg2"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    print(f"creating {DLT_VENV} with {DLT_REQUIREMENT} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(DLT_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", DLT_REQUIREMENT],
        check=True,
    )
    return python


def measure(method: str, table_name: str, rows: int, status: dict[str, Any], dlt: Path | None) -> ChildResult:
    if not method.startswith("dlt-"):
        env = {**os.environ, **lambda_environment(status), "BENCH_STACK": json.dumps(status)}
        return run_child(self_child(__file__, method, "--table", table_name, "--rows", str(rows)), env)
    assert dlt is not None
    aws, pg = status["aws"], status["postgres"]
    dataset = f"bench_dlt_{uuid.uuid4().hex[:8]}"
    job = {
        "dsn": pg["dsn"].replace("postgresql://", "postgresql+psycopg2://", 1),
        "schema": SCHEMA,
        "table": table_name,
        "backend": method.removeprefix("dlt-"),
        "bucket_url": f"s3://{aws['bucket']}/bench_dlt",
        "endpoint_url": aws["endpoint_url"],
        "region": aws["region"],
        "access_key_id": aws["access_key_id"],
        "secret_access_key": aws["secret_access_key"],
        "dataset": dataset,
        "pipelines_dir": str(Path(status["state_dir"]) / "bench-dlt-pipelines"),
    }
    result = run_child(
        [str(dlt), str(Path(__file__).with_name("dlt_export.py"))],
        {**os.environ, "BENCH_DLT": json.dumps(job)},
    )
    # The CSV dlt wrote for the table (its state and schema files are left out): size, and rows
    # as lines less each file's header.
    s3 = admin_s3(status)
    listing = s3.get_paginator("list_objects_v2").paginate(
        Bucket=aws["bucket"], Prefix=f"bench_dlt/{dataset}/{table_name}/"
    )
    keys = [(o["Key"], o["Size"]) for page in listing for o in page.get("Contents", [])]
    result.outcome["bytes"] = sum(size for _, size in keys)
    result.outcome["rows"] = sum(
        sum(1 for _ in s3.get_object(Bucket=aws["bucket"], Key=key)["Body"].iter_lines()) - 1
        for key, _ in keys
    )
    return result


LABELS = {
    "exporter": "exporter (aws_s3, server-side)",
    "pull": "psycopg2 fetchall + csv + upload",
    "dlt-sqlalchemy": "dlt sql_database (sqlalchemy)",
    "dlt-pyarrow": "dlt sql_database (pyarrow)",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-dlt", action="store_true", help="leave dlt out (no virtualenv made)")
    stack_options(parser)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.table, args.rows)
        return

    dlt = None if args.no_dlt else ensure_dlt_venv()
    status = stack_status(args, only=["postgres", "vault"])
    big, small = f"events_{args.rows}", "events_1000"
    print(f"preparing {args.rows:,} rows in {SCHEMA}.{big} (and 1,000 in {SCHEMA}.{small}) ...", flush=True)
    pg = status["postgres"]
    prepare_table(pg["admin_dsn"], pg["user"], big, args.rows)
    prepare_table(pg["admin_dsn"], pg["user"], small, 1000)

    methods = ["exporter", "pull"] + ([] if dlt is None else [f"dlt-{b}" for b in DLT_BACKENDS])
    results: dict[str, list[ChildResult]] = {m: [] for m in methods}
    for n in range(args.repeat):
        for method in methods:  # interleaved: drift on the machine hits every method alike
            result = measure(method, big, args.rows, status, dlt)
            if result.outcome["rows"] != args.rows:
                raise SystemExit(f"{method} exported {result.outcome['rows']:,} rows, not {args.rows:,}")
            results[method].append(result)
            print(f"  run {n + 1}/{args.repeat} {method}: {result.outcome['seconds']:.1f} s", flush=True)
    small_runs = [measure("exporter", small, 1000, status, None) for _ in range(args.repeat)]

    def med(method: str, key: str) -> float:
        if key == "peak_rss_mb":
            return median(r.peak_rss_mb for r in results[method])
        return median(float(r.outcome[key]) for r in results[method])

    base_t, base_m = med("exporter", "seconds"), med("exporter", "peak_rss_mb")
    rows = [
        [
            LABELS[m],
            med(m, "seconds"),
            ratio(med(m, "seconds"), base_t),
            med(m, "peak_rss_mb"),
            ratio(med(m, "peak_rss_mb"), base_m),
            med(m, "bytes") / 1e6,
        ]
        for m in methods
    ]
    print()
    print(
        table(
            f"1. Export of {args.rows:,} rows to S3, medians of {args.repeat} (wall = the export with "
            "the method's imports, interpreter start excluded; RSS = the whole client process)",
            ["method", "wall s", "vs exporter", "peak RSS MB", "vs exporter", "CSV MB"],
            rows,
        )
    )
    print()
    small_rss = median(r.peak_rss_mb for r in small_runs)
    print(
        table(
            f"2. Exporter peak RSS by table size, medians of {args.repeat}",
            ["rows", "wall s", "peak RSS MB"],
            [
                [1000, median(float(r.outcome["seconds"]) for r in small_runs), small_rss],
                [args.rows, base_t, base_m],
                [
                    f"ratio {args.rows // 1000:,}x rows",
                    ratio(base_t, median(float(r.outcome["seconds"]) for r in small_runs)),
                    ratio(base_m, small_rss),
                ],
            ],
        )
    )


if __name__ == "__main__":
    main()
