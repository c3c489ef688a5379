"""`aurora-sync status`, `plan` and `parity` on the local stack after a real sync.

Given a source table synced by the real state machine (moto Step Functions calling the real
handlers), then: status shows the watermark, lag and the execution's per-table outcome ("never"
for a table FINAL has no rows of); parity finds FINAL equal; plan counts exactly the rows a run
would export; and after the source or FINAL changes, parity names the differing keys and exits 1.
"""

from __future__ import annotations

import gc
import json
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg2
import pytest
import requests
import snowflake.connector
from cli_run import run
from psycopg2 import sql

from aurora_sync.config import TableConfig, put_table_config
from aurora_sync.snowflake_objects import table_spec
from aurora_sync.snowflake_tables import SnowflakeSetup, render_table
from aurora_sync.source_catalog import read_columns
from aurora_sync_ops.environment import local_aws_client, local_external_id
from aurora_sync_ops.local.engine import LocalEngine
from aurora_sync_ops.local.stack import Stack
from aurora_sync_ops.local.wiring import connect_bucket_to_snowpipe
from aurora_sync_ops.parity import compare
from aurora_sync_ops.snowflake_sql import render_setup

CLOCK_SCALE = 0.05


@dataclass
class World:
    schema: str
    config_path: str
    stack_name: str
    targets: dict[str, str]
    admin: Any
    warehouse: Any
    setup: SnowflakeSetup
    execution: str


@pytest.fixture(scope="module")
def world(stack: dict[str, Any]) -> Iterator[World]:
    tag = uuid.uuid4().hex[:6]
    schema, config_path = f"insp_{tag}", f"/aurora-sync/insp-{tag}/"
    targets = {"orders": f"INSP{tag.upper()}_ORDERS", "audit": f"INSP{tag.upper()}_AUDIT"}
    aws = stack["aws"]
    clock = f"{aws['endpoint_url']}/moto-api/aurora-sync/clock"
    requests.post(clock, json={"scale": CLOCK_SCALE}, timeout=5).raise_for_status()
    admin = psycopg2.connect(stack["postgres"]["admin_dsn"])
    admin.autocommit = True
    role = sql.Identifier(stack["postgres"]["user"])
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), role))
        cur.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
                sql.Identifier(schema), role
            )
        )
        for table in ("orders", "audit"):
            cur.execute(
                sql.SQL(
                    "CREATE TABLE {} (id bigint PRIMARY KEY, note text, updated_at timestamptz NOT NULL)"
                ).format(sql.Identifier(schema, table))
            )
        # An hour old: the planned window (MAX - 60 s lookback) starts empty.
        cur.execute(
            sql.SQL(
                "INSERT INTO {} SELECT i, 'note ' || i, "
                "now() - interval '1 hour' + i * interval '10 seconds' FROM generate_series(1, 50) i"
            ).format(sql.Identifier(schema, "orders"))
        )
    configs = {
        "orders": {"schema": schema, "table": "orders", "primary_key": ["id"], "lookback_seconds": 60},
        "audit": {"schema": schema, "table": "audit", "primary_key": ["id"], "enabled": False},
    }
    setup = SnowflakeSetup(
        bucket=aws["bucket"],
        storage_role_arn=f"arn:aws:iam::{aws['account_id']}:role/aurora-sync-snowflake-storage",
        storage_external_id=local_external_id(aws),
        database=stack["snowflake"]["database"],
    )
    ssm = local_aws_client("ssm", aws)
    warehouse = snowflake.connector.connect(**stack["snowflake"])
    cursor = warehouse.cursor()
    for statement in render_setup(setup):
        cursor.execute(statement)
    for name, config in configs.items():
        document = {**config, "target": targets[name]}
        put_table_config(name, TableConfig.model_validate(document), config_path, ssm_client=ssm)
        with admin.cursor() as cur:
            catalog = read_columns(cur, schema, name)
        spec = table_spec(
            name=name,
            target=targets[name],
            catalog=catalog,
            schema=schema,
            table=name,
            columns=None,
            primary_key=["id"],
            cursor="updated_at",
        )
        for statement in render_table(setup, spec):
            cursor.execute(statement)
    connect_bucket_to_snowpipe(stack)
    stack_name = f"insp-{tag}"
    engine = LocalEngine(
        stack,
        parameters={"ConfigSsmPath": config_path.rstrip("/"), "LoadRefreshAfterSeconds": 5},
        stack_name=stack_name,
    )
    deployment = engine.deploy()
    arn = engine.start(deployment, {})
    description: dict[str, Any] = {}
    for event in engine.follow(arn, timeout_s=240, poll_s=0.3):
        if event.get("type") == "ExecutionDescription":
            description = event["description"]
    assert description["status"] == "SUCCEEDED", description
    yield World(schema, config_path, stack_name, targets, admin, warehouse, setup, description["name"])
    warehouse.close()
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    admin.close()
    requests.post(clock, json={"scale": 1}, timeout=5)


def flags(local_stack: Stack, world: World) -> list[str]:
    settings = local_stack.settings
    return [
        "--local",
        "--state-dir",
        str(settings.root),
        "--port-base",
        str(settings.ports.postgres),
        "--config-path",
        world.config_path,
    ]


def source_max(world: World) -> Any:
    with world.admin.cursor() as cur:
        cur.execute(sql.SQL("SELECT max(updated_at) FROM {}").format(sql.Identifier(world.schema, "orders")))
        return cur.fetchone()[0]


def test_status_shows_watermark_lag_and_the_last_execution(
    capsys: pytest.CaptureFixture[str], local_stack: Stack, world: World
) -> None:
    args = [*flags(local_stack, world), "--local-stack-name", world.stack_name]
    code, out, _ = run(capsys, "status", *args, "--json")
    assert code == 0
    document = json.loads(out)
    assert document["note"] is None
    assert document["state_machine_arn"].endswith(f":stateMachine:{world.stack_name}-sync")
    [execution] = document["executions"]
    assert (execution["name"], execution["status"]) == (world.execution, "SUCCEEDED")
    assert execution["tables"] == {"orders": "MERGED"}
    tables = {t["table"]: t for t in document["tables"]}
    orders = tables["orders"]
    assert orders["synced"] is True and orders["enabled"] is True
    assert datetime.fromisoformat(orders["watermark"]) == source_max(world)
    # FINAL matches the source as of the sync's snapshot, seconds ago: its lag is not the age of
    # the newest row (3,100 s), which says nothing about a table that is simply quiet.
    assert 0 <= orders["freshness_lag_seconds"] < 300
    assert (orders["last_outcome"], orders["last_execution"]) == ("MERGED", world.execution)
    assert tables["audit"] == {
        "table": "audit",
        "enabled": False,
        "mode": "cursor",
        "reconciles_next": False,
        "synced": False,
        "watermark": None,
        "freshness_lag_seconds": None,
        "error": None,
        "last_outcome": None,
        "last_execution": None,
        "last_started": None,
        "new_columns": [],
        "drift_statements": [],
    }
    code, out, _ = run(capsys, "status", *args)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "table",
        "enabled",
        "mode",
        "watermark",
        "lag",
        "next",
        "run",
        "last",
        "outcome",
        "in",
        "execution",
        "started",
    ]
    assert lines[1].split()[:4] == ["audit", "no", "cursor", "never"]
    row = lines[2].split()
    assert row[:4] == ["orders", "yes", "cursor", orders["watermark"]]
    assert row[5:7] == ["-", "MERGED"]
    assert lines[-1].startswith(f"  SUCCEEDED {world.execution}  started ") and lines[-1].endswith(
        "(orders MERGED)"
    )


def test_status_without_a_deployment_says_how_to_get_one(
    capsys: pytest.CaptureFixture[str], local_stack: Stack, world: World
) -> None:
    code, out, _ = run(capsys, "status", *flags(local_stack, world), "--local-stack-name", "nothing-here")
    assert code == 0
    assert out.splitlines()[-1] == (
        f"executions: the local stack under {local_stack.settings.root} has no state machine "
        "'nothing-here-sync' yet: `aurora-sync sync` deploys it (or pass --local-stack-name)"
    )


def test_parity_finds_final_equal_after_the_sync(
    capsys: pytest.CaptureFixture[str], local_stack: Stack, world: World
) -> None:
    code, out, _ = run(capsys, "parity", *flags(local_stack, world))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == [
        "table",
        "source",
        "rows",
        "FINAL",
        "rows",
        "missing",
        "extra",
        "different",
        "equal",
    ]
    assert lines[1].split() == ["orders", "50", "50", "0", "0", "0", "yes"]
    assert lines[-2:] == [
        "not compared (disabled; name them with --tables): audit",
        "parity: 1 table(s) equal",
    ]


def test_plan_counts_the_rows_each_window_holds(
    capsys: pytest.CaptureFixture[str], local_stack: Stack, world: World
) -> None:
    code, out, _ = run(capsys, "plan", *flags(local_stack, world), "--json")
    assert code == 0
    plans = {p["table"]: p for p in json.loads(out)["tables"]}
    assert plans["audit"]["state"] == "disabled"
    window = plans["orders"]["window"]
    watermark = window["watermark"]
    assert datetime.fromisoformat(watermark) == source_max(world)
    assert (window["lookback_seconds"], window["source"]) == (60, "final")
    # Rows are 10 s apart: the lookback re-reads ids 44..50 (id 44 sits exactly at MAX - 60 s, and
    # the window is inclusive: a row on the boundary is read again rather than lost).
    assert (plans["orders"]["waiting_rows"], plans["orders"]["chunks"]) == (7, 1)
    assert plans["orders"]["predicate"].startswith('"updated_at" >= (')

    with world.admin.cursor() as cur:
        cur.execute(
            sql.SQL("UPDATE {} SET note = 'changed', updated_at = now() WHERE id IN (1, 2, 3)").format(
                sql.Identifier(world.schema, "orders")
            )
        )
    code, out, _ = run(capsys, "plan", *flags(local_stack, world))
    assert code == 0
    lines = out.splitlines()
    orders = next(line for line in lines if line.startswith("orders"))
    assert orders.split()[-2:] == ["10", "1"]
    assert f">= {watermark} - 60s lookback (from last merged run)" in orders
    assert lines[-1] == "dry run: nothing was exported"

    code, out, _ = run(capsys, "plan", *flags(local_stack, world), "--tables", "orders", "--full", "--json")
    assert code == 0
    [full] = json.loads(out)["tables"]
    assert (full["window"]["source"], full["waiting_rows"], full["predicate"]) == ("full", 50, "TRUE")

    code, out, err = run(capsys, "plan", *flags(local_stack, world), "--tables", "audit")
    assert (code, out) == (1, "")
    assert err.startswith("aurora-sync: execution input: 'tables' names disabled table(s) \"audit\"")
    assert len(err.splitlines()) == 1


def test_parity_names_the_differing_and_missing_keys(
    capsys: pytest.CaptureFixture[str], local_stack: Stack, world: World
) -> None:
    final = world.setup.objects(world.targets["orders"]).final_table
    with world.admin.cursor() as cur:
        cur.execute(
            sql.SQL("UPDATE {} SET note = 'edited' WHERE id = 7").format(
                sql.Identifier(world.schema, "orders")
            )
        )
    world.warehouse.cursor().execute(f'DELETE FROM {final} WHERE "ID" = 9')
    world.warehouse.cursor().execute(
        f'INSERT INTO {final} ("ID", "NOTE", "UPDATED_AT") VALUES (99, \'ghost\', CURRENT_TIMESTAMP())'
    )
    code, out, _ = run(
        capsys, "parity", *flags(local_stack, world), "--tables", "orders", "--json", "--limit", "2"
    )
    assert code == 1
    [report] = json.loads(out)["tables"]
    assert report["equal"] is False and report["error"] is None
    assert (report["source_rows"], report["final_rows"]) == (50, 50)
    # ids 1-3 were changed by the plan test and not synced since; 7 edited here.
    assert report["counts"] == {"missing": 1, "extra": 1, "different": 4}
    assert (report["missing"], report["extra"], report["different"]) == (
        ['["9"]'],
        ['["99"]'],
        ['["1"]', '["2"]'],
    )

    code, out, _ = run(capsys, "parity", *flags(local_stack, world), "--tables", "orders", "--limit", "2")
    assert code == 1
    lines = out.splitlines()
    assert lines[1].split() == ["orders", "50", "50", "1", "1", "4", "NO"]
    assert lines[2:] == [
        'orders: missing (in the source, not in FINAL): key ["9"]',
        'orders: extra (in FINAL, not in the source): key ["99"]',
        'orders: different (values differ): key ["1"], ["2"] (and 2 more; --limit raises the 2 shown)',
        "parity: 1 of 1 table(s) differ or could not be compared: orders",
    ]


def test_parity_reports_a_table_it_cannot_compare(
    capsys: pytest.CaptureFixture[str], local_stack: Stack, world: World
) -> None:
    world.warehouse.cursor().execute(f"DROP TABLE {world.setup.objects(world.targets['audit']).final_table}")
    code, out, _ = run(capsys, "parity", *flags(local_stack, world), "--tables", "audit")
    assert code == 1
    lines = out.splitlines()
    assert lines[1].split() == ["audit", "-", "-", "-", "-", "-", "ERROR"]
    assert lines[2].startswith("audit: could not compare: ")
    assert lines[-1] == "parity: 1 of 1 table(s) differ or could not be compared: audit"


def test_parity_names_a_source_column_final_lacks_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stack: dict[str, Any],
    local_stack: Stack,
    world: World,
) -> None:
    # A column added at the source after the last sync: FINAL gets it only with the next run.
    with world.admin.cursor() as cur:
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN region text").format(sql.Identifier(world.schema, "orders"))
        )
    # Python prints an error raised while a generator is finalized (a source cursor closed after
    # its connection) as "Exception ignored in ..." plus a traceback: catch those here.
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    code, out, err = run(capsys, "parity", *flags(local_stack, world), "--tables", "orders,audit")
    gc.collect()
    assert [repr(u.exc_value) for u in unraisable] == []
    assert err == ""
    assert code == 1
    objects = {name: world.setup.objects(target).final_table for name, target in world.targets.items()}
    lines = out.splitlines()
    assert [line.split() for line in lines[1:3]] == [
        ["audit", "-", "-", "-", "-", "-", "ERROR"],
        ["orders", "-", "-", "-", "-", "-", "ERROR"],
    ]
    assert lines[3:] == [
        f"audit: could not compare: WarehouseObjectMissing: table 'audit': FINAL table {objects['audit']} "
        "does not exist. Fix: create the table's Snowflake objects: aurora-sync sql snowflake --tables "
        "audit --apply",
        f"orders: could not compare: WarehouseObjectMissing: table 'orders': FINAL table {objects['orders']} "
        f'has no column "REGION" (source column {world.schema}.orders.region). Fix: run aurora-sync sync '
        "--tables orders: its schema step adds the column to STAGING and FINAL and exports the table "
        "again in full",
        "parity: 2 of 2 table(s) differ or could not be compared: audit, orders",
    ]


def test_a_failed_comparison_leaves_the_source_session_as_it_was(stack: dict[str, Any], world: World) -> None:
    """An error while reading FINAL ends the source's streaming transaction at once: the same
    session compares the next table (it used to stay inside the transaction, so the next table
    failed with 'set_session cannot be used inside a transaction')."""
    source = psycopg2.connect(stack["postgres"]["admin_dsn"])
    source.autocommit = True
    try:
        with source.cursor() as cur:
            catalog = read_columns(cur, world.schema, "orders")
        spec = table_spec(
            name="orders",
            target=world.targets["orders"],
            catalog=catalog,
            schema=world.schema,
            table="orders",
            columns=None,
            primary_key=["id"],
            cursor="updated_at",
        )
        # The previous test added a source column FINAL lacks: the FINAL read fails.
        assert "region" in [c.name for c in catalog]
        with pytest.raises(snowflake.connector.errors.ProgrammingError) as info:
            compare(source, world.warehouse, world.setup, spec, schema=world.schema, table="orders")
        assert "REGION" in str(info.value)
        # Checked while the error (and its traceback) is still alive.
        assert source.autocommit is True
        assert source.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    finally:
        source.close()


def test_plan_fails_a_table_the_sync_role_cannot_read_naming_the_grant(
    capsys: pytest.CaptureFixture[str], stack: dict[str, Any], local_stack: Stack, world: World
) -> None:
    """plan counts with the admin (it must see tables before their grants exist), but reports what
    the sync role may read: the exporter runs as that role."""
    role = stack["postgres"]["user"]
    relation = sql.Identifier(world.schema, "orders")
    with world.admin.cursor() as cur:
        cur.execute(sql.SQL("REVOKE SELECT ON {} FROM {}").format(relation, sql.Identifier(role)))
    try:
        code, out, _ = run(capsys, "plan", *flags(local_stack, world), "--tables", "orders", "--json")
        assert code == 1
        [orders] = json.loads(out)["tables"]
        assert (orders["state"], orders["error"]) == ("failed", "SourcePermissionDenied")
        assert orders["reason"] == (
            f"table 'orders': the sync role {role} may not read {world.schema}.orders (no SELECT on "
            "column(s) id, note, updated_at, region); the exporter runs as that role. Fix: as the "
            f'table\'s owner, run: GRANT USAGE ON SCHEMA "{world.schema}" TO "{role}"; GRANT SELECT ON TABLE '
            f'"{world.schema}"."orders" TO "{role}"; (aurora-sync sql aurora --tables orders prints them)'
        )
    finally:
        with world.admin.cursor() as cur:
            cur.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(relation, sql.Identifier(role)))
    code, out, _ = run(capsys, "plan", *flags(local_stack, world), "--tables", "orders", "--json")
    assert code == 0
    assert json.loads(out)["tables"][0]["state"] == "planned"
