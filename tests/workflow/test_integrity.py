"""FINAL equals the source, or the table fails loudly: the ways a sync can lose or corrupt rows
while reporting success, each reproduced end to end on the local stack with row-by-row parity.

Each test names the case of issue 10 it covers. Every one of them failed before the export ledger,
snapshot-ordered MERGE and horizon-based windows (see ``aurora_sync.source_snapshot``):
  * commit order: a transaction that commits after a later-started one, with an older ``now()``
    stamp, was rejected by a cursor-ordered MERGE forever;
  * a far-future cursor value became the watermark and hid every later row;
  * an integer (sequence) cursor moved past a value an open transaction still held;
  * a date cursor's lookback vanished at midnight;
  * one row with a NULL key failed every MERGE and wedged the stream;
  * a stray object or a replayed copy of an old export under a table's prefix was merged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from world import World, admin_client, open_world


@pytest.fixture(scope="module")
def world(stack: dict[str, Any]) -> Iterator[World]:
    """Config names are unique in the suite: they are the S3 prefix of every world's bucket."""
    tables: dict[str, tuple[str, dict[str, Any]]] = {
        "integ_hot": (
            "CREATE TABLE {schema}.hot (id bigint PRIMARY KEY, v text, deleted_at timestamptz, "
            "updated_at timestamptz NOT NULL DEFAULT now())",
            {"table": "hot", "primary_key": ["id"], "soft_delete_column": "deleted_at"},
        ),
        "integ_strays": (
            "CREATE TABLE {schema}.strays (id bigint PRIMARY KEY, v text, deleted_at timestamptz, "
            "updated_at timestamptz NOT NULL DEFAULT now())",
            {"table": "strays", "primary_key": ["id"], "soft_delete_column": "deleted_at"},
        ),
        "integ_versioned": (
            "CREATE SEQUENCE {schema}.ver_seq; "
            "CREATE TABLE {schema}.versioned (id bigint PRIMARY KEY, v text, "
            "ver bigint NOT NULL DEFAULT nextval('{schema}.ver_seq'))",
            {"table": "versioned", "primary_key": ["id"], "cursor": "ver"},
        ),
        "integ_daily": (
            "CREATE TABLE {schema}.daily (id bigint PRIMARY KEY, v text, day date NOT NULL)",
            {"table": "daily", "primary_key": ["id"], "cursor": "day", "lookback_seconds": 900},
        ),
        "integ_nokey": (
            # No key constraint: nothing stops a NULL in the configured key, or an unconstrained
            # numeric with more decimals than Snowflake's NUMBER(38,9) holds.
            "CREATE TABLE {schema}.nokey (id numeric, v text, updated_at timestamptz NOT NULL DEFAULT now())",
            {"table": "nokey", "primary_key": ["id"]},
        ),
    }
    with open_world(stack, tables, prefix="integ") as world:
        world.execute("INSERT INTO {schema}.hot (id, v) SELECT i, 'v' || i FROM generate_series(1, 20) i")
        world.execute("INSERT INTO {schema}.strays (id, v) SELECT i, 'v' || i FROM generate_series(1, 20) i")
        world.execute(
            "INSERT INTO {schema}.versioned (id, v) SELECT i, 'v' || i FROM generate_series(1, 5) i"
        )
        world.execute(
            "INSERT INTO {schema}.daily (id, v, day) SELECT i, 'v' || i, current_date - (i % 3) "
            "FROM generate_series(1, 9) i"
        )
        world.execute("INSERT INTO {schema}.nokey (id, v) SELECT i, 'v' || i FROM generate_series(1, 5) i")
        world.apply()
        description, _ = world.run()
        assert description["status"] == "SUCCEEDED", description
        world.assert_parity()
        yield world


def session(world: World) -> Any:
    conn = psycopg2.connect(world.status["postgres"]["admin_dsn"])
    with conn.cursor() as cur:
        cur.execute(f'SET search_path TO "{world.schema}"')
    conn.commit()
    return conn


def succeeded(world: World, tables: list[str]) -> dict[str, dict[str, Any]]:
    """A run of ``tables`` that must succeed, and read an incremental window (a full export
    would hide a wrong window start)."""
    description, events = world.run({"tables": tables})
    assert description["status"] == "SUCCEEDED", description
    windows = {item["table"]: item.get("window", {}) for item in world.planned_items(events)}
    # The plan leaves defaults out: source "final" is one.
    assert all(w.get("source", "final") == "final" and w.get("watermark") for w in windows.values()), windows
    return {t["table"]: t for t in world.verify_output(events)["tables"]}


def final_rows(world: World, name: str, where: str = "TRUE") -> list[tuple[Any, ...]]:
    final = world.setup.objects(world.configs[name]["target"]).final_table
    cur = world.warehouse.cursor()
    cur.execute(f'SELECT "ID", "V" FROM {final} WHERE {where} ORDER BY "ID"')
    return list(cur.fetchall())


def test_commit_order_inversion_keeps_the_version_committed_last(world: World) -> None:
    """Case 1: A starts; B starts later, updates the row and commits; a sync copies B's version;
    A then updates the row, stamped with its earlier now(), and commits. FINAL must hold A's."""
    a, b = session(world), session(world)
    try:
        with a.cursor() as cur:
            cur.execute("SELECT now()")  # A's transaction (and its now()) starts here
        time.sleep(1.1)
        with b.cursor() as cur:
            cur.execute("UPDATE hot SET v = 'B', updated_at = now() WHERE id = 1 RETURNING updated_at")
            stamps_b = cur.fetchone()[0]
        b.commit()
        succeeded(world, ["integ_hot"])
        assert final_rows(world, "integ_hot", '"ID" = 1') == [(1, "B")]
        with a.cursor() as cur:
            cur.execute("UPDATE hot SET v = 'A', updated_at = now() WHERE id = 1 RETURNING updated_at")
            stamped_a = cur.fetchone()[0]
        a.commit()
        assert stamped_a < stamps_b  # A's version carries the older cursor, yet committed last
    finally:
        a.close()
        b.close()
    succeeded(world, ["integ_hot"])
    assert final_rows(world, "integ_hot", '"ID" = 1') == [(1, "A")]
    world.assert_parity("integ_hot")


def test_a_far_future_cursor_does_not_hide_later_rows_and_the_lag_stays_honest(world: World) -> None:
    """Case 3: one row stamped 2099 used to become the watermark; every later change was then
    NOTHING_TO_DO and the freshness lag went negative."""
    world.execute("UPDATE {schema}.hot SET v = 'future', updated_at = '2099-01-01' WHERE id = 2")
    report = succeeded(world, ["integ_hot"])["integ_hot"]
    assert 0 <= report["freshness_lag_seconds"] < 600
    world.execute("INSERT INTO {schema}.hot (id, v) VALUES (100, 'after the future row')")
    world.execute("UPDATE {schema}.hot SET v = 'changed', updated_at = now() WHERE id = 3")
    description, events = world.run({"tables": ["integ_hot"]})
    assert description["status"] == "SUCCEEDED", description
    (report,) = world.verify_output(events)["tables"]
    assert report["outcome"] == "MERGED" and 0 <= report["freshness_lag_seconds"] < 600
    exported = [e["taskSucceededEventDetails"]["output"] for e in events if "taskSucceededEventDetails" in e]
    assert any("beyond the source clock" in output for output in exported), "no warning of the 2099 row"
    world.assert_parity("integ_hot")


def test_an_integer_cursor_keeps_a_value_an_open_transaction_held(world: World) -> None:
    """Case 4: A takes ver 6 and stays open; B takes ver 7 and commits; a sync sees 7; A commits.
    The next window must still reach 6."""
    a = session(world)
    try:
        with a.cursor() as cur:
            cur.execute("INSERT INTO versioned (id, v) VALUES (100, 'held open') RETURNING ver")
            held = cur.fetchone()[0]
        world.execute("INSERT INTO {schema}.versioned (id, v) VALUES (101, 'committed first')")
        succeeded(world, ["integ_versioned"])
        a.commit()
    finally:
        a.close()
    succeeded(world, ["integ_versioned"])
    world.assert_parity("integ_versioned")
    final = world.setup.objects(world.configs["integ_versioned"]["target"]).final_table
    cur = world.warehouse.cursor()
    cur.execute(f'SELECT "VER" FROM {final} WHERE "ID" = 100')
    assert cur.fetchone() == (held,)


def test_a_date_cursor_lookback_reaches_back_across_midnight(world: World) -> None:
    """Case 5: with the watermark today, `day > (today - 900 s)::date` became `> yesterday`: a
    late commit stamped yesterday was lost."""
    world.execute("INSERT INTO {schema}.daily (id, v, day) VALUES (50, 'today', current_date)")
    succeeded(world, ["integ_daily"])
    world.execute("INSERT INTO {schema}.daily (id, v, day) VALUES (51, 'late, yesterday', current_date - 1)")
    succeeded(world, ["integ_daily"])
    world.assert_parity("integ_daily")


def test_rows_with_unmergeable_keys_are_quarantined_and_reported_not_wedging_the_table(world: World) -> None:
    """Case 6: a NULL key (no key constraint), or a key value the type map cannot hold, failed
    every MERGE and wedged the stream; after fixing the source, reruns and --full still failed."""
    world.execute("INSERT INTO {schema}.nokey (id, v) VALUES (NULL, 'no key'), (0.1234567891, 'too precise')")
    world.execute("UPDATE {schema}.nokey SET v = 'changed', updated_at = now() WHERE id = 2")
    description, events = world.run({"tables": ["integ_nokey"]})
    assert description["status"] == "FAILED"
    (report,) = world.verify_output(events)["tables"]
    assert report["error"] == "RowsQuarantined" and report["quarantined"] == 2, report
    assert "id=NULL" in report["reason"] or "id='0.1234567891'" in report["reason"], report["reason"]
    assert '{"tables": ["integ_nokey"]}' in description["cause"]
    assert (2, "changed") in final_rows(world, "integ_nokey")  # the other rows still merged

    world.execute("UPDATE {schema}.nokey SET id = 6, updated_at = now() WHERE id IS NULL")
    world.execute("UPDATE {schema}.nokey SET id = 7, updated_at = now() WHERE id = 0.1234567891")
    succeeded(world, ["integ_nokey"])
    world.assert_parity("integ_nokey")


def _exported_objects(world: World, name: str) -> list[str]:
    s3 = admin_client(world.status, "s3")
    listing = s3.list_objects_v2(Bucket=world.status["aws"]["bucket"], Prefix=f"{name}/")
    return sorted(o["Key"] for o in listing.get("Contents", []))


def _wait_loaded(world: World, name: str, key: str) -> None:
    staging = world.setup.objects(world.configs[name]["target"]).staging_table
    cur = world.warehouse.cursor()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        cur.execute(f'SELECT COUNT(*) FROM {staging} WHERE "_AURORA_SYNC_FILE" = %s', (key,))
        if cur.fetchone()[0]:
            return
        time.sleep(0.2)
    raise AssertionError(f"{key} was never loaded by the pipe")


def test_stray_and_replayed_files_are_never_merged(world: World) -> None:
    """Case 7: a well-formed object put under the table's prefix was merged (rows_changed 7 against
    rows_loaded 6, and its cursor of 2099 then hid later rows), and a copy of an old export
    replayed after a soft delete brought the deleted row back."""
    s3 = admin_client(world.status, "s3")
    bucket = world.status["aws"]["bucket"]
    first_export = _exported_objects(world, "integ_strays")[0]
    old_body = s3.get_object(Bucket=bucket, Key=first_export)["Body"].read()

    # A soft delete of row 4, synced: FINAL drops it.
    world.execute("UPDATE {schema}.strays SET deleted_at = now(), updated_at = now() WHERE id = 4")
    succeeded(world, ["integ_strays"])
    assert final_rows(world, "integ_strays", '"ID" = 4') == []

    # The old export (it holds row 4 alive) replayed under a new name, and a stray file with a
    # phantom row stamped 2099: both load into STAGING.
    line = next(row for row in old_body.decode().splitlines() if row.startswith("5,"))
    phantom = ("999," + line.split(",", 1)[1]).replace(line.split(",")[-2], "2099-01-01T00:00:00.000000Z")
    replay, stray = "integ_strays/2020/01/01/00/replayed.csv", "integ_strays/2020/01/01/00/stray.csv"
    s3.put_object(Bucket=bucket, Key=replay, Body=old_body)
    s3.put_object(Bucket=bucket, Key=stray, Body=(phantom + "\n").encode())
    _wait_loaded(world, "integ_strays", replay)
    _wait_loaded(world, "integ_strays", stray)

    world.execute("UPDATE {schema}.strays SET v = 'after the strays', updated_at = now() WHERE id = 6")
    report = succeeded(world, ["integ_strays"])["integ_strays"]
    assert report["rows_changed"] <= report["rows_loaded"], report
    assert final_rows(world, "integ_strays", '"ID" IN (4, 999)') == []
    world.assert_parity("integ_strays")
