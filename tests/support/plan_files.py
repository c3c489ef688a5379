"""The plan's lists as the planner wrote them to the run's files: the Plan state's output names
them by key and count only (issue 15), so a test reads them from S3 as the CLI does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aurora_sync.exporting.rounds import read_items, read_plan_failed
from aurora_sync.run_files import RunFiles


def planned_items(s3: Any, output: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Round 0's work items in plan order, as JSON with defaults left out (the manifest's form)."""
    if output["manifest"] is None:
        return []
    items = read_items(RunFiles(s3, output["bucket"]), output["manifest"])
    return [item.model_dump(mode="json", by_alias=True, exclude_defaults=True) for item in items]


def plan_failed(s3: Any, output: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The tables that failed in the plan, as JSON ``{"table", "error", "cause"}``."""
    if output["failed"] == 0:
        return []
    failed = read_plan_failed(RunFiles(s3, output["bucket"]), output["run_id"], output["failed"])
    return [entry.model_dump(mode="json") for entry in failed]
