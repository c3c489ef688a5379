"""The template parameters each place deploys with: ``samconfig.toml``'s environments as SAM reads
them, and the local engine's, for tests that check every one of them."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any


def overrides(environment: Mapping[str, Any]) -> dict[str, str]:
    """``parameter_overrides`` as SAM reads it: a list of ``Key=Value`` or one spaced string."""
    raw = environment.get("deploy", {}).get("parameters", {}).get("parameter_overrides", [])
    items = shlex.split(raw) if isinstance(raw, str) else list(raw)
    return dict(item.split("=", 1) for item in items)


def local_engine_parameters() -> dict[str, Any]:
    """The parameters the local engine deploys with, built as `aurora-sync sync` and the demo build
    it (no server is contacted)."""
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
