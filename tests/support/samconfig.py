"""``samconfig.toml`` as SAM reads it, for tests that check each environment's parameters."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any


def overrides(environment: Mapping[str, Any]) -> dict[str, str]:
    """``parameter_overrides`` as SAM reads it: a list of ``Key=Value`` or one spaced string."""
    raw = environment.get("deploy", {}).get("parameters", {}).get("parameter_overrides", [])
    items = shlex.split(raw) if isinstance(raw, str) else list(raw)
    return dict(item.split("=", 1) for item in items)
