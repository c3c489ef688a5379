"""Snowpipe: storage integrations, pipe DDL, the SQS notification channel, and the loader.

One SQS queue per account (as Snowflake does) receives the bucket's ObjectCreated events; a
poller matches each object against every AUTO_INGEST pipe's stage location and PATTERN and
queues it; a pool of loader threads loads queued files concurrently, as Snowpipe's serverless
loads do (a file's own load, its COPY_HISTORY row and its rows stay one transaction; files of
one pipe carry no order in Snowflake either). An object whose event never
arrives is not loaded until ``ALTER PIPE ... REFRESH``, exactly the failure a real account has.
Load history (per pipe, 14 days in Snowflake, forever here) makes every file load at most once.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import duckdb
from duckdb import DuckDBPyConnection
from fakesnow.dialect import parse_one
from fakesnow.transforms.options import parse_options as _fakesnow_parse_options
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
from .csv_load import HISTORY_RESULT_SET, LoadSpec, load_csv

log = logging.getLogger("aurora_sync.snowflake.pipes")

PROPERTY = re.compile(r"([A-Za-z_]+)\s*=\s*('(?:[^']|'')*'|\([^)]*\)|[^\s,()]+)", re.S)
REFRESH_WINDOW = timedelta(days=7)
MAX_COPY_FILES = 1000  # COPY INTO <table> ... FILES = (...): Snowflake's limit on the names listed
# Loader threads. One thread loaded a 401-table run's files one after another (issue 15);
# DuckDB runs the loads side by side, each on its own cursor (appends to one table and updates of
# different COPY_HISTORY rows do not conflict), and releases the GIL while it parses and inserts.
DEFAULT_LOADERS = 4
MAX_LOADERS = 16


def parse_options(properties: Any) -> dict[str, Any]:
    """fakesnow's option parser, also for ``FILE_FORMAT = db.schema.name`` (a bare object name,
    valid Snowflake, which it rejects): the name becomes the string FORMAT_NAME = 'db.schema.name'."""
    normalized = []
    for prop in properties:
        value = prop.args.get("value") if isinstance(prop, exp.Property) else None
        if isinstance(value, (exp.Table, exp.Column, exp.Dot)):
            named = prop.copy()
            named.set("value", exp.Literal.string(value.sql("snowflake")))
            normalized.append(named)
        else:
            normalized.append(prop)
    return _fakesnow_parse_options(normalized)


def parse_properties(text: str) -> dict[str, str]:
    return {m.group(1).upper(): m.group(2) for m in PROPERTY.finditer(text)}


@dataclass
class Session:
    database: str | None
    schema: str | None


class Pipes:
    def __init__(
        self,
        *,
        registry: Registry,
        duck: DuckDBPyConnection,
        aws: Callable[[str], Any],
        queue_arn: str,
        queue_url: str,
        work_dir: Path,
        iam_user_arn: str,
    ) -> None:
        self.registry = registry
        self.duck = duck
        self.aws = aws
        self.queue_arn = queue_arn
        self.queue_url = queue_url
        self.iam_user_arn = iam_user_arn
        self.work_dir = work_dir
        self.work: queue.Queue[str] = queue.Queue()
        self.stop = threading.Event()
        self.last_received: dict[str, str] = {}
        self.loading: dict[str, str] = {}  # pending key -> pipe while its load runs
        self.loaders = DEFAULT_LOADERS
        self._threads: list[threading.Thread] = []
        self._claim = threading.Lock()  # guards ``loading``: a key queued twice loads once
        self._s3_client: Any = None

    # --- storage integrations ---------------------------------------------------------------
    def create_integration(self, sql: str) -> str:
        match = re.match(
            r"\s*CREATE\s+(OR\s+REPLACE\s+)?(?:STORAGE\s+)?INTEGRATION\s+(IF\s+NOT\s+EXISTS\s+)?"
            r"(" + QUALIFIED + r")\s*(.*)$",
            sql,
            re.I | re.S,
        )
        if not match:
            raise syntax_error(
                "expected CREATE [OR REPLACE] STORAGE INTEGRATION <name> TYPE = EXTERNAL_STAGE ..."
            )
        replace, if_not_exists, raw_name, rest = match.groups()
        name = ObjectName.resolve(raw_name, "-", "-").name
        props = parse_properties(rest)
        existing = self.registry.get("integrations", name)
        if existing and not replace:
            if if_not_exists:
                return f"{name} already exists, statement succeeded."
            raise already_exists(name)
        for required in ("TYPE", "STORAGE_PROVIDER", "ENABLED"):
            if required not in props:
                raise syntax_error(f"missing option {required} for CREATE STORAGE INTEGRATION {name}")
        provider = unquote_string(props["STORAGE_PROVIDER"]).upper()
        if provider == "S3" and "STORAGE_AWS_ROLE_ARN" not in props:
            raise syntax_error(f"missing option STORAGE_AWS_ROLE_ARN for STORAGE_PROVIDER = 'S3' in {name}")

        def locations(key: str) -> list[str]:
            value = props.get(key, "()").strip().strip("()")
            return [unquote_string(v) for v in re.findall(r"'(?:[^']|'')*'", value)]

        record = {
            "name": name,
            "type": props["TYPE"].upper(),
            "category": "STORAGE",
            "enabled": props["ENABLED"].upper() == "TRUE",
            "provider": provider,
            "role_arn": unquote_string(props.get("STORAGE_AWS_ROLE_ARN", "''")),
            "allowed": locations("STORAGE_ALLOWED_LOCATIONS"),
            "blocked": locations("STORAGE_BLOCKED_LOCATIONS"),
            "comment": unquote_string(props.get("COMMENT", "''")),
            "created_on": utcnow().isoformat(),
            # STORAGE_AWS_EXTERNAL_ID when given, as in Snowflake; otherwise one is generated, and
            # kept across CREATE OR REPLACE.
            "external_id": unquote_string(props["STORAGE_AWS_EXTERNAL_ID"])
            if "STORAGE_AWS_EXTERNAL_ID" in props
            else (existing or {}).get("external_id")
            or f"AURORA_SYNC_LOCAL_SFCRole=2_{uuid.uuid4().hex[:20]}=",
        }
        self.registry.put("integrations", name, record)
        return f"Integration {name} successfully created."

    def alter_integration(self, sql: str) -> str:
        """ALTER [STORAGE] INTEGRATION [IF EXISTS] <name> SET <property> = <value> ...: the role and
        external id an existing integration presents, changed in place (its stages keep working)."""
        match = re.match(
            r"\s*ALTER\s+(?:STORAGE\s+)?INTEGRATION\s+(IF\s+EXISTS\s+)?(" + QUALIFIED + r")\s+SET\b(.*)$",
            sql,
            re.I | re.S,
        )
        if not match:
            raise syntax_error("expected ALTER STORAGE INTEGRATION <name> SET <property> = <value> ...")
        if_exists, raw_name, rest = match.groups()
        name = ObjectName.resolve(raw_name, "-", "-").name
        record = self.registry.get("integrations", name)
        if not record:
            if if_exists:
                return "Statement executed successfully."
            raise does_not_exist("Integration", name)
        props = parse_properties(rest)
        settable = {
            "STORAGE_AWS_ROLE_ARN": "role_arn",
            "STORAGE_AWS_EXTERNAL_ID": "external_id",
            "COMMENT": "comment",
        }
        for key, value in props.items():
            if key == "ENABLED":
                record["enabled"] = value.upper() == "TRUE"
            elif key in settable:
                record[settable[key]] = unquote_string(value)
            else:
                raise syntax_error(f"ALTER STORAGE INTEGRATION: property {key} is not emulated")
        self.registry.put("integrations", name, record)
        return "Statement executed successfully."

    def integration(self, raw_name: str) -> dict[str, Any]:
        name = ObjectName.resolve(raw_name, "-", "-").name
        record = self.registry.get("integrations", name)
        if not record:
            raise does_not_exist("Integration", name)
        return record

    def describe_integration(self, raw_name: str) -> list[tuple[str, str, str, str]]:
        i = self.integration(raw_name)
        return [
            ("ENABLED", "Boolean", str(i["enabled"]).lower(), "false"),
            ("STORAGE_PROVIDER", "String", i["provider"], ""),
            ("STORAGE_ALLOWED_LOCATIONS", "List", ",".join(i["allowed"]), "[]"),
            ("STORAGE_BLOCKED_LOCATIONS", "List", ",".join(i["blocked"]), "[]"),
            ("STORAGE_AWS_IAM_USER_ARN", "String", self.iam_user_arn, ""),
            ("STORAGE_AWS_ROLE_ARN", "String", i["role_arn"], ""),
            ("STORAGE_AWS_EXTERNAL_ID", "String", i["external_id"], ""),
            ("COMMENT", "String", i["comment"], ""),
        ]

    def drop_integration(self, raw_name: str, if_exists: bool) -> str:
        name = ObjectName.resolve(raw_name, "-", "-").name
        if not self.registry.remove("integrations", name) and not if_exists:
            raise does_not_exist("Integration", name)
        return f"{name} successfully dropped."

    # --- stages and file formats (recorded; fakesnow keeps its own copy in memory) ----------
    def record_stage(self, statement: exp.Create, session: Session) -> None:
        table = statement.this if isinstance(statement.this, exp.Table) else statement.find(exp.Table)
        assert table is not None
        name = ObjectName.resolve(table.sql("snowflake"), session.database, session.schema)
        props = statement.args.get("properties")
        url, integration, file_format = "", None, {}
        for prop in props.expressions if props else []:
            if isinstance(prop, exp.FileFormatProperty):
                file_format = parse_options(prop.expressions)
            elif isinstance(prop, exp.Property) and prop.name.upper() == "URL":
                url = prop.args["value"].name
            elif isinstance(prop, exp.Property) and prop.name.upper() == "STORAGE_INTEGRATION":
                integration = prop.args["value"].name.upper()
        if integration:
            record = self.integration(integration)
            if (
                url
                and record["allowed"]
                and not any(
                    a == "*" or url.startswith(a.rstrip("/") + "/") or url == a for a in record["allowed"]
                )
            ):
                raise sql_error(
                    f"SQL execution error:\nLocation '{url}' is not allowed by integration '{integration}'. "
                    "Please use DESC INTEGRATION to check out allowed and blocked locations.",
                    errno=3021,
                    sqlstate="22000",
                )
        qualified = statement.copy()
        qualified.set("this", exp.to_table(name.table_sql(), dialect="snowflake"))
        qualified.set("replace", True)
        qualified.set("exists", False)
        self.registry.put(
            "stages",
            name.fq,
            {
                "url": url,
                "integration": integration,
                "file_format": file_format,
                "ddl": qualified.sql("snowflake"),
                "created_on": utcnow().isoformat(),
            },
        )

    def record_file_format(self, statement: exp.Create, session: Session) -> None:
        table = statement.this if isinstance(statement.this, exp.Table) else statement.find(exp.Table)
        assert table is not None
        name = ObjectName.resolve(table.sql("snowflake"), session.database, session.schema)
        props = statement.args.get("properties")
        options = parse_options(props.expressions if props else [])
        qualified = statement.copy()
        qualified.set("this", exp.to_table(name.table_sql(), dialect="snowflake"))
        qualified.set("replace", True)
        qualified.set("exists", False)
        self.registry.put("file_formats", name.fq, {"options": options, "ddl": qualified.sql("snowflake")})

    def forget(self, kind: str, raw_name: str, session: Session) -> None:
        self.registry.remove(kind, ObjectName.resolve(raw_name, session.database, session.schema).fq)

    # --- pipes ------------------------------------------------------------------------------
    def create_pipe(self, sql: str, session: Session) -> str:
        match = re.match(
            r"\s*CREATE\s+(OR\s+REPLACE\s+)?PIPE\s+(IF\s+NOT\s+EXISTS\s+)?("
            + QUALIFIED
            + r")(.*?)\bAS\s+(COPY\s+INTO\b.*)$",
            sql,
            re.I | re.S,
        )
        if not match:
            raise syntax_error(
                "expected CREATE [OR REPLACE] PIPE [IF NOT EXISTS] <name> [AUTO_INGEST = TRUE] "
                "AS COPY INTO ..."
            )
        replace, if_not_exists, raw_name, props_text, copy_sql = match.groups()
        name = ObjectName.resolve(raw_name, session.database, session.schema)
        props = parse_properties(props_text)
        if self.registry.get("pipes", name.fq) and not replace:
            if if_not_exists:
                return f"{name.name} already exists, statement succeeded."
            raise already_exists(name.name)
        copy_sql = copy_sql.strip().rstrip(";")
        definition = self._parse_copy(copy_sql, name)
        record = {
            **definition,
            "name": name.name,
            "database": name.database,
            "schema": name.schema,
            "id": uuid.uuid4().hex,
            "created_on": utcnow().isoformat(),
            "auto_ingest": props.get("AUTO_INGEST", "FALSE").upper() == "TRUE",
            "comment": unquote_string(props.get("COMMENT", "''")),
            "integration": unquote_string(props["INTEGRATION"]) if "INTEGRATION" in props else None,
            "paused": False,
        }
        with self.registry.lock:
            # A recreated pipe is a new object: its load history and queue go with the old one.
            self._drop_history(name)
            self.registry.put("pipes", name.fq, record)
        return f"Pipe {name.name} successfully created."

    def _parse_copy(  # noqa: PLR0915 - one pass over the COPY's clauses
        self, copy_sql: str, pipe: ObjectName, *, standalone: bool = False
    ) -> dict[str, Any]:
        """A COPY INTO <table> FROM @stage: a pipe's definition, or (``standalone``) a statement
        run in a session, which also takes FILES, FORCE and ON_ERROR = ABORT_STATEMENT (its
        default). ``pipe`` names the pipe, or carries only the session's database and schema."""
        statement = parse_one(copy_sql)
        if not isinstance(statement, exp.Copy):
            raise syntax_error("a pipe's definition must be a COPY INTO <table> statement")
        target_node = statement.this
        columns = None
        if isinstance(target_node, exp.Schema):
            columns = [c.name if c.quoted else c.name.upper() for c in target_node.expressions]
            target_node = target_node.this
        target = ObjectName.resolve(target_node.sql("snowflake"), pipe.database, pipe.schema)
        source = statement.args["files"][0]
        select = None
        if isinstance(source, exp.Subquery) and isinstance(source.this, exp.Select):
            query = source.this
            if query.args.get("where"):
                raise syntax_error("a pipe's COPY transform must be a plain SELECT (no WHERE)")
            select = [e.sql("snowflake") for e in query.expressions]
            from_ = query.args["from_"].this
            location = from_.this.name if isinstance(from_.this, exp.Var) else from_.sql("snowflake")
        else:
            location = source.this.name if isinstance(source, exp.Table) else source.sql("snowflake")
        if not location.startswith("@"):
            raise syntax_error("a pipe must load from a stage (@stage[/path])")
        stage_ref, _, path = location[1:].partition("/")
        stage_name = ObjectName.resolve(stage_ref, pipe.database, pipe.schema)
        stage = self.registry.get("stages", stage_name.fq)
        if not stage:
            raise does_not_exist("Stage", stage_name.fq)
        if not stage["url"].startswith("s3://"):
            raise sql_error(
                f"SQL compilation error:\nPipe {pipe.name}: the emulator loads from external S3 stages only "
                f"(stage {stage_name.fq} has no s3:// URL)",
                errno=2000,
                sqlstate="0A000",
            )
        if not self._table_exists(target):
            raise does_not_exist("Table", target.fq)
        pattern, on_error, file_format = None, "ABORT_STATEMENT" if standalone else "SKIP_FILE", {}
        files: list[str] | None = None
        force = False
        for param in statement.args.get("params") or []:
            key = param.this.name.upper()
            if key == "FILE_FORMAT":
                file_format = parse_options(param.expressions)
            elif key == "PATTERN":
                pattern = param.expression.name
            elif key == "ON_ERROR":
                on_error = param.expression.name.upper()
            elif standalone and key == "FILES":
                values = param.expressions or [param.expression]
                files = [
                    v.name
                    for node in values
                    for v in (node.expressions if isinstance(node, exp.Tuple) else [node])
                ]
                if len(files) > MAX_COPY_FILES:
                    # COPY INTO <table>, FILES: "The maximum number of file names that can be
                    # specified is 1000." (The error's wording is ours; its number is checked on
                    # a real account by tests/contract/test_snowflake_account.py.)
                    raise sql_error(
                        f"SQL compilation error:\nFILES names {len(files)} files; at most "
                        f"{MAX_COPY_FILES} can be specified",
                        errno=2000,
                        sqlstate="42601",
                    )
            elif standalone and key == "FORCE":
                force = param.expression.name.upper() == "TRUE" or (
                    isinstance(param.expression, exp.Boolean) and bool(param.expression.this)
                )
            elif key in ("FILES", "PURGE", "FORCE", "VALIDATION_MODE", "RETURN_FAILED_ONLY"):
                raise sql_error(
                    f"SQL compilation error:\nCopy option {key} is not supported in a pipe definition",
                    errno=2000,
                    sqlstate="0A000",
                )
        if on_error == "ABORT_STATEMENT" and not standalone:
            raise sql_error(
                "SQL compilation error:\nON_ERROR = ABORT_STATEMENT is not supported for pipes; use "
                "SKIP_FILE (the default), SKIP_FILE_<n>, SKIP_FILE_<n>% or CONTINUE",
                errno=2000,
                sqlstate="0A000",
            )
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise syntax_error(f"invalid PATTERN '{pattern}': {exc}") from None
        return {
            "definition": copy_sql,
            "target": target.fq,
            "columns": columns,
            "select": select,
            "stage": stage_name.fq,
            "stage_url": stage["url"],
            "path": path,
            "pattern": pattern,
            "on_error": on_error,
            "file_format": file_format,
            "files": files,
            "force": force,
            "database": pipe.database,
            "schema": pipe.schema,
        }

    # --- COPY INTO <table> in a session ------------------------------------------------------
    def copy_into(self, sql: str, session: Session) -> tuple[list[str], list[list[Any]]]:
        """Run a COPY INTO <table> FROM @<external stage> synchronously; its result rows.

        As Snowflake documents it: FILES names files relative to the FROM location; files this
        table's bulk-load metadata shows as loaded are skipped unless FORCE = TRUE; with
        ON_ERROR = ABORT_STATEMENT (the default for COPY) a bad record or missing file fails the
        statement and nothing is loaded; otherwise one result row per file (``file`` is the
        file's URL). No file to load answers the single ``status`` row Snowflake gives.
        """
        context = ObjectName(session.database or "-", session.schema or "-", "COPY")
        copy = self._parse_copy(sql.strip().rstrip(";"), context, standalone=True)
        target = ObjectName.from_fq(copy["target"])
        stage_url = copy["stage_url"].rstrip("/") + "/"
        base = stage_url + copy["path"].lstrip("/")
        if copy["files"] is not None:
            urls = [base + name for name in copy["files"]]
        else:
            bucket, _, prefix = base[len("s3://") :].partition("/")
            listed = self.aws("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            urls = [f"s3://{bucket}/{o['Key']}" for page in listed for o in page.get("Contents", [])]
            if copy["pattern"]:
                urls = [u for u in urls if re.fullmatch(copy["pattern"], u[len(stage_url) :])]
        columns = [
            "file",
            "status",
            "rows_parsed",
            "rows_loaded",
            "error_limit",
            "errors_seen",
            "first_error",
            "first_error_line",
            "first_error_character",
            "first_error_column_name",
        ]
        rows: list[list[Any]] = []
        with self.duck.cursor() as cur:
            history.ensure_tables(cur, target.database)
            table = history.copy_table(target.database)
            if not copy["force"]:
                loaded = {
                    str(r[0])
                    for r in cur.execute(
                        f"SELECT FILE_URL FROM {table} WHERE PIPE_FQ IS NULL AND STATUS = 'Loaded' "
                        "AND TABLE_CATALOG_NAME = ? AND TABLE_SCHEMA_NAME = ? AND TABLE_NAME = ?",
                        list(target.parts()),
                    ).fetchall()
                }
                urls = [u for u in urls if u not in loaded]
            if not urls:
                return ["status"], [["Copy executed with 0 files processed."]]
            options = self._file_format(copy)
            cur.execute("BEGIN TRANSACTION")
            try:
                for url in urls:
                    rows.append(self._copy_file(cur, copy, (target, table), url, (stage_url, options)))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return columns, rows

    def _copy_file(
        self,
        cur: DuckDBPyConnection,
        copy: dict[str, Any],
        into: tuple[ObjectName, str],  # the target, and its database's copy history table
        url: str,
        source: tuple[str, dict[str, Any]],  # the stage's URL, and the file format's options
    ) -> list[Any]:
        target, table = into
        stage_url, options = source
        load_id = uuid.uuid4().hex
        now = utcnow()
        file_name = url[len(stage_url) :]
        abort = copy["on_error"] == "ABORT_STATEMENT"
        bucket, _, key = url[len("s3://") :].partition("/")
        fd, path = tempfile.mkstemp(prefix="copy-", suffix=os.path.basename(key), dir=self.work_dir)
        os.close(fd)
        try:
            try:
                self._download(bucket, key, path)
            except Exception as exc:  # noqa: BLE001 - the statement's error, as Snowflake words it
                message = f"Remote file '{url}' was not found or could not be read: {type(exc).__name__}"
                if abort:
                    raise sql_error(message, errno=100038, sqlstate="22000") from None
                return [url, "LOAD_FAILED", 0, 0, 1, 1, message, None, None, None]
            cur.execute(
                f"INSERT INTO {table} (LOAD_ID, PIPE_FQ, FILE_URL, FILE_NAME, STAGE_LOCATION, "
                "LAST_LOAD_TIME, ROW_COUNT, ROW_PARSED, FILE_SIZE, ERROR_COUNT, ERROR_LIMIT, STATUS, "
                "TABLE_CATALOG_NAME, TABLE_SCHEMA_NAME, TABLE_NAME) "
                "VALUES (?, NULL, ?, ?, ?, ?, 0, 0, ?, 0, 1, 'Load in progress', ?, ?, ?)",
                [load_id, url, file_name, copy["stage_url"], now, os.path.getsize(path), *target.parts()],
            )
            spec = LoadSpec(
                target=target,
                columns=copy["columns"],
                select=copy["select"],
                options=options,
                on_error="SKIP_FILE" if abort else copy["on_error"],
                file_name=file_name,
                extra={
                    "METADATA$START_SCAN_TIME": f"CAST('{now.isoformat()}' AS TIMESTAMPTZ)",
                    "METADATA$FILE_LAST_MODIFIED": f"CAST('{now.isoformat()}' AS TIMESTAMPTZ)",
                    "METADATA$FILE_CONTENT_KEY": f"'{load_id}'",
                },
            )
            update = (
                f"UPDATE {table} SET {HISTORY_RESULT_SET}, LAST_LOAD_TIME = ?, FIRST_COMMIT_TIME = ? "
                "WHERE LOAD_ID = ?"
            )
            try:
                result = load_csv(cur, path, spec, (update, [utcnow(), utcnow(), load_id]), transaction=False)
            except (LookupError, duckdb.Error) as exc:
                raise sql_error(str(exc).split("\n")[0], errno=100038, sqlstate="22000") from None
        finally:
            os.unlink(path)
        if abort and result.error_count:
            line = result.first_error_line_number
            raise sql_error(
                f"{result.first_error_message}\n  File '{file_name}', line {line}, character "
                f"{result.first_error_character_pos}\n  Row {line}, column {result.first_error_column_name}\n"
                "  If you would like to continue loading when an error is encountered, use other values "
                "such as 'SKIP_FILE' or 'CONTINUE' for the ON_ERROR option.",
                errno=100038,
                sqlstate="22018",
            )
        status = {"Loaded": "LOADED", "Partially loaded": "PARTIALLY_LOADED"}.get(
            result.status, "LOAD_FAILED"
        )
        return [
            url,
            status,
            result.row_parsed,
            result.row_count,
            result.error_limit,
            result.error_count,
            result.first_error_message,
            result.first_error_line_number,
            result.first_error_character_pos,
            result.first_error_column_name,
        ]

    def _table_exists(self, name: ObjectName) -> bool:
        with self.duck.cursor() as cur:
            row = cur.execute(
                "SELECT 1 FROM duckdb_tables() "
                "WHERE database_name = ? AND schema_name = ? AND table_name = ?",
                list(name.parts()),
            ).fetchone()
        return row is not None

    def pipe(self, raw_name: str, session: Session) -> dict[str, Any]:
        name = ObjectName.resolve(raw_name, session.database, session.schema)
        record = self.registry.get("pipes", name.fq)
        if not record:
            raise does_not_exist("Pipe", name.fq)
        return record

    def drop_pipe(self, raw_name: str, session: Session, if_exists: bool) -> str:
        name = ObjectName.resolve(raw_name, session.database, session.schema)
        with self.registry.lock:
            if not self.registry.get("pipes", name.fq):
                if if_exists:
                    return f"Drop statement executed successfully ({name.name} already dropped)."
                raise does_not_exist("Pipe", name.fq)
            self._drop_history(name)
            self.registry.remove("pipes", name.fq)
        return f"{name.name} successfully dropped."

    def _drop_history(self, name: ObjectName) -> None:
        for key, item in self.registry.items("pending"):
            if item["pipe"] == name.fq:
                self.registry.remove("pending", key)
        old = self.registry.get("pipes", name.fq)
        if not old:
            return
        database = ObjectName.from_fq(old["target"]).database
        with self.duck.cursor() as cur:
            history.ensure_tables(cur, database)
            cur.execute(f"DELETE FROM {history.copy_table(database)} WHERE PIPE_FQ = ?", [name.fq])

    def alter_pipe(self, sql: str, session: Session) -> tuple[str, list[tuple[str, str]] | None]:
        match = re.match(r"\s*ALTER\s+PIPE\s+(IF\s+EXISTS\s+)?(" + QUALIFIED + r")\s+(.*)$", sql, re.I | re.S)
        if not match:
            raise syntax_error("expected ALTER PIPE <name> REFRESH | SET ...")
        _, raw_name, action = match.groups()
        pipe = self.pipe(raw_name, session)
        fq = f"{pipe['database']}.{pipe['schema']}.{pipe['name']}"
        verb = action.strip().split(None, 1)[0].upper()
        props = parse_properties(action)
        if verb == "REFRESH":
            prefix = unquote_string(props.get("PREFIX", "''"))
            after = unquote_string(props["MODIFIED_AFTER"]) if "MODIFIED_AFTER" in props else None
            return "", self.refresh(pipe, prefix, after)
        if verb == "SET":
            with self.registry.lock:
                record = self.registry.get("pipes", fq)
                assert record is not None
                if "PIPE_EXECUTION_PAUSED" in props:
                    record["paused"] = props["PIPE_EXECUTION_PAUSED"].upper() == "TRUE"
                if "COMMENT" in props:
                    record["comment"] = unquote_string(props["COMMENT"])
                self.registry.put("pipes", fq, record)
            if not record["paused"]:
                self._requeue(fq)
            return "Statement executed successfully.", None
        if verb == "UNSET":
            return "Statement executed successfully.", None
        raise syntax_error(
            f"unsupported ALTER PIPE action '{verb}'; use REFRESH or SET PIPE_EXECUTION_PAUSED"
        )

    def show_rows(
        self, session: Session, like: str | None, scope: tuple[str, str | None] | None
    ) -> list[dict[str, Any]]:
        rows = []
        for fq, p in sorted(self.registry.items("pipes")):
            if not _in_scope(fq, session, scope) or not _like(p["name"], like):
                continue
            rows.append(
                {
                    "created_on": p["created_on"],
                    "name": p["name"],
                    "database_name": p["database"],
                    "schema_name": p["schema"],
                    "definition": p["definition"],
                    "owner": "SYSADMIN",
                    "notification_channel": self.queue_arn if p["auto_ingest"] else None,
                    "comment": p["comment"],
                    "integration": p["integration"],
                    "pattern": p["pattern"],
                    "error_integration": None,
                    "owner_role_type": "ROLE",
                    "invalid_reason": None,
                    "kind": "STAGE",
                }
            )
        return rows

    # --- notifications and queueing ---------------------------------------------------------
    def _matches(self, pipe: dict[str, Any], url: str) -> str | None:
        """The path relative to the stage when ``url`` is a file this pipe loads, else None."""
        stage_url = pipe["stage_url"].rstrip("/") + "/"
        if not url.startswith(stage_url + pipe["path"].lstrip("/")) or url.endswith("/"):
            return None
        relative = url[len(stage_url) :]
        # Snowpipe matches PATTERN against the path after the stage's own location.
        if pipe["pattern"] and not re.fullmatch(pipe["pattern"], relative):
            return None
        return relative

    def _known(self, fq: str, file_name: str) -> bool:
        if self.registry.get("pending", f"{fq}|{file_name}"):
            return True
        target = ObjectName.from_fq(self.registry.get("pipes", fq)["target"])  # type: ignore[index]
        with self.duck.cursor() as cur:
            history.ensure_tables(cur, target.database)
            row = cur.execute(
                f"SELECT 1 FROM {history.copy_table(target.database)} WHERE PIPE_FQ = ? AND FILE_NAME = ?",
                [fq, file_name],
            ).fetchone()
        return row is not None

    def enqueue(self, fq: str, url: str, file_name: str, size: int | None) -> bool:
        with self.registry.lock:
            if self._known(fq, file_name):
                return False
            key = f"{fq}|{file_name}"
            self.registry.put(
                "pending",
                key,
                {
                    "pipe": fq,
                    "url": url,
                    "file_name": file_name,
                    "size": size,
                    "received": utcnow().isoformat(),
                },
            )
        self.work.put(key)
        return True

    def on_object(self, bucket: str, key: str, size: int | None) -> None:
        url = f"s3://{bucket}/{key}"
        for fq, pipe in self.registry.items("pipes"):
            if not pipe["auto_ingest"]:
                continue
            relative = self._matches(pipe, url)
            if relative is not None:
                self.last_received[fq] = utcnow().isoformat()
                self.enqueue(fq, url, relative, size)

    def refresh(self, pipe: dict[str, Any], prefix: str, modified_after: str | None) -> list[tuple[str, str]]:
        fq = f"{pipe['database']}.{pipe['schema']}.{pipe['name']}"
        stage_url = pipe["stage_url"].rstrip("/") + "/"
        bucket, _, stage_key = stage_url[len("s3://") :].partition("/")
        list_prefix = stage_key + pipe["path"].lstrip("/") + prefix.lstrip("/")
        cutoff = utcnow() - REFRESH_WINDOW
        if modified_after:
            from datetime import datetime

            cutoff = max(cutoff, datetime.fromisoformat(modified_after.replace("Z", "+00:00")))
        s3 = self.aws("s3")
        sent = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=list_prefix):
            for obj in page.get("Contents", []):
                if obj["LastModified"] < cutoff:
                    continue
                url = f"s3://{bucket}/{obj['Key']}"
                relative = self._matches(pipe, url)
                if relative is not None and self.enqueue(fq, url, relative, int(obj["Size"])):
                    sent.append((relative, "SENT"))
        return sent

    def _requeue(self, fq: str) -> None:
        for key, item in self.registry.items("pending"):
            if item["pipe"] == fq:
                self.work.put(key)

    def status(self, raw_name: str, session: Session) -> str:
        pipe = self.pipe(raw_name, session)
        fq = f"{pipe['database']}.{pipe['schema']}.{pipe['name']}"
        pending = sorted(
            (item["received"], item["file_name"])
            for _, item in self.registry.items("pending")
            if item["pipe"] == fq
        )
        target = ObjectName.from_fq(pipe["target"])
        with self.duck.cursor() as cur:
            history.ensure_tables(cur, target.database)
            last = cur.execute(
                f"SELECT FILE_NAME, LAST_LOAD_TIME FROM {history.copy_table(target.database)} "
                "WHERE PIPE_FQ = ? AND STATUS IN ('Loaded', 'Partially loaded') "
                "ORDER BY LAST_LOAD_TIME DESC LIMIT 1",
                [fq],
            ).fetchone()
        outstanding = 0
        try:
            attributes = self.aws("sqs").get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            outstanding = int(attributes.get("ApproximateNumberOfMessages", 0))
        except Exception as exc:  # noqa: BLE001 - the status still answers; the fault says why
            log.warning("cannot read the notification queue: %s", exc)
        status: dict[str, Any] = {
            "executionState": "PAUSED" if pipe["paused"] else "RUNNING",
            "pendingFileCount": len(pending),
        }
        if pipe["auto_ingest"]:
            status["notificationChannelName"] = self.queue_arn
            status["numOutstandingMessagesOnChannel"] = outstanding
            if fq in self.last_received:
                status["lastReceivedMessageTimestamp"] = _zulu(self.last_received[fq])
        if last:
            status["lastIngestedTimestamp"] = _zulu(last[1].isoformat())
            status["lastIngestedFilePath"] = last[0]
        if pending:
            status["oldestPendingFilePath"] = pending[0][1]
        return json.dumps(status, separators=(",", ":"))

    # --- background threads -----------------------------------------------------------------
    def start(self) -> None:
        for key, _ in self.registry.items("pending"):
            self.work.put(key)
        threading.Thread(target=self._poll, name="snowpipe-notifications", daemon=True).start()
        self.set_loaders(self.loaders)

    def set_loaders(self, loaders: int | None) -> int:
        """Run ``loaders`` loader threads from now on (None: the default); returns the number.

        Threads beyond the number idle rather than end, so lowering and raising it is cheap.
        """
        count = DEFAULT_LOADERS if loaders is None else loaders
        if not 1 <= count <= MAX_LOADERS:
            raise ValueError(f"loaders must be between 1 and {MAX_LOADERS}, not {count}")
        self.loaders = count
        while len(self._threads) < count:
            index = len(self._threads)
            thread = threading.Thread(
                target=self._load_loop, args=(index,), name=f"snowpipe-loader-{index}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        return count

    def _poll(self) -> None:
        sqs = self.aws("sqs")
        while not self.stop.is_set():
            try:
                response = sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                )
            except Exception as exc:  # noqa: BLE001 - moto restarting; keep polling
                log.warning("notification queue unavailable: %s", exc)
                time.sleep(1)
                continue
            handled: list[dict[str, str]] = []
            for message in response.get("Messages", []):
                try:
                    body = json.loads(message["Body"])
                    for record in body.get("Records", []):
                        if str(record.get("eventName", "")).startswith("ObjectCreated"):
                            s3 = record["s3"]
                            self.on_object(
                                s3["bucket"]["name"],
                                unquote_plus(s3["object"]["key"]),
                                s3["object"].get("size"),
                            )
                except (ValueError, KeyError) as exc:
                    log.warning("ignored a malformed notification: %s", exc)
                handled.append({"Id": str(len(handled)), "ReceiptHandle": message["ReceiptHandle"]})
            if handled:
                # One call for the batch: a call per message kept the poller behind a large run.
                sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=handled)

    def _load_loop(self, index: int) -> None:
        while not self.stop.is_set():
            if index >= self.loaders:
                self.stop.wait(0.5)
                continue
            try:
                key = self.work.get(timeout=0.5)
            except queue.Empty:
                continue
            item = self.registry.get("pending", key)
            if not item:
                continue
            pipe = self.registry.get("pipes", item["pipe"])
            if not pipe or pipe["paused"]:
                continue  # paused: stays pending until SET PIPE_EXECUTION_PAUSED = FALSE
            with self._claim:
                # A key can be queued twice (a restart, a resumed pipe): one thread loads it.
                if key in self.loading:
                    continue
                self.loading[key] = item["pipe"]
            try:
                self.load(pipe, item)
            except Exception:
                log.exception("loading %s for pipe %s failed unexpectedly", item["url"], item["pipe"])
            finally:
                # Pending goes first: a thread that takes the key again finds nothing to load.
                self.registry.remove("pending", key)
                with self._claim:
                    self.loading.pop(key, None)

    def load(self, pipe: dict[str, Any], item: dict[str, Any]) -> None:
        fq = item["pipe"]
        target = ObjectName.from_fq(pipe["target"])
        load_id = uuid.uuid4().hex
        now = utcnow()
        with self.duck.cursor() as cur:
            history.ensure_tables(cur, target.database)
            table = history.copy_table(target.database)
            cur.execute(
                f"INSERT INTO {table} (LOAD_ID, PIPE_FQ, FILE_URL, FILE_NAME, STAGE_LOCATION, "
                "LAST_LOAD_TIME, "
                "ROW_COUNT, ROW_PARSED, FILE_SIZE, ERROR_COUNT, ERROR_LIMIT, STATUS, TABLE_CATALOG_NAME, "
                "TABLE_SCHEMA_NAME, TABLE_NAME, PIPE_CATALOG_NAME, PIPE_SCHEMA_NAME, PIPE_NAME, "
                "PIPE_RECEIVED_TIME) VALUES (?, ?, ?, ?, ?, ?, 0, 0, ?, 0, 1, 'Load in progress', "
                "?, ?, ?, ?, ?, ?, ?)",
                [
                    load_id,
                    fq,
                    item["url"],
                    item["file_name"],
                    pipe["stage_url"],
                    now,
                    item.get("size"),
                    target.database,
                    target.schema,
                    target.name,
                    pipe["database"],
                    pipe["schema"],
                    pipe["name"],
                    item["received"],
                ],
            )
            update = (
                f"UPDATE {table} SET {HISTORY_RESULT_SET}, LAST_LOAD_TIME = ?, FIRST_COMMIT_TIME = ?, "
                "FILE_SIZE = ? WHERE LOAD_ID = ?"
            )
            bucket, _, key = item["url"][len("s3://") :].partition("/")
            fd, path = tempfile.mkstemp(prefix="pipe-", suffix=os.path.basename(key), dir=self.work_dir)
            os.close(fd)
            try:
                try:
                    self._download(bucket, key, path)
                except Exception as exc:  # noqa: BLE001 - recorded as the file's load error
                    cur.execute(
                        update,
                        [
                            "Load failed",
                            0,
                            0,
                            1,
                            1,
                            f"Remote file '{item['url']}' was not found or could not be read: "
                            f"{type(exc).__name__}",
                            None,
                            None,
                            None,
                            utcnow(),
                            None,
                            item.get("size"),
                            load_id,
                        ],
                    )
                    return
                size = os.path.getsize(path)
                spec = LoadSpec(
                    target=target,
                    columns=pipe["columns"],
                    select=pipe["select"],
                    options=self._file_format(pipe),
                    on_error=pipe["on_error"],
                    file_name=item["file_name"],
                    extra={
                        "METADATA$START_SCAN_TIME": f"CAST('{now.isoformat()}' AS TIMESTAMPTZ)",
                        "METADATA$FILE_LAST_MODIFIED": f"CAST('{now.isoformat()}' AS TIMESTAMPTZ)",
                        "METADATA$FILE_CONTENT_KEY": f"'{load_id}'",
                    },
                )
                started = time.monotonic()
                try:
                    result = load_csv(cur, path, spec, (update, [utcnow(), utcnow(), size, load_id]))
                except (LookupError, duckdb.Error) as exc:
                    cur.execute(
                        update,
                        [
                            "Load failed",
                            0,
                            0,
                            1,
                            1,
                            str(exc).split("\n")[0],
                            None,
                            None,
                            None,
                            utcnow(),
                            None,
                            size,
                            load_id,
                        ],
                    )
                    return
                log.info(
                    "pipe %s: %s %s (%d rows, %.2fs)",
                    fq,
                    item["file_name"],
                    result.status,
                    result.row_count,
                    time.monotonic() - started,
                )
            finally:
                os.unlink(path)

    def _s3(self) -> Any:
        """One S3 client for the loaders (boto3 clients are thread-safe; making one per file
        cost more than the load)."""
        with self._claim:
            if self._s3_client is None:
                self._s3_client = self.aws("s3")
            return self._s3_client

    def _download(self, bucket: str, key: str, path: str) -> None:
        """One GET into ``path``: boto3's ``download_file`` adds a HEAD and a thread pool per
        file, which cost more than loading a small file."""
        body = self._s3().get_object(Bucket=bucket, Key=key)["Body"]
        with open(path, "wb") as out:
            for chunk in iter(lambda: body.read(1 << 20), b""):
                out.write(chunk)

    def _file_format(self, pipe: dict[str, Any]) -> dict[str, Any]:
        inline = dict(pipe["file_format"])
        stage = self.registry.get("stages", pipe["stage"]) or {}
        base: dict[str, Any] = {}
        name = inline.pop("FORMAT_NAME", None) or (stage.get("file_format") or {}).get("FORMAT_NAME")
        if name:
            fq = ObjectName.resolve(str(name), pipe["database"], pipe["schema"]).fq
            record = self.registry.get("file_formats", fq)
            if not record:
                raise LookupError(f"File format '{fq}' does not exist or not authorized.")
            base = dict(record["options"])
        elif stage.get("file_format"):
            base = dict(stage["file_format"])
        fmt = {**base, **inline}
        if str(fmt.get("TYPE", "CSV")).upper() != "CSV":
            raise LookupError(
                f"the emulated pipe loader reads CSV only (file format TYPE = {fmt.get('TYPE')})"
            )
        return fmt


def _zulu(iso: str) -> str:
    return iso.replace("+00:00", "Z")


def _like(name: str, pattern: str | None) -> bool:
    if pattern is None:
        return True
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.I | re.S) is not None


def _in_scope(fq: str, session: Session, scope: tuple[str, str | None] | None) -> bool:
    database, schema, _ = fq.split(".", 2)
    if scope is None:
        return session.database is None or database == session.database
    kind, value = scope
    if kind == "ACCOUNT":
        return True
    if kind == "DATABASE":
        return database == (ObjectName.resolve(value, "-", "-").name if value else session.database)
    target_db = session.database
    target_schema = session.schema
    if value:
        parts = value.split(".")
        resolved = ObjectName.resolve(value + ".x", session.database, None) if len(parts) <= 2 else None
        if resolved:
            target_db, target_schema = resolved.database, resolved.schema
    return database == target_db and schema == target_schema
