"""Connections to the source (Aurora PostgreSQL), and the mapping of its errors onto the taxonomy.

Every session is pinned to UTC / ISO date output before its first statement (through libpq's
``options``), so timestamps the exporter writes and the watermarks it compares never depend
on the cluster's parameter group. Sessions are read-only by default: the export is a SELECT
wrapped in ``aws_s3.query_export_to_s3``, which writes to S3, not to the database.

Secrets never reach a message: the connection is opened with keyword arguments (no DSN string
that could end up in an exception), and connection errors are scrubbed of the password before
they are wrapped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.errorcodes
import psycopg2.extensions

from .ca_bundle import ca_bundle_path
from .errors import (
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
from .naming import quote

REQUIRED_KEYS = ("host", "port", "dbname", "user", "password")
OPTIONAL_KEYS = ("sslmode", "sslrootcert")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DEFAULT_SSLMODE = "require"

# Longest primary message kept in an error: enough for any server message, short enough that a
# pathological one (a huge identifier list) cannot flood the execution history.
MAX_MESSAGE_CHARS = 500

# A lock the export waits for is held by DDL or VACUUM FULL; waiting longer than this only holds
# our own snapshot open, and the retry (SourceTimeout) is cheap.
DEFAULT_LOCK_TIMEOUT_MS = 30_000
# A frozen Lambda sandbox can keep a session "idle in transaction" with its snapshot open, which
# blocks VACUUM on the cluster; the server ends such a session after this long.
DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS = 300_000


def connect_source(
    secret: Mapping[str, Any],
    *,
    application_name: str,
    statement_timeout_ms: int | None = None,
    lock_timeout_ms: int | None = DEFAULT_LOCK_TIMEOUT_MS,
    idle_in_transaction_timeout_ms: int | None = DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    connect_timeout_s: int = 5,
    read_only: bool = True,
) -> psycopg2.extensions.connection:
    """Open a session on the source database described by ``secret``.

    ``secret`` is the Aurora secret read from Vault: ``host``, ``port``, ``dbname``, ``user``,
    ``password``, optional ``sslmode`` (default ``require``) and ``sslrootcert`` (a file path,
    or the PEM text of the CA bundle). Raises a :class:`SyncError` subclass, never a driver error.
    """
    params = _connection_params(secret)
    options = _session_options(
        statement_timeout_ms=statement_timeout_ms,
        lock_timeout_ms=lock_timeout_ms,
        idle_in_transaction_timeout_ms=idle_in_transaction_timeout_ms,
        read_only=read_only,
    )
    where = f"Aurora {params['host']}:{params['port']}/{params['dbname']} as {params['user']}"
    try:
        conn = psycopg2.connect(
            **params,
            application_name=application_name,
            options=options,
            connect_timeout=connect_timeout_s,
            # Detects a peer that vanished (failover, NAT idle drop) within ~1 min instead of the
            # kernel's default two hours; the server-side export can run long, so it must be
            # keepalives, not a read timeout.
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
    except psycopg2.Error as exc:
        raise classify_source_error(
            exc, context=where, redact=(str(secret["password"]),), role=params["user"]
        ) from exc
    conn.autocommit = False
    return conn


def _connection_params(secret: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(secret, Mapping):
        raise SecretMalformed(
            "The Aurora secret is not a key/value object.",
            fix="store it in Vault as a KV v2 secret with host, port, dbname, user and password",
        )
    missing = [key for key in REQUIRED_KEYS if secret.get(key) in (None, "")]
    if missing:
        raise SecretMalformed(
            f"The Aurora secret lacks {', '.join(missing)}.",
            fix="add these keys to the Aurora secret in Vault",
        )
    try:
        port = int(secret["port"])
    except (TypeError, ValueError):
        port = 0
    if not 0 < port < 65536:
        raise SecretMalformed(
            "The Aurora secret's 'port' is not a TCP port number.",
            fix="set 'port' to the cluster endpoint's port (usually 5432)",
        )
    sslmode = str(secret.get("sslmode") or DEFAULT_SSLMODE)
    if sslmode not in SSL_MODES:
        raise SecretMalformed(
            f"The Aurora secret's 'sslmode' {sslmode!r} is not a libpq sslmode.",
            fix=f"use one of {', '.join(SSL_MODES)} (production: verify-full with sslrootcert)",
        )
    params: dict[str, Any] = {
        "host": str(secret["host"]),
        "port": port,
        "dbname": str(secret["dbname"]),
        "user": str(secret["user"]),
        "password": str(secret["password"]),
        "sslmode": sslmode,
    }
    if secret.get("sslrootcert"):
        params["sslrootcert"] = ca_bundle_path(str(secret["sslrootcert"]))
    return params


# The session the export text depends on (the type map's expressions assume it): UTC,
# ISO dates, ISO-8601 intervals, shortest exact floats. Anything that re-reads the export
# expressions (parity, plan) must run in the same settings.
EXPORT_SESSION: dict[str, str] = {
    "TimeZone": "UTC",
    "DateStyle": "ISO,YMD",
    "IntervalStyle": "iso_8601",
    "extra_float_digits": "3",
}


def _session_options(
    *,
    statement_timeout_ms: int | None,
    lock_timeout_ms: int | None,
    idle_in_transaction_timeout_ms: int | None,
    read_only: bool,
) -> str:
    # Sent in the startup packet, so they hold from the first statement on and survive a
    # ROLLBACK (a SET inside the first transaction would be undone by it).
    settings: dict[str, str] = dict(EXPORT_SESSION)
    if statement_timeout_ms is not None:
        settings["statement_timeout"] = str(int(statement_timeout_ms))
    if lock_timeout_ms is not None:
        settings["lock_timeout"] = str(int(lock_timeout_ms))
    if idle_in_transaction_timeout_ms is not None:
        settings["idle_in_transaction_session_timeout"] = str(int(idle_in_transaction_timeout_ms))
    if read_only:
        settings["default_transaction_read_only"] = "on"
    return " ".join(f"-c {name}={value}" for name, value in settings.items())


# --- error classification ----------------------------------------------------------------------

# libpq reports failures during connection start-up as text only (psycopg2 leaves pgcode None),
# although the server sent a SQLSTATE with them; these patterns recover it.
_STARTUP_SQLSTATES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), code)
    for pattern, code in (
        (r"password authentication failed|authentication failed for user", "28P01"),
        (r"no pg_hba\.conf entry|pg_hba\.conf rejects", "28000"),
        (r'role "[^"]*" does not exist', "28000"),
        (r'database "[^"]*" does not exist', "3D000"),
        (r"permission denied for database", "42501"),
        (r"too many connections|remaining connection slots are reserved", "53300"),
        (r"the database system is (starting up|shutting down|in recovery mode|not yet accepting)", "57P03"),
    )
)
_TLS_REFUSED = re.compile(
    r"does not support SSL|SSL was required|certificate verify failed|root certificate file"
    r"|server certificate for .* does not match",
    re.IGNORECASE,
)
_S3_WRITE = re.compile(r"\bs3\b|aws_s3|amazon s3|bucket|upload", re.IGNORECASE)
# PostgreSQL names the object as is, without its schema, and only a refused login quotes it
# ('... failed: FATAL:  permission denied for database "app"'): the name is the rest of the text.
_PRIVILEGE_OBJECT = re.compile(
    r"(?:^|:\s+)permission denied for (table|relation|view|materialized view|foreign table|sequence"
    r'|schema|function|database) (?:"(.+)"|(.+))$',
    re.IGNORECASE,
)
_RELATION_KINDS = frozenset({"table", "relation", "view", "materialized view", "foreign table"})
_GRANT_BY_KIND = {
    "sequence": "GRANT USAGE ON SEQUENCE {name} TO {role};",
    "schema": "GRANT USAGE ON SCHEMA {name} TO {role};",
    "function": "GRANT EXECUTE ON FUNCTION {name} TO {role};",
    "database": "GRANT CONNECT ON DATABASE {name} TO {role};",
}
# The export functions' exact signatures, as sql/aurora/02_sync_role.sql grants them.
_EXPORT_GRANTS = (
    "GRANT EXECUTE ON FUNCTION aws_s3.query_export_to_s3(text, aws_commons._s3_uri_1, text, text) TO {role}; "
    "GRANT EXECUTE ON FUNCTION aws_s3.query_export_to_s3(text, text, text, text, text, text) TO {role};"
)


def classify_source_error(
    exc: BaseException,
    *,
    context: str = "",
    redact: tuple[str, ...] = (),
    role: str | None = None,
    relations: Sequence[tuple[str, str]] = (),
) -> SyncError:
    """Map a psycopg2 (or socket) error onto the taxonomy; the caller raises it ``from exc``.

    The message carries ``context`` (e.g. the table), the SQLSTATE and the server's primary
    message only: DETAIL and CONTEXT can quote row values, so they are left out. Any string
    in ``redact`` (the password) is replaced wherever it appears. A permission error's fix is
    the GRANT for ``role`` (the user the session logged in as) that allows the statement; the
    (schema, table) pairs in ``relations`` let it name the table's schema, which PostgreSQL's
    message leaves out.
    """
    sqlstate, primary = _sqlstate_and_primary(exc)
    for secret in redact:
        if secret:
            primary = primary.replace(secret, "***")
    prefix = f"{context}: " if context else ""
    if sqlstate:
        name = (psycopg2.errorcodes.lookup(sqlstate) or "unknown").lower()
        message = f"{prefix}PostgreSQL error {sqlstate} ({name}): {primary}"
    else:
        message = f"{prefix}PostgreSQL connection error: {primary}"

    if not message.endswith((".", "!", "?", "…")):
        message += "."  # the taxonomy appends " Fix: ..." to the message
    error_class: type[SyncError]
    fix: str | None
    if sqlstate == "42501":
        error_class, fix = SourcePermissionDenied, _grant_fix(primary, role, relations)
    else:
        error_class, fix = _classify(exc, sqlstate, primary)
    error = error_class(message, fix=fix)
    error.__cause__ = exc
    return error


_RETRY_FIX = "transient: the run retries; if it persists, check the cluster"
_BY_SQLSTATE: dict[str, tuple[type[SyncError], str | None]] = {
    # Session ended by the server (failover, restart, pg_terminate_backend, idle timeout).
    **dict.fromkeys(("57P01", "57P02", "57P03", "57P05", "40003"), (SourceUnavailable, _RETRY_FIX)),
    **dict.fromkeys(
        ("57014", "55P03", "25P03"),
        (SourceTimeout, "transient: the run retries; if it persists, raise the timeout or split the export"),
    ),
    **dict.fromkeys(
        ("40000", "40001", "40P01"), (SourceConflict, "transient: the run retries the statement")
    ),
    **dict.fromkeys(
        ("42P01", "42703", "3F000", "42883", "3D000", "42704"),
        (SourceObjectMissing, "check the table config (schema, table, columns) and the aws_s3 extension"),
    ),
}
_BY_CLASS: dict[str, tuple[type[SyncError], str | None]] = {
    "08": (SourceUnavailable, _RETRY_FIX),
    "53": (SourceUnavailable, "transient: the cluster is short of connections/memory/disk; the run retries"),
    "28": (SourceAuthFailed, "check the Aurora secret in Vault (user, password) and the pg_hba rules"),
}


def _classify(exc: BaseException, sqlstate: str | None, primary: str) -> tuple[type[SyncError], str | None]:
    if sqlstate is None:
        if _TLS_REFUSED.search(primary):
            return SourceAuthFailed, (
                "set 'sslmode' (and 'sslrootcert') in the Aurora secret in Vault to match the "
                "server's TLS setup; production uses verify-full with the RDS CA bundle"
            )
        if isinstance(exc, psycopg2.Error | OSError):
            return SourceUnavailable, "check that the cluster is up and reachable from the Lambda's subnets"
        return SourceQueryFailed, None
    # The real extension's wording for S3 failures is undocumented; the SQLSTATE classes are the
    # ones an extension raises for external/system failures, and the text must mention S3.
    if sqlstate[:2] in ("XX", "38", "58") and _S3_WRITE.search(primary):
        return ExportWriteFailed, (
            "check the cluster's s3Export IAM role, the bucket policy and KMS key, and the "
            "cluster's network path to S3"
        )
    return _BY_SQLSTATE.get(sqlstate) or _BY_CLASS.get(sqlstate[:2]) or (SourceQueryFailed, None)


def _sqlstate_and_primary(exc: BaseException) -> tuple[str | None, str]:
    if isinstance(exc, psycopg2.Error):
        if exc.pgcode:
            primary = exc.diag.message_primary or _first_line(exc.pgerror or str(exc))
            return exc.pgcode, _squash(primary)
        text = _squash(str(exc))
        for pattern, code in _STARTUP_SQLSTATES:
            if pattern.search(text):
                return code, text
        return None, text or type(exc).__name__
    return None, _squash(str(exc)) or type(exc).__name__


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return re.sub(r"^(ERROR|FATAL|PANIC):\s+", "", line)


def _squash(text: str) -> str:
    # libpq's multi-line messages ("\n\tIs the server running...") read badly in one log line;
    # any DETAIL/CONTEXT lines are dropped because they can quote row values.
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not re.match(r"\s*(DETAIL|CONTEXT|HINT|LINE \d+|QUERY):", line)
    ]
    joined = " ".join(lines)
    return joined if len(joined) <= MAX_MESSAGE_CHARS else joined[: MAX_MESSAGE_CHARS - 1] + "…"


def _grant_fix(primary: str, role: str | None, relations: Sequence[tuple[str, str]]) -> str:
    """The GRANT that allows what was denied, quoted as psycopg2's ``sql.Identifier`` quotes."""
    match = _PRIVILEGE_OBJECT.search(primary)
    if role is None or match is None:
        return (
            f"GRANT {quote(role) if role else 'the role the sync logs in as'} SELECT on the exported "
            "table, USAGE on its schema, and EXECUTE on aws_s3.query_export_to_s3 / USAGE on schemas "
            "aws_s3 and aws_commons (aurora-sync sql aurora prints the statements)"
        )
    kind, name, grantee = match.group(1).lower(), match.group(2) or match.group(3), quote(role)
    if kind in _RELATION_KINDS:
        schemas = sorted({schema for schema, table in relations if table == name})
        if len(schemas) == 1:
            return f"GRANT SELECT ON TABLE {quote(schemas[0])}.{quote(name)} TO {grantee};"
        # A table the caller did not name: only the search path can find it.
        return (
            f"GRANT SELECT ON TABLE {quote(name)} TO {grantee}; (qualify the table with its schema "
            "unless that is on the search path, e.g. public)"
        )
    if kind == "function" and name == "query_export_to_s3":
        return _EXPORT_GRANTS.format(role=grantee)
    return _GRANT_BY_KIND[kind].format(name=quote(name), role=grantee)


def login_role(conn: Any) -> str | None:
    """The user ``conn`` logged in as, or None once the connection is gone."""
    try:
        return str(conn.info.user)
    except psycopg2.Error:
        return None


@contextmanager
def source_errors(
    context: str = "", *, conn: Any = None, relations: Sequence[tuple[str, str]] = ()
) -> Iterator[None]:
    """Run a block of driver calls and raise any driver error as the taxonomy's class.

    ``conn`` (the session the block uses) and ``relations`` (the (schema, table) pairs it reads)
    let a permission error name the exact GRANT.
    """
    try:
        yield
    except (psycopg2.Error, OSError) as exc:
        role = login_role(conn) if conn is not None else None
        raise classify_source_error(exc, context=context, role=role, relations=relations) from exc
