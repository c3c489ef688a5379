"""Load one staged CSV file into a table the way a pipe's COPY does, atomically.

DuckDB parses the file (``read_csv`` with every field as text, malformed records kept aside
in a rejects table), then one INSERT ... SELECT applies the pipe's SELECT list and the casts to
the target's column types. Row-level errors are found with TRY_CAST before anything is written,
so ON_ERROR=SKIP_FILE leaves the table untouched and ON_ERROR=CONTINUE skips exactly the bad
rows. The history row is updated in the same transaction as the insert.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import duckdb
from duckdb import DuckDBPyConnection
from fakesnow.dialect import parse_one
from sqlglot import exp

from .catalog import ObjectName
from .history import dq, table_columns

# Snowflake's defaults for a CSV file format (CREATE FILE FORMAT reference).
CSV_DEFAULTS: dict[str, Any] = {
    "TYPE": "CSV",
    "FIELD_DELIMITER": ",",
    "SKIP_HEADER": 0,
    "FIELD_OPTIONALLY_ENCLOSED_BY": "NONE",
    "ESCAPE": "NONE",
    "NULL_IF": ["\\N"],
    "EMPTY_FIELD_AS_NULL": True,
    "ERROR_ON_COLUMN_COUNT_MISMATCH": True,
    "COMPRESSION": "AUTO",
}
NO_NULL_MARKER = "\x00aurora-sync-emulator: no NULL_IF string\x00"
# DuckDB's read_csv refuses a record longer than this many bytes (its line end not counted) as
# "LINE SIZE OVER MAXIMUM": the record is rejected, which fails the file under SKIP_FILE. Real
# Snowflake has no such record limit (each field only has to fit its column: VARCHAR 16 MB,
# BINARY 8 MB), so this is a local limit, documented in docs/local-stack.md. Pinned here rather
# than left to DuckDB's default so an upgrade cannot move it silently.
MAX_RECORD_BYTES = 2_000_000


@dataclass
class LoadResult:
    status: str
    row_count: int
    row_parsed: int
    error_count: int
    error_limit: int
    first_error_message: str | None = None
    first_error_line_number: int | None = None
    first_error_character_pos: int | None = None
    first_error_column_name: str | None = None


@dataclass
class LoadSpec:
    target: ObjectName
    columns: list[str] | None  # target column names as written in the COPY (normalised), or None
    select: list[str] | None  # the pipe's SELECT list (Snowflake SQL), or None without a transform
    options: dict[str, Any]
    on_error: str
    file_name: str  # path relative to the stage: METADATA$FILENAME and COPY_HISTORY.FILE_NAME
    extra: dict[str, str] = field(default_factory=dict)  # other METADATA$ values as SQL literals


def _option(options: dict[str, Any], name: str) -> Any:
    return options.get(name, CSV_DEFAULTS.get(name))


def _bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).upper() in ("TRUE", "1", "YES")


def _none_or(value: Any) -> str:
    return "" if value is None or str(value).upper() == "NONE" else str(value)


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def error_limit_for(on_error: str, rows: int) -> int:
    upper = on_error.upper()
    if upper == "CONTINUE":
        return max(rows, 1)
    match = re.fullmatch(r"SKIP_FILE_(\d+)(%?)", upper)
    if match:
        number = int(match.group(1))
        return max(1, -(-rows * number // 100)) if match.group(2) else number
    return 1


def read_csv_sql(path: str, fields: int, options: dict[str, Any], rejects: str, scan: str) -> str:
    quote = _none_or(_option(options, "FIELD_OPTIONALLY_ENCLOSED_BY"))
    escape = _none_or(_option(options, "ESCAPE")) or quote
    null_if = _option(options, "NULL_IF")
    nulls = [str(v) for v in (null_if if isinstance(null_if, list) else [null_if]) if v is not None]
    if _bool(_option(options, "EMPTY_FIELD_AS_NULL")):
        nulls = ["", *[n for n in nulls if n != ""]]
    # An empty NULL_IF with EMPTY_FIELD_AS_NULL=FALSE means nothing is NULL; DuckDB needs a marker.
    nulls = nulls or [NO_NULL_MARKER]
    compression = str(_option(options, "COMPRESSION")).upper()
    compression_sql = {"GZIP": "gzip", "NONE": "none", "ZSTD": "zstd"}.get(compression, "auto")
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(1, fields + 1)) + "}"
    settings = [
        "header = false",
        f"skip = {int(_option(options, 'SKIP_HEADER'))}",
        f"delim = {_lit(str(_option(options, 'FIELD_DELIMITER')))}",
        f"quote = {_lit(quote)}",
        f"escape = {_lit(escape)}",
        f"nullstr = [{', '.join(_lit(n) for n in nulls)}]",
        # A quoted empty field is an empty string in Snowflake, never NULL.
        "allow_quoted_nulls = false",
        "auto_detect = false",
        f"columns = {columns}",
        f"compression = '{compression_sql}'",
        "store_rejects = true",
        f"rejects_table = '{rejects}'",
        f"rejects_scan = '{scan}'",
        f"null_padding = {'false' if _bool(_option(options, 'ERROR_ON_COLUMN_COUNT_MISMATCH')) else 'true'}",
        f"max_line_size = {MAX_RECORD_BYTES}",
    ]
    return f"SELECT * FROM read_csv({_lit(path)}, {', '.join(settings)})"


def _target_columns(cur: DuckDBPyConnection, target: ObjectName) -> list[tuple[str, str, bool]]:
    return [(name, kind, nullable) for name, kind, _, nullable in table_columns(cur, target.parts())]


def _fields_referenced(select: list[exp.Expr]) -> list[int]:
    return sorted(
        {
            int(p.this.this)
            for e in select
            for p in e.find_all(exp.Parameter)
            if isinstance(p.this, exp.Literal) and not p.this.is_string
        }
    )


def _error_kind(data_type: str) -> str:
    upper = data_type.upper()
    if upper.startswith(
        (
            "DECIMAL",
            "INTEGER",
            "BIGINT",
            "SMALLINT",
            "TINYINT",
            "HUGEINT",
            "DOUBLE",
            "FLOAT",
            "REAL",
            "UBIGINT",
            "UINTEGER",
        )
    ):
        return "Numeric value '{v}' is not recognized"
    if upper.startswith("TIMESTAMP"):
        return "Timestamp '{v}' is not recognized"
    if upper == "DATE":
        return "Date '{v}' is not recognized"
    if upper.startswith("TIME"):
        return "Time '{v}' is not recognized"
    if upper == "BOOLEAN":
        return "Boolean value '{v}' is not recognized"
    return "Invalid value '{v}'"


def _column_count_message(duck_message: str, expected: int) -> str:
    found = re.search(r"Found:\s*(\d+)", duck_message or "")
    return (
        f"Number of columns in file ({found.group(1) if found else '?'}) does not match that of the "
        f"corresponding table ({expected}), use file format option "
        "error_on_column_count_mismatch=false to ignore this error"
    )


def load_csv(
    cur: DuckDBPyConnection,
    path: str,
    spec: LoadSpec,
    history_update: tuple[str, list[Any]],
    *,
    transaction: bool = True,
) -> LoadResult:
    """Parse ``path`` and insert its rows into ``spec.target`` in one transaction.

    ``history_update`` is ``(sql, params)`` of an UPDATE taking the result's columns as its
    leading parameters; it runs inside the same transaction. ``transaction=False``: the caller
    holds one open (a COPY statement loads all its files or, aborted, none).
    """
    columns = _target_columns(cur, spec.target)
    if not columns:
        raise LookupError(f"Table '{spec.target.fq}' does not exist or not authorized.")
    by_name = {name: (name, dtype, nullable) for name, dtype, nullable in columns}
    if spec.columns:
        missing = [c for c in spec.columns if c not in by_name]
        if missing:
            raise LookupError(f"invalid identifier '{missing[0]}'")
        targets = [by_name[c] for c in spec.columns]
    else:
        targets = columns

    suffix = uuid.uuid4().hex[:12]
    raw, rejects, scan = f"emu_raw_{suffix}", f"emu_rej_{suffix}", f"emu_scan_{suffix}"
    shifts = f"emu_shift_{suffix}"

    if spec.select is not None:
        select_nodes = [parse_one(f"SELECT {e}").expressions[0] for e in spec.select]
        fields = max(_fields_referenced(select_nodes) or [0])
    else:
        select_nodes = [exp.Parameter(this=exp.Literal.number(i)) for i in range(1, len(targets) + 1)]
        fields = len(targets)
    if len(select_nodes) != len(targets):
        raise LookupError(
            f"Insert value list does not match column list expecting {len(targets)} "
            f"but got {len(select_nodes)}"
        )
    skip = int(_option(spec.options, "SKIP_HEADER"))

    try:
        cur.execute(
            f"CREATE TEMP TABLE {raw} AS {read_csv_sql(path, max(fields, 1), spec.options, rejects, scan)}"
        )
    except duckdb.Error as exc:
        result = LoadResult("Load failed", 0, 0, 1, 1, first_error_message=str(exc).split("\n")[0])
        sql, params = history_update
        cur.execute(sql, [*result_row(result), *params])
        return result
    scan_ = _Scan(raw=raw, rejects=rejects, shifts=shifts, fields=fields, skip=skip)
    try:
        return _insert(
            cur,
            spec,
            list(zip(targets, select_nodes, strict=True)),
            scan_,
            history_update,
            transaction=transaction,
        )
    finally:
        for table in (raw, rejects, scan, shifts):
            cur.execute(f"DROP TABLE IF EXISTS temp.{table}")


@dataclass
class _Scan:
    raw: str  # temp table of the parsed records (all text)
    rejects: str  # DuckDB's rejects table for records it could not split into fields
    shifts: str  # temp table: where rejected records shift the record numbers of parsed rows
    fields: int
    skip: int


def _expressions(
    spec: LoadSpec, columns: list[tuple[tuple[str, str, bool], exp.Expr]], row_number: str
) -> tuple[list[str], list[str], list[str]]:
    """Per target column: the strict value, the bad-row check, and the raw field it came from."""
    metadata = {
        "METADATA$FILENAME": _lit(spec.file_name),
        "METADATA$FILE_ROW_NUMBER": row_number,
        **spec.extra,
    }

    def to_duck(node: exp.Expr, lenient: bool) -> str:
        def swap(e: exp.Expr) -> exp.Expr:
            if isinstance(e, exp.Parameter) and isinstance(e.this, exp.Literal):
                return exp.column(f"c{int(e.this.this)}")
            if isinstance(e, exp.Column) and e.name.upper() in metadata:
                return exp.maybe_parse(metadata[e.name.upper()], dialect="duckdb")
            if lenient and isinstance(e, exp.Cast) and not isinstance(e, exp.TryCast):
                return exp.TryCast(this=e.this, to=e.to)
            return e

        return node.copy().transform(swap).sql(dialect="duckdb")

    values, checks, raws = [], [], []
    for (_, dtype, nullable), node in columns:
        strict, lenient = to_duck(node, False), to_duck(node, True)
        if dtype.upper() in ("BLOB", "BYTEA", "VARBINARY", "BINARY"):
            # BINARY_INPUT_FORMAT defaults to HEX in Snowflake: the text is decoded, not stored as is.
            strict = f"unhex({strict})"
            lenient = (
                f"CASE WHEN regexp_full_match({lenient}, '([0-9A-Fa-f]{{2}})*') THEN unhex({lenient}) END"
            )
        lenient_value = f"TRY_CAST({lenient} AS {dtype})"
        referenced = sorted(int(p.this.this) for p in node.find_all(exp.Parameter))
        raw_field = f"c{referenced[0]}" if referenced else "NULL"
        values.append(f"CAST({strict} AS {dtype})")
        raws.append(raw_field)
        bad = f"({lenient_value} IS NULL AND {raw_field} IS NOT NULL)"
        checks.append(f"({bad} OR {lenient_value} IS NULL)" if not nullable else bad)
    return values, checks, raws


def _first_error(
    spec: LoadSpec,
    columns: list[tuple[tuple[str, str, bool], exp.Expr]],
    scan: _Scan,
    rejected: list[Any],
    errors: list[Any],
) -> tuple[int, str, str | None, int | None] | None:
    """(line, message, column, character position) of the earliest bad record, as Snowflake words it."""
    first: tuple[int, str, str | None, int | None] | None = None
    if rejected:
        line, _, error_type, message, _ = rejected[0]
        if error_type in ("MISSING COLUMNS", "TOO MANY COLUMNS"):
            text = _column_count_message(message, scan.fields)
        else:
            text = f"Invalid input: {str(message).split(chr(10))[0]}"
        first = (int(line), text, None, 1)
    if errors:
        rn, col, raw_value = errors[0]
        line = int(rn) + scan.skip
        if first is None or line < first[0]:
            (name, dtype, _), _ = columns[int(col)]
            text = (
                "NULL result in a non-nullable column"
                if raw_value is None
                else _error_kind(dtype).format(v=raw_value)
            )
            first = (line, text, f'"{spec.target.name}"["{name}":{int(col) + 1}]', 1)
    return first


def _insert(
    cur: DuckDBPyConnection,
    spec: LoadSpec,
    columns: list[tuple[tuple[str, str, bool], exp.Expr]],
    scan: _Scan,
    history_update: tuple[str, list[Any]],
    *,
    transaction: bool = True,
) -> LoadResult:
    raw = scan.raw
    # Only the first rejected record is reported; the others are counted. A file whose every
    # record has the wrong number of fields rejects them all, so nothing here may grow with them.
    rejected = cur.execute(
        f"SELECT line, column_name, error_type, error_message, csv_line "
        f"FROM temp.{scan.rejects} ORDER BY line LIMIT 1"
    ).fetchall()
    (rejected_records,) = cur.execute(f"SELECT count(DISTINCT line) FROM temp.{scan.rejects}").fetchone() or (
        0,
    )
    (parsed_ok,) = cur.execute(f"SELECT count(*) FROM temp.{raw}").fetchone() or (0,)
    # Rejected records shift the record numbers of the rows after them: the parsed row at rowid r
    # is record r + 1 + (rejected records before it). The k-th rejected record (k from 0, its
    # number n) comes before every parsed row with r + 1 >= n - k. Those thresholds stay in a
    # table, not in the statement: a list literal of every rejected record made each statement
    # (parsed, copied and rendered by sqlglot once per column) grow with the file, and a large
    # file of the wrong shape took tens of seconds to fail.
    row_number = "(rowid + 1)"
    if rejected:
        cur.execute(
            f"CREATE TEMP TABLE {scan.shifts} AS SELECT n - (row_number() OVER (ORDER BY n) - 1) AS a "
            f"FROM (SELECT DISTINCT line - {scan.skip} AS n FROM temp.{scan.rejects})"
        )
        row_number = f"(rowid + 1 + (SELECT count(*) FROM temp.{scan.shifts} WHERE a <= {raw}.rowid + 1))"
    values, checks, raws = _expressions(spec, columns, row_number)
    case_bad = "CASE " + " ".join(f"WHEN {c} THEN {i}" for i, c in enumerate(checks)) + " END"
    case_raw = "CASE " + " ".join(f"WHEN {c} THEN {r}" for c, r in zip(checks, raws, strict=True)) + " END"
    errors = cur.execute(
        f"SELECT {row_number} AS rn, {case_bad} AS col, {case_raw} AS raw_value "
        f"FROM temp.{raw} WHERE {' OR '.join(checks) or 'false'} ORDER BY rowid"
    ).fetchall()
    first = _first_error(spec, columns, scan, rejected, errors)

    row_parsed = int(parsed_ok) + int(rejected_records)
    error_count = len(errors) + int(rejected_records)
    limit = error_limit_for(spec.on_error, row_parsed)
    skip_file = spec.on_error.upper() != "CONTINUE" and error_count >= limit

    if transaction:
        cur.execute("BEGIN TRANSACTION")
    try:
        loaded = 0
        if not skip_file:
            names = ", ".join(dq(c[0][0]) for c in columns)
            keep = f"WHERE NOT ({' OR '.join(checks)})" if checks and errors else ""
            target = ".".join(dq(p) for p in spec.target.parts())
            cur.execute(
                f"INSERT INTO {target} ({names}) SELECT {', '.join(values)} "
                f"FROM temp.{raw} {keep} ORDER BY rowid"
            )
            loaded = int((cur.fetchone() or (0,))[0])
        status = "Loaded" if error_count == 0 else "Partially loaded" if loaded > 0 else "Load failed"
        result = LoadResult(
            status=status,
            row_count=loaded,
            row_parsed=row_parsed,
            error_count=error_count,
            error_limit=limit,
            first_error_message=first[1] if first else None,
            first_error_line_number=first[0] if first else None,
            first_error_character_pos=first[3] if first else None,
            first_error_column_name=first[2] if first else None,
        )
        sql, params = history_update
        cur.execute(sql, [*result_row(result), *params])
        if transaction:
            cur.execute("COMMIT")
    except BaseException:
        if transaction:
            cur.execute("ROLLBACK")
        raise
    return result


def result_row(result: LoadResult) -> list[Any]:
    """The result in the order of ``HISTORY_RESULT_SET``."""
    return [
        result.status,
        result.row_count,
        result.row_parsed,
        result.error_count,
        result.error_limit,
        result.first_error_message,
        result.first_error_line_number,
        result.first_error_character_pos,
        result.first_error_column_name,
    ]


HISTORY_RESULT_SET = (
    "STATUS = ?, ROW_COUNT = ?, ROW_PARSED = ?, ERROR_COUNT = ?, ERROR_LIMIT = ?, "
    "FIRST_ERROR_MESSAGE = ?, FIRST_ERROR_LINE_NUMBER = ?, FIRST_ERROR_CHARACTER_POS = ?, "
    "FIRST_ERROR_COLUMN_NAME = ?"
)
