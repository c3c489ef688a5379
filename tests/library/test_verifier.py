"""The verifier Lambda on the local stack: real exporter → moto S3 → Snowpipe emulation → MERGE task.

Every case runs the real exporter handler against PostgreSQL, lets the emulated Snowpipe load the
files from its SQS notifications, and polls the verifier handler as the state machine would
(call again while ``done`` is false). Snowflake objects are rendered by the product's own SQL
generator from the real PostgreSQL catalog.
"""

from __future__ import annotations

import copy
import io
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import snowflake.connector
from function_env import json_lines
from psycopg2 import sql

from aurora_sync.config import TableConfig, put_table_config
from aurora_sync.ledger import Ledger, read_history
from aurora_sync.observability import logger
from aurora_sync.run_files import RunFiles, verify_key
from aurora_sync.settings import runtime_settings
from aurora_sync.snowflake_objects import table_spec
from aurora_sync.snowflake_tables import SnowflakeSetup, render_table
from aurora_sync.source_catalog import read_columns
from aurora_sync.vault import reset_vault_cache
from aurora_sync.verifying import reconciliation
from aurora_sync.verifying.decide import LOADS_DEFERRED
from aurora_sync_ops.environment import local_aws_client, local_external_id
from aurora_sync_ops.local.wiring import connect_bucket_to_snowpipe, disconnect_bucket_from_snowpipe
from aurora_sync_ops.snowflake_sql import render_setup
from exporter.app import lambda_handler as export_handler
from verifier.app import lambda_handler as verify_handler

EVENTS = Path(__file__).resolve().parents[2] / "events"
POLL_SECONDS = 30.0
# Any role ARN: the local storage integration records it; on AWS it is the SAM stack's output.
STORAGE_ROLE_ARN = "arn:aws:iam::123456789012:role/aurora-sync-snowflake"


class FakeContext:
    function_name = "aurora-sync-verifier"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:aurora-sync-verifier"
    aws_request_id = "test-request"

    def get_remaining_time_in_millis(self) -> int:
        return 600_000


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def admin(stack: dict[str, Any]) -> Iterator[Any]:
    conn = psycopg2.connect(stack["postgres"]["admin_dsn"])
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def schema(admin: Any, stack: dict[str, Any]) -> Iterator[str]:
    name = f"vsrc_{uuid.uuid4().hex[:8]}"
    user = sql.Identifier(stack["postgres"]["user"])
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(name), user))
        cur.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
                sql.Identifier(name), user
            )
        )
    yield name
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def setup(stack: dict[str, Any]) -> SnowflakeSetup:
    return SnowflakeSetup(
        bucket=stack["aws"]["bucket"],
        storage_role_arn=STORAGE_ROLE_ARN,
        storage_external_id=local_external_id(stack["aws"]),
        database=stack["snowflake"]["database"],  # the handlers' secret names this database
    )


@pytest.fixture(scope="module")
def sf(stack: dict[str, Any], setup: SnowflakeSetup) -> Iterator[Any]:
    conn = snowflake.connector.connect(**stack["snowflake"], paramstyle="qmark")
    with conn.cursor() as cur:
        for statement in render_setup(setup):
            if statement.startswith(("CREATE ROLE", "GRANT", "CREATE USER")):
                continue  # the emulator has no access control; a real account runs these
            if statement.startswith("CREATE STAGE"):
                # The emulator cannot parse a bare FILE_FORMAT name (reported); the pipes name
                # their format explicitly, so the stage's default format is not used anyway.
                head, _, fmt = statement.rpartition("FILE_FORMAT = ")
                cur.execute(f"{head}FILE_FORMAT = (FORMAT_NAME = '{fmt.strip()}')")
                continue
            cur.execute(statement)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def ssm(stack: dict[str, Any]) -> Any:
    aws = stack["aws"]
    return local_aws_client("ssm", aws)


@pytest.fixture(scope="module")
def s3(stack: dict[str, Any]) -> Any:
    aws = stack["aws"]
    return local_aws_client("s3", aws)


@pytest.fixture
def env(lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    reset_vault_cache()
    runtime_settings.cache_clear()
    yield lambda_env
    reset_vault_cache()
    runtime_settings.cache_clear()


@dataclass
class Lab:
    """The servers a test talks to, as an operator (admin) would."""

    admin: Any  # PostgreSQL admin connection
    sf: Any  # Snowflake connection (qmark)
    ssm: Any
    s3: Any
    stack: dict[str, Any]
    setup: SnowflakeSetup
    schema: str

    @property
    def bucket(self) -> str:
        return str(self.stack["aws"]["bucket"])


@pytest.fixture
def lab(env: dict[str, str], request: pytest.FixtureRequest) -> Lab:
    names = ("admin", "sf", "ssm", "s3", "stack", "setup", "schema")
    return Lab(*(request.getfixturevalue(name) for name in names))


def set_knob(monkeypatch: pytest.MonkeyPatch, name: str, value: int) -> None:
    monkeypatch.setenv(name, str(value))
    runtime_settings.cache_clear()


# --- helpers -------------------------------------------------------------------------------------
@dataclass
class Table:
    name: str  # config name = S3 prefix
    schema: str
    config: dict[str, Any]

    @property
    def target(self) -> str:
        return self.name.upper()


def rows_of(sf: Any, query: str, params: Any = None) -> list[dict[str, Any]]:
    with sf.cursor(snowflake.connector.DictCursor) as cur:
        cur.execute(query, params)
        return list(cur.fetchall())


def make_table(lab: Lab, prefix: str, ddl: str, **config: Any) -> Table:
    """Source table, its SSM config, and its Snowflake objects rendered from the real catalog."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with lab.admin.cursor() as cur:
        cur.execute(sql.SQL(ddl).format(t=sql.Identifier(lab.schema, name)))
        catalog = read_columns(cur, lab.schema, name)
    document = {"schema": lab.schema, "table": name, "primary_key": ["id"], "lookback_seconds": 0, **config}
    put_table_config(
        name, TableConfig.model_validate(document), lab.stack["aws"]["config_ssm_path"], ssm_client=lab.ssm
    )
    spec = table_spec(
        name=name,
        target=name.upper(),
        catalog=catalog,
        schema=lab.schema,
        table=name,
        columns=None,
        primary_key=document["primary_key"],
        cursor=document.get("cursor", "updated_at"),
        soft_delete_column=document.get("soft_delete_column"),
        soft_delete_mode=document.get("soft_delete_mode", "delete"),
    )
    with lab.sf.cursor() as cur:
        for statement in render_table(lab.setup, spec):
            cur.execute(statement)
    connect_bucket_to_snowpipe(lab.stack)
    return Table(name, lab.schema, document)


def export(table: Table, run_id: str) -> dict[str, Any]:
    """The exporter handler, called again with `next` while MORE, as the Map does."""
    event = json.loads((EVENTS / "exporter.json").read_text())
    event.update(
        run_id=run_id,
        table=table.name,
        source={"schema": table.schema, "table": table.name},
        primary_key=table.config["primary_key"],
        cursor=table.config.get("cursor", "updated_at"),
        window={"watermark": None, "lookback_seconds": 0, "source": "full"},
    )
    while True:
        result: dict[str, Any] = export_handler(event, FakeContext())
        if result["status"] != "MORE":
            return result
        event = result["next"]


def start_run() -> tuple[str, str]:
    # Millisecond precision, as the planner passes the Step Functions execution start time.
    return f"run-{uuid.uuid4().hex[:10]}", datetime.now(UTC).isoformat(timespec="milliseconds")


def verify_event(run_id: str, started_at: str, tables: list[dict[str, Any]]) -> dict[str, Any]:
    event = json.loads((EVENTS / "verifier.json").read_text())
    event.update(run_id=run_id, started_at=started_at, attempt=0, tables=tables, progress=None)
    return event


def verify_call(event: dict[str, Any]) -> dict[str, Any]:
    """One Verify state call: the run's report it wrote (verify.json: every verdict), with the
    state's output (``VerifyProgress``, what the next call gets back) under "progress"."""
    state: dict[str, Any] = verify_handler(event, FakeContext())
    report = RunFiles.of(runtime_settings()).read_json(verify_key(event["run_id"]))
    assert state["report"].endswith(verify_key(event["run_id"]))
    assert (state["done"], state["pending"], state["failed"]) == (
        report["done"],
        report["pending"],
        report["failed"],
    )
    return {**report, "progress": state}


def next_call(event: dict[str, Any], output: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The next poll's input after ``output``, as the Wait/Verify loop builds it."""
    return {**event, "progress": {**output["progress"], **changes}}


def poll(event: dict[str, Any], *, timeout: float = POLL_SECONDS) -> tuple[dict[str, Any], int]:
    """Call the verifier like the Wait/Verify/Choice loop until done; returns (output, calls)."""
    deadline = time.monotonic() + timeout
    calls = 0
    while True:
        output = verify_call(event)
        calls += 1
        if output["done"]:
            return output, calls
        if time.monotonic() > deadline:
            raise AssertionError(f"verifier not done after {timeout:.0f}s: {json.dumps(output)}")
        time.sleep(0.3)
        event = {**next_call(event, output), "attempt": calls}


def by_table(output: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["table"]: t for t in output["tables"]}


def task_runs(lab: Lab, table: Table, started_at: str) -> list[dict[str, Any]]:
    return rows_of(
        lab.sf,
        f"SELECT STATE, QUERY_ID FROM TABLE({lab.setup.database}.INFORMATION_SCHEMA.TASK_HISTORY("
        "TASK_NAME => ?, SCHEDULED_TIME_RANGE_START => CAST(? AS TIMESTAMP_LTZ))) WHERE SCHEMA_NAME = ?",
        (f"{table.target}_MERGE", started_at, lab.setup.staging_schema),
    )


def final_rows(lab: Lab, table: Table, order: str = '"ID"') -> list[dict[str, Any]]:
    objects = lab.setup.objects(table.target)
    return rows_of(lab.sf, f"SELECT * FROM {objects.final_table} ORDER BY {order}")


ORDERS_DDL = "CREATE TABLE {t} (id bigint PRIMARY KEY, note text, updated_at timestamptz NOT NULL)"


def insert_orders(lab: Lab, table: Table, count: int, *, first: int = 1) -> None:
    with lab.admin.cursor() as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO {t} SELECT i, 'note ' || i, timestamptz '2026-01-01 00:00:00+00' "
                "+ i * interval '1 second' FROM generate_series(%s, %s) i"
            ).format(t=sql.Identifier(table.schema, table.name)),
            (first, first + count - 1),
        )


# --- tests without the stack -----------------------------------------------------------------------


# --- end to end ----------------------------------------------------------------------------------
ALL_TYPES_DDL = """CREATE TABLE {t} (
    id integer PRIMARY KEY, i2 smallint, i8 bigint, n_ps numeric(12,2), n_wide numeric(50,20),
    d double precision, b boolean, t text, vc varchar(20), u uuid, dt date, ts timestamp,
    tstz timestamptz, jb jsonb, updated_at timestamptz NOT NULL)"""
ALL_TYPES_ROWS = [
    (
        1,
        -32768,
        -9223372036854775808,
        Decimal("1234567890.12"),
        Decimal("123456789012345678.12345678901234567890"),
        0.1,
        True,
        'multi\nline "quoted", comma',
        "żółw 🐢",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "2024-02-29",
        "2024-01-02 03:04:05.123456",
        "2024-01-02 03:04:05.123456+05:30",
        '{"b": 1, "a": [1, 2]}',
    ),
    (2,) + (None,) * 13,
    (3, 0, 0, Decimal("0"), Decimal("0"), 0.0, False, "", "", None, None, None, None, '""'),
    # NaN does not fit NUMBER: NULL in FINAL, its text kept in the unrepresentable column.
    (4, 1, 1, Decimal("NaN"), None, None, None, None, None, None, "infinity", None, None, None),
]


def test_all_types_table_merges_and_final_equals_source(lab: Lab) -> None:
    table = make_table(lab, "alltypes", ALL_TYPES_DDL)
    with lab.admin.cursor() as cur:
        for row in ALL_TYPES_ROWS:
            cur.execute(
                sql.SQL(
                    "INSERT INTO {t} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                    "timestamptz '2026-03-01 12:00:00.654321+00' + %s * interval '1 minute')"
                ).format(t=sql.Identifier(table.schema, table.name)),
                (*row, row[0]),
            )
    run_id, started_at = start_run()
    result = export(table, run_id)
    assert (result["status"], result["rows"], result["files"]) == ("EXPORTED", 4, 1)

    output, calls = poll(verify_event(run_id, started_at, [result]))
    verdict = by_table(output)[table.name]
    assert calls >= 2  # the load and the merge are asynchronous: the first call cannot finish
    assert (output["done"], output["pending"], output["failed"]) == (True, 0, 0)
    assert verdict["outcome"] == "MERGED" and verdict["error"] is None and verdict["reason"] is None
    assert (verdict["rows_exported"], verdict["rows_loaded"], verdict["rows_changed"]) == (4, 4, 4)
    assert verdict["rows_unchanged"] == 0
    assert (verdict["files"], verdict["files_loaded"], verdict["missing"]) == (1, 1, [])
    assert verdict["target"] == table.target and verdict["refreshed_at"] is None
    assert verdict["merge_query_id"] == task_runs(lab, table, started_at)[0]["QUERY_ID"]
    # Fresh as of the export's source snapshot, not of the newest cursor value (2026-03-01 here).
    assert result["snapshot"]["source_time"] == verdict["source_time"]
    assert (
        0
        < verdict["freshness_lag_seconds"]
        == pytest.approx(
            (datetime.now(UTC) - datetime.fromisoformat(verdict["source_time"])).total_seconds(), abs=60
        )
    )
    assert verdict["freshness_lag_seconds"] < 120

    final = {r["ID"]: r for r in final_rows(lab, table)}
    assert sorted(final) == [1, 2, 3, 4]
    one, two, three, four = final[1], final[2], final[3], final[4]
    assert (one["I2"], one["I8"], one["N_PS"]) == (-32768, -9223372036854775808, Decimal("1234567890.12"))
    assert one["N_WIDE"] == Decimal("123456789012345678.12345678901234567890")
    assert (one["D"], one["B"], one["T"], one["VC"]) == (0.1, True, 'multi\nline "quoted", comma', "żółw 🐢")
    assert one["U"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert str(one["DT"]) == "2024-02-29"
    assert one["TS"].isoformat() == "2024-01-02T03:04:05.123456"
    assert one["TSTZ"].astimezone(UTC).isoformat() == "2024-01-01T21:34:05.123456+00:00"
    assert one["UPDATED_AT"].astimezone(UTC).isoformat() == "2026-03-01T12:01:00.654321+00:00"
    assert json.loads(one["JB"]) == {"a": [1, 2], "b": 1}
    # NULL and '' stay apart, end to end.
    assert all(
        two[c] is None for c in ("I2", "I8", "N_PS", "D", "B", "T", "VC", "U", "DT", "TS", "TSTZ", "JB")
    )
    assert (three["T"], three["VC"], three["B"], three["N_PS"]) == ("", "", False, Decimal("0"))
    assert json.loads(three["JB"]) == ""
    assert (four["N_PS"], four["DT"]) == (None, None)
    assert json.loads(four["_AURORA_SYNC_UNREPRESENTABLE"]) == {"n_ps": "NaN", "dt": "infinity"}
    assert all(r["_AURORA_SYNC_SYNCED_AT"] is not None for r in final.values())


def test_overlapping_exports_merge_once_and_an_older_version_never_overwrites(lab: Lab) -> None:
    table = make_table(lab, "orders", ORDERS_DDL)
    insert_orders(lab, table, 20)
    run_id, started_at = start_run()
    first, _ = poll(verify_event(run_id, started_at, [export(table, run_id)]))
    assert (by_table(first)[table.name]["rows_changed"], by_table(first)[table.name]["rows_unchanged"]) == (
        20,
        0,
    )
    synced_first = {r["ID"]: r["_AURORA_SYNC_SYNCED_AT"] for r in final_rows(lab, table)}

    # The next run re-exports every row (overlapping window) plus a newer version of row 1.
    with lab.admin.cursor() as cur:
        cur.execute(
            sql.SQL(
                "UPDATE {t} SET note = 'v2', updated_at = timestamptz '2026-02-01 00:00:00+00' WHERE id = 1"
            ).format(t=sql.Identifier(table.schema, table.name))
        )
    run_id, started_at = start_run()
    second = export(table, run_id)
    # And an older version of row 1 arrives late in a file of its own (a straggling earlier export,
    # read in an older snapshot than the second run's, and accounted for by a later verifier call).
    stale_key = f"{table.name}/2026/01/01/00/s{1:026d}-00000000-0000-7000-8000-000000000000.csv"
    lab.s3.put_object(Bucket=lab.bucket, Key=stale_key, Body=b'1,"stale",2026-01-01T00:00:00.500000Z,\n')
    stale = {**second, "rows": 1, "files": 1, "bytes": 0, "keys": [stale_key]}
    output, _ = poll(verify_event(run_id, started_at, [second]))
    # Only row 1 changed; the other 19 were re-read as FINAL holds them, and are not rewritten.
    verdict = by_table(output)[table.name]
    assert (verdict["rows_loaded"], verdict["rows_changed"], verdict["rows_unchanged"]) == (20, 1, 19)
    after = {r["ID"]: r for r in final_rows(lab, table)}
    assert after[1]["_AURORA_SYNC_SYNCED_AT"] > synced_first[1]
    assert all(after[i]["_AURORA_SYNC_SYNCED_AT"] == synced_first[i] for i in range(2, 21))
    # Their snapshot still advances: an older version read in between can never overwrite them.
    assert {after[i]["_AURORA_SYNC_SNAPSHOT"] for i in range(1, 21)} == {int(second["snapshot"]["order"])}
    staging = lab.setup.objects(table.target).staging_table
    output, _ = poll(verify_event(f"{run_id}-late", start_run()[1], [stale]))
    assert by_table(output)[table.name]["outcome"] == "MERGED"

    assert rows_of(lab.sf, f'SELECT COUNT(*) AS "N" FROM {staging}')[0]["N"] == 41
    final = final_rows(lab, table)
    assert len(final) == 20 and [r["ID"] for r in final] == list(range(1, 21))
    assert (final[0]["NOTE"], final[0]["UPDATED_AT"].astimezone(UTC).isoformat()) == (
        "v2",
        "2026-02-01T00:00:00+00:00",
    )
    assert final[1]["NOTE"] == "note 2"


SOFT_DDL = (
    "CREATE TABLE {t} (id bigint PRIMARY KEY, note text, deleted_at timestamptz, "
    "updated_at timestamptz NOT NULL)"
)


def test_soft_deletes_remove_in_delete_mode_and_flag_in_flag_mode(lab: Lab) -> None:
    removing = make_table(lab, "softdel", SOFT_DDL, soft_delete_column="deleted_at")
    flagging = make_table(
        lab,
        "softflag",
        SOFT_DDL,
        soft_delete_column="deleted_at",
        soft_delete_mode="flag",
    )
    for table in (removing, flagging):
        insert_orders_soft = sql.SQL(
            "INSERT INTO {t} SELECT i, 'n' || i, NULL, "
            "timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second' FROM generate_series(1, 3) i"
        ).format(t=sql.Identifier(table.schema, table.name))
        with lab.admin.cursor() as cur:
            cur.execute(insert_orders_soft)
    run_id, started_at = start_run()
    output, _ = poll(verify_event(run_id, started_at, [export(removing, run_id), export(flagging, run_id)]))
    assert [t["outcome"] for t in output["tables"]] == ["MERGED", "MERGED"]

    for table in (removing, flagging):
        with lab.admin.cursor() as cur:
            cur.execute(
                sql.SQL("UPDATE {t} SET deleted_at = now(), updated_at = now() WHERE id = 2").format(
                    t=sql.Identifier(table.schema, table.name)
                )
            )
    run_id, started_at = start_run()
    output, _ = poll(verify_event(run_id, started_at, [export(removing, run_id), export(flagging, run_id)]))
    assert [t["outcome"] for t in output["tables"]] == ["MERGED", "MERGED"]
    assert [r["ID"] for r in final_rows(lab, removing)] == [1, 3]
    flagged = final_rows(lab, flagging)
    assert [(r["ID"], r["_AURORA_SYNC_DELETED"]) for r in flagged] == [(1, False), (2, True), (3, False)]
    assert flagged[1]["DELETED_AT"] is not None


def test_bad_file_count_mismatch_failed_export_and_failed_merge_fail_only_their_tables(lab: Lab) -> None:
    good, bad, short, broken, empty = (
        make_table(lab, prefix, ORDERS_DDL) for prefix in ("good", "bad", "short", "broken", "empty")
    )
    for table in (good, bad, short, broken):
        insert_orders(lab, table, 5)
    with lab.sf.cursor() as cur:
        # The MERGE task of `broken` will fail: its FINAL table is gone.
        cur.execute(f"DROP TABLE {lab.setup.objects(broken.target).final_table}")
    run_id, started_at = start_run()
    results = {t.name: export(t, run_id) for t in (good, bad, short, broken, empty)}
    assert results[empty.name]["status"] == "EMPTY"
    bad_key = f"{bad.name}/2026/01/01/00/{uuid.uuid4()}.csv"
    lab.s3.put_object(Bucket=lab.bucket, Key=bad_key, Body=b"7,x,not-a-time,\n8,y\n")
    results[bad.name] = {
        **results[bad.name],
        "rows": results[bad.name]["rows"] + 2,
        "files": results[bad.name]["files"] + 1,  # the verifier refuses keys that are not the files
        "keys": [*results[bad.name]["keys"], bad_key],
    }
    results[short.name] = {**results[short.name], "rows": 6}  # one row more than the file holds
    failed_export = {
        "table": "vanished",
        "status": "FAILED",
        "error": {
            "Error": "SourceObjectMissing",
            "Cause": "table vanished (public.vanished): relation does not exist.",
        },
    }

    output, _ = poll(verify_event(run_id, started_at, [*results.values(), failed_export]))
    verdicts = by_table(output)
    assert (output["done"], output["pending"], output["failed"]) == (True, 0, 4)
    assert verdicts[good.name]["outcome"] == "MERGED" and verdicts[good.name]["rows_changed"] == 5
    assert verdicts[empty.name]["outcome"] == "NOTHING_TO_DO"

    bad_verdict = verdicts[bad.name]
    assert (bad_verdict["outcome"], bad_verdict["error"]) == ("FAILED", "LoadFailed")
    assert bad_key in bad_verdict["reason"] and "Load failed" in bad_verdict["reason"]
    assert "Timestamp 'not-a-time' is not recognized" in bad_verdict["reason"]
    assert bad_verdict["missing"] == [bad_key]

    short_verdict = verdicts[short.name]
    assert (short_verdict["outcome"], short_verdict["error"]) == ("FAILED", "LoadCountMismatch")
    assert "exported 6 row(s) in 1 file(s) but Snowpipe loaded 5" in short_verdict["reason"]
    assert short_verdict["rows_loaded"] == 5 and short_verdict["merge_query_id"] is None

    broken_verdict = verdicts[broken.name]
    assert (broken_verdict["outcome"], broken_verdict["error"]) == ("FAILED", "MergeFailed")
    assert "FAILED" in broken_verdict["reason"] and broken.target in broken_verdict["reason"]

    assert verdicts["vanished"] == {
        **verdicts["vanished"],
        "outcome": "FAILED",
        "error": "SourceObjectMissing",
        "reason": "table vanished (public.vanished): relation does not exist.",
        "target": "VANISHED",
    }
    # Nothing of the failed loads was merged: their tasks never ran.
    for table in (bad, short):
        assert task_runs(lab, table, started_at) == []
        assert final_rows(lab, table) == []


def test_the_export_results_can_come_from_the_rounds_settled_files_in_s3(lab: Lab) -> None:
    """The Distributed Map's run (issue 15): the state carries the number of export rounds, and
    the verifier reads each round's settled tables under the run prefix."""
    from aurora_sync.exporting.rounds import settled_key
    from aurora_sync.run_files import RunFiles

    first, second = (make_table(lab, prefix, ORDERS_DDL) for prefix in ("round0", "round1"))
    for table in (first, second):
        insert_orders(lab, table, 3)
    run_id, started_at = start_run()
    files = RunFiles(lab.s3, lab.bucket)
    files.write_json(settled_key(run_id, 0), [export(first, run_id)])
    missing = {"Error": "SourceObjectMissing", "Cause": "relation does not exist."}
    failed_export = {"table": "vanished", "run_id": run_id, "status": "FAILED", "error": missing}
    files.write_json(settled_key(run_id, 1), [export(second, run_id), failed_export])
    event = {**verify_event(run_id, started_at, []), "rounds": 2}
    del event["tables"]

    output, _ = poll(event)

    verdicts = by_table(output)
    assert (output["done"], output["failed"]) == (True, 1)
    assert [verdicts[t.name]["outcome"] for t in (first, second)] == ["MERGED", "MERGED"]
    assert [verdicts[t.name]["rows_changed"] for t in (first, second)] == [3, 3]
    assert verdicts["vanished"]["error"] == "SourceObjectMissing"


def test_the_stack_parameter_caps_the_load_histories_one_call_reads(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VerifyLoadsPerCall (VERIFY_LOADS_PER_CALL) reaches the handler's limits: at 1, a call reads
    one table's COPY_HISTORY and leaves the other PENDING for the next, and both still merge."""
    tables = [make_table(lab, prefix, ORDERS_DDL) for prefix in ("capped0", "capped1")]
    for table in tables:
        insert_orders(lab, table, 2)
    run_id, started_at = start_run()
    event = verify_event(run_id, started_at, [export(table, run_id) for table in tables])
    set_knob(monkeypatch, "VERIFY_LOADS_PER_CALL", 1)
    first = by_table(verify_call(event))
    reasons = sorted(str(first[t.name]["reason"]) for t in tables)
    assert [first[t.name]["outcome"] for t in tables] == ["PENDING", "PENDING"]
    assert reasons.count(LOADS_DEFERRED) == 1, reasons

    output, calls = poll(event)
    verdicts = by_table(output)
    assert [verdicts[t.name]["outcome"] for t in tables] == ["MERGED", "MERGED"]
    assert [verdicts[t.name]["rows_changed"] for t in tables] == [2, 2]
    assert calls >= 2


def test_tables_failed_in_the_plan_are_read_from_the_run_file_into_the_report(lab: Lab) -> None:
    """Issue 15: the state carries how many tables failed in the plan, not the tables; the
    verifier reads them from the run's plan-failed.json, and the summary names each one with its
    error and reruns it, beside the tables that failed later."""
    from aurora_sync.errors import ConfigError
    from aurora_sync.exporting.rounds import plan_failed_key, settled_key, write_plan_failed
    from aurora_sync.messages import FailedTable
    from aurora_sync.run_files import RunFiles

    table = make_table(lab, "beside", ORDERS_DDL)
    insert_orders(lab, table, 2)
    run_id, started_at = start_run()
    files = RunFiles(lab.s3, lab.bucket)
    files.write_json(settled_key(run_id, 0), [export(table, run_id)])
    denied = [
        FailedTable(table=f"denied_{i:04d}", error="WarehouseObjectMissing", cause=f"FINAL {i} is missing")
        for i in range(300)
    ]
    assert write_plan_failed(files, run_id, denied) == plan_failed_key(run_id)
    event = {**verify_event(run_id, started_at, []), "rounds": 1, "plan_failed": len(denied)}
    del event["tables"]

    output, _ = poll(event)

    assert by_table(output)[table.name]["outcome"] == "MERGED"
    summary = output["summary"]
    assert summary["failed_count"] == 300
    assert summary["failed"] == [entry.model_dump() for entry in denied]
    assert summary["rerun_input"] == {"tables": [entry.table for entry in denied]}
    assert "denied_0000 (WarehouseObjectMissing: FINAL 0 is missing)" in summary["cause"]

    # A count the file does not match is refused, not reported short.
    with pytest.raises(ConfigError, match="names 300 table"):
        verify_handler({**event, "plan_failed": 301}, FakeContext())


def test_lost_notifications_are_healed_by_one_refresh_and_time_out_without_it(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = make_table(lab, "quiet", ORDERS_DDL)
    insert_orders(lab, table, 7)
    run_id, started_at = start_run()
    disconnect_bucket_from_snowpipe(lab.stack)
    try:
        result = export(table, run_id)
    finally:
        connect_bucket_to_snowpipe(lab.stack)
    event = verify_event(run_id, started_at, [result])

    set_knob(monkeypatch, "LOAD_REFRESH_AFTER_SECONDS", 3600)
    time.sleep(1.5)  # a notified file would be loaded by now
    pending = verify_call(event)
    verdict = by_table(pending)[table.name]
    assert (pending["done"], verdict["outcome"], verdict["refreshed_at"]) == (False, "PENDING", None)
    assert verdict["missing"] == result["keys"] and verdict["files_loaded"] == 0
    assert verdict["reason"] == "1 of 1 file(s) not loaded yet (1 not seen by the pipe)"

    # Without a refresh, the load timeout fails the table and names the file.
    # (The state's verify_started_at no longer matches the run file: every table starts over.)
    late = next_call(event, pending, verify_started_at=(datetime.now(UTC) - timedelta(hours=1)).isoformat())
    timed_out = by_table(verify_call(late))[table.name]
    assert (timed_out["outcome"], timed_out["error"]) == ("FAILED", "LoadTimeout")
    assert result["keys"][0] in timed_out["reason"] and "900s" in timed_out["reason"]

    set_knob(monkeypatch, "LOAD_REFRESH_AFTER_SECONDS", 0)
    refreshed = verify_call(next_call(event, pending))
    refreshed_at = by_table(refreshed)[table.name]["refreshed_at"]
    assert refreshed_at is not None
    output, _ = poll(next_call(event, refreshed))
    verdict = by_table(output)[table.name]
    assert (verdict["outcome"], verdict["rows_loaded"], verdict["rows_changed"]) == ("MERGED", 7, 7)
    assert verdict["refreshed_at"] == refreshed_at  # once per run: carried, never re-issued


def test_a_retried_call_after_execute_task_does_not_merge_twice(lab: Lab) -> None:
    table = make_table(lab, "retry", ORDERS_DDL)
    insert_orders(lab, table, 3)
    run_id, started_at = start_run()
    event = verify_event(run_id, started_at, [export(table, run_id)])
    deadline = time.monotonic() + POLL_SECONDS
    while True:
        output = verify_call(event)
        if (
            by_table(output)[table.name]["reason"]
            == "every file loaded and accounted for; merge task requested"
        ):
            break
        assert time.monotonic() < deadline, json.dumps(output)
        time.sleep(0.2)
    assert len(task_runs(lab, table, started_at)) == 1
    # The state machine retries the same input (no progress from the call that died).
    for _ in range(3):
        again = by_table(verify_call(event))[table.name]
        assert again["reason"] != "every file loaded and accounted for; merge task requested"
    output, _ = poll(event)
    assert by_table(output)[table.name]["outcome"] == "MERGED"
    runs = task_runs(lab, table, started_at)
    assert [r["STATE"] for r in runs] == ["SUCCEEDED"]
    assert by_table(output)[table.name]["merge_query_id"] == runs[0]["QUERY_ID"]
    # A table already decided is carried over from the run file without asking Snowflake again.
    carried = verify_call(next_call(event, output))
    assert carried["tables"] == output["tables"] and len(task_runs(lab, table, started_at)) == 1


def test_wiring_is_idempotent_and_keeps_other_notifications(lab: Lab) -> None:
    bucket, s3 = lab.bucket, lab.s3
    arn = connect_bucket_to_snowpipe(lab.stack)
    assert connect_bucket_to_snowpipe(lab.stack) == arn
    queues = s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    assert [(q["Id"], q["QueueArn"], q["Events"]) for q in queues] == [
        ("aurora-sync-snowpipe", arn, ["s3:ObjectCreated:*"])
    ]
    original = copy.deepcopy(queues)
    other = {"Id": "someone-else", "QueueArn": arn, "Events": ["s3:ObjectRemoved:*"]}
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [*original, other]}
    )
    connect_bucket_to_snowpipe(lab.stack)
    ids = [q["Id"] for q in s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]]
    assert sorted(ids) == ["aurora-sync-snowpipe", "someone-else"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": original}
    )


# --- hard deletes: key snapshots ---------------------------------------------------------------------
COMPOSITE_DDL = (
    "CREATE TABLE {t} (tenant int, code text, note text, updated_at timestamptz NOT NULL, "
    "PRIMARY KEY (tenant, code))"
)


def insert_composite(lab: Lab, table: Table, keys: list[tuple[int, str]]) -> None:
    with lab.admin.cursor() as cur:
        for tenant, code in keys:
            cur.execute(
                sql.SQL("INSERT INTO {t} VALUES (%s, %s, 'n', timestamptz '2026-01-01 00:00:00+00')").format(
                    t=sql.Identifier(table.schema, table.name)
                ),
                (tenant, code),
            )


def with_keys(
    lab: Lab, table: Table, result: dict[str, Any], *files: bytes, rows: int | None = None
) -> dict[str, Any]:
    """The export result of a reconciling run: its key snapshot files, named as the exporter
    names them (the first chunk's snapshot order), written to the bucket."""
    order = int(result["snapshot"]["order"])
    keys = []
    for body in files:
        key = f"_aurora_sync_keys/{table.name}/2026/01/01/00/s{order:026d}-{uuid.uuid4()}.csv"
        lab.s3.put_object(Bucket=lab.bucket, Key=key, Body=body)
        keys.append(key)
    counted = sum(len(body.splitlines()) for body in files)
    return {**result, "reconcile": True, "key_files": keys, "key_rows": counted if rows is None else rows}


def composite_final(lab: Lab, table: Table) -> list[tuple[int, str]]:
    rows = final_rows(lab, table, order='"TENANT", "CODE"')
    return [(int(r["TENANT"]), str(r["CODE"])) for r in rows]


def keys_left(lab: Lab, table: Table) -> int:
    return int(
        rows_of(lab.sf, f'SELECT COUNT(*) AS "N" FROM {lab.setup.objects(table.target).keys_table}')[0]["N"]
    )


def ledger_run(lab: Lab, table: Table, run_id: str) -> dict[str, Any]:
    runs = rows_of(
        lab.sf,
        f'SELECT * FROM "{lab.setup.database}"."{lab.setup.staging_schema}"."_AURORA_SYNC_RUNS" '
        "WHERE TARGET = ? AND RUN_ID = ?",
        (table.target, run_id),
    )
    assert len(runs) == 1
    return runs[0]


def test_key_snapshot_deletes_absent_composite_keys_but_keeps_rows_written_after_it(lab: Lab) -> None:
    table = make_table(lab, "hard", COMPOSITE_DDL, primary_key=["tenant", "code"])
    insert_composite(lab, table, [(1, "a"), (1, "b"), (2, "a"), (2, "b,c")])
    run_id, started_at = start_run()
    result = export(table, run_id)
    objects = lab.setup.objects(table.target)
    order = int(result["snapshot"]["order"])
    # A version FINAL holds from a later snapshot than the key snapshot: written after it, kept.
    lab.sf.cursor().execute(
        f'INSERT INTO {objects.final_table} ("TENANT", "CODE", "NOTE", "_AURORA_SYNC_SNAPSHOT") '
        "VALUES (3, 'later', 'x', ?)",
        (order + 1,),
    )
    # Gone from FINAL by the key snapshot: (1, "b") (deleted at the source after the data export,
    # as a hard delete would be seen), and an old row FINAL held before this run (9, "old").
    lab.sf.cursor().execute(
        f'INSERT INTO {objects.final_table} ("TENANT", "CODE", "NOTE", "_AURORA_SYNC_SNAPSHOT") '
        "VALUES (9, 'old', 'x', ?)",
        (order - 1,),
    )
    # A NUMBER and a VARCHAR key column; the quoted "b,c" exercises the CSV quoting of a key field.
    reconciling = with_keys(lab, table, result, b"1,a\n2,a\n", b'2,"b,c"\n')
    output, _ = poll(verify_event(run_id, started_at, [reconciling]))
    verdict = by_table(output)[table.name]
    assert verdict["outcome"] == "MERGED", verdict
    assert (verdict["key_rows"], verdict["rows_deleted"]) == (3, 2)
    assert composite_final(lab, table) == [(1, "a"), (2, "a"), (2, "b,c"), (3, "later")]
    assert keys_left(lab, table) == 0
    run = ledger_run(lab, table, run_id)
    assert run["MERGED_AT"] is not None and run["RECONCILED_AT"] is not None
    assert (run["MODE"], int(run["KEY_ROWS"]), int(run["ROWS_DELETED"])) == ("cursor", 3, 2)

    # A retried call (the verifier died after the delete): the same snapshot again, nothing more goes.
    again, _ = poll(verify_event(run_id, started_at, [reconciling]))
    assert by_table(again)[table.name]["outcome"] == "MERGED"
    assert by_table(again)[table.name]["rows_deleted"] == 0
    assert composite_final(lab, table) == [(1, "a"), (2, "a"), (2, "b,c"), (3, "later")]
    assert keys_left(lab, table) == 0


def test_a_key_snapshot_that_loads_partially_or_short_never_deletes(lab: Lab) -> None:
    bad = make_table(lab, "hardbad", COMPOSITE_DDL, primary_key=["tenant", "code"])
    short = make_table(lab, "hardshort", COMPOSITE_DDL, primary_key=["tenant", "code"])
    for table in (bad, short):
        insert_composite(lab, table, [(1, "a"), (1, "b"), (2, "a")])
    run_id, started_at = start_run()
    # One good file and one with a record that is no NUMBER: ABORT_STATEMENT loads neither.
    bad_result = with_keys(lab, bad, export(bad, run_id), b"1,a\n", b"x,b\n")
    # Every file loads, but fewer keys than the exporter counted (a lost part file).
    short_result = with_keys(lab, short, export(short, run_id), b"1,a\n", rows=3)
    output, _ = poll(verify_event(run_id, started_at, [bad_result, short_result]))
    verdicts = by_table(output)
    for table in (bad, short):
        verdict = verdicts[table.name]
        assert (verdict["outcome"], verdict["error"]) == ("FAILED", "KeySnapshotIncomplete"), verdict
        assert verdict["rows_deleted"] is None and "nothing was deleted" in verdict["reason"]
        assert composite_final(lab, table) == [(1, "a"), (1, "b"), (2, "a")]
        assert keys_left(lab, table) == 0
        assert ledger_run(lab, table, run_id)["MERGED_AT"] is None
    assert "Numeric value 'x' is not recognized" in verdicts[bad.name]["reason"]
    assert "loaded 1 of 3 key(s)" in verdicts[short.name]["reason"]


def test_a_key_snapshot_of_more_files_than_one_copy_may_list_loads_them_all(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Snowflake's COPY lists at most 1,000 FILES (the emulator refuses more, as the service does;
    # key_copy_statement never builds such a COPY: tests/unit/test_snowflake_sql.py), so a key
    # snapshot of more files (a split table's lanes and parts) loads in several statements. Two
    # files a statement here, so five files take three, as 2,001 would at 1,000.
    monkeypatch.setattr(reconciliation, "MAX_COPY_FILES", 2)
    table = make_table(lab, "hardmany", ORDERS_DDL)
    insert_orders(lab, table, 5)
    run_id, started_at = start_run()
    result = export(table, run_id)
    objects = lab.setup.objects(table.target)
    # A row FINAL holds that no key file names: the snapshot deletes it.
    lab.sf.cursor().execute(
        f'INSERT INTO {objects.final_table} ("ID", "NOTE", "_AURORA_SYNC_SNAPSHOT") VALUES (50, \'x\', ?)',
        (int(result["snapshot"]["order"]) - 1,),
    )
    reconciling = with_keys(lab, table, result, b"1\n", b"2\n", b"3\n", b"4\n", b"5\n")
    output, _ = poll(verify_event(run_id, started_at, [reconciling]))
    verdict = by_table(output)[table.name]
    assert (verdict["outcome"], verdict["key_rows"], verdict["rows_deleted"]) == ("MERGED", 5, 1), verdict
    assert [r["ID"] for r in final_rows(lab, table)] == [1, 2, 3, 4, 5]
    assert keys_left(lab, table) == 0

    # A bad record in the last statement's file: the earlier statements' keys are cleared too,
    # and nothing is deleted.
    insert_orders(lab, table, 1, first=6)
    run_id, started_at = start_run()
    bad = with_keys(lab, table, export(table, run_id), b"1\n2\n", b"3\n", b"4\n", b"5\n", b"x\n")
    output, _ = poll(verify_event(run_id, started_at, [bad]))
    verdict = by_table(output)[table.name]
    assert (verdict["outcome"], verdict["error"]) == ("FAILED", "KeySnapshotIncomplete"), verdict
    assert [r["ID"] for r in final_rows(lab, table)] == [1, 2, 3, 4, 5, 6]
    assert keys_left(lab, table) == 0


def test_missing_rows_fail_a_one_chunk_run_and_not_a_multi_chunk_run(lab: Lab) -> None:
    one = make_table(lab, "missone", COMPOSITE_DDL, primary_key=["tenant", "code"])
    many = make_table(lab, "missmany", COMPOSITE_DDL, primary_key=["tenant", "code"])
    for table in (one, many):
        insert_composite(lab, table, [(1, "a"), (1, "b")])
    run_id, started_at = start_run()
    # The key snapshot holds (5, "z"), a row the data export never read (a cursor that did not
    # move), and lacks (1, "b").
    one_result = with_keys(lab, one, export(one, run_id), b"1,a\n5,z\n")
    many_result = {**with_keys(lab, many, export(many, run_id), b"1,a\n5,z\n"), "chunks": 2}
    output, _ = poll(verify_event(run_id, started_at, [one_result, many_result]))
    verdicts = by_table(output)
    failed = verdicts[one.name]
    assert (failed["outcome"], failed["error"]) == ("FAILED", "RowsMissing"), failed
    assert "lacks 1 key(s)" in failed["reason"] and '"TENANT": "5"' in failed["reason"]
    assert (
        json.dumps({"tables": [one.name], "overrides": {one.name: {"full_resync": True}}}) in failed["reason"]
    )
    assert composite_final(lab, one) == [(1, "a"), (1, "b")]  # nothing deleted
    assert ledger_run(lab, one, run_id)["MERGED_AT"] is None
    assert keys_left(lab, one) == 0
    # Several chunks read several snapshots: FINAL may lack a key the snapshot has.
    passed = verdicts[many.name]
    assert (passed["outcome"], passed["rows_deleted"]) == ("MERGED", 1), passed
    assert composite_final(lab, many) == [(1, "a")]


def test_mode_full_makes_final_equal_the_snapshot_or_fails_naming_both_counts(lab: Lab) -> None:
    exact = make_table(lab, "fullok", ORDERS_DDL)
    off = make_table(lab, "fulloff", ORDERS_DDL)
    for table in (exact, off):
        insert_orders(lab, table, 3)
    run_id, started_at = start_run()
    results = []
    for table, keys, chunks in ((exact, b"1\n3\n", 1), (off, b"1\n3\n4\n", 2)):
        result = with_keys(lab, table, export(table, run_id), keys)
        # As the exporter reports a mode full run: no cursor, its snapshot typed "none".
        snapshot = {
            **result["snapshot"],
            "cursor_type": "none",
            "max_cursor": None,
            "xmin": "4294967296123",  # past the first wraparound: kept as 64-bit text
            "xmax": "4294967296130",
        }
        results.append({**result, "mode": "full", "cursor": None, "snapshot": snapshot, "chunks": chunks})
    output, _ = poll(verify_event(run_id, started_at, results))
    verdicts = by_table(output)
    assert (verdicts[exact.name]["outcome"], verdicts[exact.name]["rows_deleted"]) == ("MERGED", 1)
    assert [r["ID"] for r in final_rows(lab, exact)] == [1, 3]
    run = ledger_run(lab, exact, run_id)
    assert (run["MODE"], run["CURSOR_COLUMN"], run["CURSOR_TYPE"]) == ("full", "", "none")
    (merged,) = read_history(lab.sf, Ledger(lab.setup.database, lab.setup.staging_schema), [exact.target])[
        exact.target
    ]
    assert (merged.mode, merged.cursor_column, merged.reconciled) == ("full", None, True)
    assert (merged.snapshot_xmin, merged.snapshot_xmax) == ("4294967296123", "4294967296130")
    failed = verdicts[off.name]
    assert (failed["outcome"], failed["error"], failed["rows_deleted"]) == ("FAILED", "RowsMissing", 1)
    assert "holds 2 row(s)" in failed["reason"] and "snapshot has 3" in failed["reason"]
    assert ledger_run(lab, off, run_id)["MERGED_AT"] is None


def test_an_empty_window_with_a_key_snapshot_still_merges_then_deletes(lab: Lab) -> None:
    table = make_table(lab, "hardidle", ORDERS_DDL)
    insert_orders(lab, table, 3)
    run_id, started_at = start_run()
    poll(verify_event(run_id, started_at, [export(table, run_id)]))
    run_id, started_at = start_run()
    result = export(table, run_id)
    empty = {**result, "status": "EMPTY", "rows": 0, "files": 0, "keys": [], "bytes": 0}
    output, _ = poll(verify_event(run_id, started_at, [with_keys(lab, table, empty, b"2\n")]))
    verdict = by_table(output)[table.name]
    assert (verdict["outcome"], verdict["rows_deleted"]) == ("MERGED", 2), verdict
    assert [r["ID"] for r in final_rows(lab, table)] == [2]


def test_a_table_failing_after_it_merged_keeps_aging_from_its_last_merged_run(
    lab: Lab, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's report on a real ledger: the failed table's age counts from the snapshot of the
    run that last merged it, so it is the older one, and the stack metric is at least that."""
    steady, failing = (make_table(lab, prefix, ORDERS_DDL) for prefix in ("steady", "failing"))
    for table in (steady, failing):
        insert_orders(lab, table, 3)
    first_id, first_start = start_run()
    first, _ = poll(verify_event(first_id, first_start, [export(t, first_id) for t in (steady, failing)]))
    merged_before = by_table(first)[failing.name]
    assert merged_before["outcome"] == "MERGED"

    second_id, second_start = start_run()
    failed_export = {
        "table": failing.name,
        "status": "FAILED",
        "error": {"Error": "SourceAuthFailed", "Cause": "password authentication failed"},
    }
    # The log lines go to the stream Powertools' handler took at import; the EMF documents to print().
    log = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", log)
    capsys.readouterr()
    output, _ = poll(verify_event(second_id, second_start, [export(steady, second_id), failed_export]))
    assert by_table(output)[failing.name]["outcome"] == "FAILED"
    documents = json_lines(capsys.readouterr().out + log.getvalue())

    lines = {
        d["table"]: d
        for d in documents
        if d.get("message") == "table synced" and d.get("run_id") == second_id
    }
    assert lines[failing.name]["outcome"] == "FAILED" and lines[failing.name]["level"] == "WARNING"
    assert datetime.fromisoformat(lines[failing.name]["synced_source_time"]) == datetime.fromisoformat(
        merged_before["source_time"]
    )
    assert lines[steady.name]["outcome"] == "MERGED"
    assert lines[failing.name]["age_seconds"] > lines[steady.name]["age_seconds"]
    (report,) = [d for d in documents if "StalestTableAgeSeconds" in d]
    # EMF values are lists; the run reports each metric once.
    assert report["StalestTableAgeSeconds"][0] >= lines[failing.name]["age_seconds"]
    rows = by_table(output)[steady.name]["rows_exported"]
    assert (report["TablesFailed"], report["RowsExported"]) == ([1.0], [float(rows)])
