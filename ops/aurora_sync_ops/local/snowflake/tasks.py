"""Append-only streams and tasks.

A stream is emulated by an offset snapshot: a copy of its table's rows as of the last consuming
DML, kept next to the table. The stream's rows are ``table EXCEPT ALL snapshot`` (rows inserted
since; an insert-only view, as APPEND_ONLY = TRUE promises), so rows loaded by pipes and rows
INSERTed through the connector both appear. A DML that reads the stream reads a frozen copy of
the table and, once it succeeded, that copy becomes the new offset (see ``Streams.snapshot``). Rows that are
byte-for-byte identical to a row still in the snapshot are indistinguishable (staging rows
carry file name and row number, so they never are).

A stream survives column changes of its table, as in Snowflake: before every read the offset
snapshot's columns are aligned with the table's by name (``Streams.align``). A column added to
the table is added to the snapshot with the table's default, so the rows already consumed get
exactly what the table's old rows got and stay consumed; pending rows show the new column as the
table has it. A dropped column is dropped from the snapshot. ``ALTER TABLE … RENAME COLUMN`` is
replayed on the snapshot (``Streams.rename_column``), so a rename is not mistaken for a drop plus
an add. The comparison always names its columns, never ``*``, so column order does not matter.

A task records its statement; EXECUTE TASK (and, for a resumed task with SCHEDULE = 'N MINUTE',
the scheduler) runs it on a worker thread through the same statement path as a client's SQL,
recording SCHEDULED → EXECUTING → SUCCEEDED | FAILED, or SKIPPED when its WHEN is false. Whatever
goes wrong on that thread ends the run FAILED with the error in TASK_HISTORY: a run left SCHEDULED
or EXECUTING would make the verifier wait for it until its merge timeout. Runs a stopped server
left unfinished are failed when it starts again.

Task statements run at most ``TASK_STATEMENT_SLOTS`` at a time; the other runs wait for a slot
(EXECUTING, like a Snowflake run whose query waits for compute). In Snowflake each serverless run
has compute of its own, but here every run is Python (sqlglot's translation) and DuckDB in the
one server process: a verifier that started 500 MERGE tasks at once had 500 threads contending
for the GIL, and its own COPY_HISTORY reads no longer answered within the connector's timeout.
The limit only orders the work; what each run does and records is unchanged.

Faults for tests (``POST /emulator/task-faults``): a task can be made to ``hang`` once EXECUTING
(a MERGE that never finishes) until the fault is cleared, or to ``error`` on its worker thread
(an emulator failure that is not a SQL error).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import snowflake.connector.errors
from duckdb import DuckDBPyConnection
from sqlglot import exp

from . import history
from .catalog import (
    QUALIFIED,
    ObjectName,
    Registry,
    already_exists,
    does_not_exist,
    sql_error,
    syntax_error,
    unquote_string,
    utcnow,
)
from .history import dq
from .pipes import Session, _in_scope, _like, parse_properties

log = logging.getLogger("aurora_sync.snowflake.tasks")

# Task statements executing at once (see the module docstring): the host's two cores. MERGEs are
# one at a time anyway (``ControlPlane.merges``); the slots bound the WHEN checks and translations.
TASK_STATEMENT_SLOTS = 2

# (database, schema, sql) -> (query id, rows); raises ProgrammingError as a client would see it.
Executor = Callable[[str, str, str], tuple[str, list[tuple[Any, ...]]]]


def _columns(cur: DuckDBPyConnection, parts: tuple[str, str, str]) -> list[tuple[str, str, str | None]]:
    """(name, DuckDB type, default expression) of a table's columns, in table order."""
    return [(name, kind, default) for name, kind, default, _ in history.table_columns(cur, parts)]


def _split_dq(qualified: str) -> tuple[str, str, str]:
    """``"db"."schema"."name"`` (as ``Streams.snapshot`` writes it) back into its three parts."""
    match = re.fullmatch(r'"((?:[^"]|"")*)"\."((?:[^"]|"")*)"\."((?:[^"]|"")*)"', qualified)
    if not match:
        raise ValueError(f"not a quoted three-part name: {qualified}")
    database, schema, name = (part.replace('""', '"') for part in match.groups())
    return database, schema, name


def _select_list(names: list[str]) -> str:
    """Snowflake SQL naming each column (quoted: the names are the stored ones)."""
    return ", ".join(exp.to_identifier(n, quoted=True).sql("snowflake") for n in names)


class Streams:
    def __init__(self, registry: Registry, duck: DuckDBPyConnection) -> None:
        self.registry = registry
        self.duck = duck
        # Aligning and advancing rewrite the offset snapshot; one at a time.
        self._lock = threading.RLock()

    def create(self, sql: str, session: Session) -> str:
        match = re.match(
            r"\s*CREATE\s+(OR\s+REPLACE\s+)?STREAM\s+(IF\s+NOT\s+EXISTS\s+)?(" + QUALIFIED + r")\s+"
            r"(?:COPY\s+GRANTS\s+)?ON\s+TABLE\s+(" + QUALIFIED + r")(.*)$",
            sql,
            re.I | re.S,
        )
        if not match:
            raise syntax_error(
                "expected CREATE [OR REPLACE] STREAM <name> ON TABLE <table> APPEND_ONLY = TRUE"
            )
        replace, if_not_exists, raw_name, raw_table, rest = match.groups()
        name = ObjectName.resolve(raw_name, session.database, session.schema)
        table = ObjectName.resolve(raw_table, session.database, session.schema)
        props = parse_properties(rest)
        existing = self.registry.get("streams", name.fq)
        if existing and not replace:
            if if_not_exists:
                return f"{name.name} already exists, statement succeeded."
            raise already_exists(name.name)
        if props.get("APPEND_ONLY", "FALSE").upper() != "TRUE":
            raise sql_error(
                f"SQL compilation error:\nStream {name.name}: the local emulator supports APPEND_ONLY = TRUE "
                "streams on tables only",
                errno=2000,
                sqlstate="0A000",
            )
        with self.duck.cursor() as cur:
            if not cur.execute(
                "SELECT 1 FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
                "AND table_name = ?",
                list(table.parts()),
            ).fetchone():
                raise does_not_exist("Table", table.fq)
            history.ensure_tables(cur, table.database)
            if existing:
                cur.execute(f"DROP TABLE IF EXISTS {self._base(existing)}")
            record = {
                "name": name.name,
                "database": name.database,
                "schema": name.schema,
                "table": table.fq,
                "id": uuid.uuid4().hex[:16],
                "created_on": utcnow().isoformat(),
                "comment": unquote_string(props.get("COMMENT", "''")),
            }
            initial = props.get("SHOW_INITIAL_ROWS", "FALSE").upper() == "TRUE"
            cur.execute(
                f"CREATE TABLE {self._base(record)} AS SELECT * FROM {self._table(record)}"
                + (" WHERE false" if initial else "")
            )
        self.registry.put("streams", name.fq, record)
        return f"Stream {name.name} successfully created."

    @staticmethod
    def _base(record: dict[str, Any]) -> str:
        return ".".join(dq(p) for p in Streams._base_parts(record))

    @staticmethod
    def _base_parts(record: dict[str, Any]) -> tuple[str, str, str]:
        database = ObjectName.from_fq(record["table"]).database
        return (database, history.SCHEMA, "_emu_stream_" + record["id"])

    @staticmethod
    def _table(record: dict[str, Any]) -> str:
        table = ObjectName.from_fq(record["table"])
        return ".".join(dq(p) for p in table.parts())

    def drop(self, raw_name: str, session: Session, if_exists: bool) -> str:
        name = ObjectName.resolve(raw_name, session.database, session.schema)
        record = self.registry.remove("streams", name.fq)
        if not record:
            if if_exists:
                return f"Drop statement executed successfully ({name.name} already dropped)."
            raise does_not_exist("Stream", name.fq)
        with self.duck.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {self._base(record)}")
        return f"{name.name} successfully dropped."

    def find(self, name: ObjectName) -> dict[str, Any] | None:
        return self.registry.get("streams", name.fq)

    def names(self) -> list[str]:
        return [record["name"] for _, record in self.registry.items("streams")]

    def align(self, record: dict[str, Any], source: tuple[str, str, str] | None = None) -> list[str]:
        """Give the offset snapshot the columns of ``source`` (the table, or a frozen copy of it),
        matched by name; returns those column names in ``source``'s order.

        Snowflake keeps a stream working after ADD/DROP COLUMN on its table; comparing the table
        with a snapshot of other columns would fail (or, by position, compare the wrong ones).
        """
        table = ObjectName.from_fq(record["table"])
        base = self._base_parts(record)
        with self._lock, self.duck.cursor() as cur:
            wanted = _columns(cur, source or table.parts())
            if not wanted:
                # Snowflake: a stream whose table was dropped is stale and cannot be read.
                raise sql_error(
                    f"SQL compilation error:\nBase table '{table.fq}' dropped, cannot read from stream "
                    f"'{record['database']}.{record['schema']}.{record['name']}' in line 1 position 0",
                    errno=91901,
                    sqlstate="55000",
                )
            have = _columns(cur, base)
            if [(n, k) for n, k, _ in have] != [(n, k) for n, k, _ in wanted]:
                present = {n: k for n, k, _ in have}
                keep = {n for n, _, _ in wanted}
                target = self._base(record)
                cur.execute("BEGIN TRANSACTION")
                try:
                    # Added first: DuckDB refuses to drop a table's last column.
                    for name, kind, default in wanted:
                        if name not in present:
                            # The table's default is what its existing (already consumed) rows
                            # got from ADD COLUMN; the snapshot's copies of them must match. Not a
                            # sequence's: evaluating it here would advance the user's sequence.
                            fill = (
                                f" DEFAULT {default}"
                                if default is not None and "nextval(" not in default.lower()
                                else ""
                            )
                            cur.execute(f"ALTER TABLE {target} ADD COLUMN {dq(name)} {kind}{fill}")
                        elif present[name] != kind:
                            cur.execute(f"ALTER TABLE {target} ALTER COLUMN {dq(name)} SET DATA TYPE {kind}")
                    for name in present:
                        if name not in keep:
                            cur.execute(f"ALTER TABLE {target} DROP COLUMN {dq(name)}")
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
            return [n for n, _, _ in wanted]

    def rename_column(self, table: ObjectName, old: str, new: str) -> None:
        """Replay ``ALTER TABLE … RENAME COLUMN`` on the snapshots of the table's streams, so the
        consumed rows keep matching (aligning by name alone would drop and re-add the column)."""
        with self._lock, self.duck.cursor() as cur:
            for _, record in self.registry.items("streams"):
                if record["table"] != table.fq:
                    continue
                columns = {n for n, _, _ in _columns(cur, self._base_parts(record))}
                if old in columns and new not in columns:
                    cur.execute(f"ALTER TABLE {self._base(record)} RENAME COLUMN {dq(old)} TO {dq(new)}")

    def on_table(self, table: ObjectName) -> bool:
        return any(record["table"] == table.fq for _, record in self.registry.items("streams"))

    def rows_sql(self, record: dict[str, Any], source: str | None = None) -> str:
        """The stream's rows as a subquery body (Snowflake SQL that fakesnow runs on DuckDB).

        ``source`` is a frozen copy of the table made by ``snapshot`` (a consuming DML reads it).
        """
        columns = _select_list(self.align(record, _split_dq(source) if source is not None else None))
        return (
            f'SELECT *, \'INSERT\' AS "METADATA$ACTION", FALSE AS "METADATA$ISUPDATE" FROM '
            f"(SELECT {columns} FROM {source or self._table(record)} "
            f"EXCEPT ALL SELECT {columns} FROM {self._base(record)})"
        )

    def has_data(self, raw_name: str, session: Session) -> bool:
        name = ObjectName.resolve(raw_name, session.database, session.schema)
        record = self.find(name)
        if not record:
            raise does_not_exist("Stream", name.fq)
        columns = ", ".join(dq(n) for n in self.align(record))
        with self.duck.cursor() as cur:
            row = cur.execute(
                f"SELECT EXISTS (SELECT {columns} FROM {self._table(record)} "
                f"EXCEPT ALL SELECT {columns} FROM {self._base(record)})"
            ).fetchone()
        return bool(row and row[0])

    def snapshot(self, record: dict[str, Any]) -> str:
        """Freeze the table for one consuming DML; the DML reads the stream from this copy.

        fakesnow's MERGE writes fakesnow's own metadata database, so the DML and the offset can
        not share a DuckDB transaction. Reading from a snapshot and making that snapshot the new
        offset after the DML succeeded gives the same result: rows that arrive meanwhile are
        after the offset and stay in the stream.
        """
        database = ObjectName.from_fq(record["table"]).database
        snap = ".".join(dq(p) for p in (database, history.SCHEMA, "_emu_snap_" + uuid.uuid4().hex[:16]))
        with self.duck.cursor() as cur:
            cur.execute(f"CREATE TABLE {snap} AS SELECT * FROM {self._table(record)}")
        return snap

    def advance(self, fq: str, snap: str) -> None:
        record = self.registry.get("streams", fq)
        with self._lock, self.duck.cursor() as cur:
            if record:
                # Replaced, not refilled: the copy has the columns the DML read, which may differ
                # from the old offset's after a column change.
                cur.execute("BEGIN TRANSACTION")
                cur.execute(f"CREATE OR REPLACE TABLE {self._base(record)} AS SELECT * FROM {snap}")
                cur.execute("COMMIT")
            cur.execute(f"DROP TABLE IF EXISTS {snap}")

    def discard(self, snap: str) -> None:
        with self.duck.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {snap}")

    def show_rows(
        self, session: Session, like: str | None, scope: tuple[str, str | None] | None
    ) -> list[dict[str, Any]]:
        rows = []
        for fq, s in sorted(self.registry.items("streams")):
            if _in_scope(fq, session, scope) and _like(s["name"], like):
                rows.append(
                    {
                        "created_on": s["created_on"],
                        "name": s["name"],
                        "database_name": s["database"],
                        "schema_name": s["schema"],
                        "owner": "SYSADMIN",
                        "comment": s["comment"],
                        "table_name": s["table"],
                        "source_type": "Table",
                        "base_tables": s["table"],
                        "type": "DELTA",
                        "stale": "false",
                        "mode": "APPEND_ONLY",
                    }
                )
        return rows


class Tasks:
    def __init__(self, registry: Registry, duck: DuckDBPyConnection, execute: Executor) -> None:
        self.registry = registry
        self.duck = duck
        self.execute = execute
        self.running: dict[str, threading.Lock] = {}
        self.next_run: dict[str, float] = {}
        self.stop = threading.Event()
        # Test faults by task (fully qualified name): see set_fault.
        self.faults: dict[str, TaskFault] = {}
        # Taken around each statement a run executes, not around a held (``hang``) run, so a
        # held run does not keep other tasks from running, as in Snowflake.
        self.slots = threading.BoundedSemaphore(TASK_STATEMENT_SLOTS)
        # The most statements that held slots at once, for the emulator's own tests.
        self.busy = 0
        self.busiest = 0
        self._busy_lock = threading.Lock()

    def create(self, sql: str, session: Session) -> str:
        match = re.match(
            r"\s*CREATE\s+(OR\s+REPLACE\s+)?TASK\s+(IF\s+NOT\s+EXISTS\s+)?(" + QUALIFIED + r")(.*)$",
            sql,
            re.I | re.S,
        )
        if not match:
            raise syntax_error("expected CREATE [OR REPLACE] TASK <name> ... AS <statement>")
        replace, if_not_exists, raw_name, rest = match.groups()
        name = ObjectName.resolve(raw_name, session.database, session.schema)
        header, body = _split_as(rest)
        if body is None:
            raise syntax_error(f"CREATE TASK {name.name}: missing AS <sql statement>")
        condition = None
        when = re.search(r"\bWHEN\b", header, re.I)
        if when:
            condition = header[when.end() :].strip()
            header = header[: when.start()]
        props = parse_properties(header)
        after = re.search(r"\bAFTER\s+(" + QUALIFIED + r"(?:\s*,\s*" + QUALIFIED + r")*)", header, re.I)
        existing = self.registry.get("tasks", name.fq)
        if existing and not replace:
            if if_not_exists:
                return f"{name.name} already exists, statement succeeded."
            raise already_exists(name.name)
        schedule = unquote_string(props["SCHEDULE"]) if "SCHEDULE" in props else None
        if schedule and not re.fullmatch(
            r"\d+\s*(MINUTE|MINUTES|M|SECOND|SECONDS|S|HOUR|HOURS|H)|USING\s+CRON\s+.+", schedule, re.I
        ):
            raise sql_error(
                f"SQL compilation error:\ninvalid value [{schedule}] for parameter 'SCHEDULE'",
                errno=1008,
                sqlstate="22023",
            )
        _check_triggered(name.name, props, condition=condition, schedule=schedule, after=bool(after))
        record = {
            "name": name.name,
            "database": name.database,
            "schema": name.schema,
            "id": str(uuid.uuid4()),
            "created_on": utcnow().isoformat(),
            "warehouse": props["WAREHOUSE"].upper() if "WAREHOUSE" in props else None,
            "schedule": schedule,
            "allow_overlapping": props.get("ALLOW_OVERLAPPING_EXECUTION", "FALSE").upper() == "TRUE",
            "target_completion_interval": unquote_string(props["TARGET_COMPLETION_INTERVAL"])
            if "TARGET_COMPLETION_INTERVAL" in props
            else None,
            "comment": unquote_string(props.get("COMMENT", "''")),
            "predecessors": [p.strip() for p in after.group(1).split(",")] if after else [],
            "condition": condition,
            "definition": body.strip().rstrip(";"),
            "state": "suspended",
            "config": {k: v for k, v in props.items() if k not in ("SCHEDULE", "WAREHOUSE", "COMMENT")},
        }
        self.registry.put("tasks", name.fq, record)
        return f"Task {name.name} successfully created."

    def task(self, raw_name: str, session: Session) -> dict[str, Any]:
        name = ObjectName.resolve(raw_name, session.database, session.schema)
        record = self.registry.get("tasks", name.fq)
        if not record:
            raise does_not_exist("Task", name.fq)
        return record

    def drop(self, raw_name: str, session: Session, if_exists: bool) -> str:
        name = ObjectName.resolve(raw_name, session.database, session.schema)
        if not self.registry.remove("tasks", name.fq):
            if if_exists:
                return f"Drop statement executed successfully ({name.name} already dropped)."
            raise does_not_exist("Task", name.fq)
        return f"{name.name} successfully dropped."

    def alter(self, sql: str, session: Session) -> str:
        match = re.match(r"\s*ALTER\s+TASK\s+(IF\s+EXISTS\s+)?(" + QUALIFIED + r")\s+(.*)$", sql, re.I | re.S)
        if not match:
            raise syntax_error("expected ALTER TASK <name> RESUME | SUSPEND | SET ...")
        _, raw_name, action = match.groups()
        record = self.task(raw_name, session)
        fq = f"{record['database']}.{record['schema']}.{record['name']}"
        verb = action.strip().split(None, 1)[0].upper()
        if verb in ("RESUME", "SUSPEND"):
            record["state"] = "started" if verb == "RESUME" else "suspended"
            self.next_run.pop(fq, None)
        elif verb == "SET":
            props = parse_properties(action)
            if "SCHEDULE" in props:
                record["schedule"] = unquote_string(props["SCHEDULE"])
            if "WAREHOUSE" in props:
                record["warehouse"] = props["WAREHOUSE"].upper()
            if "COMMENT" in props:
                record["comment"] = unquote_string(props["COMMENT"])
            if "ALLOW_OVERLAPPING_EXECUTION" in props:
                record["allow_overlapping"] = props["ALLOW_OVERLAPPING_EXECUTION"].upper() == "TRUE"
        elif verb == "MODIFY":
            _, body = _split_as(action)
            if re.match(r"\s*MODIFY\s+WHEN\b", action, re.I):
                record["condition"] = action.strip()[len("MODIFY") :].strip()[len("WHEN") :].strip()
            elif body is not None:
                record["definition"] = body.strip().rstrip(";")
        else:
            raise syntax_error(f"unsupported ALTER TASK action '{verb}'")
        self.registry.put("tasks", fq, record)
        return "Statement executed successfully."

    def show_rows(
        self, session: Session, like: str | None, scope: tuple[str, str | None] | None
    ) -> list[dict[str, Any]]:
        rows = []
        for fq, t in sorted(self.registry.items("tasks")):
            if _in_scope(fq, session, scope) and _like(t["name"], like):
                rows.append(
                    {
                        "created_on": t["created_on"],
                        "name": t["name"],
                        "id": t["id"],
                        "database_name": t["database"],
                        "schema_name": t["schema"],
                        "owner": "SYSADMIN",
                        "comment": t["comment"],
                        "warehouse": t["warehouse"],
                        "schedule": t["schedule"],
                        "predecessors": "[]" if not t["predecessors"] else str(t["predecessors"]),
                        "state": t["state"],
                        "definition": t["definition"],
                        "condition": t["condition"],
                        "allow_overlapping_execution": str(t["allow_overlapping"]).lower(),
                        "target_completion_interval": t.get("target_completion_interval"),
                        "error_integration": None,
                        "last_committed_on": None,
                        "last_suspended_on": None,
                        "owner_role_type": "ROLE",
                        "config": None,
                        "budget": None,
                    }
                )
        return rows

    # --- runs ------------------------------------------------------------------------------
    def execute_task(self, raw_name: str, session: Session, scheduled_from: str = "EXECUTE TASK") -> str:
        record = self.task(raw_name, session)
        query_id = str(uuid.uuid4())
        scheduled = utcnow()
        with self.duck.cursor() as cur:
            history.ensure_tables(cur, record["database"])
            cur.execute(
                f"INSERT INTO {history.task_table(record['database'])} "
                "(QUERY_ID, NAME, DATABASE_NAME, SCHEMA_NAME, "
                "QUERY_TEXT, CONDITION_TEXT, STATE, SCHEDULED_TIME, ROOT_TASK_ID, GRAPH_VERSION, RUN_ID, "
                "SCHEDULED_FROM, ATTEMPT_NUMBER) VALUES (?, ?, ?, ?, ?, ?, 'SCHEDULED', ?, ?, 1, ?, ?, 1)",
                [
                    query_id,
                    record["name"],
                    record["database"],
                    record["schema"],
                    record["definition"],
                    record["condition"],
                    scheduled,
                    record["id"],
                    int(scheduled.timestamp() * 1000),
                    scheduled_from,
                ],
            )
        threading.Thread(
            target=self._run, args=(record, query_id), name=f"task-{record['name']}", daemon=True
        ).start()
        return query_id

    def _update(self, record: dict[str, Any], query_id: str, **columns: Any) -> None:
        assignments = ", ".join(f"{k.upper()} = ?" for k in columns)
        with self.duck.cursor() as cur:
            cur.execute(
                f"UPDATE {history.task_table(record['database'])} SET {assignments} WHERE QUERY_ID = ?",
                [*columns.values(), query_id],
            )

    def _run(self, record: dict[str, Any], query_id: str) -> None:
        """The worker thread: whatever it raises ends the run FAILED, never SCHEDULED/EXECUTING.

        A run left SCHEDULED or EXECUTING looks, to the verifier reading TASK_HISTORY, like a
        MERGE still in progress, so it would wait for it until its merge timeout.
        """
        fq = f"{record['database']}.{record['schema']}.{record['name']}"
        try:
            self._run_steps(record, query_id, fq)
        except BaseException as exc:
            log.exception("task %s run %s failed on its worker thread", fq, query_id)
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            self._fail_unfinished(
                record,
                query_id,
                f"local Snowflake emulator error ({type(exc).__name__}: {first_line}); "
                "see the snowflake log under the stack's state dir",
            )

    def _fail_unfinished(self, record: dict[str, Any], query_id: str, message: str) -> None:
        try:
            with self.duck.cursor() as cur:
                cur.execute(
                    f"UPDATE {history.task_table(record['database'])} SET STATE = 'FAILED', "
                    "COMPLETED_TIME = ?, ERROR_CODE = '000603', ERROR_MESSAGE = ? "
                    "WHERE QUERY_ID = ? AND STATE IN ('SCHEDULED', 'EXECUTING')",
                    [utcnow(), message, query_id],
                )
        except Exception:
            log.exception("could not record the failure of task run %s", query_id)

    def _run_steps(self, record: dict[str, Any], query_id: str, fq: str) -> None:
        lock = self.running.setdefault(fq, threading.Lock())
        if not lock.acquire(blocking=record["allow_overlapping"]):
            self._update(
                record,
                query_id,
                state="SKIPPED",
                completed_time=utcnow(),
                error_message="Skipped: the previous run of this task is still executing.",
            )
            return
        try:
            if record["condition"]:
                try:
                    _, rows = self._in_slot(
                        record["database"], record["schema"], f"SELECT {record['condition']}"
                    )
                    proceed = bool(rows and rows[0][0])
                except snowflake.connector.errors.Error as exc:
                    self._update(
                        record,
                        query_id,
                        state="FAILED",
                        completed_time=utcnow(),
                        error_code=str(getattr(exc, "errno", "")),
                        error_message=getattr(exc, "msg", str(exc)),
                    )
                    return
                if not proceed:
                    self._update(record, query_id, state="SKIPPED", completed_time=utcnow())
                    return
            self._update(record, query_id, state="EXECUTING", query_start_time=utcnow())
            self._injected_fault(fq)
            try:
                self._in_slot(record["database"], record["schema"], record["definition"])
            except snowflake.connector.errors.Error as exc:
                self._update(
                    record,
                    query_id,
                    state="FAILED",
                    completed_time=utcnow(),
                    error_code=f"{getattr(exc, 'errno', 0) or 0:06d}"[-6:],
                    error_message=getattr(exc, "msg", None) or str(exc),
                )
                return
            except Exception as exc:
                log.exception("task %s failed", fq)
                self._update(
                    record,
                    query_id,
                    state="FAILED",
                    completed_time=utcnow(),
                    error_code="000603",
                    error_message=str(exc).split("\n")[0],
                )
                return
            self._update(record, query_id, state="SUCCEEDED", completed_time=utcnow())
        finally:
            lock.release()

    def _in_slot(self, database: str, schema: str, sql: str) -> tuple[str, list[tuple[Any, ...]]]:
        with self.slots:
            with self._busy_lock:
                self.busy += 1
                self.busiest = max(self.busiest, self.busy)
            try:
                return self.execute(database, schema, sql)
            finally:
                with self._busy_lock:
                    self.busy -= 1

    # --- test faults -------------------------------------------------------------------------
    def set_fault(self, raw_name: str, kind: str, message: str | None = None) -> str:
        """Make the task's next runs ``hang`` once EXECUTING (until ``clear_fault``) or raise an
        ``error`` on their worker thread. Returns the task's fully qualified name."""
        if kind not in ("hang", "error"):
            raise ValueError(f"unknown task fault {kind!r}; expected 'hang' or 'error'")
        record = self.task(raw_name, Session(None, None))
        fq = f"{record['database']}.{record['schema']}.{record['name']}"
        previous = self.faults.get(fq)
        self.faults[fq] = TaskFault(kind, message or f"fault injected into task {fq}")
        if previous:
            previous.release.set()
        return fq

    def clear_fault(self, raw_name: str) -> str:
        """Remove the task's fault; runs hanging on it go on and run the task's statement."""
        record = self.task(raw_name, Session(None, None))
        fq = f"{record['database']}.{record['schema']}.{record['name']}"
        fault = self.faults.pop(fq, None)
        if fault:
            fault.release.set()
        return fq

    def fault_rows(self) -> list[dict[str, Any]]:
        return [{"task": fq, "fault": f.kind, "message": f.message} for fq, f in sorted(self.faults.items())]

    def _injected_fault(self, fq: str) -> None:
        fault = self.faults.get(fq)
        if fault is None:
            return
        if fault.kind == "error":
            raise RuntimeError(fault.message)
        while not fault.release.wait(0.5):
            if self.stop.is_set():
                raise RuntimeError(f"the local Snowflake emulator stopped while task {fq} was held")

    def recover(self) -> None:
        """Fail the runs a previous server process left SCHEDULED or EXECUTING (it stopped, so
        they never finish), as Snowflake would report a run that could not complete."""
        with self.duck.cursor() as cur:
            tables = cur.execute(
                "SELECT database_name FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                [history.SCHEMA, history.TASK_TABLE],
            ).fetchall()
            for (database,) in tables:
                cur.execute(
                    f"UPDATE {history.task_table(str(database))} SET STATE = 'FAILED', COMPLETED_TIME = ?, "
                    "ERROR_CODE = '000603', ERROR_MESSAGE = ? WHERE STATE IN ('SCHEDULED', 'EXECUTING')",
                    [utcnow(), "the local Snowflake emulator stopped before this run finished"],
                )

    def start(self) -> None:
        self.recover()
        threading.Thread(target=self._schedule, name="task-scheduler", daemon=True).start()

    def _schedule(self) -> None:
        while not self.stop.wait(1.0):
            now = time.monotonic()
            for fq, record in self.registry.items("tasks"):
                interval = _interval(record.get("schedule"))
                if record["state"] != "started" or interval is None:
                    continue
                due = self.next_run.setdefault(fq, now + interval.total_seconds())
                if now >= due:
                    self.next_run[fq] = now + interval.total_seconds()
                    try:
                        self.execute_task(fq, Session(None, None), scheduled_from="SCHEDULE")
                    except Exception:
                        log.exception("scheduled run of %s could not start", fq)


class TaskFault:
    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message
        self.release = threading.Event()


def _check_triggered(
    name: str, props: dict[str, str], *, condition: str | None, schedule: str | None, after: bool
) -> None:
    """A task with WHEN and neither SCHEDULE nor AFTER is a *triggered* task; run serverless (no
    WAREHOUSE) it must set TARGET_COMPLETION_INTERVAL, which Snowflake sizes its compute by
    (docs.snowflake.com/user-guide/tasks-triggered). Snowflake refuses such a task without it;
    the message is the emulator's own wording of that rule."""
    interval = props.get("TARGET_COMPLETION_INTERVAL")
    if interval is not None and not re.fullmatch(
        r"\d+\s*(SECOND|SECONDS|MINUTE|MINUTES|HOUR|HOURS)", unquote_string(interval), re.I
    ):
        raise sql_error(
            f"SQL compilation error:\ninvalid value [{unquote_string(interval)}] for parameter "
            "'TARGET_COMPLETION_INTERVAL'",
            errno=1008,
            sqlstate="22023",
        )
    if condition and not schedule and not after and "WAREHOUSE" not in props and interval is None:
        raise sql_error(
            f"SQL compilation error:\nTask {name}: a serverless triggered task (WHEN without SCHEDULE "
            "or WAREHOUSE) requires TARGET_COMPLETION_INTERVAL",
            errno=1008,
            sqlstate="22023",
        )


def _interval(schedule: str | None) -> timedelta | None:
    """SCHEDULE = 'N MINUTE' (or SECONDS/HOURS); CRON schedules are recorded but not run locally."""
    if not schedule:
        return None
    match = re.fullmatch(r"(\d+)\s*([A-Za-z]+)", schedule.strip())
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2).upper()
    if unit.startswith("S"):
        return timedelta(seconds=number)
    if unit.startswith("H"):
        return timedelta(hours=number)
    return timedelta(minutes=number)


def _split_as(text: str) -> tuple[str, str | None]:
    """Split at the first top-level AS keyword outside quotes and parentheses."""
    depth, i, quote = 0, 0, ""
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif (
            depth == 0
            and text[i : i + 2].upper() == "AS"
            and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_$"))
            and (i + 2 >= len(text) or not (text[i + 2].isalnum() or text[i + 2] in "_$"))
        ):
            return text[:i], text[i + 2 :]
        i += 1
    return text, None
