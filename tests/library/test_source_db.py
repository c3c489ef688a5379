"""connect_source and classify_source_error against the local stack's real PostgreSQL.

Given the sync role's secret (as Vault holds it), when the handlers connect and run statements,
then the session settings hold and every failure surfaces as the taxonomy's class with the
SQLSTATE, the context and a fix, never with the password or row values.
"""

from __future__ import annotations

import io
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest
from psycopg2 import sql

from aurora_sync.errors import (
    ExportWriteFailed,
    SecretMalformed,
    SourceAuthFailed,
    SourceConflict,
    SourceObjectMissing,
    SourcePermissionDenied,
    SourceQueryFailed,
    SourceTimeout,
    SourceUnavailable,
    SyncError,
)
from aurora_sync.source_db import connect_source, source_errors

APP = "aurora-sync-test"


@pytest.fixture(scope="module")
def pg(stack: dict[str, Any]) -> dict[str, Any]:
    facts: dict[str, Any] = stack["postgres"]
    return facts


@pytest.fixture
def secret(pg: dict[str, Any]) -> dict[str, Any]:
    """The Aurora secret as the Vault part seeds it."""
    return {
        "host": pg["host"],
        "port": int(pg["port"]),
        "dbname": pg["database"],
        "user": pg["user"],
        "password": pg["password"],
        "sslmode": "disable",
    }


@pytest.fixture
def admin(pg: dict[str, Any]) -> Iterator[psycopg2.extensions.connection]:
    conn = psycopg2.connect(pg["admin_dsn"])
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture
def source(secret: dict[str, Any]) -> Iterator[psycopg2.extensions.connection]:
    conn = connect_source(secret, application_name=APP)
    yield conn
    conn.close()


@pytest.fixture
def scratch_table(admin: psycopg2.extensions.connection, pg: dict[str, Any]) -> Iterator[sql.Identifier]:
    """A two-row table the sync role may read and update (updates only in explicit RW tests)."""
    name = sql.Identifier("public", f"h5_scratch_{uuid.uuid4().hex[:8]}")
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, v int NOT NULL)").format(name))
        cur.execute(sql.SQL("INSERT INTO {} VALUES (1, 10), (2, 20)").format(name))
        cur.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE ON {} TO {}").format(name, sql.Identifier(pg["user"]))
        )
    yield name
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _raise(conn: psycopg2.extensions.connection, statement: str, context: str = "public.orders") -> SyncError:
    with pytest.raises(SyncError) as info, source_errors(context), conn.cursor() as cur:
        cur.execute(statement)
    conn.rollback()
    return info.value


# --- session settings ----------------------------------------------------------------------------


def test_session_is_utc_iso_read_only_and_not_autocommit(source: psycopg2.extensions.connection) -> None:
    with source.cursor() as cur:
        settings = {}
        for name in ("TimeZone", "DateStyle", "IntervalStyle", "transaction_read_only", "lock_timeout"):
            cur.execute(sql.SQL("SHOW {}").format(sql.Identifier(name)))
            row = cur.fetchone()
            assert row is not None
            settings[name] = row[0]
        cur.execute("SELECT now()::text, interval '1 day 2 hours'::text")
        now_text, interval_text = cur.fetchone() or ("", "")
    assert settings == {
        "TimeZone": "UTC",
        "DateStyle": "ISO, YMD",
        "IntervalStyle": "iso_8601",
        "transaction_read_only": "on",
        "lock_timeout": "30s",
    }
    assert now_text.endswith("+00")
    assert interval_text == "P1DT2H"
    assert source.autocommit is False
    # Still a transaction in progress: autocommit is off, so the export and any reads share a snapshot.
    assert source.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INTRANS


def test_settings_survive_a_rollback(source: psycopg2.extensions.connection) -> None:
    source.rollback()
    with source.cursor() as cur:
        cur.execute("SHOW TimeZone")
        assert cur.fetchone() == ("UTC",)


def test_insert_in_read_only_session_fails_with_25006(
    source: psycopg2.extensions.connection, scratch_table: sql.Identifier
) -> None:
    with pytest.raises(SourceQueryFailed) as info, source_errors("h5 scratch"), source.cursor() as cur:
        cur.execute(sql.SQL("INSERT INTO {} VALUES (3, 30)").format(scratch_table))
    source.rollback()
    assert isinstance(info.value.__cause__, psycopg2.errors.ReadOnlySqlTransaction)
    assert "25006 (read_only_sql_transaction)" in str(info.value)
    assert str(info.value).startswith("h5 scratch: PostgreSQL error 25006")


def test_copy_to_stdout_and_function_calls_work_read_only(source: psycopg2.extensions.connection) -> None:
    # The aws_s3 export is a function call running COPY ... TO (never FROM): both allowed read-only.
    with source.cursor() as cur:
        cur.execute("SELECT length(md5('x')), pg_backend_pid() > 0")
        assert cur.fetchone() == (32, True)
        out = io.BytesIO()
        cur.copy_expert("COPY (SELECT 1 AS a, 'b' AS b) TO STDOUT WITH (FORMAT csv)", out)
    assert out.getvalue() == b"1,b\n"


def test_aws_s3_export_runs_in_a_read_only_session(
    source: psycopg2.extensions.connection, stack: dict[str, Any]
) -> None:
    with source.cursor() as cur:
        cur.execute("SELECT to_regprocedure('aws_commons.create_s3_uri(text,text,text)') IS NOT NULL")
        if not (cur.fetchone() or (False,))[0]:
            pytest.skip("the aws_s3 emulation is not installed in this stack's database")
        key = f"h5-tests/{uuid.uuid4()}.csv"
        cur.execute(
            "SELECT rows_uploaded, files_uploaded FROM aws_s3.query_export_to_s3("
            "%s, aws_commons.create_s3_uri(%s, %s, %s), options := 'format csv')",
            ("SELECT g FROM generate_series(1, 3) g", stack["aws"]["bucket"], key, stack["aws"]["region"]),
        )
        assert cur.fetchone() == (3, 1)


def test_aws_s3_write_failure_is_export_write_failed(
    source: psycopg2.extensions.connection, stack: dict[str, Any]
) -> None:
    with source.cursor() as cur:
        cur.execute("SELECT to_regprocedure('aws_commons.create_s3_uri(text,text,text)') IS NOT NULL")
        if not (cur.fetchone() or (False,))[0]:
            pytest.skip("the aws_s3 emulation is not installed in this stack's database")
    source.rollback()
    with pytest.raises(ExportWriteFailed) as info, source_errors("public.orders"), source.cursor() as cur:
        cur.execute(
            "SELECT * FROM aws_s3.query_export_to_s3(%s, aws_commons.create_s3_uri(%s, %s, %s))",
            ("SELECT 1", f"h5-no-such-bucket-{uuid.uuid4().hex[:8]}", "x.csv", stack["aws"]["region"]),
        )
    source.rollback()
    assert info.value.transient is True
    assert "s3Export IAM role" in str(info.value)


def test_application_name_is_visible_in_pg_stat_activity(
    source: psycopg2.extensions.connection, admin: psycopg2.extensions.connection, pg: dict[str, Any]
) -> None:
    with admin.cursor() as cur:
        cur.execute(
            "SELECT application_name, usename FROM pg_stat_activity WHERE pid = %s",
            (source.get_backend_pid(),),
        )
        assert cur.fetchone() == (APP, pg["user"])


# --- failures -----------------------------------------------------------------------------------


def test_statement_timeout_is_source_timeout(secret: dict[str, Any]) -> None:
    conn = connect_source(secret, application_name=APP, statement_timeout_ms=200)
    try:
        error = _raise(conn, "SELECT pg_sleep(5)")
    finally:
        conn.close()
    assert isinstance(error, SourceTimeout)
    assert error.transient is True
    assert isinstance(error.__cause__, psycopg2.errors.QueryCanceled)
    assert "PostgreSQL error 57014 (query_canceled): canceling statement due to statement timeout" in str(
        error
    )


def test_lock_timeout_is_source_timeout(
    secret: dict[str, Any], admin: psycopg2.extensions.connection, scratch_table: sql.Identifier
) -> None:
    admin.autocommit = False
    with admin.cursor() as cur:
        cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(scratch_table))
    conn = connect_source(secret, application_name=APP, lock_timeout_ms=100)
    try:
        error = _raise(conn, sql.SQL("SELECT count(*) FROM {}").format(scratch_table).as_string(conn))
    finally:
        conn.close()
        admin.rollback()
        admin.autocommit = True
    assert isinstance(error, SourceTimeout)
    assert "55P03 (lock_not_available)" in str(error)


def test_terminated_backend_is_source_unavailable(
    source: psycopg2.extensions.connection, admin: psycopg2.extensions.connection
) -> None:
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (source.get_backend_pid(),))
        assert cur.fetchone() == (True,)
    with pytest.raises(SourceUnavailable) as info, source_errors("public.orders"), source.cursor() as cur:
        cur.execute("SELECT 1")
    assert info.value.transient is True
    assert str(info.value).startswith("public.orders: PostgreSQL")
    assert source.closed


def test_wrong_password_is_auth_failed_and_never_shows_the_password(secret: dict[str, Any]) -> None:
    wrong = "Wr0ng-pa55-" + uuid.uuid4().hex
    with pytest.raises(SourceAuthFailed) as info:
        connect_source({**secret, "password": wrong}, application_name=APP)
    message = str(info.value)
    assert "28P01" in message
    assert f"as {secret['user']}" in message
    assert "check the Aurora secret in Vault" in message
    assert info.value.transient is False
    for text in (message, repr(info.value), str(info.value.__cause__)):
        assert wrong not in text
        assert secret["password"] not in text


def test_closed_port_is_source_unavailable(secret: dict[str, Any]) -> None:
    port = _free_port()
    with pytest.raises(SourceUnavailable) as info:
        connect_source({**secret, "port": port}, application_name=APP, connect_timeout_s=2)
    assert f"Aurora {secret['host']}:{port}/" in str(info.value)
    assert "Connection refused" in str(info.value)


def test_tls_required_against_a_plain_server_is_auth_failed_naming_sslmode(secret: dict[str, Any]) -> None:
    plain = {key: value for key, value in secret.items() if key != "sslmode"}  # default: require
    with pytest.raises(SourceAuthFailed) as info:
        connect_source(plain, application_name=APP)
    assert "SSL" in str(info.value)
    assert "'sslmode'" in str(info.value)


def test_unknown_database_is_object_missing(secret: dict[str, Any]) -> None:
    with pytest.raises(SourceObjectMissing) as info:
        connect_source({**secret, "dbname": "h5_no_such_db"}, application_name=APP)
    assert "3D000 (invalid_catalog_name)" in str(info.value)


def test_undefined_table_is_object_missing(source: psycopg2.extensions.connection) -> None:
    error = _raise(source, "SELECT * FROM public.h5_no_such_table")
    assert isinstance(error, SourceObjectMissing)
    assert str(error).startswith(
        'public.orders: PostgreSQL error 42P01 (undefined_table): relation "public.h5_no_such_table" '
        "does not exist."
    )
    assert "LINE 1" not in str(error)


def test_undefined_column_is_object_missing(
    source: psycopg2.extensions.connection, scratch_table: sql.Identifier
) -> None:
    error = _raise(source, sql.SQL("SELECT nope FROM {}").format(scratch_table).as_string(source))
    assert isinstance(error, SourceObjectMissing)
    assert "42703 (undefined_column)" in str(error)


def test_permission_denied_names_the_exact_grant(
    source: psycopg2.extensions.connection, admin: psycopg2.extensions.connection, pg: dict[str, Any]
) -> None:
    # PostgreSQL names the table without its schema; the caller knows which one it reads.
    schema, table = f"H5 Music {uuid.uuid4().hex[:6]}", "Invoice Line"
    relation = sql.Identifier(schema, table)
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        cur.execute(sql.SQL("CREATE TABLE {} (id int)").format(relation))
    try:
        query = sql.SQL("SELECT * FROM {}").format(relation).as_string(source)
        with (
            pytest.raises(SourcePermissionDenied) as info,
            source_errors("table invoice_line", conn=source, relations=[(schema, table)]),
            source.cursor() as cur,
        ):
            cur.execute(query)
        source.rollback()
        assert f"permission denied for schema {schema}" in str(info.value)
        # The role is the one the connection logged in as, quoted like the names.
        assert info.value.fix == f'GRANT USAGE ON SCHEMA "{schema}" TO "{pg["user"]}";'
        with admin.cursor() as cur:
            cur.execute(info.value.fix)  # works as written
        with (
            pytest.raises(SourcePermissionDenied) as info,
            source_errors(
                "table invoice_line", conn=source, relations=[("public", "other"), (schema, table)]
            ),
            source.cursor() as cur,
        ):
            cur.execute(query)
        source.rollback()
        assert f"42501 (insufficient_privilege): permission denied for table {table}" in str(info.value)
        assert info.value.fix == f'GRANT SELECT ON TABLE "{schema}"."{table}" TO "{pg["user"]}";'
        with admin.cursor() as cur:
            cur.execute(info.value.fix)
        with source.cursor() as cur:
            cur.execute(query)
        source.rollback()
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_permission_denied_for_the_export_function_or_at_login_names_the_exact_grant(
    source: psycopg2.extensions.connection,
    admin: psycopg2.extensions.connection,
    secret: dict[str, Any],
    pg: dict[str, Any],
) -> None:
    role = f'"{pg["user"]}"'
    denied = (
        "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '42501', "
        "MESSAGE = 'permission denied for function query_export_to_s3'; END $$"
    )
    with (
        pytest.raises(SourcePermissionDenied) as info,
        source_errors("export", conn=source),
        source.cursor() as cur,
    ):
        cur.execute(denied)
    source.rollback()
    assert info.value.fix == (
        "GRANT EXECUTE ON FUNCTION aws_s3.query_export_to_s3(text, aws_commons._s3_uri_1, text, text) TO "
        f"{role}; GRANT EXECUTE ON FUNCTION aws_s3.query_export_to_s3(text, text, text, text, text, text) "
        f"TO {role};"
    )
    with admin.cursor() as cur:
        cur.execute(info.value.fix)  # both signatures exist: it works as written
    # Refused at login: no session exists, the secret's user is the role.
    database = f"h5 NoConnect {uuid.uuid4().hex[:6]}"
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        cur.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))
    try:
        with pytest.raises(SourcePermissionDenied) as info:
            connect_source({**secret, "dbname": database}, application_name=APP)
        assert info.value.fix == f'GRANT CONNECT ON DATABASE "{database}" TO {role};'
        with admin.cursor() as cur:
            cur.execute(info.value.fix)
        connect_source({**secret, "dbname": database}, application_name=APP).close()
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))


def test_serialization_failure_is_source_conflict(
    secret: dict[str, Any], admin: psycopg2.extensions.connection, scratch_table: sql.Identifier
) -> None:
    # Write skew: each transaction reads both rows and updates a different one.
    ours = connect_source(secret, application_name=APP, read_only=False)
    ours.set_session(isolation_level="SERIALIZABLE", readonly=False)
    admin.autocommit = False
    admin.set_session(isolation_level="SERIALIZABLE")
    total = sql.SQL("SELECT sum(v) FROM {}").format(scratch_table)
    bump = sql.SQL("UPDATE {} SET v = v + 1 WHERE id = %s").format(scratch_table)
    try:
        with ours.cursor() as a, admin.cursor() as b:
            a.execute(total)
            b.execute(total)
            a.execute(bump, (1,))
            b.execute(bump, (2,))
            admin.commit()
            with pytest.raises(SourceConflict) as info, source_errors("public.orders"):
                ours.commit()
    finally:
        ours.close()
        admin.rollback()
        admin.set_session(isolation_level="READ COMMITTED")
        admin.autocommit = True
    assert "40001 (serialization_failure)" in str(info.value)
    assert info.value.transient is True


@pytest.mark.parametrize(
    ("sqlstate", "text", "expected"),
    [
        ("53300", "too many connections", SourceUnavailable),
        ("53200", "out of memory", SourceUnavailable),
        ("57P01", "terminating connection due to administrator command", SourceUnavailable),
        ("40P01", "deadlock detected", SourceConflict),
        ("3F000", "schema does not exist", SourceObjectMissing),
        ("42883", "function does not exist", SourceObjectMissing),
        ("28000", "no pg_hba.conf entry", SourceAuthFailed),
        ("XX000", "could not upload to Amazon S3", ExportWriteFailed),
        ("38000", "S3 multipart upload failed", ExportWriteFailed),
        ("XX000", "cache lookup failed for relation 1", SourceQueryFailed),
        ("22P02", "invalid input syntax for type integer", SourceQueryFailed),
    ],
)
def test_sqlstates_raised_by_the_server_map_to_the_taxonomy(
    source: psycopg2.extensions.connection, sqlstate: str, text: str, expected: type[SyncError]
) -> None:
    # RAISE ... USING ERRCODE makes the real server send that SQLSTATE; DETAIL stands in for row data.
    statement = (
        f"DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '{sqlstate}', MESSAGE = '{text}', "
        "DETAIL = 'row (42, secret-row-value)'; END $$"
    )
    error = _raise(source, statement)
    assert type(error) is expected
    assert f"PostgreSQL error {sqlstate} (" in str(error)
    assert text in str(error)
    assert "secret-row-value" not in str(error)
    assert isinstance(error.__cause__, psycopg2.Error)


# --- secret validation ---------------------------------------------------------------------------


def test_missing_secret_keys_are_named_and_values_are_not(secret: dict[str, Any]) -> None:
    partial = {"host": secret["host"], "password": "Very-Secret-Value-1"}
    with pytest.raises(SecretMalformed) as info:
        connect_source(partial, application_name=APP)
    assert str(info.value).startswith("The Aurora secret lacks port, dbname, user.")
    assert "Very-Secret-Value-1" not in str(info.value)


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"port": "fivefourthree"}, "'port' is not a TCP port number"),
        ({"port": 70000}, "'port' is not a TCP port number"),
        ({"sslmode": "on"}, "'sslmode' 'on' is not a libpq sslmode"),
        ({"password": ""}, "lacks password"),
    ],
)
def test_malformed_secret_values(secret: dict[str, Any], change: dict[str, Any], phrase: str) -> None:
    with pytest.raises(SecretMalformed) as info:
        connect_source({**secret, **change}, application_name=APP)
    assert phrase in str(info.value)
