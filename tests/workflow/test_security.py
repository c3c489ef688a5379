"""Security end to end: no secret of the stack leaves its store during a sync, a refused login
names the problem without the password, and hostile identifiers and values are data, never SQL.

Scanned after each run: the execution history (every state's input and output, every task's
parameters, result and error), the execution's description, and what the stack's log files
(moto host with the Lambda workers' logs, Vault gateway, OpenBao, Snowflake, PostgreSQL) gained
during the run. The template's least privilege is proven by tests/unit/test_template.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import psycopg2
import pytest
from psycopg2 import sql
from world import World, open_world

from aurora_sync.naming import quote

# Every session token moto's STS issues starts with this (the Lambda workers' role sessions).
MOTO_SESSION_TOKEN_PREFIX = "FQoGZXIvYXdzE"


@pytest.fixture(scope="module")
def world(stack: dict[str, Any]) -> Iterator[World]:
    tables: dict[str, tuple[str, dict[str, Any]]] = {
        "sec_members": (
            "CREATE TABLE {schema}.members (id bigint PRIMARY KEY, email text, "
            "updated_at timestamptz NOT NULL DEFAULT now())",
            {"table": "members", "primary_key": ["id"]},
        )
    }
    with open_world(stack, tables, prefix="sec") as world:
        world.execute(
            "INSERT INTO {schema}.members (id, email) SELECT i, 'm' || i || '@example.com' "
            "FROM generate_series(1, 30) i"
        )
        world.apply()
        yield world


def vault_root(stack: dict[str, Any]) -> hvac.Client:
    return hvac.Client(url=stack["openbao"]["addr"], token=stack["openbao"]["root_token"])


def read_secret(stack: dict[str, Any], path: str) -> dict[str, Any]:
    response = vault_root(stack).secrets.kv.v2.read_secret_version(
        path=path, mount_point=stack["vault"]["kv_mount"], raise_on_deleted_version=True
    )
    data: dict[str, Any] = response["data"]["data"]
    return data


def stack_secrets(stack: dict[str, Any]) -> dict[str, str]:
    """Every secret value the stack holds, by a name that is safe to print."""
    admin_password = psycopg2.extensions.parse_dsn(stack["postgres"]["admin_dsn"])["password"]
    pem = read_secret(stack, stack["vault"]["snowflake_secret_path"])["private_key"]
    key_lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    secrets = {
        "vault root token": stack["vault"]["root_token"],
        "openbao root token": stack["openbao"]["root_token"],
        "aurora sync password": stack["postgres"]["password"],
        "aurora admin password": admin_password,
        "aws admin secret key": stack["aws"]["secret_access_key"],
        "lambda role secret key": stack["aws"]["lambda_credentials"]["secret_access_key"],
        "lambda role session token": stack["aws"]["lambda_credentials"]["session_token"],
        "moto session token (any)": MOTO_SESSION_TOKEN_PREFIX,
    }
    secrets.update({f"snowflake private key line {n}": line for n, line in enumerate(key_lines)})
    return secrets


class LogTail:
    """What each of the stack's log files gains from now on."""

    def __init__(self, stack: dict[str, Any]) -> None:
        self.directory = Path(stack["state_dir"]) / "logs"
        self.offsets = {path.name: path.stat().st_size for path in self.directory.glob("*.log")}

    def read(self) -> dict[str, str]:
        grown: dict[str, str] = {}
        for path in self.directory.glob("*.log"):
            with path.open("rb") as log:
                log.seek(self.offsets.get(path.name, 0))
                grown[path.name] = log.read().decode("utf-8", "replace")
        return grown


def leaks(secrets: dict[str, str], places: dict[str, str]) -> list[str]:
    return [
        f"{name} in {place}"
        for name, value in secrets.items()
        for place, text in places.items()
        if value and value in text
    ]


def history_text(description: dict[str, Any], events: list[dict[str, Any]]) -> str:
    return json.dumps(events, default=str) + json.dumps(description, default=str)


def test_a_sync_leaves_no_secret_in_history_state_payloads_or_logs(world: World) -> None:
    secrets = stack_secrets(world.status)
    tail = LogTail(world.status)
    description, events = world.run()
    logs = tail.read()
    assert description["status"] == "SUCCEEDED", description
    # The scanned places really hold the run: payloads of every state, Lambda logs, Vault logins.
    payloads = [
        details.get("input") or details.get("output") or ""
        for event in events
        for key, details in event.items()
        if key.endswith("EventDetails") and isinstance(details, dict)
    ]
    assert any("sec_members" in payload for payload in payloads)
    assert "REPORT RequestId" in logs["aws.log"]
    assert '"table":"sec_members"' in logs["aws.log"].replace(" ", "")
    assert "/v1/auth/aws/login" in logs["vault.log"]
    assert leaks(secrets, {"history": history_text(description, events), **logs}) == []
    world.assert_parity()


def test_a_refused_aurora_password_is_source_auth_failed_without_any_password(world: World) -> None:
    stack = world.status
    path = stack["vault"]["aurora_secret_path"]
    original = read_secret(stack, path)
    wrong = f"wrong-{uuid.uuid4().hex}"
    secrets = {**stack_secrets(stack), "the wrong password": wrong}
    # A changed environment starts a cold exporter, whose secret cache is empty.
    exporter = world.deployment.functions["ExporterFunction"]
    lambda_ = world.engine.lambda_
    variables = lambda_.get_function_configuration(FunctionName=exporter)["Environment"]["Variables"]
    lambda_.update_function_configuration(
        FunctionName=exporter, Environment={"Variables": {**variables, "POWERTOOLS_PARAMETERS_MAX_AGE": "0"}}
    )
    vault_root(stack).secrets.kv.v2.create_or_update_secret(
        path=path, secret={**original, "password": wrong}, mount_point=stack["vault"]["kv_mount"]
    )
    tail = LogTail(stack)
    try:
        description, events = world.run({"tables": ["sec_members"]})
    finally:
        vault_root(stack).secrets.kv.v2.create_or_update_secret(
            path=path, secret=original, mount_point=stack["vault"]["kv_mount"]
        )
        world.deployment = world.engine.deploy()
    logs = tail.read()
    assert description["status"] == "FAILED"
    assert description["error"] == "TablesFailed"
    cause = description["cause"]
    assert "sec_members (SourceAuthFailed: " in cause
    assert "PostgreSQL error 28P01 (invalid_password)" in cause
    assert "check the Aurora secret in Vault (user, password)" in cause
    # Terminal: the state machine does not retry a refused login.
    failures = [e["taskFailedEventDetails"]["error"] for e in events if "taskFailedEventDetails" in e]
    assert failures == ["SourceAuthFailed"]
    assert "password authentication failed" in logs["postgres.log"]  # the server saw the attempt
    assert leaks(secrets, {"history": history_text(description, events), **logs}) == []

    description, events = world.run(world.verify_output(events)["summary"]["rerun_input"])
    assert description["status"] == "SUCCEEDED", description
    world.assert_parity()


def test_hostile_identifiers_and_values_sync_as_data_and_execute_nothing(stack: dict[str, Any]) -> None:
    canary = f"canary_{uuid.uuid4().hex[:6]}"
    drop = f"DROP TABLE {canary}"
    # Double quotes are the one character table configs refuse in identifiers (config/model.py). Single
    # quotes stay out of column names only because fakesnow pastes VARCHAR column names into its
    # own information-schema SQL unescaped (an emulator bug: the CREATE TABLE fails there).
    table = f"t'); {drop}; --"
    key = f"id; {drop}"
    note = f"note); DELETE FROM {canary}; --"
    cursor = "updated at -- ;"
    values = [
        f"'); {drop}; --",
        f'"; {drop}; --',
        f"$$; {drop}; $$",
        f"\\'; {drop} /* , \n */",
        f"Robert'); {drop};--",
    ]

    def ident(name: str) -> str:
        return '"' + name + '"'

    admin = psycopg2.connect(stack["postgres"]["admin_dsn"])
    admin.autocommit = True
    warehouse_canary = f"{quote(stack['snowflake']['database'])}.{quote('PUBLIC')}.{quote(canary.upper())}"
    tables = {
        "hostile": (
            f"CREATE TABLE {{schema}}.{ident(table)} ({ident(key)} int PRIMARY KEY, {ident(note)} text, "
            f"{ident(cursor)} timestamptz NOT NULL DEFAULT now())",
            {"table": table, "primary_key": [key], "cursor": cursor},
        )
    }
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE TABLE public.{} (id int)").format(sql.Identifier(canary)))
        with open_world(stack, tables, prefix="hostile") as world:
            world.warehouse.cursor().execute(f"CREATE TABLE {warehouse_canary} (id int)")
            with world.admin.cursor() as cur:
                for n, value in enumerate(values, start=1):
                    cur.execute(
                        sql.SQL("INSERT INTO {} ({}, {}) VALUES (%s, %s)").format(
                            sql.Identifier(world.schema, table), sql.Identifier(key), sql.Identifier(note)
                        ),
                        (n, value),
                    )
            world.apply()
            description, events = world.run()
            assert description["status"] == "SUCCEEDED", description
            (report,) = world.verify_output(events)["tables"]
            assert report["outcome"] == "MERGED" and report["rows_changed"] == len(values)
            world.assert_parity()
            final = world.setup.objects(world.configs["hostile"]["target"]).final_table
            cur = world.warehouse.cursor()
            cur.execute(f"SELECT {quote(note)} FROM {final} ORDER BY {quote(key)}")
            assert [row[0] for row in cur.fetchall()] == values
            cur.execute(f"SELECT COUNT(*) FROM {warehouse_canary}")
            assert cur.fetchone() == (0,)  # still there in Snowflake
            cur.execute(f"DROP TABLE {warehouse_canary}")
        with admin.cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{canary}",))
            assert cur.fetchone() == (True,)  # still there in PostgreSQL
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS public.{}").format(sql.Identifier(canary)))
        admin.close()


def test_leak_scan_finds_a_planted_secret() -> None:
    # The scanner itself: a value present anywhere in a place is reported by name and place.
    planted = {"token": "s3cr3t-value"}
    assert leaks(planted, {"history": '{"x": "..s3cr3t-value.."}', "vault.log": "clean"}) == [
        "token in history"
    ]
