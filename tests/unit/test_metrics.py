"""Each metric from one place, none per table, and the stalest-age rules behind the freshness alarm.

A metric name emitted by two functions is two series under one name (``RowsExported`` was the
exporter's running total per chunk and the verifier's per attempt), and a ``table`` dimension
makes one billed metric per table ($0.30 a month each). The scan reads every ``add_metric`` call
in the functions' code, so a new emission that breaks either rule fails here.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aurora_sync.config import LoadedTable, TableConfig
from aurora_sync.messages import FailedTable, TableVerdict
from aurora_sync.table_freshness import NOT_IN_RUN, PLAN_FAILED, run_tables, stalest, table_ages

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def calls(attribute: str) -> list[tuple[str, ast.Call]]:
    found = []
    for path in sorted(FUNCTIONS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == attribute
            ):
                found.append((f"{path.relative_to(FUNCTIONS)}:{node.lineno}", node))
    return found


def metric_places() -> dict[str, list[str]]:
    places: dict[str, list[str]] = defaultdict(list)
    for where, call in calls("add_metric"):
        (name,) = [k.value for k in call.keywords if k.arg == "name"]
        assert isinstance(name, ast.Constant) and isinstance(name.value, str), (
            f"{where}: a metric name must be a literal, to be checked here"
        )
        places[name.value].append(where)
    # Powertools' cold-start metric is emitted where log_metrics asks for it.
    for where, call in calls("log_metrics"):
        if any(k.arg == "capture_cold_start_metric" for k in call.keywords):
            places["ColdStart"].append(where)
    return places


def test_every_metric_name_is_emitted_from_exactly_one_place() -> None:
    places = metric_places()
    assert {name: where for name, where in places.items() if len(where) != 1} == {}
    assert set(places) == {
        "TablesPlanned",
        "TablesSkipped",
        "RunsSkipped",
        "ColdStart",
        "ExportWarnings",
        "TablesFailed",
        "RowsExported",
        "RowsLoaded",
        "RowsChanged",
        "RowsUnchanged",
        "LoadErrors",
        "StalestTableAgeSeconds",
    }
    assert places["TablesFailed"][0].startswith("verifier/") and places["RowsExported"][0].startswith(
        "verifier/"
    )


def test_no_metric_has_a_per_table_dimension() -> None:
    """Every metric keeps Powertools' one default dimension (service): a fixed count per stack."""
    assert [where for where, _ in calls("add_dimension")] == []


def loaded(name: str, *, enabled: bool = True, target: str | None = None) -> LoadedTable:
    document = {"table": name, "primary_key": ["id"], "enabled": enabled, "target": target}
    return LoadedTable(name, f"/t/{name}", TableConfig.model_validate(document))


def verdict(name: str, outcome: str, synced_ago: float | None = None) -> TableVerdict:
    source_time = None if synced_ago is None else (NOW - timedelta(seconds=synced_ago)).isoformat()
    return TableVerdict(table=name, target=name.upper(), outcome=outcome, source_time=source_time)


def test_the_stalest_age_covers_failed_unplanned_and_absent_tables_but_not_disabled_ones() -> None:
    configs = {
        "orders": loaded("orders"),
        "items": loaded("items"),
        "audit": loaded("audit", target="AUDIT_LOG"),  # enabled, not in this rerun
        "old": loaded("old", enabled=False),
        "fresh_table": loaded("fresh_table"),
    }
    entries = run_tables(
        [verdict("orders", "MERGED", 60), verdict("items", "FAILED")],
        [FailedTable(table="fresh_table", error="ConfigError", cause="bad")],
        configs,
    )
    assert [(e.table, e.target, e.outcome) for e in entries] == [
        ("orders", "ORDERS", "MERGED"),
        ("items", "ITEMS", "FAILED"),
        ("fresh_table", "FRESH_TABLE", PLAN_FAILED),
        ("audit", "AUDIT_LOG", NOT_IN_RUN),
    ]
    ledger = {
        "ORDERS": NOW - timedelta(hours=1),  # older than this run's snapshot, which wins
        "ITEMS": NOW - timedelta(hours=5),
        "AUDIT_LOG": NOW - timedelta(hours=2),
        # FRESH_TABLE never merged: no age
    }
    ages = {a.entry.table: a.age_seconds for a in table_ages(entries, ledger, now=NOW)}
    assert ages == {"orders": 60.0, "items": 5 * 3600.0, "audit": 2 * 3600.0, "fresh_table": None}
    oldest = stalest(table_ages(entries, ledger, now=NOW))
    assert oldest is not None and oldest.entry.table == "items"
    assert oldest.log_fields()["age_seconds"] == 5 * 3600.0 and oldest.log_fields()["outcome"] == "FAILED"


def test_no_table_ever_merged_has_no_stalest_age() -> None:
    entries = run_tables([verdict("orders", "FAILED")], [], {})
    assert stalest(table_ages(entries, {}, now=NOW)) is None
