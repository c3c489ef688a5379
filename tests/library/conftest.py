"""Fixtures of the library tests that call the exporter: its Lambda environment, an admin
connection to the source, the S3 client, and a fresh source schema the sync role may read."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql

from aurora_sync.settings import runtime_settings
from aurora_sync.vault import reset_vault_cache
from aurora_sync_ops.environment import local_aws_client


@pytest.fixture
def env(lambda_env: dict[str, str]) -> Iterator[dict[str, str]]:
    reset_vault_cache()
    runtime_settings.cache_clear()
    yield lambda_env
    reset_vault_cache()


@pytest.fixture
def admin(stack: dict[str, Any]) -> Iterator[Any]:
    conn = psycopg2.connect(stack["postgres"]["admin_dsn"])
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture
def s3(stack: dict[str, Any]) -> Any:
    aws = stack["aws"]
    return local_aws_client("s3", aws)


@pytest.fixture
def schema(admin: Any, stack: dict[str, Any]) -> Iterator[str]:
    """A fresh source schema the sync role may read, as `aurora-sync sql aurora` grants it."""
    name = f"src_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        cur.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                sql.Identifier(name), sql.Identifier(stack["postgres"]["user"])
            )
        )
        cur.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
                sql.Identifier(name), sql.Identifier(stack["postgres"]["user"])
            )
        )
    yield name
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
