"""File layouts: what the planner derives, sends and checks against the pipe, and what the
exporter does when the source's columns moved since (issue 10, case 2).

Pure tests of the layout mapping, the Snowflake type rules, the pipe's COPY read back, the
planner's per-table schema step and the exporter's layout check; the exporter and the many-table
catalog read against the local stack's PostgreSQL are in tests/library/test_layout_exporter.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from layout_items import layout, planned_item

from aurora_sync.column_types import catalog_type, declared_type, type_change
from aurora_sync.config import LoadedTable, TableConfig
from aurora_sync.errors import SourceObjectMissing, WarehouseObjectMissing
from aurora_sync.export_query import build_plan
from aurora_sync.exporting.export import LayoutChanged, follow_layout
from aurora_sync.layout import (
    dumps,
    fingerprint,
    incomplete_columns,
    loads,
    planned_prefix,
)
from aurora_sync.planning.plan import choose_window, work_item
from aurora_sync.schema_evolution import (
    Pipe,
    UnrecognizedPipe,
    UnsafeSchemaChange,
    WarehouseColumns,
    plan_evolution,
)
from aurora_sync.snowflake_objects import PipeSource, parse_pipe, pipe_statement, table_spec
from aurora_sync.snowflake_tables import SnowflakeSetup, render_pipe
from aurora_sync.source_catalog import SourceColumn
from aurora_sync.typemap import PgType, map_column

INT4 = PgType("int4", "integer", "N")
INT8 = PgType("int8", "bigint", "N")
TEXT = PgType("text", "text", "S")
BOOL = PgType("bool", "boolean", "B")
TSTZ = PgType("timestamptz", "timestamp with time zone", "D")
SETUP = SnowflakeSetup(bucket="aurora-sync-data-lake", storage_role_arn="arn:aws:iam::123456789012:role/sf")
OBJECTS = SETUP.objects("ORDERS")
TODAY = datetime(2026, 12, 2, tzinfo=UTC)


def col(name: str, pg_type: PgType, attnum: int, not_null: bool = False) -> SourceColumn:
    return SourceColumn(name, pg_type, not_null, attnum)


BASE = [col("id", INT8, 1, True), col("note", TEXT, 2), col("updated_at", TSTZ, 3, True)]


# --- the layout and its fingerprint --------------------------------------------------------------
def test_the_layout_names_each_field_and_where_it_comes_from() -> None:
    assert [c.entry() for c in layout([*BASE, col("Active Flag", BOOL, 4)])] == [
        ["ID", "id", 1, "bigint", "NUMBER(19,0)"],
        ["NOTE", "note", 2, "text", "VARCHAR"],
        ["UPDATED_AT", "updated_at", 3, "timestamp with time zone", "TIMESTAMP_TZ(6)"],
        ["Active Flag", "Active Flag", 4, "boolean", "BOOLEAN"],
    ]
    assert loads(dumps(layout(BASE))) == layout(BASE)
    assert loads(None) is None and loads("not json") is None


@pytest.mark.parametrize(
    "changed",
    [
        [col("id", INT8, 1, True), col("note", INT4, 2), col("updated_at", TSTZ, 3, True)],  # retyped
        [col("id", INT8, 1, True), col("remark", TEXT, 2), col("updated_at", TSTZ, 3, True)],  # renamed
        [col("id", INT8, 1, True), col("note", TEXT, 4), col("updated_at", TSTZ, 3, True)],  # re-added
        [col("id", INT8, 1, True), col("updated_at", TSTZ, 3, True)],  # dropped
        [col("id", INT8, 1, True), col("updated_at", TSTZ, 3, True), col("note", TEXT, 4)],  # moved
    ],
)
def test_any_change_of_a_planned_column_changes_the_fingerprint(changed: list[SourceColumn]) -> None:
    planned = fingerprint(layout(BASE))
    assert len(planned) == 12 and fingerprint(layout(list(BASE))) == planned
    assert fingerprint(layout(changed)) != planned
    assert planned_prefix(layout(changed), planned) is None


def test_columns_added_after_planning_leave_the_planned_layout_as_a_prefix() -> None:
    planned = fingerprint(layout(BASE))
    grown = layout([*BASE, col("active", BOOL, 4), col("remark", TEXT, 5)])
    assert planned_prefix(grown, planned) == 3
    assert planned_prefix(layout(BASE), planned) == 3


def test_an_explicit_column_list_is_its_own_order() -> None:
    configured = layout([*BASE, col("active", BOOL, 4)], ["updated_at", "id", "note"])
    assert [c.name for c in configured] == ["UPDATED_AT", "ID", "NOTE"]


def test_columns_whose_values_final_lacks() -> None:
    previous = layout(BASE)
    assert incomplete_columns(layout(BASE), previous) == []
    assert incomplete_columns(layout(BASE), None) == []  # recorded before layouts: complete
    added = layout([*BASE, col("active", BOOL, 4)])
    assert [c.name for c in incomplete_columns(added, previous)] == ["ACTIVE"]
    dropped = layout([BASE[0], BASE[2]])
    assert incomplete_columns(dropped, previous) == []
    renamed = layout([BASE[0], col("remark", TEXT, 2), BASE[2]])
    assert [c.name for c in incomplete_columns(renamed, previous)] == ["REMARK"]
    readded = layout([BASE[0], BASE[2], col("note", TEXT, 4)])
    assert [c.name for c in incomplete_columns(readded, previous)] == ["NOTE"]
    ints = layout([BASE[0], col("note", INT4, 2), BASE[2]])
    widened = layout([BASE[0], col("note", INT8, 2), BASE[2]])
    assert incomplete_columns(widened, ints) == []
    # NUMBER(19,0) → NUMBER(10,0) (an unsafe change resolved by re-adding the column): re-exported.
    assert [c.name for c in incomplete_columns(ints, widened)] == ["NOTE"]
    assert [c.name for c in incomplete_columns(ints, previous)] == ["NOTE"]


# --- Snowflake column types ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("existing", "wanted", "change"),
    [
        (catalog_type("NUMBER", None, 10, 0), "NUMBER(19,0)", "widen"),  # int4 → int8
        (catalog_type("NUMBER", None, 8, 2), "NUMBER(12,2)", "widen"),  # numeric(8,2) → (12,2)
        (catalog_type("TEXT", 10), "VARCHAR(50)", "widen"),  # varchar(10) → varchar(50)
        (catalog_type("TEXT", 36), "VARCHAR", "widen"),  # uuid → text
        (catalog_type("TEXT", 16777216), "VARCHAR", "same"),
        (catalog_type("TEXT", 134217728), "VARCHAR", "unsafe"),  # 128 MB accounts: never narrowed
        (catalog_type("NUMBER", None, 19, 0), "NUMBER(19,0)", "same"),
        (catalog_type("NUMBER", None, 19, 0), "NUMBER(10,0)", "unsafe"),  # narrowing
        (catalog_type("NUMBER", None, 10, 2), "NUMBER(12,4)", "unsafe"),  # another scale
        (catalog_type("TEXT", 16777216), "NUMBER(10,0)", "unsafe"),  # text → integer
        (catalog_type("NUMBER", None, 10, 0), "FLOAT", "unsafe"),
        (catalog_type("TIMESTAMP_NTZ"), "TIMESTAMP_TZ(6)", "unsafe"),
        (catalog_type("TIMESTAMP_TZ"), "TIMESTAMP_TZ(6)", "same"),
        (catalog_type("VARIANT"), "ARRAY", "same"),  # the emulator reports ARRAY as VARIANT
        (catalog_type("BOOLEAN"), "BOOLEAN", "same"),
        (catalog_type("BINARY", 8388608), "BINARY", "same"),
    ],
)
def test_type_changes_snowflake_makes_in_place(existing: Any, wanted: str, change: str) -> None:
    assert type_change(existing, declared_type(wanted))[0] == change


def test_a_varchar_declared_by_the_type_map_reads_back_equal() -> None:
    for pg_type in (TEXT, PgType("varchar", "character varying(12)", "S"), PgType("uuid", "uuid", "U")):
        mapping = map_column("c", pg_type)
        declared = declared_type(mapping.final_type)
        assert type_change(catalog_type("TEXT", declared.length), declared)[0] == "same"


# --- the pipe's COPY read back -------------------------------------------------------------------
def test_the_pipe_definition_parses_back_into_its_layout_even_with_hostile_names() -> None:
    catalog = [*BASE, col('Odd "Name", (x)', TEXT, 4)]
    spec = table_spec(
        name="orders",
        target="ORDERS",
        catalog=catalog,
        schema="public",
        table="orders",
        columns=None,
        primary_key=["id"],
        cursor="updated_at",
    )
    statement = render_pipe(SETUP, spec)
    copy = statement[statement.index("AS COPY") + 3 :]
    parsed = parse_pipe(copy)
    assert parsed is not None
    assert parsed.layout == ["ID", "NOTE", "UPDATED_AT", 'Odd "Name", (x)']
    assert parsed.source.location == f"{SETUP.stage_ref}/orders/"
    # Rendered again from what was read, the pipe is the same.
    assert (
        pipe_statement(
            OBJECTS,
            parsed.layout,
            parsed.source,
            comment="aurora-sync: loads s3://aurora-sync-data-lake/orders/ into STAGING",
        )
        == statement
    )
    # Whitespace folded (were Snowflake not to keep the newlines), the same layout and stage.
    folded = parse_pipe(" ".join(copy.split()))
    assert folded is not None and folded.layout == parsed.layout
    assert folded.source == PipeSource(parsed.source.location, " ".join(parsed.source.options.split()))


@pytest.mark.parametrize(
    "copy",
    [
        "COPY INTO t FROM @stage/orders/",
        'COPY INTO t ("ID", "X") FROM (SELECT $1, $2 FROM @stage/orders/)',
        'COPY INTO t ("ID", "_AURORA_SYNC_UNREPRESENTABLE", "_AURORA_SYNC_FILE", "_AURORA_SYNC_ROW", '
        '"_AURORA_SYNC_LOADED_AT") FROM (SELECT $2, $1, METADATA$FILENAME, METADATA$FILE_ROW_NUMBER, '
        "METADATA$START_SCAN_TIME FROM @stage/orders/)",
    ],
)
def test_a_pipe_aurora_sync_did_not_write_is_not_read_as_a_layout(copy: str) -> None:
    assert parse_pipe(copy) is None


# --- the planner's schema step -------------------------------------------------------------------
def loaded(**config: Any) -> LoadedTable:
    document = {"table": "orders", "primary_key": ["id"], "target": "ORDERS", **config}
    return LoadedTable("orders", "/aurora-sync/tables/orders", TableConfig.model_validate(document))


def snowflake(catalog: list[SourceColumn], **types: str) -> tuple[WarehouseColumns, dict[str, Pipe]]:
    """STAGING, FINAL and the pipe as `aurora-sync sql snowflake` created them for ``catalog``,
    with column types overridden by ``types`` (Snowflake name -> declared type)."""
    spec = table_spec(
        name="orders",
        target="ORDERS",
        catalog=catalog,
        schema="public",
        table="orders",
        columns=None,
        primary_key=["id"],
        cursor="updated_at",
    )
    staging = {
        n: declared_type(types.get(n, m.staging_type))
        for n, m in zip(spec.snowflake_names, spec.columns, strict=True)
    }
    final = {
        n: declared_type(types.get(n, m.final_type))
        for n, m in zip(spec.snowflake_names, spec.columns, strict=True)
    }
    data_types = {n: t.family for n, t in final.items()}
    statement = render_pipe(SETUP, spec)
    pipe = Pipe("ORDERS_PIPE", statement[statement.index("AS COPY") + 3 :], "loads orders", True)
    return WarehouseColumns({"ORDERS": staging}, {"ORDERS": final}, {"ORDERS": data_types}), {pipe.name: pipe}


def evolve(
    catalog: list[SourceColumn] | None, warehouse: WarehouseColumns, pipes: dict[str, Pipe], **config: Any
) -> Any:
    return plan_evolution(loaded(**config), catalog, warehouse, pipes, OBJECTS, today=TODAY)


def test_unchanged_columns_need_no_statement() -> None:
    evolution = evolve(BASE, *snowflake(BASE))
    assert evolution.error is None and evolution.statements == []
    assert evolution.fingerprint == fingerprint(layout(BASE))


def test_an_added_column_is_added_then_the_merge_and_last_the_pipe_are_replaced() -> None:
    grown = [*BASE, col("active", BOOL, 4, True)]
    evolution = evolve(grown, *snowflake(BASE))
    assert evolution.error is None and evolution.added == ["ACTIVE"]
    staging, final, task, pipe = evolution.statements
    assert staging == f'ALTER TABLE {OBJECTS.staging_table} ADD COLUMN "ACTIVE" BOOLEAN'
    assert final == f'ALTER TABLE {OBJECTS.final_table} ADD COLUMN "ACTIVE" BOOLEAN'
    assert task.startswith(f"ALTER TASK {OBJECTS.merge_task} MODIFY AS MERGE INTO {OBJECTS.final_table}")
    assert '"ACTIVE"' in task
    assert pipe.startswith(
        f"CREATE OR REPLACE PIPE {OBJECTS.pipe}\n    AUTO_INGEST = TRUE\n    COMMENT = 'loads orders'"
    )
    replaced = parse_pipe(pipe[pipe.index("AS COPY") + 3 :])
    assert replaced is not None and replaced.layout == ["ID", "NOTE", "UPDATED_AT", "ACTIVE"]
    assert evolution.fingerprint == fingerprint(layout(grown))


def test_a_dropped_column_only_leaves_the_pipe() -> None:
    evolution = evolve([BASE[0], BASE[2]], *snowflake(BASE))
    assert evolution.dropped == ["NOTE"] and evolution.added == []
    task, pipe = evolution.statements
    assert task.startswith("ALTER TASK") and '"NOTE"' not in task
    replaced = parse_pipe(pipe[pipe.index("AS COPY") + 3 :])
    assert replaced is not None and replaced.layout == ["ID", "UPDATED_AT"]


def test_a_column_dropped_and_added_again_reorders_the_pipe() -> None:
    readded = [BASE[0], BASE[2], col("note", TEXT, 4)]
    evolution = evolve(readded, *snowflake(BASE))
    assert evolution.reordered and evolution.added == [] and evolution.dropped == []
    assert len(evolution.statements) == 2
    assert '("ID", "UPDATED_AT", "NOTE", "_AURORA_SYNC_UNREPRESENTABLE"' in evolution.statements[-1]


def test_a_widened_column_is_widened_in_staging_and_final() -> None:
    before = [
        BASE[0],
        col("qty", INT4, 2),
        col("code", PgType("varchar", "character varying(10)", "S"), 3),
        BASE[2],
    ]
    after = [
        BASE[0],
        col("qty", INT8, 2),
        col("code", PgType("varchar", "character varying(40)", "S"), 3),
        BASE[2],
    ]
    evolution = evolve(after, *snowflake(before))
    assert evolution.error is None and evolution.widened == ["QTY", "CODE"]
    assert evolution.statements[:4] == [
        f'ALTER TABLE {OBJECTS.staging_table} ALTER COLUMN "QTY" SET DATA TYPE NUMBER(19,0)',
        f'ALTER TABLE {OBJECTS.staging_table} ALTER COLUMN "CODE" SET DATA TYPE VARCHAR(40)',
        f'ALTER TABLE {OBJECTS.final_table} ALTER COLUMN "QTY" SET DATA TYPE NUMBER(19,0)',
        f'ALTER TABLE {OBJECTS.final_table} ALTER COLUMN "CODE" SET DATA TYPE VARCHAR(40)',
    ]


def test_an_unsafe_change_fails_the_table_naming_the_change_and_the_statements_that_resolve_it() -> None:
    before = [BASE[0], col("code", TEXT, 2), BASE[2]]
    after = [BASE[0], col("code", INT4, 2), BASE[2]]
    evolution = evolve(after, *snowflake(before))
    assert isinstance(evolution.error, UnsafeSchemaChange) and evolution.statements == []
    message = str(evolution.error)
    assert (
        "STAGING column \"CODE\" is VARCHAR, but source column 'code' is now integer (NUMBER(10,0))"
        in message
    )
    assert "Snowflake cannot change a VARCHAR column to NUMBER(10,0) in place" in message
    assert f'ALTER TABLE {OBJECTS.staging_table} RENAME COLUMN "CODE" TO "CODE_BEFORE_20261202"' in message
    assert f'ALTER TABLE {OBJECTS.final_table} RENAME COLUMN "CODE" TO "CODE_BEFORE_20261202"' in message
    narrowed = evolve(before, *snowflake(before, CODE="VARCHAR(99999999)"))
    assert isinstance(narrowed.error, UnsafeSchemaChange) and "a narrowing" in str(narrowed.error)


def test_missing_objects_and_foreign_pipes_fail_the_table_naming_the_fix() -> None:
    columns, pipes = snowflake(BASE)
    missing_source = evolve(None, columns, pipes)
    assert isinstance(missing_source.error, SourceObjectMissing)
    assert "source table public.orders does not exist" in str(missing_source.error)
    no_pipe = evolve(BASE, columns, {})
    assert isinstance(no_pipe.error, WarehouseObjectMissing)
    assert "aurora-sync sql snowflake --tables orders --apply" in str(no_pipe.error)
    foreign = {"ORDERS_PIPE": Pipe("ORDERS_PIPE", "COPY INTO t FROM @s/orders/", None, True)}
    assert isinstance(evolve(BASE, columns, foreign).error, UnrecognizedPipe)
    no_final = WarehouseColumns(columns.staging, {}, {})
    assert evolve(BASE, no_final, pipes).error is None  # the watermarks name the missing FINAL
    gone = evolve(BASE, columns, pipes, columns=["id", "updated_at", "gone"])
    assert isinstance(gone.error, SourceObjectMissing)


# --- the exporter ---------------------------------------------------------------------------------
def export_plan(catalog: list[SourceColumn]) -> Any:
    return build_plan(
        catalog,
        schema="public",
        table="orders",
        name="orders",
        configured_columns=None,
        cursor="updated_at",
        primary_key=["id"],
    )


def test_the_exporter_follows_the_planned_layout_or_refuses() -> None:
    planned = planned_item(BASE)
    plan, late = follow_layout(export_plan(BASE), planned)
    assert [c.name for c in plan.columns] == ["id", "note", "updated_at"] and late == []
    plan, late = follow_layout(export_plan([*BASE, col("active", BOOL, 4)]), planned)
    assert [c.name for c in plan.columns] == ["id", "note", "updated_at"]
    assert [c.name for c in late] == ["active"] and len(plan.mappings) == 3
    for changed in ([BASE[0], BASE[2]], [BASE[0], col("note", INT4, 2), BASE[2]]):
        with pytest.raises(LayoutChanged, match="nothing was exported"):
            follow_layout(export_plan(changed), planned)
    unchecked = planned.model_copy(update={"layout": None})
    assert follow_layout(export_plan([BASE[0], BASE[2]]), unchecked)[0].columns == [BASE[0], BASE[2]]


def test_the_layout_costs_26_bytes_per_work_item() -> None:
    """Measured on test_planning.py's reference item (a 19-character table name)."""
    config = LoadedTable(
        "order_items_history",
        "/p/order_items_history",
        TableConfig.model_validate({"table": "order_items_history", "primary_key": ["id"]}),
    )
    window = choose_window(config, watermark=datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC))
    run_id = "scheduled-2024-05-06T07-15-00-a1b2c3d4e5f6a7b8c9d0e1f2"
    plain = work_item(run_id, config, window).model_dump(by_alias=True, mode="json", exclude_defaults=True)
    checked = work_item(run_id, config, window, layout="0123456789ab")
    document = checked.model_dump(by_alias=True, mode="json", exclude_defaults=True)
    assert len(json.dumps(document)) - len(json.dumps(plain)) == 26  # , "layout": "0123456789ab"
    # About 320 bytes an item in a manifest's batch (docstring of planner.app).
    per_table = len(json.dumps(document)) + 2
    assert 320 <= per_table <= 330
