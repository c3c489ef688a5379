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

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from verifier_warehouse import Warehouse, call, name, run_statements

from aurora_sync.messages import VerifyOutput
from aurora_sync.verifying.decide import DEFERRED, LOADS_DEFERRED, MERGE_DEFERRED
from aurora_sync.verifying.verify import LOADS_PER_CALL, MERGES_PER_CALL, TABLE_ACTIONS_PER_CALL, Limits


def limits(
    table_actions: int = TABLE_ACTIONS_PER_CALL, merges: int = MERGES_PER_CALL, loads: int = LOADS_PER_CALL
) -> Limits:
    return Limits(
        refresh_after=timedelta(minutes=2),
        load_timeout=timedelta(minutes=15),
        merge_timeout=timedelta(minutes=15),
        table_actions=table_actions,
        merges_per_call=merges,
        loads_per_call=loads,
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
    few = statements_of_one_call(3, world(3), limits(3, merges=3, loads=3))
    many = statements_of_one_call(300, world(300), limits(3, merges=3, loads=3))
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
    # The one COPY_HISTORY statement reads LOADS_PER_CALL tables' files, not 2,000: 2,000 table
    # functions in one statement did not answer within the connector's 60 s (issue 15).
    assert [len(read) for read in warehouse.reads] == [LOADS_PER_CALL]


def test_past_the_load_cap_each_call_reads_the_tables_left_unread_first() -> None:
    # Snowpipe has loaded nothing yet: every table stays pending, and 7 tables at 3 a call are
    # read in turn, so none waits more than ceil(7 / 3) calls for its first or next read.
    warehouse = Warehouse(loaded=False)
    previous = None
    for n in range(4):
        previous = call(warehouse, 7, previous, 30 + 10 * n, limits(loads=3))
        unread = {t.table for t in previous.tables if t.reason == LOADS_DEFERRED}
        assert len(unread) == 4 and not previous.continue_now
    assert warehouse.reads == [
        ["t0000", "t0001", "t0002"],
        ["t0003", "t0004", "t0005"],
        ["t0006", "t0000", "t0001"],
        ["t0002", "t0003", "t0004"],
    ]


def test_a_table_left_unread_keeps_what_its_last_read_found() -> None:
    warehouse = Warehouse(loaded=False)
    first = call(warehouse, 4, None, 30, limits(loads=2))
    warehouse.loaded = True
    second = call(warehouse, 4, first, 40, limits(loads=2))
    t0000 = next(t for t in second.tables if t.table == "t0000")
    assert t0000.reason == LOADS_DEFERRED and t0000.outcome == "PENDING"
    first_read = next(t for t in first.tables if t.table == "t0000")
    assert (t0000.files_loaded, t0000.missing, t0000.loads_read_at) == (
        0,
        first_read.missing,
        first_read.loads_read_at,
    )
    loaded = next(t for t in second.tables if t.table == "t0002")
    assert (loaded.files_loaded, loaded.rows_loaded) == (1, 4)


def test_a_run_sends_as_many_statements_for_300_tables_as_for_10() -> None:
    few, many = run_statements(10, limits()), run_statements(300, limits())
    assert all(t.outcome == "MERGED" for t in [*few.outputs[-1].tables, *many.outputs[-1].tables])
    assert (many.statements, many.per_call) == (few.statements, few.per_call)
    # Call 1: COPY_HISTORY, TASK_HISTORY, the ledger record (4), the MERGE tasks' CALL; call 2:
    # COPY_HISTORY, TASK_HISTORY, the merged rows, the ledger marks (4).
    assert many.per_call == [7, 7], many.statements


def run_to_the_end(tables: int, lim: Limits) -> tuple[VerifyOutput, list[VerifyOutput], int]:
    """(last output, outputs, most statements in one call) of a whole run."""
    counts = run_statements(tables, lim)
    return counts.outputs[-1], counts.outputs, max(counts.per_call)


def test_a_call_past_its_limit_returns_not_done_and_the_next_calls_reach_the_same_verdicts() -> None:
    unlimited, _, _ = run_to_the_end(7, limits(100, merges=100, loads=100))
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


def test_past_the_load_cap_calls_wait_once_every_table_was_read_and_only_merges_run() -> None:
    # Every file loaded and every MERGE task already executing: the first calls read the tables
    # no call has read yet without a Wait; once each was read, the calls wait between turns
    # instead of spinning through VerifyMaxAttempts while the tasks run.
    warehouse = Warehouse(loaded=True, runs={name(i).upper(): ["EXECUTING"] for i in range(7)})
    previous = None
    continues = []
    for n in range(4):
        previous = call(warehouse, 7, previous, 100 + 10 * n, limits(loads=3))
        assert previous.pending == 7
        continues.append(previous.continue_now)
    assert continues == [True, True, False, False]
