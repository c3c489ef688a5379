"""The verifier's messages: its request and output, each table's verdict, the run summary.

``parse_request`` reads the Verify state's input; ``summarize`` builds the Report state's cause
and rerun input once every table is decided. The decisions themselves are in
``aurora_sync.verifying.decide`` (pure rules) and run against Snowflake in
``aurora_sync.verifying.act``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError
from ..naming import SnowflakeObjects
from ..work import MAX_NEW_COLUMNS, ExportResult, NewColumn

Outcome = Literal["MERGED", "NOTHING_TO_DO", "PENDING", "FAILED"]
FINAL_OUTCOMES = frozenset({"MERGED", "NOTHING_TO_DO", "FAILED"})

# Error names of per-table outcomes (the "error" field). They are not raised: the Report state
# reads them from the output. The export's own error keeps the exporter's class name.
LOAD_FAILED = "LoadFailed"
LOAD_COUNT_MISMATCH = "LoadCountMismatch"
LOAD_TIMEOUT = "LoadTimeout"
MERGE_FAILED = "MergeFailed"
MERGE_TIMEOUT = "MergeTimeout"
EXPORT_INCOMPLETE = "ExportIncomplete"
ROWS_QUARANTINED = "RowsQuarantined"
UNACCOUNTED_FILE = "UnaccountedFile"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExportError(_Model):
    error: str = Field(alias="Error")
    cause: str | None = Field(None, alias="Cause")


class FailedExport(_Model):
    table: str
    status: Literal["FAILED"]
    error: ExportError
    run_id: str | None = None
    target: str | None = None

    @property
    def message(self) -> str:
        """The exception's message: a Lambda failure's Cause is Lambda's JSON error document
        (message plus stack trace); only the message belongs in reports."""
        cause = self.error.cause or "export failed"
        try:
            document = json.loads(cause)
        except ValueError:
            return cause
        return str(document.get("errorMessage") or cause) if isinstance(document, dict) else cause


class TableVerdict(_Model):
    table: str
    target: str
    outcome: Outcome
    error: str | None = None
    reason: str | None = None
    rows_exported: int = 0
    rows_loaded: int = 0
    # FINAL rows the MERGE inserted or rewrote with different values (counted by their sync time).
    rows_changed: int = 0
    # Loaded rows that changed nothing in FINAL: the lookback's re-reads of rows FINAL holds as
    # they are, older versions of a row superseded in the same run, soft-deleted rows removed.
    rows_unchanged: int = 0
    files: int = 0
    files_loaded: int = 0
    missing: list[str] = Field(default_factory=list)
    refreshed_at: str | None = None
    merge_query_id: str | None = None
    quarantined: int = 0
    # When the source snapshot behind FINAL was taken (the export's first chunk), and how old it
    # is: FINAL matches the source as of then, so the lag can never be negative or run ahead.
    source_time: str | None = None
    freshness_lag_seconds: float | None = None
    # Reconciling runs: the key snapshot's rows, and the FINAL rows removed because the source no
    # longer has their key (None: no key snapshot applied).
    key_rows: int | None = None
    rows_deleted: int | None = None
    # Schema drift the export saw (source columns the config's ``columns`` leave out).
    new_columns: list[NewColumn] = Field(default_factory=list, max_length=MAX_NEW_COLUMNS)


class PlanFailure(_Model):
    """A table the planner could not schedule (invalid config, missing FINAL table)."""

    table: str
    error: str
    cause: str


class FailedTable(_Model):
    table: str
    error: str
    reason: str


class RunSummary(_Model):
    """What the Report state needs: the failed tables and the input that reruns only them."""

    failed_count: int
    failed: list[FailedTable]
    rerun_input: dict[str, Any]
    cause: str


class VerifyOutput(_Model):
    run_id: str
    done: bool
    # When the verifier first checked this run: the load timeout counts from here, because the
    # exports of a big run can take longer than the timeout itself.
    verify_started_at: str
    tables: list[TableVerdict]
    pending: int
    failed: int
    summary: RunSummary | None = None  # set once done
    # Where the tables are (the session's database, the configured schemas), so a reader can
    # name them in statements (the CLI's schema-drift DDL) without a Snowflake session.
    database: str | None = None
    staging_schema: str | None = None
    final_schema: str | None = None


class VerifyRequest(_Model):
    run_id: str = Field(min_length=1)
    started_at: datetime
    attempt: int = 0
    tables: list[ExportResult | FailedExport]
    targets: dict[str, str] = Field(default_factory=dict)
    plan_failed: list[PlanFailure] = Field(default_factory=list)
    previous: VerifyOutput | None = None


@dataclass(frozen=True)
class Limits:
    refresh_after: timedelta
    load_timeout: timedelta
    merge_timeout: timedelta


@dataclass(frozen=True)
class Schemas:
    database: str
    staging: str
    final: str

    def objects(self, target: str) -> SnowflakeObjects:
        return SnowflakeObjects(self.database, self.staging, self.final, target)


def parse_request(event: Mapping[str, Any]) -> VerifyRequest:
    """The Verify state's input; ``target`` may ride on each table entry (the planner's item)."""
    if not isinstance(event, Mapping):
        raise ConfigError("verifier input is not a JSON object.", fix="pass the Verify state's input")
    entries = event.get("tables")
    targets: dict[str, str] = {}
    tables: Any = entries
    if isinstance(entries, list):
        tables = []
        for entry in entries:
            if isinstance(entry, Mapping) and isinstance(entry.get("table"), str) and entry.get("target"):
                targets[entry["table"]] = str(entry["target"])
            if isinstance(entry, Mapping) and entry.get("status") != "FAILED":
                # ExportResult forbids unknown keys; the target rides beside it.
                tables.append({k: v for k, v in entry.items() if k != "target"})
            else:
                tables.append(entry)
    try:
        return VerifyRequest.model_validate({**event, "tables": tables, "targets": targets})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise ConfigError(
            f"verifier input is invalid ({problems}).",
            fix="pass {run_id, started_at, attempt, tables: [export results], previous} "
            "from the state machine",
        ) from None


def summarize(verdicts: list[TableVerdict], plan_failed: list[PlanFailure]) -> RunSummary:
    """The Report state's cause: each failed table with its error, and the rerun input.

    Reasons are shortened so the cause stays far below Step Functions' 32,768-character limit
    whatever the number of failed tables (the full reasons stay in the output and the logs).
    """
    failed = [FailedTable(table=p.table, error=p.error, reason=p.cause) for p in plan_failed]
    failed += [
        FailedTable(table=v.table, error=v.error or "Failed", reason=v.reason or "")
        for v in verdicts
        if v.outcome == "FAILED"
    ]
    rerun: dict[str, Any] = {"tables": sorted({f.table for f in failed})}
    # A table missing rows that its window can never reach again is healed only by reading it
    # in full: the rerun input says so, so a console rerun does not fail the same way.
    whole = sorted({f.table for f in failed if f.error == "RowsMissing"})
    if whole:
        rerun["overrides"] = {name: {"full_resync": True} for name in whole}
    budget = max(80, 24_000 // max(1, len(failed)))
    parts = [f"{f.table} ({f.error}: {_shorten(f.reason, budget)})" for f in failed]
    cause = (
        f"{len(failed)} table(s) failed: " + "; ".join(parts) + ". After fixing, rerun only them with the "
        f"execution input {json.dumps(rerun)} (or `aurora-sync rerun <this execution's ARN>`)."
        if failed
        else ""
    )
    return RunSummary(failed_count=len(failed), failed=failed, rerun_input=rerun, cause=cause)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
