"""Generated Snowflake SQL, checked offline with sqlglot's Snowflake dialect (syntax the local
emulator might accept or reject differently from a real account)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from aurora_sync.errors import SourceObjectMissing
from aurora_sync.settings import RuntimeSettings
from aurora_sync.snowflake_objects import (
    FILE_PATTERN,
    PipeSource,
    SqlConfigError,
    TableSpec,
    key_copy_statement,
    missing_keys_query,
    reconcile_delete,
    staging_columns,
    table_spec,
)
from aurora_sync.snowflake_tables import (
    MERGE_TARGET_COMPLETION_INTERVAL,
    SnowflakeSetup,
    render_drift,
    render_merge,
    render_pipe,
    render_table,
)
from aurora_sync.source_catalog import SourceColumn
from aurora_sync.typemap import PgType
from aurora_sync.verifying.load_history import EXECUTE_TASKS_PROCEDURE
from aurora_sync_ops.snowflake_sql import render_setup

SETUP = SnowflakeSetup(
    bucket="aurora-sync-data-lake",
    storage_role_arn="arn:aws:iam::123456789012:role/sf-read",
    storage_external_id="aurora-sync-1c2fa620-982a-11e3-aff7-50e2416294e0",
)

CATALOG = [
    SourceColumn("id", PgType("int8", "bigint", "N"), True),
    SourceColumn("Order Note", PgType("text", "text", "S"), False),
    SourceColumn("payload", PgType("jsonb", "jsonb", "U"), False),
    SourceColumn("tags", PgType("_text", "text[]", "A", PgType("text", "text", "S")), False),
    SourceColumn("is_deleted", PgType("bool", "boolean", "B"), False),
    SourceColumn("deleted_at", PgType("timestamptz", "timestamp with time zone", "D"), False),
    SourceColumn("updated_at", PgType("timestamptz", "timestamp with time zone", "D"), True),
]

# Statements sqlglot only knows as an opaque Command; their embedded query is parsed instead.
SNOWFLAKE_ONLY = re.compile(
    r"^(CREATE (OR REPLACE )?(PIPE|TASK|STREAM|ROLE|USER)|ALTER (TASK|STORAGE INTEGRATION)"
    r"|GRANT (ROLE|SELECT|.* ON FUTURE))"
)


def spec(**overrides: object) -> TableSpec:
    arguments: dict[str, object] = {
        "name": "orders",
        "target": "ORDERS",
        "catalog": CATALOG,
        "schema": "public",
        "table": "orders",
        "columns": None,
        "primary_key": ["id"],
        "cursor": "updated_at",
    }
    arguments.update(overrides)
    return table_spec(**arguments)  # type: ignore[arg-type]


def parse(statement: str) -> exp.Expr:
    parsed = sqlglot.parse_one(statement, read="snowflake")
    assert parsed is not None
    return parsed


def check(statement: str) -> None:
    parsed = parse(statement)
    if not isinstance(parsed, exp.Command):
        return
    assert SNOWFLAKE_ONLY.match(statement), f"sqlglot could not parse: {statement[:120]}"
    body = re.search(r"\bAS\s+(MERGE|COPY|DELETE)\b.*", statement, flags=re.DOTALL)
    if body:
        inner = parse(body.group(0)[3:])
        assert not isinstance(inner, exp.Command), f"embedded statement unparsed: {body.group(0)[:120]}"


@pytest.mark.parametrize("mode", ["delete", "flag"])
def test_every_generated_statement_parses_as_snowflake(mode: str) -> None:
    statements = render_setup(SETUP) + render_table(
        SETUP, spec(soft_delete_column="deleted_at", soft_delete_mode=mode)
    )
    assert len(statements) > 20
    for statement in statements:
        check(statement)


def test_merge_applies_accounted_files_newest_snapshot_first() -> None:
    merge = parse(render_merge(SETUP, spec()))
    assert isinstance(merge, exp.Merge)
    sql = render_merge(SETUP, spec())
    # Only rows of files a run accounted for (and that were not merged before) reach FINAL.
    assert 'FROM "AURORA_SYNC"."STAGING"."ORDERS_STREAM" AS st' in sql
    assert (
        'JOIN "AURORA_SYNC"."STAGING"."_AURORA_SYNC_FILES" AS l ON l.FILE_NAME = st."_AURORA_SYNC_FILE" '
        "AND l.TARGET = 'ORDERS' AND l.MERGED_AT IS NULL"
    ) in sql
    # Versions are ordered by the source snapshot they were read in, never by the cursor.
    assert (
        'QUALIFY ROW_NUMBER() OVER (PARTITION BY st."ID" ORDER BY l.SNAPSHOT_ORDER DESC, '
        'st."_AURORA_SYNC_ROW" DESC) = 1'
    ) in sql
    # The cursor is compared for a difference in value only, never for order.
    assert '"UPDATED_AT" DESC' not in sql and 't."UPDATED_AT" <' not in sql and 't."UPDATED_AT" >' not in sql
    # An older snapshot never overwrites a newer one; the same version again may.
    newer = '(s."_AURORA_SYNC_SNAPSHOT" >= t."_AURORA_SYNC_SNAPSHOT" OR t."_AURORA_SYNC_SNAPSHOT" IS NULL)'
    # A row is rewritten (and stamped with the sync time) only when a value differs; the same
    # values from a newer snapshot advance FINAL's snapshot alone.
    changed = sql.split(f"WHEN MATCHED AND {newer} AND (", 1)[1].split(") THEN UPDATE SET ", 1)[0]
    assert changed.split(" OR ") == [
        f"t.{c} IS DISTINCT FROM s.{c}"
        for c in ('"Order Note"', '"PAYLOAD"', '"TAGS"', '"IS_DELETED"', '"DELETED_AT"', '"UPDATED_AT"')
    ] + ['t."_AURORA_SYNC_UNREPRESENTABLE" IS DISTINCT FROM s."_AURORA_SYNC_UNREPRESENTABLE"']
    assert sql.index('"_AURORA_SYNC_SYNCED_AT" = CURRENT_TIMESTAMP()') < sql.index(
        f'WHEN MATCHED AND {newer} THEN UPDATE SET "_AURORA_SYNC_SNAPSHOT" = s."_AURORA_SYNC_SNAPSHOT"\n'
    )
    # A key that is NULL after the type map is left out instead of failing the whole MERGE.
    assert 'WHERE st."ID" IS NOT NULL' in sql
    assert 'PARSE_JSON(st."PAYLOAD") AS "PAYLOAD"' in sql and 'PARSE_JSON(st."TAGS")::ARRAY AS "TAGS"' in sql
    assert "THEN DELETE" not in sql


def test_merge_refuses_a_target_that_is_not_a_plain_identifier() -> None:
    with pytest.raises(SqlConfigError, match="target"):
        render_merge(SETUP, replace(spec(), target="ORDERS' OR '1'='1"))


def test_soft_delete_modes() -> None:
    deleting = render_merge(SETUP, spec(soft_delete_column="deleted_at"))
    assert 'AND s."DELETED_AT" IS NOT NULL THEN DELETE' in deleting
    assert 'WHEN NOT MATCHED AND NOT (s."DELETED_AT" IS NOT NULL) THEN INSERT' in deleting
    flagging = render_merge(SETUP, spec(soft_delete_column="is_deleted", soft_delete_mode="flag"))
    assert "THEN DELETE" not in flagging
    assert '"_AURORA_SYNC_DELETED" = COALESCE(s."IS_DELETED", FALSE)' in flagging
    # A row flagged deleted at the source differs in its soft-delete column: it is rewritten.
    assert 't."IS_DELETED" IS DISTINCT FROM s."IS_DELETED"' in flagging
    final = render_table(SETUP, spec(soft_delete_column="is_deleted", soft_delete_mode="flag"))[1]
    assert '"_AURORA_SYNC_DELETED" BOOLEAN' in final


def test_pipe_columns_follow_the_export_order_and_match_part_files() -> None:
    the_spec = spec(columns=["updated_at", "id", "Order Note"])
    pipe = render_pipe(SETUP, the_spec)
    assert staging_columns(the_spec)[:4] == ["UPDATED_AT", "ID", "Order Note", "_AURORA_SYNC_UNREPRESENTABLE"]
    assert '("UPDATED_AT", "ID", "Order Note", "_AURORA_SYNC_UNREPRESENTABLE", "_AURORA_SYNC_FILE"' in pipe
    assert (
        "SELECT $1, $2, $3, $4, METADATA$FILENAME, METADATA$FILE_ROW_NUMBER, METADATA$START_SCAN_TIME" in pipe
    )
    assert 'FROM @"AURORA_SYNC"."STAGING"."AURORA_SYNC_STAGE"/orders/)' in pipe
    for name in ("0192c1f0-aaaa-7bbb-8ccc-123456789abc.csv", "x.csv_part2", "x.csv_part13"):
        assert re.fullmatch(FILE_PATTERN, f"orders/2026/11/26/03/{name}")
    assert not re.fullmatch(FILE_PATTERN, "orders/2026/11/26/03/x.csv.tmp")


def test_types_come_from_the_type_map() -> None:
    staging, final = render_table(SETUP, spec())[:2]
    assert '"PAYLOAD" VARCHAR' in staging and '"PAYLOAD" VARIANT' in final
    assert '"TAGS" ARRAY' in final and '"UPDATED_AT" TIMESTAMP_TZ(6)' in final
    assert '"ID" NUMBER(19,0) NOT NULL' in final and 'PRIMARY KEY ("ID")' in final
    assert '"_AURORA_SYNC_LOADED_AT" TIMESTAMP_TZ' in staging and '"_AURORA_SYNC_SYNCED_AT"' in final


def test_drift_adds_columns_then_replaces_pipe_and_tasks() -> None:
    the_spec = spec()
    existing = ["ID", "Order Note", "PAYLOAD", "TAGS", "IS_DELETED", "UPDATED_AT"]
    final_existing = [*existing, "_AURORA_SYNC_SNAPSHOT"]
    statements = render_drift(SETUP, the_spec, staging_existing=existing, final_existing=final_existing)
    assert (
        statements[0]
        == 'ALTER TABLE "AURORA_SYNC"."STAGING"."ORDERS" ADD COLUMN "DELETED_AT" TIMESTAMP_TZ(6)'
    )
    assert (
        statements[1] == 'ALTER TABLE "AURORA_SYNC"."FINAL"."ORDERS" ADD COLUMN "DELETED_AT" TIMESTAMP_TZ(6)'
    )
    assert statements[2].startswith('CREATE OR REPLACE PIPE "AURORA_SYNC"."STAGING"."ORDERS_PIPE"')
    assert all(s.startswith("CREATE OR REPLACE TASK") for s in statements[3:5])
    assert statements[5] == 'ALTER TASK "AURORA_SYNC"."STAGING"."ORDERS_RETENTION" RESUME'
    assert len(statements) == 6
    for statement in statements:
        check(statement)
    every = [*existing, "DELETED_AT"]
    final_every = [*every, "_AURORA_SYNC_SNAPSHOT"]
    assert render_drift(SETUP, the_spec, staging_existing=every, final_existing=final_every) == []


def test_drift_gives_an_older_final_its_snapshot_column_without_touching_the_pipe() -> None:
    every = ["ID", "Order Note", "PAYLOAD", "TAGS", "IS_DELETED", "UPDATED_AT", "DELETED_AT"]
    statements = render_drift(SETUP, spec(), staging_existing=every, final_existing=every)
    assert statements[0] == (
        'ALTER TABLE "AURORA_SYNC"."FINAL"."ORDERS" ADD COLUMN "_AURORA_SYNC_SNAPSHOT" NUMBER(38,0)'
    )
    assert not any("PIPE" in s for s in statements)
    merge_task = 'CREATE OR REPLACE TASK "AURORA_SYNC"."STAGING"."ORDERS_MERGE"'
    assert any(s.startswith(merge_task) for s in statements)


def test_config_mismatches_are_named() -> None:
    with pytest.raises(SourceObjectMissing, match="'gone'"):
        spec(columns=["id", "updated_at", "gone"])
    with pytest.raises(SqlConfigError, match="soft_delete_column 'deleted_at' is not exported"):
        spec(columns=["id", "updated_at"], soft_delete_column="deleted_at")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("database", 'X"; DROP DATABASE Y; --', "not a plain Snowflake identifier"),
        ("bucket", "Bad_Bucket", "not a valid S3 bucket name"),
        ("storage_role_arn", "arn:aws:iam::1:role/x' OR 1=1", "not an IAM role ARN"),
    ],
)
def test_hostile_setup_values_are_refused(field: str, value: str, message: str) -> None:
    values: dict[str, str] = {
        "bucket": "b-bucket",
        "storage_role_arn": "arn:aws:iam::123456789012:role/r",
        field: value,
    }
    with pytest.raises(SqlConfigError, match=message):
        SnowflakeSetup(**values)  # type: ignore[arg-type]


def test_file_format_keeps_postgres_csv_exact() -> None:
    """NULL vs '' apart, and backslashes literal: PostgreSQL's CSV never escapes with them."""
    (file_format,) = [s for s in render_setup(SETUP) if s.startswith("CREATE FILE FORMAT")]
    for option in (
        "FIELD_OPTIONALLY_ENCLOSED_BY = '\"'",
        "EMPTY_FIELD_AS_NULL = TRUE",
        "NULL_IF = ()",
        "ESCAPE = NONE",
        "ESCAPE_UNENCLOSED_FIELD = NONE",
        "ERROR_ON_COLUMN_COUNT_MISMATCH = TRUE",
    ):
        assert option in file_format


def test_the_setup_procedure_is_one_statement_with_its_body_and_is_granted_to_the_service_role() -> None:
    """The body between $$ holds semicolons of its own: splitting the setup keeps it whole, and
    the verifier's procedure runs with its caller's rights, names only through IDENTIFIER()."""
    statements = render_setup(SETUP)
    (procedure,) = [s for s in statements if s.startswith("CREATE OR REPLACE PROCEDURE")]
    assert procedure.startswith(
        f'CREATE OR REPLACE PROCEDURE "AURORA_SYNC"."STAGING"."{EXECUTE_TASKS_PROCEDURE}"(TASKS ARRAY)'
    )
    assert procedure.endswith("END;\n$$") and procedure.count("$$") == 2
    assert "EXECUTE AS CALLER" in procedure and "EXECUTE TASK IDENTIFIER(:task_name);" in procedure
    assert "EXECUTE IMMEDIATE" not in procedure and "||" not in procedure
    grant = statements[statements.index(procedure) + 1]
    assert grant == (
        f'GRANT USAGE ON PROCEDURE "AURORA_SYNC"."STAGING"."{EXECUTE_TASKS_PROCEDURE}"(ARRAY) '
        'TO ROLE "AURORA_SYNC_SERVICE"'
    )


# --- key snapshots -----------------------------------------------------------------------------------
def test_every_table_gets_a_keys_table_with_the_key_in_staging_types() -> None:
    composite = spec(primary_key=["id", "payload"], cursor=None)
    statements = render_table(SETUP, composite)
    keys = next(s for s in statements if '"STAGING"."ORDERS_KEYS"' in s.split("(")[0])
    columns = parse(keys).find(exp.Schema)
    assert columns is not None
    assert [c.sql("snowflake") for c in columns.expressions] == [
        '"ID" DECIMAL(19, 0)',
        '"PAYLOAD" VARCHAR',  # STAGING keeps JSON as text; the DELETE converts it as the MERGE does
        '"_AURORA_SYNC_FILE" VARCHAR',
    ]
    assert statements.index(keys) < next(i for i, s in enumerate(statements) if "CREATE PIPE" in s)
    # The service role's STAGING future grants cover it: SELECT, INSERT, DELETE.
    assert any("SELECT, INSERT, DELETE ON FUTURE TABLES IN SCHEMA" in s for s in render_setup(SETUP))


def test_a_table_without_a_cursor_renders_and_its_key_must_exist() -> None:
    assert spec(cursor=None).cursor is None
    with pytest.raises(SourceObjectMissing, match="primary_key column"):
        spec(cursor=None, primary_key=["nope"])


def test_reconcile_delete_never_touches_rows_read_after_the_snapshot_and_converts_keys() -> None:
    objects = SETUP.objects("ORDERS")
    delete = reconcile_delete(objects, ["ID", "PAYLOAD"], {"ID": "NUMBER", "PAYLOAD": "VARIANT"}, True)
    assert delete == (
        'DELETE FROM "AURORA_SYNC"."FINAL"."ORDERS" f WHERE COALESCE(f."_AURORA_SYNC_SNAPSHOT", 0) '
        "<= CAST(? AS NUMBER(38,0)) AND NOT EXISTS (SELECT 1 FROM "
        '"AURORA_SYNC"."STAGING"."ORDERS_KEYS" AS k WHERE k."_AURORA_SYNC_FILE" '
        "IN (SELECT VALUE::STRING FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?)))) "
        'AND k."ID" = f."ID" AND PARSE_JSON(k."PAYLOAD") = f."PAYLOAD")'
    )
    check(delete)
    # The snapshot order and the file names (one JSON array, whatever their number) are bound,
    # never formatted.
    assert delete.count("?") == 2
    check(missing_keys_query(objects, ["ID"], {"ID": "NUMBER"}))


def test_key_copy_refuses_file_names_the_exporter_never_writes() -> None:
    source = PipeSource(
        '@"AURORA_SYNC"."STAGING"."AURORA_SYNC_STAGE"/orders/',
        'FILE_FORMAT = (FORMAT_NAME = \'"AURORA_SYNC"."STAGING"."AURORA_SYNC_CSV"\')\nPATTERN = \'.*\'',
    )
    good = f"_aurora_sync_keys/orders/2026/01/02/03/s{7:026d}-0190a3c4-0000-7000-8000-000000000000.csv"
    copy = key_copy_statement('"AURORA_SYNC"."STAGING"."ORDERS_KEYS"', ["ID"], source, "orders", [good])
    assert f"FILES = ('{good}')" in copy and "FORCE = TRUE" in copy and "ON_ERROR = ABORT_STATEMENT" in copy
    assert 'FROM (SELECT $1, METADATA$FILENAME FROM @"AURORA_SYNC"."STAGING"."AURORA_SYNC_STAGE"/)' in copy
    for hostile in (
        good.replace("orders", "other"),
        good + "') FORCE = FALSE --",
        "orders/2026/01/02/03/x.csv",
    ):
        with pytest.raises(SqlConfigError, match="not a key snapshot file"):
            key_copy_statement('"K"', ["ID"], source, "orders", [hostile])
    # Snowflake compiles a COPY of at most 1,000 FILES: the verifier loads more in several.
    assert key_copy_statement('"K"', ["ID"], source, "orders", [good] * 1000).count(good) == 1000
    for count in (0, 1001):
        with pytest.raises(SqlConfigError, match=f"1 to 1000 files, not {count}"):
            key_copy_statement('"K"', ["ID"], source, "orders", [good] * count)


# --- the MERGE task: a serverless triggered task nothing resumes -------------------------------------
def test_the_merge_task_is_a_serverless_triggered_task_with_a_target_completion_interval() -> None:
    """docs.snowflake.com/user-guide/tasks-triggered: WHEN without SCHEDULE makes a triggered task;
    serverless (no WAREHOUSE) it must set TARGET_COMPLETION_INTERVAL."""
    (task,) = [
        s for s in render_table(SETUP, spec()) if s.startswith("CREATE OR REPLACE TASK") and "_MERGE" in s
    ]
    header = task.split("\nAS ", 1)[0]
    assert "WHEN SYSTEM$STREAM_HAS_DATA(" in header
    assert "SCHEDULE" not in header and "WAREHOUSE =" not in header and "AFTER" not in header
    assert f"TARGET_COMPLETION_INTERVAL = '{MERGE_TARGET_COMPLETION_INTERVAL}'" in header
    # Below the verifier's default merge timeout (MERGE_TIMEOUT_SECONDS = 900 s), as its comment says.
    amount, unit = MERGE_TARGET_COMPLETION_INTERVAL.split()
    assert (
        unit == "MINUTES" and int(amount) * 60 < RuntimeSettings.model_fields["merge_timeout_seconds"].default
    )


def test_nothing_the_product_renders_or_ships_resumes_a_merge_task() -> None:
    """A resumed triggered task merges whenever its stream has rows, before the verifier verified
    the run; only the verifier's EXECUTE TASK may run it. Every RESUME in the rendered statements
    and in the shipped sources is the retention task's."""
    the_spec = spec()
    rendered = [
        *render_setup(SETUP),
        *render_table(SETUP, the_spec),
        *render_drift(SETUP, the_spec, staging_existing=["ID"], final_existing=["ID"]),
    ]
    resumes = [s for s in rendered if re.search(r"\bRESUME\b", s)]
    assert resumes and all(s.endswith('"ORDERS_RETENTION" RESUME') for s in resumes)
    root = Path(__file__).resolve().parents[2]
    shipped = [
        path
        for folder in ("functions", "sql", "statemachine", "ops/aurora_sync_ops")
        for path in (root / folder).rglob("*")
        if path.suffix in {".py", ".sql", ".json", ".yaml"} and "local" not in path.relative_to(root).parts
    ]
    found = {
        f"{path.relative_to(root)}: {line.strip()}"
        for path in shipped
        for line in path.read_text().splitlines()
        if re.search(r"\bRESUME\b", line) and "PIPE_FORCE_RESUME" not in line
    }
    assert found == {
        'functions/aurora_sync/snowflake_tables.py: resume=f"ALTER TASK {objects.retention_task} RESUME",'
    }
