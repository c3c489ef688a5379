"""The source snapshot an export read, and what it proves about rows that commit later.

Two facts decide correctness, and neither can come from the cursor column:

* **Version order.** Two versions of one row are ordered by the snapshots they were read in: a
  later snapshot always holds the newer committed version. The cursor cannot order them, because
  PostgreSQL stamps ``now()`` at transaction start: transaction A starts, B starts later, updates
  row R and commits; A then updates R and commits with an *older* stamp than B's version. A MERGE
  that keeps the highest cursor keeps B's stale version forever. The snapshot's ``order`` below
  is a number that grows with the moment the snapshot was taken: ``pg_snapshot_xmax`` (the next
  transaction id, 64-bit and epoch-aware, so wraparound cannot reorder it) first, then fewer
  in-progress transactions (two snapshots with one xmax differ only in which of those
  transactions have committed since, and the later one has fewer). It travels in the export's
  file name and, once the verifier accounted for the file, in the export ledger that the MERGE
  orders by.

* **What a later run must re-read.** Rows that commit after a snapshot come from transactions
  that were open when it was taken, or started later. ``horizon`` is read *before* the snapshot
  (so no transaction can slip between the two): the start of the oldest transaction then open in
  the database, or the clock when none was, minus a margin. Every row committed after the
  snapshot was written by a transaction that started after the horizon, so it carries a
  ``now()`` stamp and sequence values obtained after it. The next run's window starts from what
  this proves (``planning.watermarks.next_watermark``), never from ``MAX(cursor)`` of FINAL: a far-future
  value there would hide every later row, and a late commit with an older stamp or a smaller
  sequence value would fall behind it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg2 import sql

from .errors import ConfigError

# PostgreSQL publishes a transaction's start in pg_stat_activity a few microseconds after taking
# the timestamp that now() returns; a second of margin covers that gap (and nothing more).
HORIZON_MARGIN = timedelta(seconds=1)
# order = xmax * ORDER_SCALE + (ORDER_SCALE - 1 - in-progress count): 20 + 6 digits fit NUMBER(38,0).
ORDER_SCALE = 1_000_000
ORDER_DIGITS = 26
# A cursor value this far beyond the source clock is "future-dated": reported, and never allowed
# to become a watermark (it would hide every row written after it).
FUTURE_TOLERANCE = timedelta(minutes=5)

# Object names: <table>/YYYY/MM/DD/HH/s<order, 26 digits>-<uuid>.csv[_partN].
_KEY_ORDER = re.compile(r"/s(\d{" + str(ORDER_DIGITS) + r"})-[0-9a-f-]{36}\.csv(?:_part\d+)?$")


# The exporter's sessions say so in pg_stat_activity (``read_horizon`` leaves them out).
EXPORTER_APPLICATION_NAME = "aurora-sync-exporter"


def read_horizon(cur: Any) -> datetime:
    """Before the export's snapshot: the oldest open transaction's start in this database, or the
    clock, minus the margin. Must run in its own transaction, before the snapshot is taken.

    Every client transaction counts, read-only ones included: a transaction may take a sequence
    value or ``now()`` long before its first write (nextval does not always assign an xid).
    Except the other exports' own: sessions of this same role under the exporter's application
    name. The sync role reads only (SELECT grants, ``default_transaction_read_only``: it can take
    no sequence value and stamp no row), and exports run side by side (a run's tables, a
    backfill's lanes): counting their snapshot transactions put the horizon before every integer
    cursor's sample, so each such table was read whole again on its next run, and a table
    backfilled in lanes on every run.
    """
    cur.execute(
        "SELECT pg_is_in_recovery(), clock_timestamp(), min(xact_start) FROM pg_catalog.pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL "
        "AND backend_type = 'client backend' "
        "AND NOT (usename = current_user AND application_name = %s)",
        (EXPORTER_APPLICATION_NAME,),
    )
    replica, clock, oldest = cur.fetchone()
    if replica:
        # A replica's pg_stat_activity lists its own sessions, not the writer's transactions: a
        # horizon read there would miss exactly the transactions that commit late.
        raise ConfigError(
            "the Aurora secret points at a reader (the server is in recovery): the export must see the "
            "writer's open transactions to know which rows can still commit behind its snapshot.",
            fix="point the Aurora secret's host at the cluster (writer) endpoint, not the reader (-ro-) one",
        )
    start = min(clock, oldest) if oldest is not None else clock
    return _utc(start) - HORIZON_MARGIN


@dataclass(frozen=True)
class TakenSnapshot:
    """The export transaction's snapshot: its order, the source clock, and its 64-bit xmin/xmax."""

    order: int
    source_time: datetime
    xmin: int  # every transaction still to commit has an id at or past it (mode xmin's next start)
    xmax: int  # the next transaction id: every row version visible here was written before it


def read_snapshot(cur: Any) -> TakenSnapshot:
    """The first statement of the export's REPEATABLE READ transaction: it takes the snapshot and
    returns its order, the source clock (read after the snapshot, so every row it holds was
    committed before that time) and its xid8 bounds (cheap, so read in every mode)."""
    cur.execute(
        "SELECT pg_snapshot_xmax(s)::text::numeric, "
        "(SELECT count(*) FROM pg_snapshot_xip(s)), clock_timestamp(), pg_snapshot_xmin(s)::text::numeric "
        "FROM pg_current_snapshot() AS s"
    )
    xmax, in_progress, clock, xmin = cur.fetchone()
    return TakenSnapshot(snapshot_order(int(xmax), int(in_progress)), _utc(clock), int(xmin), int(xmax))


def read_snapshot_order(cur: Any) -> tuple[int, datetime]:
    """``read_snapshot``'s order and source clock."""
    taken = read_snapshot(cur)
    return taken.order, taken.source_time


def snapshot_order(xmax: int, in_progress: int) -> int:
    return xmax * ORDER_SCALE + (ORDER_SCALE - 1 - min(in_progress, ORDER_SCALE - 1))


def max_cursor(cur: Any, relation: sql.Composable, cursor: str) -> str | None:
    """MAX(cursor) in the current snapshot, as text typed like the cursor (one index probe)."""
    cur.execute(sql.SQL("SELECT max({c})::text FROM {t}").format(c=sql.Identifier(cursor), t=relation))
    row = cur.fetchone()
    return None if row is None or row[0] is None else str(row[0])


def sample_before(
    cur: Any, relation: sql.Composable, cursor: str, *, pause_s: float
) -> tuple[datetime, str | None]:
    """A (time, MAX(cursor)) pair taken before the horizon is read, ``pause_s`` ahead of it.

    An integer cursor's next window must start at a value visible *before* the horizon
    (``planning.watermarks.next_watermark``); a first export has no earlier run to take it from, and without
    this sample its next run would have to export the whole table again. Run in its own
    transaction, then pause a little longer than the horizon's margin so the sample precedes it.
    """
    cur.execute(
        sql.SQL("SELECT max({c})::text, clock_timestamp() FROM {t}").format(
            c=sql.Identifier(cursor), t=relation
        )
    )
    value, clock = cur.fetchone()
    time.sleep(pause_s)
    return _utc(clock), None if value is None else str(value)


def order_of_key(key: str) -> int | None:
    """The snapshot order an export key carries, or None for a name the exporter never writes."""
    match = _KEY_ORDER.search(key)
    return int(match.group(1)) if match else None


def key_name(order: int, identifier: str) -> str:
    return f"s{order:0{ORDER_DIGITS}d}-{identifier}.csv"


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
