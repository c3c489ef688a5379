"""The local emulator's Snowflake Scripting subset, without a server: the setup's procedure body
run with a recording ``run_sql``, and what the subset refuses (docs.snowflake.com, Snowflake
Scripting: blocks, variables, FOR, exception handlers; OBJECT_CONSTRUCT omits NULL values).
The same procedure through the emulator: tests/local_stack/test_snowflake_emulator.py."""

from __future__ import annotations

import pytest
from snowflake.connector.errors import ProgrammingError

from aurora_sync_ops.local.snowflake import scripting
from aurora_sync_ops.snowflake_sql import SETUP_DIR, split_statements


def setup_procedure() -> scripting.Block:
    (create, _grant) = split_statements((SETUP_DIR / "06_execute_tasks.sql").read_text())
    return scripting.parse_body(create[create.index("$$") + 2 : create.rindex("$$")])


def test_the_setup_procedure_runs_each_task_binding_its_name_and_reports_each_error() -> None:
    ran: list[str] = []

    def run_sql(statement: str) -> None:
        ran.append(statement)
        if "GONE" in statement:
            raise ProgrammingError(
                msg="Task 'GONE' does not exist or not authorized.", errno=2003, sqlstate="02000"
            )

    tasks = ['"DB"."S"."A_MERGE"', "GONE", "it's"]
    outcomes = scripting.run(setup_procedure(), {"TASKS": tasks}, run_sql)
    assert outcomes == [
        {"task": tasks[0]},
        {
            "task": "GONE",
            "code": 2003,
            "message": "Task 'GONE' does not exist or not authorized.",
            "state": "02000",
        },
        {"task": "it's"},
    ]
    # Each name is bound as a string literal inside IDENTIFIER(), never spliced as SQL text.
    assert ran == [
        'EXECUTE TASK IDENTIFIER(\'"DB"."S"."A_MERGE"\')',
        "EXECUTE TASK IDENTIFIER('GONE')",
        "EXECUTE TASK IDENTIFIER('it\\'s')",
    ]
    assert scripting.run(setup_procedure(), {"TASKS": []}, run_sql) == []


def test_an_uncaught_error_ends_the_call_and_an_undeclared_variable_is_an_error() -> None:
    def failing(statement: str) -> None:
        raise ProgrammingError(msg="boom", errno=100, sqlstate="XX000")

    with pytest.raises(ProgrammingError, match="boom"):
        scripting.run(scripting.parse_body("BEGIN EXECUTE TASK T; RETURN 1; END;"), {}, failing)
    with pytest.raises(ProgrammingError, match="invalid identifier 'X'"):
        scripting.run(scripting.parse_body("BEGIN x := 1; END;"), {}, failing)


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        ("BEGIN IF (TRUE) THEN RETURN 1; END IF; END;", "the statement IF"),
        ("BEGIN LET x := 1; END;", "the statement LET"),
        ("DECLARE c CURSOR FOR SELECT 1; BEGIN RETURN 1; END;", "CURSOR"),
        ("BEGIN RETURN UPPER('a'); END;", "UPPER"),
        ("BEGIN EXECUTE IMMEDIATE 'SELECT 1'; END;", "EXECUTE IMMEDIATE"),
        ("BEGIN FOR i IN REVERSE 1 TO 2 DO RETURN i; END FOR; END;", "REVERSE"),
        ("BEGIN RETURN 1; EXCEPTION WHEN STATEMENT_ERROR THEN RETURN 2; END;", "WHEN STATEMENT_ERROR"),
    ],
)
def test_what_the_subset_does_not_interpret_is_refused_when_parsed(body: str, refused: str) -> None:
    with pytest.raises(ProgrammingError, match=refused):
        scripting.parse_body(body)
