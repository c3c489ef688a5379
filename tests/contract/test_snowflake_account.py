"""Contract tests: the product's Snowflake SQL and the facts it relies on, against a REAL account.

Each ``snowflake_account`` test runs the product's own statements (the file format of
04_stage.sql, the STAGING/FINAL/stream DDL of ``render_table``, the pipe's COPY of
``render_pipe`` and the MERGE of ``render_merge``) on a real account, with files PUT into a
temporary internal stage in place of S3. Skipped without SNOWFLAKE_* (see conftest.py).

The expected values are module constants shared with the offline tests at the end, which check
that the local emulator and the verifier agree with them, so the three cannot drift apart silently.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fakesnow.dialect import parse_one
from snowflake.connector import errors as sf_errors

from aurora_sync.errors import WarehouseObjectMissing, WarehouseQueryFailed
from aurora_sync.ledger import Ledger
from aurora_sync.naming import FILE_COLUMN, ROW_COLUMN, SNAPSHOT_COLUMN, SYNCED_AT_COLUMN, quote
from aurora_sync.snowflake_objects import (
    TableSpec,
    key_copy_statement,
    missing_keys_query,
    reconcile_delete,
    table_spec,
)
from aurora_sync.snowflake_tables import SnowflakeSetup, pipe_source, render_merge, render_pipe, render_table
from aurora_sync.source_catalog import SourceColumn
from aurora_sync.typemap import UNREPRESENTABLE_COLUMN, PgType
from aurora_sync.verifying.decide import FAILED_LOAD_STATES
from aurora_sync.verifying.load_history import LOADED, TableFiles, execute_tasks, read_copy_history
from aurora_sync.verifying.verify import LOADS_PER_CALL
from aurora_sync.warehouse_db import bound_list, classify_warehouse_error, connect_warehouse
from aurora_sync_ops.local.snowflake import history as emulator_history
from aurora_sync_ops.local.snowflake.catalog import ObjectName
from aurora_sync_ops.local.snowflake.csv_load import HISTORY_RESULT_SET, LoadSpec, load_csv
from aurora_sync_ops.local.snowflake.pipes import parse_options
from aurora_sync_ops.snowflake_sql import render_setup

# --- the contract --------------------------------------------------------------------------------

# One source table shape for every test: the CSV fields are these columns in order, then the
# unrepresentable-values column the exporter always appends (empty = NULL here).
CATALOG = [
    SourceColumn("id", PgType("int8", "bigint", "N"), True),
    SourceColumn("note", PgType("text", "text", "S"), False),
    SourceColumn("label", PgType("text", "text", "S"), False),
    SourceColumn("updated_at", PgType("timestamptz", "timestamp with time zone", "D"), True),
    SourceColumn("local_at", PgType("timestamp", "timestamp without time zone", "D"), False),
]
WHEN = "2026-01-02T03:04:05.000000Z,2026-01-02T03:04:05.000000"

# PostgreSQL's CSV (what aws_s3.query_export_to_s3 writes): NULL is an unquoted empty field, '' is
# "", a quote inside a value is doubled, a value with a newline or comma is quoted, and a
# backslash is written as is, unquoted.
NULLS_CSV = (
    f'1,,"",{WHEN},\n'
    f'2,"",,{WHEN},\n'
    f'3,"line one\nline two","say ""hi""",{WHEN},\n'
    f'4,C:\\temp\\new,"a,b",{WHEN},\n'
)
EXPECTED_NULL_ROWS = [
    (1, None, ""),
    (2, "", None),
    (3, "line one\nline two", 'say "hi"'),
    (4, "C:\\temp\\new", "a,b"),
]

# The exporter's text for timestamptz (UTC, microseconds, Z) and timestamp (wall clock).
TIMES_CSV = (
    "1,,,2026-01-02T03:04:05.123456Z,2026-01-02T03:04:05.123456,\n"
    "2,,,1969-12-31T23:59:59.999999Z,0001-01-01T00:00:00.000001,\n"
)
EXPECTED_TZ = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
EXPECTED_NTZ = datetime(2026, 1, 2, 3, 4, 5, 123456)
EXPECTED_TIME_TEXT = ("1969-12-31T23:59:59.999999+00:00", "0001-01-01T00:00:00.000001")

# Load outcomes: file → (its CSV, the COPY's ON_ERROR, COPY_HISTORY.STATUS, COPY result status).
GOOD_CSV = f"1,a,,{WHEN},\n2,b,,{WHEN},\n"
BAD_CSV = f"x,c,,{WHEN},\n"
PARTIAL_CSV = f"3,c,,{WHEN},\ny,d,,{WHEN},\n"
LOAD_CASES = {
    "good.csv": (GOOD_CSV, "SKIP_FILE", "Loaded", "LOADED"),
    "bad.csv": (BAD_CSV, "SKIP_FILE", "Load failed", "LOAD_FAILED"),
    "partial.csv": (PARTIAL_CSV, "CONTINUE", "Partially loaded", "PARTIALLY_LOADED"),
}
# Snowflake's wording of a value that does not convert (the emulator words it the same way).
NOT_RECOGNIZED = re.compile(r"Numeric value '[xy]' is not recognized")

# ERROR_ON_NONDETERMINISTIC_MERGE (default TRUE): a target row joined by several source rows.
NONDETERMINISTIC_MERGE_ERRNO = 100090
NONDETERMINISTIC_MERGE_SQLSTATE = "42P18"
NONDETERMINISTIC_MERGE_MESSAGE = "Duplicate row detected during DML action"

# --- helpers -------------------------------------------------------------------------------------

# render_setup needs a bucket, a storage role and its external id to fill in the integration and the
# external stage; the tests use only its file format statement, so these never reach Snowflake.
DUMMY_BUCKET = "aurora-sync-contract"
DUMMY_STORAGE_ROLE = "arn:aws:iam::123456789012:role/aurora-sync-contract"
DUMMY_EXTERNAL_ID = "aurora-sync-contract"


@dataclass(frozen=True)
class Account:
    """A session on the real account, and the setup whose schemas are this module's scratch schemas."""

    conn: Any
    setup: SnowflakeSetup

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        try:
            cur.execute(statement, tuple(params) or None)
            return list(cur.fetchall())
        finally:
            cur.close()

    def rows(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Result rows as {upper-case column name: value}."""
        cur = self.conn.cursor()
        try:
            cur.execute(statement, tuple(params) or None)
            names = [column[0].upper() for column in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            cur.close()


def file_format_statement(setup: SnowflakeSetup) -> str:
    """The product's CREATE FILE FORMAT, as ``aurora-sync sql snowflake --setup`` renders 04_stage.sql."""
    statements = [s for s in render_setup(setup) if s.startswith("CREATE FILE FORMAT")]
    assert len(statements) == 1, "sql/snowflake/ must hold exactly one CREATE FILE FORMAT"
    return statements[0]


@pytest.fixture(scope="module")
def account(account_secret: dict[str, Any]) -> Iterator[Account]:
    """Two uniquely named scratch schemas (STAGING and FINAL of the setup) holding the product's
    file format and a temporary internal stage; dropped with CASCADE at the end, whatever happened."""
    conn = connect_warehouse(account_secret, query_tag="aurora-sync-contract", statement_timeout_s=300)
    try:
        cur = conn.cursor()
        cur.execute("SELECT CURRENT_DATABASE()")
        row = cur.fetchone()
        cur.close()
        # The resolved name, not the variable: a lower-case unquoted SNOWFLAKE_DATABASE resolves
        # upper-case, and the product quotes every name it renders.
        database = str(row[0]) if row and row[0] else ""
        if not database:
            pytest.fail(
                f"SNOWFLAKE_DATABASE {account_secret['database']!r} is not a database this role can use: "
                "create it or GRANT USAGE on it to the role"
            )
        prefix = f"AURORA_SYNC_CONTRACT_{uuid.uuid4().hex[:10].upper()}"
        setup = SnowflakeSetup(
            bucket=DUMMY_BUCKET,
            storage_role_arn=DUMMY_STORAGE_ROLE,
            storage_external_id=DUMMY_EXTERNAL_ID,
            database=database,
            staging_schema=f"{prefix}_STAGING",
            final_schema=f"{prefix}_FINAL",
        )
        scratch = Account(conn=conn, setup=setup)
        schemas = [f"{quote(database)}.{quote(s)}" for s in (setup.staging_schema, setup.final_schema)]
        try:
            for schema in schemas:
                scratch.execute(f"CREATE SCHEMA {schema} COMMENT = 'aurora-sync contract test, safe to drop'")
            scratch.execute(file_format_statement(setup))
            for statement in render_setup(setup):
                if statement.startswith("CREATE TABLE") and "_AURORA_SYNC_" in statement:
                    scratch.execute(statement)  # the export ledger every MERGE joins
            # Internal and temporary: the tests PUT files in place of S3; it ends with the session.
            scratch.execute(f"CREATE TEMPORARY STAGE {setup.stage_ref.removeprefix('@')}")
            yield scratch
        finally:
            for schema in schemas:
                scratch.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        conn.close()


def make_table(account: Account, name: str, catalog: Sequence[SourceColumn] = CATALOG) -> TableSpec:
    """STAGING, FINAL and the stream of one table, from the product's own DDL (no pipe, no tasks:
    the tests run the pipe's COPY and the task's MERGE themselves)."""
    spec = table_spec(
        name=name,
        target=name.upper(),
        catalog=list(catalog),
        schema="public",
        table=name,
        columns=None,
        primary_key=["id"],
        cursor="updated_at",
    )
    for statement in render_table(account.setup, spec):
        if statement.startswith(("CREATE TABLE", "CREATE STREAM")):
            account.execute(statement)
    return spec


def pipe_copy(setup: SnowflakeSetup, spec: TableSpec, on_error: str | None = None) -> str:
    """The COPY the product's pipe runs (its AS clause), optionally with the ON_ERROR a pipe
    defaults to (SKIP_FILE) made explicit, since a bulk COPY defaults to ABORT_STATEMENT."""
    pipe = render_pipe(setup, spec)
    marker = "\nAS COPY INTO "
    assert marker in pipe
    copy = pipe[pipe.index(marker) + len("\nAS ") :]
    return f"{copy}\nON_ERROR = {on_error}" if on_error else copy


def put(account: Account, tmp_path: Path, spec: TableSpec, files: dict[str, str]) -> None:
    """PUT files under ``<table name>/`` of the stage, where the pipe's COPY reads. Uncompressed so
    the staged names are the names given (PUT gzips by default and appends .gz)."""
    for file_name, text in files.items():
        local = tmp_path / spec.name / file_name
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(text.encode())
        account.execute(
            f"PUT 'file://{local.as_posix()}' {account.setup.stage_ref}/{spec.name}/ "
            "AUTO_COMPRESS = FALSE OVERWRITE = TRUE"
        )


def copy_results(account: Account, statement: str) -> dict[str, dict[str, Any]]:
    """COPY INTO's result rows by staged file name (its FILE column holds the stage-relative path)."""
    rows = account.rows(statement)
    return {str(row["FILE"]).rsplit("/", 1)[-1]: row for row in rows}


def select(account: Account, table: str, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    names = ", ".join(quote(c) for c in columns)
    return account.execute(f'SELECT {names} FROM {table} ORDER BY "ID"')


# --- 1. NULL vs empty string ---------------------------------------------------------------------


@pytest.mark.snowflake_account
def test_null_and_empty_string_stay_apart_through_file_format_pipe_and_merge(
    account: Account, tmp_path: Path
) -> None:
    spec = make_table(account, "nulls")
    objects = account.setup.objects(spec.target)
    put(account, tmp_path, spec, {"rows.csv": NULLS_CSV})

    results = copy_results(account, pipe_copy(account.setup, spec))
    assert results["rows.csv"]["STATUS"] == "LOADED"
    assert results["rows.csv"]["ROWS_LOADED"] == 4

    staged = select(account, objects.staging_table, ["ID", "NOTE", "LABEL", UNREPRESENTABLE_COLUMN])
    assert [row[:3] for row in staged] == EXPECTED_NULL_ROWS
    assert [row[3] for row in staged] == [None] * 4
    # The load metadata the MERGE orders ties by: the stage-relative file name and a row number
    # that grows with the record (a quoted newline does not start a new record).
    meta = select(account, objects.staging_table, [FILE_COLUMN, ROW_COLUMN])
    assert all(str(file).endswith("nulls/rows.csv") for file, _ in meta)
    assert [int(number) for _, number in meta] == sorted(int(number) for _, number in meta)
    assert len({int(number) for _, number in meta}) == 4

    account.execute(render_merge(account.setup, spec))
    assert select(account, objects.final_table, ["ID", "NOTE", "LABEL"]) == EXPECTED_NULL_ROWS


# --- 2. timestamps with microseconds -------------------------------------------------------------


@pytest.mark.snowflake_account
def test_timestamps_round_trip_with_microseconds_in_utc(account: Account, tmp_path: Path) -> None:
    spec = make_table(account, "times")
    objects = account.setup.objects(spec.target)
    put(account, tmp_path, spec, {"times.csv": TIMES_CSV})
    assert copy_results(account, pipe_copy(account.setup, spec))["times.csv"]["STATUS"] == "LOADED"
    account.execute(render_merge(account.setup, spec))

    for table in (objects.staging_table, objects.final_table):
        rows = account.execute(f'SELECT "UPDATED_AT", "LOCAL_AT" FROM {table} WHERE "ID" = 1')
        assert len(rows) == 1
        tz_value, ntz_value = rows[0]
        assert tz_value == EXPECTED_TZ
        assert tz_value.microsecond == 123456
        assert tz_value.utcoffset() == timedelta(0)
        assert ntz_value == EXPECTED_NTZ
        assert ntz_value.tzinfo is None
        # Outside the epoch's positive range and at year 1 (typemap: years 1-9999 round-trip);
        # read as text so the connector's own conversion is not what is tested.
        text = account.execute(
            'SELECT TO_VARCHAR("UPDATED_AT", \'YYYY-MM-DD"T"HH24:MI:SS.FF6TZH:TZM\'), '
            f'TO_VARCHAR("LOCAL_AT", \'YYYY-MM-DD"T"HH24:MI:SS.FF6\') FROM {table} WHERE "ID" = 2'
        )
        assert text == [EXPECTED_TIME_TEXT]


# --- 3. MERGE: duplicates refused, the product's QUALIFY keeps the newest -------------------------


def _stage_rows(account: Account, spec: TableSpec, rows: Sequence[tuple[int, str, str, str, int]]) -> None:
    """Rows as the pipe would have loaded them: (id, note, updated_at, file, row number)."""
    table = account.setup.objects(spec.target).staging_table
    for row in rows:
        account.execute(
            f'INSERT INTO {table} ("ID", "NOTE", "UPDATED_AT", {quote(FILE_COLUMN)}, {quote(ROW_COLUMN)}) '
            "SELECT ?, ?, CAST(? AS TIMESTAMP_TZ(6)), ?, ?",
            row,
        )


def _account_for(account: Account, spec: TableSpec, files: dict[str, int]) -> None:
    """Files a verifier accounted for, with their snapshot orders, as ``ledger.record_runs`` writes them."""
    ledger = Ledger(account.setup.database, account.setup.staging_schema).files
    for name, order in files.items():
        account.execute(
            f"INSERT INTO {ledger} (TARGET, RUN_ID, FILE_NAME, SNAPSHOT_ORDER, ROWS_LOADED, ACCOUNTED_AT) "
            "SELECT ?, 'run', ?, ?, 1, CURRENT_TIMESTAMP()",
            (spec.target, name, order),
        )


@pytest.mark.snowflake_account
def test_merge_without_qualify_is_refused_and_the_product_merge_keeps_the_newest_snapshot(
    account: Account,
) -> None:
    spec = make_table(account, "merges")
    objects = account.setup.objects(spec.target)
    product_merge = render_merge(account.setup, spec)
    without_qualify, removed = re.subn(r"\n\s*QUALIFY ROW_NUMBER\(\) OVER \([^\n]*\) = 1", "", product_merge)
    assert removed == 1, "render_merge no longer dedupes with one QUALIFY line; update this test"

    _stage_rows(account, spec, [(1, "v1", "2026-01-01T00:00:00.000000Z", "merges/a.csv", 1)])
    _account_for(account, spec, {"merges/a.csv": 10})
    account.execute(product_merge)
    assert select(account, objects.final_table, ["ID", "NOTE"]) == [(1, "v1")]

    _stage_rows(
        account,
        spec,
        [
            (1, "v2", "2026-01-02T00:00:00.000000Z", "merges/b.csv", 1),
            (1, "v3", "2026-01-03T00:00:00.000000Z", "merges/b.csv", 2),
            # Committed last with an older now() stamp: read in the later snapshot, it wins.
            (1, "v4-committed-last", "2025-12-31T00:00:00.000000Z", "merges/c.csv", 1),
            (2, "earlier-snapshot", "2026-01-05T00:00:00.000000Z", "merges/b.csv", 3),
            (2, "later-snapshot", "2026-01-05T00:00:00.000000Z", "merges/c.csv", 2),
            # A file no verifier accounted for: consumed with the stream, never merged.
            (3, "stray", "2099-01-01T00:00:00.000000Z", "merges/stray.csv", 1),
        ],
    )
    _account_for(account, spec, {"merges/b.csv": 20, "merges/c.csv": 30})
    cur = account.conn.cursor()
    try:
        with pytest.raises(sf_errors.ProgrammingError) as info:
            cur.execute(without_qualify)
    finally:
        cur.close()
    assert info.value.errno == NONDETERMINISTIC_MERGE_ERRNO
    assert info.value.sqlstate == NONDETERMINISTIC_MERGE_SQLSTATE
    assert NONDETERMINISTIC_MERGE_MESSAGE in str(info.value)
    # The product reports it as a failed query (terminal), naming the code.
    classified = classify_warehouse_error(info.value, context="merge")
    assert type(classified) is WarehouseQueryFailed
    code = f"{NONDETERMINISTIC_MERGE_ERRNO:06d} (SQLSTATE {NONDETERMINISTIC_MERGE_SQLSTATE}"
    assert str(classified).startswith(f"merge: Snowflake error {code}")
    # The failed statement changed nothing and left the stream's rows for the next MERGE.
    assert select(account, objects.final_table, ["ID", "NOTE"]) == [(1, "v1")]

    account.execute(product_merge)
    final = select(account, objects.final_table, ["ID", "NOTE", SYNCED_AT_COLUMN])
    assert [row[:2] for row in final] == [(1, "v4-committed-last"), (2, "later-snapshot")]
    assert all(row[2] is not None for row in final)
    # The stream's offset moved past every row it held, the stray one included (Snowflake
    # advances a stream consumed by a DML whatever the DML's filters selected).
    assert account.execute(f"SELECT COUNT(*) FROM {objects.stream}") == [(0,)]


# --- 3b. The MERGE task as rendered: a serverless triggered task, run only by EXECUTE TASK ---------

TASK_FINISHED = ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED")
TASK_RUN_WAIT_S = 600  # serverless compute is provisioned on first use; a small MERGE ends well before


def _task_runs(account: Account, task_name: str, since: datetime) -> list[dict[str, Any]]:
    return account.rows(
        f"SELECT STATE, ERROR_MESSAGE, SCHEDULED_FROM FROM TABLE({quote(account.setup.database)}"
        ".INFORMATION_SCHEMA.TASK_HISTORY(TASK_NAME => ?, SCHEDULED_TIME_RANGE_START => ?::TIMESTAMP_LTZ)) "
        "WHERE DATABASE_NAME = ? AND SCHEMA_NAME = ?",
        (task_name, since.isoformat(), account.setup.database, account.setup.staging_schema),
    )


@pytest.mark.snowflake_account
def test_the_merge_task_as_rendered_is_accepted_suspended_and_runs_once_on_execute_task(
    account: Account,
) -> None:
    """render_table's MERGE task (WHEN, no SCHEDULE, no WAREHOUSE, TARGET_COMPLETION_INTERVAL) is a
    serverless triggered task a real account accepts; it is created suspended and nothing resumes
    it, and EXECUTE TASK runs it once, merging what the stream holds."""
    spec = make_table(account, "task_run")
    objects = account.setup.objects(spec.target)
    task_name = f"{spec.target}_MERGE"
    (create,) = [
        s
        for s in render_table(account.setup, spec)
        if s.startswith(f"CREATE OR REPLACE TASK {objects.merge_task}")
    ]
    account.execute(create)
    try:
        (shown,) = account.rows(
            f"SHOW TASKS LIKE '{task_name}' IN SCHEMA {quote(account.setup.database)}."
            f"{quote(account.setup.staging_schema)}"
        )
        assert shown["STATE"] == "suspended"
        assert shown["SCHEDULE"] is None and shown["WAREHOUSE"] is None
        assert "SYSTEM$STREAM_HAS_DATA" in shown["CONDITION"]

        _stage_rows(account, spec, [(1, "merged", "2026-01-01T00:00:00.000000Z", "task_run/a.csv", 1)])
        _account_for(account, spec, {"task_run/a.csv": 10})
        since = datetime.now(UTC) - timedelta(minutes=1)
        account.execute(f"EXECUTE TASK {objects.merge_task}")
        deadline = time.monotonic() + TASK_RUN_WAIT_S
        runs = _task_runs(account, task_name, since)
        while not (runs and all(r["STATE"] in TASK_FINISHED for r in runs)) and time.monotonic() < deadline:
            time.sleep(5)
            runs = _task_runs(account, task_name, since)
        assert [(r["STATE"], r["ERROR_MESSAGE"]) for r in runs] == [("SUCCEEDED", None)]
        assert select(account, objects.final_table, ["ID", "NOTE"]) == [(1, "merged")]
        # Still suspended: only EXECUTE TASK runs it (a resumed task would merge on every load).
        (after,) = account.rows(
            f"SHOW TASKS LIKE '{task_name}' IN SCHEMA {quote(account.setup.database)}."
            f"{quote(account.setup.staging_schema)}"
        )
        assert after["STATE"] == "suspended"
    finally:
        account.execute(f"DROP TASK IF EXISTS {objects.merge_task}")


# --- 3c. The setup's procedure: every ready table's MERGE task in one CALL -------------------------


@pytest.mark.snowflake_account
def test_the_setup_procedure_executes_each_task_in_one_call_and_reports_a_missing_one(
    account: Account,
) -> None:
    """06_execute_tasks.sql as rendered is accepted (LANGUAGE SQL, EXECUTE AS CALLER, EXECUTE TASK
    IDENTIFIER(:name) inside a handler block), and the verifier's ``execute_tasks`` CALLs it with a
    bound ARRAY: the existing task runs as EXECUTE TASK would run it, and a task that does not
    exist comes back as that table's WarehouseObjectMissing without stopping the others."""
    spec = make_table(account, "proc_run")
    objects = account.setup.objects(spec.target)
    missing = account.setup.objects("NO_SUCH_TABLE")
    (procedure,) = [s for s in render_setup(account.setup) if s.startswith("CREATE OR REPLACE PROCEDURE")]
    (create,) = [
        s
        for s in render_table(account.setup, spec)
        if s.startswith(f"CREATE OR REPLACE TASK {objects.merge_task}")
    ]
    account.execute(procedure)
    account.execute(create)
    try:
        _stage_rows(account, spec, [(1, "merged", "2026-01-01T00:00:00.000000Z", "proc_run/a.csv", 1)])
        _account_for(account, spec, {"proc_run/a.csv": 10})
        since = datetime.now(UTC) - timedelta(minutes=1)
        errors = execute_tasks(
            account.conn, account.setup.database, account.setup.staging_schema, [missing, objects]
        )
        assert isinstance(errors[0], WarehouseObjectMissing) and errors[1] is None, errors
        assert "NO_SUCH_TABLE_MERGE" in str(errors[0])
        task_name = f"{spec.target}_MERGE"
        deadline = time.monotonic() + TASK_RUN_WAIT_S
        runs = _task_runs(account, task_name, since)
        while not (runs and all(r["STATE"] in TASK_FINISHED for r in runs)) and time.monotonic() < deadline:
            time.sleep(5)
            runs = _task_runs(account, task_name, since)
        assert [(r["STATE"], r["SCHEDULED_FROM"]) for r in runs] == [("SUCCEEDED", "EXECUTE TASK")]
        assert select(account, objects.final_table, ["ID", "NOTE"]) == [(1, "merged")]
    finally:
        account.execute(f"DROP TASK IF EXISTS {objects.merge_task}")


# --- 3a. MERGE: an unchanged re-read is not a change, also for VARIANT and ARRAY columns ------------

SEMI_CATALOG = [
    SourceColumn("id", PgType("int8", "bigint", "N"), True),
    SourceColumn("doc", PgType("jsonb", "jsonb", "U"), False),
    SourceColumn("tags", PgType("_int4", "integer[]", "A", PgType("int4", "integer", "N")), False),
    SourceColumn("updated_at", PgType("timestamptz", "timestamp with time zone", "D"), True),
]


@pytest.mark.snowflake_account
def test_merge_rewrites_only_rows_whose_values_differ_including_variant_and_array(
    account: Account, tmp_path: Path
) -> None:
    """The MERGE compares every column with IS DISTINCT FROM, so an identical re-read (the
    lookback) keeps its sync time and only advances its snapshot. Snowflake must accept that
    comparison on the VARIANT and ARRAY columns the type map produces, which the emulator cannot
    prove."""
    spec = make_table(account, "semi", SEMI_CATALOG)
    objects = account.setup.objects(spec.target)
    file_column = quote(FILE_COLUMN)

    def load_and_merge(file_name: str, text: str, order: int) -> None:
        put(account, tmp_path, spec, {file_name: text})
        assert copy_results(account, pipe_copy(account.setup, spec))[file_name]["STATUS"] == "LOADED"
        [(staged,)] = account.execute(
            f"SELECT DISTINCT {file_column} FROM {objects.staging_table} WHERE {file_column} LIKE ?",
            (f"%/{file_name}",),
        )
        _account_for(account, spec, {str(staged): order})
        account.execute(render_merge(account.setup, spec))

    row1 = '1,"{""a"": 1}","[1, 2]",2026-01-02T03:04:05.000000Z,\n'
    load_and_merge("first.csv", row1 + '2,"{""b"": [true, null]}",,2026-01-02T03:04:05.000000Z,\n', 10)
    before = {
        row[0]: row[1:]
        for row in select(account, objects.final_table, ["ID", SYNCED_AT_COLUMN, SNAPSHOT_COLUMN])
    }
    # The lookback reads row 1 again unchanged; row 2 changed in its JSON and its array.
    load_and_merge("second.csv", row1 + '2,"{""b"": [false]}","[3]",2026-01-02T03:04:06.000000Z,\n', 20)
    after = {
        row[0]: row[1:]
        for row in select(account, objects.final_table, ["ID", SYNCED_AT_COLUMN, SNAPSHOT_COLUMN])
    }

    assert after[1] == (before[1][0], after[1][1]) and int(after[1][1]) == 20
    assert after[2][0] != before[2][0] and int(after[2][1]) == 20
    assert account.execute(
        f'SELECT "ID", TO_JSON("DOC"), TO_JSON("TAGS") FROM {objects.final_table} ORDER BY "ID"'
    ) == [
        (1, '{"a":1}', "[1,2]"),
        (2, '{"b":[false]}', "[3]"),
    ]


# --- 3b. Hard deletes: the key snapshot's COPY and the reconciling DELETE ---------------------------


@pytest.mark.snowflake_account
def test_key_snapshot_copy_missing_keys_and_reconcile_delete_run_as_the_verifier_runs_them(
    account: Account, tmp_path: Path
) -> None:
    """The verifier's synchronous COPY of a key file (FILES, FORCE, METADATA$FILENAME from the
    pipe's stage and file format), its missing-keys query and its DELETE, on the real service."""
    spec = make_table(account, "reconciles")  # STAGING, FINAL and <TARGET>_KEYS
    objects = account.setup.objects(spec.target)
    # FINAL holds ids 1-4 from snapshot 10 and id 6 from snapshot 30, after the key snapshot (20).
    for key, order in ((1, 10), (2, 10), (3, 10), (4, 10), (6, 30)):
        account.execute(
            f'INSERT INTO {objects.final_table} ("ID", {quote(SNAPSHOT_COLUMN)}) SELECT ?, ?', (key, order)
        )
    name = f"_aurora_sync_keys/{spec.name}/2026/12/02/10/s{20:026d}-{uuid.UUID(int=7)}.csv"
    folder, base = name.rsplit("/", 1)
    staged = tmp_path / base
    staged.write_bytes(b"1\n3\n5\n")  # id 5: a key FINAL lacks
    target = f"{account.setup.stage_ref}/{folder}/"
    account.execute(f"PUT 'file://{staged.as_posix()}' {target} AUTO_COMPRESS = FALSE OVERWRITE = TRUE")

    copy = key_copy_statement(objects.keys_table, ["ID"], pipe_source(account.setup, spec), spec.name, [name])
    for _ in range(2):  # FORCE: a retried verifier call loads the same file again
        account.execute(f"DELETE FROM {objects.keys_table} WHERE {quote(FILE_COLUMN)} = ?", (name,))
        results = account.rows(copy)
        assert [(r["STATUS"], r["ROWS_LOADED"]) for r in results] == [("LOADED", 3)], results
    assert account.execute(f"SELECT DISTINCT {quote(FILE_COLUMN)} FROM {objects.keys_table}") == [(name,)]

    final_types = {"ID": "NUMBER"}
    # The key files travel as one bound JSON array (FLATTEN of PARSE_JSON): the form real
    # Snowflake must accept for the statement's text to stay the same for 1 file or 2,000.
    missing = account.execute(missing_keys_query(objects, ["ID"], final_types), (bound_list([name]),))
    assert [(int(row[0]), str(row[1])) for row in missing] == [(1, "5")]

    account.execute(reconcile_delete(objects, ["ID"], final_types, True), (str(20), bound_list([name])))
    # 2 and 4 are gone; 6 was written after the key snapshot and stays.
    assert [int(row[0]) for row in account.execute(f'SELECT "ID" FROM {objects.final_table} ORDER BY 1')] == [
        1,
        3,
        6,
    ]


@pytest.mark.snowflake_account
def test_a_copy_lists_at_most_1000_files(account: Account) -> None:
    """COPY INTO <table>, FILES: at most 1,000 names (the emulator refuses 1,001 at compile time,
    and the verifier loads a key snapshot's files 1,000 to a statement)."""
    spec = make_table(account, "manyfiles")
    objects = account.setup.objects(spec.target)
    source = pipe_source(account.setup, spec)

    def copy(count: int) -> str:
        names = [
            f"_aurora_sync_keys/{spec.name}/2026/12/02/10/s{20:026d}-{uuid.UUID(int=n)}.csv"
            for n in range(count)
        ]
        return key_copy_statement(objects.keys_table, ["ID"], source, spec.name, names)

    with pytest.raises(sf_errors.ProgrammingError) as refused:
        account.execute(copy(1001))
    assert "1000" in str(refused.value)
    # 1,000 names compile: the files are missing, so the load fails on that, not on the list.
    with pytest.raises(sf_errors.ProgrammingError) as missing:
        account.execute(copy(1000))
    assert "1000" not in str(missing.value)


# --- 4. COPY_HISTORY status strings --------------------------------------------------------------


def _history(account: Account, spec: TableSpec, expected_files: int) -> dict[str, dict[str, Any]]:
    """COPY_HISTORY rows of STAGING by file name; bulk loads can show up a little after the COPY."""
    information_schema = f"{quote(account.setup.database)}.INFORMATION_SCHEMA"
    statement = (
        "SELECT FILE_NAME, STATUS, FIRST_ERROR_MESSAGE, ROW_COUNT, ROW_PARSED "
        f"FROM TABLE({information_schema}.COPY_HISTORY(TABLE_NAME => ?, "
        "START_TIME => DATEADD(hour, -1, CURRENT_TIMESTAMP())))"
    )
    # Schema-qualified, unquoted: the documented form (these names are plain upper-case).
    table_name = f"{account.setup.staging_schema}.{spec.target}"
    deadline = time.monotonic() + 120
    while True:
        rows = account.rows(statement, (table_name,))
        found = {str(row["FILE_NAME"]): row for row in rows}
        if len(found) >= expected_files or time.monotonic() > deadline:
            return found
        time.sleep(3)


def _by_base_name(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name.rsplit("/", 1)[-1]: row for name, row in rows.items()}


@pytest.mark.snowflake_account
def test_copy_history_status_strings_are_the_ones_the_verifier_reads(
    account: Account, tmp_path: Path
) -> None:
    skip_file = make_table(account, "history_skip")
    put(account, tmp_path, skip_file, {f: LOAD_CASES[f][0] for f in ("good.csv", "bad.csv")})
    results = copy_results(account, pipe_copy(account.setup, skip_file, on_error="SKIP_FILE"))
    cont = make_table(account, "history_continue")
    put(account, tmp_path, cont, {"partial.csv": PARTIAL_CSV})
    results.update(copy_results(account, pipe_copy(account.setup, cont, on_error="CONTINUE")))
    assert {name: row["STATUS"] for name, row in results.items()} == {
        name: case[3] for name, case in LOAD_CASES.items()
    }

    seen: dict[str, dict[str, Any]] = {}
    raw: dict[str, dict[str, dict[str, Any]]] = {}
    for spec, count in ((skip_file, 2), (cont, 1)):
        raw[spec.name] = _history(account, spec, count)
        seen.update(_by_base_name(raw[spec.name]))
    assert {name: row["STATUS"] for name, row in seen.items()} == {
        name: case[2] for name, case in LOAD_CASES.items()
    }
    assert (seen["good.csv"]["ROW_COUNT"], seen["good.csv"]["FIRST_ERROR_MESSAGE"]) == (2, None)
    assert seen["bad.csv"]["ROW_COUNT"] == 0
    assert NOT_RECOGNIZED.search(str(seen["bad.csv"]["FIRST_ERROR_MESSAGE"]))
    assert (seen["partial.csv"]["ROW_COUNT"], seen["partial.csv"]["ROW_PARSED"]) == (1, 2)
    assert NOT_RECOGNIZED.search(str(seen["partial.csv"]["FIRST_ERROR_MESSAGE"]))

    # The verifier's own reader (TABLE_NAME bound as the quoted, database-qualified name) sees the
    # same rows, and classifies them as the verifier decides on them.
    tables = [
        TableFiles(spec.name, account.setup.objects(spec.target), tuple(raw[spec.name]))
        for spec in (skip_file, cont)
    ]
    loads = read_copy_history(
        account.conn, account.setup.database, tables, datetime.now(UTC) - timedelta(hours=1)
    )
    statuses = {load.file_name.rsplit("/", 1)[-1]: load.status for files in loads.values() for load in files}
    assert statuses == {name: case[2] for name, case in LOAD_CASES.items()}
    assert statuses["good.csv"] == LOADED
    assert {statuses["bad.csv"], statuses["partial.csv"]} <= FAILED_LOAD_STATES


@pytest.mark.snowflake_account
def test_one_verifier_call_s_copy_history_of_the_per_call_cap_of_tables_is_accepted_and_answered(
    account: Account, tmp_path: Path
) -> None:
    """The verifier reads the load history of up to LOADS_PER_CALL (500) tables in one statement:
    a UNION ALL of one COPY_HISTORY table function a table, with their file names bound (about
    1,500 binds). Only a real account can tell whether Snowflake accepts that text and answers it,
    and how long it takes: the local emulator took up to 82 s of the verifier's 180 s (benchmark
    15). The time is printed, not asserted (run with -s); if it nears 180 s, lower the stack's
    VerifyLoadsPerCall."""
    loaded = make_table(account, "cap_loaded")
    put(account, tmp_path, loaded, {"good.csv": GOOD_CSV})
    account.execute(pipe_copy(account.setup, loaded, on_error="SKIP_FILE"))
    staged = _history(account, loaded, 1)
    tables = [TableFiles(loaded.name, account.setup.objects(loaded.target), tuple(staged))]
    for index in range(LOADS_PER_CALL - 1):
        objects = account.setup.objects(f"CAP{index:04d}")
        account.execute(f'CREATE TABLE {objects.staging_table} ("ID" NUMBER)')
        tables.append(TableFiles(objects.target.lower(), objects, (f"{objects.target.lower()}/missing.csv",)))

    started = time.monotonic()
    loads = read_copy_history(
        account.conn, account.setup.database, tables, datetime.now(UTC) - timedelta(hours=1)
    )
    seconds = time.monotonic() - started

    print(f"\nCOPY_HISTORY of {len(tables)} tables in one statement: {seconds:.1f} s")
    assert len(tables) == LOADS_PER_CALL
    # The one loaded file is found under its table, and no other table reports a load.
    assert [load.status for load in loads[loaded.name]] == [LOADED]
    assert all(not loads.get(t.name) for t in tables[1:])


# --- offline: the contract's strings are the emulator's and the verifier's -----------------------


def _emulator_load(
    tmp_path: Path, csv_text: str, on_error: str
) -> tuple[list[tuple[Any, ...]], str, str, str | None]:
    """Load ``csv_text`` with the local emulator's loader and the product's file format options.

    Returns the loaded rows, the status the loader returned, the status its COPY_HISTORY table
    holds (what the emulated TABLE(COPY_HISTORY(...)) answers) and the first error message.
    """
    setup = SnowflakeSetup(
        bucket=DUMMY_BUCKET, storage_role_arn=DUMMY_STORAGE_ROLE, storage_external_id=DUMMY_EXTERNAL_ID
    )
    statement = parse_one(file_format_statement(setup))
    properties = statement.args.get("properties")
    options = parse_options(properties.expressions if properties else [])
    path = tmp_path / "file.csv"
    path.write_bytes(csv_text.encode())
    con = duckdb.connect()
    try:
        cur = con.cursor()
        # The CSV's six fields, in types DuckDB converts the way STAGING's do.
        cur.execute(
            'CREATE TABLE "T" ("ID" BIGINT, "NOTE" VARCHAR, "LABEL" VARCHAR, "UPDATED_AT" TIMESTAMPTZ, '
            '"LOCAL_AT" TIMESTAMP, "U" VARCHAR)'
        )
        emulator_history.ensure_tables(cur, "memory")
        history_table = emulator_history.copy_table("memory")
        cur.execute(f"INSERT INTO {history_table} (LOAD_ID) VALUES ('contract')")
        spec = LoadSpec(
            target=ObjectName("memory", "main", "T"),
            columns=None,
            select=None,
            options=options,
            on_error=on_error,
            file_name="contract/file.csv",
        )
        update = (f"UPDATE {history_table} SET {HISTORY_RESULT_SET} WHERE LOAD_ID = ?", ["contract"])
        result = load_csv(cur, str(path), spec, update)
        rows = cur.execute('SELECT "ID", "NOTE", "LABEL" FROM "T" ORDER BY "ID"').fetchall()
        recorded = cur.execute(f"SELECT STATUS FROM {history_table}").fetchone()
        return rows, result.status, str(recorded[0]) if recorded else "", result.first_error_message
    finally:
        con.close()


@pytest.mark.parametrize("file_name", sorted(LOAD_CASES))
def test_emulator_and_verifier_use_the_contract_status_strings(tmp_path: Path, file_name: str) -> None:
    csv_text, on_error, expected_status, _ = LOAD_CASES[file_name]
    _, status, recorded, first_error = _emulator_load(tmp_path, csv_text, on_error)
    assert (status, recorded) == (expected_status, expected_status)
    if file_name == "good.csv":
        assert expected_status == LOADED
        assert first_error is None
    else:
        assert expected_status in FAILED_LOAD_STATES
        assert NOT_RECOGNIZED.search(str(first_error))


def test_emulator_keeps_null_and_empty_apart_like_the_contract(tmp_path: Path) -> None:
    rows, status, _, _ = _emulator_load(tmp_path, NULLS_CSV, "ABORT_STATEMENT")
    assert status == "Loaded"
    assert rows == EXPECTED_NULL_ROWS
