"""The product end to end on the local stack: the real state machine definition from template.yaml
runs in moto's Step Functions, calling the real handlers, which talk to PostgreSQL (aws_s3
emulation), S3, Vault, and the Snowflake emulator (Snowpipe, streams, MERGE tasks).

After every scenario FINAL must equal the source row by row (``aurora_sync_ops.parity``).
Retry and Wait sleeps run on a scaled clock; the durations the definition asked for are
recorded by the moto host.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from cli_run import rerun_command_in
from psycopg2 import sql
from world import World, entered, open_world

from aurora_sync_ops.local.wiring import connect_bucket_to_snowpipe, disconnect_bucket_from_snowpipe

# Config names are S3 prefixes, and a pipe (its REFRESH above all) loads every file under its
# prefix: plain ``orders`` would load the demo's and the library tests' ``orders/`` files, of
# another shape, into this world's STAGING. Unique per run, since a kept stack keeps its bucket.
TAG = uuid.uuid4().hex[:6]
CUSTOMERS, ORDERS, ORDER_ITEMS = f"shop_customers_{TAG}", f"shop_orders_{TAG}", f"shop_order_items_{TAG}"


@pytest.fixture(scope="module")
def world(stack: dict[str, Any]) -> Iterator[World]:
    tables: dict[str, tuple[str, dict[str, Any]]] = {
        CUSTOMERS: (
            "CREATE TABLE {schema}.customers (id bigint PRIMARY KEY, email text NOT NULL, name text, "
            "tier text, deleted_at timestamptz, updated_at timestamptz NOT NULL DEFAULT now())",
            {"table": "customers", "primary_key": ["id"], "soft_delete_column": "deleted_at"},
        ),
        ORDERS: (
            "CREATE TABLE {schema}.orders (id bigint PRIMARY KEY, customer_id bigint, total numeric(12,2), "
            "status text, payload jsonb, tags text[], updated_at timestamptz NOT NULL DEFAULT now())",
            {"table": "orders", "primary_key": ["id"]},
        ),
        ORDER_ITEMS: (
            'CREATE TABLE {schema}."Order Items" ("Line ID" integer PRIMARY KEY, "Order ID" bigint, '
            'qty integer, "Unit Price" numeric(10,2), updated_at timestamptz NOT NULL DEFAULT now())',
            {
                "table": "Order Items",
                "primary_key": ["Line ID"],
                "columns": ["Line ID", "Order ID", "qty", "Unit Price", "updated_at"],
                "max_rows_per_chunk": 1000,
            },
        ),
    }
    with open_world(stack, tables, prefix="shop") as world:
        for table in ("customers", "orders", "Order Items"):
            world.execute(f'CREATE INDEX ON {{schema}}."{table}" (updated_at)')
        world.execute(
            "INSERT INTO {schema}.customers (id, email, name, tier) "
            "SELECT i, 'c' || i || '@example.com', 'Customer ' || i, (ARRAY['free','pro',''])[1 + mod(i, 3)] "
            "FROM generate_series(1, 300) i"
        )
        world.execute(
            "INSERT INTO {schema}.orders (id, customer_id, total, status, payload, tags) "
            "SELECT i, 1 + mod(i, 300), i * 1.25, 'open', jsonb_build_object('n', i, 'gift', mod(i, 2) = 0), "
            "ARRAY['a', 'b,c'] FROM generate_series(1, 1000) i"
        )
        world.execute(
            'INSERT INTO {schema}."Order Items" ("Line ID", "Order ID", qty, "Unit Price") '
            "SELECT i, 1 + mod(i, 1000), 1 + mod(i, 5), 9.99 FROM generate_series(1, 2500) i"
        )
        world.apply()
        yield world


def test_backfill_then_incremental_changes_with_a_late_commit(world: World) -> None:
    # Backfill: every table from scratch; order items in 3 chunks of at most 1,000 rows.
    description, events = world.run()
    assert description["status"] == "SUCCEEDED", description
    assert entered(events)[-1] == "Synced"
    report = {t["table"]: t for t in world.verify_output(events)["tables"]}
    # One chunk (one file) per table, three for order items. The ExportChunk states entered are
    # not counted: a child short of time defers a table to the next round, an extra entry.
    assert {t: r["files"] for t, r in report.items()} == {
        t: 3 if t == ORDER_ITEMS else 1 for t in world.configs
    }
    assert {t: r["outcome"] for t, r in report.items()} == dict.fromkeys(world.configs, "MERGED")
    assert report[ORDER_ITEMS]["rows_exported"] == report[ORDER_ITEMS]["rows_loaded"] == 2500
    world.assert_parity()

    # Changes: inserts, updates, soft deletes, and a transaction that commits late with an old stamp.
    world.execute(
        "INSERT INTO {schema}.orders (id, customer_id, total, status) VALUES (1001, 7, 5.00, 'new')"
    )
    world.execute("UPDATE {schema}.orders SET status = 'paid', updated_at = now() WHERE id <= 20")
    world.execute("UPDATE {schema}.customers SET deleted_at = now(), updated_at = now() WHERE id IN (3, 4)")
    world.execute('UPDATE {schema}."Order Items" SET qty = 99, updated_at = now() WHERE "Line ID" = 7')
    late = psycopg2.connect(world.status["postgres"]["admin_dsn"])
    try:
        with late.cursor() as cur:
            cur.execute(
                sql.SQL("UPDATE {} SET tier = 'late', updated_at = now() WHERE id = 10").format(
                    sql.Identifier(world.schema, "customers")
                )
            )
        time.sleep(1.1)  # rows committed after this carry later stamps than the late one
        world.execute("UPDATE {schema}.customers SET name = 'after', updated_at = now() WHERE id = 11")
        description, _ = world.run()
        assert description["status"] == "SUCCEEDED", description
        late.commit()
    finally:
        late.close()
    description, events = world.run()
    assert description["status"] == "SUCCEEDED", description
    world.assert_parity()
    final = world.setup.objects(world.configs[CUSTOMERS]["target"]).final_table
    cur = world.warehouse.cursor()
    cur.execute(f'SELECT "TIER" FROM {final} WHERE "ID" = 10')
    assert cur.fetchone() == ("late",)


def test_terminal_failure_fails_only_its_table_and_the_rerun_input_fixes_it(world: World) -> None:
    world.execute("UPDATE {schema}.orders SET total = total + 1, updated_at = now() WHERE id = 1")
    world.execute('ALTER TABLE {schema}."Order Items" RENAME COLUMN qty TO quantity_tmp')
    try:
        description, events = world.run()
    finally:
        world.execute('ALTER TABLE {schema}."Order Items" RENAME COLUMN quantity_tmp TO qty')
    assert description["status"] == "FAILED"
    assert description["error"] == "TablesFailed"
    cause = description["cause"]
    assert f"{ORDER_ITEMS} (SourceObjectMissing" in cause and "'qty'" in cause
    assert f'{{"tables": ["{ORDER_ITEMS}"]}}' in cause
    # The exact command for this execution, as the CLI parses it (Redrive cannot rerun a table).
    assert rerun_command_in(cause).execution_arn == description["executionArn"]
    summary = world.verify_output(events)["summary"]
    assert summary["rerun_input"] == {"tables": [ORDER_ITEMS]}
    world.assert_parity(CUSTOMERS, ORDERS)  # the others merged

    description, events = world.run(summary["rerun_input"])
    assert description["status"] == "SUCCEEDED", description
    assert [item["table"] for item in world.planned_items(events)] == [ORDER_ITEMS]  # only it ran
    world.assert_parity()


def test_connection_killed_mid_export_is_retried_and_succeeds(world: World) -> None:
    world.execute(
        "UPDATE {schema}.orders SET status = 'shipped', updated_at = now() WHERE id BETWEEN 30 AND 60"
    )
    locker = psycopg2.connect(world.status["postgres"]["admin_dsn"])
    killed: list[int] = []

    def kill_first_waiting_exporter() -> None:
        deadline = time.monotonic() + 60
        # Autocommit and no `with conn:`: pg_stat_activity is a snapshot per transaction.
        watcher = psycopg2.connect(world.status["postgres"]["admin_dsn"])
        watcher.autocommit = True
        try:
            with watcher.cursor() as cur:
                while not killed and time.monotonic() < deadline:
                    cur.execute(
                        "SELECT pid FROM pg_stat_activity WHERE application_name = 'aurora-sync-exporter' "
                        "AND wait_event_type = 'Lock'"
                    )
                    row = cur.fetchone()
                    if row:
                        cur.execute("SELECT pg_terminate_backend(%s)", row)
                        killed.append(row[0])
                    time.sleep(0.05)
        finally:
            watcher.close()
            locker.rollback()  # release the table: the retry goes through

    try:
        with locker.cursor() as cur:
            cur.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                    sql.Identifier(world.schema, "orders")
                )
            )
        killer = threading.Thread(target=kill_first_waiting_exporter)
        killer.start()
        description, events = world.run({"tables": [ORDERS]})
        killer.join()
    finally:
        locker.close()
    assert killed, "the exporter never waited on the lock"
    assert description["status"] == "SUCCEEDED", description
    failures = [e["taskFailedEventDetails"] for e in events if "taskFailedEventDetails" in e]
    assert [f["error"] for f in failures] == ["SourceUnavailable"]
    world.assert_parity(ORDERS)


def test_lost_notification_is_healed_by_the_verifier(world: World) -> None:
    world.execute(
        "INSERT INTO {schema}.orders (id, customer_id, total, status) VALUES (2001, 1, 1.00, 'lost')"
    )
    disconnect_bucket_from_snowpipe(world.status)
    try:
        description, events = world.run({"tables": [ORDERS]})
    finally:
        connect_bucket_to_snowpipe(world.status)
    assert description["status"] == "SUCCEEDED", description
    (orders,) = world.verify_output(events)["tables"]
    assert orders["outcome"] == "MERGED" and orders["refreshed_at"] is not None
    world.assert_parity(ORDERS)


def test_overlapping_executions_second_one_skips(world: World) -> None:
    world.execute("UPDATE {schema}.orders SET status = 'again', updated_at = now() WHERE id = 5")
    first = world.engine.start(world.deployment, {}, name=f"first-{uuid.uuid4().hex[:6]}")
    time.sleep(0.5)
    second_description, second_events = world.run()
    first_description = next(
        e["description"]
        for e in world.engine.follow(first, timeout_s=240)
        if e.get("type") == "ExecutionDescription"
    )
    assert second_description["status"] == "SUCCEEDED" and entered(second_events)[-1] == "Skipped"
    assert first_description["status"] == "SUCCEEDED"
    world.assert_parity()


def test_no_secret_reaches_the_execution_history(world: World) -> None:
    description, events = world.run()
    assert description["status"] == "SUCCEEDED"
    history = json.dumps(events, default=str) + json.dumps(description, default=str)
    stack = world.status
    secrets = [
        stack["postgres"]["password"],
        stack["vault"]["root_token"],
        stack["aws"]["lambda_credentials"]["secret_access_key"],
        stack["aws"]["lambda_credentials"]["session_token"],
        stack["aws"]["secret_access_key"],
    ]
    for secret in secrets:
        assert secret not in history
    assert "PRIVATE KEY" not in history
