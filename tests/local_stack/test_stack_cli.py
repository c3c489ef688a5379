"""`aurora-sync local up|down|status` as a user runs them: real processes, real ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from aurora_sync_ops.environment import local_aws_client
from aurora_sync_ops.local.component import port_open
from aurora_sync_ops.local.stack import Stack

CLI = str(Path(sys.executable).with_name("aurora-sync"))


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=180, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"aurora-sync {' '.join(args)} failed: {result.stdout}\n{result.stderr}")
    return result


def stack_args(stack: Stack) -> list[str]:
    return ["--state-dir", str(stack.settings.root), "--port-base", str(stack.settings.ports.postgres)]


def test_status_json_is_one_object_with_the_contract_keys(local_stack: Stack) -> None:
    # Given the running test stack, when a tool asks for its status as JSON
    result = run_cli("local", "status", "--json", *stack_args(local_stack))
    status: dict[str, Any] = json.loads(result.stdout)  # exactly one object, nothing else on stdout

    # Then every key other tools rely on is there
    parts = set((os.environ.get("AURORA_SYNC_STACK_ONLY") or "postgres,aws,snowflake,vault").split(","))
    expected = {
        "aws": ["endpoint_url", "region", "access_key_id", "secret_access_key"],
        "postgres": ["dsn", "admin_dsn"],
        "vault": ["addr", "iam_server_id", "role"],
    }
    for section, keys in expected.items():
        if section in parts or section == "aws":
            for key in keys:
                assert status[section][key], f"{section}.{key} missing from status"
    assert status["running"] is True
    if "snowflake" in parts:
        import snowflake.connector

        # `snowflake` is a dict of keyword arguments the real connector accepts.
        with snowflake.connector.connect(**status["snowflake"]) as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT 1 + 1")
            assert cursor.fetchone() == (2,)


def test_second_up_reports_what_is_already_running(local_stack: Stack) -> None:
    only = os.environ.get("AURORA_SYNC_STACK_ONLY")
    extra = ["--only", only] if only else []
    result = run_cli("local", "up", *extra, *stack_args(local_stack))
    started = [line for line in result.stdout.splitlines() if ": started" in line]
    assert started == [], f"a second `up` must not start anything: {started}"
    assert "aws: already running" in result.stdout


def test_down_stops_every_process_and_leaves_no_listener(tmp_path: Path) -> None:
    # Given a separate stack with only the AWS part, on ports of its own
    args = ["--state-dir", str(tmp_path / "stack"), "--port-base", "25480"]
    run_cli("local", "up", "--only", "aws", *args)
    status = json.loads(run_cli("local", "status", "--json", *args).stdout)
    pid = status["services"]["aws"]["pid"]
    assert status["services"]["aws"]["alive"] and port_open("127.0.0.1", 25481)

    # When it is stopped
    result = run_cli("local", "down", *args)

    # Then the process is gone, the port is free, and status says so
    assert f"aws (pid {pid})" in result.stdout
    assert not Stack._alive(pid)
    assert not port_open("127.0.0.1", 25481)
    after = run_cli("local", "status", "--json", *args, check=False)
    assert json.loads(after.stdout)["services"]["aws"]["alive"] is False
    assert run_cli("local", "down", *args).stdout.strip() == "nothing was running"


def test_port_taken_by_someone_else_is_named(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 25491))
        squatter.listen()
        result = run_cli(
            "local", "up", "--only", "aws", "--state-dir", str(tmp_path), "--port-base", "25490", check=False
        )
    assert result.returncode == 1
    assert "port 25491 is taken" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("part", ["nosuch", "postgres;rm"])
def test_unknown_part_is_a_one_line_error(tmp_path: Path, part: str) -> None:
    result = run_cli("local", "up", "--only", part, "--state-dir", str(tmp_path), check=False)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert f"unknown stack part {part!r}" in result.stderr


def test_missing_postgresql_binaries_are_named_with_the_install_command(tmp_path: Path) -> None:
    env = {**os.environ, "AURORA_SYNC_PG_BIN_DIR": str(tmp_path / "no-postgres-here")}
    result = subprocess.run(
        [
            CLI,
            "local",
            "up",
            "--only",
            "postgres",
            "--state-dir",
            str(tmp_path / "s"),
            "--port-base",
            "25495",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr  # one line
    assert "PostgreSQL >= 15 server binaries (initdb, postgres) were not found" in result.stderr
    assert "apt-get install postgresql-15" in result.stderr
    assert not port_open("127.0.0.1", 25496)  # nothing was started, not even the AWS part


# --- ready for the user's own tables ---------------------------------------------------------------
def emulator_account(connect_kwargs: dict[str, Any]) -> dict[str, Any]:
    url = f"http://{connect_kwargs['host']}:{connect_kwargs['port']}/emulator/account"
    document: dict[str, Any] = requests.get(url, timeout=10).json()
    return document


def snowpipe_notifications(status: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    s3 = local_aws_client("s3", status["aws"])
    queues = s3.get_bucket_notification_configuration(Bucket=status["aws"]["bucket"])
    return [(q["Id"], q["QueueArn"], q["Events"]) for q in queues.get("QueueConfigurations", [])]


def test_up_leaves_snowflake_set_up_and_the_bucket_wired(local_stack: Stack) -> None:
    # Given the test stack, started by `up` like a user's
    status = json.loads(run_cli("local", "status", "--json", *stack_args(local_stack)).stdout)

    # Then the setup `sql snowflake --setup --apply` applies is there: schemas, ledger, integration
    ready = status["ready_for_tables"]
    assert (ready["database"], ready["staging_schema"], ready["final_schema"]) == (
        "AURORA_SYNC",
        "STAGING",
        "FINAL",
    )
    import snowflake.connector

    with snowflake.connector.connect(**status["snowflake"]) as conn, conn.cursor() as cur:
        cur.execute('SELECT COUNT(*) FROM AURORA_SYNC.STAGING."_AURORA_SYNC_RUNS"')
        assert cur.fetchone() is not None
        cur.execute("DESC INTEGRATION AURORA_SYNC_S3")
        assert ("STORAGE_ALLOWED_LOCATIONS", f"s3://{status['aws']['bucket']}/") in {
            (row[0], row[2]) for row in cur.fetchall()
        }
    # And the bucket notifies the account's Snowpipe queue, whatever pipes exist
    queue = emulator_account(status["snowflake"])["notification_channel"]
    assert ready["snowpipe_queue_arn"] == queue
    assert ("aurora-sync-snowpipe", queue, ["s3:ObjectCreated:*"]) in snowpipe_notifications(status)
    # And the human status says so, with the SQL shells
    text = run_cli("local", "status", *stack_args(local_stack)).stdout
    assert "ready for your tables: Snowflake database AURORA_SYNC set up" in text
    assert f"bucket {status['aws']['bucket']} notifies Snowpipe's queue {queue}" in text
    assert "aurora-sync local sql (Snowflake), aurora-sync local psql (PostgreSQL)" in text


def test_up_wires_the_bucket_before_any_pipe_exists_and_can_run_again(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    # Given a fresh Snowflake emulator (and its AWS) with no pipe at all, on ports of its own
    base = int(stack["postgres"]["port"]) + 60 if stack.get("postgres") else 25520
    args = ["--state-dir", str(tmp_path / "fresh"), "--port-base", str(base)]
    try:
        first = run_cli("local", "up", "--only", "snowflake", *args)
        status = json.loads(run_cli("local", "status", "--json", *args).stdout)
        import snowflake.connector

        with snowflake.connector.connect(**status["snowflake"]) as conn, conn.cursor() as cur:
            cur.execute("SHOW PIPES IN ACCOUNT")
            assert cur.fetchall() == []
        # Then `up` still wired the bucket, to the queue every pipe will name
        queue = emulator_account(status["snowflake"])["notification_channel"]
        assert snowpipe_notifications(status) == [("aurora-sync-snowpipe", queue, ["s3:ObjectCreated:*"])]
        assert "ready for your tables" in first.stdout
        # And a second `up` applies the same setup again without error and keeps one notification
        again = run_cli("local", "up", "--only", "snowflake", *args)
        assert "snowflake: already running" in again.stdout
        assert snowpipe_notifications(status) == [("aurora-sync-snowpipe", queue, ["s3:ObjectCreated:*"])]
    finally:
        run_cli("local", "down", *args)


# --- local sql / local psql ------------------------------------------------------------------------
def test_local_sql_prints_each_result_as_a_table(local_stack: Stack, tmp_path: Path) -> None:
    statements = "SELECT 1 AS ONE, NULL AS NOTHING, 'a;b' AS TEXT; SELECT 'x' AS X UNION ALL SELECT 'yy'"
    expected = (
        "ONE | NOTHING | TEXT\n----+---------+-----\n1   | NULL    | a;b\n(1 row)\nX\n--\nx\nyy\n(2 rows)\n"
    )
    assert run_cli("local", "sql", "-c", statements, *stack_args(local_stack)).stdout == expected
    script = tmp_path / "query.sql"
    script.write_text(f"-- a comment\n{statements};\n")
    assert run_cli("local", "sql", "--file", str(script), *stack_args(local_stack)).stdout == expected
    piped = subprocess.run(
        [CLI, "local", "sql", *stack_args(local_stack)],
        input=statements,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert piped.stdout == expected


def test_local_sql_names_the_failed_statement(local_stack: Stack) -> None:
    result = run_cli(
        "local",
        "sql",
        "-c",
        "SELECT 1 AS ONE; SELECT * FROM NO_SUCH_TABLE",
        *stack_args(local_stack),
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout.startswith("ONE\n")  # what ran before the failure was printed
    assert "aurora-sync: statement 2 of 2 (SELECT * FROM NO_SUCH_TABLE) failed:" in result.stderr
    assert "NO_SUCH_TABLE does not exist" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["sql", "psql"])
def test_shells_name_local_up_when_the_stack_is_not_running(tmp_path: Path, command: str) -> None:
    result = run_cli("local", command, "-c", "SELECT 1", "--state-dir", str(tmp_path), check=False)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert f"start it with: aurora-sync local up --state-dir {tmp_path}" in result.stderr


def test_local_sql_interactive_runs_each_statement_at_its_semicolon(stack: dict[str, Any]) -> None:
    import io

    import snowflake.connector

    from aurora_sync_ops.cli.local import interactive

    lines = iter(["SELECT 1", "  AS A;", "SELECT NOPE;", "SELECT 2 AS B;"])

    def read(prompt: str) -> str:
        prompts.append(prompt)
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    prompts: list[str] = []
    out = io.StringIO()
    with snowflake.connector.connect(**stack["snowflake"]) as conn:
        interactive(conn.cursor(), read, out)
    printed = out.getvalue()
    assert printed.startswith("A\n-\n1\n(1 row)\nerror: statement 1 of 1 (SELECT NOPE;) failed:")
    assert printed.endswith("B\n-\n2\n(1 row)\n\n")  # the error did not end the session
    assert prompts == ["snowflake> ", "       ...> ", "snowflake> ", "snowflake> ", "snowflake> "]


def test_local_psql_runs_on_the_source_database_without_the_password_in_argv(
    local_stack: Stack, stack: dict[str, Any]
) -> None:
    import argparse

    from aurora_sync_ops.cli.local import psql_command

    query = "SELECT current_user || '@' || current_database() AS who"
    admin = run_cli("local", "psql", "-c", query, *stack_args(local_stack)).stdout
    assert f"{stack['postgres']['admin_user']}@{stack['postgres']['database']}" in admin
    sync = run_cli("local", "psql", "--sync-role", "-c", query, *stack_args(local_stack)).stdout
    assert f"{stack['postgres']['sync_role']}@{stack['postgres']['database']}" in sync
    # A piped script stops at its first error with a non-zero status, so `bash -e` sees it
    failed = subprocess.run(
        [CLI, "local", "psql", *stack_args(local_stack)],
        input="SELECT 1 AS first;\nSELECT * FROM no_such_table;\nSELECT 3 AS never;\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert failed.returncode != 0 and "never" not in failed.stdout
    assert 'relation "no_such_table" does not exist' in failed.stderr
    options = argparse.Namespace(sync_role=False, command=["SELECT 1"], file=None)
    argv, environ = psql_command(stack["postgres"], options)
    secret = psycopg2_password(stack["postgres"]["admin_dsn"])
    assert secret and not any(secret in arg for arg in argv)
    assert environ["PGPASSWORD"] == secret
    assert argv[-2:] == ["-c", "SELECT 1"]


def psycopg2_password(dsn: str) -> str:
    from psycopg2.extensions import parse_dsn

    return str(parse_dsn(dsn)["password"])
