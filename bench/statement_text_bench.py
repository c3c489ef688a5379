"""Planner/verifier statements over many tables in the emulator: one bind per table beside one
bound JSON array, at 300, 1,000 and 2,000 tables, in the same run.

A run of 2,000 tables failed in the planner: INFORMATION_SCHEMA.COLUMNS with
``"TABLE_NAME" IN (?, ?, ...)``, one bind per table, took over 60 s in the emulator, which
translates every statement text it has not seen (fakesnow, through sqlglot). The statements now
bind the list as one JSON array (``warehouse_db.IN_BOUND_LIST``), so their text does not grow.

Each side calls the real functions of its ``functions/`` tree in a subprocess against an
in-process fakesnow (no stack): ``schema_evolution.read_warehouse_columns`` of N tables in STAGING
and FINAL, then the ledger as a run uses it (``record_runs``, ``mark_merged``, ``read_history``,
``last_merged_source_times``). The N STAGING/FINAL tables are created in the emulator's DuckDB
directly (thousands of CREATE TABLEs through the translator would dominate the run). Each figure
is the wall time of one call, in seconds; the answers of both sides must agree.

The baseline is the ``functions/`` tree of ``--baseline`` (default: the integration head before
this change), extracted with ``git archive``.

    .venv/bin/python bench/statement_text_bench.py [--baseline REV] [--tables 300 1000 2000] [--json]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from verifier_statements import both_sides, print_sides

REPO = Path(__file__).resolve().parents[1]
BASELINE = "3f3554d"  # i15 integration head: one ? per table in every list
TABLES = (300, 1000, 2000)
STEPS = ("columns", "record_runs", "mark_merged", "read_history", "last_merged")
LEDGER_SQL = REPO / "sql" / "snowflake" / "05_export_ledger.sql"


def _ledger_tables(database: str, schema: str) -> list[str]:
    """The setup's CREATE TABLE statements of the ledger, for this database and schema."""
    from aurora_sync_ops.snowflake_sql import split_statements

    text = LEDGER_SQL.read_text().replace("{{database}}", database).replace("{{staging_schema}}", schema)
    return [s for s in split_statements(text) if s.startswith("CREATE TABLE")]


def measure(tables: Sequence[int]) -> list[dict[str, Any]]:
    """Run in the subprocess: the figures of whichever ``aurora_sync`` is first on sys.path."""
    warnings.simplefilter("ignore")
    return [_one_run(count) for count in tables]


def _one_run(count: int) -> dict[str, Any]:
    """A run of ``count`` tables against a fresh emulator database: each call's seconds, and
    what it answered (both sides must agree)."""
    import fakesnow
    import snowflake.connector

    from aurora_sync.ledger import (
        AccountedFile,
        Ledger,
        RunRecord,
        last_merged_source_times,
        mark_merged,
        read_history,
        record_runs,
    )
    from aurora_sync.messages import SourceSnapshot
    from aurora_sync.schema_evolution import read_warehouse_columns

    started = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    snapshot = SourceSnapshot(
        order="11", source_time=started.isoformat(), horizon=started.isoformat(), cursor_type="int8"
    )
    names = [f"T{i:05d}" for i in range(count)]
    db = f"DB{count}"  # the emulator keeps a database for the whole process
    seconds: dict[str, float] = {}
    answers: dict[str, Any] = {}

    def timed(step: str, call: Any) -> Any:
        begun = time.perf_counter()
        result = call()
        seconds[step] = round(time.perf_counter() - begun, 3)
        return result

    with fakesnow.patch():
        conn = snowflake.connector.connect(database=db, schema="STAGING", paramstyle="qmark")
        cur = conn.cursor()
        for statement in (
            f"CREATE DATABASE IF NOT EXISTS {db}",
            f"USE DATABASE {db}",
            "CREATE SCHEMA IF NOT EXISTS STAGING",
            "CREATE SCHEMA IF NOT EXISTS FINAL",
            *_ledger_tables(f'"{db}"', '"STAGING"'),
        ):
            cur.execute(statement)
        duck = conn._duck_conn  # type: ignore[attr-defined]
        for schema in ("STAGING", "FINAL"):
            for name in names:
                duck.execute(f'CREATE TABLE "{db}"."{schema}"."{name}" ("ID" DECIMAL(38,0), "NAME" VARCHAR)')
        ledger = Ledger(db, "STAGING")
        runs = [RunRecord(n, "run-1", snapshot, None, ("ID",), "ID", files=1, rows=1) for n in names]
        files = {n: [AccountedFile(f"{n.lower()}/a.csv", 11, 1)] for n in names}
        # The MERGE tasks started after the files were accounted for (on the emulator's clock).
        merges = [(n, datetime.now(UTC) + timedelta(minutes=5), True) for n in names]

        found = timed(
            "columns",
            lambda: read_warehouse_columns(
                conn, database=db, staging_schema="STAGING", final_schema="FINAL", targets=names
            ),
        )
        answers["columns"] = [len(found.staging), len(found.final)]
        timed("record_runs", lambda: record_runs(conn, ledger, runs, files))
        timed("mark_merged", lambda: mark_merged(conn, ledger, "run-1", merges))
        history = timed("read_history", lambda: read_history(conn, ledger, names))
        answers["history"] = sum(len(h) for h in history.values())
        answers["last_merged"] = len(
            timed("last_merged", lambda: last_merged_source_times(conn, ledger, names))
        )
        cur.execute(f"SELECT COUNT(*) FROM {ledger.files} WHERE MERGED_AT IS NOT NULL")
        (answers["files_merged"],) = cur.fetchone() or (None,)
        conn.close()
    return {"tables": count, "seconds": seconds, "answers": answers}


def _side(functions: Path, tables: Sequence[int]) -> list[dict[str, Any]]:
    code = (
        "import json, sys; sys.path[:0] = sys.argv[1:3]; from statement_text_bench import measure; "
        "print(json.dumps(measure([int(t) for t in sys.argv[3:]])))"
    )
    paths = [str(functions), str(REPO / "bench")]
    done = subprocess.run(
        [sys.executable, "-c", code, *paths, *map(str, tables)], check=True, capture_output=True, text=True
    )
    return list(json.loads(done.stdout.splitlines()[-1]))


def render(baseline: list[dict[str, Any]], current: list[dict[str, Any]], revision: str) -> str:
    lines = [
        f"Seconds per call in the emulator (fakesnow, in-process); baseline {revision}: one ? per table",
        f"{'tables':>7} | " + " | ".join(f"{step:>21}" for step in STEPS),
        f"{'':>7} | " + " | ".join(f"{'baseline':>9} {'now':>5} {'x':>5}" for _ in STEPS),
    ]
    for before, after in zip(baseline, current, strict=True):
        cells = []
        for step in STEPS:
            old, new = before["seconds"][step], after["seconds"][step]
            cells.append(f"{old:>9.2f} {new:>5.2f} {old / max(new, 0.001):>5.0f}")
        lines.append(f"{after['tables']:>7} | " + " | ".join(cells))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args, baseline, current = both_sides(argv, doc=__doc__, baseline=BASELINE, tables=TABLES, side=_side)
    for before, after in zip(baseline, current, strict=True):
        if before["answers"] != after["answers"]:
            raise SystemExit(f"the two sides disagree at {after['tables']} tables: {before} != {after}")
    print_sides(args, baseline, current, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
