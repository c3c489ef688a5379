"""What ``aurora-sync sql snowflake`` keeps of a table's definition once it has read what exists
(``what_differs``), and how ``apply_plans`` runs tables side by side and stops on a failure."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest

from aurora_sync.snowflake_objects import TableSpec, table_spec
from aurora_sync.snowflake_tables import SnowflakeSetup, render_pipe, render_table, task_definitions
from aurora_sync.source_catalog import SourceColumn
from aurora_sync.typemap import PgType
from aurora_sync_ops.snowflake_plan import (
    ExistingTask,
    TablePlan,
    WarehouseCatalog,
    apply_plans,
    what_differs,
)

SETUP = SnowflakeSetup(
    bucket="aurora-sync-data-lake", storage_role_arn="arn:aws:iam::123456789012:role/sf-read"
)
CATALOG = [
    SourceColumn("id", PgType("int8", "bigint", "N"), True),
    SourceColumn("note", PgType("text", "text", "S"), False),
    SourceColumn("updated_at", PgType("timestamptz", "timestamp with time zone", "D"), True),
]


def spec(name: str = "orders") -> TableSpec:
    return table_spec(
        name=name,
        target=name.upper(),
        catalog=CATALOG,
        schema="public",
        table=name,
        columns=None,
        primary_key=["id"],
        cursor="updated_at",
    )


def applied_catalog(the_spec: TableSpec, setup: SnowflakeSetup = SETUP) -> WarehouseCatalog:
    """What Snowflake holds once ``render_table`` was applied: every object, tasks as rendered,
    the retention task resumed."""
    objects = setup.objects(the_spec.target)
    merge, retention = task_definitions(setup, the_spec)
    return WarehouseCatalog(
        columns={name: ["ID"] for name in (objects.staging_table, objects.final_table, objects.keys_table)},
        pipes={objects.pipe: "COPY INTO ..."},
        streams={objects.stream},
        tasks={
            merge.name: ExistingTask(merge.definition, merge.comment, "suspended"),
            retention.name: ExistingTask(retention.definition, retention.comment, "started"),
        },
    )


def test_a_table_applied_and_unchanged_needs_no_statement() -> None:
    the_spec = spec()
    assert what_differs(SETUP, the_spec, render_table(SETUP, the_spec), applied_catalog(the_spec)) == []


def test_nothing_exists_keeps_the_whole_definition() -> None:
    the_spec = spec()
    definition = render_table(SETUP, the_spec)
    assert what_differs(SETUP, the_spec, definition, WarehouseCatalog()) == definition


def test_each_missing_object_gets_only_its_own_create() -> None:
    the_spec = spec()
    objects = SETUP.objects(the_spec.target)
    definition = render_table(SETUP, the_spec)
    catalog = applied_catalog(the_spec)
    del catalog.columns[objects.keys_table]
    catalog.streams.clear()
    kept = what_differs(SETUP, the_spec, definition, catalog)
    assert kept == [
        s
        for s in definition
        if s.startswith((f"CREATE TABLE IF NOT EXISTS {objects.keys_table} ", "CREATE STREAM"))
    ]
    assert len(kept) == 2
    catalog = applied_catalog(the_spec)
    del catalog.pipes[objects.pipe]
    assert what_differs(SETUP, the_spec, definition, catalog) == [render_pipe(SETUP, the_spec)]


def test_a_task_whose_definition_differs_is_replaced_and_a_scheduled_one_resumed() -> None:
    the_spec = spec()
    definition = render_table(SETUP, the_spec)
    merge, retention = task_definitions(SETUP, the_spec)
    catalog = applied_catalog(the_spec)
    catalog.tasks[merge.name] = replace(catalog.tasks[merge.name], definition="MERGE INTO older")
    # The MERGE task is re-created, never resumed: the verifier runs it with EXECUTE TASK.
    assert what_differs(SETUP, the_spec, definition, catalog) == merge.statements
    assert len(merge.statements) == 1 and not merge.statements[0].startswith("ALTER TASK")

    catalog = applied_catalog(the_spec)
    catalog.tasks[retention.name] = replace(catalog.tasks[retention.name], definition="DELETE FROM older")
    assert what_differs(SETUP, the_spec, definition, catalog) == retention.statements
    assert retention.statements[1] == f"ALTER TASK {retention.name} RESUME"

    catalog = applied_catalog(the_spec)
    catalog.tasks[retention.name] = replace(catalog.tasks[retention.name], state="suspended")
    assert what_differs(SETUP, the_spec, definition, catalog) == retention.statements[1:]


def test_a_changed_setting_shows_only_in_the_comments_fingerprint_and_replaces_the_tasks() -> None:
    """SHOW TASKS does not show USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE: the comment's
    fingerprint of the settings does, so a new task size re-creates both tasks."""
    the_spec = spec()
    larger = replace(SETUP, task_size="SMALL")
    before, after = task_definitions(SETUP, the_spec), task_definitions(larger, the_spec)
    assert [t.definition for t in before] == [t.definition for t in after]
    assert all(b.comment != a.comment for b, a in zip(before, after, strict=True))
    kept = what_differs(larger, the_spec, render_table(larger, the_spec), applied_catalog(the_spec))
    assert kept == [s for task in after for s in task.statements]
    assert all(
        "USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'SMALL'" in s for s in kept if s.startswith("CREATE")
    )


def test_replacements_and_alters_always_stay() -> None:
    the_spec = spec()
    statements = [
        'ALTER TABLE "AURORA_SYNC"."STAGING"."ORDERS" ADD COLUMN "X" VARCHAR',
        render_pipe(SETUP, the_spec, replace=True),
    ]
    assert what_differs(SETUP, the_spec, statements, applied_catalog(the_spec)) == statements


# --- applying ---------------------------------------------------------------------------------------
class Connection:
    """Records each statement with its connection; fails the statements it is told to."""

    def __init__(self, log: list[tuple[int, str]], fail: set[str], number: int) -> None:
        self.log, self.fail, self.number, self.closed = log, fail, number, False

    def cursor(self) -> Connection:
        return self

    def execute(self, statement: str) -> None:
        if statement in self.fail:
            from snowflake.connector.errors import ProgrammingError

            raise ProgrammingError(msg=f"SQL compilation error: {statement} failed", errno=2003)
        self.log.append((self.number, statement))

    def fetchall(self) -> list[Any]:
        return []

    def close(self) -> None:
        self.closed = True


def plans(count: int) -> list[TablePlan]:
    return [TablePlan(f"t{i}", f"T{i}", "new", [f"t{i} s{n}" for n in range(3)]) for i in range(count)]


def test_tables_run_side_by_side_each_in_order_on_its_own_connection() -> None:
    log: list[tuple[int, str]] = []
    opened: list[Connection] = []
    lock = threading.Lock()

    def connect() -> Connection:
        with lock:
            opened.append(Connection(log, set(), len(opened) + 1))
            return opened[-1]

    outcome = apply_plans(
        [*plans(20), TablePlan("same", "SAME", "current", [])], Connection(log, set(), 0), connect, parallel=4
    )
    assert (outcome.failed, outcome.not_started, outcome.statements) == ([], [], 60)
    assert sorted(outcome.applied) == sorted(f"t{i}" for i in range(20))  # "same" had nothing to apply
    assert len(opened) == 3 and all(conn.closed for conn in opened)
    for i in range(20):
        mine = [(conn, s) for conn, s in log if s.startswith(f"t{i} ")]
        assert [s for _, s in mine] == [f"t{i} s0", f"t{i} s1", f"t{i} s2"]
        assert len({conn for conn, _ in mine}) == 1


def test_a_failure_names_its_table_and_leaves_no_other_table_half_done() -> None:
    log: list[tuple[int, str]] = []
    outcome = apply_plans(
        plans(10), Connection(log, {"t3 s1"}, 0), lambda: pytest.fail("one connection"), parallel=1
    )
    assert [name for name, _ in outcome.failed] == ["t3"]
    error = outcome.failed[0][1]
    assert "table t3: statement 2 of 3 (t3 s1)" in str(error)
    assert outcome.applied == ["t0", "t1", "t2"] and outcome.not_started == [f"t{i}" for i in range(4, 10)]
    assert [s for _, s in log if s.startswith("t3 ")] == ["t3 s0"]  # up to the failing statement
    assert not [s for _, s in log if s.startswith(tuple(f"t{i} " for i in range(4, 10)))]


def test_with_workers_every_other_table_is_complete_or_untouched() -> None:
    log: list[tuple[int, str]] = []
    outcome = apply_plans(
        plans(40), Connection(log, {"t5 s2"}, 0), lambda: Connection(log, {"t5 s2"}, 1), parallel=3
    )
    assert [name for name, _ in outcome.failed] == ["t5"]
    assert set(outcome.applied) | set(outcome.not_started) == {f"t{i}" for i in range(40)} - {"t5"}
    for i in range(40):
        done = [s for _, s in log if s.startswith(f"t{i} ")]
        expected = 3 if f"t{i}" in outcome.applied else (2 if i == 5 else 0)
        assert len(done) == expected, (i, done)
