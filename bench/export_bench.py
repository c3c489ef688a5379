"""Export benchmark: the exporter (server-side aws_s3 path) vs a pull-based export, same data, same run.

Runs on the embedded local stack (`aurora-sync local up`; started here when needed). Each method
runs in a fresh child process so its peak RSS is its own (``os.wait4``'s ru_maxrss):

* exporter   - the real exporter handler: Vault login, one query to Aurora, Aurora writes to S3.
* pull       - what pull-based tools do: psycopg2 SELECT + fetchall, csv.writer, boto3 upload.

Usage: ``python bench/export_bench.py [--rows 1000000] [--repeat 3]``. Prints a table of medians
with ratios, and the exporter's peak RSS at 1,000 vs N rows (it must stay flat).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCHEMA = "bench"


def stack_status() -> dict[str, Any]:
    cli = str(Path(sys.executable).with_name("aurora-sync"))
    subprocess.run([cli, "local", "up", "--only", "postgres,vault"], check=True, stdout=subprocess.DEVNULL)
    out = subprocess.run(
        [cli, "local", "status", "--json"], check=True, capture_output=True, text=True
    ).stdout
    status: dict[str, Any] = json.loads(out)
    return status


def prepare_table(status: dict[str, Any], table: str, rows: int) -> None:
    import psycopg2
    from psycopg2 import sql

    with psycopg2.connect(status["postgres"]["admin_dsn"]) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
        cur.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                sql.Identifier(SCHEMA), sql.Identifier(status["postgres"]["user"])
            )
        )
        cur.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = %s", (SCHEMA, table)
        )
        if cur.fetchone() == (1,):
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, table)))
            if cur.fetchone() == (rows,):
                return
            cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(SCHEMA, table)))
        ident = sql.Identifier(SCHEMA, table)
        cur.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigint PRIMARY KEY, account_id int NOT NULL, kind text NOT NULL, "
                "amount numeric(12,2), note text, created_at timestamptz NOT NULL, "
                "updated_at timestamptz NOT NULL)"
            ).format(ident)
        )
        cur.execute(
            sql.SQL(
                "INSERT INTO {} SELECT i, mod(i, 5000), "
                "(ARRAY['click','view','buy','refund'])[1 + mod(i, 4)], "
                "mod(i, 100000) / 100.0, md5(i::text) || ' note', "
                "timestamptz '2026-01-01' + i * interval '1 second', "
                "timestamptz '2026-01-01' + i * interval '1 second' FROM generate_series(1, %s) i"
            ).format(ident),
            (rows,),
        )
        cur.execute(sql.SQL("CREATE INDEX ON {} (updated_at, id)").format(ident))
        cur.execute(
            sql.SQL("GRANT SELECT ON {} TO {}").format(ident, sql.Identifier(status["postgres"]["user"]))
        )
        cur.execute(sql.SQL("ANALYZE {}").format(ident))


def lambda_environment(status: dict[str, Any]) -> dict[str, str]:
    aws, vault, creds = status["aws"], status["vault"], status["aws"]["lambda_credentials"]
    return {
        "AWS_ENDPOINT_URL": aws["endpoint_url"],
        "AWS_REGION": aws["region"],
        "AWS_DEFAULT_REGION": aws["region"],
        "AWS_ACCESS_KEY_ID": creds["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": creds["secret_access_key"],
        "AWS_SESSION_TOKEN": creds["session_token"],
        "EXPORT_BUCKET": aws["bucket"],
        "EXPORT_KMS_KEY_ARN": aws["kms_key_arn"],
        "VAULT_ADDR": vault["addr"],
        "VAULT_ROLE": vault["role"],
        "VAULT_IAM_SERVER_ID": vault["iam_server_id"],
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_NAMESPACE": "AuroraSnowflakeSyncBench",
    }


# --- the two methods, run inside a child process ----------------------------------------------
class LambdaContext:
    """What Lambda passes the handler; 15 minutes left, as at the start of a max-timeout call."""

    function_name = "aurora-sync-exporter-bench"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:aurora-sync-exporter-bench"
    aws_request_id = "bench"

    def __init__(self) -> None:
        self._deadline = time.monotonic() + 900

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def run_exporter(table: str, rows: int) -> dict[str, Any]:
    from exporter.app import lambda_handler

    event: dict[str, Any] = {
        "run_id": f"bench-{uuid.uuid4().hex[:8]}",
        "table": "bench_events",
        "source": {"schema": SCHEMA, "table": table},
        "primary_key": ["id"],
        "cursor": "updated_at",
        "max_rows_per_chunk": max(rows, 1000),
        "window": {"watermark": None, "lookback_seconds": 0, "source": "full"},
    }
    result = lambda_handler(event, LambdaContext())
    return {"rows": result["rows"], "bytes": result["bytes"]}


def run_pull(table: str, status: dict[str, Any]) -> dict[str, Any]:
    import boto3
    import psycopg2
    from psycopg2 import sql

    with psycopg2.connect(status["postgres"]["dsn"]) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(SCHEMA, table)))
        records = cur.fetchall()
    buffer = io.StringIO()
    csv.writer(buffer).writerows(records)
    body = buffer.getvalue().encode()
    aws = status["aws"]
    s3 = boto3.client(
        "s3",
        endpoint_url=aws["endpoint_url"],
        region_name=aws["region"],
        aws_access_key_id=aws["access_key_id"],
        aws_secret_access_key=aws["secret_access_key"],
    )
    s3.put_object(Bucket=aws["bucket"], Key=f"bench_pull/{uuid.uuid4()}.csv", Body=body)
    return {"rows": len(records), "bytes": len(body)}


def child(method: str, table: str, rows: int) -> None:
    status = json.loads(os.environ["BENCH_STACK"])
    started = time.perf_counter()
    outcome = run_exporter(table, rows) if method == "exporter" else run_pull(table, status)
    outcome["seconds"] = time.perf_counter() - started
    print(json.dumps(outcome))


def measure(method: str, table: str, rows: int, status: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, **lambda_environment(status), "BENCH_STACK": json.dumps(status)}
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", method, "--table", table, "--rows", str(rows)],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, code, usage = os.wait4(process.pid, 0)
    if code != 0:
        raise SystemExit(f"{method} failed (exit status {code})")
    result: dict[str, Any] = json.loads(output.decode().strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.table, args.rows)
        return

    status = stack_status()
    big, small = f"events_{args.rows}", "events_1000"
    print(f"preparing {args.rows:,} rows in {SCHEMA}.{big} (and 1,000 in {SCHEMA}.{small}) ...", flush=True)
    prepare_table(status, big, args.rows)
    prepare_table(status, small, 1000)

    results: dict[str, list[dict[str, Any]]] = {"exporter": [], "pull": []}
    for _ in range(args.repeat):
        for method, runs in results.items():  # interleaved: drift on the machine hits both alike
            runs.append(measure(method, big, args.rows, status))
    small_runs = [measure("exporter", small, 1000, status) for _ in range(args.repeat)]

    def med(method_results: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in method_results)

    print(
        f"\nExport of {args.rows:,} rows ({med(results['exporter'], 'bytes') / 1e6:.0f} MB CSV), "
        f"medians of {args.repeat}, {os.cpu_count()} cores"
    )
    print(f"{'method':<34}{'wall s':>10}{'peak RSS MB':>14}")
    for method, label in (
        ("exporter", "exporter (aws_s3, server-side)"),
        ("pull", "psycopg2 fetchall + csv + upload"),
    ):
        print(
            f"{label:<34}{med(results[method], 'seconds'):>10.2f}{med(results[method], 'peak_rss_mb'):>14.0f}"
        )
    ratio_t = med(results["pull"], "seconds") / med(results["exporter"], "seconds")
    ratio_m = med(results["pull"], "peak_rss_mb") / med(results["exporter"], "peak_rss_mb")
    print(f"{'pull / exporter':<34}{ratio_t:>9.1f}x{ratio_m:>13.1f}x")
    print(
        f"\nExporter peak RSS: 1,000 rows {med(small_runs, 'peak_rss_mb'):.0f} MB, "
        f"{args.rows:,} rows {med(results['exporter'], 'peak_rss_mb'):.0f} MB"
    )


if __name__ == "__main__":
    main()
