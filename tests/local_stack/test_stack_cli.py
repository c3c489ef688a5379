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
