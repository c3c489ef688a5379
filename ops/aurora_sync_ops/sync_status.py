"""``aurora-sync status``: per table the watermark and freshness lag, and the last executions.

The watermark is where the next window starts, from the newest run that reached FINAL (three
statements whatever the table count, as the planner reads it): what really arrived, not what a run claimed.
In mode xmin it is a transaction id; mode full has none. ``reconciles_next`` says whether the next
run exports the keys and removes the rows the source deleted (``hard_deletes: reconcile``).
Freshness lag is now minus the source time of the snapshot FINAL matches. Executions come from Step Functions,
newest first, each read back through its history (``workflow.history.collect``) so a table's last
outcome is what the verifier reported for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from aurora_sync.config import InvalidTable, LoadedTable, TableConfigResult
from aurora_sync.planning.plan import watermark_text
from aurora_sync.planning.watermarks import read_watermarks

from .inspect_targets import StateMachine, WarehouseNames, sfn_call


@dataclass
class Execution:
    name: str
    arn: str
    status: str
    started: str
    stopped: str | None
    tables: dict[str, str] = field(default_factory=dict)  # table -> outcome in this execution
    # table -> (source columns its config leaves out, the statements adding them) in this execution
    drift: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "execution_arn": self.arn,
            "status": self.status,
            "started": self.started,
            "stopped": self.stopped,
            "tables": self.tables,
        }


@dataclass
class TableStatus:
    table: str
    enabled: bool | None
    mode: str | None = None  # cursor, xmin or full; "+deletes" when hard deletes are reconciled
    reconciles_next: bool = False  # the next run exports the keys and removes deleted rows
    watermark: str | None = None
    freshness_lag_seconds: float | None = None
    synced: bool = False  # FINAL holds rows
    error: str | None = None
    last_outcome: str | None = None
    last_execution: str | None = None
    last_started: str | None = None
    # Schema drift the last execution's export saw: source columns the config's ``columns`` leave
    # out, and the statements that add them to STAGING and FINAL.
    new_columns: list[str] = field(default_factory=list)
    drift_statements: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: Any) -> str | None:
    return value.isoformat(timespec="milliseconds") if isinstance(value, datetime) else None


def recent_executions(machine: StateMachine, limit: int) -> list[Execution]:
    """The last ``limit`` executions, newest first, with each table's outcome."""
    from .workflow.executions import describe, history, results
    from .workflow.target import Target

    page = sfn_call(
        "states:ListExecutions",
        machine.where,
        lambda: machine.sfn.list_executions(stateMachineArn=machine.arn, maxResults=limit),
    )
    listed = sorted(page.get("executions", []), key=lambda e: e["startDate"], reverse=True)[:limit]
    executions = []
    for item in listed:
        target = Target(
            sfn=machine.sfn, state_machine_arn=machine.arn, where=machine.where, poll_s=0, s3=machine.s3
        )
        description = describe(target, item["executionArn"])
        result = results(target, description, history(target, item["executionArn"]))
        executions.append(
            Execution(
                name=str(item["name"]),
                arn=str(item["executionArn"]),
                status=str(item["status"]),
                started=_iso(item["startDate"]) or "",
                stopped=_iso(item.get("stopDate")),
                tables={t.table: t.outcome for t in result.tables},
                drift={t.table: (t.new_columns, t.drift_statements) for t in result.tables if t.new_columns},
            )
        )
    return executions


def table_status(
    configs: Sequence[TableConfigResult],
    *,
    warehouse: Any,
    names: WarehouseNames,
    executions: Sequence[Execution],
    now: datetime | None = None,
) -> list[TableStatus]:
    now = now or datetime.now(UTC)
    valid = [c for c in configs if isinstance(c, LoadedTable)]
    watermarks = read_watermarks(
        warehouse,
        valid,
        staging_schema=names.staging_schema,
        final_schema=names.final_schema,
        database=names.database,
    )
    rows = []
    for config in configs:
        if isinstance(config, InvalidTable):
            rows.append(TableStatus(config.name, None, error=config.message))
            continue
        deletes = " +deletes" if config.config.hard_deletes == "reconcile" else ""
        row = TableStatus(config.name, config.config.enabled, mode=config.config.mode + deletes)
        state = watermarks[config.name]
        row.reconciles_next = state.error is None and state.reconcile
        if state.error is not None:
            row.error = str(state.error)
        elif state.source_time is not None:
            # FINAL matches the source as of the newest merged run's snapshot: that is its age.
            row.synced = True
            row.watermark = watermark_text(state.value) if state.value is not None else None
            row.freshness_lag_seconds = round(max(0.0, (now - state.source_time).total_seconds()), 3)
        for execution in executions:  # newest first
            if config.name in execution.tables:
                row.last_outcome = execution.tables[config.name]
                row.last_execution, row.last_started = execution.name, execution.started
                row.new_columns, row.drift_statements = execution.drift.get(config.name, ([], []))
                break
        rows.append(row)
    return sorted(rows, key=lambda r: r.table)
