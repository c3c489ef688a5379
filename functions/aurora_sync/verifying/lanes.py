"""One entry per table from the Map's results: a table split into lanes is verified as one.

The Map returns one result per work item, so a table the planner split into key ranges
(``planning.lanes``) arrives as one ``ExportResult`` or ``FailedExport`` per lane. ``combine``
turns them into the single entry the verifier's rules expect, so the table is checked and merged
once, after every lane's files loaded:

- every lane exported: one ``ExportResult`` with the lanes' files, rows and chunks added up and
  the source snapshot of the lane that took the earliest one. Every row committed before that
  snapshot lies in some lane and was read by it, so the snapshot proves for the whole table what
  a single lane's first chunk proves for it; the next window starts from it (the watermark moves
  only once every lane reached FINAL, in this one MERGE);
- a lane failed (or is missing, or stopped with MORE): the table fails, naming the lane, and
  nothing of it is merged: its other lanes' files wait in STAGING unaccounted, exactly as the
  files of the earlier chunks of a failed single-lane export do. The rerun
  (``{"tables": [name]}``) plans and exports every lane again; re-exporting a row is idempotent
  (the MERGE keeps one version per key, ordered by snapshot).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..messages import ExportError, ExportResult, FailedExport

Entry = ExportResult | FailedExport
# The error name of a split table whose lanes did not all report (see ``verify``'s names).
LANES_INCOMPLETE = "ExportIncomplete"


def combine(entries: Sequence[Entry]) -> list[Entry]:
    """One entry per table, in the order tables first appear; unsplit tables pass unchanged."""
    by_table: dict[str, list[Entry]] = {}
    for entry in entries:
        by_table.setdefault(entry.table, []).append(entry)
    return [_one(group) for group in by_table.values()]


def _rerun(table: str) -> str:
    return f'rerun the table, which exports every lane again: {{"tables": ["{table}"]}}'


def _one(group: list[Entry]) -> Entry:
    first = group[0]
    if len(group) == 1 and (isinstance(first, FailedExport) or first.lane is None):
        return first
    table = first.table
    failed = [e for e in group if isinstance(e, FailedExport)]
    if failed:
        exported = sum(1 for e in group if isinstance(e, ExportResult))
        cause = (
            f"{len(failed)} lane(s) of {table} failed; the first: {failed[0].message}. Nothing of {table} "
            f"was merged ({exported} other lane(s) exported files that stay unmerged); {_rerun(table)}"
        )
        return failed[0].model_copy(update={"error": ExportError(error=failed[0].error.error, cause=cause)})
    results = [e for e in group if isinstance(e, ExportResult)]
    lanes = sorted(r.lane.index for r in results if r.lane is not None)
    count = next((r.lane.count for r in results if r.lane is not None), len(results))
    if lanes != list(range(count)) or len(results) != count:
        missing = sorted(set(range(count)) - set(lanes))
        return FailedExport(
            table=table,
            status="FAILED",
            run_id=first.run_id,
            target=first.target,
            error=ExportError(
                error=LANES_INCOMPLETE,
                cause=f"the export of {table} in {count} lanes reported lanes {[n + 1 for n in lanes]}, "
                f"missing {[m + 1 for m in missing]} (or one twice); nothing was merged; {_rerun(table)}",
            ),
        )
    results.sort(key=lambda r: r.lane.index if r.lane is not None else 0)
    if any(r.status == "MORE" for r in results):
        # The verifier fails a result still MORE (ExportIncomplete); keep that one as it is.
        return next(r for r in results if r.status == "MORE")
    snapshots = [r.snapshot for r in results]
    earliest = None if None in snapshots else min(snapshots, key=lambda s: int(s.order))  # type: ignore[union-attr]
    keys = [key for r in results for key in r.keys]
    warnings = list(dict.fromkeys(w for r in results for w in r.warnings))
    return first.model_copy(
        update={
            "status": "EXPORTED" if keys else "EMPTY",
            "rows": sum(r.rows for r in results),
            "bytes": sum(r.bytes for r in results),
            "files": sum(r.files for r in results),
            "keys": keys,
            "chunks": sum(r.chunks for r in results),
            "warnings": warnings,
            "snapshot": earliest,
            "quarantined": sum(r.quarantined for r in results),
            "quarantine_example": next((r.quarantine_example for r in results if r.quarantine_example), None),
            "new_columns": next((r.new_columns for r in results if r.new_columns), []),
            "lane": None,
        }
    )
