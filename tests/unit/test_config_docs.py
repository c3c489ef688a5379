"""docs/configuration.md is generated from the model; a change to the model must regenerate it."""

from __future__ import annotations

from pathlib import Path

from aurora_sync.config import TableConfig
from aurora_sync_ops.config_docs import EXAMPLE, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_committed_reference_matches_the_model() -> None:
    assert DOC.read_text() == render(), (
        "docs/configuration.md is stale: run `python -m aurora_sync_ops.config_docs > docs/configuration.md`"
    )


def test_every_field_is_documented_and_the_example_validates() -> None:
    text = render()
    for name, field in TableConfig.model_fields.items():
        assert f"| `{field.alias or name}` |" in text
        assert field.description, f"{name} needs a description"
    TableConfig.model_validate(EXAMPLE)
