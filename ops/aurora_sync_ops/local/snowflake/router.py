"""Statement interception: answer Snowflake's control plane, pass the rest to fakesnow.

Every ``/queries/v1/query-request`` is looked at once. Control-plane statements (integrations,
pipes, streams, tasks, their SHOW/DESC/ALTER/DROP, EXECUTE TASK) are carried out here and
answered through fakesnow as a SELECT of the result rows, so the response has exactly
fakesnow's shape. Other statements pass through unchanged unless they use something only
Snowflake has (COPY_HISTORY / TASK_HISTORY table functions, SYSTEM$PIPE_STATUS,
SYSTEM$STREAM_HAS_DATA, a stream in FROM); those are rewritten into plain SQL first, with any
bound values inlined so placeholders never move. A DML that reads a stream runs in a
transaction that also advances the stream's offset.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import fakesnow.server as fakesnow_server
import snowflake.connector.errors
from fakesnow.conn import FakeSnowflakeConnection
from fakesnow.converter import from_binding
from fakesnow.dialect import parse_one
from fakesnow.instance import FakeSnow
from sqlglot import Dialect, exp
from sqlglot.tokens import TokenType
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import constraints, history
from .catalog import (
    IDENT,
    QUALIFIED,
    ObjectName,
    Registry,
    normalise_part,
    sql_string,
    syntax_error,
    unquote_string,
)
from .pipes import Pipes, Session
from .procedures import Procedures
from .tasks import TASK_STATEMENT_SLOTS, Streams, Tasks

from . import alter_column  # isort: skip

log = logging.getLogger("aurora_sync.snowflake.router")

NAME = rf"(?P<name>{QUALIFIED})"
IF_EXISTS = r"(?P<if_exists>IF\s+EXISTS\s+)?"
SHOW_TAIL = (
    r"(?:\s+LIKE\s+'(?P<like>(?:[^']|'')*)')?(?:\s+IN\s+(?P<kind>ACCOUNT|DATABASE|SCHEMA)?\s*(?P<scope>"
    + QUALIFIED
    + r")?)?\s*;?\s*$"
)
REWRITE_MARKERS = ("COPY_HISTORY", "TASK_HISTORY", "SYSTEM$PIPE_STATUS", "SYSTEM$STREAM_HAS_DATA")
DML = (exp.Insert, exp.Merge, exp.Update, exp.Delete, exp.Create, exp.Copy)
MERGE_STATEMENT = re.compile(r"\bMERGE\s+INTO\b", re.I)


@dataclass
class Plan:
    sql: str
    bindings: dict[str, Any] | None
    # (stream, snapshot) pairs: a consuming DML reads the snapshot, which becomes the new offset.
    advance: list[tuple[str, str]] = field(default_factory=list)
    # Run once the statement succeeded (e.g. a column rename replayed on stream offsets).
    after: list[Callable[[], None]] = field(default_factory=list)
    # Run once the statement was served, whether it succeeded or not.
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    @property
    def settles(self) -> bool:
        return bool(self.advance or self.after or self.cleanup)


# Above this many rows a control-plane answer is served from a DuckDB table instead of a SELECT
# of literals: fakesnow parses every statement with sqlglot, at about 25 ms a literal row, so a
# SHOW TASKS over a schema of 400 tables (`aurora-sync sql snowflake` lists it once) took 28 s
# instead of a fraction of a second.
MATERIALIZE_ROWS = 50


class Answer(str):
    """SQL answering a control-plane statement, and what to drop once it was served."""

    cleanup: tuple[Callable[[], None], ...] = ()


def strip_leading_comments(sql: str) -> str:
    previous = None
    while previous != sql:
        previous = sql
        sql = re.sub(r"^\s*(--[^\n]*\n|/\*.*?\*/)", "", sql, flags=re.S)
    return sql.strip()


def result_sql(columns: Sequence[str], rows: Sequence[Sequence[Any]], timestamps: Sequence[str] = ()) -> str:
    """A SELECT returning ``rows`` under Snowflake's (quoted, case-kept) column names."""

    def literal(value: Any, column: str) -> str:
        if value is None:
            return "CAST(NULL AS TIMESTAMP_LTZ)" if column in timestamps else "CAST(NULL AS VARCHAR)"
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, int):
            return str(value)
        if column in timestamps:
            return f"CAST({sql_string(str(value))} AS TIMESTAMP_LTZ)"
        return sql_string(str(value))

    def select(row: Sequence[Any]) -> str:
        return "SELECT " + ", ".join(
            f"{literal(v, c)} AS {exp.to_identifier(c, quoted=True).sql('snowflake')}"
            for c, v in zip(columns, row, strict=True)
        )

    if not rows:
        return select([None] * len(columns)) + " WHERE 1 = 0"
    return " UNION ALL ".join(select(row) for row in rows)


def status_sql(message: str) -> str:
    return result_sql(["status"], [[message]])


def _binding_literal(value: Any) -> exp.Expr:
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float)):
        return exp.Literal.number(value)
    if isinstance(value, dt.datetime):
        kind = "TIMESTAMP_TZ" if value.tzinfo else "TIMESTAMP_NTZ"
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), kind, dialect="snowflake")
    if isinstance(value, dt.date):
        return exp.cast(exp.Literal.string(value.isoformat()), "DATE", dialect="snowflake")
    if isinstance(value, dt.time):
        return exp.cast(exp.Literal.string(value.isoformat()), "TIME", dialect="snowflake")
    if isinstance(value, bytes):
        return exp.cast(exp.Literal.string(value.hex()), "BINARY", dialect="snowflake")
    return exp.Literal.string(str(value))


def inline_bindings(sql: str, bindings: dict[str, Any] | None) -> str:
    """Replace ``?`` / ``:n`` / ``:name`` placeholders by literals, in the order they are written."""
    if not bindings:
        return sql
    if any(isinstance(b.get("value"), list) for b in bindings.values()):
        raise syntax_error("array bindings are not supported with emulated Snowflake functions")
    values = {name: from_binding(b) for name, b in bindings.items()}
    tokens = Dialect.get_or_raise("snowflake").tokenize(sql)
    pieces, cursor, position, i = [], 0, 0, 0
    while i < len(tokens):
        token = tokens[i]
        key, end = None, token.end
        if token.token_type == TokenType.PLACEHOLDER and token.text == "?":
            position += 1
            key = str(position)
        elif (
            token.token_type == TokenType.COLON
            and i + 1 < len(tokens)
            and tokens[i + 1].start == token.end + 1
            and tokens[i + 1].text in values
        ):
            key, end = tokens[i + 1].text, tokens[i + 1].end
            i += 1
        elif (
            token.token_type == TokenType.PLACEHOLDER
            and token.text.startswith(":")
            and token.text[1:] in values
        ):
            key = token.text[1:]
        if key is not None:
            if key not in values:
                raise syntax_error(f"missing value for bind variable {key}")
            pieces += [sql[cursor : token.start], _binding_literal(values[key]).sql("snowflake")]
            cursor = end + 1
        i += 1
    pieces.append(sql[cursor:])
    return "".join(pieces)


WORD = re.compile(r"\w+")


def mentions_any(text: str, names: Sequence[str]) -> bool:
    """Whether ``text`` holds one of ``names`` as a whole word, case-insensitively.

    A name of word characters only is a whole word exactly when it equals one of the text's
    maximal word runs, so those are a set lookup; a regular expression per name (the old way)
    ran for every statement and, with more names than ``re``'s cache holds (512), recompiled
    them all each time: a third of the emulator's time with 200 streams (issue 15)."""
    words: set[str] | None = None
    for name in names:
        if WORD.fullmatch(name):
            if words is None:
                words = {w.lower() for w in WORD.findall(text)}
            if name.lower() in words:
                return True
        elif re.search(rf"\b{re.escape(name)}\b", text, re.I):
            return True
    return False


class ControlPlane:
    def __init__(self, fs: FakeSnow, registry: Registry, pipes: Pipes, streams: Streams) -> None:
        self.fs = fs
        self.registry = registry
        self.pipes = pipes
        self.streams = streams
        self.tasks = Tasks(registry, fs.duck_conn, self.execute)
        self.procedures = Procedures(registry, self.execute)
        # Task runs' MERGEs one at a time: fakesnow runs a MERGE as statements around a scratch
        # table of one name per schema (``merge_candidates``), so two tables' merge tasks running
        # at once in STAGING failed one of them with a DuckDB catalog conflict on that name,
        # where Snowflake runs both. Their work is Python and DuckDB under one GIL anyway.
        self.merges = threading.Lock()

    # --- classification ---------------------------------------------------------------------
    def prepare(self, conn: FakeSnowflakeConnection, sql: str, bindings: dict[str, Any] | None) -> Plan:
        text = strip_leading_comments(sql)
        session = Session(conn.database, conn.schema)
        if re.match(r"CALL\b", text, re.I):
            # CALL is one command token to sqlglot: the procedure parses its own arguments.
            return Plan(self.procedures.call(text, bindings, session), None)
        answered = self._control_plane(text, session)
        if answered is not None:
            return Plan(answered, None, cleanup=list(getattr(answered, "cleanup", ())))
        upper = text.upper()
        if re.match(r"CREATE\s+(OR\s+REPLACE\s+)?(TEMPORARY\s+|TEMP\s+)?(STAGE|FILE\s+FORMAT)\b", upper):
            statement = parse_one(text)
            if isinstance(statement, exp.Create):
                if str(statement.args.get("kind")).upper() == "STAGE":
                    self.pipes.record_stage(statement, session)
                else:
                    self.pipes.record_file_format(statement, session)
            return Plan(sql, bindings)
        drop = re.match(r"DROP\s+(STAGE|FILE\s+FORMAT)\s+" + IF_EXISTS + NAME, text, re.I)
        if drop:
            self.pipes.forget(
                "stages" if drop.group(1).upper() == "STAGE" else "file_formats", drop.group("name"), session
            )
            return Plan(sql, bindings)
        rename = re.match(
            r"ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?P<table>" + QUALIFIED + r")\s+RENAME\s+COLUMN\s+"
            r"(?P<old>" + IDENT + r")\s+TO\s+(?P<new>" + IDENT + r")\s*;?\s*$",
            text,
            re.I,
        )
        if rename:
            table = ObjectName.resolve(rename.group("table"), session.database, session.schema)
            if self.streams.on_table(table):
                old, new = normalise_part(rename.group("old")), normalise_part(rename.group("new"))
                return Plan(sql, bindings, after=[lambda: self.streams.rename_column(table, old, new)])
            return Plan(sql, bindings)
        if not any(m in upper for m in REWRITE_MARKERS) and not mentions_any(text, self.streams.names()):
            return Plan(sql, bindings)
        return self._rewrite(text, bindings, session)

    def _rewrite(self, text: str, bindings: dict[str, Any] | None, session: Session) -> Plan:
        statement = parse_one(inline_bindings(text, bindings))
        changed = False
        if any(isinstance(n, exp.TableFromRows) for n in statement.find_all(exp.TableFromRows)):
            database = session.database
            with self.fs.duck_conn.cursor() as cur:
                for node in statement.find_all(exp.TableFromRows):
                    target = history.table_function_target(node)
                    if target and (target[0] or database):
                        history.ensure_tables(cur, target[0] or str(database))
            changed |= history.rewrite_table_functions(statement, session.database, session.schema)
        for call in list(statement.find_all(exp.Anonymous)):
            fn = call.name.upper()
            if fn in ("SYSTEM$PIPE_STATUS", "SYSTEM$STREAM_HAS_DATA"):
                argument = call.expressions[0] if call.expressions else None
                if not (isinstance(argument, exp.Literal) and argument.is_string):
                    raise syntax_error(f"{fn} takes one constant string: the object's name")
                value: exp.Expr
                if fn == "SYSTEM$PIPE_STATUS":
                    value = exp.Literal.string(self.pipes.status(argument.name, session))
                else:
                    value = exp.Boolean(this=self.streams.has_data(argument.name, session))
                if isinstance(call.parent, exp.Select):
                    # Keep the column name Snowflake gives an unaliased call: its own text.
                    value = exp.alias_(value, exp.to_identifier(call.sql("snowflake"), quoted=True))
                call.replace(value)
                changed = True
        consuming = isinstance(statement, DML)
        advance: list[tuple[str, str]] = []
        for table in list(statement.find_all(exp.Table)):
            if not isinstance(table.this, exp.Identifier):
                continue
            try:
                name = ObjectName.resolve(
                    ".".join(p.sql("snowflake") for p in table.parts), session.database, session.schema
                )
            except snowflake.connector.errors.ProgrammingError:
                continue
            record = self.streams.find(name)
            if record is None:
                continue
            source = None
            if consuming:
                source = self.streams.snapshot(record)
                advance.append((name.fq, source))
            alias = table.args.get("alias") or exp.TableAlias(
                this=exp.to_identifier(record["name"], quoted=True)
            )
            table.replace(exp.Subquery(this=parse_one(self.streams.rows_sql(record, source)), alias=alias))
            changed = True
        return Plan(statement.sql("snowflake") if changed else text, None if changed else bindings, advance)

    def _control_plane(self, text: str, session: Session) -> str | None:
        """The result SELECT of a control-plane statement, or None for anything else."""
        pipes, streams, tasks = self.pipes, self.streams, self.tasks

        def show(match: re.Match[str]) -> tuple[str | None, tuple[str, str | None] | None]:
            like = match.group("like").replace("''", "'") if match.group("like") is not None else None
            kind, scope = match.group("kind"), match.group("scope")
            if kind is None and scope is None:
                return like, None
            return like, ((kind or "SCHEMA").upper(), scope)

        # Access control: fakesnow has no users, roles or privileges, and no compute to size. The
        # setup SQL a real account runs (roles, the service user, its warehouse, grants) is accepted
        # and ignored, so it runs unchanged.
        if m := re.match(
            r"(?P<verb>CREATE|ALTER|DROP)\s+(?:OR\s+REPLACE\s+)?(?P<kind>ROLE|USER|WAREHOUSE)\s+"
            r"(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(?P<name>\S+)",
            text,
            re.I,
        ):
            kind, name = m.group("kind").capitalize(), m.group("name").strip('"')
            verb = {"CREATE": "created", "ALTER": "altered", "DROP": "dropped"}[m.group("verb").upper()]
            return status_sql(f"{kind} {name} successfully {verb}.")
        if re.match(
            r"COPY\s+INTO\s+" + QUALIFIED + r"[\s(].*\bFROM\s*\(?\s*(SELECT\b.*?\bFROM\s+)?@",
            text,
            re.I | re.S,
        ):
            # COPY INTO <table> from a stage: the emulated loader, as a pipe would run it.
            columns, rows = pipes.copy_into(text, session)
            return result_sql(columns, rows)
        if re.match(r"(GRANT|REVOKE)\b", text, re.I):
            return status_sql("Statement executed successfully.")
        if re.match(r"CREATE\s+(OR\s+REPLACE\s+)?(STORAGE\s+)?INTEGRATION\b", text, re.I):
            return status_sql(pipes.create_integration(text))
        if re.match(r"ALTER\s+(STORAGE\s+)?INTEGRATION\b", text, re.I):
            return status_sql(pipes.alter_integration(text))
        if m := re.match(r"DESC(?:RIBE)?\s+(?:STORAGE\s+)?INTEGRATION\s+" + NAME + r"\s*;?$", text, re.I):
            return result_sql(
                ["property", "property_type", "property_value", "property_default"],
                pipes.describe_integration(m.group("name")),
            )
        if m := re.match(r"SHOW\s+(?:STORAGE\s+)?INTEGRATIONS" + SHOW_TAIL, text, re.I):
            like, _ = show(m)
            from .pipes import _like

            rows = [
                [
                    i["name"],
                    i["type"],
                    i["category"],
                    str(i["enabled"]).lower(),
                    i["comment"],
                    i["created_on"],
                ]
                for _, i in sorted(self.registry.items("integrations"))
                if _like(i["name"], like)
            ]
            return result_sql(
                ["name", "type", "category", "enabled", "comment", "created_on"],
                rows,
                timestamps=["created_on"],
            )
        if m := re.match(r"DROP\s+(?:STORAGE\s+)?INTEGRATION\s+" + IF_EXISTS + NAME, text, re.I):
            return status_sql(pipes.drop_integration(m.group("name"), bool(m.group("if_exists"))))

        if m := re.match(
            r"SHOW\s+(?:TERSE\s+)?PRIMARY\s+KEYS(?:\s+IN(?:\s+(?P<kind>ACCOUNT|DATABASE|SCHEMA|TABLE)\b)?"
            rf"(?:\s+(?P<name>{QUALIFIED}))?)?\s*;?\s*$",
            text,
            re.I,
        ):
            keys = constraints.primary_key_rows(self.fs.duck_conn, session, m.group("kind"), m.group("name"))
            return self._rows_sql(session, keys, constraints.COLUMNS)

        if re.match(r"CREATE\s+(OR\s+REPLACE\s+)?PIPE\b", text, re.I):
            return status_sql(pipes.create_pipe(text, session))
        if m := re.match(r"DROP\s+PIPE\s+" + IF_EXISTS + NAME, text, re.I):
            return status_sql(pipes.drop_pipe(m.group("name"), session, bool(m.group("if_exists"))))
        if re.match(r"ALTER\s+PIPE\b", text, re.I):
            message, sent = pipes.alter_pipe(text, session)
            return result_sql(["File", "Status"], sent) if sent is not None else status_sql(message)
        if m := re.match(r"SHOW\s+PIPES" + SHOW_TAIL, text, re.I):
            return self._rows_sql(session, pipes.show_rows(session, *show(m)), PIPE_COLUMNS)
        if m := re.match(r"DESC(?:RIBE)?\s+PIPE\s+" + NAME + r"\s*;?$", text, re.I):
            name = ObjectName.resolve(m.group("name"), session.database, session.schema)
            pipes.pipe(m.group("name"), session)
            pipe_rows = [
                r
                for r in pipes.show_rows(session, None, ("ACCOUNT", None))
                if (r["database_name"], r["schema_name"], r["name"]) == name.parts()
            ]
            return _rows_sql(pipe_rows, PIPE_COLUMNS)

        if re.match(r"CREATE\s+(OR\s+REPLACE\s+)?STREAM\b", text, re.I):
            return status_sql(streams.create(text, session))
        if m := re.match(r"DROP\s+STREAM\s+" + IF_EXISTS + NAME, text, re.I):
            return status_sql(streams.drop(m.group("name"), session, bool(m.group("if_exists"))))
        if m := re.match(r"SHOW\s+STREAMS" + SHOW_TAIL, text, re.I):
            return self._rows_sql(session, streams.show_rows(session, *show(m)), STREAM_COLUMNS)

        if re.match(r"CREATE\s+(OR\s+REPLACE\s+)?TASK\b", text, re.I):
            return status_sql(tasks.create(text, session))
        if m := re.match(r"DROP\s+TASK\s+" + IF_EXISTS + NAME, text, re.I):
            return status_sql(tasks.drop(m.group("name"), session, bool(m.group("if_exists"))))
        if re.match(r"ALTER\s+TASK\b", text, re.I):
            return status_sql(tasks.alter(text, session))
        if m := re.match(r"SHOW\s+TASKS" + SHOW_TAIL, text, re.I):
            return self._rows_sql(session, tasks.show_rows(session, *show(m)), TASK_COLUMNS)
        if m := re.match(r"DESC(?:RIBE)?\s+TASK\s+" + NAME + r"\s*;?$", text, re.I):
            record = tasks.task(m.group("name"), session)
            task_rows = [
                r for r in tasks.show_rows(session, None, ("ACCOUNT", None)) if r["id"] == record["id"]
            ]
            return _rows_sql(task_rows, TASK_COLUMNS)
        if m := re.match(
            r"EXECUTE\s+TASK\s+(?:IDENTIFIER\s*\(\s*(?P<literal>'(?:[^']|'')*')\s*\)|" + NAME + r")\s*;?$",
            text,
            re.I,
        ):
            # IDENTIFIER('<name>'): the name as a string, e.g. a procedure's bound variable.
            name = unquote_string(m.group("literal")) if m.group("literal") else m.group("name")
            tasks.execute_task(name, session)
            return status_sql("Statement executed successfully.")
        if re.match(r"CREATE\s+(OR\s+REPLACE\s+)?(SECURE\s+)?PROCEDURE\b", text, re.I):
            return status_sql(self.procedures.create(text, session))
        if m := re.match(r"DROP\s+PROCEDURE\s+" + IF_EXISTS + NAME + r"\s*\([^)]*\)\s*;?\s*$", text, re.I):
            return status_sql(self.procedures.drop(m.group("name"), session, bool(m.group("if_exists"))))
        # A column type change Snowflake refuses fails here; one it makes goes on to fakesnow.
        alter_column.check(self.fs, text, session.database, session.schema, self.streams)
        return None

    def _rows_sql(self, session: Session, rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
        """A SHOW's rows: as a SELECT of literals (``_rows_sql``), or, when there are many and a
        current database to hold them, from a DuckDB table dropped once the answer was served."""
        if len(rows) <= MATERIALIZE_ROWS or not session.database:
            return _rows_sql(rows, columns)
        database = session.database
        name = f"_emu_result_{uuid.uuid4().hex[:16]}"
        table = f"{history.dq(database)}.{history.SCHEMA}.{history.dq(name)}"
        values = [[row.get(c) for c in columns] for row in rows]

        def kind(index: int, column: str) -> str:
            if column in SHOW_TIMESTAMPS:
                return "TIMESTAMPTZ"
            present = [row[index] for row in values if row[index] is not None]
            if present and all(isinstance(v, bool) for v in present):
                return "BOOLEAN"
            if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
                return "BIGINT"
            return "VARCHAR"

        definition = ", ".join(f"{history.dq(c)} {kind(i, c)}" for i, c in enumerate(columns))
        with self.fs.duck_conn.cursor() as cur:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {history.dq(database)}.{history.SCHEMA}")
            cur.execute(f"CREATE TABLE {table} (_emu_row BIGINT, {definition})")
            marks = ", ".join("?" for _ in range(len(columns) + 1))
            cur.executemany(
                f"INSERT INTO {table} VALUES ({marks})", [[n, *row] for n, row in enumerate(values)]
            )

        def drop() -> None:
            with self.fs.duck_conn.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {table}")

        select = ", ".join(exp.to_identifier(c, quoted=True).sql("snowflake") for c in columns)
        answer = Answer(f"SELECT {select} FROM {history.sf_table(database, name)} ORDER BY _EMU_ROW")
        answer.cleanup = (drop,)
        return answer

    # --- execution for tasks ----------------------------------------------------------------
    def execute(self, database: str, schema: str, sql: str) -> tuple[str, list[tuple[Any, ...]]]:
        conn = self.fs.connect(database, schema)
        try:
            plan = self.prepare(conn, sql, None)
            cur = conn.cursor()
            try:
                with self.merges if MERGE_STATEMENT.search(plan.sql) else contextlib.nullcontext():
                    cur.execute(plan.sql)
            except BaseException:
                self._settle(plan, succeeded=False)
                raise
            self._settle(plan, succeeded=True)
            rows = cur.fetchall()
            return str(cur.sfqid), [tuple(r) if not isinstance(r, dict) else tuple(r.values()) for r in rows]
        finally:
            conn.close()

    # --- HTTP ---------------------------------------------------------------------------------
    async def query_request(self, request: Request) -> Response:
        try:
            conn = fakesnow_server.to_conn(fakesnow_server.to_token(request))
        except fakesnow_server.ServerError as exc:
            return JSONResponse(
                {"data": None, "code": exc.code, "message": exc.message, "success": False, "headers": None},
                status_code=exc.status_code,
            )
        body = await request.body()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        payload = json.loads(body)
        try:
            plan = await run_in_threadpool(self.prepare, conn, payload["sqlText"], payload.get("bindings"))
        except snowflake.connector.errors.ProgrammingError as exc:
            code = f"{exc.errno:06d}"
            return JSONResponse(
                {
                    "data": {"errorCode": code, "sqlState": exc.sqlstate},
                    "code": code,
                    "message": exc.msg,
                    "success": False,
                }
            )
        except Exception as exc:
            # An emulator bug must reach the client as a query error: an HTTP 500 makes the
            # connector retry until its timeout, so the caller would hang instead of failing.
            log.exception("emulator failed on a statement")
            return JSONResponse(
                {
                    "data": {"errorCode": "000603", "sqlState": "XX000"},
                    "code": "000603",
                    "message": f"local Snowflake emulator error ({type(exc).__name__}: {exc}); "
                    "see the snowflake log under the stack's state dir",
                    "success": False,
                }
            )
        forward = {**payload, "sqlText": plan.sql}
        if plan.bindings is None:
            forward.pop("bindings", None)
        if payload.get("describeOnly"):
            await run_in_threadpool(self._settle, plan, False)
            return await self._forward(request, forward)
        try:
            response = await self._forward(request, forward)
        except BaseException:
            await run_in_threadpool(self._settle, plan, False)
            raise
        if plan.settles:
            succeeded = bool(json.loads(bytes(response.body)).get("success"))
            await run_in_threadpool(self._settle, plan, succeeded)
        return response

    def _settle(self, plan: Plan, succeeded: bool) -> None:
        for fq, snap in plan.advance:
            if succeeded:
                self.streams.advance(fq, snap)
            else:
                self.streams.discard(snap)
        if succeeded:
            for action in plan.after:
                action()
        for action in plan.cleanup:
            action()

    # --- test faults --------------------------------------------------------------------------
    async def task_faults(self, request: Request) -> Response:
        """GET lists, POST {"task", "fault": "hang"|"error", "message"?} sets, DELETE {"task"}
        clears a task fault (see Tasks.set_fault). Loopback only, like the whole server."""
        try:
            if request.method == "GET":
                return JSONResponse({"faults": self.tasks.fault_rows()})
            body = json.loads(await request.body() or b"{}")
            if request.method == "POST":
                task = self.tasks.set_fault(str(body["task"]), str(body["fault"]), body.get("message"))
            else:
                task = self.tasks.clear_fault(str(body["task"]))
        except (KeyError, ValueError, snowflake.connector.errors.ProgrammingError) as exc:
            return JSONResponse({"error": getattr(exc, "msg", None) or str(exc)}, status_code=400)
        return JSONResponse({"task": task, "faults": self.tasks.fault_rows()})

    async def task_slots(self, request: Request) -> Response:
        """GET: the task statement slots (``tasks.TASK_STATEMENT_SLOTS``), how many are busy now
        and the most that were busy at once since the server started. Loopback only."""
        return JSONResponse(
            {"slots": TASK_STATEMENT_SLOTS, "busy": self.tasks.busy, "busiest": self.tasks.busiest}
        )

    async def pipe_loaders(self, request: Request) -> Response:
        """GET: the Snowpipe loader threads; POST {"loaders": n | null} sets them (null: the
        default). For benchmarks comparing one loader with the pool. Loopback only."""
        if request.method == "POST":
            try:
                body = json.loads(await request.body() or b"{}")
                self.pipes.set_loaders(None if body.get("loaders") is None else int(body["loaders"]))
            except (TypeError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"loaders": self.pipes.loaders})

    @staticmethod
    async def _forward(request: Request, payload: dict[str, Any]) -> Response:
        raw = json.dumps(payload).encode()
        headers = [
            (k, v)
            for k, v in request.scope["headers"]
            if k.lower() not in (b"content-encoding", b"content-length")
        ]
        scope = {**request.scope, "headers": [*headers, (b"content-length", str(len(raw)).encode())]}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": raw, "more_body": False}

        response: Response = await fakesnow_server.query_request(Request(scope, receive))
        return response

    def app(self) -> Starlette:
        routes = [r for r in fakesnow_server.routes if getattr(r, "path", "") != "/queries/v1/query-request"]
        routes.append(Route("/queries/v1/query-request", self.query_request, methods=["POST"]))
        routes.append(Route("/emulator/health", lambda _: JSONResponse({"status": "ok"}), methods=["GET"]))
        routes.append(Route("/emulator/task-faults", self.task_faults, methods=["GET", "POST", "DELETE"]))
        routes.append(Route("/emulator/account", self.account, methods=["GET"]))
        routes.append(Route("/emulator/task-slots", self.task_slots, methods=["GET"]))
        routes.append(Route("/emulator/pipe-loaders", self.pipe_loaders, methods=["GET", "POST"]))
        return Starlette(routes=routes)

    def account(self, _: Request) -> JSONResponse:
        """The account's Snowpipe queue, which exists before any pipe (as in Snowflake).

        Snowflake shows it only through a pipe (SHOW PIPES ``notification_channel``), so the SQL
        surface stays that way; this route lets the local stack wire its bucket before the first
        table, as the template's SnowpipeSqsArn parameter does on AWS.
        """
        return JSONResponse({"notification_channel": self.pipes.queue_arn})


PIPE_COLUMNS = (
    "created_on",
    "name",
    "database_name",
    "schema_name",
    "definition",
    "owner",
    "notification_channel",
    "comment",
    "integration",
    "pattern",
    "error_integration",
    "owner_role_type",
    "invalid_reason",
    "kind",
)
STREAM_COLUMNS = (
    "created_on",
    "name",
    "database_name",
    "schema_name",
    "owner",
    "comment",
    "table_name",
    "source_type",
    "base_tables",
    "type",
    "stale",
    "mode",
)
TASK_COLUMNS = (
    "created_on",
    "name",
    "id",
    "database_name",
    "schema_name",
    "owner",
    "comment",
    "warehouse",
    "schedule",
    "predecessors",
    "state",
    "definition",
    "condition",
    "allow_overlapping_execution",
    "error_integration",
    "last_committed_on",
    "last_suspended_on",
    "owner_role_type",
    "config",
    "budget",
    # Snowflake lists it last (2024_08 bundle: serverless sizing of a task).
    "target_completion_interval",
)


SHOW_TIMESTAMPS = ("created_on", "last_committed_on", "last_suspended_on")


def _rows_sql(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    return result_sql(columns, [[row.get(c) for c in columns] for row in rows], timestamps=SHOW_TIMESTAMPS)
