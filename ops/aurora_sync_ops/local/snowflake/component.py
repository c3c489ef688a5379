"""The ``snowflake`` part of the local stack (see ``server.py`` for what runs)."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from ..component import LaunchSpec, StackSettings, http_ok

ACCOUNT = "aurora_sync_local"
USER = "AURORA_SYNC_LOCAL"
# fakesnow accepts any password; this is not a secret, it only satisfies the connector.
PASSWORD = "local-snowflake-emulator"  # noqa: S105
DATABASE = "AURORA_SYNC"
SCHEMA = "PUBLIC"
WAREHOUSE = "AURORA_SYNC_WH"
ROLE = "SYSADMIN"


class SnowflakeComponent:
    name = "snowflake"
    requires: tuple[str, ...] = ("aws",)

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings

    @property
    def db_path(self) -> Any:
        return self.settings.root / "snowflake"

    def missing_prerequisites(self) -> list[str]:
        missing = []
        for module in ("fakesnow", "duckdb", "s3fs", "uvicorn", "snowflake.connector"):
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:
                found = False
            if not found:
                missing.append(
                    f"python package for {module!r} is not installed: run `make dev` "
                    "(pip install -e '.[dev]')"
                )
        return missing

    def prepare(self) -> None:
        self.db_path.mkdir(parents=True, exist_ok=True)

    def launch(self) -> LaunchSpec:
        return LaunchSpec(
            argv=[
                sys.executable,
                "-m",
                "aurora_sync_ops.local.snowflake.server",
                "--host",
                self.settings.host,
                "--port",
                str(self.settings.ports.snowflake),
                "--db-path",
                str(self.db_path),
                "--aws-endpoint",
                self.settings.aws_endpoint,
            ],
            env=self.settings.admin_aws_env(),
        )

    def is_ready(self) -> bool:
        return http_ok(f"http://{self.settings.host}:{self.settings.ports.snowflake}/emulator/health")

    def seed(self, facts: dict[str, Any]) -> None:
        """The database ``describe()`` names must exist, or the connector's login fails."""
        import snowflake.connector

        kwargs = self.describe()
        bootstrap = {k: v for k, v in kwargs.items() if k not in ("database", "schema")}
        with snowflake.connector.connect(**bootstrap) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {DATABASE}.{SCHEMA}")

    def describe(self) -> dict[str, Any]:
        """Keyword arguments for ``snowflake.connector.connect(**kw)``; nothing else."""
        return {
            "account": ACCOUNT,
            "user": USER,
            "password": PASSWORD,
            "host": self.settings.host,
            "port": self.settings.ports.snowflake,
            "protocol": "http",
            "database": DATABASE,
            "schema": SCHEMA,
            "warehouse": WAREHOUSE,
            "role": ROLE,
            # The connector would otherwise post telemetry to this server, which has no such route.
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        }
