"""The state machine definition as SAM deploys it, for tests that read it without a server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFINITION = Path(__file__).resolve().parents[2] / "statemachine" / "sync.asl.json"


def definition() -> dict[str, Any]:
    # Numeric DefinitionSubstitutions are unquoted in the file (SAM substitutes text).
    text = re.sub(
        r"\$\{(MaxConcurrency|ExportChildSeconds|VerifyWaitSeconds|VerifyMaxAttempts|"
        r"RunTimeoutSeconds)\}",
        "1",
        DEFINITION.read_text(),
    )
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def states(machine: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, the Map's iterations' included."""
    for name, state in machine["States"].items():
        yield name, state
        if state["Type"] == "Map":
            yield from states(state["ItemProcessor"])
