"""A Snowflake for the verifier's statements, without a server: a run of N one-file tables.

``Warehouse`` answers the reads of ``aurora_sync.verifying`` (COPY_HISTORY, TASK_HISTORY, the
merged-row count), records the MERGE tasks executed (by EXECUTE TASK or by the setup's
procedure's CALL) and counts every statement it receives by its first two words. The unit tests
of the verifier's work per call and bench/verifier_statements.py (statements per run, this
design beside an earlier one) drive the real verifier layer through it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aurora_sync.messages import VerifyOutput, parse_verify_request
from aurora_sync.verifying.act import verify
from aurora_sync.verifying.verify import Limits, Schemas

STARTED = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
RUN = "run-1"
ROWS = 4
SCHEMAS = Schemas("DB", "STAGING", "FINAL")


def name(i: int) -> str:
    return f"t{i:04d}"


def key(i: int) -> str:
    return f"{name(i)}/2026/11/02/10/s{11 + i:026d}-01967a3c-5b2e-7c4d-9e8f-0a1b2c3d4e5f.csv"


def export(i: int) -> dict[str, Any]:
    return {
        "table": name(i),
        "run_id": RUN,
        "status": "EXPORTED",
        "rows": ROWS,
        "files": 1,
        "keys": [key(i)],
        "window": {"watermark": "2026-11-01T00:00:00+00:00", "lookback_seconds": 0, "source": "final"},
        "chunks": 1,
        "snapshot": {
            "order": str(11 + i),
            "source_time": (STARTED - timedelta(seconds=30)).isoformat(),
            "horizon": (STARTED - timedelta(seconds=30)).isoformat(),
            "cursor_type": "timestamptz",
        },
        "primary_key": ["id"],
        "cursor": "updated_at",
    }


@dataclass
class Warehouse:
    """Snowflake as the verifier sees it for a run of one-file tables: which files Snowpipe has
    loaded, and each MERGE task's runs (EXECUTE TASK, alone or in the CALL of the setup's
    procedure, starts one that has SUCCEEDED by the next call). Counts the statements it
    receives, by their first two words."""

    loaded: bool = True
    runs: dict[str, list[str]] = field(default_factory=dict)  # target → states, newest first
    statements: Counter[str] = field(default_factory=Counter)
    executed: list[str] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)  # tasks passed to each CALL
    reads: list[list[str]] = field(default_factory=list)  # the tables of each COPY_HISTORY read

    def cursor(self) -> Cursor:
        return Cursor(self)

    def next_call(self) -> None:
        """Between two calls (a Wait state): the tasks requested have run."""
        for target in self.executed:
            self.runs[target] = ["SUCCEEDED"]
        self.executed.clear()


class Cursor:
    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self.rows: list[tuple[Any, ...]] = []
        self.rowcount = 0
        self.description = None

    def execute(self, statement: str, params: Any = None) -> None:
        self.warehouse.statements[" ".join(statement.split()[:2]).upper()] += 1
        params = list(params or [])
        self.rows = []
        if "COPY_HISTORY" in statement:
            # Each table's SELECT binds (STAGING table, start time, its one file).
            files = [str(file) for file in params[2::3]]
            self.warehouse.reads.append([file.split("/")[0] for file in files])
            if self.warehouse.loaded:
                at = STARTED + timedelta(seconds=60)
                self.rows = [
                    (index, file, "Loaded", ROWS, ROWS, None, 0, at) for index, file in enumerate(files)
                ]
        elif "TASK_HISTORY" in statement:
            # Each task's SELECT binds (task name, since, schema, database).
            for index in range(len(params) // 4):
                target = str(params[index * 4]).removesuffix("_MERGE")
                for n, state in enumerate(self.warehouse.runs.get(target, [])):
                    at = STARTED + timedelta(seconds=120 - n)
                    self.rows.append((index, f"q-{target}-{n}", state, None, at, at, at))
        elif statement.startswith("EXECUTE TASK"):
            task = statement.rsplit(".", maxsplit=1)[-1].strip('"')
            self.warehouse.executed.append(task.removesuffix("_MERGE"))
        elif statement.startswith("CALL"):
            tasks = json.loads(params[0])
            self.warehouse.calls.append(len(tasks))
            for task in tasks:
                self.warehouse.executed.append(
                    task.rsplit(".", maxsplit=1)[-1].strip('"').removesuffix("_MERGE")
                )
            self.rows = [(json.dumps([{"task": task} for task in tasks]),)]
        elif statement.startswith("SELECT (SELECT COUNT(*)"):
            self.rows = [tuple(ROWS for _ in range(statement.count('AS "N')))]

    def executemany(self, statement: str, rows: Any) -> None:
        self.execute(statement)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def close(self) -> None:
        pass


def call(
    warehouse: Warehouse, tables: int, previous: VerifyOutput | None, at: int, lim: Limits
) -> VerifyOutput:
    event: dict[str, Any] = {
        "run_id": RUN,
        "started_at": STARTED.isoformat(),
        "tables": [export(i) for i in range(tables)],
        "previous": previous.model_dump(mode="json") if previous else None,
    }
    moment = STARTED + timedelta(seconds=at)
    return verify(
        warehouse, parse_verify_request(event), schemas=SCHEMAS, limits=lim, configs={}, now=lambda: moment
    )


@dataclass
class RunCounts:
    statements: Counter[str]  # every statement of the run, by kind
    outputs: list[VerifyOutput]  # each call's output, the last one done
    per_call: list[int]  # statements of each call


def run_statements(tables: int, lim: Limits) -> RunCounts:
    """Call the verifier as the Wait/Verify loop does until the run is done, counting."""
    warehouse = Warehouse(loaded=True)
    previous = None
    counts = RunCounts(Counter(), [], [])
    for n in range(100):
        warehouse.statements.clear()
        previous = call(warehouse, tables, previous, 100 + 10 * n, lim)
        counts.statements += warehouse.statements
        counts.per_call.append(sum(warehouse.statements.values()))
        counts.outputs.append(previous)
        if previous.done:
            return counts
        warehouse.next_call()
    raise AssertionError("the verifier never settled the run")
