"""The exporter without a server: the order its object names carry, and the refusal of a reader
endpoint. Its sample work item is in tests/unit/test_messages.py; the exports themselves are
tests/library/test_exporter.py."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest

from aurora_sync.errors import (
    ConfigError,
)


def test_object_names_carry_the_snapshot_order() -> None:
    from datetime import UTC, datetime, timedelta

    from aurora_sync.exporting.export import object_key, time_ordered_uuid
    from aurora_sync.source_snapshot import order_of_key, snapshot_order

    start = datetime(2026, 11, 26, 3, 59, 59, 998000, tzinfo=UTC)
    orders = [snapshot_order(2**63 + i, 3) for i in range(5)]  # epoch-aware 64-bit xids
    keys = [object_key("orders", start + timedelta(milliseconds=i), orders[i]) for i in range(5)]
    assert [order_of_key(k) for k in keys] == orders
    assert [order_of_key(k + "_part3") for k in keys] == orders  # aws_s3's split parts
    assert order_of_key("orders/2026/11/26/03/stray.csv") is None
    assert keys[0].startswith("orders/2026/11/26/03/") and keys[-1].startswith("orders/2026/11/26/04/")
    # Fewer in-progress transactions at one xmax means a later snapshot.
    assert snapshot_order(100, 2) < snapshot_order(100, 1) < snapshot_order(101, 50)
    generated = time_ordered_uuid(start)
    assert (generated.version, generated.variant) == (7, uuid.RFC_4122)


def test_a_reader_endpoint_is_refused_naming_the_writer() -> None:
    """A replica's pg_stat_activity does not list the writer's transactions: the horizon read
    there would miss exactly the ones that commit late."""
    from aurora_sync.source_snapshot import read_horizon

    class ReplicaCursor:
        def execute(self, statement: str, params: Any = None) -> None:
            assert "pg_is_in_recovery()" in statement

        def fetchone(self) -> tuple[bool, datetime, None]:
            return True, datetime(2026, 1, 1), None

    with pytest.raises(ConfigError, match="writer") as error:
        read_horizon(ReplicaCursor())
    assert "cluster (writer) endpoint" in str(error.value)
