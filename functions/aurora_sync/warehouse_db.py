"""Connections to Snowflake, and the mapping of the connector's errors onto the taxonomy.

Key-pair (JWT) authentication is the normal case for a service user; a password is accepted
but discouraged. ``host``/``port``/``protocol`` are passed only when the secret carries them
(PrivateLink, or a local emulator); otherwise the connector derives the host from the account.

Binding: connections use ``paramstyle="qmark"``. With qmark the connector sends the values
to the server as typed bind variables next to the SQL text, so values never become SQL text
(no client-side quoting, nothing to inject, no row values in query history or in the
``query`` attribute of errors). The default ``pyformat`` interpolates values into the text on
the client. Write ``CAST(? AS type)`` rather than ``?::type``: the local emulator cannot parse
the latter.

Lists of names (a run's tables, a key snapshot's files) are bound as ONE JSON array and
expanded in the statement (``IN_BOUND_LIST``, ``bound_list``), never as one ``?`` each: the statement's text
then stays the same whatever the list's length, so Snowflake compiles it once and its text
does not grow with thousands of tables (the emulator, which translates every new text, took
over 60 s on an IN list of 2,000 binds).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from .errors import (
    SecretMalformed,
    SyncError,
    WarehouseObjectMissing,
    WarehousePermissionDenied,
    WarehouseQueryFailed,
    WarehouseUnavailable,
)

if TYPE_CHECKING:
    from snowflake.connector import SnowflakeConnection

# One row per element of a bound JSON array: FLATTEN's INPUT takes any VARIANT expression
# (PARSE_JSON of the bound text), and each row's VALUE is one element. Its columns (SEQ, KEY,
# PATH, INDEX, VALUE, THIS) are not names of the product's tables, so in a correlated EXISTS an
# unqualified column is the outer row's.
BOUND_ROWS = "TABLE(FLATTEN(INPUT => PARSE_JSON(?)))"
# ``<column> IN_BOUND_LIST``, one bind: ``bound_list(values)``. An IN over a subquery is a
# semi-join: duplicates in the list change nothing, and a JSON null never matches (as a NULL
# bind never did).
IN_BOUND_LIST = f"IN (SELECT VALUE::STRING FROM {BOUND_ROWS})"


def bound_list(values: Iterable[str]) -> str:
    """The one bind of ``IN_BOUND_LIST``: the values as a JSON array (names keep their case)."""
    return json.dumps(list(values))


APPLICATION = "aurora-snowflake-sync"
# warehouse and role may be left to the user's DEFAULT_WAREHOUSE / DEFAULT_ROLE; database and
# schema may not, because the product's SQL names its objects relative to them.
REQUIRED_KEYS = ("account", "user", "database", "schema")
PARAMSTYLE = "qmark"

# Longest server message kept in an error (see source_db.MAX_MESSAGE_CHARS).
MAX_MESSAGE_CHARS = 500

# Snowflake login error codes that mean "these credentials were refused" (the connector's
# CREDENTIAL_REJECTION_GS_CODES plus user disabled/locked); the connector reports them as the
# errno of a DatabaseError with SQLSTATE 28000.
_AUTH_CODES = frozenset(
    {390100, 390101, 390102, 390144, 390186, 394300, 394301, 394302, 394303, 394304, 394305, 394306}
)
# A network policy refused the caller's address (NAT IP or PrivateLink endpoint id).
_NETWORK_POLICY_CODE = 390432
_NETWORK_POLICY_FIX = (
    "allow the functions' NAT gateway addresses (or their PrivateLink endpoint id) in the network "
    "policy of the Snowflake user or account (docs/deploy.md, step 4, 'Network policy')"
)
# Session/master token expired mid-run: a new connection fixes it.
_SESSION_EXPIRED_CODES = frozenset({390112, 390114, 390111})
# Connector-side network codes (errorcode.py): failed/closed/retried requests, timeouts.
_NETWORK_CODES = frozenset({250002, 250003, 250005, 251010, 251011, 251012})
# Server: statement/warehouse timeout, lock wait timeout, statement cancelled.
_TIMEOUT_CODES = frozenset({630, 625, 604})
_OBJECT_MISSING_CODES = frozenset({2003, 2043, 904, 2140, 90105, 90106, 606})
_PRIVILEGE_CODES = frozenset({3001, 3003})
_AUTH_WORDS = re.compile(r"password|jwt|authenticat|public key|credential", re.IGNORECASE)
_NOT_EXIST = re.compile(r"does not exist or not authorized|does not exist", re.IGNORECASE)
_REGISTER_KEY_FIX = (
    "check the Snowflake secret in Vault (account, user, private_key) and register the key's "
    "public half on the user: ALTER USER <user> SET RSA_PUBLIC_KEY='<base64 DER>'"
)


def connect_warehouse(
    secret: Mapping[str, Any],
    *,
    application: str = APPLICATION,
    query_tag: str | None = None,
    login_timeout_s: int = 20,
    network_timeout_s: int = 60,
    statement_timeout_s: int = 600,
) -> SnowflakeConnection:
    """Open a Snowflake session described by ``secret`` (the Snowflake secret from Vault).

    The connector is imported here, not at module level, to keep the cold start of handlers
    that never touch Snowflake small. Raises a :class:`SyncError` subclass, never a driver error.
    """
    import snowflake.connector

    kwargs = warehouse_connect_args(
        secret,
        application=application,
        query_tag=query_tag,
        login_timeout_s=login_timeout_s,
        network_timeout_s=network_timeout_s,
        statement_timeout_s=statement_timeout_s,
    )
    where = f"Snowflake account {kwargs['account']} as {kwargs['user']}"
    try:
        return snowflake.connector.connect(**kwargs)
    except Exception as exc:  # the connector also raises requests/OSError subclasses
        redact = tuple(str(secret[key]) for key in ("password", "private_key_passphrase") if secret.get(key))
        raise classify_warehouse_error(exc, context=where, redact=redact) from exc


def warehouse_connect_args(
    secret: Mapping[str, Any],
    *,
    application: str = APPLICATION,
    query_tag: str | None = None,
    login_timeout_s: int = 20,
    network_timeout_s: int = 60,
    statement_timeout_s: int = 600,
) -> dict[str, Any]:
    """The keyword arguments for ``snowflake.connector.connect``; holds key material, never log it."""
    if not isinstance(secret, Mapping):
        raise SecretMalformed(
            "The Snowflake secret is not a key/value object.",
            fix="store it in Vault as a KV v2 secret with account, user, private_key, warehouse, "
            "database and schema",
        )
    missing = [key for key in REQUIRED_KEYS if not secret.get(key)]
    if not secret.get("private_key") and not secret.get("password"):
        missing.append("private_key (or password)")
    if missing:
        raise SecretMalformed(
            f"The Snowflake secret lacks {', '.join(missing)}.",
            fix="add these keys to the Snowflake secret in Vault",
        )
    # The connector accepts only [A-Za-z0-9_] in `application`; the product name has dashes.
    app_id = re.sub(r"\W", "_", application)
    kwargs: dict[str, Any] = {
        "account": str(secret["account"]),
        "user": str(secret["user"]),
        "database": str(secret["database"]),
        "schema": str(secret["schema"]),
        "application": app_id,
        "paramstyle": PARAMSTYLE,
        "autocommit": True,
        "login_timeout": int(login_timeout_s),
        "network_timeout": int(network_timeout_s),
        # A Lambda is frozen between invocations; a heartbeat thread would only fire on thaw.
        "client_session_keep_alive": False,
        "session_parameters": {
            # Extra session parameters an operator put in the secret; ours below win.
            **_secret_session_parameters(secret),
            # TIMESTAMP_LTZ values and CURRENT_TIMESTAMP() follow the session zone; watermarks
            # are compared in UTC on both sides.
            "TIMEZONE": "UTC",
            "QUERY_TAG": query_tag or application,
            "STATEMENT_TIMEOUT_IN_SECONDS": int(statement_timeout_s),
        },
    }
    for key in ("warehouse", "role"):
        if secret.get(key):
            kwargs[key] = str(secret[key])
    for key in ("host", "protocol"):
        if secret.get(key):
            kwargs[key] = str(secret[key])
    if secret.get("port"):
        try:
            kwargs["port"] = int(secret["port"])
        except (TypeError, ValueError):
            raise SecretMalformed(
                "The Snowflake secret's 'port' is not a number.",
                fix="remove 'port' (the default is 443) or set it to the endpoint's port",
            ) from None
    if secret.get("private_key"):
        kwargs["private_key"] = private_key_der(
            str(secret["private_key"]), secret.get("private_key_passphrase") or None
        )
    else:
        kwargs["password"] = str(secret["password"])
    return kwargs


def _secret_session_parameters(secret: Mapping[str, Any]) -> dict[str, Any]:
    extra = secret.get("session_parameters") or {}
    if not isinstance(extra, Mapping):
        raise SecretMalformed(
            "The Snowflake secret's 'session_parameters' is not a key/value object.",
            fix="store it as a JSON object of Snowflake session parameters, or remove it",
        )
    return dict(extra)


def private_key_der(pem: str, passphrase: str | bytes | None = None) -> bytes:
    """PKCS#8 PEM text (optionally encrypted) → unencrypted PKCS#8 DER, which the connector takes.

    Errors name the field only: neither the key text nor the passphrase appear in them, and the
    cryptography error is not chained (its repr could carry parts of the input).
    """
    # Secrets pasted through a CLI often arrive with literal "\n" instead of line breaks.
    text = pem.strip()
    if "\\n" in text and "\n" not in text:
        text = text.replace("\\n", "\n")
    password = passphrase.encode() if isinstance(passphrase, str) else passphrase
    try:
        key = serialization.load_pem_private_key(text.encode(), password=password)
    except TypeError:
        if password is None:
            problem = "is encrypted but the secret has no 'private_key_passphrase'"
        else:
            problem = "is not encrypted but the secret has a 'private_key_passphrase'"
        raise SecretMalformed(
            f"The Snowflake secret's 'private_key' {problem}.",
            fix="store the passphrase with the key, or remove it for an unencrypted key",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise SecretMalformed(
            "The Snowflake secret's 'private_key' is not a readable PEM private key "
            "(or its 'private_key_passphrase' is wrong).",
            fix="store the PKCS#8 PEM text ('-----BEGIN PRIVATE KEY-----' or "
            "'-----BEGIN ENCRYPTED PRIVATE KEY-----') generated with openssl genrsa/pkcs8",
        ) from None
    return key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


# --- error classification ----------------------------------------------------------------------


def classify_warehouse_error(
    exc: BaseException, *, context: str = "", redact: tuple[str, ...] = ()
) -> SyncError:
    """Map a Snowflake connector (or network) error onto the taxonomy; raise it ``from exc``.

    The message carries ``context``, the connector's errno and SQLSTATE, the query id (so the
    statement can be found in QUERY_HISTORY) and the first line of the server's message.
    """
    from snowflake.connector import errors as sf

    errno = getattr(exc, "errno", None) if isinstance(exc, sf.Error) else None
    errno = errno if isinstance(errno, int) and errno > 0 else None
    sqlstate = getattr(exc, "sqlstate", None) if isinstance(exc, sf.Error) else None
    sqlstate = sqlstate if sqlstate and sqlstate != "n/a" else None
    sfqid = getattr(exc, "sfqid", None) if isinstance(exc, sf.Error) else None
    text = _primary(exc)
    for secret in redact:
        if secret:
            text = text.replace(secret, "***")

    code = f"{errno:06d}" if errno is not None else type(exc).__name__
    details = [f"SQLSTATE {sqlstate}" if sqlstate else "", f"query id {sfqid}" if sfqid else ""]
    detail = ", ".join(part for part in details if part)
    prefix = f"{context}: " if context else ""
    message = f"{prefix}Snowflake error {code}{f' ({detail})' if detail else ''}: {text}"

    if not message.endswith((".", "!", "?", "…")):
        message += "."  # the taxonomy appends " Fix: ..." to the message
    error_class, fix = _classify(exc, errno, sqlstate, text)
    error = error_class(message, fix=fix)
    error.__cause__ = exc
    return error


_RETRY_FIX = "transient: the run retries; if it persists, check Snowflake status and the network path"


def _classify(
    exc: BaseException, errno: int | None, sqlstate: str | None, text: str
) -> tuple[type[SyncError], str | None]:
    from snowflake.connector import errors as sf

    http_retryable = (
        sf.InternalServerError,
        sf.ServiceUnavailableError,
        sf.GatewayTimeoutError,
        sf.BadGatewayError,
        sf.RequestTimeoutError,
        sf.OtherHTTPRetryableError,
        sf.TooManyRequests,
    )
    # 250001 means both "could not reach the backend" (OperationalError) and, from older
    # servers, "login refused" (DatabaseError with an auth message).
    refused_login = (
        errno == 250001 and not isinstance(exc, sf.OperationalError) and bool(_AUTH_WORDS.search(text))
    )
    missing = errno in _OBJECT_MISSING_CODES or (
        isinstance(exc, sf.ProgrammingError) and bool(_NOT_EXIST.search(text))
    )
    # First match wins: the order puts the specific codes before the broad exception classes.
    rules: tuple[tuple[bool, type[SyncError], str | None], ...] = (
        (isinstance(exc, http_retryable), WarehouseUnavailable, _RETRY_FIX),
        # HTTP 403 at login: wrong account locator/region, or a network policy blocks our IPs.
        (
            isinstance(exc, sf.ForbiddenError),
            WarehousePermissionDenied,
            "check 'account' in the Snowflake secret and the account's network policy "
            "(allow the Lambda's NAT/PrivateLink addresses)",
        ),
        # "Incoming request with IP/Token … is not allowed to access Snowflake": the user's or
        # account's network policy, not the key; telling to re-register the key would mislead.
        (errno == _NETWORK_POLICY_CODE, WarehousePermissionDenied, _NETWORK_POLICY_FIX),
        (
            sqlstate == "28000" or errno in _AUTH_CODES or refused_login,
            WarehousePermissionDenied,
            _REGISTER_KEY_FIX,
        ),
        (
            errno in _SESSION_EXPIRED_CODES,
            WarehouseUnavailable,
            "transient: the session expired; the run reconnects",
        ),
        (errno == 250001 or errno in _NETWORK_CODES, WarehouseUnavailable, _RETRY_FIX),
        (
            errno in _TIMEOUT_CODES,
            WarehouseUnavailable,
            "transient: the statement timed out or was cancelled; the run retries. If it persists, "
            "resize the warehouse or raise STATEMENT_TIMEOUT_IN_SECONDS",
        ),
        (
            errno in _PRIVILEGE_CODES or sqlstate == "42501",
            WarehousePermissionDenied,
            "as a Snowflake administrator, run `aurora-sync sql snowflake --setup --apply` (it re-applies "
            "the setup's grants to the sync role; safe to repeat), or GRANT the "
            "privilege named above to the sync role",
        ),
        (
            errno == 606,
            WarehouseObjectMissing,
            "set 'warehouse' in the Snowflake secret to an existing warehouse and GRANT USAGE on it "
            "to the sync role",
        ),
        (
            missing,
            WarehouseObjectMissing,
            "create the missing objects: aurora-sync sql snowflake --setup --apply (the account setup and "
            "every configured table's objects; safe to repeat), or check database/schema in the "
            "Snowflake secret and the role's grants",
        ),
        (
            isinstance(exc, sf.ProgrammingError | sf.IntegrityError | sf.DataError | sf.NotSupportedError),
            WarehouseQueryFailed,
            None,
        ),
        (
            isinstance(exc, sf.OperationalError | sf.InterfaceError | OSError)
            or (not isinstance(exc, sf.Error) and _is_network_error(exc)),
            WarehouseUnavailable,
            _RETRY_FIX,
        ),
    )
    for matched, error_class, fix in rules:
        if matched:
            return error_class, fix
    return WarehouseQueryFailed, None


def _is_network_error(exc: BaseException) -> bool:
    # requests/urllib3 exceptions can escape the connector on some paths.
    module = type(exc).__module__
    return module.startswith(("requests", "urllib3", "snowflake.connector.vendored"))


def _primary(exc: BaseException) -> str:
    raw = getattr(exc, "raw_msg", None)
    text = str(raw) if raw else str(exc)
    # The connector prefixes "<errno> (<sqlstate>): " itself; the message carries them already.
    text = re.sub(r"^\d{6}(?: \([0-9A-Z]{5}\))?: (?:[0-9a-f-]{36}: )?", "", text.strip())
    # Compilation errors are followed by the SQL position lines; the first lines say it all.
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    joined = " ".join(lines[:2]) if lines else type(exc).__name__
    return joined if len(joined) <= MAX_MESSAGE_CHARS else joined[: MAX_MESSAGE_CHARS - 1] + "…"


@contextmanager
def warehouse_errors(context: str = "") -> Iterator[None]:
    """Run a block of connector calls and raise any error as the taxonomy's class."""
    from snowflake.connector import errors as sf

    try:
        yield
    except (sf.Error, OSError) as exc:
        raise classify_warehouse_error(exc, context=context) from exc
