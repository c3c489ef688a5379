"""Fixtures of the contract tests that run against a REAL Snowflake account (marker ``snowflake_account``).

The local emulator (fakesnow + our control plane) stands in for Snowflake everywhere else; these
tests check the facts the emulator and the product rely on against the real service. They run
only when ``SNOWFLAKE_ACCOUNT`` is set, and are skipped otherwise:

    SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_DATABASE   required
    SNOWFLAKE_PRIVATE_KEY_PATH (+ SNOWFLAKE_PRIVATE_KEY_PASSPHRASE) or SNOWFLAKE_PASSWORD
    SNOWFLAKE_WAREHOUSE, SNOWFLAKE_ROLE, SNOWFLAKE_SCHEMA   optional (user defaults otherwise)

The role needs CREATE SCHEMA on SNOWFLAKE_DATABASE and a usable warehouse. ``account_secret``
is the one place these variables are read; a test that needs the account requests it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

SKIP_REASON = (
    "no Snowflake account configured: set SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_DATABASE and "
    "SNOWFLAKE_PRIVATE_KEY_PATH or SNOWFLAKE_PASSWORD (optionally SNOWFLAKE_WAREHOUSE, SNOWFLAKE_ROLE) "
    "to run the contract tests against it"
)


def account_secret_from_env(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The Snowflake secret (as Vault would hold it) described by SNOWFLAKE_* variables.

    None when SNOWFLAKE_ACCOUNT is unset (no account: skip). A half-configured environment is a
    mistake worth failing on, so missing companions raise with their names.
    """
    if not environ.get("SNOWFLAKE_ACCOUNT"):
        return None
    missing = [f"SNOWFLAKE_{key}" for key in ("USER", "DATABASE") if not environ.get(f"SNOWFLAKE_{key}")]
    if not environ.get("SNOWFLAKE_PRIVATE_KEY_PATH") and not environ.get("SNOWFLAKE_PASSWORD"):
        missing.append("SNOWFLAKE_PRIVATE_KEY_PATH (or SNOWFLAKE_PASSWORD)")
    if missing:
        raise ValueError(
            f"SNOWFLAKE_ACCOUNT is set but {', '.join(missing)} is not; set them, or unset "
            "SNOWFLAKE_ACCOUNT to skip the contract tests"
        )
    secret: dict[str, Any] = {
        key.lower(): environ[f"SNOWFLAKE_{key}"]
        for key in ("ACCOUNT", "USER", "PASSWORD", "ROLE", "WAREHOUSE", "DATABASE", "SCHEMA")
        if environ.get(f"SNOWFLAKE_{key}")
    }
    # connect_warehouse requires a schema; the tests name every object fully, so PUBLIC only
    # has to be a valid name, not an existing schema.
    secret.setdefault("schema", "PUBLIC")
    key_path = environ.get("SNOWFLAKE_PRIVATE_KEY_PATH")
    if key_path:
        secret.pop("password", None)
        secret["private_key"] = Path(key_path).read_text()
        if environ.get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"):
            secret["private_key_passphrase"] = environ["SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"]
    return secret


@pytest.fixture(scope="session")
def account_secret() -> dict[str, Any]:
    try:
        secret = account_secret_from_env(os.environ)
    except ValueError as exc:
        pytest.fail(str(exc))
    if secret is None:
        pytest.skip(SKIP_REASON)
    return secret
