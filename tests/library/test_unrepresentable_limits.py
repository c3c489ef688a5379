"""The unrepresentable-values column within Snowflake's limits, on the real PostgreSQL.

``typemap.unrepresentable_expression`` writes, per row, a JSON object into one STAGING VARCHAR
(16 MB on Snowflake). Values unrepresentable because of their size (text, json or arrays over
16 MB, bytea over 8 MB) used to be copied into it whole, so one such value made the cell itself
too large for Snowflake. They are now described (size and md5 of their PostgreSQL text); small
ones (NaN, infinity, out-of-range dates, long numerics) are still kept as exact text. The SELECT
is built as the exporter builds it (every mapping's export expression, then the extra column)
and run in the exporter's session settings.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql

from aurora_sync.source_catalog import read_columns
from aurora_sync.source_db import EXPORT_SESSION
from aurora_sync.typemap import (
    BINARY_MAX_BYTES,
    UNREPRESENTABLE_COLUMN,
    UNREPRESENTABLE_INLINE_MAX_BYTES,
    VARCHAR_MAX_BYTES,
    map_column,
    unrepresentable_expression,
)

SCHEMA = "typemap_limits"
POSTGRES_MAX_COLUMNS = 1600  # MaxHeapAttributeNumber
POSTGRES_MAX_IDENTIFIER_BYTES = 63  # NAMEDATALEN - 1


@pytest.fixture(scope="module")
def admin(stack: dict[str, Any]) -> Iterator[Any]:
    conn = psycopg2.connect(stack["postgres"]["admin_dsn"])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
    yield conn
    with conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    conn.close()


def export(admin: Any, table: str) -> list[dict[str, str]]:
    """The export's CSV rows, keyed by column name (csv module: big fields, NULL read as '')."""
    with admin.cursor() as cur:
        columns = read_columns(cur, SCHEMA, table)
        mappings = [map_column(c.name, c.pg_type) for c in columns]
        select = sql.SQL("SELECT {cols}, {extra} FROM {table} ORDER BY 1").format(
            cols=sql.SQL(", ").join(m.export for m in mappings),
            extra=unrepresentable_expression(mappings),
            table=sql.Identifier(SCHEMA, table),
        )
        cur.execute("BEGIN")
        for name, value in EXPORT_SESSION.items():
            cur.execute("SELECT set_config(%s, %s, true)", (name, value))
        buffer = io.StringIO()
        cur.copy_expert(
            sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv)").format(select).as_string(cur), buffer
        )
        cur.execute("COMMIT")
    names = [m.column for m in mappings] + [UNREPRESENTABLE_COLUMN]
    csv.field_size_limit(sys.maxsize)
    return [dict(zip(names, row, strict=True)) for row in csv.reader(io.StringIO(buffer.getvalue()))]


def descriptor(text: bytes) -> dict[str, Any]:
    return {"unrepresentable": "too large", "bytes": len(text), "md5": hashlib.md5(text).hexdigest()}  # noqa: S324


def test_values_too_large_for_snowflake_are_described_and_small_ones_kept_exactly(admin: Any) -> None:
    over = VARCHAR_MAX_BYTES + 1
    with admin.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {SCHEMA}.big (id int PRIMARY KEY, t text, j jsonb, arr text[], by bytea, "
            "n numeric(10,2), dt date)"
        )
        # Row 1: one value of each kind over its limit, plus two small unrepresentable ones.
        # Row 2: text and bytea exactly at Snowflake's limits, which still load as they are.
        cur.execute(
            f"INSERT INTO {SCHEMA}.big VALUES "
            "(1, repeat('a', %(over)s), to_jsonb(repeat('j', %(over)s)), ARRAY[repeat('r', %(over)s)], "
            "decode(repeat('ab', %(bin_over)s), 'hex'), 'NaN', 'infinity'), "
            "(2, repeat('a', %(at)s), NULL, NULL, decode(repeat('ab', %(bin_at)s), 'hex'), 1.5, "
            "'2024-01-01')",
            {
                "over": over,
                "at": VARCHAR_MAX_BYTES,
                "bin_over": BINARY_MAX_BYTES + 1,
                "bin_at": BINARY_MAX_BYTES,
            },
        )
    described, at_limit = export(admin, "big")

    assert [described[c] for c in ("t", "j", "arr", "by", "n", "dt")] == [""] * 6  # NULL in CSV
    cell = described[UNREPRESENTABLE_COLUMN]
    assert len(cell.encode()) < 1_000  # it held over 57 MB of text before
    assert json.loads(cell) == {
        "t": descriptor(b"a" * over),
        "j": descriptor(b'"' + b"j" * over + b'"'),
        "arr": descriptor(b"{" + b"r" * over + b"}"),
        "by": descriptor(b"\\x" + b"ab" * (BINARY_MAX_BYTES + 1)),
        "n": "NaN",
        "dt": "infinity",
    }

    assert len(at_limit["t"]) == VARCHAR_MAX_BYTES
    assert len(at_limit["by"]) == 2 * BINARY_MAX_BYTES  # hex
    assert (at_limit["n"], at_limit["dt"], at_limit[UNREPRESENTABLE_COLUMN]) == ("1.50", "2024-01-01", "")


def test_a_long_numeric_is_kept_exactly_up_to_the_inline_limit_then_described(admin: Any) -> None:
    # A numeric beyond NUMBER(38) is unrepresentable however short; its text is kept while its
    # JSON string ("digits", quotes included) takes at most UNREPRESENTABLE_INLINE_MAX_BYTES.
    longest = UNREPRESENTABLE_INLINE_MAX_BYTES - 2
    with admin.cursor() as cur:
        cur.execute(f"CREATE TABLE {SCHEMA}.digits (id int PRIMARY KEY, n numeric)")
        cur.execute(
            f"INSERT INTO {SCHEMA}.digits VALUES (1, ('1' || repeat('0', %s))::numeric), "
            "(2, ('1' || repeat('0', %s))::numeric)",
            (longest - 1, longest),
        )
    kept, described = export(admin, "digits")
    assert kept["n"] == "" and json.loads(kept[UNREPRESENTABLE_COLUMN]) == {"n": "1" + "0" * (longest - 1)}
    assert described["n"] == ""
    assert json.loads(described[UNREPRESENTABLE_COLUMN]) == {"n": descriptor(b"1" + b"0" * longest)}


def test_a_row_of_many_unrepresentable_values_stays_under_16_mb(admin: Any) -> None:
    # Each entry is bounded (key + at most the inline limit, or a ~90-byte descriptor), so the
    # cell is bounded by PostgreSQL's 1600 columns. Measured on 100 columns with the longest
    # names and the longest values kept inline, then extrapolated to 1600 worst-case entries.
    width = 100
    names = [f"{i:03d}_" + "n" * (POSTGRES_MAX_IDENTIFIER_BYTES - 4) for i in range(width)]
    longest = UNREPRESENTABLE_INLINE_MAX_BYTES - 2
    with admin.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, {})").format(
                sql.Identifier(SCHEMA, "wide"),
                sql.SQL(", ").join(sql.SQL("{} numeric").format(sql.Identifier(n)) for n in names),
            )
        )
        cur.execute(
            sql.SQL("INSERT INTO {} VALUES (1, {})").format(
                sql.Identifier(SCHEMA, "wide"),
                sql.SQL(", ").join(
                    sql.SQL("('1' || repeat('0', {}))::numeric").format(sql.Literal(longest - 1))
                    for _ in names
                ),
            )
        )
    (row,) = export(admin, "wide")
    cell = row[UNREPRESENTABLE_COLUMN].encode()
    assert json.loads(cell) == {n: "1" + "0" * (longest - 1) for n in names}  # every one kept inline
    per_entry = (len(cell) - 2) / width  # "{" and "}" around ", "-separated entries
    # The worst key escapes every byte as \u00XX (6 bytes); the worst value is the inline limit
    # or the largest descriptor (bytes up to PostgreSQL's 1 GB), each with ": " and ", ".
    worst_key = 2 + 6 * POSTGRES_MAX_IDENTIFIER_BYTES
    worst_descriptor = len(
        json.dumps({"md5": "0" * 32, "bytes": 2**30, "unrepresentable": "too large"}, separators=(", ", ": "))
    )
    worst_entry = worst_key + 2 + max(UNREPRESENTABLE_INLINE_MAX_BYTES, worst_descriptor) + 2
    assert per_entry <= worst_entry
    assert POSTGRES_MAX_COLUMNS * worst_entry + 2 < VARCHAR_MAX_BYTES
