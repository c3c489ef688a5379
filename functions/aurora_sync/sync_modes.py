"""What each table mode costs, and where it stops being sensible (``config validate`` and the
planner warn above these sizes; the figures behind them are in docs/benchmarks.md, "Table modes").

* ``cursor``: an index on the cursor column finds the window; a run reads only changed rows.
* ``xmin``: there is no index on a row version's transaction id, so every run reads the whole
  table to find the rows written since the last merged run's snapshot. It stays cheap while that
  scan is short next to a run's fixed cost; above ``XMIN_WARN_ROWS`` a cursor column (with an
  index) is the better choice.
* ``full``: every run exports and loads every row, in one chunk (one snapshot, so FINAL can equal
  it exactly). Above ``FULL_WARN_ROWS`` the export, the load and the MERGE of every row on every
  run cost far more than an incremental mode with ``hard_deletes: reconcile``.
* ``hard_deletes: reconcile`` exports every primary key on a reconciling run (an index-only scan
  where PostgreSQL can) and anti-joins them with FINAL; above ``RECONCILE_WARN_ROWS`` reconcile
  less often (``reconcile_every``).
"""

from __future__ import annotations

XMIN_WARN_ROWS = 10_000_000
FULL_WARN_ROWS = 1_000_000
RECONCILE_WARN_ROWS = 50_000_000


def size_warning(mode: str, hard_deletes: str, rows: int, *, relation: str, every: int = 1) -> str | None:
    """A warning for a table of about ``rows`` rows (-1 or 0: unknown, never analyzed), or None."""
    if rows <= 0:
        return None
    if mode == "xmin" and rows > XMIN_WARN_ROWS:
        return (
            f"{relation} has about {rows:,} rows; mode 'xmin' reads all of them on every run (no index "
            f"can find row versions by transaction id), which stops paying off above {XMIN_WARN_ROWS:,} "
            "rows: use mode 'cursor' with an indexed column that every write advances"
        )
    if mode == "full" and rows > FULL_WARN_ROWS:
        return (
            f"{relation} has about {rows:,} rows; mode 'full' exports, loads and merges all of them on "
            f"every run, which stops being sensible above {FULL_WARN_ROWS:,} rows: use mode 'xmin' or "
            "'cursor' with hard_deletes 'reconcile'"
        )
    if hard_deletes == "reconcile" and every == 1 and rows > RECONCILE_WARN_ROWS:
        return (
            f"{relation} has about {rows:,} rows; hard_deletes 'reconcile' exports every key on every run: "
            "set reconcile_every (e.g. 24 to reconcile once a day with an hourly schedule)"
        )
    return None
