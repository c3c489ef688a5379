"""How the load benchmark and test read pgbench's summary (per script), without running pgbench;
the load under pgbench is tests/workflow/test_concurrent_load.py."""

from __future__ import annotations

import pytest
from load_bench import parse_pgbench


def test_pgbench_summary_is_read_per_script() -> None:
    output = (
        "number of transactions actually processed: 711\n"
        "number of failed transactions: 0 (0.000%)\n"
        "tps = 109.615753 (without initial connection time)\n"
        "SQL script 1: /repo/bench/pgbench/transfer.sql\n"
        " - weight: 300 (targets 99.7% of total)\n"
        " - 708 transactions (99.6% of total, tps = 109.153239)\n"
        "SQL script 2: /repo/bench/pgbench/late_commit.sql\n"
        " - weight: 1 (targets 0.3% of total)\n"
        " - 3 transactions (0.4% of total, tps = 0.462514)\n"
    )
    result = parse_pgbench(output)
    assert (result.transactions, result.failed, result.tps) == (711, 0, 109.615753)
    assert result.per_script == {"transfer.sql": 708, "late_commit.sql": 3}
    with pytest.raises(RuntimeError, match="no transaction summary"):
        parse_pgbench("pgbench: error: connection to server failed\n")
