"""The planned layout and work item of a test ``orders`` table, for the pure layout tests and for
the exporter's run against the local stack (one definition, so both check the same item)."""

from __future__ import annotations

from typing import Any

from aurora_sync.export_query import build_plan
from aurora_sync.layout import LayoutColumn, fingerprint, layout_of
from aurora_sync.messages import WorkItem
from aurora_sync.source_catalog import SourceColumn


def layout(catalog: list[SourceColumn], columns: list[str] | None = None) -> list[LayoutColumn]:
    plan = build_plan(
        catalog,
        schema="public",
        table="orders",
        name="orders",
        configured_columns=columns,
        cursor="updated_at",
        primary_key=["id"],
    )
    return layout_of(plan.columns, plan.mappings, table="orders")


def planned_item(catalog: list[SourceColumn], **fields: Any) -> WorkItem:
    document = {
        "run_id": "run",
        "table": "orders",
        "source": {"schema": "public", "table": "orders"},
        "primary_key": ["id"],
        "cursor": "updated_at",
        "layout": fingerprint(layout(catalog)),
        **fields,
    }
    return WorkItem.model_validate(document)
