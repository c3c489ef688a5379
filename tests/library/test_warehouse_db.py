"""connect_warehouse and classify_warehouse_error against the local Snowflake emulator.

The emulator ignores credentials, but the connector still loads the private key and signs a
JWT before logging in, so a successful login proves the key handling. One contract test checks
the session parameters on a real account when SNOWFLAKE_* credentials are given.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from snowflake.connector import errors as sf_errors

from aurora_sync.errors import (
    SecretMalformed,
    WarehouseObjectMissing,
    WarehouseQueryFailed,
    WarehouseUnavailable,
)
from aurora_sync.warehouse_db import (
    connect_warehouse,
    private_key_der,
    warehouse_connect_args,
    warehouse_errors,
)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey, passphrase: bytes | None = None) -> str:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


@pytest.fixture(scope="module")
def sf(stack: dict[str, Any]) -> dict[str, Any]:
    facts: dict[str, Any] = stack["snowflake"]
    return facts


@pytest.fixture
def secret(sf: dict[str, Any], rsa_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """The Snowflake secret as Vault holds it: the emulator's connection facts plus a key pair."""
    facts = {key: value for key, value in sf.items() if key != "password"}
    return {**facts, "private_key": _pem(rsa_key)}


@pytest.fixture
def conn(secret: dict[str, Any]) -> Iterator[Any]:
    connection = connect_warehouse(secret, login_timeout_s=10, network_timeout_s=20)
    yield connection
    connection.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- connect ------------------------------------------------------------------------------------


def test_key_pair_login_and_bound_query(conn: Any) -> None:
    cur = conn.cursor()
    cur.execute("SELECT CAST(? AS INTEGER) + 1, ?", (41, "O'Brien; DROP TABLE x --"))
    assert cur.fetchone() == (42, "O'Brien; DROP TABLE x --")
    assert conn.application == "aurora_snowflake_sync"


def test_session_uses_utc(conn: Any) -> None:
    cur = conn.cursor()
    cur.execute("SELECT CURRENT_TIMESTAMP()")
    row = cur.fetchone()
    assert row is not None
    assert row[0].utcoffset() == timedelta(0)


def test_connect_args_carry_session_parameters_binding_and_der_key(
    secret: dict[str, Any], rsa_key: rsa.RSAPrivateKey
) -> None:
    args = warehouse_connect_args(
        {**secret, "session_parameters": {"TIMEZONE": "Europe/Paris", "WEEK_START": 1}},
        query_tag="exporter:orders",
        statement_timeout_s=120,
    )
    assert args["session_parameters"] == {
        "WEEK_START": 1,
        "TIMEZONE": "UTC",
        "QUERY_TAG": "exporter:orders",
        "STATEMENT_TIMEOUT_IN_SECONDS": 120,
    }
    assert args["paramstyle"] == "qmark"
    assert args["client_session_keep_alive"] is False
    assert "password" not in args
    loaded = serialization.load_der_private_key(args["private_key"], password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.private_numbers() == rsa_key.private_numbers()
    # host/port/protocol come from the secret only when it has them (emulator, PrivateLink).
    plain = {key: value for key, value in secret.items() if key not in ("host", "port", "protocol")}
    assert not {"host", "port", "protocol"} & set(warehouse_connect_args(plain))


def test_password_login_when_no_key(sf: dict[str, Any]) -> None:
    secret = {key: value for key, value in sf.items() if key != "private_key"}
    secret["password"] = "emulator-ignores-it"
    assert "private_key" not in warehouse_connect_args(secret)
    connection = connect_warehouse(secret, login_timeout_s=10)
    try:
        cur = connection.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    finally:
        connection.close()


def test_encrypted_key_with_passphrase_logs_in(sf: dict[str, Any], rsa_key: rsa.RSAPrivateKey) -> None:
    secret = {key: value for key, value in sf.items() if key != "password"}
    secret.update(private_key=_pem(rsa_key, b"pass-phrase-1"), private_key_passphrase="pass-phrase-1")
    connection = connect_warehouse(secret, login_timeout_s=10)
    try:
        cur = connection.cursor()
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)
    finally:
        connection.close()


def test_pem_with_escaped_newlines_is_accepted(rsa_key: rsa.RSAPrivateKey) -> None:
    one_line = _pem(rsa_key).strip().replace("\n", "\\n")
    loaded = serialization.load_der_private_key(private_key_der(one_line), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.public_key().public_numbers() == rsa_key.public_key().public_numbers()


# --- key and secret problems --------------------------------------------------------------------


def test_bad_pem_is_secret_malformed_without_key_text(
    secret: dict[str, Any], rsa_key: rsa.RSAPrivateKey
) -> None:
    pem = _pem(rsa_key)
    body_line = pem.splitlines()[3]
    damaged = pem.replace(body_line, body_line[::-1])
    with pytest.raises(SecretMalformed) as info:
        connect_warehouse({**secret, "private_key": damaged})
    message = str(info.value)
    assert "'private_key' is not a readable PEM private key" in message
    assert body_line not in message
    assert body_line[::-1] not in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ is True


@pytest.mark.parametrize(
    ("passphrase", "stored", "phrase"),
    [
        (b"right-pass", None, "is encrypted but the secret has no 'private_key_passphrase'"),
        (None, "stray-pass", "is not encrypted but the secret has a 'private_key_passphrase'"),
        (b"right-pass", "wrong-pass", "or its 'private_key_passphrase' is wrong"),
    ],
)
def test_passphrase_mismatch_is_secret_malformed(
    secret: dict[str, Any],
    rsa_key: rsa.RSAPrivateKey,
    passphrase: bytes | None,
    stored: str | None,
    phrase: str,
) -> None:
    broken = {**secret, "private_key": _pem(rsa_key, passphrase)}
    if stored:
        broken["private_key_passphrase"] = stored
    with pytest.raises(SecretMalformed) as info:
        connect_warehouse(broken)
    assert phrase in str(info.value)
    for value in ("right-pass", "wrong-pass", "stray-pass"):
        assert value not in str(info.value)


def test_missing_keys_are_named(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(SecretMalformed) as info:
        connect_warehouse({"account": "acme-prod", "password": ""})
    assert str(info.value).startswith(
        "The Snowflake secret lacks user, database, schema, private_key (or password)."
    )


def test_non_numeric_port_is_secret_malformed(secret: dict[str, Any]) -> None:
    with pytest.raises(SecretMalformed) as info:
        connect_warehouse({**secret, "port": "https"})
    assert "'port' is not a number" in str(info.value)


# --- failures -----------------------------------------------------------------------------------


def test_unknown_table_is_object_missing(conn: Any) -> None:
    table = f"H5_NO_SUCH_TABLE_{uuid.uuid4().hex[:6].upper()}"
    with pytest.raises(WarehouseObjectMissing) as info, warehouse_errors(f"FINAL.{table}"):
        conn.cursor().execute(f"SELECT MAX(UPDATED_AT) FROM {table}")
    message = str(info.value)
    # Real Snowflake adds ", query id <uuid>" after the SQLSTATE; the emulator sends none.
    assert message.startswith(f"FINAL.{table}: Snowflake error 002003 (SQLSTATE 42S02")
    assert table in message
    assert info.value.transient is False
    assert isinstance(info.value.__cause__, sf_errors.ProgrammingError)


def test_sql_error_is_query_failed_naming_errno(conn: Any) -> None:
    with pytest.raises(WarehouseQueryFailed) as info, warehouse_errors("planner"):
        conn.cursor().execute("SELEC 1")
    assert str(info.value).startswith("planner: Snowflake error 001003 (SQLSTATE 42000")


def test_closed_port_is_transient_unavailable(secret: dict[str, Any]) -> None:
    with pytest.raises(WarehouseUnavailable) as info:
        connect_warehouse({**secret, "port": _free_port()}, login_timeout_s=3, network_timeout_s=3)
    assert info.value.transient is True
    assert str(info.value).startswith(
        f"Snowflake account {secret['account']} as {secret['user']}: Snowflake error 250001"
    )


# --- real account contract -----------------------------------------------------------------------


def _account_secret() -> dict[str, Any] | None:
    if not (os.environ.get("SNOWFLAKE_ACCOUNT") and os.environ.get("SNOWFLAKE_USER")):
        return None
    secret: dict[str, Any] = {
        key.lower(): os.environ[f"SNOWFLAKE_{key}"]
        for key in ("ACCOUNT", "USER", "PASSWORD", "ROLE", "WAREHOUSE", "DATABASE", "SCHEMA")
        if os.environ.get(f"SNOWFLAKE_{key}")
    }
    key_path = os.environ.get("SNOWFLAKE_PRIVATE_KEY_PATH")
    if key_path:
        secret["private_key"] = Path(key_path).read_text()
        if os.environ.get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"):
            secret["private_key_passphrase"] = os.environ["SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"]
    return secret


@pytest.mark.snowflake_account
def test_real_account_session_parameters() -> None:
    secret = _account_secret()
    if secret is None:
        pytest.skip(
            "set SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_DATABASE, SNOWFLAKE_SCHEMA "
            "and SNOWFLAKE_PRIVATE_KEY_PATH or SNOWFLAKE_PASSWORD"
        )
    connection = connect_warehouse(secret, query_tag="aurora-sync-contract", statement_timeout_s=77)
    try:
        cur = connection.cursor()
        cur.execute("SHOW PARAMETERS IN SESSION")
        values = {row[0]: row[1] for row in cur.fetchall()}
        assert values["TIMEZONE"] == "UTC"
        assert values["QUERY_TAG"] == "aurora-sync-contract"
        assert values["STATEMENT_TIMEOUT_IN_SECONDS"] == "77"
        with pytest.raises(WarehouseObjectMissing), warehouse_errors("contract"):
            cur.execute(f"SELECT 1 FROM H5_NO_SUCH_TABLE_{uuid.uuid4().hex[:6]}")
    finally:
        connection.close()
