"""``ALTER TABLE … ALTER COLUMN … SET DATA TYPE`` as Snowflake allows it.

DuckDB (under fakesnow) converts a column to almost any type; Snowflake changes a column's type
in place only when no value can change (docs.snowflake.com, "ALTER TABLE … ALTER COLUMN"):

* a synonymous type (STRING → VARCHAR, INT → NUMBER(38,0));
* a longer VARCHAR or BINARY;
* a NUMBER with more precision and the same scale, or less precision when every stored value
  still fits.

Anything else (another type, a shorter VARCHAR or BINARY, another scale) fails with
``SQL compilation error: cannot change column C from type T1 to T2``, which this module raises
before fakesnow sees the statement. The wording after the two types is approximated.

A stream on the table keeps working after a change Snowflake makes, as in Snowflake: the stream's
offset snapshot (``tasks.Streams``) gets the wider NUMBER too, so comparing it with the table
never casts a new, larger value down to the old precision.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

import duckdb
from fakesnow.instance import FakeSnow
from snowflake.connector.errors import ProgrammingError

from .catalog import IDENT, QUALIFIED, ObjectName, normalise_part, sql_error

_TYPE = r"(?P<type>[A-Za-z_]+(?:\s*\([\s\d,]*\))?)"
ALTER_TYPE = re.compile(
    rf"ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?P<table>{QUALIFIED})\s+(?:ALTER|MODIFY)\s+(?:COLUMN\s+)?"
    rf"(?P<column>{IDENT})\s+(?:SET\s+DATA\s+)?TYPE\s+{_TYPE}\s*;?\s*$",
    re.I | re.S,
)
_FAMILIES = {
    "VARCHAR": "TEXT",
    "STRING": "TEXT",
    "TEXT": "TEXT",
    "CHAR": "TEXT",
    "CHARACTER": "TEXT",
    "NUMBER": "NUMBER",
    "DECIMAL": "NUMBER",
    "NUMERIC": "NUMBER",
    "INT": "NUMBER",
    "INTEGER": "NUMBER",
    "BIGINT": "NUMBER",
    "SMALLINT": "NUMBER",
    "TINYINT": "NUMBER",
    "BYTEINT": "NUMBER",
    "FLOAT": "FLOAT",
    "FLOAT4": "FLOAT",
    "FLOAT8": "FLOAT",
    "DOUBLE": "FLOAT",
    "REAL": "FLOAT",
    "BINARY": "BINARY",
    "VARBINARY": "BINARY",
    "DATETIME": "TIMESTAMP_NTZ",
}
TEXT_DEFAULT = 16 * 1024 * 1024
BINARY_DEFAULT = 8 * 1024 * 1024


@dataclass(frozen=True)
class _Type:
    family: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None

    def sql(self) -> str:
        if self.family == "TEXT":
            return f"VARCHAR({self.length})"
        if self.family == "BINARY":
            return f"BINARY({self.length})"
        if self.family == "NUMBER":
            return f"NUMBER({self.precision},{self.scale})"
        return self.family


def _declared(text: str) -> _Type:
    match = re.fullmatch(r"\s*([A-Za-z_]+)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*", text)
    if match is None:
        return _Type(text.strip().upper())
    name = match.group(1).upper()
    family = _FAMILIES.get(name, name)
    first = int(match.group(2)) if match.group(2) else None
    if family == "NUMBER":
        if name not in ("NUMBER", "DECIMAL", "NUMERIC"):
            return _Type(family, precision=38, scale=0)
        return _Type(family, precision=38 if first is None else first, scale=int(match.group(3) or 0))
    if family == "TEXT":
        return _Type(family, length=first or TEXT_DEFAULT)
    if family == "BINARY":
        return _Type(family, length=first or BINARY_DEFAULT)
    return _Type(family)


def _current(cur: Any, table: ObjectName, column: str) -> _Type | None:
    cur.execute(
        f"SELECT DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE "
        f"FROM {ObjectName(table.database, 'INFORMATION_SCHEMA', 'COLUMNS').table_sql()} "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND COLUMN_NAME = %s",
        (table.schema, table.name, column),
    )
    row = cur.fetchone()
    if row is None:
        return None
    data_type, length, precision, scale = row
    family = _FAMILIES.get(str(data_type).upper(), str(data_type).upper())
    if family == "NUMBER":
        return _Type(family, precision=int(precision or 38), scale=int(scale or 0))
    if family in ("TEXT", "BINARY"):
        default = TEXT_DEFAULT if family == "TEXT" else BINARY_DEFAULT
        return _Type(family, length=int(length or default))
    return _Type(family)


def _refused(column: str, old: _Type, new: _Type, why: str = "") -> ProgrammingError:
    reason = f" because {why}" if why else ""
    return sql_error(
        f"SQL compilation error:\ncannot change column {column} from type {old.sql()} to {new.sql()}{reason}",
        errno=2108,
        sqlstate="22000",
    )


def check(fs: FakeSnow, text: str, database: str | None, schema: str | None, streams: Any = None) -> None:
    """Raise Snowflake's error for a type change it does not make; for one it makes, widen the
    offset snapshots of ``streams`` on the table (``tasks.Streams``) first."""
    match = ALTER_TYPE.match(text)
    if match is None:
        return
    table = ObjectName.resolve(match.group("table"), database, schema)
    column = normalise_part(match.group("column"))
    new = _declared(match.group("type"))
    conn = fs.connect(table.database, table.schema)
    try:
        cur = conn.cursor()
        old = _current(cur, table, column)
        if old is None:
            return  # fakesnow reports the missing table or column
        if old.family != new.family:
            raise _refused(column, old, new)
        if old.family in ("TEXT", "BINARY") and (new.length or 0) < (old.length or 0):
            kind = "varchar" if old.family == "TEXT" else "binary"
            raise _refused(column, old, new, f"reducing the byte-length of a {kind} is not supported")
        if old.family == "NUMBER":
            if old.scale != new.scale:
                raise _refused(column, old, new, "changing the scale of a number is not supported")
            assert new.precision is not None and old.precision is not None and new.scale is not None
            if new.precision < old.precision:
                limit = 10 ** (new.precision - new.scale)
                cur.execute(f"SELECT MAX(ABS({_quoted(column)})) FROM {table.table_sql()}")
                found = cur.fetchone()
                largest = found[0] if isinstance(found, tuple) else None
                if largest is not None and largest >= limit:
                    why = "the new precision is not sufficient to hold the values in the column"
                    raise _refused(column, old, new, why)
            elif new.precision > old.precision and streams is not None:
                _widen_offsets(fs, streams, table, column, f"DECIMAL({new.precision},{new.scale})")
    finally:
        conn.close()


def _widen_offsets(fs: FakeSnow, streams: Any, table: ObjectName, column: str, duck_type: str) -> None:
    for _, record in streams.registry.items("streams"):
        if record["table"] != table.fq:
            continue
        statement = f"ALTER TABLE {streams._base(record)} ALTER COLUMN {_quoted(column)} TYPE {duck_type}"
        # A snapshot without the column (added to the table after it was taken) has nothing to widen.
        with fs.duck_conn.cursor() as cur, contextlib.suppress(duckdb.Error):
            cur.execute(statement)


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'
