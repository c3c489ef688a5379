"""COPY_HISTORY and TASK_HISTORY: where they are kept and how the table functions are answered.

Each history lives in a DuckDB table inside the database it describes (fakesnow's hidden
``_fs_information_schema`` schema), because DuckDB lets one transaction write to one attached
database only: a pipe's rows and its history row must commit together. A query's
``TABLE(<db>.INFORMATION_SCHEMA.COPY_HISTORY(...))`` is rewritten into a subquery over that
table before fakesnow sees the statement, so it composes with UNION ALL, WHERE and ORDER BY.
"""

from __future__ import annotations

from typing import Any

import duckdb
from duckdb import DuckDBPyConnection
from fakesnow.dialect import parse_one
from sqlglot import exp

from .catalog import ObjectName, sql_error, syntax_error

SCHEMA = "_fs_information_schema"
COPY_TABLE = "_emu_copy_history"
TASK_TABLE = "_emu_task_history"

COPY_COLUMNS = (
    "FILE_NAME",
    "STAGE_LOCATION",
    "LAST_LOAD_TIME",
    "ROW_COUNT",
    "ROW_PARSED",
    "FILE_SIZE",
    "FIRST_ERROR_MESSAGE",
    "FIRST_ERROR_LINE_NUMBER",
    "FIRST_ERROR_CHARACTER_POS",
    "FIRST_ERROR_COLUMN_NAME",
    "ERROR_COUNT",
    "ERROR_LIMIT",
    "STATUS",
    "TABLE_CATALOG_NAME",
    "TABLE_SCHEMA_NAME",
    "TABLE_NAME",
    "PIPE_CATALOG_NAME",
    "PIPE_SCHEMA_NAME",
    "PIPE_NAME",
    "PIPE_RECEIVED_TIME",
    "FIRST_COMMIT_TIME",
)
TASK_COLUMNS = (
    "QUERY_ID",
    "NAME",
    "DATABASE_NAME",
    "SCHEMA_NAME",
    "QUERY_TEXT",
    "CONDITION_TEXT",
    "STATE",
    "ERROR_CODE",
    "ERROR_MESSAGE",
    "SCHEDULED_TIME",
    "QUERY_START_TIME",
    "NEXT_SCHEDULED_TIME",
    "COMPLETED_TIME",
    "ROOT_TASK_ID",
    "GRAPH_VERSION",
    "RUN_ID",
    "RETURN_VALUE",
    "SCHEDULED_FROM",
    "ATTEMPT_NUMBER",
)

COPY_DDL = """
CREATE TABLE IF NOT EXISTS {db}.{schema}.{table} (
    LOAD_ID VARCHAR PRIMARY KEY, PIPE_FQ VARCHAR, FILE_URL VARCHAR,
    FILE_NAME VARCHAR, STAGE_LOCATION VARCHAR, LAST_LOAD_TIME TIMESTAMPTZ, ROW_COUNT BIGINT,
    ROW_PARSED BIGINT, FILE_SIZE BIGINT, FIRST_ERROR_MESSAGE VARCHAR, FIRST_ERROR_LINE_NUMBER BIGINT,
    FIRST_ERROR_CHARACTER_POS BIGINT, FIRST_ERROR_COLUMN_NAME VARCHAR, ERROR_COUNT BIGINT,
    ERROR_LIMIT BIGINT, STATUS VARCHAR, TABLE_CATALOG_NAME VARCHAR, TABLE_SCHEMA_NAME VARCHAR,
    TABLE_NAME VARCHAR, PIPE_CATALOG_NAME VARCHAR, PIPE_SCHEMA_NAME VARCHAR, PIPE_NAME VARCHAR,
    PIPE_RECEIVED_TIME TIMESTAMPTZ, FIRST_COMMIT_TIME TIMESTAMPTZ
)"""
TASK_DDL = """
CREATE TABLE IF NOT EXISTS {db}.{schema}.{table} (
    QUERY_ID VARCHAR PRIMARY KEY, NAME VARCHAR, DATABASE_NAME VARCHAR, SCHEMA_NAME VARCHAR,
    QUERY_TEXT VARCHAR, CONDITION_TEXT VARCHAR, STATE VARCHAR, ERROR_CODE VARCHAR,
    ERROR_MESSAGE VARCHAR, SCHEDULED_TIME TIMESTAMPTZ, QUERY_START_TIME TIMESTAMPTZ,
    NEXT_SCHEDULED_TIME TIMESTAMPTZ, COMPLETED_TIME TIMESTAMPTZ, ROOT_TASK_ID VARCHAR,
    GRAPH_VERSION BIGINT, RUN_ID BIGINT, RETURN_VALUE VARCHAR, SCHEDULED_FROM VARCHAR,
    ATTEMPT_NUMBER BIGINT
)"""


def dq(name: str) -> str:
    """A DuckDB-quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


Column = tuple[str, str, str | None, bool]


def table_columns(cur: DuckDBPyConnection, parts: tuple[str, str, str]) -> list[Column]:
    """(name, DuckDB type, default expression, nullable) of a table's columns in table order; []
    when there is no such table.

    ``pragma_table_info`` reads the one table's catalog entry. ``duckdb_columns()`` filtered by
    name gives the same rows but first builds one for every column of every table: 22 ms a call
    beside 6,000 tables against 1.6 ms, and a MERGE task's run read a table's columns three times.
    A missing table raises, so this must not run inside a transaction that has to survive it.
    """
    try:
        rows = cur.execute(
            'SELECT name, type, dflt_value, NOT "notnull" FROM pragma_table_info(?) ORDER BY cid',
            [".".join(dq(p) for p in parts)],
        ).fetchall()
    except duckdb.CatalogException:
        return []
    return [(str(n), str(k), None if d is None else str(d), bool(nullable)) for n, k, d, nullable in rows]


def copy_table(database: str) -> str:
    return f"{dq(database)}.{SCHEMA}.{COPY_TABLE}"


def task_table(database: str) -> str:
    return f"{dq(database)}.{SCHEMA}.{TASK_TABLE}"


def ensure_tables(cur: DuckDBPyConnection, database: str) -> None:
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {dq(database)}.{SCHEMA}")
    cur.execute(COPY_DDL.format(db=dq(database), schema=SCHEMA, table=COPY_TABLE))
    cur.execute(TASK_DDL.format(db=dq(database), schema=SCHEMA, table=TASK_TABLE))


def _literal_string(node: exp.Expr, function: str, argument: str) -> str:
    if isinstance(node, exp.Literal) and node.is_string:
        return str(node.this)
    raise sql_error(
        f"SQL compilation error:\nInvalid argument {argument} for function {function}: "
        "expected a constant string",
        errno=1044,
        sqlstate="42P13",
    )


def _arguments(call: exp.Anonymous) -> dict[str, exp.Expr]:
    arguments: dict[str, exp.Expr] = {}
    for argument in call.expressions:
        if not isinstance(argument, exp.Kwarg):
            raise syntax_error(f"{call.name} takes named arguments only, e.g. TABLE_NAME => 'SCHEMA.TABLE'")
        arguments[argument.this.name.upper()] = argument.expression
    return arguments


def table_function_target(node: exp.TableFromRows) -> tuple[str | None, exp.Anonymous] | None:
    """``(database or None, call)`` when ``node`` is TABLE([db.]INFORMATION_SCHEMA.<fn>(...))."""
    call: Any = node.this
    database = None
    if isinstance(call, exp.Dot):
        chain: list[exp.Expr] = []
        head: Any = call
        while isinstance(head, exp.Dot):
            chain.insert(0, head.expression)
            head = head.this
        chain.insert(0, head)
        call = chain[-1]
        qualifiers = [c.name for c in chain[:-1]]
        if not qualifiers or qualifiers[-1].upper() != "INFORMATION_SCHEMA":
            return None
        if len(qualifiers) == 2:
            ident = chain[0]
            database = (
                ident.name if isinstance(ident, exp.Identifier) and ident.quoted else ident.name.upper()
            )
    if not isinstance(call, exp.Anonymous) or call.name.upper() not in ("COPY_HISTORY", "TASK_HISTORY"):
        return None
    return database, call


def copy_history_sql(database: str, call: exp.Anonymous, current_schema: str | None) -> str:
    args = _arguments(call)
    if "TABLE_NAME" not in args or "START_TIME" not in args:
        raise sql_error(
            "SQL compilation error:\nCOPY_HISTORY requires the arguments TABLE_NAME and START_TIME",
            errno=1044,
            sqlstate="42P13",
        )
    table = ObjectName.resolve(
        _literal_string(args["TABLE_NAME"], "COPY_HISTORY", "TABLE_NAME"), database, current_schema
    )
    if table.database != database:
        # Snowflake reads the history of the database the function is called in.
        return _empty_select(COPY_COLUMNS)
    where = [
        f"TABLE_SCHEMA_NAME = {exp.Literal.string(table.schema).sql('snowflake')}",
        f"TABLE_NAME = {exp.Literal.string(table.name).sql('snowflake')}",
        f"LAST_LOAD_TIME >= ({args['START_TIME'].sql('snowflake')})",
    ]
    if "END_TIME" in args:
        where.append(f"LAST_LOAD_TIME < ({args['END_TIME'].sql('snowflake')})")
    columns = ", ".join(COPY_COLUMNS)
    return f"SELECT {columns} FROM {sf_table(database, COPY_TABLE)} WHERE {' AND '.join(where)}"


def task_history_sql(database: str, call: exp.Anonymous) -> str:
    args = _arguments(call)
    where = []
    if "TASK_NAME" in args:
        name = _literal_string(args["TASK_NAME"], "TASK_HISTORY", "TASK_NAME")
        where.append(f"UPPER(NAME) = UPPER({exp.Literal.string(name).sql('snowflake')})")
    if "SCHEDULED_TIME_RANGE_START" in args:
        where.append(f"SCHEDULED_TIME >= ({args['SCHEDULED_TIME_RANGE_START'].sql('snowflake')})")
    if "SCHEDULED_TIME_RANGE_END" in args:
        where.append(f"SCHEDULED_TIME < ({args['SCHEDULED_TIME_RANGE_END'].sql('snowflake')})")
    if "ERROR_ONLY" in args and args["ERROR_ONLY"].sql("snowflake").upper() == "TRUE":
        where.append("STATE IN ('FAILED', 'CANCELLED')")
    limit = 100
    if "RESULT_LIMIT" in args:
        node = args["RESULT_LIMIT"]
        if not (isinstance(node, exp.Literal) and not node.is_string):
            raise syntax_error("RESULT_LIMIT must be a constant integer between 1 and 10000")
        limit = int(node.this)
        if not 1 <= limit <= 10000:
            raise sql_error(
                f"SQL compilation error:\ninvalid value [{limit}] for parameter 'RESULT_LIMIT'",
                errno=1008,
                sqlstate="22023",
            )
    columns = ", ".join(TASK_COLUMNS)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return (
        f"SELECT {columns} FROM {sf_table(database, TASK_TABLE)}{clause} "
        f"ORDER BY SCHEDULED_TIME DESC LIMIT {limit}"
    )


def sf_table(database: str, table: str) -> str:
    return f"{exp.to_identifier(database, quoted=True).sql('snowflake')}.{SCHEMA.upper()}.{table.upper()}"


def _empty_select(columns: tuple[str, ...]) -> str:
    return "SELECT " + ", ".join(f"NULL AS {c}" for c in columns) + " WHERE 1 = 0"


def rewrite_table_functions(
    statement: exp.Expr, current_database: str | None, current_schema: str | None
) -> bool:
    """Replace every COPY_HISTORY / TASK_HISTORY call in place; True if any was replaced."""
    changed = False
    for node in list(statement.find_all(exp.TableFromRows)):
        target = table_function_target(node)
        if target is None:
            continue
        database, call = target
        database = database or current_database
        if not database:
            raise sql_error(
                "Cannot perform SELECT. This session does not have a current database. "
                "Call 'USE DATABASE', or use a qualified name.",
                errno=90105,
                sqlstate="22000",
            )
        if call.name.upper() == "COPY_HISTORY":
            sql = copy_history_sql(database, call, current_schema)
        else:
            sql = task_history_sql(database, call)
        alias = node.args.get("alias")
        subquery = exp.Subquery(
            this=parse_one(sql),
            alias=alias.copy() if alias else exp.TableAlias(this=exp.to_identifier(call.name.upper())),
        )
        node.replace(subquery)
        changed = True
    return changed
