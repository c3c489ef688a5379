"""`aurora-sync sql aurora|snowflake` against the local stack: printed SQL runs, apply is idempotent,
drift becomes ALTERs, hostile names stay one identifier, and bad input is one line naming the fix."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from cli_run import run
from psycopg2 import errors as pg_errors
from psycopg2 import sql

from aurora_sync.source_catalog import read_columns
from aurora_sync.typemap import map_column
from aurora_sync_ops.environment import local_aws_client
from aurora_sync_ops.local.stack import Stack

CLI = str(Path(sys.executable).with_name("aurora-sync"))
SCHEMA = "cli_sql"
TYPES_TABLE = "All Types"
HOSTILE_TABLE = "Robert'); DROP TABLE x;--"
HOSTILE_COLUMN = "semi;colon"


def _typemap_ddl() -> str:
    """The every-type table of test_typemap.py, in a schema of our own."""
    path = Path(__file__).with_name("test_typemap.py")
    spec = importlib.util.spec_from_file_location("typemap_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ddl: str = module.DDL
    return ddl.replace("typemap", SCHEMA)


# --- running the CLI ---------------------------------------------------------------------------
def stack_flags(local_stack: Stack) -> list[str]:
    # --local: a developer's SNOWFLAKE_*/AWS_* variables must not redirect the test.
    settings = local_stack.settings
    return ["--local", "--state-dir", str(settings.root), "--port-base", str(settings.ports.postgres)]


@pytest.fixture(scope="module")
def admin(stack: dict[str, Any]) -> Iterator[Any]:
    conn = psycopg2.connect(stack["postgres"]["admin_dsn"])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(_typemap_ddl())
        cur.execute(
            sql.SQL(
                "CREATE TABLE {} (id integer PRIMARY KEY, {} text, secret text, updated_at timestamptz)"
            ).format(sql.Identifier(SCHEMA, HOSTILE_TABLE), sql.Identifier(HOSTILE_COLUMN))
        )
        cur.execute(
            sql.SQL("INSERT INTO {} VALUES (1, 'a;b', 'hidden', now())").format(
                sql.Identifier(SCHEMA, HOSTILE_TABLE)
            )
        )
        cur.execute(
            sql.SQL("CREATE TABLE {}.drifting (id integer PRIMARY KEY, updated_at timestamptz)").format(
                sql.Identifier(SCHEMA)
            )
        )
    yield conn
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(SCHEMA)))
    conn.close()


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli_sql") / "tables.json"
    path.write_text(
        json.dumps(
            {
                "cli_types": {
                    "schema": SCHEMA,
                    "table": TYPES_TABLE,
                    "primary_key": ["id"],
                    "cursor": "tstz",
                },
                "cli_hostile": {
                    "schema": SCHEMA,
                    "table": HOSTILE_TABLE,
                    "primary_key": ["id"],
                    "columns": ["id", HOSTILE_COLUMN, "updated_at"],
                },
                "cli_drift": {"schema": SCHEMA, "table": "drifting", "primary_key": ["id"]},
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def warehouse(stack: dict[str, Any]) -> Iterator[Any]:
    import snowflake.connector

    with snowflake.connector.connect(**stack["snowflake"], paramstyle="qmark") as conn:
        yield conn


def columns_of(warehouse: Any, schema: str, table: str) -> list[tuple[str, str, Any, Any]]:
    cur = warehouse.cursor()
    cur.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE "
        'FROM "AURORA_SYNC".INFORMATION_SCHEMA.COLUMNS '
        "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        (schema, table),
    )
    return [tuple(row) for row in cur.fetchall()]


def expected_types(snowflake_type: str) -> set[tuple[str, Any, Any]]:
    """INFORMATION_SCHEMA's (DATA_TYPE, precision, scale) for a type the DDL declared."""
    base, _, args = snowflake_type.partition("(")
    if base == "NUMBER":
        precision, scale = (int(part) for part in args.rstrip(")").split(","))
        return {("NUMBER", precision, scale)}
    if base == "VARCHAR":
        return {("TEXT", None, None)}
    if base == "ARRAY":
        # fakesnow stores ARRAY as JSON and reports VARIANT; a real account reports ARRAY.
        return {("ARRAY", None, None), ("VARIANT", None, None)}
    return {(base, None, None)}


@pytest.fixture(scope="module")
def applied(
    local_stack: Stack, admin: Any, config_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The setup, then the every-type table's objects, each applied twice through the CLI."""
    empty = tmp_path_factory.mktemp("cli_sql_empty") / "none.json"
    empty.write_text("{}")
    flags = stack_flags(local_stack)
    runs = []
    for _ in range(2):
        runs.append(
            _cli_json("sql", "snowflake", "--setup", "--apply", "--json", "--config", str(empty), *flags)
        )
    table_runs = [
        _cli_json(
            "sql",
            "snowflake",
            "--tables",
            "cli_types",
            "--apply",
            "--json",
            "--config",
            str(config_file),
            *flags,
        )
        for _ in range(2)
    ]
    return {"setup": runs, "tables": table_runs, "flags": ["--config", str(config_file), *flags]}


def _cli_json(*args: str) -> dict[str, Any]:
    result = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"aurora-sync {' '.join(args[:4])} failed: {result.stderr}"
    document: dict[str, Any] = json.loads(result.stdout)
    return document


# --- Snowflake ----------------------------------------------------------------------------------
def test_setup_then_table_apply_twice_is_idempotent(applied: dict[str, Any]) -> None:
    first, second = applied["setup"]
    assert first["applied"] is True and first["tables"] == []
    assert any(s.startswith('CREATE DATABASE IF NOT EXISTS "AURORA_SYNC"') for s in first["setup"])
    assert first["setup"] == second["setup"]
    new, again = applied["tables"]
    assert [t["state"] for t in new["tables"]] in (["new"], ["current"])
    # The second apply found both tables with every exported column: nothing to alter.
    assert again["tables"][0]["state"] == "current"
    assert again["tables"][0]["added_columns"] == []
    assert not any(s.startswith("ALTER TABLE") for s in again["tables"][0]["statements"])


def test_applied_objects_have_the_type_maps_columns(
    applied: dict[str, Any], admin: Any, warehouse: Any
) -> None:
    with admin.cursor() as cur:
        catalog = read_columns(cur, SCHEMA, TYPES_TABLE)
    mappings = [map_column(c.name, c.pg_type) for c in catalog]
    final = {name: (kind, p, s) for name, kind, p, s in columns_of(warehouse, "FINAL", "CLI_TYPES")}
    staging = {name: (kind, p, s) for name, kind, p, s in columns_of(warehouse, "STAGING", "CLI_TYPES")}
    for mapping in mappings:
        name = mapping.column.upper()
        assert final[name] in expected_types(mapping.final_type), (name, mapping.final_type, final[name])
        assert staging[name] in expected_types(mapping.staging_type), (name, mapping.staging_type)
    assert staging["_AURORA_SYNC_FILE"][0] == "TEXT" and final["_AURORA_SYNC_SYNCED_AT"][0] == "TIMESTAMP_TZ"


def test_pipe_and_tasks_exist(applied: dict[str, Any], warehouse: Any) -> None:
    cur = warehouse.cursor()
    cur.execute('SHOW PIPES LIKE \'CLI_TYPES_PIPE\' IN SCHEMA "AURORA_SYNC"."STAGING"')
    columns = [d[0] for d in cur.description]
    pipes = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
    assert [p["name"] for p in pipes] == ["CLI_TYPES_PIPE"]
    assert '"AURORA_SYNC"."STAGING"."CLI_TYPES"' in pipes[0]["definition"]
    assert pipes[0]["notification_channel"].startswith("arn:aws:sqs:")
    cur.execute('SHOW TASKS LIKE \'CLI_TYPES_%\' IN SCHEMA "AURORA_SYNC"."STAGING"')
    columns = [d[0] for d in cur.description]
    tasks = {row[columns.index("name")]: row[columns.index("state")] for row in cur.fetchall()}
    # The MERGE task runs only via EXECUTE TASK; the retention task runs on its schedule.
    assert tasks == {"CLI_TYPES_MERGE": "suspended", "CLI_TYPES_RETENTION": "started"}


def test_every_printed_statement_runs_on_the_emulator(
    applied: dict[str, Any], local_stack: Stack, tmp_path: Path, warehouse: Any
) -> None:
    # A name of this run only: a table whose objects do not exist yet gets its whole definition
    # (an applied one only what differs).
    name = f"cli_print_{uuid.uuid4().hex[:6]}"
    config = tmp_path / "tables.json"
    config.write_text(
        json.dumps({name: {"schema": SCHEMA, "table": TYPES_TABLE, "primary_key": ["id"], "cursor": "tstz"}})
    )
    printed = _cli_json(
        "sql", "snowflake", "--setup", "--json", "--config", str(config), *stack_flags(local_stack)
    )
    (table,) = printed["tables"]
    assert table["state"] == "new" and len(table["statements"]) == 8
    statements = printed["setup"] + table["statements"]
    assert printed["applied"] is False and len(statements) > 20
    cur = warehouse.cursor()
    for statement in statements:
        cur.execute(statement)


def test_drift_prints_alters_then_apply_adds_the_columns(
    applied: dict[str, Any], admin: Any, warehouse: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--tables", "cli_drift", *applied["flags"]]
    # Start from no Snowflake objects, so a kept stack (AURORA_SYNC_KEEP_STACK) reruns this test too.
    for statement in (
        'DROP PIPE IF EXISTS "AURORA_SYNC"."STAGING"."CLI_DRIFT_PIPE"',
        'DROP STREAM IF EXISTS "AURORA_SYNC"."STAGING"."CLI_DRIFT_STREAM"',
        'DROP TABLE IF EXISTS "AURORA_SYNC"."STAGING"."CLI_DRIFT"',
        'DROP TABLE IF EXISTS "AURORA_SYNC"."FINAL"."CLI_DRIFT"',
    ):
        warehouse.cursor().execute(statement)
    code, _, err = run(capsys, "sql", "snowflake", "--apply", *flags)
    assert code == 0, err
    with admin.cursor() as cur:
        cur.execute(f'ALTER TABLE {SCHEMA}.drifting ADD COLUMN "Promo Code" text, ADD COLUMN qty bigint')

    code, out, err = run(capsys, "sql", "snowflake", *flags)
    assert code == 0, err
    assert "schema drift: adds Promo Code, QTY" in out
    for schema in ("STAGING", "FINAL"):
        assert f'ALTER TABLE "AURORA_SYNC"."{schema}"."CLI_DRIFT" ADD COLUMN "Promo Code" VARCHAR;' in out
        assert f'ALTER TABLE "AURORA_SYNC"."{schema}"."CLI_DRIFT" ADD COLUMN "QTY" NUMBER(19,0);' in out
    assert 'CREATE OR REPLACE PIPE "AURORA_SYNC"."STAGING"."CLI_DRIFT_PIPE"' in out
    assert [c[0] for c in columns_of(warehouse, "FINAL", "CLI_DRIFT")][:2] == ["ID", "UPDATED_AT"]
    assert "QTY" not in [
        c[0] for c in columns_of(warehouse, "FINAL", "CLI_DRIFT")
    ]  # printing changes nothing

    code, out, err = run(capsys, "sql", "snowflake", "--apply", *flags)
    assert code == 0, err
    for schema in ("STAGING", "FINAL"):
        names = {c[0]: c[1:] for c in columns_of(warehouse, schema, "CLI_DRIFT")}
        assert names["Promo Code"][0] == "TEXT" and names["QTY"] == ("NUMBER", 19, 0)
    code, out, _ = run(capsys, "sql", "snowflake", "--json", *flags)
    assert json.loads(out)["tables"][0]["state"] == "current"


def _show_pipe(warehouse: Any, name: str) -> dict[str, Any]:
    cur = warehouse.cursor()
    cur.execute(f'SHOW PIPES LIKE \'{name}\' IN SCHEMA "AURORA_SYNC"."STAGING"')
    columns = [d[0] for d in cur.description]
    (pipe,) = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
    return pipe


def _pending(warehouse: Any, pipe: str) -> int:
    cur = warehouse.cursor()
    cur.execute(f"SELECT SYSTEM$PIPE_STATUS('{pipe}')")
    count: int = json.loads(cur.fetchall()[0][0])["pendingFileCount"]
    return count


@pytest.mark.usefixtures("applied")
def test_a_dropped_column_replaces_the_pipe_only_while_no_file_is_pending(
    admin: Any,
    warehouse: Any,
    *,
    local_stack: Stack,
    tmp_path: Path,
    stack: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A column dropped at the source leaves STAGING and FINAL as they are (its history stays) but
    not the pipe, whose COPY still names it: every later file would fail its column count. The
    pipe is replaced, but only with nothing pending: a replaced pipe neither loads what the old one
    had queued nor remembers what it loaded."""
    with admin.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {SCHEMA}.dropping (id integer PRIMARY KEY, gone text, later text, "
            "updated_at timestamptz)"
        )
    for statement in (
        'DROP PIPE IF EXISTS "AURORA_SYNC"."STAGING"."CLI_DROP_PIPE"',
        'DROP STREAM IF EXISTS "AURORA_SYNC"."STAGING"."CLI_DROP_STREAM"',
        'DROP TABLE IF EXISTS "AURORA_SYNC"."STAGING"."CLI_DROP"',
        'DROP TABLE IF EXISTS "AURORA_SYNC"."FINAL"."CLI_DROP"',
    ):
        warehouse.cursor().execute(statement)
    config = tmp_path / "tables.json"
    config.write_text(
        json.dumps({"cli_drop": {"schema": SCHEMA, "table": "dropping", "primary_key": ["id"]}})
    )
    flags = ["--tables", "cli_drop", "--config", str(config), *stack_flags(local_stack)]
    code, _, err = run(capsys, "sql", "snowflake", "--apply", *flags)
    assert code == 0, err
    pipe = '"AURORA_SYNC"."STAGING"."CLI_DROP_PIPE"'
    assert '"GONE"' in _show_pipe(warehouse, "CLI_DROP_PIPE")["definition"]

    with admin.cursor() as cur:
        cur.execute(f"ALTER TABLE {SCHEMA}.dropping DROP COLUMN gone")
    code, out, err = run(capsys, "sql", "snowflake", "--json", *flags)
    assert code == 0, err
    (plan,) = json.loads(out)["tables"]
    assert (plan["state"], plan["extra_columns"]) == ("pipe-changed", ["GONE"])
    assert any(s.startswith(f"CREATE OR REPLACE PIPE {pipe}") for s in plan["statements"])
    assert not any("REFRESH" in s for s in plan["statements"])

    # A file the pipe has not loaded yet (paused, so it stays queued): replacing now would lose it.
    # Written in the old layout (id, gone, later, updated_at, then the unrepresentable-columns field).
    warehouse.cursor().execute(f"ALTER PIPE {pipe} SET PIPE_EXECUTION_PAUSED = TRUE")
    s3 = local_aws_client("s3", stack["aws"])
    s3.put_object(
        Bucket=stack["aws"]["bucket"], Key="cli_drop/queued.csv", Body=b"1,x,y,2024-01-01 00:00:00+00,\n"
    )
    deadline = time.monotonic() + 30
    while _pending(warehouse, pipe) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _pending(warehouse, pipe) == 1
    code, out, err = run(capsys, "sql", "snowflake", "--apply", "--json", *flags)
    assert code == 1
    assert "still has 1 file(s) to load" in err and "pendingFileCount 0" in err
    (plan,) = json.loads(out)["tables"]
    assert (plan["state"], plan["statements"], plan["pending_files"]) == ("pipe-busy", [], 1)
    assert '"GONE"' in _show_pipe(warehouse, "CLI_DROP_PIPE")["definition"]  # untouched

    # Once the old pipe loaded it (with the old layout it was written in), the pipe is replaced.
    warehouse.cursor().execute(f"ALTER PIPE {pipe} SET PIPE_EXECUTION_PAUSED = FALSE")
    deadline = time.monotonic() + 30
    while _pending(warehouse, pipe) and time.monotonic() < deadline:
        time.sleep(0.2)
    code, _, err = run(capsys, "sql", "snowflake", "--apply", *flags)
    assert code == 0, err
    definition = _show_pipe(warehouse, "CLI_DROP_PIPE")["definition"]
    assert '"GONE"' not in definition and '"LATER"' in definition
    code, out, err = run(capsys, "sql", "snowflake", "--json", *flags)
    assert code == 0, err
    assert json.loads(out)["tables"][0]["state"] == "current"
    cur = warehouse.cursor()
    cur.execute('SELECT ID, GONE FROM "AURORA_SYNC"."STAGING"."CLI_DROP"')
    assert cur.fetchall() == [(1, "x")]  # the queued file was loaded by the old pipe, once


@pytest.mark.usefixtures("applied")
def test_a_changed_primary_key_is_refused_until_rekey_replaces_final(
    admin: Any,
    warehouse: Any,
    local_stack: Stack,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with admin.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {SCHEMA}.rekeyed (tenant integer NOT NULL, id integer NOT NULL, note text, "
            "updated_at timestamptz, PRIMARY KEY (tenant, id))"
        )
    final = '"AURORA_SYNC"."FINAL"."CLI_REKEY"'
    for statement in (
        'DROP PIPE IF EXISTS "AURORA_SYNC"."STAGING"."CLI_REKEY_PIPE"',
        'DROP STREAM IF EXISTS "AURORA_SYNC"."STAGING"."CLI_REKEY_STREAM"',
        'DROP TABLE IF EXISTS "AURORA_SYNC"."STAGING"."CLI_REKEY"',
        f"DROP TABLE IF EXISTS {final}",
    ):
        warehouse.cursor().execute(statement)
    configs = {}
    for version, key in (("old", ["id"]), ("new", ["tenant", "id"])):
        configs[version] = tmp_path / f"{version}.json"
        entry = {"schema": SCHEMA, "table": "rekeyed", "primary_key": key}
        configs[version].write_text(json.dumps({"cli_rekey": entry}))
    flags = ["--tables", "cli_rekey", *stack_flags(local_stack)]

    def sql_snowflake(version: str, *extra: str) -> tuple[int, str, str]:
        return run(capsys, "sql", "snowflake", "--config", str(configs[version]), *flags, *extra)

    def final_state() -> tuple[list[str], int, str]:
        cur = warehouse.cursor()
        cur.execute(f"SHOW PRIMARY KEYS IN TABLE {final}")
        key = [row[4] for row in sorted(cur.fetchall(), key=lambda row: row[5])]
        cur.execute(f"SELECT COUNT(*) FROM {final}")
        count = cur.fetchone()[0]
        cur.execute('SHOW TASKS LIKE \'CLI_REKEY_MERGE\' IN SCHEMA "AURORA_SYNC"."STAGING"')
        definition = cur.fetchall()[0][[d[0] for d in cur.description].index("definition")]
        return key, count, definition

    code, _, err = sql_snowflake("old", "--apply")
    assert code == 0, err
    warehouse.cursor().execute(
        f'INSERT INTO {final} ("TENANT", "ID", "NOTE") VALUES (1, 1, \'merged on the old key\')'
    )
    before = final_state()
    assert before[:2] == (["ID"], 1)

    code, out, err = sql_snowflake("new", "--apply")
    assert code == 1
    assert [line for line in out.splitlines() if line] == [
        '-- ===== table cli_rekey -> CLI_REKEY: primary key changed: FINAL is keyed on ("ID"), the config '
        'on ("TENANT", "ID"); nothing generated (re-key with --rekey)',
        "-- applied 0 statement(s) in order",
    ]
    assert err == (
        'aurora-sync: table cli_rekey: FINAL.CLI_REKEY is keyed on ("ID"), the config on ("TENANT", "ID"): '
        "nothing was applied for it (its rows were merged on FINAL's key, and the MERGE task would start "
        "merging on the new one). Re-key it (FINAL is emptied and refilled): aurora-sync sql snowflake "
        f"--config {configs['new']} --tables cli_rekey --rekey --apply, then aurora-sync sync --tables "
        "cli_rekey --full; see docs/operations.md, 'Changing a table's primary key'\n"
    )
    assert final_state() == before  # not even the MERGE task was re-created
    code, out, _ = sql_snowflake("new", "--json")
    assert code == 1
    [plan] = json.loads(out)["tables"]
    assert (plan["state"], plan["final_primary_key"], plan["primary_key"], plan["statements"]) == (
        "key-changed",
        ["ID"],
        ["TENANT", "ID"],
        [],
    )

    code, out, err = run(capsys, "sql", "snowflake", "--rekey", "--config", str(configs["new"]))
    assert (code, out) == (1, "")
    assert err.startswith("aurora-sync: --rekey needs --tables: it empties FINAL of each named table")

    code, out, _ = sql_snowflake("new", "--rekey", "--json")
    assert code == 0
    [plan] = json.loads(out)["tables"]
    assert plan["state"] == "rekey"
    [create] = [s for s in plan["statements"] if final in s.split("\n")[0]]
    assert create.startswith(f"CREATE OR REPLACE TABLE {final} (")
    assert "\n) COPY GRANTS COMMENT = " in create  # analysts' grants on FINAL survive
    merge = next(s for s in plan["statements"] if s.startswith("CREATE OR REPLACE TASK") and "_MERGE" in s)
    assert final_state() == before  # printing changes nothing

    code, out, err = sql_snowflake("new", "--rekey", "--apply")
    assert code == 0, err
    assert 're-key: FINAL is keyed on ("ID"), the config on ("TENANT", "ID"); FINAL is replaced' in out
    assert err.startswith(
        "aurora-sync: re-keyed cli_rekey: FINAL is empty, keyed on the config's primary key"
    )
    key, count, definition = final_state()
    assert (key, count) == (["TENANT", "ID"], 0)
    assert definition == merge.split("\nAS ", 1)[1] != before[2]

    # Re-keyed: the ordinary, idempotent definitions again; a repeated --rekey replaces nothing.
    warehouse.cursor().execute(f'INSERT INTO {final} ("TENANT", "ID", "NOTE") VALUES (1, 1, \'new\')')
    code, out, _ = sql_snowflake("new", "--rekey", "--apply", "--json")
    assert code == 0
    assert json.loads(out)["tables"][0]["state"] == "current"
    assert final_state()[:2] == (["TENANT", "ID"], 1)


# --- many tables --------------------------------------------------------------------------------
# Enough tables that a read per table would show (the reads must stay five), few enough that the
# emulator's DDL (8 statements a table) keeps the test near a minute; benchmark 13 measures 500.
MANY = 60


class Statements:
    """Every statement the Snowflake connector sends in this process, and a fault to inject."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.fail: str | None = None  # a statement starting with this fails, as Snowflake would
        self.lock = threading.Lock()

    def take(self) -> list[str]:
        with self.lock:
            sent, self.sent = self.sent, []
        return sent


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Statements:
    from snowflake.connector.cursor import SnowflakeCursor
    from snowflake.connector.errors import ProgrammingError

    seen = Statements()
    execute = SnowflakeCursor.execute

    def counting(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        if seen.fail is not None and command.startswith(seen.fail):
            raise ProgrammingError(msg="SQL access control error: insufficient privileges", errno=3001)
        with seen.lock:
            seen.sent.append(command)
        return execute(self, command, *args, **kwargs)

    monkeypatch.setattr(SnowflakeCursor, "execute", counting)
    return seen


def _tasks(warehouse: Any) -> dict[str, dict[str, Any]]:
    cur = warehouse.cursor()
    cur.execute('SHOW TASKS IN SCHEMA "AURORA_SYNC"."STAGING"')
    columns = [d[0] for d in cur.description]
    return {row[columns.index("name")]: dict(zip(columns, row, strict=True)) for row in cur.fetchall()}


# 60 new tables are 480 DDL statements on the emulator.
@pytest.mark.timeout(600)
def test_many_tables_cost_their_ddl_plus_constant_reads_and_a_failure_leaves_none_half_done(
    admin: Any,
    *,
    warehouse: Any,
    statements: Statements,
    local_stack: Stack,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """60 new tables cost exactly their DDL plus the reads of what exists, which do not grow with
    the table count; applied again, nothing is applied. A failure in one table's DDL names that
    table; no other table is left half-done, and running the command again completes it."""
    # Names of this run only, so a kept stack's earlier objects cannot make tables "current".
    names = [f"many{uuid.uuid4().hex[:6]}_{i:03d}" for i in range(MANY)]
    with admin.cursor() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS {SCHEMA}_many CASCADE")
        cur.execute(f"CREATE SCHEMA {SCHEMA}_many")
        for name in names:
            cur.execute(f"CREATE TABLE {SCHEMA}_many.{name} (id bigint PRIMARY KEY, updated_at timestamptz)")
    config = tmp_path / "tables.json"
    config.write_text(
        json.dumps(
            {name: {"schema": f"{SCHEMA}_many", "table": name, "primary_key": ["id"]} for name in names}
        )
    )
    flags = ["--config", str(config), *stack_flags(local_stack)]

    def apply(*extra: str) -> tuple[int, dict[str, Any], str, list[str]]:
        statements.take()
        code, out, err = run(capsys, "sql", "snowflake", "--apply", "--json", *flags, *extra)
        return code, json.loads(out) if out else {}, err, statements.take()

    code, document, err, sent = apply("--parallel", "4")
    assert code == 0, err
    assert {t["state"] for t in document["tables"]} == {"new"}
    ddl = [s for t in document["tables"] for s in t["statements"]]
    assert all(len(t["statements"]) == 8 for t in document["tables"])  # tables, stream, pipe, tasks
    reads = [s for s in sent if s not in ddl]
    assert sorted(sent) == sorted(reads + ddl) and len(ddl) == 8 * MANY
    assert len(reads) == 5, reads  # columns, primary keys, pipes, streams, tasks: for all tables at once

    code, document, err, again = apply()
    assert code == 0, err
    assert {t["state"] for t in document["tables"]} == {"current"}
    assert [t["statements"] for t in document["tables"]] == [[]] * MANY
    assert again == reads  # nothing applied; the same five reads as for one table
    code, _, err, one = apply("--tables", names[0])
    assert (code, len(one)) == (0, 5), err

    # A new task size re-creates both tasks of each table (40 of them, to keep the test short);
    # one table's second statement fails.
    some, failing = ["--tables", ",".join(names[:40])], names[17]
    before = _tasks(warehouse)
    statements.fail = f'CREATE OR REPLACE TASK "AURORA_SYNC"."STAGING"."{failing.upper()}_RETENTION"'
    code, document, err, sent = apply("--task-size", "SMALL", "--parallel", "4", *some)
    statements.fail = None
    assert (code, document) == (1, {})
    assert f"table {failing} failed (its statements before the failing one took effect)" in err
    assert f"table {failing}: statement 2 of 3 (CREATE OR REPLACE TASK" in err
    assert "run the same command again" in err and "insufficient privileges" in err
    after = _tasks(warehouse)
    untouched = 0
    for name in names[:17] + names[18:40]:
        merge, retention = f"{name.upper()}_MERGE", f"{name.upper()}_RETENTION"
        changed = {after[task]["comment"] != before[task]["comment"] for task in (merge, retention)}
        sent_for = [s for s in sent if f'"{name.upper()}_' in s and "TASK" in s.split("\n")[0]]
        # Both tasks re-created with the new size and the retention task resumed, or nothing.
        assert (changed, len(sent_for)) in (({True}, 3), ({False}, 0)), (name, changed, sent_for)
        assert (after[merge]["state"], after[retention]["state"]) == ("suspended", "started"), name
        untouched += not sent_for

    code, document, err, sent = apply("--task-size", "SMALL", *some)
    assert code == 0, err
    redone = [t["name"] for t in document["tables"] if t["statements"]]
    assert failing in redone and len(redone) == untouched + 1  # the applied tables got none
    assert len(sent) == 5 + sum(len(t["statements"]) for t in document["tables"])
    code, document, err, sent = apply("--task-size", "SMALL", *some)
    assert (code, len(sent)) == (0, 5), err


# --- Aurora -------------------------------------------------------------------------------------
def test_aurora_grants_quote_hostile_names_and_let_the_sync_role_read(
    admin: Any,
    stack: dict[str, Any],
    local_stack: Stack,
    config_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sync = psycopg2.connect(stack["postgres"]["dsn"])
    sync.autocommit = True
    select = sql.SQL("SELECT id, {} FROM {}").format(
        sql.Identifier(HOSTILE_COLUMN), sql.Identifier(SCHEMA, HOSTILE_TABLE)
    )
    try:
        with sync.cursor() as cur, pytest.raises(pg_errors.InsufficientPrivilege):
            cur.execute(select)

        code, out, err = run(
            capsys,
            "sql",
            "aurora",
            "--tables",
            "cli_hostile",
            "--config",
            str(config_file),
            *stack_flags(local_stack),
        )
        assert code == 0, err
        assert 'GRANT USAGE ON SCHEMA "cli_sql" TO "aurora_sync";' in out
        assert (
            'GRANT SELECT ("id", "semi;colon", "updated_at") ON TABLE "cli_sql"."Robert\'); DROP TABLE x;--" '
            'TO "aurora_sync";'
        ) in out
        with admin.cursor() as cur:
            cur.execute(out)

        with sync.cursor() as cur:
            cur.execute(select)
            assert cur.fetchall() == [(1, "a;b")]
            # Column grants: what the config does not list stays unreadable.
            with pytest.raises(pg_errors.InsufficientPrivilege):
                cur.execute(sql.SQL("SELECT secret FROM {}").format(sql.Identifier(SCHEMA, HOSTILE_TABLE)))
    finally:
        sync.close()


def test_aurora_setup_prints_the_fixed_files_first(
    admin: Any, local_stack: Stack, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys,
        "sql",
        "aurora",
        "--setup",
        "--tables",
        "cli_types",
        "--config",
        str(config_file),
        *stack_flags(local_stack),
    )
    assert code == 0, err
    files = [line for line in out.splitlines() if line.startswith("-- ===== sql/aurora/")]
    assert files == [
        "-- ===== sql/aurora/01_extension.sql",
        "-- ===== sql/aurora/02_sync_role.sql",
        "-- ===== sql/aurora/03_iam_role_association.sql",
    ]
    assert out.index("CREATE EXTENSION IF NOT EXISTS aws_s3 CASCADE;") < out.index(
        'GRANT SELECT ON TABLE "cli_sql"."All Types" TO "aurora_sync";'
    )


# --- bad input ----------------------------------------------------------------------------------
def test_unknown_table_lists_the_known_ones(
    local_stack: Stack, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for database in ("aurora", "snowflake"):
        code, out, err = run(
            capsys,
            "sql",
            database,
            "--tables",
            "cli_types,nope",
            "--config",
            str(config_file),
            *stack_flags(local_stack),
        )
        assert (code, out) == (1, "")
        assert err == (
            "aurora-sync: unknown table(s) nope in --tables; "
            f"{config_file} has: cli_drift, cli_hostile, cli_types. "
            "Fix: use names from that list, or add the table's config first\n"
        )


def test_config_entry_with_an_unknown_key_names_entry_and_field(local_stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text("orders:\n  table: orders\n  primary_key: [id]\n  colums: [id, updated_at]\n")
    result = subprocess.run(
        [CLI, "sql", "aurora", "--config", str(path), *stack_flags(local_stack)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(
        f"aurora-sync: {path}[orders]: field 'colums': unknown key; did you mean 'columns'?"
    )


def test_missing_source_table_is_named(
    admin: Any, local_stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tables.json"
    path.write_text(json.dumps({"gone": {"schema": SCHEMA, "table": "gone", "primary_key": ["id"]}}))
    code, out, err = run(capsys, "sql", "snowflake", "--config", str(path), *stack_flags(local_stack))
    assert (code, out) == (1, "")
    assert err.startswith("aurora-sync: source table cli_sql.gone does not exist")
    assert "Fix: check `schema`/`table` in the table config" in err
    assert "Traceback" not in err
