"""Planning logic without I/O: execution input, table selection, windows, single flight, size."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from aurora_sync.config import InvalidTable, LoadedTable, TableConfig, TableConfigResult, parse_table_config
from aurora_sync.errors import ConfigError
from aurora_sync.exporting.rounds import Batching, batches, manifest_key, plan_failed_key
from aurora_sync.ledger import MergedRun
from aurora_sync.messages import ExportWindow, FailedTable
from aurora_sync.planning.plan import (
    ExecutionContext,
    Plan,
    RunningExecution,
    RunRequest,
    TableOverride,
    choose_window,
    earlier_execution,
    parse_event,
    parse_input,
    select_run,
    watermark_text,
    work_item,
)
from aurora_sync.planning.watermarks import reconcile_due

EVENTS = Path(__file__).resolve().parents[2] / "events"
PATH = "/aurora-sync/tables/"
RUN_ID = "scheduled-2024-05-06T07-15-00-a1b2c3d4e5f6a7b8c9d0e1f2"
SM_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:aurora-sync"


def table(name: str, **config: Any) -> LoadedTable:
    document = {"table": name, "primary_key": ["id"], **config}
    return LoadedTable(name, f"{PATH}{name}", TableConfig.model_validate(document))


def invalid(name: str) -> InvalidTable:
    return InvalidTable(name, f"{PATH}{name}", f"{PATH}{name}: field 'primary_key': required, e.g. [\"id\"]")


def configs() -> list[TableConfigResult]:
    # Sorted by name, as load_table_configs returns them.
    return [
        invalid("broken"),
        table("customers"),
        table("legacy", enabled=False),
        table("orders", lookback_seconds=600),
    ]


def execution(name: str, start: datetime) -> ExecutionContext:
    return ExecutionContext(
        id=f"arn:aws:states:us-east-1:123456789012:execution:aurora-sync:{name}",
        name=name,
        start_time=start,
        state_machine_arn=SM_ARN,
    )


def config_error(excinfo: pytest.ExceptionInfo[ConfigError]) -> str:
    return str(excinfo.value)


# --- execution input ------------------------------------------------------------------------


def test_sample_events_parse_as_documented() -> None:
    scheduled, context = parse_event(json.loads((EVENTS / "planner-scheduled.json").read_text()))
    assert scheduled == RunRequest()
    assert context is None
    rerun, _ = parse_event(json.loads((EVENTS / "planner-rerun.json").read_text()))
    assert rerun.tables == ("orders", "customers")
    assert rerun.overrides == {
        "orders": TableOverride(since="2024-05-01T00:00:00.000000+00:00"),
        "customers": TableOverride(full_resync=True),
    }


def test_empty_input_and_execution_context() -> None:
    request, context = parse_event(
        {
            "input": {},
            "execution": {
                "id": f"{SM_ARN.replace('stateMachine', 'execution')}:run-1",
                "name": "run-1",
                "start_time": "2024-05-06T07:15:00.123Z",
                "state_machine_arn": SM_ARN,
            },
        }
    )
    assert request == RunRequest()
    assert not request.is_rerun
    assert context is not None
    assert context.start_time == datetime(2024, 5, 6, 7, 15, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"input": {}, "extra": 1}, "planner event.extra: unknown key"),
        (
            {"input": {}, "execution": {"id": "x", "name": "n", "start_time": "2024-05-06T07:15:00"}},
            "planner event.execution.state_machine_arn: required",
        ),
        (
            {
                "input": {},
                "execution": {
                    "id": "x",
                    "name": "n",
                    "start_time": "2024-05-06T07:15:00",
                    "state_machine_arn": SM_ARN,
                },
            },
            "planner event.execution.start_time: must carry a UTC offset",
        ),
        ([], "planner event must be a JSON object, got list"),
    ],
)
def test_bad_events_name_the_key(event: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_event(event)
    assert expected in config_error(excinfo)
    assert "Fix:" in config_error(excinfo)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"table": ["orders"]}, "execution input.table: unknown key"),
        ({"tables": []}, "execution input.tables: list should have at least 1 item"),
        ({"tables": "orders"}, "execution input.tables: input should be a valid list"),
        ({"tables": ["a", "a"]}, 'execution input.tables: lists "a" more than once'),
        ({"overrides": {"a": {"sincee": "2024-01-01"}}}, "execution input.overrides.a.sincee: unknown key"),
        (
            {"overrides": {"a": {"since": "yesterday"}}},
            "execution input.overrides.a.since: must be an ISO-8601 timestamp or date",
        ),
        (
            {"overrides": {"a": {"since": "2024-01-01", "full_resync": True}}},
            "execution input.overrides.a: sets both 'since' and 'full_resync'",
        ),
        ({"overrides": {"a": {}}}, "execution input.overrides.a: changes nothing"),
        (
            {"overrides": {"a": {"full_resync": "yes"}}},
            "execution input.overrides.a.full_resync: input should be a valid boolean",
        ),
        (
            {"source": "aws.events", "detail-type": "Object Created"},
            'EventBridge event of detail-type "Object Created" is not a schedule',
        ),
    ],
)
def test_bad_rerun_input_is_a_config_error_naming_the_key(document: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_input(document)
    assert expected in config_error(excinfo)


def test_bad_rerun_input_fix_shows_a_valid_input() -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_input({"tabels": ["orders"]})
    assert 'Fix: use {} for every enabled table, or a rerun such as {"tables": ["orders"]' in config_error(
        excinfo
    )


def test_integer_since_is_accepted_but_not_a_boolean() -> None:
    assert parse_input({"overrides": {"a": {"since": 42}}}).overrides["a"].since == 42
    with pytest.raises(ConfigError, match=r"overrides\.a\.since"):
        parse_input({"overrides": {"a": {"since": True}}})


# --- which tables ---------------------------------------------------------------------------


def test_scheduled_run_takes_enabled_tables_and_fails_invalid_ones() -> None:
    selection = select_run(configs(), RunRequest())
    assert [t.name for t in selection.tables] == ["customers", "orders"]
    assert selection.failed == [
        FailedTable(
            table="broken",
            error="ConfigError",
            cause=f"{PATH}broken: field 'primary_key': required, e.g. [\"id\"]",
        )
    ]
    assert selection.disabled == ["legacy"]


def test_rerun_takes_only_the_named_tables() -> None:
    selection = select_run(configs(), RunRequest(tables=("orders",)))
    assert [t.name for t in selection.tables] == ["orders"]
    assert selection.failed == []
    assert selection.disabled == []


def test_rerun_of_unknown_table_lists_known_tables() -> None:
    with pytest.raises(ConfigError) as excinfo:
        select_run(configs(), RunRequest(tables=("orders", "ordres")))
    message = config_error(excinfo)
    assert 'unknown table(s) "ordres"' in message
    assert 'known tables: "broken", "customers", "legacy", "orders"' in message


def test_rerun_naming_a_disabled_table_is_refused() -> None:
    with pytest.raises(ConfigError) as excinfo:
        select_run(configs(), RunRequest(tables=("legacy", "orders")))
    message = config_error(excinfo)
    assert "'tables' names disabled table(s) \"legacy\"" in message
    assert f'({PATH}legacy: "enabled": false)' in message
    assert "set enabled to true" in message


def test_override_for_a_table_outside_the_run_is_refused() -> None:
    request = parse_input({"tables": ["orders"], "overrides": {"customers": {"full_resync": True}}})
    with pytest.raises(ConfigError) as excinfo:
        select_run(configs(), request)
    assert "'overrides' names table(s) \"customers\" that are not part of this run" in config_error(excinfo)
    assert 'this run covers "orders"' in config_error(excinfo)


def test_override_for_unknown_or_disabled_table_without_tables() -> None:
    with pytest.raises(ConfigError) as excinfo:
        select_run(configs(), parse_input({"overrides": {"nope": {"since": 1}, "legacy": {"since": 1}}}))
    message = config_error(excinfo)
    assert 'unknown table(s) "nope" (known tables: "broken", "customers", "legacy", "orders")' in message
    assert 'table(s) "legacy" that are not part of this run' in message


def test_override_without_tables_applies_to_a_scheduled_set() -> None:
    request = parse_input({"overrides": {"orders": {"full_resync": True}}})
    assert [t.name for t in select_run(configs(), request).tables] == ["customers", "orders"]


# --- windows --------------------------------------------------------------------------------

UTC_WATERMARK = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (UTC_WATERMARK, "2024-05-06T07:08:09.123456+00:00"),
        (
            datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2))),
            "2024-05-06T07:08:09.000000+02:00",
        ),
        (datetime(2024, 5, 6, 7, 8, 9, 5), "2024-05-06T07:08:09.000005"),
        (date(2024, 5, 6), "2024-05-06"),
        (9_007_199_254_740_993, "9007199254740993"),
        (Decimal("12345678901234567890123"), "12345678901234567890123"),
        (Decimal("1E+3"), "1000"),
    ],
)
def test_watermark_text_keeps_precision_and_offset(value: Any, text: str) -> None:
    assert watermark_text(value) == text


def test_window_from_final_uses_the_lookback() -> None:
    window = choose_window(table("orders", lookback_seconds=600), watermark=UTC_WATERMARK)
    assert window == ExportWindow(
        watermark="2024-05-06T07:08:09.123456+00:00", lookback_seconds=600, source="final"
    )


def test_window_for_empty_final_without_initial_watermark_is_full() -> None:
    assert choose_window(table("orders"), watermark=None) == ExportWindow(
        watermark=None, lookback_seconds=0, source="full"
    )


def test_window_for_empty_final_starts_at_initial_watermark() -> None:
    window = choose_window(
        table("orders", initial_watermark="2024-01-01T00:00:00+00:00", lookback_seconds=60), watermark=None
    )
    assert window == ExportWindow(
        watermark="2024-01-01T00:00:00+00:00", lookback_seconds=60, source="initial_watermark"
    )


def test_final_watermark_wins_over_initial_watermark() -> None:
    window = choose_window(table("orders", initial_watermark="2020-01-01"), watermark=UTC_WATERMARK)
    assert window.source == "final"
    assert window.watermark == "2024-05-06T07:08:09.123456+00:00"


def test_since_override_has_no_lookback_and_full_resync_ignores_the_watermark() -> None:
    orders = table("orders", lookback_seconds=600)
    since = choose_window(orders, watermark=UTC_WATERMARK, override=TableOverride(since="2024-05-01"))
    assert since == ExportWindow(watermark="2024-05-01", lookback_seconds=0, source="since")
    full = choose_window(orders, watermark=UTC_WATERMARK, override=TableOverride(full_resync=True))
    assert full == ExportWindow(watermark=None, lookback_seconds=0, source="full")


def test_integer_cursors_get_no_lookback() -> None:
    versioned = table("events", cursor="version", lookback_seconds=900, initial_watermark=1000)
    assert choose_window(versioned, watermark=123456) == ExportWindow(
        watermark="123456", lookback_seconds=0, source="final"
    )
    assert choose_window(versioned, watermark=None, cursor_type="NUMBER") == ExportWindow(
        watermark="1000", lookback_seconds=0, source="initial_watermark"
    )
    assert choose_window(versioned, watermark=Decimal("77"), cursor_type="NUMBER").lookback_seconds == 0


def test_work_item_carries_the_config() -> None:
    config = table(
        "line_items",
        schema="Sales Data",
        table="Line Items",
        primary_key=["order_id", "line no"],
        cursor="changed at",
        columns=["order_id", "line no", "changed at", "qty"],
        max_rows_per_chunk=5000,
    )
    window = choose_window(config, watermark=UTC_WATERMARK)
    item = work_item(RUN_ID, config, window)
    assert item.model_dump(by_alias=True, mode="json", exclude_defaults=True) == {
        "run_id": RUN_ID,
        "table": "line_items",
        "source": {"schema": "Sales Data", "table": "Line Items"},
        "primary_key": ["order_id", "line no"],
        "cursor": "changed at",
        "columns": ["order_id", "line no", "changed at", "qty"],
        "max_rows_per_chunk": 5000,
        "window": {"watermark": "2024-05-06T07:08:09.123456+00:00", "lookback_seconds": 900},
    }


def test_work_item_carries_a_custom_target_and_leaves_the_default_out() -> None:
    """The target is planned once and travels in the item (the verifier reads no config for it);
    the default (NAME upper-cased) costs no byte, a custom one len(target) + 14 bytes per item."""
    window = choose_window(table("order_items_history"), watermark=UTC_WATERMARK)
    default = work_item(RUN_ID, table("order_items_history"), window)
    custom = work_item(RUN_ID, table("order_items_history", target="SALES_ORDER_ITEMS_HISTORY"), window)
    assert default.target is None and default.target_name == "ORDER_ITEMS_HISTORY"
    assert custom.target == custom.target_name == "SALES_ORDER_ITEMS_HISTORY"
    # As round 0's manifest holds them (exporting.rounds.write_items).
    sizes = {
        name: len(json.dumps(item.model_dump(by_alias=True, mode="json", exclude_defaults=True)))
        for name, item in (("default", default), ("custom", custom))
    }
    assert "target" not in default.model_dump(by_alias=True, mode="json", exclude_defaults=True)
    assert sizes["custom"] - sizes["default"] == len("SALES_ORDER_ITEMS_HISTORY") + 14  # , "target": "…"


# --- table modes ----------------------------------------------------------------------------


def test_xmin_and_full_windows_carry_no_cursor_and_no_lookback() -> None:
    lookup = table("lookup", mode="xmin")
    assert choose_window(lookup, watermark=None) == ExportWindow(watermark=None, source="full")
    window = choose_window(lookup, watermark=18446744073709551615)  # the largest xid8
    assert window == ExportWindow(watermark="18446744073709551615", source="final")
    item = work_item(RUN_ID, lookup, window)
    assert (item.mode, item.cursor, item.reconcile) == ("xmin", None, False)
    country = table("country", mode="full")
    assert choose_window(country, watermark=123).source == "full"
    full_item = work_item(RUN_ID, country, choose_window(country, watermark=None))
    # A full table always exports its keys: FINAL must become exactly the snapshot.
    assert (full_item.mode, full_item.cursor, full_item.reconcile) == ("full", None, True)


def test_since_for_a_table_without_cursor_is_refused_naming_full_resync() -> None:
    loaded: list[TableConfigResult] = [table("lookup", mode="xmin"), table("orders")]
    request = parse_input({"tables": ["lookup"], "overrides": {"lookup": {"since": "2024-01-01"}}})
    with pytest.raises(ConfigError) as excinfo:
        select_run(loaded, request)
    assert '\'since\' for table(s) "lookup" of mode "xmin"' in str(excinfo.value)
    assert '{"full_resync": true}' in str(excinfo.value)
    request = parse_input({"tables": ["lookup"], "overrides": {"lookup": {"full_resync": True}}})
    assert [t.name for t in select_run(loaded, request).tables] == ["lookup"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"mode": "xmin", "cursor": "updated_at"}, "field 'cursor': must be absent or null with mode 'xmin'"),
        ({"cursor": None}, "field 'cursor': must name a column with mode 'cursor'"),
        ({"mode": "full", "lookback_seconds": 60}, "field 'lookback_seconds': only applies to mode 'cursor'"),
        (
            {"mode": "xmin", "initial_watermark": 5},
            "field 'initial_watermark': only applies to mode 'cursor'",
        ),
        ({"mode": "full", "hard_deletes": "reconcile"}, "field 'hard_deletes': is implied by mode 'full'"),
        ({"reconcile_every": 4}, "field 'reconcile_every': is only valid with hard_deletes 'reconcile'"),
        (
            {"hard_deletes": "reconcile", "reconcile_every": 0},
            "field 'reconcile_every': input should be greater",
        ),
        ({"mode": "incremental"}, 'field \'mode\': must be "cursor", "xmin" or "full"'),
        ({"hard_deletes": True}, 'field \'hard_deletes\': must be "ignore" or "reconcile"'),
    ],
)
def test_mode_combinations_that_cannot_work_name_the_field_and_the_fix(
    config: dict[str, Any], message: str
) -> None:
    raw = json.dumps({"table": "t", "primary_key": ["id"], **config})
    result = parse_table_config("t", f"{PATH}t", raw)
    assert isinstance(result, InvalidTable)
    assert message in result.message, result.message


def test_canonical_json_of_a_mode_table_validates_again_without_cursor_fields() -> None:
    for config in (
        {"mode": "xmin", "hard_deletes": "reconcile", "reconcile_every": 24},
        {"mode": "full"},
        {"hard_deletes": "reconcile"},
    ):
        loaded = table("t", **config)
        document = json.loads(loaded.config.dump_json())
        assert ("cursor" in document) == (loaded.config.mode == "cursor")
        assert "lookback_seconds" not in document or loaded.config.mode == "cursor"
        again = parse_table_config("t", f"{PATH}t", loaded.config.dump_json())
        assert isinstance(again, LoadedTable) and again.config == loaded.config


def _merged(reconciled: bool, mode: str = "cursor", xmin: str | None = None) -> MergedRun:
    at = datetime(2024, 5, 6, tzinfo=UTC)
    return MergedRun(
        run_id="r",
        order=1,
        source_time=at,
        horizon=at,
        cursor_type="timestamptz",
        max_cursor=None,
        sample_time=None,
        sample_max=None,
        window_start=None,
        primary_key=("id",),
        cursor_column="updated_at" if mode == "cursor" else "",
        mode=mode,
        snapshot_xmin=xmin,
        reconciled=reconciled,
    )


def test_reconciliation_is_due_every_nth_merged_run() -> None:
    every_third = table("t", hard_deletes="reconcile", reconcile_every=3)
    assert reconcile_due(every_third, [])  # nothing reconciled yet
    assert not reconcile_due(every_third, [_merged(True)])
    assert not reconcile_due(every_third, [_merged(False), _merged(True)])
    assert reconcile_due(every_third, [_merged(False), _merged(False), _merged(True)])
    assert reconcile_due(table("t", hard_deletes="reconcile"), [_merged(True)])
    assert not reconcile_due(table("t"), [])
    assert reconcile_due(table("t", mode="full"), [_merged(True)])


# --- single flight --------------------------------------------------------------------------

T0 = datetime(2024, 5, 6, 7, 15, 0, 123000, tzinfo=UTC)


def running(name: str, start: datetime) -> RunningExecution:
    return RunningExecution(
        f"arn:aws:states:us-east-1:123456789012:execution:aurora-sync:{name}", name, start
    )


def test_an_earlier_running_execution_blocks() -> None:
    own = execution("b-run", T0)
    blocker = earlier_execution(own, [running("b-run", T0), running("a-old", T0 - timedelta(minutes=5))])
    assert blocker == running("a-old", T0 - timedelta(minutes=5))


def test_own_arn_and_later_executions_do_not_block() -> None:
    own = execution("b-run", T0)
    # ListExecutions may report its own start time differently; its ARN alone excludes it.
    assert earlier_execution(own, [running("b-run", T0 - timedelta(seconds=1))]) is None
    assert earlier_execution(own, [running("c-new", T0 + timedelta(milliseconds=1))]) is None
    assert earlier_execution(own, []) is None


def test_equal_start_times_break_ties_by_name() -> None:
    assert earlier_execution(execution("b-run", T0), [running("a-run", T0)]) == running("a-run", T0)
    assert earlier_execution(execution("a-run", T0), [running("b-run", T0)]) is None


def test_the_earliest_of_several_blockers_is_named() -> None:
    own = execution("z", T0)
    found = earlier_execution(
        own, [running("m", T0 - timedelta(seconds=1)), running("n", T0 - timedelta(hours=1))]
    )
    assert found is not None
    assert found.name == "n"


# --- output and size ------------------------------------------------------------------------


def _item(columns: list[str] | None = None) -> Any:
    config = table(
        "order_items_history",
        **({"columns": columns, "primary_key": [columns[0]], "cursor": columns[1]} if columns else {}),
    )
    return work_item(RUN_ID, config, choose_window(config, watermark=UTC_WATERMARK))


def test_output_shape() -> None:
    """Counts and keys: the items are round 0's manifest, the failed tables plan-failed.json."""
    plan = Plan(run_id=RUN_ID, started_at="2024-05-06T07:15:00.123+00:00", items=[_item()])
    plan.failed.append(FailedTable(table="broken", error="ConfigError", cause="bad"))
    plan.bucket = "lake"
    plan.manifest, plan.failed_file = manifest_key(RUN_ID, 0), plan_failed_key(RUN_ID)
    assert plan.output() == {
        "run_id": RUN_ID,
        "started_at": "2024-05-06T07:15:00.123+00:00",
        "skip": False,
        "skip_reason": None,
        "tables_planned": 1,
        "work_items": 1,
        "failed": 1,
        "manifest": f"_aurora_sync/runs/{RUN_ID}/round-0/items.json",
        "failed_file": f"_aurora_sync/runs/{RUN_ID}/plan-failed.json",
        "bucket": "lake",
    }


def test_an_output_whose_lists_were_not_written_is_refused() -> None:
    """A count without its file (or a file without a count) would lose tables between states."""
    plan = Plan(run_id=RUN_ID, started_at="x", items=[_item()], bucket="lake")
    with pytest.raises(ValueError, match="manifest must be set exactly when there are work items"):
        plan.output()
    plan.manifest = manifest_key(RUN_ID, 0)
    plan.failed.append(FailedTable(table="broken", error="ConfigError", cause="bad"))
    with pytest.raises(ValueError, match="failed_file must be set exactly when tables failed"):
        plan.output()


def _plan_of(count: int) -> Plan:
    """``count`` tables of 63-character names (the longest a config name may be), each split in
    two lanes, and ``count`` more that failed in the plan with a long cause, files written."""
    plan = Plan(run_id=RUN_ID, started_at="2024-05-06T07:15:00.123+00:00", bucket="aurora-sync-data-lake")
    for number in range(count):
        name = f"t{number:05d}_".ljust(63, "x")
        item = _item().model_copy(update={"table": name})
        plan.items += [item, item]
        plan.failed.append(
            FailedTable(
                table=f"f{number:05d}_".ljust(63, "x"), error="WarehouseObjectMissing", cause="x" * 300
            )
        )
    plan.manifest, plan.failed_file = manifest_key(RUN_ID, 0), plan_failed_key(RUN_ID)
    return plan


def test_the_plan_output_does_not_grow_with_the_tables() -> None:
    """Issue 15: the plan of 2,000 tables and 2,000 failed in it (a denied Snowflake role fails
    every table) was over 256 KiB in the state, which Step Functions cannot catch. Now its
    output is the size of 10 tables' (the lists are run files in S3)."""
    small, large = (len(json.dumps(_plan_of(count).output()).encode()) for count in (10, 2000))
    assert (small, large) == (455, 461)  # docs/operations.md, "How many tables one stack runs"
    assert large - small == 6  # only the counts' digits: 10 → 2000, 20 → 4000 work items, 10 → 2000
    assert _plan_of(2000).output()["tables_planned"] == 2000
    assert _plan_of(2000).output()["work_items"] == _plan_of(2000).output()["failed"] * 2 == 4000


def test_measured_item_sizes_match_the_handler_docstring() -> None:
    plain = len(json.dumps(_item().model_dump(by_alias=True, mode="json", exclude_defaults=True)))
    columns = [f"column_name_{i:02d}" for i in range(50)]
    wide_item = _item(columns)
    wide = len(json.dumps(wide_item.model_dump(by_alias=True, mode="json", exclude_defaults=True)))
    assert 280 <= plain <= 310
    assert 18 <= (wide - plain) / 50 <= 20
    # An export child's input is one batch: at most ExportBatchSize (25) items.
    (batch,) = batches([wide_item] * 25, Batching(most=25, children=1))
    child_input = {
        "Items": [item.model_dump(by_alias=True, mode="json", exclude_defaults=True) for item in batch]
    }
    assert 30_000 <= len(json.dumps(child_input)) <= 31_500


def test_a_target_that_is_another_tables_key_snapshot_table_is_refused() -> None:
    from aurora_sync.config import mark_target_collisions

    results = mark_target_collisions(
        [table("orders"), table("audit", target="ORDERS_KEYS"), table("keys_of")]
    )
    by_name = {r.name: r for r in results}
    assert isinstance(by_name["orders"], LoadedTable) and isinstance(by_name["keys_of"], LoadedTable)
    audit = by_name["audit"]
    assert isinstance(audit, InvalidTable)
    assert audit.message == (
        f"{PATH}audit: field 'target': Snowflake base name 'ORDERS_KEYS' is the key snapshot table of "
        f"{PATH}orders; give this table another 'target'"
    )
