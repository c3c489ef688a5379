"""Contract tests of the local Snowflake (fakesnow + control-plane emulation).

Everything goes through the real Snowflake connector to the running server and through moto
for S3/SQS/IAM, exactly as production code would. Each test uses its own table/pipe names and
S3 prefix, so the tests are independent of their order (the restart test runs last by design).
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import requests
import snowflake.connector
from snowflake.connector.errors import ProgrammingError

from aurora_sync_ops.local.snowflake.csv_load import MAX_RECORD_BYTES
from aurora_sync_ops.local.stack import Stack

NOTIFIED = "n/"  # the bucket notification covers this prefix only; "quiet/" gets no events
DB = "AURORA_SYNC"
POLL_S = 30.0


def wait_for(predicate: Callable[[], Any], timeout: float = POLL_S, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def aws_session(stack: dict[str, Any]) -> Any:
    aws = stack["aws"]
    return boto3.session.Session(
        aws_access_key_id=aws["access_key_id"],
        aws_secret_access_key=aws["secret_access_key"],
        region_name=aws["region"],
    )


@pytest.fixture(scope="module")
def s3(aws_session: Any, stack: dict[str, Any]) -> Any:
    return aws_session.client("s3", endpoint_url=stack["aws"]["endpoint_url"])


@pytest.fixture(scope="module")
def sqs(aws_session: Any, stack: dict[str, Any]) -> Any:
    return aws_session.client("sqs", endpoint_url=stack["aws"]["endpoint_url"])


def connect(stack: dict[str, Any], **extra: Any) -> Any:
    return snowflake.connector.connect(**stack["snowflake"], **extra)


@pytest.fixture(scope="module")
def sf(stack: dict[str, Any]) -> Iterator[Any]:
    conn = connect(stack)
    yield conn
    conn.close()


def run(conn: Any, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(snowflake.connector.DictCursor) as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


@pytest.fixture(scope="module")
def lake(sf: Any, s3: Any, stack: dict[str, Any]) -> dict[str, str]:
    """Integration, stage and file format as the deploy SQL creates them, plus bucket events."""
    bucket = f"emu-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    run(
        sf,
        f"""CREATE OR REPLACE STORAGE INTEGRATION EMU_S3 TYPE = EXTERNAL_STAGE STORAGE_PROVIDER = 'S3'
        ENABLED = TRUE STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::123456789012:role/snowflake-access'
        STORAGE_ALLOWED_LOCATIONS = ('s3://{bucket}/')""",
    )
    run(sf, f"CREATE SCHEMA IF NOT EXISTS {DB}.STAGING")
    run(
        sf,
        f"""CREATE OR REPLACE FILE FORMAT {DB}.STAGING.PG_CSV TYPE = CSV FIELD_DELIMITER = ','
        FIELD_OPTIONALLY_ENCLOSED_BY = '"' EMPTY_FIELD_AS_NULL = TRUE NULL_IF = () SKIP_HEADER = 0""",
    )
    run(
        sf,
        f"""CREATE OR REPLACE STAGE {DB}.STAGING.LAKE URL = 's3://{bucket}/' STORAGE_INTEGRATION = EMU_S3
        FILE_FORMAT = (FORMAT_NAME = '{DB}.STAGING.PG_CSV')""",
    )
    # Any pipe's row of SHOW PIPES names the account's one queue; create one to learn it.
    table = "EMU_PROBE"
    run(sf, f"CREATE OR REPLACE TABLE {DB}.STAGING.{table} (A VARCHAR)")
    run(
        sf,
        f"""CREATE OR REPLACE PIPE {DB}.STAGING.{table}_PIPE AUTO_INGEST = TRUE AS
        COPY INTO {DB}.STAGING.{table} FROM @{DB}.STAGING.LAKE/probe/""",
    )
    arn = run(sf, f"SHOW PIPES LIKE '{table}_PIPE' IN SCHEMA {DB}.STAGING")[0]["notification_channel"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": NOTIFIED}]}},
                }
            ]
        },
    )
    return {"bucket": bucket, "queue_arn": arn}


def staging_table(conn: Any, name: str) -> None:
    run(
        conn,
        f"""CREATE OR REPLACE TABLE {DB}.STAGING.{name} (ID NUMBER(38,0) NOT NULL, NOTE VARCHAR,
        AMOUNT NUMBER(10,2), UPDATED_AT TIMESTAMP_TZ, _FILE VARCHAR, _ROW NUMBER(38,0),
        _LOADED_AT TIMESTAMP_LTZ)""",
    )


def create_pipe(conn: Any, name: str, prefix: str, on_error: str | None = None) -> None:
    option = f" ON_ERROR = {on_error}" if on_error else ""
    run(
        conn,
        f"""CREATE OR REPLACE PIPE {DB}.STAGING.{name}_PIPE AUTO_INGEST = TRUE AS
        COPY INTO {DB}.STAGING.{name} (ID, NOTE, AMOUNT, UPDATED_AT, _FILE, _ROW, _LOADED_AT)
        FROM (SELECT $1, $2, $3, $4, METADATA$FILENAME, METADATA$FILE_ROW_NUMBER, METADATA$START_SCAN_TIME
              FROM @{DB}.STAGING.LAKE/{prefix})
        FILE_FORMAT = (FORMAT_NAME = '{DB}.STAGING.PG_CSV') PATTERN = '.*[.]csv(_part[0-9]+)?'{option}""",
    )


def history(conn: Any, table: str) -> list[dict[str, Any]]:
    return run(
        conn,
        f"""SELECT * FROM TABLE({DB}.INFORMATION_SCHEMA.COPY_HISTORY(
        TABLE_NAME => 'STAGING.{table}', START_TIME => DATEADD(hours, -1, CURRENT_TIMESTAMP())))
        ORDER BY FILE_NAME""",
    )


def settled(conn: Any, table: str, count: int) -> list[dict[str, Any]]:
    """COPY_HISTORY once ``count`` files reached a final status."""

    def done() -> list[dict[str, Any]] | None:
        rows = history(conn, table)
        final = [r for r in rows if r["STATUS"] != "Load in progress"]
        return rows if len(final) >= count else None

    result: list[dict[str, Any]] = wait_for(done, what=f"{count} load(s) into {table}")
    return result


def emulator_url(stack: dict[str, Any], route: str) -> str:
    """A route of the emulator's own loopback API (``/emulator/...``), beside Snowflake's."""
    sf_ = stack["snowflake"]
    return f"{sf_['protocol']}://{sf_['host']}:{sf_['port']}/emulator/{route}"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8].upper()}"


# --- server and connection ----------------------------------------------------------------------
def test_describe_is_exactly_connect_kwargs_and_its_database_exists(stack: dict[str, Any]) -> None:
    kwargs = stack["snowflake"]
    assert set(kwargs) == {
        "account",
        "user",
        "password",
        "host",
        "port",
        "protocol",
        "database",
        "schema",
        "warehouse",
        "role",
        "session_parameters",
    }
    assert kwargs["protocol"] == "http"
    with connect(stack) as conn:
        row = run(conn, "SELECT CURRENT_DATABASE() AS D, CURRENT_SCHEMA() AS S")[0]
    assert (row["D"], row["S"]) == (kwargs["database"], kwargs["schema"])


def test_external_stage_reads_local_s3_through_fakesnow_copy(sf: Any, s3: Any, lake: dict[str, str]) -> None:
    table = unique("COPYDIRECT")
    run(sf, f"CREATE OR REPLACE TABLE {DB}.STAGING.{table} (A NUMBER, B VARCHAR)")
    s3.put_object(Bucket=lake["bucket"], Key=f"direct/{table}.csv", Body=b"1,one\n2,two\n")
    result = run(
        sf,
        f"""COPY INTO {DB}.STAGING.{table} FROM @{DB}.STAGING.LAKE/direct/
        FILES = ('{table}.csv') FILE_FORMAT = (TYPE = CSV)""",
    )
    assert result[0]["status"] == "LOADED"
    assert run(sf, f"SELECT A, B FROM {DB}.STAGING.{table} ORDER BY A") == [
        {"A": 1, "B": "one"},
        {"A": 2, "B": "two"},
    ]


def test_copy_into_with_files_force_and_metadata_filename_follows_snowflake(
    sf: Any, s3: Any, lake: dict[str, str]
) -> None:
    """COPY INTO <table> (docs.snowflake.com, COPY INTO <table>): FILES are relative to the FROM
    location; METADATA$FILENAME in a transformation is the path relative to the stage; the load
    metadata skips a file loaded before unless FORCE = TRUE; the result names each file by its URL
    with status LOADED; no file to load answers "Copy executed with 0 files processed."."""
    table = unique("COPYKEYS")
    run(sf, f"CREATE OR REPLACE TABLE {DB}.STAGING.{table} (A NUMBER(10,0), B VARCHAR, F VARCHAR)")
    first, second = f"keys/{table}/a.csv", f"keys/{table}/b.csv"
    s3.put_object(Bucket=lake["bucket"], Key=first, Body=b"1,one\n2,two\n")
    s3.put_object(Bucket=lake["bucket"], Key=second, Body=b'3,""\n')
    copy = (
        f"COPY INTO {DB}.STAGING.{table} (A, B, F) FROM (SELECT $1, $2, METADATA$FILENAME "
        f"FROM @{DB}.STAGING.LAKE/) FILES = ('{first}', '{second}') "
        f"FILE_FORMAT = (FORMAT_NAME = '{DB}.STAGING.PG_CSV') ON_ERROR = ABORT_STATEMENT"
    )
    result = run(sf, copy)
    assert sorted((r["file"], r["status"], r["rows_loaded"]) for r in result) == [
        (f"s3://{lake['bucket']}/{first}", "LOADED", 2),
        (f"s3://{lake['bucket']}/{second}", "LOADED", 1),
    ]
    assert run(sf, f"SELECT A, B, F FROM {DB}.STAGING.{table} ORDER BY A") == [
        {"A": 1, "B": "one", "F": first},
        {"A": 2, "B": "two", "F": first},
        {"A": 3, "B": "", "F": second},
    ]
    # Load metadata: the same files are skipped ...
    assert run(sf, copy) == [{"status": "Copy executed with 0 files processed."}]
    # ... unless FORCE = TRUE, which loads them again.
    again = run(sf, copy.replace("ON_ERROR", "FORCE = TRUE ON_ERROR"))
    assert sum(r["rows_loaded"] for r in again) == 3
    assert run(sf, f"SELECT COUNT(*) AS N FROM {DB}.STAGING.{table}") == [{"N": 6}]


def test_copy_into_abort_statement_loads_no_file_when_one_has_a_bad_record(
    sf: Any, s3: Any, lake: dict[str, str]
) -> None:
    """ON_ERROR = ABORT_STATEMENT (COPY's default): the first bad record fails the statement and
    no file of it is loaded, not even the good ones before it."""
    table = unique("COPYABORT")
    run(sf, f"CREATE OR REPLACE TABLE {DB}.STAGING.{table} (A NUMBER(10,0), F VARCHAR)")
    good, bad = f"abort/{table}/1.csv", f"abort/{table}/2.csv"
    s3.put_object(Bucket=lake["bucket"], Key=good, Body=b"1\n2\n")
    s3.put_object(Bucket=lake["bucket"], Key=bad, Body=b"3\nx\n")
    with pytest.raises(ProgrammingError, match="Numeric value 'x' is not recognized"):
        run(
            sf,
            f"COPY INTO {DB}.STAGING.{table} (A, F) FROM (SELECT $1, METADATA$FILENAME "
            f"FROM @{DB}.STAGING.LAKE/) FILES = ('{good}', '{bad}') FORCE = TRUE "
            f"FILE_FORMAT = (FORMAT_NAME = '{DB}.STAGING.PG_CSV') ON_ERROR = ABORT_STATEMENT",
        )
    assert run(sf, f"SELECT COUNT(*) AS N FROM {DB}.STAGING.{table}") == [{"N": 0}]


def test_copy_into_lists_at_most_1000_files(sf: Any, s3: Any, lake: dict[str, str]) -> None:
    """COPY INTO <table>, FILES: "The maximum number of file names that can be specified is
    1000." 1,000 names compile (the files need not exist to see it: a missing one fails the
    load, not the compilation); 1,001 are refused before anything loads."""
    table = unique("COPYMANY")
    run(sf, f"CREATE OR REPLACE TABLE {DB}.STAGING.{table} (A NUMBER(10,0))")

    def copy(count: int) -> str:
        names = ", ".join(f"'many/{table}/{n}.csv'" for n in range(count))
        return (
            f"COPY INTO {DB}.STAGING.{table} (A) FROM (SELECT $1 FROM @{DB}.STAGING.LAKE/) "
            f"FILES = ({names}) FILE_FORMAT = (FORMAT_NAME = '{DB}.STAGING.PG_CSV') "
            "ON_ERROR = ABORT_STATEMENT"
        )

    with pytest.raises(ProgrammingError, match="at most 1000"):
        run(sf, copy(1001))
    with pytest.raises(ProgrammingError) as missing:
        run(sf, copy(1000))
    assert "at most 1000" not in str(missing.value)


# --- storage integration ------------------------------------------------------------------------
def test_desc_integration_gives_the_deploy_handshake(
    sf: Any, aws_session: Any, stack: dict[str, Any], lake: dict[str, str]
) -> None:
    rows = {r["property"]: r for r in run(sf, "DESC INTEGRATION EMU_S3")}
    assert {
        "ENABLED",
        "STORAGE_PROVIDER",
        "STORAGE_ALLOWED_LOCATIONS",
        "STORAGE_AWS_IAM_USER_ARN",
        "STORAGE_AWS_ROLE_ARN",
        "STORAGE_AWS_EXTERNAL_ID",
    } <= set(rows)
    assert rows["STORAGE_AWS_ROLE_ARN"]["property_value"] == "arn:aws:iam::123456789012:role/snowflake-access"
    assert rows["STORAGE_ALLOWED_LOCATIONS"]["property_value"] == f"s3://{lake['bucket']}/"
    assert rows["STORAGE_PROVIDER"]["property_type"] == "String"
    # The IAM user is a real moto user, so a trust policy naming it is valid.
    iam = aws_session.client("iam", endpoint_url=stack["aws"]["endpoint_url"])
    user_arn = rows["STORAGE_AWS_IAM_USER_ARN"]["property_value"]
    assert iam.get_user(UserName=user_arn.rsplit("/", 1)[1])["User"]["Arn"] == user_arn
    # CREATE OR REPLACE keeps the external id (the role's trust policy depends on it).
    external_id = rows["STORAGE_AWS_EXTERNAL_ID"]["property_value"]
    run(
        sf,
        f"""CREATE OR REPLACE STORAGE INTEGRATION EMU_S3 TYPE = EXTERNAL_STAGE STORAGE_PROVIDER = 'S3'
        ENABLED = TRUE STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::123456789012:role/snowflake-access'
        STORAGE_ALLOWED_LOCATIONS = ('s3://{lake["bucket"]}/')""",
    )
    again = {r["property"]: r["property_value"] for r in run(sf, "DESC INTEGRATION emu_s3")}
    assert again["STORAGE_AWS_EXTERNAL_ID"] == external_id


def test_an_integration_presents_the_external_id_it_was_given_and_alter_changes_it_in_place(
    sf: Any, lake: dict[str, str]
) -> None:
    """CREATE STORAGE INTEGRATION … STORAGE_AWS_EXTERNAL_ID sets the id Snowflake presents (the
    role's trust policy requires it); ALTER … SET changes it without replacing the integration."""
    role = "arn:aws:iam::123456789012:role/snowflake-access"
    run(
        sf,
        f"""CREATE STORAGE INTEGRATION IF NOT EXISTS EMU_S3_FIXED TYPE = EXTERNAL_STAGE
        STORAGE_PROVIDER = 'S3' ENABLED = TRUE STORAGE_AWS_ROLE_ARN = '{role}'
        STORAGE_AWS_EXTERNAL_ID = 'aurora-sync-1c2fa620-982a-11e3-aff7-50e2416294e0'
        STORAGE_ALLOWED_LOCATIONS = ('s3://{lake["bucket"]}/')""",
    )
    created = {r["property"]: r["property_value"] for r in run(sf, "DESC INTEGRATION EMU_S3_FIXED")}
    assert created["STORAGE_AWS_EXTERNAL_ID"] == "aurora-sync-1c2fa620-982a-11e3-aff7-50e2416294e0"
    run(
        sf,
        f"ALTER STORAGE INTEGRATION EMU_S3_FIXED SET STORAGE_AWS_ROLE_ARN = '{role}' "
        "STORAGE_AWS_EXTERNAL_ID = 'aurora-sync-other'",
    )
    altered = {r["property"]: r["property_value"] for r in run(sf, "DESC INTEGRATION EMU_S3_FIXED")}
    assert altered["STORAGE_AWS_EXTERNAL_ID"] == "aurora-sync-other"
    assert altered["STORAGE_AWS_ROLE_ARN"] == role
    with pytest.raises(ProgrammingError, match="does not exist"):
        run(sf, "ALTER STORAGE INTEGRATION NO_SUCH_INTEGRATION SET STORAGE_AWS_EXTERNAL_ID = 'x-y'")
    run(sf, "DROP INTEGRATION EMU_S3_FIXED")


def test_unknown_integration_and_disallowed_stage_location_fail_like_snowflake(sf: Any) -> None:
    with pytest.raises(ProgrammingError) as missing:
        run(sf, "DESC INTEGRATION NO_SUCH_INTEGRATION")
    assert "Integration 'NO_SUCH_INTEGRATION' does not exist or not authorized." in str(missing.value)
    assert missing.value.sqlstate == "02000"
    with pytest.raises(ProgrammingError) as outside:
        run(
            sf,
            f"CREATE STAGE {DB}.STAGING.ELSEWHERE URL = 's3://other-bucket/x/' STORAGE_INTEGRATION = EMU_S3",
        )
    assert "is not allowed by integration 'EMU_S3'" in str(outside.value)


# --- pipes ----------------------------------------------------------------------------------------
def test_show_pipes_notification_channel_is_an_existing_sqs_queue(
    sf: Any, sqs: Any, lake: dict[str, str]
) -> None:
    rows = run(sf, f"SHOW PIPES LIKE 'emu_probe%' IN SCHEMA {DB}.STAGING")
    assert [r["name"] for r in rows] == ["EMU_PROBE_PIPE"]
    row = rows[0]
    assert {
        "created_on",
        "name",
        "database_name",
        "schema_name",
        "definition",
        "owner",
        "notification_channel",
        "comment",
        "integration",
        "pattern",
    } <= set(row)
    assert row["definition"].startswith("COPY INTO")
    queue_name = row["notification_channel"].rsplit(":", 1)[1]
    url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert arn == row["notification_channel"]


def test_account_queue_is_reported_by_the_emulator_and_is_every_pipes_channel(
    stack: dict[str, Any], sqs: Any, lake: dict[str, str]
) -> None:
    # `local up` wires the bucket from this route before any pipe exists (Snowflake's queue is
    # per account); it must be the queue SHOW PIPES names, and a real SQS queue.
    channel = requests.get(emulator_url(stack, "account"), timeout=10).json()["notification_channel"]
    assert channel == lake["queue_arn"]
    queue_url = sqs.get_queue_url(QueueName=channel.rsplit(":", 1)[1])["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
    assert attributes["QueueArn"] == channel


def test_notified_files_load_with_part2_and_null_differs_from_empty(
    sf: Any, s3: Any, lake: dict[str, str]
) -> None:
    table = unique("ORDERS")
    staging_table(sf, table)
    prefix = f"{NOTIFIED}{table.lower()}/"
    create_pipe(sf, table, prefix)
    key = f"{prefix}2024/01/01/00/{uuid.uuid4()}.csv"
    # PostgreSQL CSV: NULL is an unquoted empty field, '' is "".
    s3.put_object(
        Bucket=lake["bucket"],
        Key=key,
        Body=b'1,"",1.50,2024-01-01 10:00:00.123456+00\n2,,2,\n3,"a ""quoted"", text",3.25,\n',
    )
    s3.put_object(Bucket=lake["bucket"], Key=key + "_part2", Body=b"4,x,4,2024-01-02T00:00:00Z\n")
    s3.put_object(Bucket=lake["bucket"], Key=key + ".manifest", Body=b"not data\n")  # PATTERN excludes it

    rows = settled(sf, table, 2)
    relative = key[len(NOTIFIED) - len(NOTIFIED) :]
    assert [(r["FILE_NAME"], r["STATUS"], r["ROW_COUNT"], r["ROW_PARSED"]) for r in rows] == [
        (relative, "Loaded", 3, 3),
        (relative + "_part2", "Loaded", 1, 1),
    ]
    assert rows[0]["STAGE_LOCATION"] == f"s3://{lake['bucket']}/"
    assert rows[0]["PIPE_NAME"] == f"{table}_PIPE" and rows[0]["TABLE_NAME"] == table
    assert rows[0]["ERROR_COUNT"] == 0 and rows[0]["FIRST_ERROR_MESSAGE"] is None
    assert rows[0]["FILE_SIZE"] > 0 and rows[0]["LAST_LOAD_TIME"] is not None

    data = run(sf, f"SELECT ID, NOTE, AMOUNT, UPDATED_AT, _FILE, _ROW FROM {DB}.STAGING.{table} ORDER BY ID")
    assert [(r["ID"], r["NOTE"]) for r in data] == [(1, ""), (2, None), (3, 'a "quoted", text'), (4, "x")]
    assert [r["_ROW"] for r in data] == [1, 2, 3, 1]
    assert data[3]["_FILE"] == relative + "_part2"
    assert str(data[0]["AMOUNT"]) == "1.50"
    assert data[0]["UPDATED_AT"].isoformat() == "2024-01-01T10:00:00.123456+00:00"


def test_malformed_files_fail_whole_with_snowflake_error_text(sf: Any, s3: Any, lake: dict[str, str]) -> None:
    table = unique("BAD")
    staging_table(sf, table)
    prefix = f"{NOTIFIED}{table.lower()}/"
    create_pipe(sf, table, prefix)
    s3.put_object(Bucket=lake["bucket"], Key=f"{prefix}a-number.csv", Body=b"1,ok,1,\n2,bad,abc,\n")
    s3.put_object(Bucket=lake["bucket"], Key=f"{prefix}b-columns.csv", Body=b"1,ok,1,\n2,short\n")
    rows = settled(sf, table, 2)
    number, columns = rows
    assert (number["STATUS"], number["ROW_COUNT"], number["ERROR_COUNT"]) == ("Load failed", 0, 1)
    assert number["FIRST_ERROR_MESSAGE"] == "Numeric value 'abc' is not recognized"
    assert number["FIRST_ERROR_LINE_NUMBER"] == 2
    assert number["FIRST_ERROR_COLUMN_NAME"] == f'"{table}"["AMOUNT":3]'
    assert columns["STATUS"] == "Load failed"
    assert columns["FIRST_ERROR_MESSAGE"] == (
        "Number of columns in file (2) does not match that of the corresponding table (4), use file format "
        "option error_on_column_count_mismatch=false to ignore this error"
    )
    assert columns["FIRST_ERROR_LINE_NUMBER"] == 2
    # SKIP_FILE: the good rows of a failed file are not loaded either.
    assert run(sf, f"SELECT COUNT(*) AS N FROM {DB}.STAGING.{table}")[0]["N"] == 0


def pipe_loaders(stack: dict[str, Any], loaders: int | None = None) -> int:
    response = requests.post(emulator_url(stack, "pipe-loaders"), json={"loaders": loaders}, timeout=10)
    response.raise_for_status()
    return int(response.json()["loaders"])


def test_files_notified_at_once_load_side_by_side_each_once_with_its_own_history(
    sf: Any, s3: Any, lake: dict[str, str], stack: dict[str, Any]
) -> None:
    # A large run notifies hundreds of files at once; the loader threads take them together
    # (issue 15), and each file still gets exactly its own COPY_HISTORY row, status and counts.
    assert pipe_loaders(stack) > 1
    assert (
        requests.post(
            emulator_url(stack, "pipe-loaders"),
            json={"loaders": 0},
            timeout=10,
        ).status_code
        == 400
    )
    table = unique("MANY")
    staging_table(sf, table)
    prefix = f"{NOTIFIED}{table.lower()}/"
    create_pipe(sf, table, prefix)
    for i in range(40):
        body = "".join(f"{i * 100 + r},n{r},{r},\n" for r in range(i % 5 + 1))
        s3.put_object(Bucket=lake["bucket"], Key=f"{prefix}f{i:02d}.csv", Body=body.encode())
    s3.put_object(Bucket=lake["bucket"], Key=f"{prefix}zz-bad.csv", Body=b"1,ok,1,\n2,bad,abc,\n")
    rows = settled(sf, table, 41)
    assert [r["FILE_NAME"].rsplit("/", 1)[1] for r in rows] == [f"f{i:02d}.csv" for i in range(40)] + [
        "zz-bad.csv"
    ]
    assert [(r["STATUS"], r["ROW_COUNT"], r["ROW_PARSED"]) for r in rows[:40]] == [
        ("Loaded", i % 5 + 1, i % 5 + 1) for i in range(40)
    ]
    assert (rows[40]["STATUS"], rows[40]["ROW_COUNT"], rows[40]["FIRST_ERROR_MESSAGE"]) == (
        "Load failed",
        0,
        "Numeric value 'abc' is not recognized",
    )
    assert all(r["LAST_LOAD_TIME"] is not None for r in rows)
    loaded = run(sf, f"SELECT COUNT(*) AS N, COUNT(DISTINCT _FILE) AS F FROM {DB}.STAGING.{table}")[0]
    assert (loaded["N"], loaded["F"]) == (sum(i % 5 + 1 for i in range(40)), 40)


def test_a_record_over_2_000_000_bytes_fails_its_file_locally(sf: Any, s3: Any, lake: dict[str, str]) -> None:
    # A local limit (DuckDB's read_csv, csv_load.MAX_RECORD_BYTES) that real Snowflake does not
    # have: there, each field only has to fit its column. docs/local-stack.md says so; this pins
    # where the local edge is, so a change of it is noticed.
    table = unique("WIDE")
    staging_table(sf, table)
    prefix = f"{NOTIFIED}{table.lower()}/"
    create_pipe(sf, table, prefix)

    def record(id_: int, size: int) -> bytes:
        head, tail = f'{id_},"'.encode(), b'",1,'
        return head + b"n" * (size - len(head) - len(tail)) + tail

    at_limit, over = record(1, MAX_RECORD_BYTES), record(2, MAX_RECORD_BYTES + 1)
    assert (len(at_limit), len(over)) == (2_000_000, 2_000_001)
    s3.put_object(Bucket=lake["bucket"], Key=f"{prefix}a-at-limit.csv", Body=at_limit + b"\n3,small,1,\n")
    s3.put_object(Bucket=lake["bucket"], Key=f"{prefix}b-over.csv", Body=over + b"\n4,small,1,\n")
    loaded, failed = settled(sf, table, 2)
    assert (loaded["STATUS"], loaded["ROW_COUNT"]) == ("Loaded", 2)
    assert (failed["STATUS"], failed["ROW_COUNT"], failed["FIRST_ERROR_LINE_NUMBER"]) == ("Load failed", 0, 1)
    assert "Maximum line size of 2000000 bytes exceeded" in failed["FIRST_ERROR_MESSAGE"]
    lengths = run(sf, f"SELECT ID, LENGTH(NOTE) AS L FROM {DB}.STAGING.{table} ORDER BY ID")
    assert [(r["ID"], r["L"]) for r in lengths] == [(1, MAX_RECORD_BYTES - 7), (3, 5)]


def test_on_error_continue_loads_good_rows_as_partially_loaded(
    sf: Any, s3: Any, lake: dict[str, str]
) -> None:
    table = unique("CONT")
    staging_table(sf, table)
    prefix = f"{NOTIFIED}{table.lower()}/"
    create_pipe(sf, table, prefix, on_error="CONTINUE")
    s3.put_object(
        Bucket=lake["bucket"],
        Key=f"{prefix}mixed.csv",
        Body=b"1,a,1,\n2,b,oops,\n3,c,3,\n,d,4,\n5,e\n6,f,6,\n",
    )
    (row,) = settled(sf, table, 1)
    assert (row["STATUS"], row["ROW_COUNT"], row["ROW_PARSED"], row["ERROR_COUNT"]) == (
        "Partially loaded",
        3,
        6,
        3,
    )
    assert row["FIRST_ERROR_MESSAGE"] == "Numeric value 'oops' is not recognized"
    data = run(sf, f"SELECT ID, _ROW FROM {DB}.STAGING.{table} ORDER BY ID")
    # METADATA$FILE_ROW_NUMBER is the record's position in the file, skipped records included.
    assert [(r["ID"], r["_ROW"]) for r in data] == [(1, 1), (3, 3), (6, 6)]


def test_a_file_path_loads_once_even_when_uploaded_again(sf: Any, s3: Any, lake: dict[str, str]) -> None:
    table = unique("ONCE")
    staging_table(sf, table)
    prefix = f"{NOTIFIED}{table.lower()}/"
    create_pipe(sf, table, prefix)
    key = f"{prefix}same.csv"
    s3.put_object(Bucket=lake["bucket"], Key=key, Body=b"1,first,1,\n")
    settled(sf, table, 1)
    s3.put_object(Bucket=lake["bucket"], Key=key, Body=b"1,changed,1,\n2,new,2,\n")
    s3.put_object(Bucket=lake["bucket"], Key=f"{prefix}marker.csv", Body=b"9,marker,9,\n")
    rows = settled(sf, table, 2)
    assert [(r["FILE_NAME"].rsplit("/", 1)[1], r["ROW_COUNT"]) for r in rows] == [
        ("marker.csv", 1),
        ("same.csv", 1),
    ]
    refreshed = run(sf, f"ALTER PIPE {DB}.STAGING.{table}_PIPE REFRESH")
    assert refreshed == []
    notes = [r["NOTE"] for r in run(sf, f"SELECT NOTE FROM {DB}.STAGING.{table} ORDER BY ID")]
    assert notes == ["first", "marker"]


def test_lost_notification_is_loaded_only_after_refresh(sf: Any, s3: Any, lake: dict[str, str]) -> None:
    table = unique("QUIET")
    staging_table(sf, table)
    prefix = f"quiet/{table.lower()}/"  # outside the notification filter: no event is ever sent
    create_pipe(sf, table, prefix)
    s3.put_object(Bucket=lake["bucket"], Key=f"{prefix}2024/x.csv", Body=b"1,a,1,\n2,b,2,\n")
    s3.put_object(Bucket=lake["bucket"], Key=f"{prefix}2025/y.csv", Body=b"3,c,3,\n")
    time.sleep(2.0)  # long enough for a notification-driven load, which must not happen
    assert history(sf, table) == []
    status = json.loads(run(sf, f"SELECT SYSTEM$PIPE_STATUS('{DB}.STAGING.{table}_PIPE') AS S")[0]["S"])
    assert status["pendingFileCount"] == 0

    sent = run(sf, f"ALTER PIPE {DB}.STAGING.{table}_PIPE REFRESH PREFIX = '2024/'")
    assert sent == [{"File": f"{prefix}2024/x.csv", "Status": "SENT"}]
    rows = settled(sf, table, 1)
    assert [(r["FILE_NAME"], r["STATUS"], r["ROW_COUNT"]) for r in rows] == [
        (f"{prefix}2024/x.csv", "Loaded", 2)
    ]
    sent_all = run(sf, f"ALTER PIPE {DB}.STAGING.{table}_PIPE REFRESH")
    assert sent_all == [{"File": f"{prefix}2025/y.csv", "Status": "SENT"}]
    settled(sf, table, 2)


def test_pipe_status_reports_state_pending_and_last_ingested(sf: Any, s3: Any, lake: dict[str, str]) -> None:
    table = unique("STATUS")
    staging_table(sf, table)
    prefix = f"{NOTIFIED}{table.lower()}/"
    create_pipe(sf, table, prefix)
    pipe = f"{DB}.STAGING.{table}_PIPE"
    cur = sf.cursor()
    cur.execute(f"SELECT SYSTEM$PIPE_STATUS('{pipe}')")
    assert cur.description[0].name == f"SYSTEM$PIPE_STATUS('{pipe}')"
    fresh = json.loads(cur.fetchone()[0])
    assert fresh["executionState"] == "RUNNING"
    assert fresh["pendingFileCount"] == 0
    assert fresh["notificationChannelName"] == lake["queue_arn"]
    assert "numOutstandingMessagesOnChannel" in fresh
    assert "lastIngestedTimestamp" not in fresh

    run(sf, f"ALTER PIPE {pipe} SET PIPE_EXECUTION_PAUSED = TRUE")
    s3.put_object(Bucket=lake["bucket"], Key=f"{prefix}held.csv", Body=b"1,a,1,\n")

    def paused_with_pending() -> dict[str, Any] | None:
        status = json.loads(run(sf, f"SELECT SYSTEM$PIPE_STATUS('{pipe}') AS S")[0]["S"])
        return status if status["pendingFileCount"] == 1 else None

    paused = wait_for(paused_with_pending, what="a pending file on the paused pipe")
    assert paused["executionState"] == "PAUSED"
    assert paused["oldestPendingFilePath"] == f"{prefix}held.csv"
    assert run(sf, f"SELECT COUNT(*) AS N FROM {DB}.STAGING.{table}")[0]["N"] == 0

    run(sf, f"ALTER PIPE {pipe} SET PIPE_EXECUTION_PAUSED = FALSE")
    settled(sf, table, 1)
    done = json.loads(run(sf, f"SELECT SYSTEM$PIPE_STATUS('{pipe}') AS S")[0]["S"])
    assert done["executionState"] == "RUNNING" and done["pendingFileCount"] == 0
    assert done["lastIngestedFilePath"] == f"{prefix}held.csv"
    assert done["lastIngestedTimestamp"].endswith("Z")


def test_copy_history_composes_with_union_all_where_and_bound_parameters(
    stack: dict[str, Any], s3: Any, lake: dict[str, str]
) -> None:
    with connect(stack, paramstyle="qmark") as conn:
        tables = [unique("UA"), unique("UB")]
        for i, table in enumerate(tables):
            staging_table(conn, table)
            prefix = f"{NOTIFIED}{table.lower()}/"
            create_pipe(conn, table, prefix)
            s3.put_object(Bucket=lake["bucket"], Key=f"{prefix}f.csv", Body=b"1,a,1,\n" * (i + 1))
        for table in tables:
            settled(conn, table, 1)
        sql = (
            " UNION ALL ".join(
                f"""SELECT TABLE_NAME, FILE_NAME, ROW_COUNT FROM TABLE({DB}.INFORMATION_SCHEMA.COPY_HISTORY(
                TABLE_NAME => ?, START_TIME => DATEADD(minutes, -?, CURRENT_TIMESTAMP()))) WHERE STATUS = ?"""
                for _ in tables
            )
            + " ORDER BY ROW_COUNT DESC"
        )
        params = []
        for table in tables:
            params += [f"STAGING.{table}", 30, "Loaded"]
        rows = run(conn, sql, params)
    assert [(r["TABLE_NAME"], r["ROW_COUNT"]) for r in rows] == [(tables[1], 2), (tables[0], 1)]


def test_copy_history_requires_its_arguments(sf: Any) -> None:
    with pytest.raises(ProgrammingError) as error:
        run(sf, f"SELECT * FROM TABLE({DB}.INFORMATION_SCHEMA.COPY_HISTORY(TABLE_NAME => 'STAGING.X'))")
    assert "COPY_HISTORY requires the arguments TABLE_NAME and START_TIME" in str(error.value)


def test_recreating_or_dropping_a_pipe_drops_its_load_history(sf: Any, s3: Any, lake: dict[str, str]) -> None:
    table = unique("RECREATE")
    staging_table(sf, table)
    prefix = f"{NOTIFIED}{table.lower()}/"
    create_pipe(sf, table, prefix)
    s3.put_object(Bucket=lake["bucket"], Key=f"{prefix}a.csv", Body=b"1,a,1,\n")
    settled(sf, table, 1)
    create_pipe(sf, table, prefix)
    assert history(sf, table) == []
    # Without history the same file is new to the recreated pipe, as in Snowflake.
    assert run(sf, f"ALTER PIPE {DB}.STAGING.{table}_PIPE REFRESH") == [
        {"File": f"{prefix}a.csv", "Status": "SENT"}
    ]
    settled(sf, table, 1)
    assert run(sf, f"DROP PIPE {DB}.STAGING.{table}_PIPE") == [
        {"status": f"{table}_PIPE successfully dropped."}
    ]
    assert history(sf, table) == []
    assert run(sf, f"SHOW PIPES LIKE '{table}_PIPE' IN DATABASE {DB}") == []
    with pytest.raises(ProgrammingError) as error:
        run(sf, f"DROP PIPE {DB}.STAGING.{table}_PIPE")
    assert f"Pipe '{DB}.STAGING.{table}_PIPE' does not exist or not authorized." in str(error.value)


def test_a_100k_row_file_loads_whole(sf: Any, s3: Any, lake: dict[str, str]) -> None:
    table = unique("BIG")
    staging_table(sf, table)
    prefix = f"{NOTIFIED}{table.lower()}/"
    create_pipe(sf, table, prefix)
    body = "".join(f'{i},"note {i}",{i}.25,2024-01-01 00:00:00+00\n' for i in range(100_000)).encode()
    # Only that it loads whole: speed is for benchmarks, never asserted in a test.
    s3.put_object(Bucket=lake["bucket"], Key=f"{prefix}big.csv", Body=body)
    (row,) = settled(sf, table, 1)
    assert (row["STATUS"], row["ROW_COUNT"]) == ("Loaded", 100_000)


# --- streams and tasks -------------------------------------------------------------------------------
def task_runs(conn: Any, task: str) -> list[dict[str, Any]]:
    return run(
        conn,
        f"""SELECT NAME, STATE, ERROR_MESSAGE, QUERY_ID, SCHEDULED_TIME, COMPLETED_TIME
        FROM TABLE({DB}.INFORMATION_SCHEMA.TASK_HISTORY(TASK_NAME => '{task}', RESULT_LIMIT => 10))""",
    )


def finished_run(conn: Any, task: str) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        runs = task_runs(conn, task)
        return runs[0] if runs and runs[0]["STATE"] in ("SUCCEEDED", "FAILED", "SKIPPED") else None

    result: dict[str, Any] = wait_for(final, what=f"a finished run of {task}")
    return result


def test_execute_task_merges_the_stream_and_consumes_it(sf: Any) -> None:
    table = unique("ST")
    staging_table(sf, table)
    run(sf, f"CREATE SCHEMA IF NOT EXISTS {DB}.FINAL")
    run(
        sf,
        f"CREATE OR REPLACE TABLE {DB}.FINAL.{table} "
        "(ID NUMBER(38,0), NOTE VARCHAR, UPDATED_AT TIMESTAMP_TZ)",
    )
    run(sf, f"INSERT INTO {DB}.STAGING.{table} (ID, NOTE) VALUES (0, 'before the stream')")
    assert run(
        sf,
        f"CREATE OR REPLACE STREAM {DB}.STAGING.{table}_STREAM ON TABLE {DB}.STAGING.{table} "
        "APPEND_ONLY = TRUE",
    ) == [{"status": f"Stream {table}_STREAM successfully created."}]
    stream = f"{DB}.STAGING.{table}_STREAM"
    assert run(sf, f"SELECT SYSTEM$STREAM_HAS_DATA('{stream}') AS H")[0]["H"] is False
    run(
        sf,
        f"""INSERT INTO {DB}.STAGING.{table} (ID, NOTE, UPDATED_AT, _FILE, _ROW) VALUES
        (1, 'old', '2024-01-01 00:00:00+00', 'f1', 1), (1, 'new', '2024-01-02 00:00:00+00', 'f1', 2),
        (2, 'two', '2024-01-01 00:00:00+00', 'f1', 3)""",
    )
    assert run(sf, f"SELECT SYSTEM$STREAM_HAS_DATA('{stream}') AS H")[0]["H"] is True
    # A plain SELECT does not move the offset.
    seen = run(sf, f'SELECT ID, "METADATA$ACTION" AS A FROM {stream} ORDER BY ID')
    assert [(r["ID"], r["A"]) for r in seen] == [(1, "INSERT"), (1, "INSERT"), (2, "INSERT")]
    assert len(run(sf, f"SELECT * FROM {stream}")) == 3

    merge = f"""MERGE INTO {DB}.FINAL.{table} t USING (
            SELECT ID, NOTE, UPDATED_AT FROM {stream}
            QUALIFY ROW_NUMBER() OVER (PARTITION BY ID ORDER BY UPDATED_AT DESC, _ROW DESC) = 1) s
        ON t.ID = s.ID
        WHEN MATCHED AND s.UPDATED_AT >= t.UPDATED_AT THEN UPDATE SET NOTE = s.NOTE, UPDATED_AT = s.UPDATED_AT
        WHEN NOT MATCHED THEN INSERT (ID, NOTE, UPDATED_AT) VALUES (s.ID, s.NOTE, s.UPDATED_AT)"""
    created = run(
        sf,
        f"""CREATE OR REPLACE TASK {DB}.STAGING.{table}_MERGE
        USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL' SCHEDULE = '60 MINUTE'
        ALLOW_OVERLAPPING_EXECUTION = FALSE WHEN SYSTEM$STREAM_HAS_DATA('{stream}') AS {merge}""",
    )
    assert created == [{"status": f"Task {table}_MERGE successfully created."}]
    shown = run(sf, f"SHOW TASKS LIKE '{table}_MERGE' IN SCHEMA {DB}.STAGING")
    assert [(r["name"], r["state"], r["schedule"]) for r in shown] == [
        (f"{table}_MERGE", "suspended", "60 MINUTE")
    ]
    assert shown[0]["condition"] == f"SYSTEM$STREAM_HAS_DATA('{stream}')"

    # A suspended task still runs on EXECUTE TASK, and EXECUTE TASK returns before the run ends.
    assert run(sf, f"EXECUTE TASK {DB}.STAGING.{table}_MERGE") == [
        {"status": "Statement executed successfully."}
    ]
    done = finished_run(sf, f"{table}_MERGE")
    assert (done["NAME"], done["STATE"], done["ERROR_MESSAGE"]) == (f"{table}_MERGE", "SUCCEEDED", None)
    assert done["COMPLETED_TIME"] >= done["SCHEDULED_TIME"]
    final = run(sf, f"SELECT ID, NOTE FROM {DB}.FINAL.{table} ORDER BY ID")
    assert final == [{"ID": 1, "NOTE": "new"}, {"ID": 2, "NOTE": "two"}]
    assert run(sf, f"SELECT COUNT(*) AS N FROM {stream}")[0]["N"] == 0
    assert run(sf, f"SELECT SYSTEM$STREAM_HAS_DATA('{stream}') AS H")[0]["H"] is False

    # Nothing new: the WHEN condition is false and the run is SKIPPED.
    run(sf, f"EXECUTE TASK {DB}.STAGING.{table}_MERGE")
    wait_for(lambda: task_runs(sf, f"{table}_MERGE")[0]["STATE"] == "SKIPPED", what="a skipped run")
    assert len(task_runs(sf, f"{table}_MERGE")) == 2

    run(sf, f"ALTER TASK {DB}.STAGING.{table}_MERGE RESUME")
    assert run(sf, f"SHOW TASKS LIKE '{table}_MERGE' IN SCHEMA {DB}.STAGING")[0]["state"] == "started"
    run(sf, f"ALTER TASK {DB}.STAGING.{table}_MERGE SUSPEND")
    assert run(sf, f"DROP TASK {DB}.STAGING.{table}_MERGE") == [
        {"status": f"{table}_MERGE successfully dropped."}
    ]


def test_merge_tasks_of_one_schema_run_side_by_side_without_conflict(sf: Any) -> None:
    # Snowflake runs the MERGEs of different tables at the same time; fakesnow runs a MERGE as
    # statements around a scratch table of one name per schema (merge_candidates), so two task
    # runs in STAGING at once failed one of them with a DuckDB catalog conflict on it.
    tables = [unique("SIDE") for _ in range(8)]
    run(sf, f"CREATE SCHEMA IF NOT EXISTS {DB}.FINAL")
    for table in tables:
        staging_table(sf, table)
        run(sf, f"CREATE OR REPLACE TABLE {DB}.FINAL.{table} (ID NUMBER(38,0), NOTE VARCHAR)")
        run(
            sf,
            f"CREATE OR REPLACE STREAM {DB}.STAGING.{table}_STREAM ON TABLE {DB}.STAGING.{table} "
            "APPEND_ONLY = TRUE",
        )
        run(sf, f"INSERT INTO {DB}.STAGING.{table} (ID, NOTE) SELECT RANGE, 'n' FROM RANGE(0, 20000)")
        run(
            sf,
            f"""CREATE OR REPLACE TASK {DB}.STAGING.{table}_MERGE
            USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL' SCHEDULE = '60 MINUTE' AS
            MERGE INTO {DB}.FINAL.{table} t USING (SELECT ID, NOTE FROM {DB}.STAGING.{table}_STREAM) s
            ON t.ID = s.ID WHEN MATCHED THEN UPDATE SET NOTE = s.NOTE
            WHEN NOT MATCHED THEN INSERT (ID, NOTE) VALUES (s.ID, s.NOTE)""",
        )
    for table in tables:
        run(sf, f"EXECUTE TASK {DB}.STAGING.{table}_MERGE")
    outcomes = {table: finished_run(sf, f"{table}_MERGE") for table in tables}
    assert {t: (r["STATE"], r["ERROR_MESSAGE"]) for t, r in outcomes.items()} == {
        t: ("SUCCEEDED", None) for t in tables
    }
    for table in tables:
        assert run(sf, f"SELECT COUNT(*) AS N FROM {DB}.FINAL.{table}")[0]["N"] == 20000


def test_a_serverless_triggered_task_needs_a_target_completion_interval_and_runs_once_when_executed(
    sf: Any,
) -> None:
    """docs.snowflake.com/user-guide/tasks-triggered: a task with WHEN and no SCHEDULE is a
    triggered task; serverless (no WAREHOUSE) it must set TARGET_COMPLETION_INTERVAL. It is
    created suspended, and EXECUTE TASK runs it once."""
    table = unique("TRIG")
    staging_table(sf, table)
    base, stream = f"{DB}.STAGING.{table}", f"{DB}.STAGING.{table}_STREAM"
    run(sf, f"CREATE OR REPLACE TABLE {base}_COPY (ID NUMBER(38,0))")
    run(sf, f"CREATE OR REPLACE STREAM {stream} ON TABLE {base} APPEND_ONLY = TRUE")
    body = f"WHEN SYSTEM$STREAM_HAS_DATA('{stream}') AS INSERT INTO {base}_COPY SELECT ID FROM {stream}"
    with pytest.raises(ProgrammingError) as refused:
        run(
            sf,
            f"CREATE OR REPLACE TASK {base}_MERGE USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL' {body}",
        )
    assert "requires TARGET_COMPLETION_INTERVAL" in str(refused.value)
    assert run(sf, f"SHOW TASKS LIKE '{table}_MERGE' IN SCHEMA {DB}.STAGING") == []
    with pytest.raises(ProgrammingError, match="TARGET_COMPLETION_INTERVAL"):
        run(sf, f"CREATE OR REPLACE TASK {base}_MERGE TARGET_COMPLETION_INTERVAL = 'soon' {body}")
    # A warehouse task, a scheduled task and a child task are not serverless triggered tasks.
    run(sf, f"CREATE OR REPLACE TASK {base}_WH WAREHOUSE = AURORA_SYNC_WH {body}")
    run(sf, f"CREATE OR REPLACE TASK {base}_SCHEDULED SCHEDULE = '60 MINUTE' {body}")
    run(
        sf,
        f"CREATE OR REPLACE TASK {base}_MERGE USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL' "
        f"TARGET_COMPLETION_INTERVAL = '10 MINUTES' {body}",
    )
    (shown,) = run(sf, f"SHOW TASKS LIKE '{table}_MERGE' IN SCHEMA {DB}.STAGING")
    assert (shown["state"], shown["schedule"], shown["target_completion_interval"]) == (
        "suspended",
        None,
        "10 MINUTES",
    )
    run(sf, f"INSERT INTO {base} (ID, NOTE) VALUES (7, 'x')")
    run(sf, f"EXECUTE TASK {base}_MERGE")
    assert finished_run(sf, f"{table}_MERGE")["STATE"] == "SUCCEEDED"
    assert run(sf, f"SELECT ID FROM {base}_COPY") == [{"ID": 7}]
    assert len(task_runs(sf, f"{table}_MERGE")) == 1
    for task in ("_MERGE", "_WH", "_SCHEDULED"):
        run(sf, f"DROP TASK {base}{task}")


def test_the_setup_procedure_executes_each_task_of_its_array_and_reports_each_error(sf: Any) -> None:
    """sql/snowflake/06_execute_tasks.sql as the local setup applied it: one CALL executes every
    task of the bound ARRAY (each run shows in TASK_HISTORY as EXECUTE TASK would make it), and a
    task that does not exist is reported by name, code and message, without keeping the tasks
    after it from running (docs.snowflake.com: Snowflake Scripting exception handlers, SQLCODE,
    SQLERRM, SQLSTATE)."""
    tables = [unique("PROC"), unique("PROC")]
    for table in tables:
        staging_table(sf, table)
        run(sf, f"CREATE OR REPLACE TABLE {DB}.STAGING.{table}_COPY (ID NUMBER(38,0))")
        run(
            sf,
            f"CREATE OR REPLACE TASK {DB}.STAGING.{table}_MERGE WAREHOUSE = AURORA_SYNC_WH "
            f"AS INSERT INTO {DB}.STAGING.{table}_COPY SELECT ID FROM {DB}.STAGING.{table}",
        )
        run(sf, f"INSERT INTO {DB}.STAGING.{table} (ID, NOTE) VALUES (1, 'x')")
    names = [
        f'"{DB}"."STAGING"."{tables[0]}_MERGE"',
        f"{DB}.STAGING.NO_SUCH_TASK",
        f"{DB}.STAGING.{tables[1]}_MERGE",
    ]
    (row,) = run(sf, f'CALL {DB}.STAGING."_AURORA_SYNC_EXECUTE_TASKS"(PARSE_JSON(%s))', [json.dumps(names)])
    outcomes = json.loads(row["_AURORA_SYNC_EXECUTE_TASKS"])
    assert outcomes[0] == {"task": names[0]} and outcomes[2] == {"task": names[2]}
    assert outcomes[1]["task"] == names[1] and outcomes[1]["code"] == 2003 and outcomes[1]["state"] == "02000"
    assert "NO_SUCH_TASK' does not exist or not authorized" in outcomes[1]["message"]
    for table in tables:
        assert finished_run(sf, f"{table}_MERGE")["STATE"] == "SUCCEEDED"
        assert run(sf, f"SELECT ID FROM {DB}.STAGING.{table}_COPY") == [{"ID": 1}]
        run(sf, f"DROP TASK {DB}.STAGING.{table}_MERGE")


def test_a_procedure_outside_the_emulated_scripting_subset_is_refused_when_created(sf: Any) -> None:
    name = f"{DB}.STAGING.{unique('PROC')}"
    for body, refused in [
        ("BEGIN IF (TRUE) THEN RETURN 1; END IF; END;", "the statement IF"),
        ("BEGIN RETURN UPPER('a'); END;", "UPPER"),
        ("BEGIN EXECUTE IMMEDIATE 'SELECT 1'; END;", "EXECUTE IMMEDIATE"),
    ]:
        with pytest.raises(ProgrammingError, match=refused):
            run(sf, f"CREATE OR REPLACE PROCEDURE {name}() RETURNS VARIANT LANGUAGE SQL AS $$ {body} $$")
    with pytest.raises(ProgrammingError, match="LANGUAGE PYTHON"):
        run(sf, f"CREATE PROCEDURE {name}() RETURNS VARIANT LANGUAGE PYTHON AS $$ x $$")
    with pytest.raises(ProgrammingError, match="does not exist"):
        run(sf, f"CALL {name}()")


def test_stream_sees_pipe_loaded_rows_and_a_failed_dml_keeps_the_offset(
    sf: Any, s3: Any, lake: dict[str, str]
) -> None:
    table = unique("SP")
    staging_table(sf, table)
    prefix = f"{NOTIFIED}{table.lower()}/"
    create_pipe(sf, table, prefix)
    stream = f"{DB}.STAGING.{table}_STREAM"
    run(sf, f"CREATE STREAM {stream} ON TABLE {DB}.STAGING.{table} APPEND_ONLY = TRUE")
    s3.put_object(Bucket=lake["bucket"], Key=f"{prefix}a.csv", Body=b"1,a,1,\n2,b,2,\n")
    settled(sf, table, 1)
    assert run(sf, f"SELECT COUNT(*) AS N FROM {stream}")[0]["N"] == 2
    run(sf, f"CREATE OR REPLACE TABLE {DB}.STAGING.{table}_SINK (ID NUMBER(38,0) NOT NULL)")
    with pytest.raises(ProgrammingError):
        run(sf, f"INSERT INTO {DB}.STAGING.{table}_SINK SELECT NOTE::NUMBER FROM {stream}")
    assert run(sf, f"SELECT COUNT(*) AS N FROM {stream}")[0]["N"] == 2
    inserted = run(sf, f"INSERT INTO {DB}.STAGING.{table}_SINK SELECT ID FROM {stream}")
    assert inserted == [{"number of rows inserted": 2}]
    assert run(sf, f"SELECT COUNT(*) AS N FROM {stream}")[0]["N"] == 0


def test_a_failing_task_is_failed_with_its_error_message(sf: Any) -> None:
    task = unique("BROKEN")
    run(
        sf,
        f"CREATE OR REPLACE TASK {DB}.STAGING.{task} WAREHOUSE = AURORA_SYNC_WH "
        f"AS DELETE FROM {DB}.STAGING.NO_SUCH_TABLE_{task}",
    )
    run(sf, f"EXECUTE TASK {DB}.STAGING.{task}")
    done = finished_run(sf, task)
    assert done["STATE"] == "FAILED"
    assert f"NO_SUCH_TABLE_{task}" in done["ERROR_MESSAGE"]
    with pytest.raises(ProgrammingError) as error:
        run(sf, f"EXECUTE TASK {DB}.STAGING.NOT_A_TASK_{task}")
    assert f"Task '{DB}.STAGING.NOT_A_TASK_{task}' does not exist or not authorized." in str(error.value)


# --- streams across column changes, and task runs that can never be left unfinished ----------------
def stream_rows(conn: Any, stream: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The stream's columns and rows (ordered by ID), as a client sees them."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {stream} ORDER BY ID")
        return [d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()]


def has_data(conn: Any, stream: str) -> bool:
    return bool(run(conn, f"SELECT SYSTEM$STREAM_HAS_DATA('{stream}') AS H")[0]["H"])


def test_a_stream_keeps_working_after_add_column_and_drop_column_like_snowflake(sf: Any) -> None:
    # Snowflake: a stream on a table survives ADD/DROP COLUMN; rows inserted afterwards carry the
    # new column, rows already pending show NULL for it, consumed rows stay consumed. Locally the
    # offset is a snapshot table of the old columns, which used to break every read
    # ("Set operations can only apply to expressions with the same number of result columns").
    table = unique("ALT")
    base, sink = f"{DB}.STAGING.{table}", f"{DB}.STAGING.{table}_SINK"
    stream = f"{base}_STREAM"
    run(sf, f"CREATE OR REPLACE TABLE {base} (ID NUMBER(38,0), NOTE VARCHAR)")
    run(sf, f"CREATE OR REPLACE TABLE {sink} (ID NUMBER(38,0), EXTRA VARCHAR, FILLED VARCHAR)")
    run(sf, f"CREATE STREAM {stream} ON TABLE {base} APPEND_ONLY = TRUE")
    run(sf, f"INSERT INTO {base} (ID, NOTE) VALUES (1, 'consumed before the change')")
    assert run(sf, f"INSERT INTO {sink} (ID) SELECT ID FROM {stream}") == [{"number of rows inserted": 1}]
    run(sf, f"INSERT INTO {base} (ID, NOTE) VALUES (2, 'pending before the change')")

    run(sf, f"ALTER TABLE {base} ADD COLUMN EXTRA VARCHAR")
    # With a default, the table's existing rows (the consumed one too) get it: they must not
    # come back as new rows.
    run(sf, f"ALTER TABLE {base} ADD COLUMN FILLED VARCHAR DEFAULT 'default'")
    run(sf, f"INSERT INTO {base} (ID, NOTE, EXTRA, FILLED) VALUES (3, 'after the change', 'x', 'y')")

    columns, rows = stream_rows(sf, stream)
    assert columns == ["ID", "NOTE", "EXTRA", "FILLED", "METADATA$ACTION", "METADATA$ISUPDATE"]
    assert rows == [
        (2, "pending before the change", None, "default", "INSERT", False),
        (3, "after the change", "x", "y", "INSERT", False),
    ]
    assert has_data(sf, stream)

    # A consuming DML reads the new columns and moves the offset past both rows.
    inserted = run(sf, f"INSERT INTO {sink} (ID, EXTRA, FILLED) SELECT ID, EXTRA, FILLED FROM {stream}")
    assert inserted == [{"number of rows inserted": 2}]
    assert stream_rows(sf, stream)[1] == [] and not has_data(sf, stream)
    sunk = run(sf, f"SELECT ID, EXTRA, FILLED FROM {sink} ORDER BY ID")
    assert [(r["ID"], r["EXTRA"], r["FILLED"]) for r in sunk] == [
        (1, None, None),
        (2, None, "default"),
        (3, "x", "y"),
    ]

    run(sf, f"INSERT INTO {base} (ID, NOTE, EXTRA) VALUES (4, 'before the drop', 'z')")
    run(sf, f"ALTER TABLE {base} DROP COLUMN NOTE")
    run(sf, f"INSERT INTO {base} (ID, EXTRA) VALUES (5, 'after the drop')")
    columns, rows = stream_rows(sf, stream)
    assert columns == ["ID", "EXTRA", "FILLED", "METADATA$ACTION", "METADATA$ISUPDATE"]
    assert rows == [
        (4, "z", "default", "INSERT", False),
        (5, "after the drop", "default", "INSERT", False),
    ]
    # A plain SELECT did not consume them.
    assert run(sf, f"SELECT COUNT(*) AS N FROM {stream}")[0]["N"] == 2


def test_a_merge_task_reads_its_stream_after_add_column(sf: Any) -> None:
    # The product's case: `aurora-sync sql snowflake` adds a column to STAGING and FINAL between
    # runs; the next EXECUTE TASK must merge, not leave a run nobody finishes.
    table = unique("ALTTASK")
    base, final = f"{DB}.STAGING.{table}", f"{DB}.STAGING.{table}_FINAL"
    stream = f"{base}_STREAM"
    run(sf, f"CREATE OR REPLACE TABLE {base} (ID NUMBER(38,0), NOTE VARCHAR)")
    run(sf, f"CREATE OR REPLACE TABLE {final} (ID NUMBER(38,0), NOTE VARCHAR)")
    run(sf, f"CREATE STREAM {stream} ON TABLE {base} APPEND_ONLY = TRUE")
    run(sf, f"INSERT INTO {base} VALUES (1, 'a')")
    run(sf, f"ALTER TABLE {base} ADD COLUMN EXTRA VARCHAR")
    run(sf, f"ALTER TABLE {final} ADD COLUMN EXTRA VARCHAR")
    run(sf, f"INSERT INTO {base} VALUES (2, 'b', 'new')")
    run(
        sf,
        f"CREATE OR REPLACE TASK {base}_MERGE TARGET_COMPLETION_INTERVAL = '10 MINUTES' "
        f"WHEN SYSTEM$STREAM_HAS_DATA('{stream}') AS "
        f"INSERT INTO {final} (ID, NOTE, EXTRA) SELECT ID, NOTE, EXTRA FROM {stream}",
    )
    run(sf, f"EXECUTE TASK {base}_MERGE")
    done = finished_run(sf, f"{table}_MERGE")
    assert (done["STATE"], done["ERROR_MESSAGE"]) == ("SUCCEEDED", None)
    merged = run(sf, f"SELECT ID, NOTE, EXTRA FROM {final} ORDER BY ID")
    assert [(r["ID"], r["NOTE"], r["EXTRA"]) for r in merged] == [(1, "a", None), (2, "b", "new")]
    assert not has_data(sf, stream)


def test_a_stream_keeps_consumed_rows_consumed_after_rename_column(sf: Any) -> None:
    # Matching the offset by name alone would see a rename as drop + add and bring every consumed
    # row back; the emulator replays the rename on the offset instead. (The old positional
    # comparison got renames right by accident; this keeps the by-name alignment honest.)
    table = unique("REN")
    base = f"{DB}.STAGING.{table}"
    stream = f"{base}_STREAM"
    run(sf, f"CREATE OR REPLACE TABLE {base} (ID NUMBER(38,0), NOTE VARCHAR)")
    run(sf, f"CREATE OR REPLACE TABLE {base}_SINK (ID NUMBER(38,0))")
    run(sf, f"CREATE STREAM {stream} ON TABLE {base} APPEND_ONLY = TRUE")
    run(sf, f"INSERT INTO {base} VALUES (1, 'consumed')")
    run(sf, f"INSERT INTO {base}_SINK SELECT ID FROM {stream}")
    run(sf, f"INSERT INTO {base} VALUES (2, 'pending')")
    run(sf, f"ALTER TABLE {base} RENAME COLUMN NOTE TO REMARK")
    columns, rows = stream_rows(sf, stream)
    assert columns == ["ID", "REMARK", "METADATA$ACTION", "METADATA$ISUPDATE"]
    assert rows == [(2, "pending", "INSERT", False)]


def task_faults(stack: dict[str, Any], method: str, **body: Any) -> dict[str, Any]:
    response = requests.request(method, emulator_url(stack, "task-faults"), json=body or None, timeout=10)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_a_task_whose_stream_lost_its_table_fails_with_the_error_instead_of_hanging(sf: Any) -> None:
    # The WHEN condition reads the stream on the worker thread; an error there that is not a
    # Snowflake error used to kill the thread and leave the run SCHEDULED for ever.
    table = unique("GONE")
    base = f"{DB}.STAGING.{table}"
    run(sf, f"CREATE OR REPLACE TABLE {base} (ID NUMBER(38,0))")
    run(sf, f"CREATE STREAM {base}_STREAM ON TABLE {base} APPEND_ONLY = TRUE")
    run(
        sf,
        f"CREATE OR REPLACE TASK {base}_MERGE TARGET_COMPLETION_INTERVAL = '10 MINUTES' "
        f"WHEN SYSTEM$STREAM_HAS_DATA('{base}_STREAM') AS "
        f"DELETE FROM {base} WHERE ID < 0",
    )
    run(sf, f"DROP TABLE {base}")
    run(sf, f"EXECUTE TASK {base}_MERGE")
    done = finished_run(sf, f"{table}_MERGE")
    assert done["STATE"] == "FAILED"
    assert f"Base table '{base}' dropped, cannot read from stream '{base}_STREAM'" in done["ERROR_MESSAGE"]


def test_any_error_on_a_task_worker_thread_fails_the_run_and_a_held_run_waits_for_release(
    sf: Any, stack: dict[str, Any]
) -> None:
    task = unique("FAULTY")
    fq = f"{DB}.STAGING.{task}"
    run(sf, f"CREATE OR REPLACE TABLE {fq}_T (ID NUMBER(38,0))")
    run(sf, f"CREATE OR REPLACE TASK {fq} AS INSERT INTO {fq}_T VALUES (1)")
    # An emulator failure that is not a SQL error (what a bug would raise) still ends the run.
    assert task_faults(stack, "POST", task=fq, fault="error", message="injected by the test")["task"] == fq
    try:
        run(sf, f"EXECUTE TASK {fq}")
        done = finished_run(sf, task)
    finally:
        task_faults(stack, "DELETE", task=fq)
    assert done["STATE"] == "FAILED"
    assert "RuntimeError: injected by the test" in done["ERROR_MESSAGE"]
    assert run(sf, f"SELECT COUNT(*) AS N FROM {fq}_T")[0]["N"] == 0

    # "hang": the run stays EXECUTING (a MERGE that never ends) until the fault is cleared.
    task_faults(stack, "POST", task=fq, fault="hang")
    try:
        run(sf, f"EXECUTE TASK {fq}")
        wait_for(lambda: task_runs(sf, task)[0]["STATE"] == "EXECUTING", what="the held run to execute")
        time.sleep(1.5)
        assert task_runs(sf, task)[0]["STATE"] == "EXECUTING"
        assert task_faults(stack, "GET")["faults"] == [
            {"task": fq, "fault": "hang", "message": f"fault injected into task {fq}"}
        ]
    finally:
        task_faults(stack, "DELETE", task=fq)
    assert finished_run(sf, task)["STATE"] == "SUCCEEDED"
    assert run(sf, f"SELECT COUNT(*) AS N FROM {fq}_T")[0]["N"] == 1
    assert task_faults(stack, "GET")["faults"] == []


def task_slots(stack: dict[str, Any]) -> dict[str, int]:
    response = requests.get(emulator_url(stack, "task-slots"), timeout=10)
    assert response.status_code == 200, response.text
    result: dict[str, int] = response.json()
    return result


def test_task_runs_take_turns_in_the_statement_slots_and_a_held_run_takes_none(
    stack: dict[str, Any], sf: Any
) -> None:
    # A verifier starts hundreds of MERGE tasks in one CALL. Their statements run a few at a time
    # (every run is Python in the one emulator process), each still runs and records its outcome,
    # and a held run (a MERGE that never ends) keeps no other task from running, as in Snowflake
    # where each serverless run has compute of its own.
    base = unique("SLOTS")
    run(sf, f"CREATE OR REPLACE TABLE {DB}.STAGING.{base}_T (ID NUMBER(38,0))")
    held = [f"{DB}.STAGING.{base}_HELD{i}" for i in range(task_slots(stack)["slots"] + 1)]
    plain = [f"{DB}.STAGING.{base}_RUN{i}" for i in range(12)]
    for i, fq in enumerate(held + plain):
        # Long enough that runs started together overlap: RANGE's rows are all filtered out.
        run(
            sf,
            f"CREATE OR REPLACE TASK {fq} AS INSERT INTO {DB}.STAGING.{base}_T "
            f"SELECT {i} FROM (SELECT MAX(RANGE) AS M FROM RANGE(0, 200000000)) WHERE M > 0",
        )
    try:
        for fq in held:
            task_faults(stack, "POST", task=fq, fault="hang")
        # As the verifier starts them: all in one CALL of the setup's procedure.
        run(sf, f'CALL {DB}.STAGING."_AURORA_SYNC_EXECUTE_TASKS"(PARSE_JSON(%s))', [json.dumps(held + plain)])
        outcomes = [finished_run(sf, fq.rsplit(".", 1)[1])["STATE"] for fq in plain]
        assert outcomes == ["SUCCEEDED"] * len(plain)
        assert [task_runs(sf, fq.rsplit(".", 1)[1])[0]["STATE"] for fq in held] == ["EXECUTING"] * len(held)
        slots = task_slots(stack)
        assert 1 <= slots["busiest"] <= slots["slots"], slots
    finally:
        for fq in held:
            task_faults(stack, "DELETE", task=fq)
    assert [finished_run(sf, fq.rsplit(".", 1)[1])["STATE"] for fq in held] == ["SUCCEEDED"] * len(held)
    loaded = run(sf, f"SELECT ID FROM {DB}.STAGING.{base}_T ORDER BY ID")
    assert [r["ID"] for r in loaded] == list(range(len(held) + len(plain)))
    assert task_slots(stack)["busy"] == 0


def test_identifiers_resolve_upper_case_unless_quoted_and_against_the_session(sf: Any) -> None:
    table = unique("IDS")
    run(sf, f"USE SCHEMA {DB}.STAGING")
    try:
        staging_table(sf, table)
        run(
            sf,
            f"""CREATE OR REPLACE PIPE "{table.lower()}_pipe" AS COPY INTO {table.lower()} (ID)
            FROM (SELECT $1 FROM @lake/ids/)""",
        )
        run(
            sf,
            f"CREATE OR REPLACE PIPE {table.lower()}_pipe AS COPY INTO {table} (ID) "
            "FROM (SELECT $1 FROM @lake/ids/)",
        )
        names = sorted(r["name"] for r in run(sf, f"SHOW PIPES LIKE '{table}%'"))
        assert names == [f"{table}_PIPE", f"{table.lower()}_pipe"]
        assert all(r["schema_name"] == "STAGING" for r in run(sf, f"SHOW PIPES LIKE '{table}%' IN SCHEMA"))
    finally:
        run(sf, f"USE SCHEMA {DB}.PUBLIC")


def test_a_null_in_a_not_null_column_fails_the_statement_like_snowflake(sf: Any) -> None:
    # Snowflake enforces NOT NULL (and only that) with error 100072; the emulator used to answer
    # HTTP 500, which the connector retries for minutes.
    table = unique("NOTNULL")
    run(sf, f"CREATE TABLE {table} (ID NUMBER NOT NULL PRIMARY KEY, NOTE VARCHAR)")
    # The connector raises IntegrityError for SQLSTATE class 22/23, as against a real account.
    with pytest.raises(snowflake.connector.errors.IntegrityError) as null_error:
        run(sf, f"INSERT INTO {table} (NOTE) VALUES ('no key')")
    assert (null_error.value.errno, null_error.value.sqlstate) == (100072, "22000")
    assert "NULL result in a non-nullable column" in str(null_error.value)
    run(sf, f"INSERT INTO {table} VALUES (1, 'one')")
    with pytest.raises(snowflake.connector.errors.DatabaseError) as duplicate:
        run(sf, f"INSERT INTO {table} VALUES (1, 'again')")
    assert "the local emulator enforces keys; Snowflake does not" in str(duplicate.value)
    assert run(sf, f"SELECT COUNT(*) AS N FROM {table}") == [{"N": 1}]


def test_null_timestamps_stay_null(sf: Any) -> None:
    """MAX() over an empty table is NULL, not the epoch: the planner reads watermarks this way."""
    table = unique("TS_NULLS")
    run(sf, f"CREATE TABLE {DB}.PUBLIC.{table} (TZ TIMESTAMP_TZ(6), NTZ TIMESTAMP_NTZ(6))")
    row = run(sf, f"SELECT MAX(TZ) AS A, MAX(NTZ) AS B FROM {DB}.PUBLIC.{table}")[0]
    assert (row["A"], row["B"]) == (None, None)
    run(sf, f"INSERT INTO {DB}.PUBLIC.{table} VALUES ('2026-01-02 03:04:05.123456+00:00', NULL)")
    row = run(sf, f"SELECT MAX(TZ) AS A, MAX(NTZ) AS B FROM {DB}.PUBLIC.{table}")[0]
    assert row["A"].isoformat() == "2026-01-02T03:04:05.123456+00:00" and row["B"] is None


def test_access_control_setup_runs_unchanged_as_no_ops(sf: Any) -> None:
    """Roles, the service user and grants from sql/snowflake/ run; the emulator has no privileges."""
    assert run(sf, 'CREATE ROLE IF NOT EXISTS "AURORA_SYNC_SERVICE"')[0]["status"] == (
        "Role AURORA_SYNC_SERVICE successfully created."
    )
    run(sf, 'CREATE USER IF NOT EXISTS "AURORA_SYNC" DEFAULT_ROLE = "AURORA_SYNC_SERVICE" TYPE = SERVICE')
    run(sf, f'GRANT USAGE ON DATABASE "{DB}" TO ROLE "AURORA_SYNC_SERVICE"')
    run(sf, f'GRANT SELECT ON FUTURE TABLES IN SCHEMA "{DB}"."PUBLIC" TO ROLE "AURORA_SYNC_SERVICE"')
    assert run(
        sf,
        'CREATE WAREHOUSE IF NOT EXISTS "AURORA_SYNC_WH" WAREHOUSE_SIZE = XSMALL AUTO_SUSPEND = 60 '
        "AUTO_RESUME = TRUE INITIALLY_SUSPENDED = TRUE",
    )[0]["status"] == ("Warehouse AURORA_SYNC_WH successfully created.")
    run(sf, 'GRANT USAGE ON WAREHOUSE "AURORA_SYNC_WH" TO ROLE "AURORA_SYNC_SERVICE"')


def test_stage_with_a_bare_file_format_name(sf: Any, lake: dict[str, str]) -> None:
    fmt = unique("FMT")
    run(sf, f"CREATE FILE FORMAT {DB}.PUBLIC.{fmt} TYPE = CSV")
    stage = unique("STG")
    run(
        sf,
        f"CREATE STAGE {DB}.PUBLIC.{stage} URL = 's3://{lake['bucket']}/x/' FILE_FORMAT = {DB}.PUBLIC.{fmt}",
    )
    assert any(r["name"] == stage for r in run(sf, f"SHOW STAGES IN SCHEMA {DB}.PUBLIC"))


def test_show_primary_keys_lists_a_composite_key_in_order_like_snowflake(sf: Any) -> None:
    """`sql snowflake` reads FINAL's key this way; Snowflake numbers the columns by key position."""
    schema, other = unique("PK_A"), unique("PK_B")
    run(sf, f"CREATE SCHEMA {DB}.{schema}")
    run(sf, f"CREATE SCHEMA {DB}.{other}")
    run(
        sf,
        f'CREATE TABLE {DB}.{schema}.ORDERS ("TENANT" NUMBER NOT NULL, "Line No" NUMBER NOT NULL, '
        '"NOTE" VARCHAR, PRIMARY KEY ("Line No", "TENANT"))',
    )
    # Same table name elsewhere, another key: a table's answer must not mix them up.
    run(sf, f'CREATE TABLE {DB}.{other}.ORDERS ("ID" NUMBER NOT NULL, PRIMARY KEY ("ID"))')
    run(sf, f'CREATE TABLE {DB}.{schema}.NO_KEY ("ID" NUMBER)')

    with sf.cursor() as cur:
        cur.execute(f'SHOW PRIMARY KEYS IN TABLE "{DB}"."{schema}"."ORDERS"')
        assert [d[0] for d in cur.description] == [
            "created_on",
            "database_name",
            "schema_name",
            "table_name",
            "column_name",
            "key_sequence",
            "constraint_name",
            "rely",
            "comment",
        ]
        rows = cur.fetchall()
    assert [row[1:6] for row in rows] == [
        (DB, schema, "ORDERS", "Line No", 1),
        (DB, schema, "ORDERS", "TENANT", 2),
    ]
    assert rows[0][6] == rows[1][6] and rows[0][6].startswith("SYS_CONSTRAINT_")
    assert [(row[7], row[8]) for row in rows] == [("false", None), ("false", None)]
    # TABLE is optional before a name; the name resolves against the session like any other.
    assert [r["column_name"] for r in run(sf, f"SHOW PRIMARY KEYS IN {DB}.{other}.orders")] == ["ID"]
    assert run(sf, f"SHOW TERSE PRIMARY KEYS IN TABLE {DB}.{schema}.NO_KEY") == []
    listed = run(sf, f"SHOW PRIMARY KEYS IN SCHEMA {DB}.{schema}")
    assert [(r["table_name"], r["column_name"]) for r in listed] == [
        ("ORDERS", "Line No"),
        ("ORDERS", "TENANT"),
    ]
    with pytest.raises(ProgrammingError) as missing:
        run(sf, f"SHOW PRIMARY KEYS IN TABLE {DB}.{schema}.NOPE")
    assert missing.value.errno == 2003
    assert f"Table '{DB}.{schema}.NOPE' does not exist or not authorized." in str(missing.value.msg)


def test_a_long_show_answers_the_same_rows_as_a_short_one(sf: Any) -> None:
    """More rows than MATERIALIZE_ROWS are served from a DuckDB table instead of a SELECT of
    literals (which fakesnow parses at ~25 ms a row): same columns, values, types and order."""
    from aurora_sync_ops.local.snowflake.router import MATERIALIZE_ROWS

    prefix = f"SHOWN_{uuid.uuid4().hex[:6].upper()}"
    cur = sf.cursor()
    for i in range(MATERIALIZE_ROWS + 5):
        cur.execute(
            f"CREATE OR REPLACE TASK {prefix}_{i:03d} SCHEDULE = 'USING CRON 17 3 * * * UTC' "
            f"COMMENT = 'it''s task {i}' AS SELECT {i}"
        )

    def show(like: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        cur.execute(f"SHOW TASKS LIKE '{like}'")
        return [d[0] for d in cur.description], [tuple(row) for row in cur.fetchall()]

    columns, rows = show(f"{prefix}_%")
    assert len(rows) == MATERIALIZE_ROWS + 5
    names = [row[columns.index("name")] for row in rows]
    assert names == sorted(names) and names[0] == f"{prefix}_000"
    for i in (0, 7, MATERIALIZE_ROWS + 4):
        alone_columns, (alone,) = show(f"{prefix}_{i:03d}")
        assert alone_columns == columns
        assert rows[i] == alone, (rows[i], alone)
    assert rows[3][columns.index("comment")] == "it's task 3"
    for i in range(MATERIALIZE_ROWS + 5):
        cur.execute(f"DROP TASK {prefix}_{i:03d}")


# --- restart (last: it restarts the server under the other tests' module fixtures) -----------------
def test_zz_restart_keeps_data_and_control_plane(
    local_stack: Stack, stack: dict[str, Any], s3: Any, lake: dict[str, str]
) -> None:
    table = unique("RESTART")
    prefix = f"{NOTIFIED}{table.lower()}/"
    with connect(stack) as conn:
        staging_table(conn, table)
        create_pipe(conn, table, prefix)
        run(
            conn,
            f"CREATE STREAM {DB}.STAGING.{table}_STREAM ON TABLE {DB}.STAGING.{table} APPEND_ONLY = TRUE",
        )
        run(conn, f"CREATE TASK {DB}.STAGING.{table}_TASK AS DELETE FROM {DB}.STAGING.{table} WHERE ID < 0")
        s3.put_object(Bucket=lake["bucket"], Key=f"{prefix}before.csv", Body=b"1,a,1,\n")
        settled(conn, table, 1)
        run(conn, f"EXECUTE TASK {DB}.STAGING.{table}_TASK")
        finished_run(conn, f"{table}_TASK")
        # A run still executing when the server stops can never finish: after the restart it must
        # read FAILED, not EXECUTING for ever (the verifier would wait for it).
        run(conn, f"CREATE TASK {DB}.STAGING.{table}_HELD AS DELETE FROM {DB}.STAGING.{table} WHERE ID < 0")
        task_faults(stack, "POST", task=f"{DB}.STAGING.{table}_HELD", fault="hang")
        run(conn, f"EXECUTE TASK {DB}.STAGING.{table}_HELD")
        wait_for(lambda: task_runs(conn, f"{table}_HELD")[0]["STATE"] == "EXECUTING", what="the held run")

    pid = local_stack.status()["services"]["snowflake"]["pid"]
    os.killpg(pid, signal.SIGTERM)  # the test stack started this process group
    wait_for(lambda: not Stack._alive(pid), what="the snowflake server to stop")
    local_stack.up(only=["snowflake"])

    with connect(stack) as conn:
        assert [r["ID"] for r in run(conn, f"SELECT ID FROM {DB}.STAGING.{table}")] == [1]
        assert [r["STATUS"] for r in history(conn, table)] == ["Loaded"]
        assert [r["name"] for r in run(conn, f"SHOW PIPES LIKE '{table}_PIPE' IN ACCOUNT")] == [
            f"{table}_PIPE"
        ]
        assert [r["name"] for r in run(conn, f"SHOW STREAMS LIKE '{table}_STREAM' IN DATABASE {DB}")] == [
            f"{table}_STREAM"
        ]
        assert [r["STATE"] for r in task_runs(conn, f"{table}_TASK")] == ["SUCCEEDED"]
        (held,) = task_runs(conn, f"{table}_HELD")
        assert held["STATE"] == "FAILED" and "stopped" in held["ERROR_MESSAGE"], held
        assert task_faults(stack, "GET")["faults"] == []  # faults do not outlive the process
        assert run(conn, f"SELECT COUNT(*) AS N FROM {DB}.STAGING.{table}_STREAM")[0]["N"] == 1
        # The stage and file format came back too: a new file still loads through the pipe.
        s3.put_object(Bucket=lake["bucket"], Key=f"{prefix}after.csv", Body=b"2,b,2,\n")
        assert [r["STATUS"] for r in settled(conn, table, 2)] == ["Loaded", "Loaded"]
