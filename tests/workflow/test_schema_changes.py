"""Schema changes at the source, end to end on the local stack with row-by-row parity (issue 10,
case 2): the files of a run always match the pipe that loads them, and Snowflake follows the
source's columns.

Before the layout checks and the planner's schema step, with ``columns: null`` the export
followed the live catalog while the pipe read fixed positions (``SELECT $1..$n``): after
``ADD COLUMN active boolean NOT NULL DEFAULT true`` every merged row got
``_AURORA_SYNC_UNREPRESENTABLE = 'true'`` and the run SUCCEEDED; a text column failed the MERGE
with ``Malformed JSON``; a dropped or renamed column shifted every later field by one; a widened
column failed its load; an unsafe type change went through unnoticed.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from world import World, open_world

from aurora_sync.naming import quote
from aurora_sync.typemap import UNREPRESENTABLE_COLUMN
from aurora_sync_ops.cli import main
from aurora_sync_ops.local.stack import Stack

UPDATED = "updated_at timestamptz NOT NULL DEFAULT now()"
ROWS = "FROM generate_series(1, 30) i"


def table(ddl: str, **config: Any) -> tuple[str, dict[str, Any]]:
    return ddl, {"primary_key": ["id"], "lookback_seconds": 0, **config}


@pytest.fixture(scope="module")
def world(stack: dict[str, Any]) -> Iterator[World]:
    """Config names are unique in the suite: they are the S3 prefix of every world's bucket."""
    tables = {
        "schema_flag": table(
            f"CREATE TABLE {{schema}}.flag (id bigint PRIMARY KEY, v text, {UPDATED})", table="flag"
        ),
        "schema_note": table(
            f"CREATE TABLE {{schema}}.note (id bigint PRIMARY KEY, v text, {UPDATED})", table="note"
        ),
        "schema_dropped": table(
            f"CREATE TABLE {{schema}}.dropped (id bigint PRIMARY KEY, a text, b text, {UPDATED})",
            table="dropped",
        ),
        "schema_renamed": table(
            f"CREATE TABLE {{schema}}.renamed (id bigint PRIMARY KEY, a text, {UPDATED})", table="renamed"
        ),
        "schema_readded": table(
            f"CREATE TABLE {{schema}}.readded (id bigint PRIMARY KEY, x integer, y text, {UPDATED})",
            table="readded",
        ),
        "schema_widened": table(
            f"CREATE TABLE {{schema}}.widened (id bigint PRIMARY KEY, n integer, s varchar(10), "
            f"amount numeric(8,2), {UPDATED})",
            table="widened",
        ),
        "schema_unsafe": table(
            f"CREATE TABLE {{schema}}.unsafe (id bigint PRIMARY KEY, code text, {UPDATED})", table="unsafe"
        ),
        "schema_bystander": table(
            f"CREATE TABLE {{schema}}.bystander (id bigint PRIMARY KEY, v text, {UPDATED})", table="bystander"
        ),
        "schema_by_cli": table(
            f"CREATE TABLE {{schema}}.by_cli (id bigint PRIMARY KEY, v text, {UPDATED})", table="by_cli"
        ),
    }
    with open_world(stack, tables, prefix="schema") as world:
        for name, column in (
            ("flag", "v"),
            ("note", "v"),
            ("renamed", "a"),
            ("bystander", "v"),
            ("by_cli", "v"),
        ):
            world.execute(f"INSERT INTO {{schema}}.{name} (id, {column}) SELECT i, 'v' || i {ROWS}")
        world.execute("INSERT INTO {schema}.dropped (id, a, b) SELECT i, 'a' || i, 'b' || i " + ROWS)
        world.execute("INSERT INTO {schema}.readded (id, x, y) SELECT i, i * 10, 'y' || i " + ROWS)
        world.execute(
            "INSERT INTO {schema}.widened (id, n, s, amount) SELECT i, i, 's' || i, i + 0.25 " + ROWS
        )
        world.execute("INSERT INTO {schema}.unsafe (id, code) SELECT i, (1000 + i)::text " + ROWS)
        world.apply()
        description, _ = world.run()
        assert description["status"] == "SUCCEEDED", description.get("cause") or description.get("error")
        world.assert_parity()
        yield world


# --- helpers ---------------------------------------------------------------------------------------
def objects(world: World, name: str) -> Any:
    return world.setup.objects(world.configs[name]["target"])


def run(world: World, tables: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return world.run({"tables": tables})


def succeeded(world: World, tables: list[str]) -> dict[str, dict[str, Any]]:
    """Each table's verdict, with ``planned`` = the window the planner chose ("full" when every
    row is exported, "final" for an incremental window from the export ledger)."""
    description, events = run(world, tables)
    assert description["status"] == "SUCCEEDED", description.get("cause") or description.get("error")
    reports = {t["table"]: t for t in world.verify_output(events)["tables"]}
    for name, report in reports.items():
        report["planned"] = item(world, events, name)["window"].get("source", "final")
    return reports


def query(world: World, statement: str) -> list[tuple[Any, ...]]:
    cursor = world.warehouse.cursor()
    cursor.execute(statement)
    return list(cursor.fetchall())


def final_columns(world: World, name: str) -> dict[str, tuple[Any, ...]]:
    """FINAL's columns: {name: (DATA_TYPE, length, precision, scale)}."""
    rows = query(
        world,
        "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE "
        f"FROM {quote(world.setup.database)}.INFORMATION_SCHEMA.COLUMNS "
        f"WHERE \"TABLE_SCHEMA\" = 'FINAL' AND \"TABLE_NAME\" = '{world.configs[name]['target']}'",
    )
    return {str(row[0]): tuple(row[1:]) for row in rows}


def pipe_layout(world: World, name: str) -> list[str]:
    from aurora_sync.snowflake_objects import parse_pipe

    target = world.configs[name]["target"]
    cursor = world.warehouse.cursor()
    cursor.execute(f"SHOW PIPES LIKE '{target}_PIPE' IN SCHEMA {quote(world.setup.database)}.\"STAGING\"")
    names = [d[0] for d in cursor.description]
    (row,) = cursor.fetchall()
    parsed = parse_pipe(row[names.index("definition")])
    assert parsed is not None
    return parsed.layout


def unrepresentable(world: World, name: str) -> list[Any]:
    """The distinct values of FINAL's unrepresentable-values column ([None] when all are NULL)."""
    column, final = quote(UNREPRESENTABLE_COLUMN), objects(world, name).final_table
    return [row[0] for row in query(world, f"SELECT DISTINCT {column}::VARCHAR FROM {final}")]


def item(world: World, events: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(i for i in world.planned_items(events) if i["table"] == name)
    return found


# --- added columns ---------------------------------------------------------------------------------
def test_an_added_boolean_not_null_default_column_reaches_every_final_row(world: World) -> None:
    world.execute("ALTER TABLE {schema}.flag ADD COLUMN active boolean NOT NULL DEFAULT true")
    world.execute("UPDATE {schema}.flag SET active = false, updated_at = now() WHERE id IN (3, 4)")

    report = succeeded(world, ["schema_flag"])["schema_flag"]

    # Every row again: FINAL's existing rows need their ACTIVE value.
    assert report["planned"] == "full" and report["rows_exported"] == 30, report
    assert unrepresentable(world, "schema_flag") == [None]
    assert pipe_layout(world, "schema_flag") == ["ID", "V", "UPDATED_AT", "ACTIVE"]
    assert final_columns(world, "schema_flag")["ACTIVE"][0] == "BOOLEAN"
    world.assert_parity("schema_flag")

    # The layout is recorded: the next run is incremental again.
    world.execute("UPDATE {schema}.flag SET v = 'later', updated_at = now() WHERE id = 5")
    assert succeeded(world, ["schema_flag"])["schema_flag"]["planned"] == "final"
    world.assert_parity("schema_flag")


def test_an_added_text_column_merges_instead_of_malformed_json(world: World) -> None:
    world.execute("ALTER TABLE {schema}.note ADD COLUMN remark text")
    world.execute("UPDATE {schema}.note SET remark = 'remark ' || id, updated_at = now() WHERE id <= 10")

    report = succeeded(world, ["schema_note"])["schema_note"]

    assert report["planned"] == "full" and report["rows_exported"] == 30, report
    assert unrepresentable(world, "schema_note") == [None]
    world.assert_parity("schema_note")


# --- dropped, renamed, re-added --------------------------------------------------------------------
def test_a_dropped_column_stops_being_exported_and_keeps_its_values_in_final(world: World) -> None:
    world.execute("ALTER TABLE {schema}.dropped DROP COLUMN b")
    world.execute("UPDATE {schema}.dropped SET a = 'changed', updated_at = now() WHERE id IN (1, 2)")

    report = succeeded(world, ["schema_dropped"])["schema_dropped"]

    # Nothing to fill in: the incremental window.
    assert report["planned"] == "final", report
    assert pipe_layout(world, "schema_dropped") == ["ID", "A", "UPDATED_AT"]
    final = objects(world, "schema_dropped").final_table
    # Kept, and no longer written: rows changed after the drop keep the value they had.
    assert query(world, f'SELECT "ID", "A", "B" FROM {final} WHERE "ID" IN (1, 2, 3) ORDER BY "ID"') == [
        (1, "changed", "b1"),
        (2, "changed", "b2"),
        (3, "a3", "b3"),
    ]
    world.assert_parity("schema_dropped")


def test_a_renamed_column_is_added_under_its_new_name_and_filled_for_every_row(world: World) -> None:
    world.execute("ALTER TABLE {schema}.renamed RENAME COLUMN a TO label")
    world.execute("UPDATE {schema}.renamed SET label = 'relabelled', updated_at = now() WHERE id = 7")

    report = succeeded(world, ["schema_renamed"])["schema_renamed"]

    assert report["planned"] == "full" and report["rows_exported"] == 30, report
    final = objects(world, "schema_renamed").final_table
    assert query(world, f'SELECT "A", "LABEL" FROM {final} WHERE "ID" IN (6, 7) ORDER BY "ID"') == [
        ("v6", "v6"),
        ("v7", "relabelled"),
    ]
    world.assert_parity("schema_renamed")


def test_a_column_dropped_and_added_again_moves_to_the_end_and_is_exported_anew(world: World) -> None:
    """PostgreSQL cannot add a column in the middle, but dropping and adding one reorders the
    catalog: x was second and is now last, with new values (NULL but for two rows)."""
    world.execute("ALTER TABLE {schema}.readded DROP COLUMN x")
    world.execute("ALTER TABLE {schema}.readded ADD COLUMN x integer")
    world.execute("UPDATE {schema}.readded SET x = -id, updated_at = now() WHERE id IN (1, 2)")

    report = succeeded(world, ["schema_readded"])["schema_readded"]

    assert pipe_layout(world, "schema_readded") == ["ID", "Y", "UPDATED_AT", "X"]
    # Another column under the old name: FINAL's X values belonged to the dropped one.
    assert report["planned"] == "full" and report["rows_exported"] == 30, report
    world.assert_parity("schema_readded")


# --- type changes ----------------------------------------------------------------------------------
def test_widened_types_are_widened_in_snowflake_without_a_re_export(world: World) -> None:
    world.execute("ALTER TABLE {schema}.widened ALTER COLUMN n TYPE bigint")
    world.execute("ALTER TABLE {schema}.widened ALTER COLUMN s TYPE varchar(50)")
    world.execute("ALTER TABLE {schema}.widened ALTER COLUMN amount TYPE numeric(14,2)")
    world.execute(
        "UPDATE {schema}.widened SET n = 1099511627776, s = repeat('w', 40), amount = 123456789012.34, "
        "updated_at = now() WHERE id = 1"
    )

    report = succeeded(world, ["schema_widened"])["schema_widened"]

    assert report["planned"] == "final", report
    columns = final_columns(world, "schema_widened")
    assert columns["N"][2:] == (19, 0)
    assert columns["S"][1] == 50
    assert columns["AMOUNT"][2:] == (14, 2)
    world.assert_parity("schema_widened")


def test_an_unsafe_type_change_fails_only_its_table_naming_the_change_and_the_fix(world: World) -> None:
    world.execute("ALTER TABLE {schema}.unsafe ALTER COLUMN code TYPE integer USING code::integer")
    world.execute("UPDATE {schema}.unsafe SET code = code + 1, updated_at = now() WHERE id = 1")
    world.execute("UPDATE {schema}.bystander SET v = 'still merged', updated_at = now() WHERE id = 1")

    description, events = run(world, ["schema_unsafe", "schema_bystander"])

    assert description["status"] == "FAILED", description
    (failed,) = world.plan_failed(events)
    assert failed["table"] == "schema_unsafe" and failed["error"] == "UnsafeSchemaChange", failed
    cause = failed["cause"]
    assert "\"CODE\" is VARCHAR, but source column 'code' is now integer (NUMBER(10,0))" in cause, cause
    assert "RENAME COLUMN" in cause and "re-export the table in full" in cause, cause
    assert '{"tables": ["schema_unsafe"]}' in description["cause"]
    reports = {t["table"]: t for t in world.verify_output(events)["tables"]}
    assert reports["schema_bystander"]["outcome"] == "MERGED", reports
    world.assert_parity("schema_bystander")
    # Nothing was changed or exported for the table.
    assert "schema_unsafe" not in reports
    assert final_columns(world, "schema_unsafe")["CODE"][0] == "TEXT"

    # The fix the message names, then the next run adds CODE anew and exports every row.
    fix = cause.split("re-export the table in full: ", 1)[1].split("; or change the source column back")[0]
    cursor = world.warehouse.cursor()
    for statement in fix.split("; "):
        cursor.execute(statement)
    report = succeeded(world, ["schema_unsafe"])["schema_unsafe"]
    assert report["planned"] == "full" and report["rows_exported"] == 30, report
    columns = final_columns(world, "schema_unsafe")
    assert columns["CODE"][0] == "NUMBER" and any(c.startswith("CODE_BEFORE_") for c in columns), columns
    world.assert_parity("schema_unsafe")


# --- the operator's command -----------------------------------------------------------------------
def test_the_documented_sql_snowflake_apply_after_a_change_is_followed_by_a_re_export(
    world: World, local_stack: Stack
) -> None:
    """docs/operations.md's step: `aurora-sync sql snowflake --tables X --apply` after adding a
    column. The existing rows get their values without a `--full` resync."""
    world.execute("ALTER TABLE {schema}.by_cli ADD COLUMN score numeric(6,1) DEFAULT 2.5")
    settings = local_stack.settings
    flags = ["--local", "--state-dir", str(settings.root), "--port-base", str(settings.ports.postgres)]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        code = main(
            [
                "sql",
                "snowflake",
                "--tables",
                "schema_by_cli",
                "--apply",
                "--json",
                "--config-path",
                world.config_path.rstrip("/"),
                *flags,
            ]
        )
    assert code == 0
    assert json.loads(printed.getvalue())["tables"][0]["added_columns"] == ["SCORE"]

    report = succeeded(world, ["schema_by_cli"])["schema_by_cli"]

    assert report["planned"] == "full" and report["rows_exported"] == 30, report
    world.assert_parity("schema_by_cli")
    # Once: the next run is incremental again.
    world.execute("UPDATE {schema}.by_cli SET score = 9.5, updated_at = now() WHERE id = 3")
    assert succeeded(world, ["schema_by_cli"])["schema_by_cli"]["planned"] == "final"
    world.assert_parity("schema_by_cli")
