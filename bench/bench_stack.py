"""What every benchmark shares: the local stack it runs on, the source table, the Lambda
environment, and a child process whose peak RSS is its own.

Benchmarks run on the embedded local stack of ``--state-dir`` / ``--port-base`` (or
``AURORA_SYNC_LOCAL_DIR`` / ``AURORA_SYNC_PORT_BASE``; default the developer's ``.local``), started
when it is not up. Each measured method runs in a fresh child process so that its peak RSS
(``os.wait4``'s ``ru_maxrss``) and its imports are its own, as in a cold Lambda.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCHEMA = "bench"
# The PostgreSQL timestamp of row 1; row i is stamped START + i seconds (see prepare_table).
START = "2026-01-01T00:00:00+00:00"


def stack_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", help="local stack state (env AURORA_SYNC_LOCAL_DIR; default .local)")
    parser.add_argument("--port-base", type=int, help="local stack ports (env AURORA_SYNC_PORT_BASE)")


def stack_status(args: argparse.Namespace, only: Iterable[str] | None = None) -> dict[str, Any]:
    """Start (or find) the stack and return its status dict (``aurora-sync local status --json``)."""
    from aurora_sync_ops.local.stack import Stack, settings_from_env

    settings = settings_from_env(args.state_dir, args.port_base)
    return Stack(settings, progress=lambda _line: None).up(only)


def stack_flags(args: argparse.Namespace) -> list[str]:
    """The same stack for a sub-benchmark started as its own process."""
    flags = []
    if args.state_dir:
        flags += ["--state-dir", args.state_dir]
    if args.port_base:
        flags += ["--port-base", str(args.port_base)]
    return flags


def prepare_table(admin_dsn: str, reader: str, table: str, rows: int) -> None:
    """``bench.<table>`` with ``rows`` events (7 columns, ~120 bytes of CSV each), readable by
    ``reader``. Kept between runs when it already holds ``rows`` rows: building 1M rows takes
    ~10 s."""
    import psycopg2
    from psycopg2 import sql

    ident = sql.Identifier(SCHEMA, table)
    with psycopg2.connect(admin_dsn) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
        cur.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(SCHEMA), sql.Identifier(reader))
        )
        cur.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = %s", (SCHEMA, table)
        )
        if cur.fetchone() == (1,):
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(ident))
            if cur.fetchone() == (rows,):
                return
            cur.execute(sql.SQL("DROP TABLE {}").format(ident))
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
                "%s::timestamptz + i * interval '1 second', "
                "%s::timestamptz + i * interval '1 second' FROM generate_series(1, %s) i"
            ).format(ident),
            (START, START, rows),
        )
        # The index an incremental export walks (cursor, then key), as the README asks of sources.
        cur.execute(sql.SQL("CREATE INDEX ON {} (updated_at, id)").format(ident))
        cur.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(ident, sql.Identifier(reader)))
        cur.execute(sql.SQL("ANALYZE {}").format(ident))


def lambda_environment(status: Mapping[str, Any], **extra: str) -> dict[str, str]:
    """The environment a deployed function has, pointed at the local stack (the Lambda role's
    STS credentials, not the admin's)."""
    aws, vault, creds = status["aws"], status["vault"], status["aws"]["lambda_credentials"]
    env = {
        "AWS_ENDPOINT_URL": aws["endpoint_url"],
        "AWS_REGION": aws["region"],
        "AWS_DEFAULT_REGION": aws["region"],
        "AWS_ACCESS_KEY_ID": creds["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": creds["secret_access_key"],
        "AWS_SESSION_TOKEN": creds["session_token"],
        "CONFIG_SSM_PATH": aws["config_ssm_path"],
        "EXPORT_BUCKET": aws["bucket"],
        "EXPORT_KMS_KEY_ARN": aws["kms_key_arn"],
        "VAULT_ADDR": vault["addr"],
        "VAULT_ROLE": vault["role"],
        "VAULT_IAM_SERVER_ID": vault["iam_server_id"],
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_NAMESPACE": "AuroraSnowflakeSyncBench",
    }
    env.update(extra)
    return env


class LambdaContext:
    """What Lambda passes a handler; 15 minutes left, as at the start of a max-timeout call."""

    memory_limit_in_mb = 256
    aws_request_id = "bench"

    def __init__(self, function: str) -> None:
        self.function_name = f"aurora-sync-{function}-bench"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        self._deadline = time.monotonic() + 900

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


@dataclass
class ChildResult:
    outcome: Any  # the JSON value the child printed last (an object, or a list of them)
    peak_rss_mb: float
    wall_seconds: float  # from spawn to exit: interpreter start and imports included


def run_child(argv: Sequence[str], env: Mapping[str, str]) -> ChildResult:
    """Run ``argv``; it must print one JSON value as its last stdout line."""
    started = time.perf_counter()
    process = subprocess.Popen(list(argv), stdout=subprocess.PIPE, env=dict(env))
    assert process.stdout is not None
    output = process.stdout.read()
    _, code, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"benchmark child {' '.join(argv[:3])} … failed (wait status {code})")
    lines = output.decode().strip().splitlines()
    if not lines:
        raise SystemExit(f"benchmark child {' '.join(argv[:3])} … printed nothing")
    # ru_maxrss is in kilobytes on Linux.
    return ChildResult(json.loads(lines[-1]), usage.ru_maxrss / 1024, wall)


def self_child(script: str, *args: str) -> list[str]:
    return [sys.executable, script, "--child", *args]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned table: first column left, the others right."""
    cells = [[str(c) for c in header], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [title]
    for n, row in enumerate(cells):
        lines.append(
            "  " + "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row))
        )
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value < 10:
            return f"{value:,.2f}"
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.1f}x" if denominator else "-"
