"""Syncs under concurrent write load: pgbench writes to a replicated table while the real state
machine syncs it every few seconds; once the load stops, a final sync must make FINAL equal the
source row by row.

The load is PostgreSQL's own ``pgbench`` with two custom scripts (``bench/pgbench/``):

* ``transfer.sql``     - short multi-statement transactions: UPDATE an account, upsert a new one;
* ``late_commit.sql``  - an UPDATE stamped ``now()`` (the transaction's start), then ``\\sleep 2 s``
  before COMMIT: a late commit whose stamp is older than rows other clients committed meanwhile.

Each pgbench client writes only the ids congruent to its ``client_id`` modulo the client count.
Rows shared between clients would let two transactions commit in the opposite order of their
``now()`` stamps on the same row (the later-started one takes the row lock first); the source's
newest version then carries the older cursor, and a MERGE that keeps the newest cursor (as every
timestamp-cursor sync does) would rightly refuse it. ``--shared-rows`` lifts the partition to
measure that case; parity is then not expected.

The run is throttled (``pgbench -R``): unthrottled, pgbench would take both cores of a small
machine from the Lambdas it is meant to run beside.

Usage (starts the stack in the state dir when needed, and stops it again if it started it)::

    .venv/bin/python bench/load_bench.py [--seconds 120] [--interval 2] [--rate 150] [--clients 4]
        [--jobs 2] [--accounts 5000] [--state-dir .local/bench-load] [--port-base 26700] [--json]

Prints rows changed (pgbench's transactions per script, and distinct rows written), each sync's
status, duration, late transactions open at its start, rows exported / merged and freshness lag
(the verifier's ``freshness_lag_seconds``), and the final row-by-row parity.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import parse_dsn

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "bench" / "pgbench"
sys.path.insert(0, str(REPO / "tests" / "support"))

from world import World, open_world, verify_output  # noqa: E402

from aurora_sync_ops.parity import compare  # noqa: E402

ACCOUNTS_DDL = (
    "CREATE TABLE {schema}.accounts (id bigint PRIMARY KEY, balance numeric(14,2) NOT NULL, "
    "note text, updated_at timestamptz NOT NULL)"
)
ACCOUNTS_TABLES: dict[str, tuple[str, dict[str, Any]]] = {
    "accounts": (ACCOUNTS_DDL, {"table": "accounts", "primary_key": ["id"]})
}


@dataclass(frozen=True)
class LoadSpec:
    seconds: int
    clients: int = 4
    jobs: int = 2
    rate: int = 150  # target transactions per second, all clients together
    accounts: int = 4000
    transfer_weight: int = 200
    late_weight: int = 1  # at 150 tps about one late commit a second, two clients holding one open
    shared_rows: bool = False


@dataclass
class PgbenchResult:
    transactions: int
    failed: int
    per_script: dict[str, int]  # script file name -> transactions processed
    tps: float


@dataclass
class SyncRecord:
    status: str
    seconds: float
    late_open_at_start: int  # pgbench transactions open > 0.5 s when the sync started (late commits)
    rows_exported: int | None = None
    rows_merged: int | None = None
    freshness_lag_seconds: float | None = None
    error: str | None = None


@dataclass
class LoadReport:
    pgbench: PgbenchResult
    rows_touched: int  # distinct rows whose updated_at is at or after the load's start
    syncs: list[SyncRecord] = field(default_factory=list)  # while the load ran
    final: SyncRecord | None = None
    parity: dict[str, Any] = field(default_factory=dict)


def fill_accounts(world: World, accounts: int) -> None:
    world.execute("CREATE INDEX ON {schema}.accounts (updated_at)")
    world.execute(
        "INSERT INTO {schema}.accounts (id, balance, note, updated_at) "
        "SELECT i, mod(i, 1000) * 1.25, 'account ' || i, now() FROM generate_series(1, %s) i",
        (accounts,),
    )


def pgbench_binary(stack: dict[str, Any]) -> str:
    candidate = Path(stack["postgres"]["bin_dir"]) / "pgbench"
    found = str(candidate) if candidate.exists() else shutil.which("pgbench")
    if not found:
        raise RuntimeError(
            f"pgbench not found in {candidate.parent} nor on PATH: install the PostgreSQL client "
            "(apt-get install postgresql-client-15)"
        )
    return found


def pgbench_invocation(world: World, spec: LoadSpec) -> tuple[list[str], dict[str, str]]:
    """argv and environment; the password travels in PGPASSWORD, never in argv (visible in ps)."""
    dsn = parse_dsn(world.status["postgres"]["admin_dsn"])
    search_path = sql.Identifier(world.schema).as_string(world.admin)
    if " " in search_path:  # PGOPTIONS splits on spaces; our schema names never contain one
        raise ValueError(f"schema {world.schema!r} cannot be passed in PGOPTIONS")
    lanes = 1 if spec.shared_rows else spec.clients
    argv = [
        pgbench_binary(world.status),
        "--no-vacuum",
        f"--client={spec.clients}",
        f"--jobs={spec.jobs}",
        f"--time={spec.seconds}",
        f"--rate={spec.rate}",
        f"--define=accounts={spec.accounts}",
        # One lane makes every client's id range the whole table (shared rows).
        f"--define=lanes={lanes}",
        f"--file={SCRIPTS / 'transfer.sql'}@{spec.transfer_weight}",
        f"--file={SCRIPTS / 'late_commit.sql'}@{spec.late_weight}",
        f"--host={dsn['host']}",
        f"--port={dsn['port']}",
        f"--username={dsn['user']}",
        dsn["dbname"],
    ]
    env = {
        **os.environ,
        "PGPASSWORD": dsn["password"],
        "PGOPTIONS": f"-c search_path={search_path}",
        "PGAPPNAME": "pgbench",
    }
    return argv, env


_TOTAL = re.compile(r"^number of transactions actually processed: (\d+)", re.M)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.M)
_TPS = re.compile(r"^tps = ([\d.]+)", re.M)
_SCRIPT = re.compile(r"^SQL script \d+: (\S+)\n(?: - .*\n)*? - (\d+) transactions", re.M)


def parse_pgbench(output: str) -> PgbenchResult:
    total, failed, tps = _TOTAL.search(output), _FAILED.search(output), _TPS.search(output)
    if not (total and tps):
        raise RuntimeError(f"unexpected pgbench output (no transaction summary):\n{output[-2000:]}")
    return PgbenchResult(
        transactions=int(total.group(1)),
        # pgbench reports failed transactions since PostgreSQL 15; older ones abort the client instead.
        failed=int(failed.group(1)) if failed else 0,
        per_script={Path(name).name: int(count) for name, count in _SCRIPT.findall(output)},
        tps=float(tps.group(1)),
    )


@contextmanager
def pgbench_running(world: World, spec: LoadSpec) -> Iterator[subprocess.Popen[str]]:
    """pgbench in the background; stopped if the body raises, so no load outlives the caller."""
    argv, env = pgbench_invocation(world, spec)
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.communicate(timeout=30)


def finish(process: subprocess.Popen[str], spec: LoadSpec) -> PgbenchResult:
    stdout, stderr = process.communicate(timeout=spec.seconds + 60)
    if process.returncode != 0:
        raise RuntimeError(f"pgbench exited with {process.returncode}:\n{stderr[-2000:]}")
    return parse_pgbench(stdout)


def late_transactions_open(world: World) -> int:
    with world.admin.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = 'pgbench' AND state = 'idle in transaction' "
            "AND xact_start < now() - interval '0.5 seconds'"
        )
        row = cur.fetchone()
    return int(row[0])


def sync_once(world: World) -> SyncRecord:
    late = late_transactions_open(world)
    started = time.monotonic()
    description, events = world.run()
    record = SyncRecord(
        status=description.get("status", "UNKNOWN"),
        seconds=round(time.monotonic() - started, 2),
        late_open_at_start=late,
    )
    if record.status != "SUCCEEDED":
        record.error = f"{description.get('error')}: {description.get('cause')}"
        return record
    (table,) = verify_output(events)["tables"]
    record.rows_exported = table["rows_exported"]
    record.rows_merged = table["rows_merged"]
    record.freshness_lag_seconds = table["freshness_lag_seconds"]
    return record


def syncs_under_load(world: World, spec: LoadSpec, interval: float) -> LoadReport:
    """Run pgbench for ``spec.seconds``, a sync every ``interval`` seconds meanwhile (back to back
    when a sync takes longer), then a final sync once the load ended, and the parity check."""
    with world.admin.cursor() as cur:
        cur.execute("SELECT now()")
        (load_started,) = cur.fetchone()
    syncs: list[SyncRecord] = []
    with pgbench_running(world, spec) as process:
        while process.poll() is None:
            began = time.monotonic()
            syncs.append(sync_once(world))
            time.sleep(max(0.0, interval - (time.monotonic() - began)))
        result = finish(process, spec)
    final = sync_once(world)
    with world.admin.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE updated_at >= %s").format(
                sql.Identifier(world.schema, "accounts")
            ),
            (load_started,),
        )
        (touched,) = cur.fetchone()
    parity = compare(
        world.admin,
        world.warehouse,
        world.setup,
        world.spec("accounts"),
        schema=world.schema,
        table="accounts",
    )
    return LoadReport(pgbench=result, rows_touched=touched, syncs=syncs, final=final, parity=parity.as_dict())


def print_report(report: LoadReport) -> None:
    bench = report.pgbench
    scripts = ", ".join(f"{name} {count}" for name, count in bench.per_script.items())
    print(
        f"load: {bench.transactions} transactions ({scripts}), {bench.failed} failed, "
        f"{bench.tps:.1f} tps; {report.rows_touched} distinct rows written"
    )
    header = ("sync", "status", "seconds", "late open", "exported", "merged", "lag s")
    print("{:>5} {:<10} {:>8} {:>9} {:>9} {:>7} {:>7}".format(*header))
    rows = [(str(n), s) for n, s in enumerate(report.syncs, 1)]
    if report.final:
        rows.append(("final", report.final))
    for label, s in rows:
        lag = "-" if s.freshness_lag_seconds is None else f"{s.freshness_lag_seconds:.2f}"
        print(
            f"{label:>5} {s.status:<10} {s.seconds:>8.2f} {s.late_open_at_start:>9} "
            f"{s.rows_exported if s.rows_exported is not None else '-':>9} "
            f"{s.rows_merged if s.rows_merged is not None else '-':>7} {lag:>7}"
            + (f"  {s.error}" if s.error else "")
        )
    parity = report.parity
    print(
        f"parity: {'EQUAL' if parity['equal'] else 'DIFFERENT'} "
        f"(source {parity['source_rows']} rows, FINAL {parity['final_rows']}, {parity['counts']})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=120, help="pgbench duration (-T)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between sync starts")
    parser.add_argument("--rate", type=int, default=LoadSpec.rate, help="pgbench -R, transactions/s")
    parser.add_argument("--clients", type=int, default=LoadSpec.clients)
    parser.add_argument("--jobs", type=int, default=LoadSpec.jobs)
    parser.add_argument("--accounts", type=int, default=5000, help="rows filled before the load")
    parser.add_argument("--late-weight", type=int, default=LoadSpec.late_weight)
    parser.add_argument("--shared-rows", action="store_true", help="let clients write the same rows")
    parser.add_argument("--state-dir", default=str(REPO / ".local" / "bench-load"))
    parser.add_argument("--port-base", type=int, default=26700)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    spec = LoadSpec(
        seconds=args.seconds,
        clients=args.clients,
        jobs=args.jobs,
        rate=args.rate,
        accounts=args.accounts,
        late_weight=args.late_weight,
        shared_rows=args.shared_rows,
    )

    from aurora_sync_ops.local.stack import Stack, settings_from_env

    stack = Stack(settings_from_env(root=args.state_dir, port_base=args.port_base))
    was_running = stack.status()["running"]
    stack.up()
    try:
        with open_world(stack.status(), ACCOUNTS_TABLES, prefix="load") as world:
            fill_accounts(world, spec.accounts)
            world.apply()
            backfill = sync_once(world)
            if backfill.status != "SUCCEEDED":
                raise RuntimeError(f"the backfill sync failed: {backfill.error}")
            report = syncs_under_load(world, spec, args.interval)
    finally:
        if not was_running:
            stack.down()
    if args.json:
        print(json.dumps(asdict(report), indent=2, default=str))
    else:
        print_report(report)
    healthy = all(s.status == "SUCCEEDED" for s in [*report.syncs, report.final] if s)
    return 0 if healthy and (report.parity["equal"] or spec.shared_rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
