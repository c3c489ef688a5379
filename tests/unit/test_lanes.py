"""Lanes without a server: how many, where their bounds fall, how a work item splits, and how the
verifier combines a split table's results. The lane predicate evaluated in PostgreSQL, and the
exports covering every row exactly once, are tests/library/test_lanes.py; end to end with parity,
tests/workflow/test_lanes.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from aurora_sync.messages import ExportResult, FailedExport, KeyRange, WorkItem, parse_verify_request
from aurora_sync.planning.lanes import choose_bounds, lane_count, split, splittable
from aurora_sync.verifying.decide import Facts, ReadLoads, conclude, decide
from aurora_sync.verifying.lanes import combine
from aurora_sync.verifying.verify import Limits, Schemas


def work_item(**changes: Any) -> WorkItem:
    document: dict[str, Any] = {
        "run_id": "run-1",
        "table": "orders",
        "source": {"schema": "public", "table": "orders"},
        "primary_key": ["id"],
        "cursor": "updated_at",
        **changes,
    }
    return WorkItem.model_validate(document)


def test_lane_count_is_one_per_rows_per_lane_begun_up_to_the_maximum() -> None:
    assert lane_count(-1, rows_per_lane=1000, max_lanes=8) == 1  # never analyzed
    assert lane_count(0, rows_per_lane=1000, max_lanes=8) == 1
    assert lane_count(1000, rows_per_lane=1000, max_lanes=8) == 1
    assert lane_count(1001, rows_per_lane=1000, max_lanes=8) == 2
    assert lane_count(3500, rows_per_lane=1000, max_lanes=8) == 4
    assert lane_count(10**9, rows_per_lane=10_000_000, max_lanes=8) == 8
    assert lane_count(10**9, rows_per_lane=10_000_000, max_lanes=1) == 1


def test_bounds_fall_at_even_quantiles_of_the_ordered_keys() -> None:
    keys = [[str(i)] for i in range(0, 101)]  # a histogram of 101 bounds, as ANALYZE keeps
    assert choose_bounds(keys, 4) == [["25"], ["50"], ["75"]]
    assert choose_bounds(keys, 2) == [["50"]]
    assert choose_bounds(keys, 1) == []
    assert choose_bounds([], 4) == []


def test_bounds_strictly_increase_and_never_leave_the_first_lane_empty() -> None:
    # Few distinct values: equal neighbours collapse, and a bound at the smallest key is dropped.
    skewed = [["1"]] * 90 + [["2"]] * 5 + [["3"]] * 5
    assert choose_bounds(skewed, 4) == []
    assert choose_bounds([["1"]] * 50 + [["9"]] * 50, 4) == [["9"]]
    composite = [["1", "a"], ["1", "b"], ["2", "a"], ["2", "b"]]
    assert choose_bounds(composite, 2) == [["2", "a"]]
    assert choose_bounds([["7"]], 4) == []  # a table of one row stays one lane


def test_a_split_has_no_lower_bound_first_and_no_upper_bound_last() -> None:
    lanes = split(work_item(), [["100"], ["200"]])
    assert [lane.lane for lane in lanes] == [
        KeyRange(index=0, count=3, upper=["100"]),
        KeyRange(index=1, count=3, lower=["100"], upper=["200"]),
        KeyRange(index=2, count=3, lower=["200"]),
    ]
    # Everything else of the item travels unchanged with each lane.
    assert all(lane.model_copy(update={"lane": None}) == work_item() for lane in lanes)
    assert split(work_item(), []) == [work_item()]


def test_a_key_range_must_be_bounded_as_its_place_says() -> None:
    with pytest.raises(ValidationError, match="only the first lane has no lower bound"):
        KeyRange(index=1, count=3, upper=["5"])
    with pytest.raises(ValidationError, match="only the last lane has no upper bound"):
        KeyRange(index=0, count=2)
    with pytest.raises(ValidationError, match="index must be below count"):
        KeyRange(index=2, count=2, lower=["5"])
    with pytest.raises(ValidationError, match="one value per primary key column"):
        work_item(lane={"index": 0, "count": 2, "upper": ["1", "2"]})


def test_reconciling_runs_mode_full_and_xmin_increments_are_never_split() -> None:
    assert splittable(work_item())
    assert splittable(work_item(window={"watermark": "2026-01-01T00:00:00+00:00", "source": "final"}))
    assert splittable(work_item(mode="xmin", cursor=None))
    assert not splittable(work_item(mode="xmin", cursor=None, window={"watermark": "812", "source": "final"}))
    assert not splittable(work_item(mode="full", cursor=None))
    assert not splittable(work_item(reconcile=True))
    with pytest.raises(ValidationError, match="never split into lanes"):
        work_item(reconcile=True, lane={"index": 0, "count": 2, "upper": ["5"]})


def key(order: int) -> str:
    return f"orders/2026/11/02/10/s{order:026d}-01967a3c-5b2e-7c4d-9e8f-0a1b2c3d4e5f.csv"


def lane_result(index: int, count: int, *, order: int, rows: int, **extra: Any) -> dict[str, Any]:
    bounds = {"lower": [str(index * 100)] if index else None, "upper": [str((index + 1) * 100)]}
    if index == count - 1:
        bounds["upper"] = None
    return {
        "table": "orders",
        "run_id": "run-1",
        "status": "EXPORTED" if rows else "EMPTY",
        "rows": rows,
        "files": 1 if rows else 0,
        "keys": [key(order)] if rows else [],
        "window": {"watermark": None, "source": "full"},
        "chunks": 1 if rows else 0,
        "snapshot": {
            "order": str(order),
            "source_time": f"2026-11-02T10:00:{order:02d}+00:00",
            "horizon": f"2026-11-02T10:00:{order - 1:02d}+00:00",
            "cursor_type": "timestamptz",
        },
        "primary_key": ["id"],
        "cursor": "updated_at",
        "lane": {"index": index, "count": count, **bounds},
        **extra,
    }


def entries(*documents: dict[str, Any]) -> list[ExportResult | FailedExport]:
    request = {"run_id": "run-1", "started_at": "2026-11-02T10:00:00+00:00", "tables": list(documents)}
    return parse_verify_request(request).tables


def test_every_lane_exported_combines_into_one_result_with_the_earliest_snapshot() -> None:
    other = {**lane_result(0, 1, order=5, rows=2), "table": "items", "lane": None}
    (combined, alone) = combine(
        entries(
            lane_result(0, 3, order=12, rows=5, warnings=["3 row(s) have a NULL cursor"]),
            other,
            lane_result(2, 3, order=11, rows=0),
            lane_result(1, 3, order=13, rows=3),
        )
    )
    assert isinstance(combined, ExportResult) and combined.lane is None
    assert (combined.status, combined.rows, combined.files, combined.chunks) == ("EXPORTED", 8, 2, 2)
    assert combined.keys == [key(12), key(13)]
    # The lane that took the earliest snapshot speaks for the table: every row committed before it
    # lies in some lane and was read there, so the next window may start from it, not later.
    assert combined.snapshot is not None and combined.snapshot.order == "11"
    assert combined.warnings == ["3 row(s) have a NULL cursor"]
    assert alone.table == "items"  # an unsplit table passes unchanged


def test_a_failed_lane_fails_the_table_naming_the_lane_and_the_rerun() -> None:
    failed = {
        "table": "orders",
        "status": "FAILED",
        "run_id": "run-1",
        "error": {
            "Error": "SourceTimeout",
            "Cause": "lane 2 of 2 (id from 100 up to the end) of table orders: canceling statement",
        },
    }
    (combined,) = combine(entries(lane_result(0, 2, order=12, rows=5), failed))
    assert isinstance(combined, FailedExport) and combined.error.error == "SourceTimeout"
    assert combined.message.startswith("1 lane(s) of orders failed; the first: lane 2 of 2 (id from 100")
    assert "1 other lane(s) exported files that stay unmerged" in combined.message
    assert combined.message.endswith('{"tables": ["orders"]}')


def test_a_missing_lane_fails_the_table_as_an_incomplete_export() -> None:
    (combined,) = combine(entries(lane_result(0, 3, order=12, rows=5), lane_result(2, 3, order=13, rows=1)))
    assert isinstance(combined, FailedExport) and combined.error.error == "ExportIncomplete"
    assert "reported lanes [1, 3], missing [2]" in combined.message


def test_the_verifier_checks_a_split_table_once_with_every_lane_s_files() -> None:
    request = parse_verify_request(
        {
            "run_id": "run-1",
            "started_at": "2026-11-02T10:00:00+00:00",
            "tables": [lane_result(0, 2, order=12, rows=5), lane_result(1, 2, order=13, rows=3)],
        }
    )
    decision = decide(
        request,
        Facts(),
        schemas=Schemas("DB", "STAGING", "FINAL"),
        limits=Limits(timedelta(minutes=2), timedelta(minutes=15), timedelta(minutes=15)),
        configs={},
        now=datetime(2026, 11, 2, 10, 0, 5, tzinfo=UTC),
    )
    (verdict,) = decision.verdicts
    assert (verdict.table, verdict.outcome, verdict.rows_exported, verdict.files) == (
        "orders",
        "PENDING",
        8,
        2,
    )
    (read,) = decision.actions
    assert isinstance(read, ReadLoads)
    assert [(t.name, t.keys) for t in read.tables] == [("orders", (key(12), key(13)))]


def test_a_lane_adds_its_bounds_to_the_plan_s_item_as_the_planner_s_docstring_says() -> None:
    item = work_item(run_id="r" * 60, layout="0123456789ab")
    lane = item.model_copy(update={"lane": KeyRange(index=1, count=8, lower=["1250000"], upper=["2500000"])})

    def size(work: WorkItem) -> int:
        return len(json.dumps(work.model_dump(mode="json", by_alias=True, exclude_defaults=True)))

    assert size(lane) - size(item) == 78


def test_a_failed_lane_leaves_nothing_to_merge_and_the_summary_reruns_the_table() -> None:
    failed = {
        "table": "orders",
        "status": "FAILED",
        "run_id": "run-1",
        "error": {
            "Error": "SourceChunkTimeout",
            "Cause": "lane 2 of 2 (id from 100 up to the end) of table orders: slow",
        },
    }
    request = parse_verify_request(
        {
            "run_id": "run-1",
            "started_at": "2026-11-02T10:00:00+00:00",
            "tables": [lane_result(0, 2, order=12, rows=5), failed],
        }
    )
    now = datetime(2026, 11, 2, 10, 0, 5, tzinfo=UTC)
    schemas = Schemas("DB", "STAGING", "FINAL")
    limits = Limits(timedelta(minutes=2), timedelta(minutes=15), timedelta(minutes=15))
    decision = decide(request, Facts(), schemas=schemas, limits=limits, configs={}, now=now)
    assert decision.actions == ()  # no load history read, no MERGE: nothing of the table is merged
    output = conclude(request, decision, schemas=schemas, now=now)
    (verdict,) = output.tables
    assert (verdict.outcome, verdict.error) == ("FAILED", "SourceChunkTimeout")
    assert verdict.reason is not None and "lane 2 of 2 (id from 100 up to the end)" in verdict.reason
    assert output.summary is not None and output.summary.rerun_input == {"tables": ["orders"]}
