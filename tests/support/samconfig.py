"""samconfig.toml as ``sam deploy --config-env <name>`` reads it, for tests that check what each
environment deploys."""

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
