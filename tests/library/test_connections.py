"""Handlers' connections end to end: Lambda role → Vault IAM login → secret → real servers."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import hvac
import psycopg2
import pytest
from psycopg2 import sql

from aurora_sync.connections import source_connection, warehouse_connection
from aurora_sync.errors import SourceAuthFailed
from aurora_sync.vault import reset_vault_cache


@pytest.fixture
def fresh_vault_cache(lambda_env: dict[str, str]) -> Iterator[None]:
    reset_vault_cache()
    yield
    reset_vault_cache()


def test_source_connection_uses_the_sync_role_from_vault(
    stack: dict[str, Any], fresh_vault_cache: None
) -> None:
    conn = source_connection(application_name="test-connections")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT current_user, current_setting('TimeZone'), current_setting('transaction_read_only')"
            )
            assert cur.fetchone() == (stack["postgres"]["user"], "UTC", "on")
    finally:
        conn.close()


def test_warehouse_connection_uses_the_snowflake_secret(
    stack: dict[str, Any], fresh_vault_cache: None
) -> None:
    conn = warehouse_connection(query_tag="test-connections")
    try:
        cur = conn.cursor()
        cur.execute("SELECT ? + 1", (41,))
        assert cur.fetchone() == (42,)
    finally:
        conn.close()


def test_rotated_password_heals_once_vault_has_the_new_one(
    stack: dict[str, Any], fresh_vault_cache: None
) -> None:
    pg, vault = stack["postgres"], stack["vault"]
    admin = hvac.Client(url=vault["openbao_addr"], token=vault["root_token"])
    path = vault["aurora_secret_path"]
    # Given a warm container that has the current secret cached
    source_connection(application_name="test-rotation").close()
    new_password = secrets.token_urlsafe(16)
    alter = sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(pg["user"]))
    conn = psycopg2.connect(pg["admin_dsn"])
    conn.autocommit = True  # not `with conn:`, which wraps everything in one transaction
    with conn.cursor() as cur:
        try:
            # When the password is rotated in the database and then in Vault
            cur.execute(alter, (new_password,))
            with pytest.raises(SourceAuthFailed) as refused:
                source_connection(application_name="test-rotation")
            assert new_password not in str(refused.value) and pg["password"] not in str(refused.value)
            current = admin.secrets.kv.v2.read_secret_version(path=path, raise_on_deleted_version=True)
            admin.secrets.kv.v2.create_or_update_secret(
                path=path, secret={**current["data"]["data"], "password": new_password}
            )
            # Then the next attempt reads the new secret instead of the cached one
            source_connection(application_name="test-rotation").close()
        finally:
            cur.execute(alter, (pg["password"],))
            current = admin.secrets.kv.v2.read_secret_version(path=path, raise_on_deleted_version=True)
            admin.secrets.kv.v2.create_or_update_secret(
                path=path, secret={**current["data"]["data"], "password": pg["password"]}
            )
    conn.close()
