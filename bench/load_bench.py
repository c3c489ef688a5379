"""Syncs under concurrent write load: pgbench writes to a replicated table while the real state
machine syncs it every few seconds; once the load stops, a final sync must make FINAL equal the
source row by row.

The load is PostgreSQL's own ``pgbench`` with two custom scripts (``bench/pgbench/``), and every
client writes the same few hot rows (ids ``1..hot``) most of the time:

* ``transfer.sql``     - short multi-statement transactions: UPDATE an account (a hot row most of
  the time), upsert a new one;
* ``late_commit.sql``  - UPDATE a hot row stamped ``now()`` (the transaction's start) and hold its
  lock (``--linger`` seconds), then UPDATE a second hot row with that old stamp and COMMIT: other
  clients have committed that row meanwhile with later stamps, so its newest version carries the
  oldest one.

Commit order and ``updated_at`` order then disagree on the same row. The MERGE orders a row's
versions by the source snapshot they were exported in, not by the cursor, so parity is expected
regardless. The report counts the inversions a sync actually saw (``HotRows``): a hot row whose
``updated_at`` went back in FINAL between two syncs, or whose final source version is older than
one FINAL had already merged. A MERGE keeping the newest ``updated_at`` would have refused each of
them. Both scripts lock rows in ascending id order, so no transaction fails on a deadlock and
pgbench needs no retries (``--max-tries``).

The run is throttled (``pgbench -R``): unthrottled, pgbench would take both cores of a small
machine from the Lambdas it is meant to run beside.

Usage (starts the stack in the state dir when needed, and stops it again if it started it)::

    .venv/bin/python bench/load_bench.py [--seconds 120] [--interval 2] [--rate 150] [--clients 8]
        [--jobs 2] [--accounts 5000] [--hot 100] [--hot-percent 90] [--late-weight 3] [--linger 3]
        [--state-dir .local/bench-load] [--port-base 26700] [--json]

Prints rows changed (pgbench's transactions per script, and distinct rows written), each sync's
status, duration, late transactions open at its start, rows exported / changed and freshness lag
(the verifier's ``freshness_lag_seconds``), the commit-order inversions seen on hot rows, and the
final row-by-row parity.
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
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import parse_dsn

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "bench" / "pgbench"
sys.path.insert(0, str(REPO / "tests" / "support"))

from world import World, open_world  # noqa: E402

from aurora_sync.naming import quote  # noqa: E402
from aurora_sync_ops.parity import canonical, compare  # noqa: E402

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
    clients: int = 8  # late commits sleep on about half of them
    jobs: int = 2
    rate: int = 150  # target transactions per second, all clients together
    accounts: int = 4000
    # ids 1..hot, written by every client. Fewer hot rows make more inversions, but each inverted
    # version is then overwritten before a sync reads it (20 rows: ~6 writes/s each at 150 tps),
    # and late commits holding hot rows stall most clients; 100 made the most reach a sync.
    hot: int = 100
    hot_percent: int = 90  # share of transfers that update a hot row rather than any row
    # Seconds a late commit holds its first row before updating the second. Longer than the gap
    # between two syncs' snapshots makes a sync likelier to merge a newer-stamped version first.
    linger: int = 3
    transfer_weight: int = 200
    late_weight: int = 3  # at 150 tps about two late commits a second, each holding a client


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
    rows_changed: int | None = None  # FINAL rows inserted or rewritten with different values
    rows_unchanged: int | None = None  # loaded rows that changed nothing (re-read)
    freshness_lag_seconds: float | None = None
    error: str | None = None


@dataclass
class HotRows:
    """Commit-order inversions on the hot rows that reached a sync, found without a trigger: FINAL's
    ``updated_at`` of each hot row is read after every sync under load (what that sync merged), and
    the source's once the load is over. Each one is a version a MERGE keeping the newest
    ``updated_at`` would have refused, leaving FINAL with a row the source no longer has."""

    rows: int  # ids 1..rows
    # A sync under load replaced a hot row's version in FINAL by one stamped older than a version
    # FINAL had held after an earlier sync (most inverted versions are overwritten by a later
    # transfer before a sync reads them, and are not counted).
    merged_backwards: int = 0
    # Hot rows whose last source version is stamped older than one FINAL held under load: the
    # final sync must merge it over that newer-stamped version for parity.
    older_at_end: int = 0
    inversions: int = 0  # the sum
    # Every UPDATE at the source that stamped a row older than the version it replaced (a trigger
    # counts them), whether or not a sync read the row in between.
    at_source: int = 0


class HotRowWatch:
    def __init__(self, world: World, hot: int) -> None:
        self.world, self.hot = world, hot
        self.reads: list[dict[int, datetime]] = []

    def read(self) -> None:
        self.reads.append(final_stamps(self.world, self.hot))

    def report(self) -> HotRows:
        """Once the load is over, before the final sync."""
        result = HotRows(self.hot)
        newest: dict[int, datetime] = {}
        for stamps in self.reads:
            for key, stamp in stamps.items():
                if key in newest and stamp < newest[key]:
                    result.merged_backwards += 1
                newest[key] = max(stamp, newest.get(key, stamp))
        source = source_stamps(self.world, self.hot)
        result.older_at_end = sum(1 for key, stamp in source.items() if stamp < newest.get(key, stamp))
        result.inversions = result.merged_backwards + result.older_at_end
        with self.world.admin.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT count(*) FROM {}").format(
                    sql.Identifier(self.world.schema, "stamp_inversions")
                )
            )
            row = cur.fetchone()
        result.at_source = int(row[0]) if row else 0
        return result


@dataclass
class LoadReport:
    pgbench: PgbenchResult
    rows_touched: int  # distinct rows whose updated_at is at or after the load's start
    hot_rows: HotRows
    syncs: list[SyncRecord] = field(default_factory=list)  # while the load ran
    final: SyncRecord | None = None
    parity: dict[str, Any] = field(default_factory=dict)


def fill_accounts(world: World, accounts: int) -> None:
    world.execute("CREATE INDEX ON {schema}.accounts (updated_at)")
    # Counts every commit-order inversion at the source: an UPDATE runs only once the row's lock is
    # free, so OLD is the newest committed version, and NEW stamped older than it is a version
    # committed after one with a later stamp. The syncs never read this table.
    world.execute(
        "CREATE TABLE {schema}.stamp_inversions (id bigint, old_stamp timestamptz, new_stamp timestamptz)"
    )
    world.execute(
        "CREATE FUNCTION {schema}.record_inversion() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "INSERT INTO stamp_inversions VALUES (NEW.id, OLD.updated_at, NEW.updated_at); RETURN NEW; END $$"
    )
    world.execute(
        "CREATE TRIGGER record_inversion BEFORE UPDATE ON {schema}.accounts FOR EACH ROW "
        "WHEN (NEW.updated_at < OLD.updated_at) EXECUTE FUNCTION {schema}.record_inversion()"
    )
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
    argv = [
        pgbench_binary(world.status),
        "--no-vacuum",
        f"--client={spec.clients}",
        f"--jobs={spec.jobs}",
        f"--time={spec.seconds}",
        f"--rate={spec.rate}",
        f"--define=accounts={spec.accounts}",
        f"--define=hot={spec.hot}",
        f"--define=hot_percent={spec.hot_percent}",
        f"--define=linger={spec.linger}",
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


def _utc(value: Any) -> datetime:
    return datetime.fromisoformat(str(canonical("TIMESTAMP_TZ", value)))


def final_stamps(world: World, hot: int) -> dict[int, datetime]:
    """id -> updated_at of the hot rows in FINAL."""
    spec = world.spec("accounts")
    key, cursor = spec.name_of("id"), spec.name_of("updated_at")
    table = world.setup.objects(spec.target).final_table
    cur = world.warehouse.cursor()
    try:
        cur.execute(f"SELECT {quote(key)}, {quote(cursor)} FROM {table} WHERE {quote(key)} <= %s", (hot,))
        return {int(row[0]): _utc(row[1]) for row in cur.fetchall()}
    finally:
        cur.close()


def source_stamps(world: World, hot: int) -> dict[int, datetime]:
    with world.admin.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT id, updated_at FROM {} WHERE id <= %s").format(
                sql.Identifier(world.schema, "accounts")
            ),
            (hot,),
        )
        return {int(key): _utc(stamp) for key, stamp in cur.fetchall()}


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
    (table,) = world.verify_output(events)["tables"]
    record.rows_exported = table["rows_exported"]
    record.rows_changed = table["rows_changed"]
    record.rows_unchanged = table["rows_unchanged"]
    record.freshness_lag_seconds = table["freshness_lag_seconds"]
    return record


def syncs_under_load(world: World, spec: LoadSpec, interval: float) -> LoadReport:
    """Run pgbench for ``spec.seconds``, a sync every ``interval`` seconds meanwhile (back to back
    when a sync takes longer), then a final sync once the load ended, and the parity check."""
    with world.admin.cursor() as cur:
        cur.execute("SELECT now()")
        (load_started,) = cur.fetchone()
    syncs: list[SyncRecord] = []
    hot = HotRowWatch(world, spec.hot)
    hot.read()
    with pgbench_running(world, spec) as process:
        while process.poll() is None:
            began = time.monotonic()
            syncs.append(sync_once(world))
            hot.read()
            time.sleep(max(0.0, interval - (time.monotonic() - began)))
        result = finish(process, spec)
    hot_rows = hot.report()
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
    return LoadReport(
        pgbench=result,
        rows_touched=touched,
        hot_rows=hot_rows,
        syncs=syncs,
        final=final,
        parity=parity.as_dict(),
    )


def print_report(report: LoadReport) -> None:
    bench = report.pgbench
    scripts = ", ".join(f"{name} {count}" for name, count in bench.per_script.items())
    print(
        f"load: {bench.transactions} transactions ({scripts}), {bench.failed} failed, "
        f"{bench.tps:.1f} tps; {report.rows_touched} distinct rows written"
    )
    header = ("sync", "status", "seconds", "late open", "exported", "changed", "lag s")
    print("{:>5} {:<10} {:>8} {:>9} {:>9} {:>7} {:>7}".format(*header))
    rows = [(str(n), s) for n, s in enumerate(report.syncs, 1)]
    if report.final:
        rows.append(("final", report.final))
    for label, s in rows:
        lag = "-" if s.freshness_lag_seconds is None else f"{s.freshness_lag_seconds:.2f}"
        print(
            f"{label:>5} {s.status:<10} {s.seconds:>8.2f} {s.late_open_at_start:>9} "
            f"{s.rows_exported if s.rows_exported is not None else '-':>9} "
            f"{s.rows_changed if s.rows_changed is not None else '-':>7} {lag:>7}"
            + (f"  {s.error}" if s.error else "")
        )
    hot = report.hot_rows
    print(
        f"hot rows 1..{hot.rows}: {hot.at_source} commit-order inversions at the source, "
        f"{hot.inversions} of them reached a sync "
        f"({hot.merged_backwards} times FINAL's updated_at went back under load, "
        f"{hot.older_at_end} rows ended older-stamped than a version FINAL held)"
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
    parser.add_argument("--hot", type=int, default=LoadSpec.hot, help="hot rows, ids 1..hot")
    parser.add_argument(
        "--hot-percent", type=int, default=LoadSpec.hot_percent, help="transfers that write a hot row"
    )
    parser.add_argument("--late-weight", type=int, default=LoadSpec.late_weight)
    parser.add_argument("--linger", type=int, default=LoadSpec.linger, help="seconds a late commit lingers")
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
        hot=args.hot,
        hot_percent=args.hot_percent,
        late_weight=args.late_weight,
        linger=args.linger,
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
    return 0 if healthy and report.parity["equal"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
