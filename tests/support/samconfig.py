"""The template parameters each place deploys with: ``samconfig.toml``'s environments as
``sam deploy --config-env <name>`` reads them, and the local engine's, for tests that check every
one of them."""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SAMCONFIG = Path(__file__).resolve().parents[2] / "samconfig.toml"


def environments() -> dict[str, Any]:
    """Every environment of samconfig.toml by name (``version`` is not one)."""
    config = tomllib.loads(SAMCONFIG.read_text())
    return {name: value for name, value in config.items() if name != "version"}


def overrides(environment: Mapping[str, Any]) -> dict[str, str]:
    """``parameter_overrides`` as SAM reads it: a list of ``Key=Value`` or one spaced string."""
    raw = environment.get("deploy", {}).get("parameters", {}).get("parameter_overrides", [])
    items = shlex.split(raw) if isinstance(raw, str) else list(raw)
    return dict(item.split("=", 1) for item in items)


def local_engine_parameters() -> dict[str, Any]:
    """The parameters the local engine deploys with, built as `aurora-sync sync` and the demo build
    them (no server is contacted)."""
    from aurora_sync_ops.local.engine import LocalEngine

    status = {
        "aws": {
            "access_key_id": "x",
            "secret_access_key": "x",
            "region": "us-east-1",
            "endpoint_url": "http://127.0.0.1:9",
            "config_ssm_path": "/aurora-sync/tables/",
        }
    }
    return dict(LocalEngine(status).parameters)
