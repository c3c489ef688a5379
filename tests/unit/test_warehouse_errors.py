"""classify_warehouse_error and the fixes it names, without a server; connect_warehouse against the
emulator is tests/library/test_warehouse_db.py."""

from __future__ import annotations

import pytest
from snowflake.connector import errors as sf_errors

from aurora_sync.errors import (
    WarehouseObjectMissing,
    WarehousePermissionDenied,
    WarehouseQueryFailed,
    WarehouseUnavailable,
)
from aurora_sync.warehouse_db import (
    classify_warehouse_error,
)
from aurora_sync_ops.cli import build_parser
from aurora_sync_ops.cli.sql import cmd_sql_snowflake


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        # What the connector raises for a refused key-pair login (server code, SQLSTATE 28000).
        (
            sf_errors.DatabaseError(msg="JWT token is invalid.", errno=390144, sqlstate="28000"),
            WarehousePermissionDenied,
        ),
        (
            sf_errors.DatabaseError(
                msg="Incorrect username or password was specified.", errno=250001, sqlstate="08001"
            ),
            WarehousePermissionDenied,
        ),
        (
            sf_errors.ProgrammingError(
                msg="Insufficient privileges to operate on table 'T'", errno=3001, sqlstate="42501"
            ),
            WarehousePermissionDenied,
        ),
        (
            sf_errors.ProgrammingError(
                msg="SQL compilation error:\nObject 'DB.S.T' does not exist or not authorized.",
                errno=2003,
                sqlstate="02000",
            ),
            WarehouseObjectMissing,
        ),
        (
            sf_errors.ProgrammingError(
                msg="Statement reached its statement or warehouse timeout of 60 second(s) and was canceled.",
                errno=630,
                sqlstate="57014",
            ),
            WarehouseUnavailable,
        ),
        (sf_errors.ServiceUnavailableError(), WarehouseUnavailable),
        (sf_errors.ForbiddenError(), WarehousePermissionDenied),
        (
            sf_errors.DatabaseError(msg="Authentication token has expired.", errno=390114, sqlstate="08001"),
            WarehouseUnavailable,
        ),
        (
            sf_errors.ProgrammingError(
                msg="Numeric value 'abc' is not recognized", errno=100038, sqlstate="22018"
            ),
            WarehouseQueryFailed,
        ),
        (ConnectionResetError("connection reset by peer"), WarehouseUnavailable),
    ],
)
def test_connector_errors_map_to_the_taxonomy(error: Exception, expected: type[Exception]) -> None:
    result = classify_warehouse_error(error, context="verifier")
    assert type(result) is expected
    assert str(result).startswith("verifier: Snowflake error ")
    assert result.__cause__ is error
    if expected is WarehousePermissionDenied and getattr(error, "sqlstate", None) == "28000":
        assert "ALTER USER <user> SET RSA_PUBLIC_KEY" in str(result)


def test_classify_redacts_secrets() -> None:
    error = sf_errors.DatabaseError(
        msg="login failed for password Pw-123-secret", errno=390100, sqlstate="28000"
    )
    result = classify_warehouse_error(error, redact=("Pw-123-secret",))
    assert "Pw-123-secret" not in str(result)
    assert "password ***" in str(result)


def test_object_missing_fix_names_a_command_the_cli_accepts() -> None:
    error = sf_errors.ProgrammingError(
        msg="SQL compilation error:\nObject 'DB.FINAL.ORDERS' does not exist or not authorized.",
        errno=2003,
        sqlstate="02000",
    )
    result = classify_warehouse_error(error, context="planner")
    assert str(result).endswith(
        "Fix: create the missing objects: aurora-sync sql snowflake --setup --apply (the account setup "
        "and every configured table's objects; safe to repeat), or check database/schema in the "
        "Snowflake secret and the role's grants"
    )
    command = str(result).split("Fix: create the missing objects: aurora-sync ", 1)[1].split(" (", 1)[0]
    args = build_parser().parse_args(command.split())
    assert (args.func, args.setup, args.apply, args.tables) == (cmd_sql_snowflake, True, True, None)


def test_privilege_fix_names_a_command_the_cli_accepts() -> None:
    """It said "(see sql/snowflake setup)": a folder of templates, not something to run."""
    error = sf_errors.ProgrammingError(
        msg="SQL access control error:\nInsufficient privileges to operate on table 'ORDERS'",
        errno=3001,
        sqlstate="42501",
    )
    result = classify_warehouse_error(error, context="verifier")
    assert "sql/snowflake setup" not in str(result)
    fix = str(result).split("Fix: ", 1)[1]
    command = fix.split("`aurora-sync ", 1)[1].split("`", 1)[0]
    args = build_parser().parse_args(command.split())
    assert (args.func, args.setup, args.apply, args.tables) == (cmd_sql_snowflake, True, True, None)


def test_a_network_policy_refusal_names_the_policy_not_the_key() -> None:
    """Error 390432 is the network policy refusing the NAT address: the fix is the policy."""
    error = classify_warehouse_error(
        sf_errors.DatabaseError(
            msg="Incoming request with IP/Token 203.0.113.10 is not allowed to access Snowflake. "
            "Contact your account administrator.",
            errno=390432,
            sqlstate="08004",
        ),
        context="connect to Snowflake account myorg-myaccount",
    )
    assert isinstance(error, WarehousePermissionDenied)
    assert "network policy" in str(error) and "NAT" in str(error)
    assert "RSA_PUBLIC_KEY" not in str(error)
