"""Connections as the handlers open them: credentials from Vault, then the driver factories.

A credential refused by the server drops the cached secrets, so a password or key rotated in
Vault heals on the next attempt (the state machine's retry or the next run) instead of failing
until the container is recycled.
"""

from __future__ import annotations

from typing import Any

from . import source_db
from .errors import SourceAuthFailed, WarehousePermissionDenied
from .settings import runtime_settings
from .vault import vault_secrets


def source_connection(*, application_name: str, statement_timeout_ms: int | None = None) -> Any:
    """A read-only, UTC session on the Aurora endpoint named by the Aurora secret."""
    secrets = vault_secrets()
    secret = secrets.read_required(runtime_settings().aurora_secret_path, source_db.REQUIRED_KEYS)
    try:
        return source_db.connect_source(
            secret, application_name=application_name, statement_timeout_ms=statement_timeout_ms
        )
    except SourceAuthFailed:
        secrets.clear_cache()
        raise


def warehouse_connection(*, query_tag: str | None = None) -> Any:
    """A Snowflake session (key-pair auth, UTC, qmark binding) from the Snowflake secret."""
    # Imported here: the exporter never opens a Snowflake session, and its package carries
    # neither the Snowflake connector nor cryptography (functions/requirements-exporter.txt).
    from . import warehouse_db

    secrets = vault_secrets()
    secret = secrets.read_required(runtime_settings().snowflake_secret_path, warehouse_db.REQUIRED_KEYS)
    try:
        return warehouse_db.connect_warehouse(secret, query_tag=query_tag)
    except WarehousePermissionDenied:
        secrets.clear_cache()
        raise
