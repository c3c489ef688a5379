"""One error taxonomy for every handler: transient (retry) vs terminal (fail the table).

Step Functions matches a Lambda failure by the exception's class name (``errorType``), not by
inheritance, so every concrete class below is a stable public name that the state machine's
``Retry``/``Catch`` clauses list explicitly. Renaming one is a breaking change of the ASL.

Messages must never contain secret values: they end up in logs, in the execution history and
in the console. Build them from identifiers (parameter paths, table names, hostnames), never
from connection strings or credentials.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

# A Lambda error's cause (its message, type and stack trace as JSON) becomes the execution's
# failure cause inside a Fail state's text, and Step Functions refuses a cause over 32,768
# characters (the run would end in States.Runtime, without the rerun command). A message naming
# thousands of tables is cut here, its fix kept.
MAX_MESSAGE_CHARS = 8_000

F = TypeVar("F", bound=Callable[..., Any])


def _cut(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return f"{message[:MAX_MESSAGE_CHARS]}… ({len(message) - MAX_MESSAGE_CHARS} more characters)"


class SyncError(Exception):
    """Base of every error the product raises on purpose."""

    transient: bool = False

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.fix = fix
        message = _cut(message)
        super().__init__(f"{message} Fix: {fix}" if fix else message)


class TransientError(SyncError):
    """Retrying the same call later can succeed (network, timeouts, throttling, outages)."""

    transient = True


class TerminalError(SyncError):
    """Retrying cannot help until a person changes something (config, grants, schema)."""


# --- transient -----------------------------------------------------------------------------
class SourceUnavailable(TransientError):
    """PostgreSQL/Aurora could not be reached, or the connection was lost mid-statement."""


class SourceTimeout(TransientError):
    """A source statement hit statement_timeout / lock_timeout or was cancelled."""


class SourceConflict(TransientError):
    """Serialization failure or deadlock in the source; the statement can simply run again."""


class ExportWriteFailed(TransientError):
    """aws_s3 could not write to S3 (throttling, S3 outage, network)."""


class WarehouseUnavailable(TransientError):
    """Snowflake could not be reached or returned a retryable error."""


class SecretsUnavailable(TransientError):
    """Vault is down, sealed or unreachable; or a token expired during the call."""


class ConfigStoreUnavailable(TransientError):
    """SSM Parameter Store could not be reached or throttled us."""


# --- terminal ------------------------------------------------------------------------------
class ConfigError(TerminalError):
    """A table config (or the handler's environment) is malformed or inconsistent."""


class SourceObjectMissing(TerminalError):
    """A configured source table or column does not exist."""


class SourcePermissionDenied(TerminalError):
    """The sync role lacks a privilege it needs in PostgreSQL or on the aws_s3 functions."""


class SourceAuthFailed(TerminalError):
    """PostgreSQL refused the login: password, pg_hba.conf rule, unknown role, or TLS settings."""


class SourceQueryFailed(TerminalError):
    """A source statement failed for a reason retrying cannot fix (data error, bad SQL, read-only)."""


class SourceChunkTimeout(TerminalError):
    """An export chunk's statement hit statement_timeout with the exporter's whole time budget:
    a retry would read the same keyset chunk in the same time and time out again, so it is not
    retried; fewer rows per chunk (``max_rows_per_chunk`` in the table config) fix it."""


class WarehouseObjectMissing(TerminalError):
    """A Snowflake object (FINAL table, pipe, task) the run relies on does not exist."""


class WarehousePermissionDenied(TerminalError):
    """The Snowflake service user lacks a privilege, or authentication was refused."""


class WarehouseQueryFailed(TerminalError):
    """A Snowflake statement failed for a reason retrying cannot fix (SQL, data, unsupported)."""


class RowsMissing(TerminalError):
    """FINAL lacks rows the source has (a key snapshot names keys FINAL does not hold, or a full
    table's row count differs from its snapshot's): a full resync of the table restores them."""


class KeySnapshotIncomplete(TerminalError):
    """A run's key snapshot did not load whole into its KEYS table, so no row was deleted."""


class SecretsAccessDenied(TerminalError):
    """Vault refused the login or the read (role binding, policy, server-id header)."""


class SecretMalformed(TerminalError):
    """A Vault secret exists but lacks fields the handler needs."""


def bounded_failures(handler: F) -> F:
    """A handler's unexpected exceptions (not a ``SyncError``: a bug, a library's own error) leave
    it with their message cut like a ``SyncError``'s, so the failure cause still fits a Fail
    state's and the run still ends with its rerun command.

    Step Functions matches a Lambda failure by its ``errorType``, the exception class's name, so
    the cut exception is of a class of the same name (and module), raised with the original's
    frames; a short message leaves the original exception untouched.
    """

    @functools.wraps(handler)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except SyncError:
            raise
        except Exception as exc:
            message = str(exc)
            if len(message) <= MAX_MESSAGE_CHARS:
                raise
            kind = type(exc)
            names = {"__module__": kind.__module__, "__qualname__": kind.__qualname__}
            same_name = type(kind.__name__, (Exception,), names)
            raise same_name(_cut(message)).with_traceback(exc.__traceback__) from None

    guarded.bounds_failures = True  # type: ignore[attr-defined]
    return guarded  # type: ignore[return-value]


TRANSIENT_ERROR_NAMES: tuple[str, ...] = tuple(cls.__name__ for cls in TransientError.__subclasses__())
TERMINAL_ERROR_NAMES: tuple[str, ...] = tuple(cls.__name__ for cls in TerminalError.__subclasses__())
