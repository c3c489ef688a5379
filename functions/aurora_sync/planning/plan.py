"""What one run does: which tables, from which cursor value, and whether to run at all.

Pure logic, no I/O: the planner handler feeds it the execution input, the table configs from
SSM, the watermarks read from FINAL and the running executions, and ships what it returns.

Windows, per table (first match wins):
  * rerun override ``full_resync``      -> every row (``source="full"``);
  * rerun override ``since``            -> ``cursor > since`` exactly (``source="since"``, no lookback:
                                           the operator chose the boundary);
  * FINAL has rows                      -> ``cursor > MAX(cursor) - lookback`` (``source="final"``);
  * FINAL empty, ``initial_watermark``  -> ``cursor > initial_watermark - lookback``;
  * FINAL empty                         -> every row (``source="full"``).
The lookback is a number of seconds, meaningful for timestamp and date cursors only: an integer
cursor (a version or sequence number) has no "seconds" to step back, so its windows carry
``lookback_seconds=0``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from ..config import InvalidTable, LoadedTable, TableConfigResult, select_tables
from ..errors import ConfigError
from ..messages import (
    ExecutionContext,
    ExportWindow,
    FailedTable,
    PlannerEvent,
    PlanOutput,
    RerunInput,
    SourceTable,
    TableOverride,
    WorkItem,
    read_message,
)

# Snowflake DATA_TYPE values (INFORMATION_SCHEMA.COLUMNS) of cursors without a time scale.
NUMERIC_CURSOR_TYPES = frozenset({"NUMBER", "DECIMAL", "NUMERIC", "INT", "INTEGER", "BIGINT", "FLOAT"})

_INPUT = "execution input"
_SCHEDULE_SOURCE = "aws.events"
_SCHEDULE_DETAIL_TYPE = "Scheduled Event"
_RERUN_EXAMPLE = '{"tables": ["orders"], "overrides": {"orders": {"since": "2024-01-01T00:00:00+00:00"}}}'


# --- execution input ------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRequest:
    """What the execution input asks for; ``tables`` None means every enabled table."""

    tables: tuple[str, ...] | None = None
    overrides: Mapping[str, TableOverride] = field(default_factory=dict)

    @property
    def is_rerun(self) -> bool:
        return self.tables is not None or bool(self.overrides)


def parse_event(event: Any) -> tuple[RunRequest, ExecutionContext | None]:
    """Validate the Plan state's payload; every problem is a ``ConfigError`` naming the key."""
    if not isinstance(event, Mapping):
        raise ConfigError(
            f"planner event must be a JSON object, got {type(event).__name__}.",
            fix='invoke it as {"input": <execution input>, "execution": <$$.Execution fields>}',
        )
    parsed = read_message(
        PlannerEvent,
        event,
        where="planner event",
        fix='the Plan state must pass {"input": "$", "execution": {"id", "name", "start_time", '
        '"state_machine_arn"}} (see statemachine/); check the event file given to sam local invoke',
    )
    return parse_input(parsed.input), parsed.execution


def parse_input(document: Mapping[str, Any]) -> RunRequest:
    """``{}`` or an EventBridge schedule -> every enabled table; anything else must be a rerun."""
    if not document:
        return RunRequest()
    if document.get("source") == _SCHEDULE_SOURCE:
        if document.get("detail-type") == _SCHEDULE_DETAIL_TYPE:
            return RunRequest()
        raise ConfigError(
            f"{_INPUT}: EventBridge event of detail-type {json.dumps(document.get('detail-type'))} "
            "is not a schedule.",
            fix="target the state machine from a schedule rule (detail-type 'Scheduled Event') only",
        )
    rerun = read_message(
        RerunInput,
        dict(document),
        where=_INPUT,
        fix=f"use {{}} for every enabled table, or a rerun such as {_RERUN_EXAMPLE} "
        "(keys: tables, overrides; per table: since or full_resync)",
    )
    return RunRequest(
        tables=tuple(rerun.tables) if rerun.tables is not None else None, overrides=dict(rerun.overrides)
    )


# --- which tables ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Selection:
    tables: list[LoadedTable]  # to plan, sorted by name
    failed: list[FailedTable]  # invalid configs that are part of the run
    disabled: list[str]  # left out of a scheduled run by enabled=false


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(json.dumps(n) for n in names) or "(none)"


def select_run(configs: Sequence[TableConfigResult], request: RunRequest) -> Selection:
    """The tables of this run. Naming a disabled or unknown table, or overriding a table that is
    not part of the run, is a ``ConfigError`` for the whole input: a typo in a rerun must not
    quietly run something else."""
    known = [c.name for c in configs]
    chosen = select_tables(configs, list(request.tables) if request.tables is not None else None)
    if request.tables is not None:
        disabled_named = [c for c in chosen if isinstance(c, LoadedTable) and not c.config.enabled]
        if disabled_named:
            raise ConfigError(
                f"{_INPUT}: 'tables' names disabled table(s) {_quoted(t.name for t in disabled_named)} "
                f'({", ".join(t.parameter for t in disabled_named)}: "enabled": false).',
                fix="set enabled to true in the table's parameter, or remove it from 'tables'",
            )
    in_run = [c for c in chosen if isinstance(c, InvalidTable) or c.config.enabled]
    run_names = {c.name for c in in_run}
    stray = [name for name in request.overrides if name not in run_names]
    if stray:
        unknown = [n for n in stray if n not in known]
        outside = [n for n in stray if n in known]
        problems = []
        if unknown:
            problems.append(f"unknown table(s) {_quoted(unknown)} (known tables: {_quoted(known)})")
        if outside:
            problems.append(f"table(s) {_quoted(outside)} that are not part of this run")
        raise ConfigError(
            f"{_INPUT}: 'overrides' names {' and '.join(problems)}; "
            f"this run covers {_quoted(sorted(run_names))}.",
            fix="override only tables listed in 'tables' (or, without 'tables', enabled tables)",
        )
    by_name = {c.name: c for c in in_run if isinstance(c, LoadedTable)}
    cursorless = [
        name
        for name, override in request.overrides.items()
        if override.since is not None and name in by_name and by_name[name].config.mode != "cursor"
    ]
    if cursorless:
        raise ConfigError(
            f"{_INPUT}: 'overrides' gives 'since' for table(s) {_quoted(cursorless)} of mode "
            f"{_quoted(sorted({by_name[n].config.mode for n in cursorless}))}, which have no cursor to "
            "start from.",
            fix='use {"full_resync": true} for them instead',
        )
    return Selection(
        tables=[c for c in in_run if isinstance(c, LoadedTable)],
        failed=[FailedTable.of(c.name, c.error()) for c in in_run if isinstance(c, InvalidTable)],
        disabled=[c.name for c in chosen if isinstance(c, LoadedTable) and not c.config.enabled],
    )


# --- windows --------------------------------------------------------------------------------
CursorValue = datetime | date | int | Decimal | float | str


def watermark_text(value: CursorValue) -> str:
    """The text the exporter casts back to the cursor's type, losing nothing.

    Timestamps keep all six fractional digits (even .000000) and their offset, so a TIMESTAMP_TZ
    watermark names one instant whatever the exporter session's time zone.
    """
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    return value


def _is_numeric(value: object) -> bool:
    return isinstance(value, int | Decimal | float) and not isinstance(value, bool)


def choose_window(
    table: LoadedTable,
    *,
    watermark: CursorValue | None,
    cursor_type: str | None = None,
    override: TableOverride | None = None,
) -> ExportWindow:
    """The export window of one table (rules in the module docstring).

    ``watermark`` is MAX(cursor) in FINAL, None when FINAL is empty; ``cursor_type`` is the FINAL
    cursor column's Snowflake DATA_TYPE when known.
    """
    config = table.config
    if override is not None and override.full_resync:
        return ExportWindow(watermark=None, lookback_seconds=0, source="full")
    if config.mode == "full":
        return ExportWindow(watermark=None, lookback_seconds=0, source="full")
    if config.mode == "xmin":
        # A transaction id from the ledger: no lookback (ids are not seconds), no initial value.
        if watermark is None:
            return ExportWindow(watermark=None, lookback_seconds=0, source="full")
        return ExportWindow(watermark=watermark_text(watermark), lookback_seconds=0, source="final")
    if override is not None and override.since is not None:
        return ExportWindow(watermark=watermark_text(override.since), lookback_seconds=0, source="since")
    start: CursorValue | None = watermark
    source: Literal["final", "initial_watermark"] = "final"
    if start is None and config.initial_watermark is not None:
        start, source = config.initial_watermark, "initial_watermark"
    if start is None:
        return ExportWindow(watermark=None, lookback_seconds=0, source="full")
    numeric = _is_numeric(start) or (cursor_type or "").upper() in NUMERIC_CURSOR_TYPES
    lookback = 0 if numeric else config.lookback_seconds
    return ExportWindow(watermark=watermark_text(start), lookback_seconds=lookback, source=source)


def work_item(
    run_id: str,
    table: LoadedTable,
    window: ExportWindow,
    *,
    layout: str | None = None,
    reconcile: bool = False,
) -> WorkItem:
    """``reconcile``: this run also exports the table's keys (``hard_deletes`` "reconcile" on a
    scheduled run); a table of mode full always does."""
    config = table.config
    return WorkItem(
        run_id=run_id,
        table=table.name,
        source=SourceTable(schema_name=config.schema_name, table=config.table),
        target=config.target,
        primary_key=list(config.primary_key),
        mode=config.mode,
        reconcile=reconcile or config.mode == "full",
        cursor=config.cursor,
        columns=list(config.columns) if config.columns is not None else None,
        max_rows_per_chunk=config.max_rows_per_chunk,
        window=window,
        layout=layout,
    )


# --- single flight --------------------------------------------------------------------------
@dataclass(frozen=True)
class RunningExecution:
    arn: str
    name: str
    start_time: datetime


def earlier_execution(own: ExecutionContext, running: Iterable[RunningExecution]) -> RunningExecution | None:
    """The earliest RUNNING execution that started before ``own``; None when ``own`` goes first.

    Order is (start time, name): two executions started in the same millisecond still agree on
    which one runs, because each sees the other and compares the same pair. ``own`` is never its
    own blocker, whatever start time ListExecutions reports for it.
    """
    mine = (own.start_time, own.name)
    earlier = [e for e in running if e.arn != own.id and (e.start_time, e.name) < mine]
    return min(earlier, key=lambda e: (e.start_time, e.name), default=None)


# --- the plan -------------------------------------------------------------------------------
@dataclass
class Plan:
    """The plan while the planner builds it; ``output`` turns it into the Plan state's result.
    ``items`` and ``failed`` stay here: the planner writes them to the run's files, and the
    output carries their counts and keys (``manifest``, ``failed_file``, set once written)."""

    run_id: str
    started_at: str
    items: list[WorkItem] = field(default_factory=list)
    failed: list[FailedTable] = field(default_factory=list)
    skip_reason: str | None = None
    bucket: str | None = None  # the data lake bucket of the run's files
    manifest: str | None = None  # round 0's manifest key (``exporting.rounds``)
    failed_file: str | None = None  # the key of the tables failed in the plan

    @property
    def skip(self) -> bool:
        return self.skip_reason is not None

    def output(self) -> dict[str, Any]:
        """The Plan state's result (``messages.PlanOutput``): counts and keys, no list, so its
        size does not depend on the number of tables."""
        return PlanOutput(
            run_id=self.run_id,
            started_at=self.started_at,
            skip=self.skip,
            skip_reason=self.skip_reason,
            tables_planned=len({item.table for item in self.items}),
            work_items=len(self.items),
            failed=len(self.failed),
            manifest=self.manifest,
            failed_file=self.failed_file,
            bucket=self.bucket,
        ).model_dump(mode="json", by_alias=True)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
