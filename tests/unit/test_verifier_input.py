"""The verifier's input and output without a server: the request model, the pipe refresh prefix and the
run summary with its rerun input. The verifier against the emulator is tests/library/test_verifier.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aurora_sync.errors import ConfigError
from aurora_sync.messages import parse_verify_request
from aurora_sync.verifying.load_history import refresh_prefix

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_sample_event_parses_with_each_kind_of_table_entry() -> None:
    request = parse_verify_request(json.loads((EVENTS / "verifier.json").read_text()))
    assert [(t.table, t.status) for t in request.tables] == [
        ("orders", "EXPORTED"),
        ("customers", "EMPTY"),
        ("order_items", "FAILED"),
    ]


def test_invalid_input_is_a_config_error_naming_the_field() -> None:
    event = json.loads((EVENTS / "verifier.json").read_text())
    del event["started_at"]
    with pytest.raises(ConfigError) as error:
        parse_verify_request(event)
    assert "started_at: required" in str(error.value)
    event = json.loads((EVENTS / "verifier.json").read_text())
    event["tables"][0]["target"] = "orders v2"
    with pytest.raises(ConfigError) as error:
        parse_verify_request(event)
    assert "tables.0.ExportResult.target: string should match pattern" in str(error.value)


def test_each_table_entry_names_its_objects_with_the_target_it_carries_or_the_default() -> None:
    request = parse_verify_request(json.loads((EVENTS / "verifier.json").read_text()))
    assert [(t.table, t.target_name) for t in request.tables] == [
        ("orders", "ORDERS"),
        ("customers", "CRM_CUSTOMERS"),
        ("order_items", "ORDER_ITEMS"),
    ]


def test_refresh_prefix_is_the_runs_shared_directory_below_the_pipe_path() -> None:
    keys = ["t/2026/01/02/03/a.csv", "t/2026/01/02/03/a.csv_part2", "t/2026/01/02/04/b.csv"]
    assert refresh_prefix("t", keys[:2]) == "2026/01/02/03/"
    assert refresh_prefix("t", keys) == "2026/01/02/"
    assert refresh_prefix("t", ["t/2025/12/31/23/x.csv", "t/2026/01/01/00/y.csv"]) == ""
    assert refresh_prefix("t", ["t/x'; DROP.csv"]) == ""


def test_summary_names_failed_tables_with_errors_and_the_rerun_input() -> None:
    from aurora_sync.messages import FailedTable, TableVerdict
    from aurora_sync.verifying.verify import summarize

    verdicts = [
        TableVerdict(table="orders", target="ORDERS", outcome="MERGED"),
        TableVerdict(
            table="items", target="ITEMS", outcome="FAILED", error="LoadFailed", reason="Numeric value 'x'"
        ),
    ]
    plan_failed = [FailedTable(table="broken", error="ConfigError", cause="/aurora-sync/tables/broken: bad")]
    summary = summarize(verdicts, plan_failed)
    assert summary.failed_count == 2
    assert summary.rerun_input == {"tables": ["broken", "items"]}
    assert summary.cause.startswith(
        "2 table(s) failed: broken (ConfigError: /aurora-sync/tables/broken: bad); "
    )
    assert "items (LoadFailed: Numeric value 'x')" in summary.cause
    assert '{"tables": ["broken", "items"]}' in summary.cause
    long = [
        TableVerdict(table=f"t{i}", target="T", outcome="FAILED", error="E", reason="x" * 5000)
        for i in range(300)
    ]
    assert len(summarize(long, []).cause) < 32_768
    assert summarize(verdicts[:1], []).failed_count == 0
