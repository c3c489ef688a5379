"""`make demo` is the README's first command: it must pass, end to end, on the test stack too."""

from __future__ import annotations

import re
from typing import Any

import psycopg2
import snowflake.connector
from world import CLOCK_SCALE, read_clock, set_clock

from aurora_sync_ops.demo.run import run_demo, summary
from aurora_sync_ops.local.stack import Stack


def test_demo_syncs_the_shop_and_proves_parity(local_stack: Stack, stack: dict[str, Any]) -> None:
    lines: list[str] = []
    # The executions' Wait states on the suite's scaled clock (the demo itself runs at scale 1):
    # the state machine goes the same way, only each Wait/Verify round takes 0.1 s instead of 2 s.
    set_clock(stack, CLOCK_SCALE)
    try:
        result = run_demo(lines.append, local_stack.settings)
        clock = read_clock(stack)
    finally:
        set_clock(stack, 1)

    assert result.ok, "\n".join(lines[-40:])
    assert clock["scale"] == CLOCK_SCALE and {"kind": "wait", "seconds": 2} in clock["sleeps"], clock
    assert result.rows == 104_505
    assert [run.status for _, run, _ in result.runs] == ["SUCCEEDED"] * 3
    assert {p.table for p in result.parity if p.equal} == {
        "customers",
        "products",
        "orders",
        "order_items",
        "events",
        "countries",
        "wishlist",
    }
    # The late transaction's rows reached FINAL only through the third run's lookback.
    with snowflake.connector.connect(**stack["snowflake"]) as conn:
        cur = conn.cursor()
        cur.execute('SELECT COUNT(*) FROM "AURORA_SYNC"."FINAL"."ORDERS" WHERE "NOTES" LIKE \'paid late%\'')
        assert cur.fetchone() == (10,)
    second = {t.table: t for t in result.runs[1][1].tables}
    assert second["customers"].rows_exported == 210  # 200 inserted + 10 soft-deleted
    # Hard deletes, without a soft-delete column: reconciled from each table's key snapshot.
    deleted = {name: second[name].rows_deleted for name in ("orders", "order_items", "wishlist", "countries")}
    assert deleted == {"orders": 20, "order_items": 40, "wishlist": 40, "countries": 1}, deleted
    text = summary(result)
    assert "the demo passed: 104,505 source rows, 3 executions" in text
    # The 9 chunks ran in the export rounds' children: the parent's path names the rounds.
    assert re.search(r"Plan → ExportRound x\d+ → Wait/Verify x", text), text
    source = psycopg2.connect(stack["postgres"]["admin_dsn"])
    try:
        with source.cursor() as pg_cur:
            pg_cur.execute("SELECT count(*) FROM shop.customers WHERE deleted_at IS NOT NULL")
            assert pg_cur.fetchone() == (10,)  # soft-deleted at the source, absent from FINAL (parity above)
    finally:
        source.close()
