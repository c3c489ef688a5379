"""One verifier call's work does not grow with the run's table count (issue 15).

A run of 401 tables outlasted the verifier's 180 s timeout. Each call here runs the real layer
(``verifying.act.verify``: the rules and the statements of ``load_history``, ``ledger``) against a
connection that plays Snowflake for a run of N one-file tables and counts every statement sent
through it (``executemany`` is one statement: the connector binds its rows as arrays of one
request). Reads and ledger writes cover every table in one statement, and so do the MERGE tasks
(one CALL of the setup's procedure, at most ``Limits.merges_per_call`` first requests per call);
statements on one table's objects (ALTER PIPE ... REFRESH, a key snapshot's reconciliation) are
capped per call by ``Limits.table_actions``. Tables beyond a cap are taken up by the next call
with the verdicts an unlimited call gives; a whole run sends as many statements for 300 tables
as for 10 (issue 15: "the verifier's Snowflake statements per run should stay constant").
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aurora_sync.messages import VerifyOutput, parse_verify_request
from aurora_sync.verifying.act import verify
from aurora_sync.verifying.decide import DEFERRED, MERGE_DEFERRED
from aurora_sync.verifying.verify import MERGES_PER_CALL, TABLE_ACTIONS_PER_CALL, Limits, Schemas

STARTED = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
RUN = "run-1"
ROWS = 4
SCHEMAS = Schemas("DB", "STAGING", "FINAL")


def limits(table_actions: int = TABLE_ACTIONS_PER_CALL, merges: int = MERGES_PER_CALL) -> Limits:
    return Limits(
        refresh_after=timedelta(minutes=2),
        load_timeout=timedelta(minutes=15),
        merge_timeout=timedelta(minutes=15),
        table_actions=table_actions,
        merges_per_call=merges,
    )


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
            for index in range(len(params) // 3):
                file_name = params[index * 3 + 2]
                if self.warehouse.loaded:
                    at = STARTED + timedelta(seconds=60)
                    self.rows.append((index, file_name, "Loaded", ROWS, ROWS, None, 0, at))
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


def statements_of_one_call(tables: int, warehouse: Warehouse, lim: Limits) -> Counter[str]:
    call(warehouse, tables, None, 100, lim)
    return warehouse.statements


@pytest.mark.parametrize(
    "phase",
    ["files not loaded yet", "every file loaded: merges requested", "merges succeeded: runs marked"],
)
def test_one_call_sends_as_many_statements_for_300_tables_as_for_3(phase: str) -> None:
    def world(tables: int) -> Warehouse:
        warehouse = Warehouse(loaded=phase != "files not loaded yet")
        if phase == "merges succeeded: runs marked":
            warehouse.runs = {name(i).upper(): ["SUCCEEDED"] for i in range(tables)}
        return warehouse

    # Limits of 3: the 3-table run uses all of them.
    few = statements_of_one_call(3, world(3), limits(3, merges=3))
    many = statements_of_one_call(300, world(300), limits(3, merges=3))
    assert many == few
    assert sum(many.values()) <= 12, many


def test_the_default_limit_bounds_the_statements_of_a_call_of_2000_tables() -> None:
    warehouse = Warehouse(loaded=True)
    statements = statements_of_one_call(2000, warehouse, limits())
    # COPY_HISTORY, TASK_HISTORY, the ledger record (two DELETEs, two INSERTs), and one CALL that
    # executes the first MERGES_PER_CALL tasks.
    assert sum(statements.values()) == 7, statements
    assert "EXECUTE TASK" not in statements
    assert warehouse.calls == [MERGES_PER_CALL]


def run_statements(tables: int) -> tuple[Counter[str], int, VerifyOutput]:
    """Every statement of a whole run of ``tables`` tables with the default limits, by kind;
    the calls it took; its last output."""
    warehouse = Warehouse(loaded=True)
    previous = None
    total: Counter[str] = Counter()
    for n in range(50):
        warehouse.statements.clear()
        previous = call(warehouse, tables, previous, 100 + 10 * n, limits())
        total += warehouse.statements
        if previous.done:
            return total, n + 1, previous
        warehouse.next_call()
    raise AssertionError("the verifier never settled the run")


def test_a_run_sends_as_many_statements_for_300_tables_as_for_10() -> None:
    few, few_calls, few_output = run_statements(10)
    many, many_calls, many_output = run_statements(300)
    assert all(t.outcome == "MERGED" for t in [*few_output.tables, *many_output.tables])
    assert (many, many_calls) == (few, few_calls)
    # Call 1: COPY_HISTORY, TASK_HISTORY, the ledger record (4), the MERGE tasks' CALL; call 2:
    # COPY_HISTORY, TASK_HISTORY, the merged rows, the ledger marks (4).
    assert sum(many.values()) == 14 and few_calls == 2, many


def run_to_the_end(tables: int, lim: Limits) -> tuple[VerifyOutput, list[VerifyOutput], int]:
    """Call the verifier as the Wait/Verify loop does until done; (last output, outputs, most
    statements in one call)."""
    warehouse = Warehouse(loaded=True)
    outputs: list[VerifyOutput] = []
    previous = None
    most = 0
    for n in range(50):
        warehouse.statements.clear()
        previous = call(warehouse, tables, previous, 100 + 10 * n, lim)
        most = max(most, sum(warehouse.statements.values()))
        outputs.append(previous)
        if previous.done:
            return previous, outputs, most
        warehouse.next_call()
    raise AssertionError("the verifier never settled the run")


def test_a_call_past_its_limit_returns_not_done_and_the_next_calls_reach_the_same_verdicts() -> None:
    unlimited, _, _ = run_to_the_end(7, limits(100, merges=100))
    limited, outputs, most_limited = run_to_the_end(7, limits(3, merges=3))

    first = outputs[0]
    assert not first.done and first.pending == 7
    reasons = Counter(t.reason for t in first.tables)
    assert reasons[MERGE_DEFERRED] == 4 and DEFERRED in MERGE_DEFERRED
    # Only the cap left work and every file is loaded: the state machine need not wait.
    assert first.continue_now
    # Once every merge is requested the calls wait for the tasks (and the last one is done).
    assert [o.continue_now for o in outputs] == [True, True, False, False]
    assert len(outputs) > 2  # 7 merges at 3 a call

    def verdicts(output: VerifyOutput) -> list[tuple[Any, ...]]:
        return [
            (t.table, t.outcome, t.error, t.rows_loaded, t.rows_changed, t.files_loaded)
            for t in output.tables
        ]

    assert verdicts(limited) == verdicts(unlimited)
    assert all(t.outcome == "MERGED" for t in limited.tables)
    assert limited.summary is not None and limited.summary.failed_count == 0
    # Ten times the tables: more calls, none of them busier.
    _, more_outputs, most_of_more = run_to_the_end(70, limits(3, merges=3))
    assert len(more_outputs) > len(outputs) and most_of_more == most_limited


def test_a_call_waiting_on_snowpipe_does_not_continue_at_once_even_past_a_cap() -> None:
    # Past refresh_after: 7 pipe refreshes at 3 a call, and the files still to be loaded.
    output = call(Warehouse(loaded=False), 7, None, 200, limits(3, merges=3))
    assert sum(DEFERRED in (t.reason or "") for t in output.tables) == 4
    assert not output.done and not output.continue_now
