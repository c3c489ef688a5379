"""Tables as they are (issue 11): modes xmin and full, and hard deletes without a soft-delete
column, end to end through the real state machine with row-by-row parity.

Each case is written against what would make FINAL differ from the source while the run reports
success: a row written in a subtransaction of a transaction that was open when the previous run
took its snapshot, a tuple frozen by VACUUM before the next run, a hard delete on a composite key,
a row deleted and inserted again, a row a cursor can never reach (back-dated), and a
reconciliation that is not due yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from world import World, open_world

TABLES: dict[str, tuple[str, dict[str, Any]]] = {
    # A lookup table without any timestamp: xmin mode.
    "modes_lookup": (
        "CREATE TABLE {schema}.lookup (code text PRIMARY KEY, label text NOT NULL, rank integer)",
        {"table": "lookup", "primary_key": ["code"], "mode": "xmin"},
    ),
    # A join table with a composite key and hard deletes: xmin mode, reconciled every run.
    "modes_members": (
        "CREATE TABLE {schema}.members (group_id integer, user_name text, role text, "
        "PRIMARY KEY (group_id, user_name))",
        {
            "table": "members",
            "primary_key": ["group_id", "user_name"],
            "mode": "xmin",
            "hard_deletes": "reconcile",
        },
    ),
    # A small table refreshed in full every run.
    "modes_country": (
        "CREATE TABLE {schema}.country (iso char(2) PRIMARY KEY, name text NOT NULL)",
        {"table": "country", "primary_key": ["iso"], "mode": "full"},
    ),
    # A cursor table whose application deletes rows outright.
    "modes_orders": (
        "CREATE TABLE {schema}.orders (tenant integer, id bigint, total numeric(12,2), "
        "updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tenant, id))",
        {"table": "orders", "primary_key": ["tenant", "id"], "hard_deletes": "reconcile"},
    ),
    # Reconciled every second merged run only.
    "modes_sparse": (
        "CREATE TABLE {schema}.sparse (id bigint PRIMARY KEY, v text, updated_at timestamptz NOT NULL "
        "DEFAULT now())",
        {"table": "sparse", "primary_key": ["id"], "hard_deletes": "reconcile", "reconcile_every": 2},
    ),
}
ALL = list(TABLES)


@pytest.fixture(scope="module")
def world(stack: dict[str, Any]) -> Iterator[World]:
    with open_world(stack, TABLES, prefix="modes") as world:
        world.execute(
            "INSERT INTO {schema}.lookup SELECT 'c' || i, 'label ' || i, i FROM generate_series(1, 30) i"
        )
        world.execute(
            "INSERT INTO {schema}.members SELECT g, 'user' || u, 'member' "
            "FROM generate_series(1, 4) g, generate_series(1, 5) u"
        )
        world.execute(
            "INSERT INTO {schema}.country VALUES ('DE', 'Germany'), ('FR', 'France'), ('IT', 'Italy')"
        )
        world.execute(
            "INSERT INTO {schema}.orders (tenant, id, total) "
            "SELECT i % 3, i, i * 1.5 FROM generate_series(1, 30) i"
        )
        world.execute("INSERT INTO {schema}.sparse (id, v) SELECT i, 'v' || i FROM generate_series(1, 10) i")
        world.apply()
        first = run(world, ALL)
        assert set(first) == set(ALL)
        world.assert_parity()
        yield world


def session(world: World) -> Any:
    conn = psycopg2.connect(world.status["postgres"]["admin_dsn"])
    with conn.cursor() as cur:
        cur.execute(f'SET search_path TO "{world.schema}"')
    conn.commit()
    return conn


def run(world: World, tables: list[str]) -> dict[str, dict[str, Any]]:
    description, events = world.run({"tables": tables})
    assert description["status"] == "SUCCEEDED", description.get("cause") or description.get("error")
    return {t["table"]: t for t in world.verify_output(events)["tables"]}


def items(world: World, tables: list[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A run that must succeed: (work items by table, verdicts by table, the description)."""
    description, events = world.run({"tables": tables})
    planned = {item["table"]: item for item in world.planned_items(events)}
    verdicts = (
        {t["table"]: t for t in world.verify_output(events)["tables"]}
        if description["status"] == "SUCCEEDED"
        else {}
    )
    return planned, verdicts, description


# --- xmin -------------------------------------------------------------------------------------------
def test_xmin_mode_reads_only_rows_written_since_the_last_merged_snapshot(world: World) -> None:
    world.execute("UPDATE {schema}.lookup SET label = 'changed' WHERE code IN ('c1', 'c2')")
    world.execute("INSERT INTO {schema}.lookup VALUES ('new', 'new label', 99)")

    planned, verdicts, description = items(world, ["modes_lookup"])

    assert description["status"] == "SUCCEEDED", description
    window = planned["modes_lookup"]["window"]
    assert window.get("source", "final") == "final" and window["watermark"].isdigit(), window
    # The two updated rows and the new one, not the 28 others (a few more only if another
    # transaction was in progress at the last snapshot).
    assert 3 <= verdicts["modes_lookup"]["rows_exported"] < 10, verdicts["modes_lookup"]
    world.assert_parity("modes_lookup")


def test_xmin_mode_reads_a_subtransaction_of_a_transaction_open_at_the_last_snapshot(world: World) -> None:
    """T holds an xid while a run takes its snapshot; then T writes in a SAVEPOINT (a subxid, which
    no snapshot's list of running transactions names) and commits. The next run must read it."""
    t = session(world)
    try:
        with t.cursor() as cur:
            cur.execute("UPDATE lookup SET rank = rank WHERE code = 'c10'")  # T gets its xid now
        run(world, ["modes_lookup"])
        with t.cursor() as cur:
            cur.execute("SAVEPOINT inner_write")
            cur.execute("UPDATE lookup SET label = 'from a subtransaction' WHERE code = 'c20'")
            cur.execute("INSERT INTO lookup VALUES ('sub', 'inserted in a subtransaction', 7)")
            cur.execute("RELEASE SAVEPOINT inner_write")
        t.commit()
    finally:
        t.close()

    run(world, ["modes_lookup"])

    world.assert_parity("modes_lookup")


def test_xmin_mode_reads_a_row_frozen_by_vacuum_before_the_next_run(world: World) -> None:
    world.execute("UPDATE {schema}.lookup SET label = 'frozen soon' WHERE code = 'c5'")
    conn = psycopg2.connect(world.status["postgres"]["admin_dsn"])
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'VACUUM (FREEZE) "{world.schema}".lookup')
    finally:
        conn.close()

    run(world, ["modes_lookup"])

    world.assert_parity("modes_lookup")


def test_hard_deletes_on_a_composite_key_reach_final_and_a_reinserted_row_stays(world: World) -> None:
    world.execute("DELETE FROM {schema}.members WHERE group_id = 2 AND user_name IN ('user1', 'user3')")
    world.execute("DELETE FROM {schema}.members WHERE group_id = 4")
    # Deleted and inserted again between two runs: the same key, a new row version.
    world.execute("DELETE FROM {schema}.members WHERE group_id = 1 AND user_name = 'user2'")
    world.execute("INSERT INTO {schema}.members VALUES (1, 'user2', 'returned')")

    planned, verdicts, description = items(world, ["modes_members"])

    assert description["status"] == "SUCCEEDED", description
    assert planned["modes_members"].get("reconcile") is True
    assert verdicts["modes_members"]["rows_deleted"] == 7, verdicts["modes_members"]
    world.assert_parity("modes_members")


# --- full -------------------------------------------------------------------------------------------
def test_full_mode_makes_final_equal_the_snapshot_deleted_rows_included(world: World) -> None:
    world.execute("DELETE FROM {schema}.country WHERE iso = 'FR'")
    world.execute("UPDATE {schema}.country SET name = 'Italia' WHERE iso = 'IT'")
    world.execute("INSERT INTO {schema}.country VALUES ('ES', 'Spain')")

    planned, verdicts, description = items(world, ["modes_country"])

    assert description["status"] == "SUCCEEDED", description
    assert planned["modes_country"]["mode"] == "full"
    assert planned["modes_country"].get("window", {}).get("source", "final") == "full"
    assert verdicts["modes_country"]["rows_exported"] == 3
    assert verdicts["modes_country"]["rows_deleted"] == 1
    world.assert_parity("modes_country")


# --- cursor with hard deletes --------------------------------------------------------------------------
def test_cursor_mode_reconciles_hard_deletes_and_keeps_rows_written_after_the_key_snapshot(
    world: World,
) -> None:
    world.execute("DELETE FROM {schema}.orders WHERE id IN (3, 4, 5)")
    world.execute("UPDATE {schema}.orders SET total = 0, updated_at = now() WHERE id = 6")

    verdicts = run(world, ["modes_orders"])

    assert verdicts["modes_orders"]["rows_deleted"] == 3
    world.assert_parity("modes_orders")


def test_a_row_no_cursor_window_reaches_fails_the_table_loudly(world: World) -> None:
    """A row inserted with a back-dated cursor is behind every window: a cursor sync would report
    success without it forever. The key snapshot shows FINAL lacks it, and the table fails."""
    world.execute(
        "INSERT INTO {schema}.orders (tenant, id, total, updated_at) VALUES (9, 900, 1, '2001-01-01')"
    )

    _, _, description = items(world, ["modes_orders"])

    assert description["status"] == "FAILED"
    cause = description.get("cause", "")
    assert "RowsMissing" in cause and "modes_orders" in cause, cause
    assert '"full_resync": true' in cause, cause
    # The fix the message names heals it.
    description, _ = world.run(
        {"tables": ["modes_orders"], "overrides": {"modes_orders": {"full_resync": True}}}
    )
    assert description["status"] == "SUCCEEDED", description
    world.assert_parity("modes_orders")


def test_reconcile_every_second_run_removes_deleted_rows_on_the_due_run(world: World) -> None:
    world.execute("DELETE FROM {schema}.sparse WHERE id IN (1, 2)")
    first, first_verdicts, _ = items(world, ["modes_sparse"])
    second, second_verdicts, _ = items(world, ["modes_sparse"])

    reconciled = [
        first["modes_sparse"].get("reconcile", False),
        second["modes_sparse"].get("reconcile", False),
    ]
    # Exactly one of two consecutive runs reconciles, and after it the deletes are in FINAL.
    assert sorted(reconciled) == [False, True], reconciled
    deleted = [
        first_verdicts["modes_sparse"].get("rows_deleted") or 0,
        second_verdicts["modes_sparse"].get("rows_deleted") or 0,
    ]
    assert sum(deleted) == 2, deleted
    world.assert_parity("modes_sparse")
