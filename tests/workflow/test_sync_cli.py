"""``aurora-sync sync`` and ``aurora-sync rerun`` against the full local stack.

Each world is a source schema in the stack's PostgreSQL, table configs under a unique SSM path,
the Snowflake objects applied by ``aurora-sync sql snowflake --apply``, and a deployment of
template.yaml under a unique stack name (the CLI's ``--config-path``/``--local-stack-name``).
The Step Functions clock runs at 1/20 so Wait and Retry intervals stay short.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests
import snowflake.connector
from psycopg2 import sql

from aurora_sync.config import TableConfig, put_table_config
from aurora_sync_ops.cli import main
from aurora_sync_ops.environment import local_aws_client
from aurora_sync_ops.local.stack import Stack
from aurora_sync_ops.local.wiring import connect_bucket_to_snowpipe

CLOCK_SCALE = 0.05
# Rows at fixed instants so --since can name a point between them.
INSERT = (
    "INSERT INTO {t} SELECT i, 'note ' || i, timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second' "
    "FROM generate_series(%s, %s) i"
)
DDL = "CREATE TABLE {t} (id bigint PRIMARY KEY, note text, updated_at timestamptz NOT NULL)"


@dataclass
class World:
    schema: str
    config_path: str
    stack_name: str
    tables: list[str]
    stack_flags: list[str]  # which local stack (what rerun takes)

    @property
    def flags(self) -> list[str]:
        """What sync takes: the stack, this world's config path and its own deployment."""
        return [*self.stack_flags, "--config-path", self.config_path, "--local-stack-name", self.stack_name]


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.out)
        return document


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Ran:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return Ran(code, out, err)


def execution_arn(ran: Ran) -> str:
    line = next(line for line in ran.out.splitlines() if line.startswith("execution: "))
    return line.split()[1]


def table_row(ran: Ran, table: str) -> list[str]:
    """The result table's row of ``table``, split into its columns (the ERROR column may be empty)."""
    return next(line.split() for line in ran.out.splitlines() if line.split()[:1] == [table])


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def fast_clock(stack: dict[str, Any]) -> Iterator[None]:
    url = f"{stack['aws']['endpoint_url']}/moto-api/aurora-sync/clock"
    requests.post(url, json={"scale": CLOCK_SCALE}, timeout=5).raise_for_status()
    yield
    requests.post(url, json={"scale": 1}, timeout=5).raise_for_status()


@pytest.fixture(scope="module")
def admin(stack: dict[str, Any]) -> Iterator[Any]:
    conn = psycopg2.connect(stack["postgres"]["admin_dsn"])
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def ssm(stack: dict[str, Any]) -> Any:
    return local_aws_client("ssm", stack["aws"])


@pytest.fixture(scope="module")
def sfn(stack: dict[str, Any]) -> Any:
    return local_aws_client("stepfunctions", stack["aws"])


@pytest.fixture(scope="module")
def stack_flags(local_stack: Stack) -> list[str]:
    settings = local_stack.settings
    return ["--local", "--state-dir", str(settings.root), "--port-base", str(settings.ports.postgres)]


def put_config(ssm: Any, world_path: str, schema: str, name: str, **extra: Any) -> None:
    document = {"schema": schema, "table": name, "primary_key": ["id"], "lookback_seconds": 0, **extra}
    put_table_config(name, TableConfig.model_validate(document), world_path + "/", ssm_client=ssm)


def make_world(
    stack: dict[str, Any], admin: Any, ssm: Any, stack_flags: list[str], rows: dict[str, int]
) -> World:
    """Source tables with rows 1..n, their configs, their Snowflake objects, the bucket wired."""
    tag = uuid.uuid4().hex[:8]
    schema, path = f"cli_{tag}", f"/aurora-sync-test/cli-{tag}"
    # Table names are S3 prefixes in the shared bucket: unique per world, or pipes cross-load.
    tables = [f"{prefix}_{tag}" for prefix in rows]
    user = sql.Identifier(stack["postgres"]["user"])
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), user))
        for name, count in zip(tables, rows.values(), strict=True):
            cur.execute(sql.SQL(DDL).format(t=sql.Identifier(schema, name)))
            cur.execute(sql.SQL(INSERT).format(t=sql.Identifier(schema, name)), (1, count))
            cur.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(schema, name), user))
            put_config(ssm, path, schema, name)
    # The applied SQL is printed; keep it out of the first test's captured output.
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        applied = main(["sql", "snowflake", "--setup", "--apply", "--config-path", path, *stack_flags])
    assert applied == 0
    assert printed.getvalue().rstrip().endswith("statement(s) in order")
    connect_bucket_to_snowpipe(stack)
    return World(schema, path, f"cli-{tag}", tables, stack_flags)


@pytest.fixture(scope="module")
def orders(stack: dict[str, Any], admin: Any, ssm: Any, stack_flags: list[str]) -> Iterator[World]:
    world = make_world(stack, admin, ssm, stack_flags, {"orders": 5})
    yield world
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(world.schema)))


@pytest.fixture(scope="module")
def broken(stack: dict[str, Any], admin: Any, ssm: Any, stack_flags: list[str]) -> Iterator[World]:
    """A good table and one whose config names a column the source does not have."""
    world = make_world(stack, admin, ssm, stack_flags, {"good": 4, "ghost": 3})
    # After the Snowflake objects exist: they are generated from the (then valid) config.
    put_config(ssm, world.config_path, world.schema, world.tables[1], columns=["id", "ghost", "updated_at"])
    yield world
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(world.schema)))


@pytest.fixture(scope="module")
def final_count(stack: dict[str, Any]) -> Iterator[Any]:
    conn = snowflake.connector.connect(**stack["snowflake"])

    def count(table: str) -> int:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {stack['snowflake']['database']}.FINAL.{table.upper()}")
            row = cur.fetchone()
            assert row is not None
            return int(row[0])

    yield count
    conn.close()


class Runs:
    """Executions that later tests read (module state, so each sync runs once)."""

    first: Ran | None = None
    failed: Ran | None = None


# --- usage errors (no execution starts) ----------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "2024-01-01"], "--since needs --tables"),
        (["--full"], "--full needs --tables"),
        (["--tables", "a", "--since", "2024-01-01", "--full"], "--since and --full exclude each other"),
        (["--tables", "a", "--since", "yesterday"], "--since 'yesterday' is neither an ISO-8601"),
        (["--tables", "a", "--name", "no spaces"], "--name 'no spaces' is not a valid execution name"),
        (["--tables", ","], "--tables is empty"),
    ],
)
def test_usage_errors_exit_2_before_anything_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    # A state dir where nothing runs: reaching the stack would be a different error.
    ran = cli(capsys, "sync", *argv, "--local", "--state-dir", str(tmp_path))

    assert ran.code == 2
    assert ran.out == ""
    assert ran.err.startswith(f"aurora-sync sync: error: {message}")
    assert "Fix: " in ran.err and len(ran.err.strip().splitlines()) == 1


def test_failing_table_exits_1_with_the_rerun_command_and_input(
    capsys: pytest.CaptureFixture[str], broken: World
) -> None:
    good, ghost = broken.tables
    ran = cli(capsys, "sync", "--tables", f"{good},{ghost}", "--full", *broken.flags)
    Runs.failed = ran

    assert ran.code == 1, ran.err
    arn = execution_arn(ran)
    assert f":execution:{broken.stack_name}-sync:sync-" in arn
    assert table_row(ran, good) == [good, "MERGED", "4", "4", "4", "0", "-", table_row(ran, good)[7]]
    assert table_row(ran, ghost)[:2] == [ghost, "FAILED"]
    assert table_row(ran, ghost)[-1] == "SourceObjectMissing"
    assert (
        f"  {ghost}: SourceObjectMissing: table '{ghost}': configured column(s) 'ghost' do not exist "
        "in the source (it has 'id', 'note', 'updated_at')."
    ) in ran.out
    lines = ran.out.splitlines()
    assert lines[-3] == f"execution: {arn} FAILED"
    assert lines[-2] == f"rerun: aurora-sync rerun {arn}"
    # The verifier names the failed table; the rerun keeps that table's --full.
    rerun_input = {"tables": [ghost], "overrides": {ghost: {"full_resync": True}}}
    assert lines[-1] == f"rerun input: {json.dumps(rerun_input)}"
    # Progress: the plan, each export, each verdict, on stderr only. The planner reads the source
    # catalog first, so the missing column fails its table at the plan, before any export.
    assert f"plan: 1 table(s) to export ({good})" in ran.err
    assert f"plan: {ghost} FAILED SourceObjectMissing: table '{ghost}': configured column(s)" in ran.err
    # The exports ran in the export Map's children: the parent's history reports the round.
    assert "export round 1: 1 table(s) or lane(s) done (0 failed), 0 resume in the next round" in ran.err
    assert f"export {ghost}" not in ran.err
    assert (
        f"merged {good}: 4 row(s) changed, 0 re-read unchanged (exported 4, loaded 4; freshness lag "
        in ran.err
    )
    # The verifier never sees the plan's failure; the count still adds up to the run's tables.
    done = [line for line in ran.err.splitlines() if line.startswith("verify #") and ": done, " in line]
    assert [line.split(": ", 1)[1] for line in done] == [
        "done, 2 table(s): 1 merged or up to date, 1 failed (1 in the plan)"
    ]
    assert "execution failed: TablesFailed" in ran.err


def test_sync_prints_each_tables_rows_and_succeeds(
    capsys: pytest.CaptureFixture[str], orders: World, final_count: Any
) -> None:
    (table,) = orders.tables
    ran = cli(capsys, "sync", "--tables", table, "--name", f"first-{orders.stack_name}", *orders.flags)
    Runs.first = ran

    assert ran.code == 0, ran.err
    header, row = ran.out.splitlines()[:2]
    assert header.split() == [
        "TABLE",
        "OUTCOME",
        "EXPORTED",
        "LOADED",
        "CHANGED",
        "UNCHANGED",
        "DELETED",
        "LAG",
        "ERROR",
    ]
    assert row.split()[:6] == [table, "MERGED", "5", "5", "5", "0"]
    # The newest row is from 2026-01-01, but FINAL matches the source as of this run's snapshot:
    # the lag is seconds, not the age of the newest row.
    assert row.split()[6] == "-"  # hard deletes are not reconciled for this table
    assert row.split()[7].endswith("s") and "d" not in row.split()[7]
    arn = execution_arn(ran)
    assert arn.endswith(f":execution:{orders.stack_name}-sync:first-{orders.stack_name}")
    assert ran.out.splitlines()[-1] == f"execution: {arn} SUCCEEDED"
    assert "rerun" not in ran.out
    assert f'with input {{"tables": ["{table}"]}}' in ran.err
    assert final_count(table) == 5


def test_sync_json_with_since_is_one_object_and_overrides_the_watermark(
    capsys: pytest.CaptureFixture[str], orders: World, admin: Any, final_count: Any
) -> None:
    (table,) = orders.tables
    with admin.cursor() as cur:
        cur.execute(sql.SQL(INSERT).format(t=sql.Identifier(orders.schema, table)), (6, 8))

    ran = cli(
        capsys, "sync", "--tables", table, "--since", "2026-01-01T00:00:02+00:00", "--json", *orders.flags
    )

    assert ran.code == 0, ran.err
    document = ran.json()
    assert sorted(document) == [
        "cause",
        "error",
        "execution_arn",
        "input",
        "name",
        "rerun_command",
        "rerun_input",
        "run_id",
        "skip_reason",
        "skipped",
        "state_machine_arn",
        "status",
        "tables",
    ]
    assert document["status"] == "SUCCEEDED"
    assert document["input"] == {
        "tables": [table],
        "overrides": {table: {"since": "2026-01-01T00:00:02+00:00"}},
    }
    assert document["run_id"] == document["name"]
    assert document["skipped"] is False and document["rerun_input"] is None and document["error"] is None
    (result,) = document["tables"]
    # Rows 2..8 are at or after `since` (inclusive); the last run's window alone would have
    # exported only 5..8.
    assert result["table"] == table and result["outcome"] == "MERGED"
    assert (result["rows_exported"], result["rows_loaded"]) == (7, 7)
    # 6..8 are new; 2..5 were re-read as FINAL holds them: changed and re-read are told apart.
    assert (result["rows_changed"], result["rows_unchanged"]) == (3, 4)
    assert 0 <= result["freshness_lag_seconds"] < 120
    assert final_count(table) == 8


def test_sync_while_another_execution_runs_is_skipped_and_exits_0(
    capsys: pytest.CaptureFixture[str], orders: World, sfn: Any
) -> None:
    started = cli(capsys, "sync", "--no-wait", *orders.flags)
    assert started.code == 0, started.err
    running = execution_arn(started)
    assert started.out.strip() == f"execution: {running} RUNNING"

    ran = cli(capsys, "sync", *orders.flags)
    while sfn.describe_execution(executionArn=running)["status"] == "RUNNING":
        time.sleep(0.2)

    assert ran.code == 0, ran.err
    name = running.rsplit(":", 1)[1]
    assert ran.out.startswith(f"skipped: execution {name} of the same state machine, started ")
    assert ran.out.splitlines()[-1] == f"execution: {execution_arn(ran)} SUCCEEDED"
    assert "TABLE" not in ran.out
    assert sfn.describe_execution(executionArn=running)["status"] == "SUCCEEDED"


def test_state_machine_arn_runs_on_aws_through_the_boto3_environment(
    capsys: pytest.CaptureFixture[str],
    orders: World,
    sfn: Any,
    stack: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aws = stack["aws"]
    machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    arn = machines[f"{orders.stack_name}-sync"]
    # "AWS" here is the stack's moto, reached only through boto3's standard variables.
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws["endpoint_url"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", aws["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws["secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", aws["region"])
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AURORA_SYNC_STATE_MACHINE_ARN", arn)
    (table,) = orders.tables

    ran = cli(capsys, "sync", "--tables", table)
    missing = cli(capsys, "sync", "--stack-name", f"no-such-{orders.stack_name}")

    assert ran.code == 0, ran.err
    assert f"on AWS {aws['region']} with input" in ran.err
    assert execution_arn(ran).startswith(arn.replace(":stateMachine:", ":execution:") + ":sync-")
    # Nothing changed: only the row on the window's boundary (row 8, read inclusively) again,
    # re-read as FINAL holds it, so it counts as unchanged.
    assert table_row(ran, table) == [table, "MERGED", "1", "1", "0", "1", "-", table_row(ran, table)[7]]
    assert missing.code == 1
    assert missing.err == (
        f"aurora-sync: CloudFormation stack 'no-such-{orders.stack_name}' does not exist in "
        f"{aws['region']}. Fix: pass the stack_name of `sam deploy` (see samconfig.toml) and its region "
        "(AWS_DEFAULT_REGION), or --state-machine-arn\n"
    )


def test_unknown_table_and_a_stopped_stack_are_errors_naming_the_fix(
    capsys: pytest.CaptureFixture[str], orders: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AURORA_SYNC_STATE_MACHINE_ARN", raising=False)
    unknown = cli(capsys, "sync", "--tables", "nosuch", *orders.flags)
    stopped = cli(capsys, "sync", "--state-dir", str(tmp_path), "--port-base", "26190")

    assert unknown.code == 2
    assert unknown.err == (
        f"aurora-sync sync: error: unknown table(s) nosuch in --tables; {orders.config_path}/ has: "
        f"{orders.tables[0]}. Fix: use names from that list, or add the table's config parameter first\n"
    )
    assert stopped.code == 1
    assert stopped.err == (
        f"aurora-sync: no state machine on AWS was named and the local stack under {tmp_path} is not "
        "running. Fix: start it (aurora-sync local up; or pass its --state-dir/--port-base), or name the "
        "state machine with --state-machine-arn, AURORA_SYNC_STATE_MACHINE_ARN or --stack-name\n"
    )


def test_rerun_of_a_succeeded_execution_has_nothing_to_rerun(
    capsys: pytest.CaptureFixture[str], stack_flags: list[str]
) -> None:
    assert Runs.first is not None, "runs after test_sync_prints_each_tables_rows_and_succeeds"
    arn = execution_arn(Runs.first)

    ran = cli(capsys, "rerun", arn, *stack_flags)

    assert ran.code == 1
    assert ran.out == ""
    assert ran.err == (
        f"aurora-sync: execution {arn} SUCCEEDED and had no failed tables: nothing to rerun. "
        "Fix: start a new run with aurora-sync sync\n"
    )


def test_rerun_after_fixing_the_config_runs_only_the_failed_table(
    capsys: pytest.CaptureFixture[str], broken: World, ssm: Any, sfn: Any, final_count: Any
) -> None:
    assert Runs.failed is not None, "runs after test_failing_table_exits_1_with_the_rerun_command_and_input"
    good, ghost = broken.tables
    failed_arn = execution_arn(Runs.failed)
    # Straight after the fix: the planner reads table configs fresh on every run.
    put_config(ssm, broken.config_path, broken.schema, ghost)

    ran = cli(capsys, "rerun", failed_arn, *broken.stack_flags)

    assert ran.code == 0, ran.err
    arn = execution_arn(ran)
    assert arn.startswith(failed_arn.rsplit(":", 1)[0] + ":rerun-")
    assert json.loads(sfn.describe_execution(executionArn=arn)["input"]) == {
        "tables": [ghost],
        "overrides": {ghost: {"full_resync": True}},
    }
    assert table_row(ran, ghost) == [ghost, "MERGED", "3", "3", "3", "0", "-", table_row(ran, ghost)[7]]
    assert good not in ran.out
    assert ran.out.splitlines()[-1] == f"execution: {arn} SUCCEEDED"
    assert f"plan: 1 table(s) to export ({ghost})" in ran.err
    assert final_count(ghost) == 3


@pytest.fixture(scope="module")
def drifting(stack: dict[str, Any], admin: Any, ssm: Any, stack_flags: list[str]) -> Iterator[World]:
    """A table whose config lists its columns, and a column added at the source since."""
    world = make_world(stack, admin, ssm, stack_flags, {"drift": 2})
    (table,) = world.tables
    put_config(ssm, world.config_path, world.schema, table, columns=["id", "note", "updated_at"])
    with admin.cursor() as cur:
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN region text").format(sql.Identifier(world.schema, table))
        )
    yield world
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(world.schema)))


def test_schema_drift_is_shown_by_sync_and_status_with_runnable_statements(
    capsys: pytest.CaptureFixture[str], stack: dict[str, Any], drifting: World
) -> None:
    (table,) = drifting.tables
    database, target = stack["snowflake"]["database"], table.upper()
    expected = [
        f"schema drift in {table}: source column(s) 'region' are not in its config's columns. To sync them, "
        "add them there, push the config (aurora-sync config push FILE) and run: aurora-sync sql snowflake "
        f"--tables {table} --apply, which adds them with:",
        f'  ALTER TABLE "{database}"."STAGING"."{target}" ADD COLUMN "REGION" VARCHAR;',
        f'  ALTER TABLE "{database}"."FINAL"."{target}" ADD COLUMN "REGION" VARCHAR;',
    ]
    ran = cli(capsys, "sync", "--tables", table, *drifting.flags)
    assert ran.code == 0, ran.err
    assert table_row(ran, table)[:2] == [table, "MERGED"]
    lines = ran.out.splitlines()
    start = lines.index(f"  {expected[0]}")
    assert lines[start : start + 3] == [f"  {line}" for line in expected]
    assert "{staging}" not in ran.out + ran.err

    ran = cli(capsys, "status", "--tables", table, *drifting.flags)
    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    start = lines.index(expected[0])
    assert lines[start : start + 3] == expected
    [row] = json.loads(cli(capsys, "status", "--tables", table, "--json", *drifting.flags).out)["tables"]
    assert row["new_columns"] == ["region"]
    assert row["drift_statements"] == [line.strip().rstrip(";") for line in expected[1:]]

    # The statements run as printed.
    conn = snowflake.connector.connect(**stack["snowflake"])
    try:
        for statement in row["drift_statements"]:
            conn.cursor().execute(statement)
    finally:
        conn.close()
