"""What each table mode costs, and where it stops being sensible (``config validate`` and the
planner warn above these sizes; the figures behind them are benchmark 8 in docs/benchmarks.md,
"Table modes", measured on the 1M-row bench table of the local stack).

* ``cursor``: an index on the cursor column finds the window; a run reads only changed rows.
* ``xmin``: there is no index on a row version's transaction id, so every run reads the whole
  table to find the rows written since the last merged run's snapshot. It stays cheap while that
  scan is short next to a run's fixed cost; above ``XMIN_WARN_ROWS`` a cursor column (with an
  index) is the better choice.
* ``full``: every run exports and loads every row, in one chunk (one snapshot, so FINAL can equal
  it exactly). Above ``FULL_WARN_ROWS`` the export, the load and the MERGE of every row on every
  run cost far more than an incremental mode with ``hard_deletes: reconcile``.
* ``hard_deletes: reconcile`` exports every primary key on a reconciling run (an index-only scan
  where PostgreSQL chooses one) and anti-joins them with FINAL; above ``RECONCILE_WARN_ROWS``
  reconcile less often (``reconcile_every``).

The rule behind all three: a mode stops paying off where its per-row work on every run costs as
much as the run's fixed cost, i.e. where it doubles a run. The fixed cost is an EMPTY mode-cursor
exporter call, 0.80 s in benchmark 8 (the planner, the Verify loop and the MERGE add more, so the
break-even sizes below are lower bounds, which is why each is rounded up):

* xmin: a chunk's EXISTS probe, boundary lookup and export SELECT cost PostgreSQL 1,281 ms on 1M
  rows (149 ms on 100k), ~1.3 µs a row: 0.80 s / 1.3 µs = ~620k rows, so 1M (the old 10M would
  spend ~13 s scanning on every run, 16x the fixed cost, to find a few changed rows).
* full: the whole exporter call on 1M rows (data and key snapshot) took 17.1 s, ~17 µs a row, and
  Snowflake must load and MERGE every row besides: 0.80 s / 17 µs = ~47k rows, so 100k (the old
  1M meant runs 9x the cost of an incremental one on the exporter alone).
* reconcile: the key snapshot of 1M keys took 2.0 s to export (6.6 MB), ~2 µs a key, and made an
  incremental run 1.8x as long: 0.80 s / 2 µs = ~400k keys, so 1M (the old 50M meant ~100 s and
  ~330 MB of keys on every run).
"""

from __future__ import annotations

XMIN_WARN_ROWS = 1_000_000
FULL_WARN_ROWS = 100_000
RECONCILE_WARN_ROWS = 1_000_000
# Where a table without a cursor column is told to look (the modes, and adding a cursor).
CURSORLESS_DOC = "docs/operations.md#tables-without-a-cursor-and-hard-deletes"
CURSORLESS_MODES = f"mode 'xmin' or 'full', which need no cursor column (see {CURSORLESS_DOC})"


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
