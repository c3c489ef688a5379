"""Syncs while PostgreSQL is under concurrent write load (pgbench) on shared hot rows.

pgbench runs ``bench/pgbench/transfer.sql`` (multi-statement write transactions) and
``bench/pgbench/late_commit.sql`` (a transaction that holds a hot row's lock for seconds, then
updates a second hot row with its old ``now()`` stamp) on eight clients, every client writing the
same hot rows most of the time, while the real state machine syncs the table back to back. Rows
are therefore committed in the opposite order to their ``updated_at`` on the same row, and some
sync meets it: FINAL's stamp of a hot row goes back, or a row's last version is stamped older than
one FINAL held. Every sync must succeed, and once the load ends one more sync must leave FINAL
equal to the source row by row: the MERGE orders versions by source snapshot, not by stamp.
``bench/load_bench.py`` is the same scenario with a longer load and a printed report.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from load_bench import (
    ACCOUNTS_TABLES,
    LoadSpec,
    fill_accounts,
    sync_once,
    syncs_under_load,
)
from world import World, open_world

ACCOUNTS = 4000
LOAD = LoadSpec(seconds=20, rate=150, accounts=ACCOUNTS)


@pytest.fixture(scope="module")
def world(stack: dict[str, Any]) -> Iterator[World]:
    with open_world(stack, ACCOUNTS_TABLES, prefix="load") as world:
        fill_accounts(world, ACCOUNTS)
        world.apply()
        backfill = sync_once(world)
        assert backfill.status == "SUCCEEDED", backfill.error
        assert backfill.rows_exported == backfill.rows_changed == ACCOUNTS
        yield world


def test_syncs_during_pgbench_load_succeed_and_the_final_sync_reaches_parity(world: World) -> None:
    report = syncs_under_load(world, LOAD, interval=2.0)

    bench = report.pgbench
    assert bench.failed == 0
    assert set(bench.per_script) == {"transfer.sql", "late_commit.sql"}
    assert bench.per_script["transfer.sql"] > 1000, bench
    assert bench.per_script["late_commit.sql"] >= 3, bench
    # Each transfer upserts one of 100,000 new ids besides the row it updates.
    assert report.rows_touched > bench.per_script["transfer.sql"]

    during = report.syncs
    # Two syncs under load are what matters: the second starts from a watermark the first took
    # while late commits were open. How many more fit the 20 s depends on the machine (3 on a
    # quiet CI machine, 2 beside a benchmark), so more are not asserted.
    assert len(during) >= 2, during
    assert [s.status for s in during] == ["SUCCEEDED"] * len(during), [s.error for s in during]
    # The adversarial part really happened: some sync started while a late commit was pending,
    # and some sync met a row committed in the opposite order to its stamps.
    assert any(s.late_open_at_start > 0 for s in during), during
    # Inversions at the source are certain with these settings (dozens per run); whether one also
    # reaches a sync before a later transfer overwrites it is chance (0-8 per run), so that count
    # is reported by bench/load_bench.py rather than asserted.
    assert report.hot_rows.at_source > 0, report.hot_rows
    # With the lookback's re-reads every sync loads at least every account. Whether a given sync
    # also changes rows depends on timing: a sync of 1.5 s can fall entirely inside a late
    # commit's lock linger, while every client waits, and then rightly changes nothing. The syncs
    # together must change rows.
    assert all(
        s.rows_changed is not None and s.rows_changed + (s.rows_unchanged or 0) >= ACCOUNTS for s in during
    ), during
    assert sum(s.rows_changed or 0 for s in during) > 0, during
    assert all(s.freshness_lag_seconds is not None and s.freshness_lag_seconds < 60 for s in during), during

    assert report.final is not None and report.final.status == "SUCCEEDED", report.final
    assert report.parity["equal"], report.parity
    assert report.parity["source_rows"] == report.parity["final_rows"] > ACCOUNTS
