"""Snowflake statements of the verifier: load history, pipe refresh, merge task runs, merged rows.

Everything that asks about many tables is one statement whatever the table count (UNION ALL of
the per-table table functions, or one row of scalar subqueries), so a run's verification costs
a handful of round trips. EXECUTE TASK takes one task, so the MERGE tasks of every ready table
run in one CALL of the setup's procedure ``EXECUTE_TASKS_PROCEDURE`` (sql/snowflake/
06_execute_tasks.sql), which executes each and reports each task's outcome. ALTER PIPE ...
REFRESH acts on one pipe and is issued per table, only when the decision calls for it.

Values are bound (qmark). Object names are the quoted names of ``SnowflakeObjects``; where a
table function takes an object name as a string (COPY_HISTORY's TABLE_NAME), the quoted name is
bound as that string so case-sensitive names resolve exactly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import ConfigError, SyncError, WarehouseQueryFailed
from ..naming import SYNCED_AT_COLUMN, SnowflakeObjects, quote
from ..warehouse_db import classify_warehouse_error, warehouse_errors

# COPY_HISTORY statuses (docs.snowflake.com, COPY_HISTORY table function).
LOADED = "Loaded"
IN_PROGRESS = "Load in progress"

# The setup's procedure in the STAGING schema that runs EXECUTE TASK for each task of an ARRAY
# (sql/snowflake/06_execute_tasks.sql; the two names must stay the same).
EXECUTE_TASKS_PROCEDURE = "_AURORA_SYNC_EXECUTE_TASKS"

# Export keys are `<table>/YYYY/MM/DD/HH/<uuid>.csv[_partN]`; refresh prefixes are cut from
# their directories, and are the only text formatted into ALTER PIPE (it takes no binds).
_PREFIX = re.compile(r"^[0-9/]*$")


@dataclass(frozen=True)
class TableFiles:
    """The files one table's export reported, and where Snowpipe loads them."""

    name: str
    objects: SnowflakeObjects
    keys: tuple[str, ...]


@dataclass(frozen=True)
class FileLoad:
    file_name: str
    status: str
    row_count: int
    row_parsed: int | None
    first_error: str | None
    error_count: int
    last_load_time: datetime | None


@dataclass(frozen=True)
class TaskRun:
    query_id: str
    state: str
    error_message: str | None
    scheduled_time: datetime | None
    query_start_time: datetime | None
    completed_time: datetime | None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _information_schema(database: str) -> str:
    return f"{quote(database)}.{quote('INFORMATION_SCHEMA')}"


def _rows(conn: Any, doing: str, statement: str, params: Sequence[Any]) -> list[Any]:
    """The rows of one statement; connector errors become the taxonomy's, naming ``doing``."""
    cur = conn.cursor()
    try:
        with warehouse_errors(doing):
            cur.execute(statement, params)
            return list(cur.fetchall())
    finally:
        cur.close()


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def read_copy_history(
    conn: Any, database: str, tables: Sequence[TableFiles], start_time: datetime
) -> dict[str, list[FileLoad]]:
    """{table name: the load history's entries for its files}, in one statement.

    A file absent from the answer is not in the load history yet (never notified, or queued); a
    file may have several entries (a failed load and a later one): which counts is the
    verifier's rule (``decide``).
    """
    wanted = [t for t in tables if t.keys]
    if not wanted:
        return {}
    function = f"{_information_schema(database)}.COPY_HISTORY"
    selects: list[str] = []
    params: list[Any] = []
    for index, table in enumerate(wanted):
        # The index is an int we generate: the only value formatted into the text.
        selects.append(
            f'SELECT {index} AS "T", FILE_NAME, STATUS, ROW_COUNT, ROW_PARSED, FIRST_ERROR_MESSAGE, '
            "ERROR_COUNT, LAST_LOAD_TIME "
            f"FROM TABLE({function}(TABLE_NAME => ?, START_TIME => CAST(? AS TIMESTAMP_LTZ))) "
            f"WHERE FILE_NAME IN ({', '.join('?' for _ in table.keys)})"
        )
        params += [table.objects.staging_table, _iso(start_time), *table.keys]
    found: dict[str, list[FileLoad]] = {t.name: [] for t in wanted}
    doing = f"reading COPY_HISTORY of {len(wanted)} STAGING table(s) in {quote(database)}"
    for index, file_name, status, row_count, row_parsed, error, error_count, loaded_at in _rows(
        conn, doing, " UNION ALL ".join(selects), params
    ):
        found[wanted[int(index)].name].append(
            FileLoad(
                file_name=str(file_name),
                status=str(status),
                row_count=_int(row_count),
                row_parsed=int(row_parsed) if row_parsed is not None else None,
                first_error=str(error) if error is not None else None,
                error_count=_int(error_count),
                last_load_time=loaded_at,
            )
        )
    return found


def refresh_prefix(table: str, keys: Sequence[str]) -> str:
    """The longest directory prefix, relative to the pipe's path ``<table>/``, shared by ``keys``.

    REFRESH PREFIX is appended to the stage path in the pipe definition, which already ends in
    ``<table>/``; so the prefix narrows the listing to the run's hour directories.
    """
    relative = [k[len(table) + 1 :] for k in keys if k.startswith(f"{table}/")]
    if not relative:
        return ""
    directories = [r.rsplit("/", 1)[0] + "/" if "/" in r else "" for r in relative]
    prefix = directories[0]
    for directory in directories[1:]:
        while not directory.startswith(prefix):
            prefix = prefix[:-1].rsplit("/", 1)[0] + "/" if "/" in prefix[:-1] else ""
    return prefix if _PREFIX.match(prefix) else ""


def refresh_pipe(conn: Any, objects: SnowflakeObjects, *, prefix: str, modified_after: datetime) -> int:
    """ALTER PIPE ... REFRESH: queue the staged files that have no load history; returns how many."""
    if not _PREFIX.match(prefix):
        raise ConfigError(f"refresh prefix {prefix!r} is not an export key directory.")
    after = modified_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    statement = f"ALTER PIPE {objects.pipe} REFRESH"
    if prefix:
        statement += f" PREFIX = '{prefix}'"
    statement += f" MODIFIED_AFTER = '{after}'"
    cur = conn.cursor()
    try:
        with warehouse_errors(f"refreshing pipe {objects.pipe}"):
            cur.execute(statement)
            return len(cur.fetchall())
    finally:
        cur.close()


def read_task_runs(
    conn: Any, database: str, tasks: Sequence[tuple[str, SnowflakeObjects, datetime]]
) -> dict[str, list[TaskRun]]:
    """{table name: runs of its MERGE task scheduled at/after the given time, newest first}.

    One statement for every table. TASK_HISTORY takes the task's unqualified name and answers
    for the whole database, so the schema is filtered explicitly.
    """
    if not tasks:
        return {}
    function = f"{_information_schema(database)}.TASK_HISTORY"
    selects: list[str] = []
    params: list[Any] = []
    for index, (_, objects, since) in enumerate(tasks):
        selects.append(
            f'SELECT {index} AS "T", QUERY_ID, STATE, ERROR_MESSAGE, SCHEDULED_TIME, QUERY_START_TIME, '
            "COMPLETED_TIME "
            f"FROM TABLE({function}(TASK_NAME => ?, SCHEDULED_TIME_RANGE_START => CAST(? AS TIMESTAMP_LTZ))) "
            "WHERE SCHEMA_NAME = ? AND DATABASE_NAME = ?"
        )
        params += [f"{objects.target}_MERGE", _iso(since), objects.staging_schema, database]
    runs: dict[str, list[TaskRun]] = {name: [] for name, _, _ in tasks}
    doing = f"reading TASK_HISTORY of {len(tasks)} MERGE task(s) in {quote(database)}"
    for index, query_id, state, error, scheduled, started, completed in _rows(
        conn, doing, " UNION ALL ".join(selects), params
    ):
        runs[tasks[int(index)][0]].append(
            TaskRun(
                query_id=str(query_id),
                state=str(state),
                error_message=str(error) if error is not None else None,
                scheduled_time=scheduled,
                query_start_time=started,
                completed_time=completed,
            )
        )
    floor = datetime.min.replace(tzinfo=UTC)
    for table_runs in runs.values():
        table_runs.sort(key=lambda r: r.scheduled_time or floor, reverse=True)
    return runs


def execute_tasks_procedure(database: str, staging_schema: str) -> str:
    """The quoted name of the setup's procedure that executes MERGE tasks."""
    return f"{quote(database)}.{quote(staging_schema)}.{quote(EXECUTE_TASKS_PROCEDURE)}"


def execute_tasks(
    conn: Any, database: str, staging_schema: str, tasks: Sequence[SnowflakeObjects]
) -> list[SyncError | None]:
    """EXECUTE TASK for each table's MERGE task, in one CALL; each task's error, in order.

    Each run is asynchronous: it shows up in TASK_HISTORY as SCHEDULED. The procedure catches
    each task's error, so one dropped task does not keep the others from running; its error
    comes back classified as the connector's would be. An error of the CALL itself (the
    procedure missing, Snowflake unreachable) is raised as the taxonomy's class.
    """
    if not tasks:
        return []
    procedure = execute_tasks_procedure(database, staging_schema)
    names = [objects.merge_task for objects in tasks]
    cur = conn.cursor()
    try:
        with warehouse_errors(f"executing {len(names)} MERGE task(s) with {procedure}"):
            # The names travel as one bound JSON array: never formatted into the statement.
            cur.execute(f"CALL {procedure}(PARSE_JSON(?))", (json.dumps(names),))
            row = cur.fetchone()
    finally:
        cur.close()
    outcomes = json.loads(row[0]) if row and isinstance(row[0], str) else (row[0] if row else None)
    if not isinstance(outcomes, list) or len(outcomes) != len(names):
        raise WarehouseQueryFailed(
            f"{procedure} answered {str(outcomes)[:200]!r} for {len(names)} task(s), not one outcome "
            "each: it is not the setup's procedure.",
            fix="run `aurora-sync sql snowflake --setup --apply`",
        )
    return [_task_error(name, outcome) for name, outcome in zip(names, outcomes, strict=True)]


def _task_error(task: str, outcome: Any) -> SyncError | None:
    """A task's outcome as the procedure reports it → None (executed) or its classified error."""
    from snowflake.connector.errors import ProgrammingError

    if not isinstance(outcome, dict) or "code" not in outcome:
        return None
    code = outcome.get("code")
    error = ProgrammingError(
        msg=str(outcome.get("message") or "no message"),
        errno=int(code) if isinstance(code, int | float | str) and str(code).lstrip("-").isdigit() else None,
        sqlstate=outcome.get("state"),
    )
    return classify_warehouse_error(error, context=f"executing task {task}")


def streams_have_data(conn: Any, streams: Sequence[tuple[str, SnowflakeObjects]]) -> dict[str, bool]:
    """{table name: SYSTEM$STREAM_HAS_DATA of its stream}, in one statement for every table.

    The function takes one stream, so each is a column of one row, its name bound.
    """
    if not streams:
        return {}
    columns = [f"SYSTEM$STREAM_HAS_DATA(?) AS {quote(f'S{index}')}" for index in range(len(streams))]
    cur = conn.cursor()
    try:
        with warehouse_errors(f"reading SYSTEM$STREAM_HAS_DATA of {len(streams)} stream(s)"):
            cur.execute(f"SELECT {', '.join(columns)}", [objects.stream for _, objects in streams])
            row = cur.fetchone()
    finally:
        cur.close()
    values = list(row) if row is not None else [False] * len(streams)
    return {name: bool(value) for (name, _), value in zip(streams, values, strict=True)}


def count_merged_rows(conn: Any, merged: Sequence[tuple[str, SnowflakeObjects, datetime]]) -> dict[str, int]:
    """{table name: FINAL rows the MERGE wrote at/after its run's start}, in one statement."""
    if not merged:
        return {}
    columns = []
    params: list[Any] = []
    for index, (_, objects, started) in enumerate(merged):
        columns.append(
            f"(SELECT COUNT(*) FROM {objects.final_table} "
            f"WHERE {quote(SYNCED_AT_COLUMN)} >= CAST(? AS TIMESTAMP_TZ)) AS {quote(f'N{index}')}"
        )
        params.append(_iso(started))
    cur = conn.cursor()
    try:
        with warehouse_errors(f"counting merged rows of {len(merged)} FINAL table(s)"):
            cur.execute(f"SELECT {', '.join(columns)}", params)
            row = cur.fetchone()
    finally:
        cur.close()
    values = list(row) if row is not None else [0] * len(merged)
    return {name: _int(value) for (name, _, _), value in zip(merged, values, strict=True)}
