"""The verifier's vocabulary beside the state contract (``aurora_sync.messages``): the error names
of per-table outcomes, the limits and schemas it works with, and ``summarize``, which builds the
Report state's cause and rerun input once every table is decided. The decisions themselves are in
``aurora_sync.verifying.decide`` (pure rules) and run against Snowflake in
``aurora_sync.verifying.act``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..messages import FailedTable, RunSummary, TableVerdict
from ..naming import SnowflakeObjects

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


# Statements on one table's objects (ALTER PIPE ... REFRESH, a key snapshot's reconciliation)
# one verifier call issues at most; the tables beyond wait for the next call of the Wait/Verify
# loop. Each is a round trip (a reconciliation a few), so this caps a call's work whatever the
# run's table count: 401 tables in one call outlasted the verifier's 180 s timeout (issue 15).
# Reads about every table are one statement each anyway. 100 round trips of ~0.2 s fit the
# timeout many times over.
TABLE_ACTIONS_PER_CALL = 100

# MERGE tasks one verifier call requests for the first time, all in one CALL of the setup's
# procedure (EXECUTE TASK takes one task, so the procedure runs one after another inside
# Snowflake, without a round trip each). The cap keeps that one statement well inside the
# verifier's timeout; a run of 2,000 tables requests its merges in 4 calls instead of 2,000
# statements over 20 calls.
MERGES_PER_CALL = 500


@dataclass(frozen=True)
class Limits:
    refresh_after: timedelta
    load_timeout: timedelta
    merge_timeout: timedelta
    table_actions: int = TABLE_ACTIONS_PER_CALL
    merges_per_call: int = MERGES_PER_CALL


@dataclass(frozen=True)
class Schemas:
    database: str
    staging: str
    final: str

    def objects(self, target: str) -> SnowflakeObjects:
        return SnowflakeObjects(self.database, self.staging, self.final, target)


def summarize(verdicts: list[TableVerdict], plan_failed: list[FailedTable]) -> RunSummary:
    """The Report state's cause: each failed table with its error, and the rerun input.

    Reasons are shortened so the cause stays far below Step Functions' 32,768-character limit
    whatever the number of failed tables (the full reasons stay in the output and the logs).
    """
    failed = list(plan_failed)
    failed += [
        FailedTable(table=v.table, error=v.error or "Failed", cause=v.reason or "")
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
    parts = [f"{f.table} ({f.error}: {_shorten(f.cause, budget)})" for f in failed]
    cause = (
        f"{len(failed)} table(s) failed: " + "; ".join(parts) + ". After fixing, rerun only them with the "
        f"execution input {json.dumps(rerun)}."  # the state machine adds the command naming the execution
        if failed
        else ""
    )
    return RunSummary(failed_count=len(failed), failed=failed, rerun_input=rerun, cause=cause)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
