"""Parity: does a table's FINAL copy in Snowflake equal its source in PostgreSQL, row by row?

Both sides are read ordered by primary key and streamed (a server-side cursor in PostgreSQL,
``fetchmany`` in Snowflake), so memory stays bounded whatever the table size. Each row becomes a
canonical tuple per the one type map: the source through the export expressions (exactly the
text Aurora writes to S3), FINAL through the Python values the connector returns, both
normalised to the same representation (decimals without trailing zeros, timestamps in UTC with
microseconds, JSON re-serialised with sorted keys, binary as hex). A merge join on the key then
finds rows missing from FINAL, rows FINAL has but the source does not, and rows that differ.

A source row whose key FINAL cannot hold (NULL, or a value the type map turns into NULL: numeric
NaN/±Infinity, digits beyond NUMBER(38,s), ±infinity dates, ...) can never be merged, so it is
reported as missing in FINAL under the key's PostgreSQL text and kept out of the merge join,
whose order it would break. Keys are ordered as both databases order them: -inf < numbers <
+inf < NaN, NULL last.

Soft-deleted source rows are expected absent from FINAL in ``delete`` mode and present in
``flag`` mode.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from psycopg2 import sql

from aurora_sync.naming import quote
from aurora_sync.snowflake_objects import TableSpec
from aurora_sync.snowflake_tables import SnowflakeSetup
from aurora_sync.source_db import EXPORT_SESSION
from aurora_sync.typemap import UNREPRESENTABLE_COLUMN, unrepresentable_expression

BATCH = 10_000
TEXT_TYPES = ("text", "varchar", "bpchar", "name", "citext", "uuid")


def _number(value: Any) -> str:
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    return format(number.normalize(), "f") if number else "0"


def _float(value: Any) -> str:
    number = float(value) if not isinstance(value, str) else float(value.replace("inf", "Infinity"))
    if math.isnan(number):
        return "nan"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    return repr(number)


def _json(value: Any) -> str:
    parsed = json.loads(value) if isinstance(value, str) else value
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"))


def _timestamp(value: Any, *, aware: bool) -> str:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    if aware:
        moment = moment.astimezone(UTC)
    return str(moment.isoformat(timespec="microseconds"))


def canonical(final_type: str, value: Any) -> str | None:
    """One representation for a value of a FINAL column, whichever side it was read from."""
    if value is None:
        return None
    kind = final_type.split("(", 1)[0]
    if kind == "NUMBER":
        return _number(value)
    if kind == "FLOAT":
        return _float(value)
    if kind == "BOOLEAN":
        return str(value if isinstance(value, str) else str(value).lower()).lower()
    if kind in ("VARIANT", "ARRAY"):
        return _json(value)
    if kind == "BINARY":
        return value if isinstance(value, str) else bytes(value).hex()
    if kind == "TIMESTAMP_TZ":
        return _timestamp(value, aware=True)
    if kind == "TIMESTAMP_NTZ":
        return _timestamp(value, aware=False)
    if kind == "DATE":
        return value if isinstance(value, str) else date.isoformat(value)
    if kind == "TIME":
        return value if isinstance(value, str) else time.isoformat(value, timespec="microseconds")
    return str(value)


@dataclass
class ParityResult:
    table: str
    source_rows: int = 0
    final_rows: int = 0
    missing: list[str] = field(default_factory=list)  # in the source, not in FINAL
    extra: list[str] = field(default_factory=list)  # in FINAL, not in the source
    different: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"missing": 0, "extra": 0, "different": 0})
    source_digest: str = ""
    final_digest: str = ""

    @property
    def equal(self) -> bool:
        return not any(self.counts.values())

    def note(self, kind: str, key: str, limit: int) -> None:
        self.counts[kind] += 1
        bucket = getattr(self, kind)
        if len(bucket) < limit:
            bucket.append(key)

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "equal": self.equal,
            "source_rows": self.source_rows,
            "final_rows": self.final_rows,
            "counts": self.counts,
            "missing": self.missing,
            "extra": self.extra,
            "different": self.different,
            "source_digest": self.source_digest,
            "final_digest": self.final_digest,
        }


def _types(spec: TableSpec) -> list[str]:
    return [m.final_type for m in spec.columns] + ["VARIANT"]


def _source_rows(conn: Any, spec: TableSpec, schema: str, table: str) -> Generator[tuple[Any, ...]]:
    keys = [spec.columns[spec.snowflake_names.index(k)] for k in spec.primary_key]
    # Byte order for text keys, as Snowflake compares strings: both streams must agree.
    order = sql.SQL(", ").join(
        sql.SQL('{} COLLATE "C"').format(sql.Identifier(m.column))
        if m.source_type.split("(")[0] in ("text", "character varying", "character")
        else sql.Identifier(m.column)
        for m in keys
    )
    where: sql.Composable = sql.SQL("TRUE")
    if spec.soft_delete and spec.soft_delete_mode == "delete":
        column = sql.Identifier(spec.columns[spec.snowflake_names.index(spec.soft_delete)].column)
        where = (
            sql.SQL("NOT COALESCE({}, FALSE)").format(column)
            if spec.soft_delete_is_boolean
            else sql.SQL("{} IS NULL").format(column)
        )
    query = sql.SQL("SELECT {keys}, {texts}, {cols}, {extra} FROM {t} WHERE {w} ORDER BY {order}").format(
        # Aliased: an output named like a column (`"id"::text` is named id) would make ORDER BY
        # sort by the text of the key instead of the key.
        keys=sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(m.export, sql.Identifier(f"_key_{i}")) for i, m in enumerate(keys)
        ),
        # The type's own output function (a ::text cast would strip char(n) padding); only shown
        # for keys FINAL cannot hold.
        texts=sql.SQL(", ").join(
            sql.SQL("CASE WHEN {c} IS NOT NULL THEN format('%s', {c}) END AS {a}").format(
                c=sql.Identifier(m.column), a=sql.Identifier(f"_key_text_{i}")
            )
            for i, m in enumerate(keys)
        ),
        cols=sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(m.export, sql.Identifier(f"_col_{i}"))
            for i, m in enumerate(spec.columns)
        ),
        extra=unrepresentable_expression(spec.columns),
        t=sql.Identifier(schema, table),
        w=where,
        order=order,
    )
    # A server-side cursor streams in batches (memory stays bounded) but needs a transaction.
    autocommit = conn.autocommit
    conn.autocommit = False
    try:
        with conn.cursor() as setup:
            # The export's own session: the expressions' text depends on it (intervals, floats).
            for name, value in EXPORT_SESSION.items():
                setup.execute("SELECT set_config(%s, %s, true)", (name, value))
        with conn.cursor(name=f"parity_{uuid.uuid4().hex[:8]}") as cur:
            cur.itersize = BATCH
            cur.execute(query)
            yield from cur
    finally:
        # A comparison abandoned by an error may outlive the connection.
        if not conn.closed:
            conn.rollback()
            conn.autocommit = autocommit


def _final_rows(conn: Any, setup: SnowflakeSetup, spec: TableSpec) -> Generator[tuple[Any, ...]]:
    keys = ", ".join(quote(k) for k in spec.primary_key)
    columns = ", ".join(quote(c) for c in [*spec.snowflake_names, UNREPRESENTABLE_COLUMN])
    order = ", ".join(quote(k) for k in spec.primary_key)
    cur = conn.cursor()
    try:
        cur.execute(
            f"SELECT {keys}, {columns} FROM {setup.objects(spec.target).final_table} ORDER BY {order}"
        )
        while batch := cur.fetchmany(BATCH):
            yield from batch
    finally:
        cur.close()


@dataclass(frozen=True)
class _Row:
    key: str  # JSON list of the canonical key values (PostgreSQL's text when not holdable)
    values: str  # JSON list of the canonical column values
    holdable: bool = True  # False: FINAL cannot hold this key, the row can never be merged


def _keyed(
    rows: Iterator[tuple[Any, ...]], key_types: Sequence[str], types: Sequence[str], *, texts: bool = False
) -> Iterator[_Row]:
    """``texts``: each row carries the keys' PostgreSQL text after the keys (the source side)."""
    width = len(key_types)
    start = 2 * width if texts else width
    for row in rows:
        values = json.dumps([canonical(kind, value) for kind, value in zip(types, row[start:], strict=True)])
        # The export writes NULL for a NULL key and for a key the type map cannot represent.
        if texts and any(value is None for value in row[:width]):
            yield _Row(json.dumps(list(row[width:start])), values, holdable=False)
            continue
        key = json.dumps([canonical(kind, value) for kind, value in zip(key_types, row[:width], strict=True)])
        yield _Row(key, values)


def _order(part: str | None, numeric: bool) -> tuple[int, Any]:
    if part is None:
        return (4, 0)
    if not numeric:
        return (1, part.encode())
    number = Decimal(part)
    # Comparing a Decimal NaN raises; infinities compare, but rank them explicitly with NaN.
    if number.is_nan():
        return (3, 0)
    if number.is_infinite():
        return (2, 0) if number > 0 else (0, 0)
    return (1, number)


def _sort_key(key: str, numeric: list[bool]) -> tuple[tuple[int, Any], ...]:
    return tuple(_order(p, n) for p, n in zip(json.loads(key), numeric, strict=True))


def compare(
    source: Any,
    warehouse: Any,
    setup: SnowflakeSetup,
    spec: TableSpec,
    *,
    schema: str,
    table: str,
    limit: int = 20,
) -> ParityResult:
    """Row-by-row comparison of one table; ``limit`` caps the keys listed per kind."""
    result = ParityResult(table=spec.name)
    types = _types(spec)
    key_types = [spec.columns[spec.snowflake_names.index(k)].final_type for k in spec.primary_key]
    numeric = [t.startswith(("NUMBER", "FLOAT")) for t in key_types]
    source_hash, final_hash = hashlib.sha256(), hashlib.sha256()

    def count_source(row: _Row) -> None:
        result.source_rows += 1
        source_hash.update(f"{row.key}{row.values}\n".encode())

    def holdable(rows: Iterator[_Row]) -> Iterator[_Row]:
        for row in rows:
            if row.holdable:
                yield row
            else:
                result.note("missing", row.key, limit)
                count_source(row)

    source_rows = _source_rows(source, spec, schema, table)
    final_rows = _final_rows(warehouse, setup, spec)
    left = holdable(_keyed(source_rows, key_types, types, texts=True))
    right = _keyed(final_rows, key_types, types)
    try:
        a, b = next(left, None), next(right, None)
        while a is not None or b is not None:
            if b is None or (a is not None and _sort_key(a.key, numeric) < _sort_key(b.key, numeric)):
                assert a is not None
                result.note("missing", a.key, limit)
                count_source(a)
                a = next(left, None)
            elif a is None or _sort_key(b.key, numeric) < _sort_key(a.key, numeric):
                result.note("extra", b.key, limit)
                result.final_rows += 1
                final_hash.update(f"{b.key}{b.values}\n".encode())
                b = next(right, None)
            else:
                if a.values != b.values:
                    result.note("different", a.key, limit)
                count_source(a)
                result.final_rows += 1
                final_hash.update(f"{b.key}{b.values}\n".encode())
                a, b = next(left, None), next(right, None)
    finally:
        # End both reads now, while their connections are open. Left to the garbage collector (an
        # error's traceback keeps them alive), the source stream would keep its transaction open
        # into the next table's comparison, or roll back on a closed connection at exit.
        final_rows.close()
        source_rows.close()
    result.source_digest, result.final_digest = source_hash.hexdigest(), final_hash.hexdigest()
    return result
