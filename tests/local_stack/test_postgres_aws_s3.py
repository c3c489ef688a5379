"""Contract tests of the local Aurora stand-in: PostgreSQL 15 + the aws_s3 export emulation.

Everything runs against the real servers of the test stack (PostgreSQL, moto) over real
connections, as the sync role with exactly the production grants from sql/aurora/.
Reference bytes come from ``COPY ... TO STDOUT`` in the same session, so any difference
between what the export writes and what COPY produces fails a test.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import pytest
from psycopg2 import sql

from aurora_sync_ops.environment import local_aws_client
from aurora_sync_ops.local.aws_s3 import UPLOADER

ROWS = 2000


@pytest.fixture(scope="module")
def pg(stack: dict[str, Any]) -> dict[str, Any]:
    section: dict[str, Any] = stack["postgres"]
    return section


@pytest.fixture(scope="module")
def admin(pg: dict[str, Any]) -> Iterator[Any]:
    conn = psycopg2.connect(pg["admin_dsn"])
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def table(admin: Any) -> Iterator[str]:
    """A source table with the values that make CSV hard: quotes, commas, newlines, NULL vs ''."""
    with admin.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS public.h1_items")
        cur.execute(
            """
            CREATE TABLE public.h1_items AS
            SELECT g AS id,
                   CASE g %% 5 WHEN 0 THEN E'multi\\nline "quoted", text' WHEN 1 THEN NULL
                              WHEN 2 THEN '' WHEN 3 THEN E'tab\\there' ELSE 'plain ' || g END AS name,
                   (g * 1.25)::numeric(12, 2) AS amount,
                   timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second 1 microsecond' AS updated_at,
                   g %% 2 = 0 AS flag
            FROM generate_series(1, %s) g
            """,
            (ROWS,),
        )
        cur.execute("DROP TABLE IF EXISTS public.h1_secret")
        cur.execute("CREATE TABLE public.h1_secret AS SELECT 1 AS id")
        # What `aurora-sync sql aurora` generates for a synced table.
        cur.execute("GRANT SELECT ON public.h1_items TO aurora_sync")
    yield "public.h1_items"
    with admin.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS public.h1_items, public.h1_secret")


@pytest.fixture
def sync(pg: dict[str, Any]) -> Iterator[Any]:
    conn = psycopg2.connect(pg["dsn"])
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def aws(stack: dict[str, Any]) -> dict[str, Any]:
    section: dict[str, Any] = stack["aws"]
    return section


@pytest.fixture(scope="module")
def s3(aws: dict[str, Any]) -> Any:
    return local_aws_client("s3", aws)


@pytest.fixture
def prefix() -> str:
    return f"h1-tests/{uuid.uuid4()}/"


def keys_under(s3: Any, bucket: str, prefix: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def pending_uploads(s3: Any, bucket: str, prefix: str) -> list[str]:
    listing = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [u["Key"] for u in listing.get("Uploads", [])]


def body(s3: Any, bucket: str, key: str) -> bytes:
    data: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def copy_to_stdout(conn: Any, query: str, options: str | None) -> bytes:
    out = io.BytesIO()
    with_clause = f" WITH ({options})" if options else ""
    with conn.cursor() as cur:
        cur.copy_expert(f"COPY ({query}) TO STDOUT{with_clause}", out)
    return out.getvalue()


def export(conn: Any, query: str, bucket: str, key: str, **kwargs: Any) -> tuple[int, int, int]:
    """Call the bucket/file_path overload with named optional arguments, as the exporter does."""
    names = list(kwargs)
    call = sql.SQL("SELECT * FROM aws_s3.query_export_to_s3(%s, %s, %s{})").format(
        sql.SQL("").join(sql.SQL(", {} := %s").format(sql.Identifier(n)) for n in names)
    )
    with conn.cursor() as cur:
        cur.execute(call, (query, bucket, key, *kwargs.values()))
        row = cur.fetchone()
        assert cur.fetchone() is None
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def set_max_file_size(conn: Any, size: str) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT set_config('aws_s3_emulation.max_file_size', %s, false)", (size,))


# --- signatures and grants -------------------------------------------------------------------
def test_both_overloads_return_exactly_the_three_bigint_columns(
    sync: Any, aws: dict[str, Any], prefix: str
) -> None:
    with sync.cursor() as cur:
        cur.execute(
            "SELECT * FROM aws_s3.query_export_to_s3('SELECT 1', %s, %s)", (aws["bucket"], prefix + "a.txt")
        )
        first = [(d.name, d.type_code) for d in cur.description]
        assert cur.fetchall() == [(1, 1, 2)]
        cur.execute(
            "SELECT * FROM aws_s3.query_export_to_s3('SELECT 1', aws_commons.create_s3_uri(%s, %s, %s))",
            (aws["bucket"], prefix + "b.txt", aws["region"]),
        )
        second = [(d.name, d.type_code) for d in cur.description]
        assert cur.fetchall() == [(1, 1, 2)]
    int8 = 20
    assert first == second == [("rows_uploaded", int8), ("files_uploaded", int8), ("bytes_uploaded", int8)]


def test_signatures_and_the_sync_roles_privileges_match_production(sync: Any, admin: Any) -> None:
    with admin.cursor() as cur:
        cur.execute(
            """
            SELECT p.oid::regprocedure::text,
                   pg_get_function_arguments(p.oid),
                   pg_get_function_result(p.oid),
                   has_function_privilege('aurora_sync', p.oid, 'EXECUTE'),
                   p.prosecdef
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname IN ('aws_s3', 'aws_commons') AND p.proname NOT LIKE '\\_emulation%%'
            ORDER BY 1
            """
        )
        rows = cur.fetchall()
        cur.execute(
            "SELECT format_type(atttypid, NULL), attname FROM pg_attribute "
            "WHERE attrelid = 'aws_commons._s3_uri_1'::regclass AND attnum > 0 ORDER BY attnum"
        )
        uri_columns = cur.fetchall()
        cur.execute(
            "SELECT rolname FROM pg_roles r JOIN pg_auth_members m ON m.roleid = r.oid "
            "WHERE m.member = 'aurora_sync'::regrole ORDER BY 1"
        )
        memberships = [r[0] for r in cur.fetchall()]
        cur.execute(
            "SELECT has_function_privilege('public', "
            "'aws_s3.query_export_to_s3(text,text,text,text,text,text)', 'EXECUTE')"
        )
        public_can_export = cur.fetchone()[0]
    out = "OUT rows_uploaded bigint, OUT files_uploaded bigint, OUT bytes_uploaded bigint"
    assert rows == [
        (
            "aws_commons.create_s3_uri(text,text,text)",
            "bucket text, file_path text, region text",
            "aws_commons._s3_uri_1",
            True,
            False,
        ),
        (
            "aws_s3.query_export_to_s3(text,aws_commons._s3_uri_1,text,text)",
            "query text, s3_info aws_commons._s3_uri_1, options text DEFAULT NULL::text, "
            f"kms_key text DEFAULT NULL::text, {out}",
            "SETOF record",
            True,
            False,
        ),
        (
            "aws_s3.query_export_to_s3(text,text,text,text,text,text)",
            "query text, bucket text, file_path text, region text DEFAULT NULL::text, "
            f"options text DEFAULT NULL::text, kms_key text DEFAULT NULL::text, {out}",
            "SETOF record",
            True,
            False,
        ),
    ]
    assert uri_columns == [("text", "bucket"), ("text", "file_path"), ("text", "region")]
    # pg_execute_server_program is the local-only extra (COPY TO PROGRAM); see postgres.py.
    assert memberships == ["pg_execute_server_program", "pg_read_all_stats"]
    assert public_can_export is False
    with sync.cursor() as cur:
        cur.execute("SHOW transaction_read_only")
        assert cur.fetchone() == ("on",)


def test_a_role_without_the_grants_cannot_export(admin: Any, pg: dict[str, Any], aws: dict[str, Any]) -> None:
    role = f"h1_nogrant_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(role)), (password,))
    try:
        conn = psycopg2.connect(
            host=pg["host"], port=pg["port"], dbname=pg["database"], user=role, password=password
        )
        with conn, conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege) as caught:
            cur.execute("SELECT * FROM aws_s3.query_export_to_s3('SELECT 1', %s, 'x')", (aws["bucket"],))
        conn.close()
        assert caught.value.pgcode == "42501"
        assert caught.value.diag.message_primary == "permission denied for schema aws_s3"
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# --- bytes, options, formats ---------------------------------------------------------------
@pytest.mark.parametrize(
    "options",
    [
        None,
        "format csv",
        "format csv, delimiter $$:$$",
        "format text",
        "format csv, header true",
        "format binary",
    ],
)
def test_object_bytes_equal_copy_output_for_the_same_options(
    *, sync: Any, table: str, s3: Any, aws: dict[str, Any], prefix: str, options: str | None
) -> None:
    query = f"SELECT * FROM {table} ORDER BY id"
    key = prefix + "export.out"
    kwargs = {"options": options} if options is not None else {}
    rows, files, size = export(sync, query, aws["bucket"], key, **kwargs)
    expected = copy_to_stdout(sync, query, options)
    assert body(s3, aws["bucket"], key) == expected
    assert (rows, files, size) == (ROWS, 1, len(expected))
    assert keys_under(s3, aws["bucket"], prefix) == [key]


def test_parquet_fails_exactly_as_copy_does(
    sync: Any, table: str, s3: Any, aws: dict[str, Any], prefix: str
) -> None:
    with sync.cursor() as cur, pytest.raises(psycopg2.Error) as reference:
        cur.execute(f"COPY (SELECT * FROM {table}) TO STDOUT WITH (format parquet)")
    with pytest.raises(psycopg2.Error) as caught:
        export(sync, f"SELECT * FROM {table}", aws["bucket"], prefix + "x.parquet", options="format parquet")
    assert caught.value.pgcode == reference.value.pgcode == "22023"
    assert caught.value.diag.message_primary == reference.value.diag.message_primary
    assert caught.value.diag.message_primary == 'COPY format "parquet" not recognized'
    assert keys_under(s3, aws["bucket"], prefix) == []


def test_defaults_region_null_options_text_kms_none(
    sync: Any, table: str, s3: Any, aws: dict[str, Any], prefix: str
) -> None:
    query = f"SELECT id, name FROM {table} ORDER BY id"
    with sync.cursor() as cur:
        # Positional, three arguments: region, options and kms_key take their defaults.
        cur.execute(
            "SELECT * FROM aws_s3.query_export_to_s3(%s, %s, %s)", (query, aws["bucket"], prefix + "pos")
        )
        positional = cur.fetchone()
        cur.execute(
            "SELECT * FROM aws_s3.query_export_to_s3(%s, aws_commons.create_s3_uri(%s, %s, NULL))",
            (query, aws["bucket"], prefix + "uri"),
        )
        by_uri = cur.fetchone()
    text = copy_to_stdout(sync, query, None)  # no options = COPY's default, the text format
    assert positional == by_uri == (ROWS, 1, len(text))
    assert body(s3, aws["bucket"], prefix + "pos") == body(s3, aws["bucket"], prefix + "uri") == text


def test_query_with_trailing_comment_and_caller_search_path(
    sync: Any, table: str, s3: Any, aws: dict[str, Any], prefix: str
) -> None:
    with sync.cursor() as cur:
        cur.execute("SET search_path = public")
    # Unqualified name: resolved with the caller's search_path, as the real function does.
    rows, files, _ = export(
        sync, "SELECT id FROM h1_items WHERE id <= 3 -- trailing", aws["bucket"], prefix + "c"
    )
    assert (rows, files) == (3, 1)
    assert body(s3, aws["bucket"], prefix + "c") == b"1\n2\n3\n"


# --- splitting into _partN -------------------------------------------------------------------
def test_csv_with_quoted_newlines_splits_between_rows_into_part_keys(
    sync: Any, table: str, s3: Any, aws: dict[str, Any], prefix: str
) -> None:
    query = f"SELECT * FROM {table} ORDER BY id"
    expected = copy_to_stdout(sync, query, "format csv")
    limit = 24 * 1024
    set_max_file_size(sync, f"{limit}")
    key = prefix + "table.csv"
    rows, files, size = export(sync, query, aws["bucket"], key, options="format csv")
    count = -(-len(expected) // limit)  # rows are small, so the files are nearly full
    names = [key] + [f"{key}_part{i}" for i in range(2, files + 1)]
    assert keys_under(s3, aws["bucket"], prefix) == sorted(names)
    assert files in (count, count + 1)
    parts = [body(s3, aws["bucket"], name) for name in names]
    assert b"".join(parts) == expected
    assert (rows, size) == (ROWS, len(expected))
    parsed = 0
    for part in parts:
        assert 0 < len(part) <= limit
        records = list(csv.reader(io.StringIO(part.decode(), newline="")))
        assert all(len(record) == 5 for record in records)  # no row was cut in two
        parsed += len(records)
    assert parsed == ROWS
    assert any(b'"multi\nline ""quoted"", text"' in part for part in parts)


def test_text_format_cut_exactly_at_the_limit_writes_no_empty_part(
    sync: Any, s3: Any, aws: dict[str, Any], prefix: str
) -> None:
    set_max_file_size(sync, "1000")  # 100 rows of exactly 10 bytes per file
    key = prefix + "fixed.txt"
    rows, files, size = export(
        sync, "SELECT lpad(g::text, 9, '0') FROM generate_series(1, 300) g", aws["bucket"], key
    )
    assert (rows, files, size) == (300, 3, 3000)
    assert keys_under(s3, aws["bucket"], prefix) == [key, key + "_part2", key + "_part3"]
    assert body(s3, aws["bucket"], key + "_part3") == b"".join(b"%09d\n" % i for i in range(201, 301))


def test_a_row_larger_than_the_limit_ends_its_file(
    sync: Any, s3: Any, aws: dict[str, Any], prefix: str
) -> None:
    set_max_file_size(sync, "1000")
    query = "SELECT repeat(chr(96 + g), CASE g WHEN 2 THEN 2500 ELSE 300 END) FROM generate_series(1, 4) g"
    key = prefix + "wide.txt"
    rows, files, size = export(sync, query, aws["bucket"], key)
    sizes = [len(body(s3, aws["bucket"], k)) for k in (key, key + "_part2", key + "_part3")]
    # a(301) | b(2501) alone: it cannot share a file | c(301)+d(301)
    assert (rows, files, size, sizes) == (4, 3, 3404, [301, 2501, 602])


def test_csv_with_a_separate_escape_character_still_splits_between_rows(
    sync: Any, s3: Any, aws: dict[str, Any], prefix: str
) -> None:
    options = "format csv, quote $$'$$, escape E'\\\\'"
    query = "SELECT g, E'it''s a \\\\ back\\nslash' || g FROM generate_series(1, 400) g"
    expected = copy_to_stdout(sync, query, options)
    set_max_file_size(sync, "2kB")
    key = prefix + "escaped.csv"
    rows, files, _ = export(sync, query, aws["bucket"], key, options=options)
    parts = [body(s3, aws["bucket"], key if i == 1 else f"{key}_part{i}") for i in range(1, files + 1)]
    assert rows == 400 and files > 5 and b"".join(parts) == expected
    for part in parts:
        reader = csv.reader(
            io.StringIO(part.decode(), newline=""), quotechar="'", escapechar="\\", doublequote=False
        )
        assert all(len(record) == 2 and record[1].startswith("it's a \\ back\nslash") for record in reader)


def test_binary_format_is_never_split(
    sync: Any, table: str, s3: Any, aws: dict[str, Any], prefix: str
) -> None:
    query = f"SELECT * FROM {table} ORDER BY id"
    set_max_file_size(sync, "10kB")
    rows, files, size = export(sync, query, aws["bucket"], prefix + "b.bin", options="format binary")
    expected = copy_to_stdout(sync, query, "format binary")
    assert (rows, files, size) == (ROWS, 1, len(expected)) and size > 10 * 1024
    assert body(s3, aws["bucket"], prefix + "b.bin") == expected


# --- all or nothing --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "pgcode", "message"),
    [
        (
            "SELECT i, repeat('x', 100), 1 / (i - 60000) FROM generate_series(1, 100000) i",
            "22012",
            "division by zero",
        ),
        ("SELECT * FROM h1_no_such_table", "42P01", 'relation "h1_no_such_table" does not exist'),
        ("SELECT * FROM public.h1_secret", "42501", "permission denied for table h1_secret"),
    ],
)
def test_failed_query_leaves_no_object_no_upload_and_keeps_its_sqlstate(
    *, sync: Any, table: str, s3: Any, aws: dict[str, Any], prefix: str, query: str, pgcode: str, message: str
) -> None:
    # Small files: the division-by-zero case has finished several files (uploaded parts) by
    # the time row 60000 fails, so the abort path really has uploads to take back.
    set_max_file_size(sync, "256kB")
    with pytest.raises(psycopg2.Error) as caught:
        export(sync, query, aws["bucket"], prefix + "f.csv", options="format csv")
    assert caught.value.pgcode == pgcode
    assert caught.value.diag.message_primary == message
    assert keys_under(s3, aws["bucket"], prefix) == []
    assert pending_uploads(s3, aws["bucket"], prefix) == []
    with sync.cursor() as cur:  # the session is usable afterwards
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def test_missing_bucket_is_could_not_upload_to_amazon_s3(sync: Any, aws: dict[str, Any]) -> None:
    bucket = f"h1-missing-{uuid.uuid4().hex[:12]}"
    with pytest.raises(psycopg2.Error) as caught:
        export(sync, "SELECT 1", bucket, "some/key.csv", options="format csv")
    # The real extension's wording; SQLSTATE 58000 (system_error) as observed for it.
    assert caught.value.pgcode == "58000"
    assert caught.value.diag.message_primary == "could not upload to Amazon S3"
    assert caught.value.diag.message_detail == (
        "Amazon S3 client returned 'The specified bucket does not exist'. "
        f'(bucket "{bucket}", key "some/key.csv")'
    )


def test_terminated_backend_takes_its_uploads_back(
    sync: Any, admin: Any, s3: Any, aws: dict[str, Any], prefix: str
) -> None:
    set_max_file_size(sync, "50kB")  # files finish (as pending uploads) while the query runs
    with sync.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    errors: list[Exception] = []

    def slow_export() -> None:
        query = "SELECT g, repeat('x', 2000), pg_sleep(0.005) FROM generate_series(1, 2000) g"
        try:
            export(sync, query, aws["bucket"], prefix + "k.txt")
        except Exception as exc:  # noqa: BLE001 - the connection is killed on purpose
            errors.append(exc)

    worker = threading.Thread(target=slow_export)
    worker.start()
    deadline = time.monotonic() + 10
    while not pending_uploads(s3, aws["bucket"], prefix) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pending_uploads(s3, aws["bucket"], prefix), "the export never got as far as uploading"
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    worker.join(10)
    assert errors and isinstance(errors[0], psycopg2.OperationalError)
    # PostgreSQL signals the backend's process group, so the uploader aborts right away.
    deadline = time.monotonic() + 20  # seconds: 5 did not suffice at load 8 on 2 cores
    while pending_uploads(s3, aws["bucket"], prefix) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pending_uploads(s3, aws["bucket"], prefix) == []
    assert keys_under(s3, aws["bucket"], prefix) == []


def test_statement_timeout_keeps_57014_and_leaves_nothing(
    sync: Any, s3: Any, aws: dict[str, Any], prefix: str
) -> None:
    set_max_file_size(sync, "50kB")
    with sync.cursor() as cur:
        cur.execute("SET statement_timeout = '700ms'")
    query = "SELECT g, repeat('x', 2000), pg_sleep(0.005) FROM generate_series(1, 2000) g"
    with pytest.raises(psycopg2.errors.QueryCanceled) as caught:
        export(sync, query, aws["bucket"], prefix + "t.txt")
    assert caught.value.pgcode == "57014"
    assert caught.value.diag.message_primary == "canceling statement due to statement timeout"
    # No object was completed; the part uploads in flight are aborted by the uploader, which
    # gets the cancel as a signal and may finish after the error reached the client (seen on
    # a loaded machine), so wait a bounded time for them as the test above does.
    assert keys_under(s3, aws["bucket"], prefix) == []
    deadline = time.monotonic() + 20
    while pending_uploads(s3, aws["bucket"], prefix) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pending_uploads(s3, aws["bucket"], prefix) == []
    assert keys_under(s3, aws["bucket"], prefix) == []


def _uploader_env(state_dir: Path, endpoint: str, access_key: str, secret_key: str) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_S3_EMULATION_STATE_DIR": str(state_dir),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_SESSION_TOKEN": "",
    }


def _token(bucket: str, key: str, abandon_after: float) -> tuple[str, str]:
    export_id = str(uuid.uuid4())
    job = {
        "id": export_id,
        "bucket": bucket,
        "key": key,
        "region": None,
        "kms_key": None,
        "options": None,
        "max_file_size": 1 << 30,
        "abandon_after": abandon_after,
    }
    return export_id, json.dumps(job).encode().hex()


def test_an_upload_nobody_completes_is_aborted_by_the_watchdog(
    tmp_path: Path, s3: Any, aws: dict[str, Any], prefix: str
) -> None:
    """What a backend killed with SIGKILL leaves behind: end-of-file, then silence."""
    env = _uploader_env(tmp_path, aws["endpoint_url"], aws["access_key_id"], aws["secret_access_key"])
    export_id, token = _token(aws["bucket"], prefix + "orphan.txt", abandon_after=1.0)
    subprocess.run([sys.executable, str(UPLOADER), "upload", token], input=b"1\n2\n", env=env, check=True)
    assert pending_uploads(s3, aws["bucket"], prefix) == [prefix + "orphan.txt"]
    deadline = time.monotonic() + 5
    while pending_uploads(s3, aws["bucket"], prefix) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pending_uploads(s3, aws["bucket"], prefix) == []
    assert not (tmp_path / f"{export_id}.state.json").exists()
    # Too late now: complete reports the export as gone instead of writing anything.
    subprocess.run([sys.executable, str(UPLOADER), "complete", token], env=env, check=True)
    outcome = json.loads((tmp_path / f"{export_id}.outcome.json").read_text())
    assert outcome == {"status": "failed", "error": "the export was already aborted (abandoned for too long)"}
    assert keys_under(s3, aws["bucket"], prefix) == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_unreachable_s3_is_recorded_as_unable_to_connect(tmp_path: Path) -> None:
    """The uploader program itself (as COPY runs it) against an endpoint nobody listens on."""
    env = _uploader_env(tmp_path, f"http://127.0.0.1:{_free_port()}", "AKIAEXAMPLE", "example")
    export_id, token = _token("b", "k", abandon_after=60)
    upload = subprocess.run(
        [sys.executable, str(UPLOADER), "upload", token], input=b"1\n", env=env, check=False
    )
    assert upload.returncode == 3  # non-zero: COPY fails with "program ... failed" (38000)
    state = json.loads((tmp_path / f"{export_id}.state.json").read_text())
    assert (state["status"], state["error"]) == ("failed", "Unable to connect to endpoint")
    subprocess.run([sys.executable, str(UPLOADER), "abort", token], env=env, check=True)
    outcome = json.loads((tmp_path / f"{export_id}.outcome.json").read_text())
    assert outcome == {"status": "aborted", "error": "Unable to connect to endpoint"}


# --- encryption, empty results, hostile names ------------------------------------------------
def test_kms_key_is_applied_to_every_file(sync: Any, s3: Any, aws: dict[str, Any], prefix: str) -> None:
    kms = local_aws_client("kms", aws)
    # Not the bucket's default key, so the header can only come from the kms_key argument.
    key_arn = kms.create_key(Description="h1 export test")["KeyMetadata"]["Arn"]
    assert key_arn != aws["kms_key_arn"]
    set_max_file_size(sync, "1000")
    key = prefix + "enc.txt"
    _, files, _ = export(
        sync,
        "SELECT lpad(g::text, 9, '0') FROM generate_series(1, 150) g",
        aws["bucket"],
        key,
        region=aws["region"],
        kms_key=key_arn,
    )
    assert files == 2
    for name in (key, key + "_part2"):
        head = s3.head_object(Bucket=aws["bucket"], Key=name)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key_arn)


def test_empty_result_writes_nothing_and_leaves_an_existing_object(
    sync: Any, s3: Any, aws: dict[str, Any], prefix: str
) -> None:
    key = prefix + "empty.csv"
    s3.put_object(Bucket=aws["bucket"], Key=key, Body=b"previous\n")
    assert export(sync, "SELECT 1 WHERE false", aws["bucket"], key, options="format csv") == (0, 0, 0)
    assert body(s3, aws["bucket"], key) == b"previous\n"
    # A header is data: with header true an empty result still writes the header line.
    assert export(
        sync, "SELECT 1 AS a WHERE false", aws["bucket"], prefix + "h.csv", options="format csv, header true"
    ) == (0, 1, 2)
    assert body(s3, aws["bucket"], prefix + "h.csv") == b"a\n"


def test_existing_object_is_overwritten(sync: Any, s3: Any, aws: dict[str, Any], prefix: str) -> None:
    key = prefix + "again.txt"
    export(sync, "SELECT 'first'", aws["bucket"], key)
    export(sync, "SELECT 'second'", aws["bucket"], key)
    assert body(s3, aws["bucket"], key) == b"second\n"


def test_hostile_bucket_and_key_never_reach_the_shell(
    sync: Any, s3: Any, aws: dict[str, Any], prefix: str
) -> None:
    marker = Path("/tmp") / f"h1-marker-{uuid.uuid4().hex}"
    injections = [f"'; touch {marker}; '", f"$(touch {marker})", f"`touch {marker}`", f'"; touch {marker} #']
    for payload in injections:
        key = prefix + payload
        assert export(sync, "SELECT 'safe'", aws["bucket"], key) == (1, 1, 5)
        assert body(s3, aws["bucket"], key) == b"safe\n"  # stored under the literal key
        with pytest.raises(psycopg2.Error) as caught:
            export(sync, "SELECT 'safe'", payload, "k")
        assert caught.value.pgcode == "58000"
    assert not marker.exists()


# --- the component -------------------------------------------------------------------------
def test_up_again_is_idempotent_for_postgres(
    local_stack: Any, pg: dict[str, Any], aws: dict[str, Any]
) -> None:
    status = local_stack.up(only=["postgres"])
    again = status["postgres"]
    assert again["password"] == pg["password"] and again["dsn"] == pg["dsn"]
    assert status["services"]["postgres"]["alive"] is True
    assert again["dsn_redacted"] == f"postgresql://aurora_sync:***@{pg['host']}:{pg['port']}/appdb"
    assert pg["password"] not in again["dsn_redacted"]
    conn = psycopg2.connect(again["dsn"])
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT * FROM aws_s3.query_export_to_s3('SELECT 1', %s, %s)",
                (aws["bucket"], f"h1-tests/{uuid.uuid4()}/idem"),
            )
            assert cur.fetchone() == (1, 1, 2)
    finally:
        conn.close()
