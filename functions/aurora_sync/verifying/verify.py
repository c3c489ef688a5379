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

# Tables whose load history (COPY_HISTORY) one verifier call reads. The table function takes one
# table, so the one statement that reads them all is one table function per table, and its work
# grows with the run: 2,000 tables in one statement did not answer within the connector's 60 s
# (issue 15). Past the cap, the tables unread longest are read first, so every
# pending table is read at least once every ceil(pending / cap) calls.
LOADS_PER_CALL = 500


@dataclass(frozen=True)
class Limits:
    refresh_after: timedelta
    load_timeout: timedelta
    merge_timeout: timedelta
    table_actions: int = TABLE_ACTIONS_PER_CALL
    merges_per_call: int = MERGES_PER_CALL
    loads_per_call: int = LOADS_PER_CALL


@dataclass(frozen=True)
class Schemas:
    database: str
    staging: str
    final: str

    def objects(self, target: str) -> SnowflakeObjects:
        return SnowflakeObjects(self.database, self.staging, self.final, target)


# Step Functions keeps an execution's cause to 32,768 characters (API reference,
# ExecutionFailedEventDetails); over it the TablesFailed state cannot fail the execution with it.
# The summary's cause stays within these parts, whatever the number of failed tables:
NAMED_FAILURES_CHARS = 16_000  # the failed tables named, each with its error and reason
RERUN_INPUT_INLINE_CHARS = 8_000  # a longer rerun input is named by its file (rerun.json)
MIN_REASON_CHARS = 80
# The cause's own words, the "and K more" and two s3:// URIs (bucket 63 + key < 120 each) stay
# under 1,000; the TablesFailed state adds about 400 with the execution's ARN. The total stays
# under 16,000 + 8,000 + 1,000 + 400: far below the limit (tests/unit/test_verify_summary.py).
MAX_SUMMARY_CAUSE_CHARS = NAMED_FAILURES_CHARS + RERUN_INPUT_INLINE_CHARS + 1_000


def summarize(
    verdicts: list[TableVerdict],
    plan_failed: list[FailedTable],
    *,
    report: str = "the run's verify.json",
    rerun_file: str = "the run's rerun.json",
) -> RunSummary:
    """The Report state's cause: the failed tables with their errors, and the rerun input.

    The summary lists every failed table and the whole rerun input; its cause names as many
    failed tables as fit ``NAMED_FAILURES_CHARS`` (then "and K more", pointing at ``report``) and
    quotes the rerun input when it fits ``RERUN_INPUT_INLINE_CHARS``, else names ``rerun_file``,
    which the caller writes (``RunSummary.rerun_file`` says so). Reasons are shortened; the full
    ones stay in the report and the logs.
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
    if not failed:
        return RunSummary(failed_count=0, failed=[], rerun_input=rerun, cause="")
    rerun_text = json.dumps(rerun)
    inline = len(rerun_text) <= RERUN_INPUT_INLINE_CHARS
    named = _named(failed, NAMED_FAILURES_CHARS)
    more = len(failed) - len(named)
    cause = (
        f"{len(failed)} table(s) failed: "
        + "; ".join(named)
        + (f"; and {more} more (every failed table with its error: {report})" if more else "")
        + ". After fixing, rerun only them with the execution input "
        # The state machine adds the command naming the execution.
        + (f"{rerun_text}." if inline else f"in {rerun_file} (too long to quote here).")
    )
    return RunSummary(
        failed_count=len(failed),
        failed=failed,
        rerun_input=rerun,
        cause=cause,
        rerun_file=None if inline else rerun_file,
    )


def _named(failed: list[FailedTable], budget: int) -> list[str]:
    """``table (error: reason)`` for the first failed tables whose text fits ``budget``."""
    # Room for the table's name and the error's (shortened to 300 and 120) beside the reason.
    reason = max(MIN_REASON_CHARS, budget // max(1, len(failed)) - 450)
    parts: list[str] = []
    used = 0
    for f in failed:
        part = f"{_shorten(f.table, 300)} ({_shorten(f.error, 120)}: {_shorten(f.cause, reason)})"
        used += len(part) + 2
        if used > budget:
            break
        parts.append(part)
    return parts


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
