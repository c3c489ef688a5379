"""Hard deletes: apply a run's key snapshot to FINAL once the run's MERGE task succeeded.

A reconciling run (``hard_deletes: reconcile``, and every run of mode ``full``) exported every
primary key of the table in its first chunk's snapshot, as CSV files under
``messages.KEY_SNAPSHOT_PREFIX``. Per table, in the verifier's own session:

  1. The run's key files are loaded into ``STAGING."<TARGET>_KEYS"`` with a synchronous
     ``COPY INTO`` (no pipe): the rows of these files are deleted first and FORCE reloads a file
     a retried call loaded before; ABORT_STATEMENT loads all or nothing. Every file must come
     back LOADED and the rows must add up to the exporter's ``key_rows``; otherwise nothing is
     deleted (``KeySnapshotIncomplete``): an incomplete key set would remove live rows.
  2. A run exported in one chunk read its data in the key snapshot's own snapshot, so FINAL must
     hold every key of it: a key FINAL lacks is a row the window never reached (a cursor that
     did not advance), ``RowsMissing``, and nothing is deleted.
  3. ``DELETE`` the FINAL rows whose key is absent from the snapshot, but only rows whose version
     was read at or before it (``_AURORA_SYNC_SNAPSHOT``): a row written later is kept.
  4. Mode full: FINAL must now hold exactly the snapshot's rows (``RowsMissing`` otherwise).
  5. The KEYS rows of these files are removed again.

This runs only after the MERGE task succeeded: that MERGE applied every file accounted for
before it, older runs' included, so none of them can bring a removed row back afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import KeySnapshotIncomplete, RowsMissing, TerminalError, WarehouseObjectMissing
from ..naming import FILE_COLUMN, SnowflakeObjects, quote
from ..schema_evolution import read_pipes, read_warehouse_columns
from ..snowflake_objects import (
    MAX_COPY_FILES,
    SqlConfigError,
    key_copy_statement,
    missing_keys_query,
    parse_pipe,
    reconcile_delete,
)
from ..warehouse_db import IN_BOUND_LIST, bound_list, warehouse_errors

# Snowflake's COPY INTO <table> result statuses (docs.snowflake.com, COPY INTO <table> output).
COPY_LOADED = "LOADED"


@dataclass(frozen=True)
class KeySnapshot:
    """One table's key snapshot as the verifier applies it."""

    table: str  # config name: the key files' directory under the prefix
    objects: SnowflakeObjects
    primary_key: tuple[str, ...]  # Snowflake names, in the key files' field order
    order: int  # the snapshot order of the key snapshot (the run's first chunk)
    files: tuple[str, ...]
    rows: int
    check_missing: bool  # FINAL must hold every key (the data was read in the same snapshot)
    check_count: bool  # mode full: FINAL must hold exactly the snapshot's rows


@dataclass(frozen=True)
class Reconciled:
    rows_deleted: int | None = None  # set once the DELETE ran
    error: str | None = None
    reason: str | None = None


def rerun_full(table: str) -> str:
    return json.dumps({"tables": [table], "overrides": {table: {"full_resync": True}}})


def reconcile(
    conn: Any, *, database: str, staging_schema: str, final_schema: str, snapshots: Sequence[KeySnapshot]
) -> dict[str, Reconciled]:
    """{table: what was done}; two statements for every table together, then a few per table.

    A table's terminal error is its outcome; errors that concern everything propagate.
    """
    if not snapshots:
        return {}
    pipes = read_pipes(conn, database=database, staging_schema=staging_schema)
    targets = [s.objects.target for s in snapshots]
    columns = read_warehouse_columns(
        conn,
        database=database,
        staging_schema=staging_schema,
        final_schema=final_schema,
        targets=[*targets, *(f"{t}_KEYS" for t in targets)],
    )
    done: dict[str, Reconciled] = {}
    for snapshot in snapshots:
        target = snapshot.objects.target
        create = f"`aurora-sync sql snowflake --tables {snapshot.table} --apply`"
        keys_have = columns.staging.get(f"{target}_KEYS", {})
        final_types = columns.final_data_types.get(target, {})
        absent = [k for k in snapshot.primary_key if k not in keys_have or k not in final_types]
        pipe = pipes.get(f"{target}_PIPE")
        definition = parse_pipe(pipe.definition) if pipe else None
        try:
            if absent or FILE_COLUMN not in keys_have:
                raise WarehouseObjectMissing(
                    f"{snapshot.objects.keys_table} (or FINAL) lacks key column(s) "
                    f"{', '.join(absent) or FILE_COLUMN}; nothing was deleted.",
                    fix=f"create the key snapshot table with {create}",
                )
            if definition is None:
                raise WarehouseObjectMissing(
                    f"pipe {snapshot.objects.pipe} is missing or not aurora-sync's; its stage and file "
                    "format load the key snapshot, so nothing was deleted.",
                    fix=f"create it with {create}",
                )
            done[snapshot.table] = _reconcile_one(conn, snapshot, definition.source, final_types)
        except (TerminalError, SqlConfigError) as exc:
            done[snapshot.table] = Reconciled(error=type(exc).__name__, reason=str(exc))
    return done


def _reconcile_one(conn: Any, snapshot: KeySnapshot, source: Any, final_types: dict[str, str]) -> Reconciled:
    objects = snapshot.objects
    keys = list(snapshot.primary_key)
    files = list(snapshot.files)
    cur = conn.cursor()
    try:
        with warehouse_errors(f"reconciling {objects.final_table} with its key snapshot"):
            if files:
                _clear(cur, objects, files)
                loaded = _load(cur, snapshot, source)
                if loaded is not None:
                    _clear(cur, objects, files)
                    return loaded
            if snapshot.check_missing and files:
                cur.execute(missing_keys_query(objects, keys, final_types), [bound_list(files)])
                row = cur.fetchone()
                if row and int(row[0]) > 0:
                    _clear(cur, objects, files)
                    example = json.dumps(dict(zip(keys, row[1:], strict=True)))
                    return Reconciled(
                        error=RowsMissing.__name__,
                        reason=f"FINAL {objects.final_table} lacks {int(row[0])} key(s) the source has "
                        f"(e.g. {example}): rows the export window never reached, e.g. a cursor that "
                        "does not advance on every write; nothing was deleted. Fix: rerun the table "
                        f"with a full resync, execution input {rerun_full(snapshot.table)}",
                    )
            cur.execute(
                reconcile_delete(objects, keys, final_types, bool(files)),
                [str(snapshot.order), *([bound_list(files)] if files else [])],
            )
            deleted = _affected(cur)
            if files:
                _clear(cur, objects, files)
            if snapshot.check_count:
                cur.execute(f"SELECT COUNT(*) FROM {objects.final_table}")
                (count,) = cur.fetchone() or (0,)
                if int(count) != snapshot.rows:
                    return Reconciled(
                        rows_deleted=deleted,
                        error=RowsMissing.__name__,
                        reason=f"FINAL {objects.final_table} holds {int(count)} row(s) after removing "
                        f"{deleted}, but the source's snapshot has {snapshot.rows}. Fix: rerun the "
                        f"table with a full resync, execution input {rerun_full(snapshot.table)}",
                    )
            return Reconciled(rows_deleted=deleted)
    finally:
        cur.close()


def _clear(cur: Any, objects: SnowflakeObjects, files: list[str]) -> None:
    # The files as one bound JSON array: the text stays the same however many chunks the key
    # snapshot has.
    statement = f"DELETE FROM {objects.keys_table} WHERE {quote(FILE_COLUMN)} {IN_BOUND_LIST}"
    cur.execute(statement, [bound_list(files)])


def _load(cur: Any, snapshot: KeySnapshot, source: Any) -> Reconciled | None:
    """COPY the key files, at most MAX_COPY_FILES to a statement (Snowflake's limit on FILES);
    None when every file loaded and the rows add up. A statement that fails leaves the earlier
    ones' rows in the KEYS table: the caller clears them with the rest."""
    results: list[dict[str, Any]] = []
    for start in range(0, len(snapshot.files), MAX_COPY_FILES):
        statement = key_copy_statement(
            snapshot.objects.keys_table,
            snapshot.primary_key,
            source,
            snapshot.table,
            snapshot.files[start : start + MAX_COPY_FILES],
        )
        try:
            with warehouse_errors(f"loading the key snapshot of {snapshot.table}"):
                cur.execute(statement)
        except TerminalError as exc:
            # ON_ERROR = ABORT_STATEMENT: a bad record fails the statement and loads nothing.
            return Reconciled(
                error=KeySnapshotIncomplete.__name__,
                reason=f"the key snapshot of {snapshot.table} did not load ({exc}); nothing was deleted",
            )
        names = [str(d[0]).lower() for d in cur.description or []]
        results += [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    by_file: dict[str, dict[str, Any]] = {}
    for result in results:
        # Snowflake names a file of an external stage by its URL (s3://bucket/key).
        name = str(result.get("file") or "")
        for key in snapshot.files:
            if name == key or name.endswith("/" + key):
                by_file[key] = result
    problems = []
    for key in snapshot.files:
        found = by_file.get(key)
        if found is None:
            problems.append(f"{key}: not loaded")
        elif str(found.get("status")).upper() != COPY_LOADED:
            problems.append(
                f"{key}: {found.get('status')} ({found.get('rows_loaded')} of "
                f"{found.get('rows_parsed')} row(s); {found.get('first_error') or 'no error message'})"
            )
    loaded = sum(int(r.get("rows_loaded") or 0) for r in by_file.values())
    if problems or loaded != snapshot.rows:
        first = problems[0] if problems else "every file loaded"
        return Reconciled(
            error=KeySnapshotIncomplete.__name__,
            reason=f"the key snapshot of {snapshot.table} loaded {loaded} of {snapshot.rows} key(s) from "
            f"{len(snapshot.files)} file(s) ({len(problems)} not loaded; {first}); nothing was deleted. "
            f"Rerun the table: {json.dumps({'tables': [snapshot.table]})}",
        )
    return None


def _affected(cur: Any) -> int:
    """Rows a DML changed: the connector's rowcount, else its result row."""
    if isinstance(cur.rowcount, int) and cur.rowcount >= 0:
        return int(cur.rowcount)
    row = cur.fetchone()
    return int(row[0]) if row else 0
