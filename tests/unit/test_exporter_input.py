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


def _work_item(max_rows: int = 400_000) -> Any:
    import json
    from pathlib import Path

    from aurora_sync.messages import parse_work_item

    event = json.loads((Path(__file__).resolve().parents[2] / "events" / "exporter.json").read_text())
    event["max_rows_per_chunk"] = max_rows
    return parse_work_item(event)


STATEMENT_TIMEOUT = "PostgreSQL error 57014 (query_canceled): canceling statement due to statement timeout."
LOCK_TIMEOUT = "PostgreSQL error 55P03 (lock_not_available): canceling statement due to lock timeout."


def test_a_chunk_that_used_the_whole_budget_is_not_retried_and_names_the_setting() -> None:
    # The retry would read the same keyset chunk under the same statement_timeout (a fresh
    # Lambda's 900 s less the 15 s margin): it would time out again after as long.
    from aurora_sync.errors import TERMINAL_ERROR_NAMES, SourceChunkTimeout, SourceTimeout
    from aurora_sync.exporting.export import chunk_timeout

    item = _work_item()
    decided = chunk_timeout(SourceTimeout(STATEMENT_TIMEOUT), item, 885_000)
    assert isinstance(decided, SourceChunkTimeout) and not decided.transient
    assert "SourceChunkTimeout" in TERMINAL_ERROR_NAMES  # the ASL's Retry lists never name it
    message = str(decided)
    assert f"table {item.table} ({item.source.schema_name}.{item.source.table})" in message
    assert "up to 400000 rows" in message and "statement timeout of 885 s" in message
    assert f"set max_rows_per_chunk in the table config of {item.table} below 400000 (e.g. 100000" in message
    assert f'{{"tables": ["{item.table}"]}}' in message


@pytest.mark.parametrize(
    ("message", "budget_ms"),
    [
        (LOCK_TIMEOUT, 885_000),  # a lock wait: it may be gone on the retry (30 s each)
        (STATEMENT_TIMEOUT, 5_000),  # shorter than lock_timeout: a lock wait may have ended it
        (STATEMENT_TIMEOUT, None),  # budget unknown (not called by the handler)
        ("PostgreSQL error 57014 (query_canceled): canceling statement due to user request.", 885_000),
    ],
)
def test_other_source_timeouts_stay_transient(message: str, budget_ms: int | None) -> None:
    from aurora_sync.errors import SourceTimeout
    from aurora_sync.exporting.export import chunk_timeout

    error = SourceTimeout(message)
    assert chunk_timeout(error, _work_item(), budget_ms) is error


class _Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_inside_an_export_child_the_statement_timeout_stays_within_the_childs_time() -> None:
    from datetime import UTC, timedelta

    from aurora_sync.exporting.rounds import child_deadline
    from exporter.app import MIN_STATEMENT_TIMEOUT_MS, SAFETY_MARGIN_MS, statement_timeout_ms

    started = datetime(2026, 12, 3, 5, 0, tzinfo=UTC)
    deadline = child_deadline(started, 270)
    assert deadline == started + timedelta(seconds=270)
    lambda_left = _Context(remaining_ms=900_000)  # the exporter's 15-minute timeout
    # Outside a child (today's INLINE Map, scripts): the Lambda's time decides.
    assert statement_timeout_ms(lambda_left) == 900_000 - SAFETY_MARGIN_MS
    # 60 s into the child: what is left of the child's 270 s, not of the Lambda's 900 s.
    now = started + timedelta(seconds=60)
    assert statement_timeout_ms(lambda_left, deadline, now) == 210_000 - SAFETY_MARGIN_MS
    # The Lambda's own time still wins when it is shorter.
    assert statement_timeout_ms(_Context(remaining_ms=100_000), deadline, now) == 100_000 - SAFETY_MARGIN_MS
    # Past the deadline: the floor, never a negative timeout.
    assert (
        statement_timeout_ms(lambda_left, deadline, deadline + timedelta(seconds=1))
        == MIN_STATEMENT_TIMEOUT_MS
    )


def test_the_exporter_reads_an_export_request_or_a_bare_work_item() -> None:
    from aurora_sync.messages import ExportRequest, WorkItem, parse_export_request

    item = _work_item()
    document = item.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    assert parse_export_request(document) == item
    request = parse_export_request({"item": document, "child_started_at": "2026-12-03T05:00:00.123Z"})
    assert isinstance(request, ExportRequest) and request.item == item
    assert isinstance(parse_export_request(document), WorkItem)
    with pytest.raises(ConfigError, match="child_started_at"):
        parse_export_request({"item": document})
    # Express ends a child at 300 s: the chunk loops may not be given all of it.
    with pytest.raises(ConfigError, match="child_seconds"):
        parse_export_request(
            {"item": document, "child_started_at": "2026-12-03T05:00:00Z", "child_seconds": 300}
        )
